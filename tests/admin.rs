//! The admin listener: health, readiness, Prometheus metrics and /members, `roster status`,
//! JSON logs, and the shutdown order (readiness first, then DNS).

mod common;

use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, pod};
use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{RData, RecordType};

fn with_admin(pods: &str) -> Roster {
    Roster::start_with("", pods, &["--admin-listen", "127.0.0.1:0"])
}

fn scrape(r: &Roster) -> String {
    let (status, body) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

const A_UDP_OK: &str = "roster_dns_queries_total{qtype=\"a\",rcode=\"noerror\",transport=\"udp\"}";
const A_UDP_NX: &str = "roster_dns_queries_total{qtype=\"a\",rcode=\"nxdomain\",transport=\"udp\"}";
const AAAA_TCP_OK: &str =
    "roster_dns_queries_total{qtype=\"aaaa\",rcode=\"noerror\",transport=\"tcp\"}";

#[test]
fn health_and_readiness() {
    let r = with_admin(&world());
    let admin = r.admin.unwrap();
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(admin, "/readyz"), (200, "ready\n".into()));
    assert_eq!(http_get(admin, "/nope").0, 404);
    let m = scrape(&r);
    assert_eq!(metric(&m, "roster_ready"), 1.0);
    assert!(
        m.contains(&format!(
            "roster_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    // The Prometheus text format unless OpenMetrics is asked for, as Prometheus asks.
    assert!(m.contains("# TYPE roster_build_info gauge\n"), "{m}");
    assert!(!m.contains("# EOF"), "{m}");
    let (status, head, om) = http_get_with(
        admin,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.contains("# TYPE roster_build info\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    let samples = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(samples(&m), samples(&om), "the same series in both");
}

#[test]
fn query_metrics_count_what_was_asked() {
    let mut pods = world();
    for i in 0..60 {
        pods.push_str(&format!(
            "---\nmetadata:\n  name: m-{i}\n  namespace: big\n  labels: {{roster.io/service: m}}\nstatus:\n  conditions: [{{type: Ready, status: \"True\"}}]\n  podIP: 10.3.0.{}\n",
            i + 1
        ));
    }
    let r = with_admin(&pods);
    let before = scrape(&r);
    for _ in 0..3 {
        udp(
            r.addr,
            &query("db-0.db.prod.roster.internal.", RecordType::A),
        );
    }
    for _ in 0..2 {
        udp(
            r.addr,
            &query("nope.db.prod.roster.internal.", RecordType::A),
        );
    }
    tcp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::AAAA),
    );
    let (m, _) = udp(r.addr, &query("m.big.roster.internal.", RecordType::A));
    assert!(m.metadata.truncation);
    udp_raw(
        r.addr,
        &[0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'x'],
        Duration::from_secs(2),
    )
    .unwrap();
    udp_raw(r.addr, &[1, 2, 3], Duration::from_millis(200));
    let after = scrape(&r);
    let delta = |sample: &str| metric(&after, sample) - metric(&before, sample);
    assert_eq!(delta(A_UDP_OK), 4.0, "3 members and the big service");
    assert_eq!(delta(A_UDP_NX), 2.0);
    assert_eq!(delta(AAAA_TCP_OK), 1.0);
    assert_eq!(delta("roster_dns_truncated_total{transport=\"udp\"}"), 1.0);
    assert_eq!(delta("roster_dns_malformed_total{transport=\"udp\"}"), 2.0);
    assert_eq!(
        delta("roster_dns_queries_total{qtype=\"other\",rcode=\"formerr\",transport=\"udp\"}"),
        1.0,
        "the FORMERR is an answer too"
    );
    // 3 + 2 + 1 truncated + 1 FORMERR; the AAAA went over TCP.
    assert_eq!(
        delta("roster_dns_answer_duration_seconds_count{transport=\"udp\"}"),
        7.0
    );
    let inf = "roster_dns_answer_duration_seconds_bucket{le=\"+Inf\",transport=\"udp\"}";
    assert_eq!(delta(inf), 7.0, "+Inf counts every observation");
}

#[test]
fn zone_and_source_metrics_follow_pod_changes() {
    let r = with_admin(&world());
    let before = scrape(&r);
    assert_eq!(metric(&before, "roster_members{state=\"published\"}"), 2.0);
    assert_eq!(metric(&before, "roster_members{state=\"not_ready\"}"), 1.0);
    assert_eq!(metric(&before, "roster_services"), 1.0);
    assert!(metric(&before, "roster_source_last_sync_timestamp_seconds") > 1.7e9);
    let serial = |r: &Roster| match &udp(r.addr, &query(ZONE, RecordType::SOA)).0.answers[0].data {
        RData::SOA(soa) => soa.serial as f64,
        other => panic!("{other:?}"),
    };
    assert_eq!(metric(&before, "roster_zone_serial"), serial(&r));

    // db-2 becomes ready; a pod without an ordinal and a conflicting claimant appear.
    let mut pods = world().replace("status: \"False\"", "status: \"True\"");
    pods.push_str(
        "---\nmetadata:\n  name: db-x\n  namespace: prod\n  labels: {roster.io/service: db}\n",
    );
    pods.push_str(
        "---\nmetadata:\n  name: other\n  namespace: prod\n  creationTimestamp: \"2030-01-01T00:00:00Z\"\n  labels: {roster.io/service: db, roster.io/name: db, roster.io/ordinal: \"0\"}\nstatus:\n  podIP: 10.1.9.9\n",
    );
    r.write_pods(&pods);
    let done = r.eventually(Duration::from_secs(3), || {
        r.a("db-2.db.prod.roster.internal.") == ["10.1.0.3"]
    });
    assert!(done.is_some());
    let after = scrape(&r);
    let delta = |sample: &str| metric(&after, sample) - metric(&before, sample);
    assert_eq!(metric(&after, "roster_members{state=\"published\"}"), 3.0);
    assert_eq!(metric(&after, "roster_members{state=\"not_ready\"}"), 0.0);
    assert_eq!(
        metric(&after, "roster_skipped_pods{reason=\"no_ordinal\"}"),
        1.0
    );
    assert_eq!(metric(&after, "roster_conflicting_names"), 1.0);
    assert_eq!(delta("roster_conflicts_total"), 1.0);
    // Only the documents that changed reach the pipeline: db-2's and the two new ones.
    assert_eq!(delta("roster_source_events_total{kind=\"apply\"}"), 3.0);
    assert_eq!(delta("roster_source_events_total{kind=\"init_done\"}"), 0.0);
    assert_eq!(delta("roster_source_reloads_total"), 1.0);
    assert!(delta("roster_programming_latency_seconds_count") >= 1.0);
    assert_eq!(metric(&after, "roster_zone_serial"), serial(&r));
    assert!(metric(&after, "roster_zone_serial") != metric(&before, "roster_zone_serial"));

    // A broken file: counted as a source error.
    r.write_pods("{ not json");
    assert!(
        r.wait_log("pods file reload failed", Duration::from_secs(3))
            .is_some()
    );
    assert_eq!(metric(&scrape(&r), "roster_source_errors_total"), 1.0);
}

/// A pods file that does not change is one roster is in step with: each poll that finds it
/// unchanged is a sync, so an alert on the last sync does not fire for a quiet file. While the
/// file does not parse, the last sync stays where it was.
#[test]
fn an_unchanged_pods_file_keeps_the_last_sync_recent() {
    let r = with_admin(&world());
    let synced = || last_sync(r.admin.unwrap());
    let loaded = synced();
    std::thread::sleep(Duration::from_millis(2500));
    let quiet = synced();
    // Whole seconds: 2.5 s later it has moved by 2 or 3.
    assert!(quiet >= loaded + 2.0, "{loaded} then {quiet}");
    assert!(quiet <= unix_now() + 0.5);

    r.write_pods("{ not json");
    assert!(
        r.wait_log("pods file reload failed", Duration::from_secs(3))
            .is_some()
    );
    let broken = unix_now();
    std::thread::sleep(Duration::from_millis(1500));
    let failing = synced();
    assert!(
        failing <= broken,
        "{failing} is after the file broke at {broken}"
    );
}

/// roster_programming_latency_seconds counts from when a change reached roster, not from when
/// it had been read: a file replaced by a rename lands at once, one written in place only once
/// a poll (every 100 ms) finds its stamp settled.
#[test]
fn programming_latency_counts_from_the_change_reaching_roster() {
    let r = with_admin(&world());
    const FAST: &str = "roster_programming_latency_seconds_bucket{le=\"0.05\"}";
    const SLOW: &str = "roster_programming_latency_seconds_bucket{le=\"0.5\"}";
    let db0 = |ip: &str| {
        r.eventually(Duration::from_secs(5), || {
            r.a("db-0.db.prod.roster.internal.") == [ip]
        })
        .is_some()
    };
    let before = scrape(&r);
    r.write_pods(&world().replace("10.1.0.1", "10.1.0.101"));
    assert!(db0("10.1.0.101"));
    let renamed = scrape(&r);
    assert_eq!(
        metric(&renamed, FAST) - metric(&before, FAST),
        1.0,
        "a renamed version within 50 ms:\n{renamed}"
    );
    std::fs::write(r.pods_path(), world().replace("10.1.0.1", "10.1.0.102")).unwrap();
    assert!(db0("10.1.0.102"));
    let in_place = scrape(&r);
    assert_eq!(
        metric(&in_place, FAST),
        metric(&renamed, FAST),
        "a version written in place waits a poll, and the metric says so:\n{in_place}"
    );
    assert_eq!(metric(&in_place, SLOW) - metric(&renamed, SLOW), 1.0);
}

#[test]
fn members_endpoint_and_roster_status() {
    let mut pods = world();
    pods.push_str(
        "---\nmetadata:\n  name: db-x\n  namespace: prod\n  labels: {roster.io/service: db}\n",
    );
    pods.push_str(
        "---\nmetadata:\n  name: other\n  namespace: prod\n  creationTimestamp: \"2030-01-01T00:00:00Z\"\n  labels: {roster.io/service: db, roster.io/name: db, roster.io/ordinal: \"1\"}\nstatus:\n  podIP: 10.1.9.9\n",
    );
    let r = with_admin(&pods);
    let (status, body) = http_get(r.admin.unwrap(), "/members");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    let members = &v["services"][0]["members"];
    assert_eq!(
        (
            v["services"][0]["namespace"].as_str(),
            v["services"][0]["service"].as_str()
        ),
        (Some("prod"), Some("db"))
    );
    assert_eq!(members[0]["name"], "db-0");
    assert_eq!(
        members[0]["addresses"],
        serde_json::json!(["10.1.0.1", "fd00::1"])
    );
    assert_eq!(members[0]["port"], 5432);
    assert_eq!(members[1]["contenders"], serde_json::json!(["other"]));
    assert_eq!(members[2]["published"], false);
    assert_eq!(members[2]["reason"], "not_ready");
    assert_eq!(
        members[2]["addresses"],
        serde_json::json!(["10.1.0.3"]),
        "unpublished addresses shown"
    );
    assert_eq!(v["skipped"][0]["pod"], "prod/db-x");
    assert_eq!(v["skipped"][0]["reason"], "no_ordinal");
    // The start-up log counts the same pods as /members: each name's holder and contenders,
    // and the skipped; not the pods that are no member of anything.
    let claiming: usize = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["members"].as_array().unwrap())
        .map(|m| 1 + m["contenders"].as_array().map_or(0, Vec::len))
        .sum();
    let counted = format!("member_pods={claiming} skipped_pods=1 ");
    assert!(r.log().contains(&counted), "{counted}\n{}", r.log());

    let admin = r.admin.unwrap().to_string();
    let (code, out, err) = run(&r.dir, &["status", "--admin", &admin]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("roster: ready, serial "), "{out}");
    // The file was read moments ago: its age in seconds, on the first line.
    let first = out.lines().next().unwrap();
    assert!(
        first.contains(", last sync ") && first.ends_with(" s ago"),
        "{out}"
    );
    assert!(out.contains("also claimed by other"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("db-2") && l.contains("not ready")),
        "{out}"
    );
    assert!(out.contains("prod/db-x  no_ordinal"), "{out}");
    let (code, _, err) = run(&r.dir, &["status", "--admin", "127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("--admin-listen"), "{err}");
}

/// A client that connects to the admin port and sends nothing (a scanner, a half-open probe)
/// is cut off, as is a kept-alive connection left idle: neither holds a descriptor for ever.
#[test]
fn idle_admin_connections_are_closed() {
    use std::io::{Read, Write};
    let r = with_admin(&world());
    let admin = r.admin.unwrap();
    let mut silent = std::net::TcpStream::connect(admin).unwrap();
    let mut kept = std::net::TcpStream::connect(admin).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    for (what, stream) in [("silent", &mut silent), ("kept alive", &mut kept)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{what}: still open after {:?}: {e}", started.elapsed()),
            }
        }
        if what == "kept alive" {
            let text = String::from_utf8_lossy(&seen);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The admin listener still serves.
    let (status, _) = http_get(admin, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn readiness_drops_before_dns_stops() {
    let mut r = with_admin(&world());
    let admin = r.admin.unwrap();
    let dns = r.addr;
    let pid = r.pid().to_string();
    let started = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let mut saw = None;
    while started.elapsed() < Duration::from_millis(800) {
        let (status, body) = http_get(admin, "/readyz");
        if status == 503 {
            saw = Some(body);
            break;
        }
    }
    assert_eq!(saw.as_deref(), Some("not ready: shutting down\n"));
    let (m, _) = udp(dns, &query("db-0.db.prod.roster.internal.", RecordType::A));
    assert_eq!(
        a_records(&m),
        ["10.1.0.1"],
        "still answering while not ready"
    );
    let exited = r
        .signal("-0", Duration::from_secs(5))
        .expect("exits within 5 s");
    assert_eq!(exited.0.code(), Some(0));
}

#[test]
fn not_ready_until_the_first_list() {
    let api = FakeApi::start();
    api.apply(pod("prod", "db-0", "db", "10.0.0.1", true));
    api.fail_lists(Some(500), None);
    let dir = temp_dir();
    let kubeconfig = api.kubeconfig(&dir);
    let config = format!(
        "[source]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        kubeconfig.display()
    );
    std::fs::write(dir.join("roster.toml"), &config).unwrap();
    let r = Roster::start_unready(&config);
    let line = r
        .wait_log("admin listening", Duration::from_secs(5))
        .unwrap();
    let admin: std::net::SocketAddr = line.rsplit("addr=").next().unwrap().trim().parse().unwrap();
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "not ready: the source has not delivered a complete list yet\n"
        )
    );
    assert_eq!(metric(&http_get(admin, "/metrics").1, "roster_ready"), 0.0);
    assert!(r.wait_log("answered 500", Duration::from_secs(5)).is_some());
    assert!(metric(&http_get(admin, "/metrics").1, "roster_source_errors_total") >= 1.0);
    api.fail_lists(None, None);
    let ready = r.eventually(Duration::from_secs(15), || {
        http_get(admin, "/readyz").0 == 200
    });
    assert!(ready.is_some(), "{}", r.log());
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn json_logs() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("roster.toml"),
        "[source]\npods_file = \"pods.yaml\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("pods.yaml"), world()).unwrap();
    let child = serve_in(&dir)
        .args(["--log-format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().take(3) {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["level"], "INFO", "{line}");
        seen.push(v);
    }
    assert!(
        seen.iter()
            .any(|v| v["message"] == "listening for DNS on UDP and TCP" && v["addr"].is_string()),
        "{seen:?}"
    );
}
