//! roster against a reference: Knot DNS, started here on a loopback port, serves zone files that
//! hold exactly the records roster serves from the same pods, and the two must give the same
//! reply to every question asked: its RCODE, its flags, whether it carries EDNS, and each
//! section's records (in any order; SOA serials aside, as each server numbers its own
//! versions). So whatever a resolver or client has learnt to expect from an authoritative server
//! (NODATA at empty non-terminals, NXDOMAIN below a leaf, REFUSED outside the zones, the case of
//! the question in owner names, glue for SRV targets, when to truncate) is held to one that is
//! widely deployed, for thousands of questions at once.
//!
//! Left out on purpose: QTYPE ANY, where RFC 8482 lets each server choose which set it returns
//! (roster returns the SOA at an apex, Knot the NS); the records in a truncated reply, which is
//! only for retrying over TCP; and members that hold a name without records, which a zone file
//! cannot write (tests/dns.rs covers them).

mod common;

use common::*;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{RData, Record, RecordType};
use serde_json::json;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

const NAMESERVER: &str = "roster.roster-system.svc.cluster.local.";
const REVERSE: [&str; 2] = ["10.in-addr.arpa.", "0.0.d.f.ip6.arpa."];

/// One service: namespace, name, named ports (the first is the primary), and its members with
/// their IPv4 and IPv6 addresses.
struct Service {
    namespace: &'static str,
    name: &'static str,
    ports: &'static [(&'static str, u16, &'static str)],
    members: Vec<(String, Option<String>, Option<String>)>,
}

fn services() -> Vec<Service> {
    let member = |name: &str, v4: Option<&str>, v6: Option<&str>| {
        (
            name.to_owned(),
            v4.map(str::to_owned),
            v6.map(str::to_owned),
        )
    };
    vec![
        Service {
            namespace: "prod",
            name: "db",
            ports: &[
                ("pg", 5432, "TCP"),
                ("peer", 7000, "TCP"),
                ("gossip", 7946, "UDP"),
            ],
            members: vec![
                member("db-0", Some("10.1.0.1"), Some("fd00::1")),
                member("db-1", Some("10.1.0.2"), Some("fd00::2")),
                member("db-2", Some("10.1.0.3"), None),
            ],
        },
        Service {
            namespace: "prod",
            name: "cache",
            ports: &[("client", 6379, "TCP")],
            members: vec![
                member("cache-0", Some("10.1.1.1"), None),
                member("cache-1", Some("10.1.1.2"), None),
            ],
        },
        Service {
            namespace: "stage",
            name: "web",
            ports: &[],
            members: vec![member("web-0", None, Some("fd00::1:5"))],
        },
        // Host-network pods: agent-0 has db-0's address, so that address has two PTR records.
        Service {
            namespace: "node",
            name: "agent",
            ports: &[("metrics", 9100, "TCP")],
            members: vec![
                member("agent-0", Some("10.1.0.1"), Some("fd00::1")),
                member("agent-1", Some("10.9.9.9"), None),
            ],
        },
        // Enough members that SRV answers outgrow 512 bytes, and their glue 1232.
        Service {
            namespace: "prod",
            name: "big",
            ports: &[("peer", 7000, "TCP")],
            members: (0..40)
                .map(|i| {
                    (
                        format!("big-{i}"),
                        Some(format!("10.2.0.{}", i + 1)),
                        Some(format!("fd00::2:{:x}", i + 1)),
                    )
                })
                .collect(),
        },
    ]
}

