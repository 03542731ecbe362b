//! SPEC §5: the command line, configuration errors, exit statuses and shutdown.

mod common;

use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{RData, RecordType};
use std::time::Duration;

fn dir_with(config: &str, pods: Option<&str>) -> TempDir {
    let dir = temp_dir();
    std::fs::write(dir.join("roster.toml"), config).unwrap();
    if let Some(p) = pods {
        std::fs::write(dir.join("pods.yaml"), p).unwrap();
    }
    dir
}

const MINIMAL: &str = "[source]\npods_file = \"pods.yaml\"\n";

#[test]
fn version() {
    let (code, out, _) = run(&temp_dir(), &["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("roster {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = dir_with(MINIMAL, Some(&world()));
    let (code, out, err) = run(&dir, &["check-config", "--config", "roster.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("listen = [\"127.0.0.1:5353\"]"), "{out}");
    assert!(out.contains("zones = [\"roster.internal.\"]"), "{out}");
    assert!(out.contains("ttl = 5"), "{out}");
    assert!(err.contains("3 pods"), "{err}");

    let (code, out, _) = run(
        &dir,
        &[
            "check-config",
            "--config",
            "roster.toml",
            "--listen",
            "127.0.0.1:1053",
            "--listen",
            "[::1]:1053",
            "--zone",
            "A.Example",
            "--zone",
            "b.example.",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("listen = [\"127.0.0.1:1053\", \"[::1]:1053\"]"),
        "{out}"
    );
    assert!(
        out.contains("zones = [\"a.example.\", \"b.example.\"]"),
        "{out}"
    );
}

#[test]
fn the_default_configuration_is_runnable() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = run(root, &["check-config"]);
    assert_eq!(code, 0, "config/roster.toml must validate: {err}");
    assert!(out.contains("config/example-pods.yaml"), "{out}");
}

#[test]
fn a_bad_configuration_names_the_file_the_keys_and_every_problem() {
    let config = "[dns]\nlisten = [\"localhost\"]\nzones = [\"a..b\"]\nttl = -1\nnegative_tl = 5\nrate_limit_exempt = [\"10.244.1.5/16\"]\n\n[source]\npods_file = \"pods.yaml\"\n";
    let dir = dir_with(config, Some(&world()));
    for cmd in ["serve", "check-config"] {
        let (code, _, err) = run(&dir, &[cmd, "--config", "roster.toml"]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("roster.toml"), "{cmd}: names the file: {err}");
        for needle in [
            "5 problems",
            "line 2: dns.listen",
            "line 3: dns.zones",
            "line 4: dns.ttl",
            "line 5: dns.negative_tl: unknown key",
            "line 6: dns.rate_limit_exempt: \"10.244.1.5/16\" has bits set after its /16 prefix; the block is 10.244.0.0/16",
        ] {
            assert!(err.contains(needle), "{cmd}: {needle:?} in {err}");
        }
    }
}

#[test]
fn a_missing_configuration_file_is_a_usage_error() {
    let (code, _, err) = run(&temp_dir(), &["serve", "--config", "nope.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("nope.toml") && err.contains("cannot read"),
        "{err}"
    );
    // Without --config, the default path is relative to the working directory: a service
    // started elsewhere is told so.
    let dir = temp_dir();
    let (code, _, err) = run(&dir, &["serve", "--pods-file", "pods.yaml"]);
    assert_eq!(code, 2);
    let hint = format!(
        "config/roster.toml: cannot read: No such file or directory (os error 2) (the default \
         path, taken from the working directory {}; give the file with --config PATH)",
        dir.canonicalize().unwrap().display()
    );
    assert!(err.contains(&hint), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, err) = run(&temp_dir(), &["serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&temp_dir(), &["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn a_bad_pods_file_at_start_up_exits_2_with_its_position() {
    let cases = [
        ("missing", None, "cannot read"),
        (
            "broken YAML",
            Some("metadata:\n  name: a\n  labels: [x\n"),
            "pods.yaml:",
        ),
        (
            "broken JSON",
            Some("{\"kind\": \"PodList\",\n \"items\": [}\n"),
            "pods.yaml:2:",
        ),
        (
            // Its first pod has reached the membership layer by then: still refused whole.
            "JSON list broken after its first item",
            Some(
                "{\"kind\": \"PodList\", \"items\": [{\"metadata\": {\"name\": \"a\", \"labels\": \
                 {\"roster.io/service\": \"s\"}}, \"status\": {\"podIP\": \"10.0.0.1\"}},\n\
                 {\"metadata\": {\"name\": 7}}]}\n",
            ),
            "pods.yaml:2:",
        ),
        (
            "wrong kind",
            Some("kind: Service\nmetadata:\n  name: a\n"),
            "document 1",
        ),
        // A file being written in place as roster starts, or never written: serving it would
        // answer NXDOMAIN for every member (and have it cached), as on reload it is refused.
        ("empty", Some(""), "write an empty list (items: [])"),
    ];
    for (what, pods, needle) in cases {
        let dir = dir_with(MINIMAL, pods);
        let (code, _, err) = run(
            &dir,
            &[
                "serve",
                "--config",
                "roster.toml",
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert_eq!(code, 2, "{what}: {err}");
        assert!(err.contains(needle), "{what}: {needle:?} in {err}");
        assert!(
            !err.contains("list applied"),
            "{what}: nothing served: {err}"
        );
    }
}

#[test]
fn an_address_in_use_is_a_run_time_failure() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = dir_with(MINIMAL, Some(&world()));
    let (code, _, err) = run(
        &dir,
        &["serve", "--config", "roster.toml", "--listen", &addr],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&addr), "names the address: {err}");
}

#[test]
fn sigterm_and_sigint_exit_0_within_5_seconds() {
    for signal in ["-TERM", "-INT"] {
        let mut r = Roster::start(&world());
        let (m, _) = udp(
            r.addr,
            &query("db-0.db.prod.roster.internal.", RecordType::A),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        // Hold a TCP connection open: shutdown must not wait for it.
        let _idle = std::net::TcpStream::connect(r.addr).unwrap();
        let status = r.signal(signal, Duration::from_secs(5));
        let (status, _) = status.unwrap_or_else(|| panic!("{signal}: still running after 5 s"));
        assert_eq!(status.code(), Some(0), "{signal}");
    }
}

/// A signal while the first version of the pods is still being read (here a pipe no one writes
/// to, as a hung network filesystem would hold the read) stops roster at once: nothing is
/// served yet, so there is nothing to drain.
#[test]
fn a_signal_during_the_first_read_stops_roster_at_once() {
    let dir = dir_with(MINIMAL, None);
    let fifo = dir.join("pods.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = serve_in(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still reading");
    // SAFETY: the pid is this test's own child, not yet waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut log);
    let status = status.unwrap_or_else(|| panic!("still running 5 s after SIGTERM\n{log}"));
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopped before serving"), "{log}");
    assert!(!log.contains("listening for DNS"), "{log}");
}

/// `timeout`, and anything else that signals a process and its group, delivers one SIGTERM
/// twice within microseconds: that is one request to stop, drained as one. A second signal
/// later, during the drain, still ends roster at once.
#[test]
fn a_signal_delivered_twice_is_one_shutdown_and_a_later_second_one_is_immediate() {
    let args = ["--admin-listen", "127.0.0.1:0"];
    let mut r = Roster::start_with("", &world(), &args);
    // SAFETY: the pid is this test's own running child.
    unsafe { libc::kill(r.pid() as libc::pid_t, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(10));
    let (status, _) = r
        .signal("-TERM", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running\n{}", r.log()));
    assert_eq!(status.code(), Some(0), "{}", r.log());
    assert!(!r.log().contains("second signal"), "{}", r.log());
    assert!(
        r.log().contains("stopped"),
        "drained and stopped\n{}",
        r.log()
    );

    let mut r = Roster::start_with("", &world(), &args);
    r.send("-TERM");
    // Inside the one-second drain.
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = r
        .signal("-INT", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running\n{}", r.log()));
    assert_eq!(status.code(), Some(1), "{}", r.log());
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(r.log().contains("second signal"), "{}", r.log());
}

#[test]
fn sighup_keeps_roster_serving_and_names_what_needs_a_restart() {
    let mut r = Roster::start(&world());
    let db0 = query("db-0.db.prod.roster.internal.", RecordType::A);
    let ttl = |r: &Roster| udp(r.addr, &db0).0.answers[0].ttl;
    r.send("-HUP");
    r.wait_log("SIGHUP: configuration unchanged", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", r.log()));

    // An edited configuration is not applied, and the log says which keys wait for a restart.
    let config = r.dir.join("roster.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[dns]\n", "[dns]\nttl = 30\n")).unwrap();
    r.send("-HUP");
    let line = r
        .wait_log("restart roster to apply it", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", r.log()));
    assert!(line.contains("dns.ttl"), "names the key: {line}");
    assert_eq!(ttl(&r), 5, "the running configuration stays");

    // A configuration that no longer loads is reported, not applied.
    std::fs::write(&config, "[dns\n").unwrap();
    r.send("-HUP");
    r.wait_log("configuration file does not load", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", r.log()));
    assert_eq!(ttl(&r), 5);

    let (status, _) = r
        .signal("-TERM", Duration::from_secs(5))
        .expect("still running after three SIGHUPs, and stops at SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn repeated_listen_and_zone_flags_and_pods_file_override() {
    let other = temp_dir();
    std::fs::write(other.join("elsewhere.yaml"), db_pod(0, "10.9.0.1", true)).unwrap();
    let (p1, p2) = (free_port(), free_port());
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let pods_file = other.join("elsewhere.yaml");
    let _roster = Roster::start_with(
        MINIMAL,
        &world(),
        &[
            "--listen",
            &a1,
            "--listen",
            &a2,
            "--zone",
            "First.Example",
            "--zone",
            "second.example.",
            "--pods-file",
            pods_file.to_str().unwrap(),
        ],
    );
    for addr in [&a1, &a2] {
        let addr = addr.parse().unwrap();
        for zone in ["first.example.", "SECOND.example."] {
            for (t, m) in both(addr, &query(&format!("db-0.db.prod.{zone}"), RecordType::A)) {
                assert_eq!(a_records(&m), ["10.9.0.1"], "{addr} {t} {zone}");
            }
        }
        let (m, _) = udp(addr, &query("db-0.db.prod.roster.internal.", RecordType::A));
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "the file's zone was replaced"
        );
    }
    let _ = std::fs::remove_dir_all(other);
}

#[test]
fn the_serial_does_not_go_back_across_restarts() {
    let serial = |r: &Roster| match &udp(r.addr, &query(ZONE, RecordType::SOA)).0.answers[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("{other:?}"),
    };
    let mut first = Roster::start(&world());
    let before = serial(&first);
    // Several changes in quick succession push the serial along.
    for i in 0..5 {
        first.write_pods(&world().replace("10.1.0.1", &format!("10.1.4.{i}")));
        let want = format!("10.1.4.{i}");
        first.eventually(Duration::from_secs(2), || {
            first.a("db-0.db.prod.roster.internal.") == [want.clone()]
        });
    }
    let last = serial(&first);
    assert!(last.wrapping_sub(before) < 1 << 31 && last != before);
    first.terminate(Duration::from_secs(5)).expect("stops");
    let second = Roster::start(&world());
    let after = serial(&second);
    assert!(
        after != last && after.wrapping_sub(last) < 1 << 31,
        "{after} after {last} (RFC 1982)"
    );
}

#[test]
fn a_closed_log_stream_stops_neither_serving_nor_shutdown() {
    use std::io::{BufRead, BufReader};
    let dir = dir_with(MINIMAL, Some(&world()));
    let child = serve_in(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr: std::net::SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("addr=").nth(1).map(|a| a.trim().parse().unwrap()))
        .expect("a listening line");
    drop(lines); // the log collector goes away
    // The listening line may come before the first load: wait for the answer, then ask again.
    let answer = || a_records(&udp(addr, &query("db-0.db.prod.roster.internal.", RecordType::A)).0);
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        answer() == ["10.1.0.1"]
    });
    assert!(ready, "roster answers although it cannot log");
    assert_eq!(answer(), ["10.1.0.1"]);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exits cleanly although it cannot log"
    );
}

#[test]
fn a_tcp_query_in_flight_at_shutdown_is_answered() {
    use std::io::{Read, Write};
    let mut r = Roster::start(&world());
    let q = query("db-0.db.prod.roster.internal.", RecordType::A)
        .to_vec()
        .unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let mut stream = std::net::TcpStream::connect(r.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Half a query, then SIGTERM, then the rest.
    stream.write_all(&framed[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = r.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&framed[10..]).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("the answer arrives");
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut answer).unwrap();
    let m = hickory_server::proto::op::Message::from_vec(&answer).unwrap();
    assert_eq!(a_records(&m), ["10.1.0.1"]);
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).unwrap(),
        0,
        "then the connection closes"
    );
    let (status, _) = r.signal("-0", Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
}
