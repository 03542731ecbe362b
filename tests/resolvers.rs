//! roster as a stub domain: real resolvers (Unbound, dnsmasq), started here on loopback ports
//! and stopped by PID, send the zone to roster, and clients resolve member names through them.
//! This is how a cluster DNS uses roster.

mod common;

use common::*;
use std::net::SocketAddr;

impl Daemon {
    fn unbound(roster: SocketAddr, dir: &std::path::Path) -> Daemon {
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
    fn dnsmasq(roster: SocketAddr, dir: &std::path::Path, extra: &[&str]) -> Daemon {
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

fn check_through(resolver: &Daemon) {
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
    let unbound = Daemon::unbound(r.addr, &dir);
    check_through(&unbound);
    drop(unbound);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dnsmasq_server_for_the_zone() {
    let r = Roster::start(&world());
    let dir = temp_dir();
    let dnsmasq = Daemon::dnsmasq(r.addr, &dir, &[]);
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
    let dnsmasq = Daemon::dnsmasq(r.addr, &dir, &["--add-subnet=24,56"]);
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
