//! `roster peers` against a running roster: every output format, waiting for members, and
//! clear failures.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn peers(r: &Roster, args: &[&str]) -> (i32, String, String) {
    let server = r.addr.to_string();
    let mut all = vec!["peers", "--server", &server];
    all.extend(args);
    run(&r.dir, &all)
}

#[test]
fn every_format() {
    let r = Roster::start(&world());
    let (code, out, err) = peers(&r, &["_peer._tcp.db.prod.roster.internal"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "db-0.db.prod.roster.internal 7000\ndb-1.db.prod.roster.internal 7000\n"
    );

    let (_, out, _) = peers(
        &r,
        &[
            "db.prod.roster.internal",
            "--format",
            "etcd",
            "--scheme",
            "https",
        ],
    );
    assert_eq!(
        out,
        "db-0=https://db-0.db.prod.roster.internal:5432,db-1=https://db-1.db.prod.roster.internal:5432\n"
    );

    let (_, out, _) = peers(
        &r,
        &[
            "_peer._tcp.db.prod.roster.internal",
            "--format",
            "zookeeper",
        ],
    );
    assert_eq!(
        out,
        "server.1=db-0.db.prod.roster.internal:2888:3888\nserver.2=db-1.db.prod.roster.internal:2888:3888\n"
    );

    let (_, out, _) = peers(
        &r,
        &["_peer._tcp.db.prod.roster.internal", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "db-0");
    assert_eq!(v[0]["port"], 7000);
    assert_eq!(v[0]["ordinal"], 0);
    assert_eq!(
        v[0]["addresses"],
        serde_json::json!(["10.1.0.1", "fd00::1"]),
        "from the additional section"
    );
}

#[test]
fn waiting_for_members() {
    let r = Roster::start(&world());
    // Two of three are published: a bounded wait fails, and says so.
    let started = Instant::now();
    let (code, out, err) = peers(
        &r,
        &[
            "db.prod.roster.internal",
            "--wait-for",
            "3",
            "--timeout",
            "1s",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("2 of 3 members of db.prod.roster.internal after "),
        "{err}"
    );
    // The time waited, in tenths of a second, not to the nanosecond.
    let waited = err.split(" after ").nth(1).and_then(|r| r.split_once("s;"));
    assert!(
        waited.is_some_and(|(t, _)| t.split_once('.').is_some_and(|(_, f)| f.len() == 1)),
        "{err}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1) && started.elapsed() < Duration::from_secs(5)
    );

    // db-2 becomes ready while peers waits.
    let server = r.addr.to_string();
    let waiter = std::process::Command::new(bin())
        .args([
            "peers",
            "--server",
            &server,
            "db.prod.roster.internal",
            "--wait-for",
            "3",
            "--timeout",
            "20s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    r.write_pods(&world().replace("status: \"False\"", "status: \"True\""));
    // Bounded by its own --timeout.
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn failures_are_clear() {
    let r = Roster::start(&world());
    let (code, _, err) = peers(&r, &["nope.prod.roster.internal"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope.prod.roster.internal: NXDOMAIN"), "{err}");
    // A service whose name exists but has no SRV records: an empty list, not an error.
    let (code, out, _) = peers(&r, &["_gossip._udp.db.prod.roster.internal"]);
    assert_eq!((code, out.lines().count()), (0, 2));
    let (code, _, err) = run(
        &r.dir,
        &[
            "peers",
            "--server",
            "127.0.0.1:1",
            "db.prod.roster.internal",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (code, _, _) = peers(&r, &["db.prod.roster.internal", "--timeout", "soon"]);
    assert_eq!(code, 2, "bad usage");
}

/// A service too large for one DNS message (64 KiB: about 1,250 SRV records) is cut even over
/// TCP. A list of the lowest ordinals, printed as if it were the service, would configure a
/// cluster with members missing: peers says so and fails instead.
#[test]
fn a_list_cut_even_over_tcp_is_an_error_not_a_short_list() {
    let pods: String = (0..1500)
        .map(|i| {
            format!(
                "---\nmetadata:\n  name: big-{i}\n  namespace: prod\n  labels: {{roster.io/service: big}}\n\
                 spec:\n  containers: [{{name: c, ports: [{{containerPort: 9000}}]}}]\n\
                 status:\n  podIP: 10.9.{}.{}\n  conditions: [{{type: Ready, status: \"True\"}}]\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let r = Roster::start(&pods);
    let (code, out, err) = peers(&r, &["big.prod.roster.internal"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.is_empty(),
        "no partial list: {} lines",
        out.lines().count()
    );
    assert!(
        err.contains("big.prod.roster.internal") && err.contains("cut"),
        "{err}"
    );
    // Waiting does not help: it fails at once.
    let started = Instant::now();
    let (code, _, _) = peers(&r, &["big.prod.roster.internal", "--wait-for", "1500"]);
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
}
