//! roster as a stub domain: real resolvers (Unbound, dnsmasq), started here on loopback ports
//! and stopped by PID, send the zone to roster, and clients resolve member names through them.
//! This is how a cluster DNS uses roster.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A resolver process, killed by PID when dropped.
struct Resolver {
    child: Child,
    addr: SocketAddr,
    name: &'static str,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Resolver {
    fn spawn(name: &'static str, program: &str, args: &[String], port: u16) -> Resolver {
        // Daemons live in /usr/sbin, which is not on every user's PATH.
        let sbin = std::path::Path::new("/usr/sbin").join(program);
        let program = if sbin.exists() {
            sbin.display().to_string()
        } else {
            program.to_owned()
        };
        let child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} must be installed for this test (see README): {e}")
            });
        let mut resolver = Resolver {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            name,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = resolver.child.try_wait().unwrap() {
                panic!("{name} exited at start: {status}");
            }
            // Any answer (even REFUSED for the root) means the resolver is up; dig also prints
            // its errors ("connection refused") to stdout, so look for a header.
            if dig(resolver.addr, &["+norec", "."]).contains("status:") {
                return resolver;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} did not start on port {port}");
    }

    fn unbound(roster: SocketAddr, dir: &std::path::Path) -> Resolver {
        let port = free_port();
        let conf = dir.join("unbound.conf");
        std::fs::write(
            &conf,
            format!(
                r#"server:
  interface: 127.0.0.1
  port: {port}
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: yes
  harden-below-nxdomain: yes
stub-zone:
  name: "roster.internal."
  stub-addr: {ip}@{rport}
"#,
                dir = dir.display(),
                ip = roster.ip(),
                rport = roster.port()
            ),
        )
        .unwrap();
        Self::spawn(
            "unbound",
            "unbound",
            &["-d".into(), "-c".into(), conf.display().to_string()],
            port,
        )
    }

    /// dnsmasq forwarding the zone to roster, with `extra` options.
    fn dnsmasq(roster: SocketAddr, dir: &std::path::Path, extra: &[&str]) -> Resolver {
        let port = free_port();
        let mut args = vec![
            "-k".to_string(),
            "-C".into(),
            "/dev/null".into(),
            format!("--port={port}"),
            "--listen-address=127.0.0.1".into(),
            "--bind-interfaces".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!(
                "--server=/roster.internal/{}#{}",
                roster.ip(),
                roster.port()
            ),
            format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
            "--log-facility=-".into(),
        ];
        args.extend(extra.iter().map(|o| o.to_string()));
        Self::spawn("dnsmasq", "dnsmasq", &args, port)
    }
}

/// Resolvers may rotate RRsets (Unbound's rrset-roundrobin), so order is not compared here.
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn check_through(resolver: &Resolver) {
    let name = resolver.name;
    let at = resolver.addr;
    // qname minimisation walks the empty non-terminals first: they must not be NXDOMAIN.
    assert_eq!(
        dig_short(at, &["db-0.db.prod.roster.internal", "A"]),
        ["10.1.0.1"],
        "{name}"
    );
    assert_eq!(
        dig_short(at, &["db-0.db.prod.roster.internal", "AAAA"]),
        ["fd00::1"],
        "{name}"
    );
    assert_eq!(
        sorted(dig_short(
            at,
            &["_peer._tcp.db.prod.roster.internal", "SRV"]
        )),
        [
            "0 1 7000 db-0.db.prod.roster.internal.",
            "0 1 7000 db-1.db.prod.roster.internal."
        ],
        "{name}"
    );
    assert_eq!(
        sorted(dig_short(at, &["db.prod.roster.internal", "A"])),
        ["10.1.0.1", "10.1.0.2"],
        "{name}"
    );
    let out = dig(at, &["db-2.db.prod.roster.internal", "A"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{name}: NODATA\n{out}"
    );
    let out = dig(at, &["db-7.db.prod.roster.internal", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{name}: NXDOMAIN\n{out}");
    // A name below a member that is not ready must not be denied by an earlier NXDOMAIN.
    assert_eq!(
        dig_short(at, &["db-1.db.prod.roster.internal", "A"]),
        ["10.1.0.2"],
        "{name}"
    );
}

#[test]
fn unbound_stub_zone() {
    let r = Roster::start(&world());
    let dir = temp_dir();
    let unbound = Resolver::unbound(r.addr, &dir);
    check_through(&unbound);
    drop(unbound);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dnsmasq_server_for_the_zone() {
    let r = Roster::start(&world());
    let dir = temp_dir();
    let dnsmasq = Resolver::dnsmasq(r.addr, &dir, &[]);
    check_through(&dnsmasq);
    drop(dnsmasq);
    let _ = std::fs::remove_dir_all(dir);
}

/// dnsmasq adding the client's subnet (RFC 7871) to every query it forwards, as resolvers in
/// front of geo-aware zones are set up to: roster reads the option, ignores it, and answers.
#[test]
fn dnsmasq_adding_client_subnets() {
    let r = Roster::start_with("", &world(), &["--admin-listen", "127.0.0.1:0"]);
    let dir = temp_dir();
    let dnsmasq = Resolver::dnsmasq(r.addr, &dir, &["--add-subnet=24,56"]);
    check_through(&dnsmasq);
    drop(dnsmasq);
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(
        metric(&text, "roster_dns_malformed_total{transport=\"udp\"}"),
        0.0,
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
