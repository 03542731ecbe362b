//! Response rate limiting: a burst from one /24 gets its rate of full answers, then one empty
//! truncated answer in `slip` and silence for the rest; other prefixes are answered in full while
//! a flood goes on; exempt sources are answered in full while the rest of their prefix is
//! limited; TCP is never limited, and dig, slipped, retries over TCP and gets its answer.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::RecordType;

const DB0: &str = "db-0.db.prod.roster.internal.";

fn start(rate: u32, slip: u32) -> Roster {
    Roster::start_with(
        &format!("[dns]\nrate_limit = {rate}\nrate_limit_slip = {slip}\n"),
        &world(),
        &["--admin-listen", "127.0.0.1:0"],
    )
}

fn query_bytes(id: u16) -> Vec<u8> {
    let mut m = query(DB0, RecordType::A);
    m.metadata.id = id;
    m.to_vec().unwrap()
}

/// Floods `addr` from `from` until `stop`, not reading the answers.
fn flood(addr: SocketAddr, from: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sent = 0u64;
        while !stop.load(Relaxed) && Instant::now() < deadline {
            let _ = socket.send_to(&query_bytes(sent as u16), addr);
            sent += 1;
            if sent % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        sent
    })
}

#[test]
fn a_burst_gets_its_rate_then_one_slip_in_two_and_silence() {
    let r = start(50, 2);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let burst = 400u16;
    // Right after a second begins, so that the burst falls within one counting second, most of
    // the time; the assertions allow for two.
    for id in 0..burst {
        socket.send_to(&query_bytes(id), r.addr).unwrap();
    }
    let (mut full, mut slipped) = (0u32, 0u32);
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty() && m.additionals.is_empty(), "{m:?}");
            assert_eq!(m.queries.len(), 1, "the question is kept");
            slipped += 1;
        } else {
            assert_eq!(a_records(&m), ["10.1.0.1"]);
            full += 1;
        }
    }
    let limited = u32::from(burst) - full;
    assert!((50..=100).contains(&full), "full answers: {full}");
    assert!(
        slipped.abs_diff(limited / 2) <= 2,
        "{slipped} slipped of {limited} limited"
    );
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    let dropped = metric(&text, "roster_dns_rate_limited_total{action=\"dropped\"}");
    let slips = metric(&text, "roster_dns_rate_limited_total{action=\"slipped\"}");
    assert_eq!(slips, f64::from(slipped));
    assert_eq!(dropped + slips, f64::from(limited));
    assert!(
        r.log().contains("rate limiting UDP responses"),
        "{}",
        r.log()
    );
}

#[test]
fn a_flood_from_one_prefix_does_not_starve_another() {
    let r = start(100, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(r.addr, "127.0.0.1", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    // Another /24 of the loopback network.
    let other = UdpSocket::bind("127.0.1.1:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for id in 0..50u16 {
        other.send_to(&query_bytes(id), r.addr).unwrap();
        let (n, _) = other
            .recv_from(&mut buf)
            .expect("answered during the flood");
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert!(!m.metadata.truncation, "not limited");
        assert_eq!(a_records(&m), ["10.1.0.1"]);
        std::thread::sleep(Duration::from_millis(5));
    }
    // TCP from the flooding prefix is answered in full.
    assert_eq!(
        a_records(&tcp(r.addr, &query(DB0, RecordType::A)).0),
        ["10.1.0.1"]
    );
    stop.store(true, Relaxed);
    let sent = flooder.join().unwrap();
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    let limited = metric(&text, "roster_dns_rate_limited_total{action=\"dropped\"}")
        + metric(&text, "roster_dns_rate_limited_total{action=\"slipped\"}");
    assert!(sent > 1000, "the flood sent {sent}");
    assert!(limited > (sent / 2) as f64, "{limited} of {sent} limited");
}

#[test]
fn dig_retries_a_slipped_answer_over_tcp() {
    let r = start(5, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(r.addr, "127.0.0.1", stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let out = dig(r.addr, &["+tries=1", "+time=2", DB0, "A"]);
    stop.store(true, Relaxed);
    flooder.join().unwrap();
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("10.1.0.1"), "{out}");
}

#[test]
fn exempt_sources_are_answered_in_full_while_their_prefix_is_limited() {
    let r = Roster::start_with(
        "[dns]\nrate_limit = 20\nrate_limit_slip = 0\nrate_limit_exempt = [\"127.0.0.2\", \"fd00::/8\"]\n",
        &world(),
        &[],
    );
    let mut buf = [0u8; 1500];
    // Answers read after every 50 queries, so that none is lost to the client's buffer.
    let mut burst = |from: &str, queries: u16| {
        let socket = UdpSocket::bind((from, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut full = 0;
        for round in 0..queries / 50 {
            for id in 0..50 {
                socket
                    .send_to(&query_bytes(round * 50 + id), r.addr)
                    .unwrap();
            }
            while let Ok((n, _)) = socket.recv_from(&mut buf) {
                let m = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(a_records(&m), ["10.1.0.1"], "{from}");
                full += 1;
            }
        }
        full
    };
    assert_eq!(
        burst("127.0.0.2", 300),
        300,
        "an exempt source is never limited"
    );
    let neighbour = burst("127.0.0.3", 200);
    assert!(
        (20..=40).contains(&neighbour),
        "the rest of the /24 keeps its rate: {neighbour} answered"
    );
    // check-config shows the blocks as roster reads them.
    let (code, out, _) = run(&r.dir, &["check-config", "--config", "roster.toml"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("rate_limit_exempt = [\"127.0.0.2/32\", \"fd00::/8\"]"),
        "{out}"
    );
}