/// The pods roster reads, as a PodList.
fn pods(services: &[Service]) -> String {
    let mut items = Vec::new();
    for s in services {
        for (name, v4, v6) in &s.members {
            let ips: Vec<_> = [v4, v6].into_iter().flatten().collect();
            items.push(json!({
                "metadata": {
                    "name": name, "namespace": s.namespace,
                    "labels": {"roster.io/service": s.name},
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {"containers": [{"name": "c", "image": "i", "ports": s.ports.iter()
                    .map(|(port, number, protocol)| json!({
                        "name": port, "containerPort": number, "protocol": protocol}))
                    .collect::<Vec<_>>()}]},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "podIP": ips[0],
                    "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                },
            }));
        }
    }
    json!({"apiVersion": "v1", "kind": "PodList", "items": items}).to_string()
}

/// The same records as zone files: origin → text.
fn zones(services: &[Service]) -> Vec<(String, String)> {
    let soa = |origin: &str| {
        format!(
            "$ORIGIN {origin}\n$TTL 5\n\
             @ SOA {NAMESERVER} hostmaster.{ZONE} 1 3600 600 86400 5\n@ NS {NAMESERVER}\n"
        )
    };
    let mut forward = soa(ZONE);
    let mut reverse = [soa(REVERSE[0]), soa(REVERSE[1])];
    for s in services {
        let service = format!("{}.{}", s.name, s.namespace);
        for (member, v4, v6) in &s.members {
            let fqdn = format!("{member}.{service}.{ZONE}");
            for (ip, kind) in [(v4, "A"), (v6, "AAAA")] {
                let Some(ip) = ip else { continue };
                writeln!(forward, "{member}.{service} {kind} {ip}").unwrap();
                writeln!(forward, "{service} {kind} {ip}").unwrap();
                let ip: IpAddr = ip.parse().unwrap();
                let zone = usize::from(ip.is_ipv6());
                writeln!(reverse[zone], "{} PTR {fqdn}", reverse_name(ip)).unwrap();
            }
            if let Some((_, number, _)) = s.ports.first() {
                writeln!(forward, "{service} SRV 0 1 {number} {fqdn}").unwrap();
            }
            for (port, number, protocol) in s.ports {
                let protocol = protocol.to_lowercase();
                writeln!(
                    forward,
                    "_{port}._{protocol}.{service} SRV 0 1 {number} {fqdn}"
                )
                .unwrap();
            }
        }
    }
    let [v4, v6] = reverse;
    vec![
        (ZONE.into(), forward),
        (REVERSE[0].into(), v4),
        (REVERSE[1].into(), v6),
    ]
}

fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for byte in v6.octets().iter().rev() {
                write!(s, "{:x}.{:x}.", byte & 15, byte >> 4).unwrap();
            }
            s + "ip6.arpa."
        }
    }
}

fn knot(dir: &Path, zones: &[(String, String)]) -> Daemon {
    let port = free_port();
    let mut conf = format!(
        "server:\n  rundir: \"{dir}\"\n  listen: 127.0.0.1@{port}\n\
         database:\n  storage: \"{dir}\"\n\
         log:\n  - target: stderr\n    any: error\n\
         template:\n  - id: default\n    storage: \"{dir}\"\n    zonefile-sync: -1\n    \
         journal-content: none\n\
         zone:\n",
        dir = dir.display()
    );
    for (origin, text) in zones {
        let file = format!("{origin}zone");
        std::fs::write(dir.join(&file), text).unwrap();
        writeln!(conf, "  - domain: {origin}\n    file: {file}").unwrap();
    }
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).unwrap();
    Daemon::spawn(
        "Knot DNS",
        "knotd",
        &["-c".into(), path.display().to_string()],
        port,
    )
}

/// What of a reply must be the same: the RCODE, the flags, EDNS, and (`records`) each
/// section's records as text, sorted.
fn shape(m: &Message, records: bool) -> String {
    let h = &m.metadata;
    let mut s = format!(
        "{:?} aa={} tc={} rd={} ra={} ad={} edns={}\n",
        h.response_code,
        h.authoritative,
        h.truncation,
        h.recursion_desired,
        h.recursion_available,
        h.authentic_data,
        m.edns.is_some(),
    );
    if !records {
        return s;
    }
    for (section, list) in [
        ("answer", &m.answers),
        ("authority", &m.authorities),
        ("additional", &m.additionals),
    ] {
        let mut lines: Vec<String> = list.iter().map(record).collect();
        lines.sort();
        for line in lines {
            writeln!(s, "{section}: {line}").unwrap();
        }
    }
    s
}

fn record(r: &Record) -> String {
    let data = match &r.data {
        RData::SOA(soa) => format!(
            "{} {} (serial) {} {} {} {}",
            soa.mname, soa.rname, soa.refresh, soa.retry, soa.expire, soa.minimum
        ),
        other => other.to_string(),
    };
    format!(
        "{} {} {} {:?} {}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        data
    )
}

