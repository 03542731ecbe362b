//! Queries and answers that roster cannot handle are counted, not silently lost.
//!
//! - A stopped roster (SIGSTOP) while queries keep coming: its receive buffer fills, the kernel
//!   drops the rest, and `roster_dns_udp_receive_dropped_total` says how many.
//! - roster in a network namespace of its own whose only link to the client's namespace is
//!   stalled (a `tbf` queue on the veth pair lets a few answers through, then almost nothing):
//!   answers that cannot be sent within 100 ms are dropped, counted in
//!   `roster_dns_unsent_total` and logged once a minute. Needs root (network namespaces, veth,
//!   tc); the namespaces are removed when the test ends.
//!
//! Both tests account for every query sent.
//!
//! - The receive buffer asked for (`dns.udp_receive_buffer`) is what each UDP socket gets, past
//!   net.core.rmem_max when roster has CAP_NET_ADMIN; without it roster gets the sysctl's cap
//!   and says so at start, naming the sysctl.

mod common;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::RecordType;

/// Two network namespaces joined by a veth pair, removed on drop.
struct Link {
    server: String,
    client: String,
    /// roster's end of the veth pair, where answers queue.
    server_dev: String,
}

const SERVER_IP: &str = "10.203.0.1";
const CLIENT_IP: &str = "10.203.0.2";

