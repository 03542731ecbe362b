//! Freshness and footprint of the Kubernetes source, against the fake API server of the tests.
//!
//! For 1,000 and 100,000 pods (5 members per service) it starts the release `roster` binary
//! on the fake API server and reports: time from start to the first answer after the initial
//! list; resident memory once ready; and, over a few hundred single-pod changes, the time from
//! the API server writing the watch event to the new answer arriving at a DNS client (p50, p99,
//! max). Run with `cargo bench --bench kube`; `-- --pods 1000` limits it to one size.

#[path = "../tests/common/fake_api.rs"]
mod fake_api;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::{FakeApi, pod};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};

const CHANGES: usize = 300;

struct Roster(Child);

impl Drop for Roster {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(n: usize, generation: usize) -> String {
    format!(
        "10.{}.{}.{}",
        1 + generation * 2 + n / 65_536 % 2,
        n / 256 % 256,
        n % 256
    )
}

fn member(n: usize) -> (String, String) {
    let (service, m) = (n / 5, n % 5);
    (format!("s{service}-{m}"), format!("s{service}"))
}

fn a_record(socket: &UdpSocket, addr: SocketAddr, name: &Name, id: u16) -> Option<String> {
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(name.clone(), RecordType::A));
    socket.send_to(&q.to_vec().unwrap(), addr).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let m = Message::from_vec(&buf[..n]).ok()?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(pods: usize) {
    let api = FakeApi::start();
    let loading = Instant::now();
    for n in 0..pods {
        let (name, service) = member(n);
        api.apply(pod("bench", &name, &service, &ip(n, 0), true));
    }
    eprintln!(
        "fake API server holds {pods} pods ({:.1} s)",
        loading.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("roster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = api.kubeconfig(&dir);
    std::fs::write(dir.join("roster.toml"), "[source]\ntype = \"kubernetes\"\n").unwrap();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args([
            "serve",
            "--config",
            "roster.toml",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .current_dir(&dir)
        .env("RUST_LOG", "warn,roster::dns=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the roster binary");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let roster = Roster(child);
    let addr: SocketAddr = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("addr=").nth(1).map(|a| a.trim().parse().unwrap()))
        .expect("roster listens");

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (last, service) = member(pods - 1);
    let last_name = Name::from_ascii(format!("{last}.{service}.bench.roster.internal.")).unwrap();
    let want = ip(pods - 1, 0);
    while a_record(&socket, addr, &last_name, 1).as_deref() != Some(want.as_str()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "roster never became ready"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = started.elapsed();
    let rss_ready = rss_kib(roster.0.id());

    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let n = (i * 7919) % pods;
        let (name, service) = member(n);
        let qname = Name::from_ascii(format!("{name}.{service}.bench.roster.internal.")).unwrap();
        let new_ip = ip(n, 1 + i % 2);
        let t0 = Instant::now();
        api.apply(pod("bench", &name, &service, &new_ip, true));
        let mut id = 0u16;
        loop {
            id = id.wrapping_add(1);
            if a_record(&socket, addr, &qname, id).as_deref() == Some(new_ip.as_str()) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "change {i} never served"
            );
        }
        latencies.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    latencies.sort();
    let rss_after = rss_kib(roster.0.id());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {pods:>7} | {:>8.2} | {:>8.2} | {:>8.2} | {:>9.2} | {:>10.1} | {:>10.1} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        ready.as_secs_f64(),
        rss_ready as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    drop(roster);
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--pods") {
        Some(i) => vec![args[i + 1].parse().expect("--pods N")],
        None => vec![1_000, 100_000],
    };
    println!(
        "Kubernetes source: watch event written by the API server -> new answer at a DNS client"
    );
    println!(
        "({CHANGES} single-pod changes; ready = start to first answer after the initial list)\n"
    );
    println!(
        "|    pods | p50 (ms) | p99 (ms) | max (ms) | ready (s) | RSS ready (MiB) | RSS after (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for pods in sizes {
        run(pods);
    }
}