#[test]
fn answers_equal_knot_dns_on_the_same_zone() {
    let services = services();
    let zones = zones(&services);
    let dir = temp_dir();
    let knot = knot(&dir, &zones);
    let roster = Roster::start_with(
        "[dns]\nreverse_zones = [\"10.in-addr.arpa.\", \"0.0.d.f.ip6.arpa.\"]\n",
        &pods(&services),
        &[],
    );

    // Every owner name of the zones, and names around them.
    let mut names: Vec<String> = zones
        .iter()
        .flat_map(|(origin, text)| {
            text.lines()
                .filter(|l| !l.starts_with('$') && !l.starts_with('@'))
                .map(|l| {
                    let owner = l.split(' ').next().unwrap();
                    if owner.ends_with('.') {
                        owner.to_owned()
                    } else {
                        format!("{owner}.{origin}")
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // Most of big's members are alike: a few stand for all.
    names.retain(|n| !n.starts_with("big-") || n.starts_with("big-1."));
    names.extend(
        [
            "",
            "prod.",
            "stage.",
            "nope.",
            "nope.prod.",
            "db.nope.",
            "*.prod.",
            "_tcp.db.prod.",
            "_udp.db.prod.",
            "_udp.cache.prod.",
            "_sctp.db.prod.",
            "_peer._udp.db.prod.",
            "x._peer._tcp.db.prod.",
            "x.db-0.db.prod.",
            "db-3.db.prod.",
            "db-00.db.prod.",
            "DB-0.Db.PROD.Roster.INTERNAL.",
            "_PEER._TCP.db.prod.",
        ]
        .map(|n| format!("{n}{ZONE}")),
    );
    names.extend(
        [
            "10.in-addr.arpa.",
            "1.10.in-addr.arpa.",
            "0.1.10.in-addr.arpa.",
            "9.0.1.10.in-addr.arpa.",
            "2.10.in-addr.arpa.",
            "11.in-addr.arpa.",
            "in-addr.arpa.",
            "0.0.d.f.ip6.arpa.",
            "0.0.0.0.0.0.d.f.ip6.arpa.",
            "internal.",
            "example.com.",
            ".",
            NAMESERVER,
        ]
        .map(str::to_owned),
    );
    names.sort();
    names.dedup();

    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::SOA,
        RecordType::NS,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::DS,
        RecordType::DNSKEY,
        RecordType::Unknown(999),
    ];
    let mut asked = 0;
    let mut differ = Vec::new();
    // The kinds of reply seen: RCODE, whether the answer is empty, whether it was truncated.
    let mut kinds = std::collections::HashSet::new();
    for name in &names {
        for qtype in types {
            // UDP without EDNS (512 bytes), with EDNS at the smallest and the usual size, TCP.
            for transport in ["udp", "udp+edns512", "udp+edns1232", "tcp"] {
                let mut q = query(name, qtype);
                if let Some(size) = transport.strip_prefix("udp+edns") {
                    q = with_edns(q, size.parse().unwrap());
                }
                let ask = |addr| {
                    if transport == "tcp" {
                        tcp(addr, &q).0
                    } else {
                        udp(addr, &q).0
                    }
                };
                let (ours, theirs) = (ask(roster.addr), ask(knot.addr));
                asked += 1;
                kinds.insert((
                    ours.metadata.response_code,
                    ours.answers.is_empty(),
                    ours.metadata.truncation,
                ));
                // A truncated reply is for retrying over TCP: what it holds is each server's
                // choice (roster keeps the records that fit, lowest ordinals first; Knot none).
                let whole = !(ours.metadata.truncation && theirs.metadata.truncation);
                let (a, b) = (shape(&ours, whole), shape(&theirs, whole));
                if a != b {
                    differ.push(format!(
                        "{name} {qtype} over {transport}:\n-- roster\n{a}-- Knot\n{b}"
                    ));
                }
            }
        }
    }
    // The questions reached every kind of reply.
    for kind in [
        (ResponseCode::NoError, false, false),
        (ResponseCode::NoError, true, false),
        (ResponseCode::NoError, false, true),
        (ResponseCode::NXDomain, true, false),
        (ResponseCode::Refused, true, false),
    ] {
        assert!(
            kinds.contains(&kind),
            "no reply of {kind:?} among {kinds:?}"
        );
    }
    assert!(
        differ.is_empty(),
        "{} of {asked} replies differ from Knot DNS's; the first:\n{}",
        differ.len(),
        differ[..differ.len().min(5)].join("\n")
    );
    println!("{asked} questions, the same replies from roster and Knot DNS");
}