/// Runs `ip` (and, through `ip netns exec`, sysctl and tc in a namespace); its output.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Link {
    fn new(rate: &str) -> Link {
        let id = std::process::id();
        let (vs, vc) = (format!("rts{id}"), format!("rtc{id}"));
        let link = Link {
            server: format!("roster-t{id}-s"),
            client: format!("roster-t{id}-c"),
            server_dev: vs.clone(),
        };
        let (s, c) = (link.server.as_str(), link.client.as_str());
        ip(&["netns", "add", s]);
        ip(&["netns", "add", c]);
        // No IPv6 on the link: its neighbour discovery would queue behind the answers.
        for ns in [s, c] {
            let disable = "net.ipv6.conf.default.disable_ipv6=1";
            ip(&["netns", "exec", ns, "sysctl", "-qw", disable]);
        }
        ip(&[
            "link", "add", &vs, "netns", s, "type", "veth", "peer", "name", &vc, "netns", c,
        ]);
        for (ns, dev, addr) in [(s, &vs, SERVER_IP), (c, &vc, CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // Only roster's side is slow: queries arrive at once, answers queue.
        ip(&[
            "netns", "exec", s, "tc", "qdisc", "add", "dev", &vs, "root", "tbf", "rate", rate,
            "burst", "4kb", "limit", "8mb",
        ]);
        link
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn inside<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).expect("namespace file");
            // SAFETY: setns on a descriptor we hold; it moves only this thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn query_bytes(id: u16) -> Vec<u8> {
    let mut m = query("db-0.db.prod.roster.internal.", RecordType::A);
    m.metadata.id = id;
    m.to_vec().unwrap()
}

/// Reads roster's metrics from inside namespace `ns`, where its admin listener is.
fn metrics_in(ns: &str, admin: SocketAddr) -> String {
    Link::inside(ns, move || http_get(admin, "/metrics").1)
}

const HANDLED: &str = "roster_dns_queries_total{qtype=\"a\",rcode=\"noerror\",transport=\"udp\"}";
const RECEIVE_DROPPED: &str = "roster_dns_udp_receive_dropped_total";

/// Packets waiting in the `tc` queue of `dev` in namespace `ns`.
fn queued(ns: &str, dev: &str) -> u64 {
    let text = ip(&["netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev]);
    text.split_whitespace()
        .skip_while(|w| *w != "backlog")
        .nth(2)
        .and_then(|p| p.strip_suffix('p'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in {text}"))
}

#[test]
fn answers_that_cannot_leave_are_counted_and_logged() {
    // SAFETY: a plain query of this process's effective user.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root");
        return;
    }
    // 8 bit/s: after the first 4 KB, one answer every 100 seconds.
    let link = Link::new("8bit");
    let r = Roster::start_under(
        &["ip", "netns", "exec", &link.server],
        "[dns]\nworkers = 1\n",
        &world(),
        &[
            "--listen",
            &format!("{SERVER_IP}:0"),
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let server = r.addr;
    let sent = 1_000u16;
    let answered = Link::inside(&link.client, move || {
        let socket = UdpSocket::bind((CLIENT_IP, 0)).unwrap();
        let reader = socket.try_clone().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let counting = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut answered = 0u64;
            let deadline = Instant::now() + Duration::from_secs(30);
            // Until the link has been quiet for 2 s.
            while Instant::now() < deadline {
                let Ok(n) = reader.recv(&mut buf) else { break };
                let m = Message::from_vec(&buf[..n]).expect("an answer that parses");
                assert_eq!(a_records(&m), ["10.1.0.1"], "a whole answer");
                answered += 1;
            }
            answered
        });
        for id in 0..sent {
            socket.send_to(&query_bytes(id), server).unwrap();
            if id % 40 == 39 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        counting.join().unwrap()
    });
    // roster drains its receive buffer a batch per 100 ms while the link stays stalled.
    let admin: SocketAddr = r.admin.unwrap();
    let mut text = String::new();
    let caught_up = r.eventually(Duration::from_secs(30), || {
        text = metrics_in(&link.server, admin);
        metric(&text, HANDLED) + metric(&text, RECEIVE_DROPPED) >= f64::from(sent)
    });
    assert!(
        caught_up.is_some(),
        "roster did not read every query:\n{text}"
    );
    let handled = metric(&text, HANDLED);
    let unsent = metric(
        &text,
        "roster_dns_unsent_total{reason=\"send_buffer_full\"}",
    );
    let waiting = queued(&link.server, &link.server_dev) as f64;
    assert!(answered > 0, "the first answers got through");
    assert!(
        unsent > 0.0,
        "answers dropped at a full send buffer are counted:\n{text}"
    );
    // Every query sent was dropped by the kernel at roster's receive buffer or read; every
    // query read was answered on the wire, is waiting in the stalled queue, or is counted as
    // unsent.
    assert_eq!(
        f64::from(sent),
        handled + metric(&text, RECEIVE_DROPPED),
        "{text}"
    );
    assert_eq!(
        handled,
        answered as f64 + waiting + unsent,
        "{handled} handled: {answered} answered, {waiting} waiting, {unsent} unsent"
    );
    assert_eq!(
        metric(
            &text,
            "roster_dns_answer_duration_seconds_count{transport=\"udp\"}"
        ),
        answered as f64 + waiting,
        "the answer latency histogram counts answers sent, not the unsent"
    );
    assert!(
        r.log()
            .contains("UDP answers dropped: the socket's send buffer stayed full"),
        "{}",
        r.log()
    );
    assert_eq!(
        r.log().matches("UDP answers dropped").count(),
        1,
        "logged once a minute, not once a batch"
    );
}

#[test]
fn queries_dropped_while_roster_cannot_read_are_counted() {
    let r = Roster::start_with(
        "[dns]\nworkers = 1\n",
        &world(),
        &["--admin-listen", "127.0.0.1:0"],
    );
    let pid = r.pid().to_string();
    let signal = |s: &str| {
        assert!(
            Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Stopped, roster reads nothing: its receive buffer (4 MiB asked for) fills and the
    // kernel drops the rest.
    signal("-STOP");
    let sent = 40_000u32;
    for id in 0..sent {
        socket.send_to(&query_bytes(id as u16), r.addr).unwrap();
    }
    signal("-CONT");
    let admin = r.admin.unwrap();
    let mut text = String::new();
    let caught_up = r.eventually(Duration::from_secs(20), || {
        text = http_get(admin, "/metrics").1;
        metric(&text, HANDLED) + metric(&text, RECEIVE_DROPPED) >= f64::from(sent)
    });
    assert!(caught_up.is_some(), "{text}");
    let dropped = metric(&text, RECEIVE_DROPPED);
    assert!(dropped > 0.0, "the kernel's drops are counted:\n{text}");
    assert_eq!(metric(&text, HANDLED) + dropped, f64::from(sent), "{text}");
}

/// The receive buffer of each UDP socket bound to `port`, as the kernel accounts it (twice the
/// size granted), from `ss`.
fn receive_buffers(port: u16) -> Vec<usize> {
    let out = Command::new("ss")
        .args(["-u", "-a", "-n", "-m", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let sizes: Vec<usize> = text
        .split(|c: char| c == '(' || c == ',' || c.is_whitespace())
        .filter_map(|field| field.strip_prefix("rb")?.parse().ok())
        .collect();
    assert!(!sizes.is_empty(), "no UDP socket on port {port}:\n{text}");
    sizes
}

#[test]
fn receive_buffers_are_granted_or_their_cap_is_named() {
    let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let asked = (cap * 4).clamp(1 << 20, 1 << 29);
    if asked <= cap {
        eprintln!("skipped: net.core.rmem_max ({cap}) is above any size roster may ask for");
        return;
    }
    let config = format!("[dns]\nworkers = 2\nudp_receive_buffer = {asked}\n");
    // SAFETY: a plain query of this process's effective user.
    let root = unsafe { libc::geteuid() } == 0;
    // Without CAP_NET_ADMIN (as in the shipped Deployment): the sysctl's cap, and a warning.
    let without: &[&str] = if root {
        &[
            "setpriv",
            "--inh-caps=-net_admin",
            "--bounding-set=-net_admin",
        ]
    } else {
        &[]
    };
    let r = Roster::start_under(without, &config, &world(), &[]);
    assert_eq!(receive_buffers(r.addr.port()), vec![2 * cap; 2]);
    let line = r
        .wait_log("net.core.rmem_max", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no warning naming the sysctl:\n{}", r.log()));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&format!("asked={asked}")) && line.contains(&format!("granted={cap}")),
        "{line}"
    );
    assert_eq!(
        dig_short(r.addr, &["db-0.db.prod.roster.internal", "A"]),
        ["10.1.0.1"]
    );
    drop(r);
    if !root {
        eprintln!("skipped the rest: forcing a buffer past net.core.rmem_max needs root");
        return;
    }
    // With it: every socket gets the size asked for, and there is nothing to say.
    let r = Roster::start_with(&config, &world(), &[]);
    assert_eq!(receive_buffers(r.addr.port()), vec![2 * asked; 2]);
    assert!(!r.log().contains("rmem_max"), "{}", r.log());
}
