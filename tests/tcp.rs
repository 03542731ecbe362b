//! TCP under clients that misbehave or never leave: pipelined queries are all answered in order;
//! a connection closes when idle, at the end of its lifetime and after its query budget; at the
//! connection limit the stalest connection makes way; and clients that open connections and
//! dribble bytes (slowloris) never keep a working client from being answered.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::RecordType;

fn start(limits: &str) -> Roster {
    Roster::start_with(
        &format!("[dns]\n{limits}\n"),
        &world(),
        &["--admin-listen", "127.0.0.1:0"],
    )
}

fn framed(qname: &str, id: u16) -> Vec<u8> {
    let mut m = query(qname, RecordType::A);
    m.metadata.id = id;
    let bytes = m.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One framed reply, or `None` when the server closed the connection.
fn read_reply(s: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if e.kind() == ErrorKind::UnexpectedEof || e.kind() == ErrorKind::ConnectionReset =>
        {
            return None;
        }
        Err(e) => panic!("reading a reply: {e}"),
    }
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Some(Message::from_vec(&buf).unwrap())
}

/// Whether the server has closed `s` (end of stream), waiting at most `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn closed_metric(r: &Roster, reason: &str) -> f64 {
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    metric(
        &text,
        &format!("roster_dns_tcp_closed_total{{reason=\"{reason}\"}}"),
    )
}

const DB0: &str = "db-0.db.prod.roster.internal.";
const DB1: &str = "db-1.db.prod.roster.internal.";

#[test]
fn pipelined_queries_are_all_answered_in_order() {
    let r = start("");
    let mut s = connect(r.addr);
    let mut burst = Vec::new();
    for id in 0..50u16 {
        burst.extend(framed(if id % 2 == 0 { DB0 } else { DB1 }, id));
    }
    s.write_all(&burst).unwrap();
    for id in 0..50u16 {
        let reply = read_reply(&mut s).expect("a reply for every pipelined query");
        assert_eq!(reply.metadata.id, id);
        let expected = if id % 2 == 0 { "10.1.0.1" } else { "10.1.0.2" };
        assert_eq!(a_records(&reply), vec![expected.to_owned()], "query {id}");
    }
}

/// By default a busy connection is not closed for its number of queries, so a client that
/// pipelines (a forwarding resolver, a load tester) loses nothing.
#[test]
fn by_default_a_connection_answers_every_pipelined_query() {
    let r = start("");
    let mut s = connect(r.addr);
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for chunk in 0..30u16 {
                let burst: Vec<u8> = (0..100u16)
                    .flat_map(|i| framed(DB0, chunk * 100 + i))
                    .collect();
                s.write_all(&burst).unwrap();
            }
        })
    };
    for id in 0..3000u16 {
        let reply = read_reply(&mut s).unwrap_or_else(|| panic!("closed before answer {id}"));
        assert_eq!(reply.metadata.id, id);
    }
    writer.join().unwrap();
    assert_eq!(closed_metric(&r, "queries"), 0.0);
}

#[test]
fn a_connection_closes_after_its_query_budget() {
    let r = start("tcp_max_queries = 3");
    let mut s = connect(r.addr);
    let mut burst = Vec::new();
    for id in 0..5u16 {
        burst.extend(framed(DB0, id));
    }
    s.write_all(&burst).unwrap();
    for id in 0..3u16 {
        assert_eq!(read_reply(&mut s).map(|m| m.metadata.id), Some(id));
    }
    assert!(read_reply(&mut s).is_none(), "closed after 3 answers");
    assert_eq!(closed_metric(&r, "queries"), 1.0);
    // A new connection gets a new budget.
    assert_eq!(
        a_records(&tcp(r.addr, &query(DB0, RecordType::A)).0),
        ["10.1.0.1"]
    );
}

