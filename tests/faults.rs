//! Faults under load: the API server going down and up every 5 s while pods change and queries
//! run, and the pods file rewritten 1,000 times while queries run. No answer is ever one that
//! was not true, no SERVFAIL after the first load, memory stays flat, and every answer is one
//! complete version of the file, never a mix.
//!
//! `ROSTER_FAULT_SECONDS` sets how long the API server flaps (default 20 s in the test suite;
//! `ROSTER_FAULT_SECONDS=120 cargo test --release --test faults` is the two-minute run).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, pod};
use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_flapping_api_server_never_causes_a_wrong_answer() {
    let seconds: u64 = std::env::var("ROSTER_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let api = FakeApi::start();
    let members: Vec<(String, String)> = (0..20)
        .map(|i| (format!("s{}-{}", i / 5, i % 5), format!("s{}", i / 5)))
        .collect();
    // Every address each member ever had: an answer outside it was never true. Each change
    // takes a fresh address, recorded before the API server has it.
    let history: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let mut current: HashMap<String, String> = HashMap::new();
    let mut fresh = 0u32;
    let mut next_ip = || {
        fresh += 1;
        format!(
            "10.{}.{}.{}",
            100 + fresh / 65_536,
            fresh / 256 % 256,
            fresh % 256
        )
    };
    for (name, service) in &members {
        let ip = next_ip();
        history
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_default()
            .insert(ip.clone());
        current.insert(name.clone(), ip.clone());
        api.apply(pod("prod", name, service, &ip, true));
    }
    let dir = temp_dir();
    let config = format!(
        "[source]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\napi_timeout = 6\n",
        api.kubeconfig(&dir).display()
    );
    let r = Roster::start_with(&config, "", &[]);
    let fqdn = |name: &str, service: &str| format!("{name}.{service}.prod.roster.internal.");

    let stop = Arc::new(AtomicBool::new(false));
    let asker = {
        let (stop, history, members, addr) =
            (stop.clone(), history.clone(), members.clone(), r.addr);
        std::thread::spawn(move || {
            let mut wrong = Vec::new();
            let mut asked = 0u64;
            let deadline = Instant::now() + Duration::from_secs(seconds + 60);
            while !stop.load(Relaxed) && Instant::now() < deadline {
                for (name, service) in &members {
                    let q = query(&fqdn(name, service), RecordType::A);
                    let Some(reply) = udp_raw(addr, &q.to_vec().unwrap(), Duration::from_secs(1))
                    else {
                        wrong.push(format!("{name}: no answer"));
                        continue;
                    };
                    let m = hickory_server::proto::op::Message::from_vec(&reply).unwrap();
                    asked += 1;
                    let ips = a_records(&m);
                    let known = history.lock().unwrap();
                    if m.metadata.response_code != ResponseCode::NoError
                        || ips.len() != 1
                        || !known[name].contains(&ips[0])
                    {
                        wrong.push(format!("{name}: {:?} {ips:?}", m.metadata.response_code));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (asked, wrong)
        })
    };

    std::thread::sleep(Duration::from_secs(1));
    let rss_start = rss_kib(r.pid());
    let started = Instant::now();
    let mut down = false;
    let mut flips = 0;
    let mut changes = 0;
    let mut turn = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        if started.elapsed() >= Duration::from_secs(5 * (flips + 1)) {
            flips += 1;
            down = !down;
            if down { api.down() } else { api.up() }
        }
        // Pods change whether or not roster can see the API server.
        let (name, service) = &members[turn % members.len()];
        turn += 7;
        let ip = next_ip();
        history
            .lock()
            .unwrap()
            .get_mut(name)
            .unwrap()
            .insert(ip.clone());
        current.insert(name.clone(), ip.clone());
        api.apply(pod("prod", name, service, &ip, true));
        changes += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    api.up();
    // Once the API server stays up, roster catches up with every change.
    for (name, service) in &members {
        let want = vec![current[name].clone()];
        let caught_up = r.eventually(Duration::from_secs(30), || {
            r.a(&fqdn(name, service)) == want
        });
        assert!(
            caught_up.is_some(),
            "{name} catches up with {want:?}\n{}",
            r.log()
        );
    }
    stop.store(true, Relaxed);
    let (asked, wrong) = asker.join().unwrap();
    let rss_end = rss_kib(r.pid());
    println!(
        "{seconds} s of flapping ({flips} flips), {changes} pod changes, {asked} queries, {} \
         wrong; resident memory {rss_start} KiB -> {rss_end} KiB",
        wrong.len()
    );
    assert!(flips >= 3, "{flips} flips");
    assert!(changes > 40, "{changes} changes");
    assert!(asked > 1000, "{asked} queries");
    assert!(
        wrong.is_empty(),
        "{} wrong of {asked}: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(
        rss_end <= rss_start + rss_start / 10 + 2048,
        "memory flat: {rss_start} KiB -> {rss_end} KiB"
    );
}

/// Version `v` of the pods file: a different number of members, each version its addresses.
fn version(v: usize) -> (String, Vec<String>) {
    let members = 3 + v;
    let mut text = String::new();
    let mut ips = Vec::new();
    for m in 0..members {
        let ip = format!("10.{}.0.{}", 10 + v, m + 1);
        text.push_str(&db_pod(m as u32, &ip, true));
        ips.push(ip);
    }
    ips.sort();
    (text, ips)
}

#[test]
fn a_pods_file_rewritten_a_thousand_times_is_served_whole_or_not_at_all() {
    rewritten_a_thousand_times(true);
}

/// Replaced by renames only, each version is read the moment it lands (no poll to wait for).
#[test]
fn a_pods_file_replaced_a_thousand_times_is_served_whole_or_not_at_all() {
    rewritten_a_thousand_times(false);
}

/// Writes 1,000 versions while a client asks; every other one in place when `in_place`.
fn rewritten_a_thousand_times(in_place: bool) {
    let versions: Vec<(String, Vec<String>)> = (0..3).map(version).collect();
    let r = Roster::start(&versions[0].0);
    let stop = Arc::new(AtomicBool::new(false));
    let asker = {
        let (stop, addr) = (stop.clone(), r.addr);
        let complete: Vec<Vec<String>> = versions.iter().map(|(_, ips)| ips.clone()).collect();
        std::thread::spawn(move || {
            let (mut asked, mut seen, mut wrong) = (0u64, HashSet::new(), Vec::new());
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Relaxed) && Instant::now() < deadline {
                let m = udp(addr, &query("db.prod.roster.internal.", RecordType::A)).0;
                let mut ips = a_records(&m);
                ips.sort();
                asked += 1;
                match complete.iter().position(|c| *c == ips) {
                    Some(v) => {
                        seen.insert(v);
                    }
                    None => wrong.push(format!("{:?} {ips:?}", m.metadata.response_code)),
                }
            }
            (asked, seen, wrong)
        })
    };
    let path = r.pods_path();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..1000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let text = &versions[(seed % 3) as usize].0;
        if !in_place || i % 2 == 0 {
            write_atomic(&path, text);
        } else {
            // In place and in two halves, as a slow writer would: the half-written file must
            // never be served.
            let mut f = std::fs::File::create(&path).unwrap();
            let half = text.len() / 2;
            f.write_all(&text.as_bytes()[..half]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
            f.write_all(&text.as_bytes()[half..]).unwrap();
        }
        // Mostly faster than roster's polls; now and then a pause long enough to apply.
        let pause = if i % 40 == 39 { 300 } else { seed % 12 };
        std::thread::sleep(Duration::from_millis(pause));
    }
    write_atomic(&path, &versions[2].0);
    let want = versions[2].1.clone();
    let settled = r.eventually(Duration::from_secs(3), || {
        let mut ips = r.a("db.prod.roster.internal.");
        ips.sort();
        ips == want
    });
    stop.store(true, Relaxed);
    let (asked, seen, wrong) = asker.join().unwrap();
    assert!(settled.is_some(), "the last version is served\n{}", r.log());
    assert!(
        wrong.is_empty(),
        "{} of {asked} answers are no complete version: {:?}\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(5)],
        r.log()
            .lines()
            .filter(|l| !l.contains(" DEBUG "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        seen.len() == 3,
        "every version was served at some point: {seen:?}"
    );
    assert!(asked > 1000, "{asked}");
}