#[test]
fn an_idle_connection_closes() {
    let r = start("tcp_idle_timeout = 1");
    let mut s = connect(r.addr);
    s.write_all(&framed(DB0, 1)).unwrap();
    assert!(read_reply(&mut s).is_some());
    let started = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(4)),
        "idle connection closed"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "not before the idle timeout: {took:?}"
    );
    assert_eq!(closed_metric(&r, "idle"), 1.0);
}

#[test]
fn a_query_dribbled_byte_by_byte_is_cut_at_the_idle_timeout() {
    let r = start("tcp_idle_timeout = 1");
    let mut s = connect(r.addr);
    let query = framed(DB0, 7);
    let started = Instant::now();
    // One byte every 300 ms: each read moves, but the query is not complete within a second.
    let mut closed = false;
    for byte in &query {
        if s.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        closed || closed_within(&mut s, Duration::from_secs(2)),
        "slow query cut"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(closed_metric(&r, "idle"), 1.0);
}

#[test]
fn a_busy_connection_closes_at_the_end_of_its_lifetime() {
    let r = start("tcp_lifetime = 1");
    let mut s = connect(r.addr);
    let started = Instant::now();
    let mut answered = 0;
    let mut id = 0u16;
    // Keep it busy: a query every 100 ms, well within the idle timeout.
    while started.elapsed() < Duration::from_secs(4) {
        id += 1;
        if s.write_all(&framed(DB0, id)).is_err() {
            break;
        }
        match read_reply(&mut s) {
            Some(_) => answered += 1,
            None => break,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after about a second, not {took:?}"
    );
    assert!(answered >= 5, "answered until then: {answered}");
    assert_eq!(closed_metric(&r, "lifetime"), 1.0);
}

#[test]
fn at_the_connection_limit_the_stalest_connection_makes_way() {
    let r = start("tcp_max_connections = 3");
    // Two connections that answered a query recently, one that never sent anything.
    let mut stalled = connect(r.addr);
    std::thread::sleep(Duration::from_millis(50));
    let mut working: Vec<TcpStream> = (0..2).map(|_| connect(r.addr)).collect();
    for (i, s) in working.iter_mut().enumerate() {
        s.write_all(&framed(DB0, i as u16)).unwrap();
        assert!(read_reply(s).is_some());
    }
    // A fourth connection: the stalled one is closed, the new one is answered.
    let mut fourth = connect(r.addr);
    fourth.write_all(&framed(DB1, 9)).unwrap();
    assert_eq!(a_records(&read_reply(&mut fourth).unwrap()), ["10.1.0.2"]);
    assert!(
        closed_within(&mut stalled, Duration::from_secs(2)),
        "stalled one evicted"
    );
    for (i, s) in working.iter_mut().enumerate() {
        s.write_all(&framed(DB0, 10 + i as u16)).unwrap();
        assert!(
            read_reply(s).is_some(),
            "working connection {i} still served"
        );
    }
    assert_eq!(closed_metric(&r, "evicted"), 1.0);
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(metric(&text, "roster_dns_tcp_connections"), 3.0);
    assert!(
        r.log().contains("TCP connection limit reached"),
        "{}",
        r.log()
    );
}

#[test]
fn slowloris_clients_never_keep_a_working_client_waiting() {
    let r = start("tcp_max_connections = 8\ntcp_idle_timeout = 5");
    let addr = r.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Attackers: keep opening connections, announce a 65,535-byte query and send one byte of it
    // every 200 ms.
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut open: Vec<TcpStream> = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    if open.len() < 8
                        && let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    {
                        open.push(s);
                    }
                    open.retain_mut(|s| s.write_all(&[0xff]).is_ok());
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A working client: a new connection and a query every 100 ms, each answered promptly.
    let mut slowest = Duration::ZERO;
    for id in 0..30u16 {
        let started = Instant::now();
        let mut s = connect(addr);
        s.write_all(&framed(DB0, id)).unwrap();
        let reply = read_reply(&mut s).expect("the working client is answered");
        assert_eq!(a_records(&reply), ["10.1.0.1"]);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest answer {slowest:?}"
    );
    assert!(closed_metric(&r, "evicted") > 0.0, "attackers were evicted");
}
