//! Every record kind as an operator sees it with `dig` (package bind9-dnsutils).

mod common;

use common::*;

fn flags_and_status(out: &str) -> (String, String) {
    let status = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_owned())
        .unwrap_or_default();
    let flags = out
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|s| s.split(';').next().unwrap().trim().to_owned())
        .unwrap_or_default();
    (flags, status)
}

#[test]
fn record_kinds_through_dig() {
    let r = Roster::start(&world());
    let cases: &[(&[&str], &[&str])] = &[
        (&["db-0.db.prod.roster.internal", "A"], &["10.1.0.1"]),
        (&["db-0.db.prod.roster.internal", "AAAA"], &["fd00::1"]),
        (&["db.prod.roster.internal", "A"], &["10.1.0.1", "10.1.0.2"]),
        (
            &["db.prod.roster.internal", "SRV"],
            &[
                "0 1 5432 db-0.db.prod.roster.internal.",
                "0 1 5432 db-1.db.prod.roster.internal.",
            ],
        ),
        (
            &["_peer._tcp.db.prod.roster.internal", "SRV"],
            &[
                "0 1 7000 db-0.db.prod.roster.internal.",
                "0 1 7000 db-1.db.prod.roster.internal.",
            ],
        ),
        (&["-x", "10.1.0.2"], &["db-1.db.prod.roster.internal."]),
        (
            &["roster.internal", "NS"],
            &["roster.roster-system.svc.cluster.local."],
        ),
        (&["db-2.db.prod.roster.internal", "A"], &[]),
    ];
    for (args, want) in cases {
        assert_eq!(dig_short(r.addr, args), *want, "dig {args:?}");
    }
    let soa = dig_short(r.addr, &["roster.internal", "SOA"]);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with("roster.roster-system.svc.cluster.local. hostmaster.roster.internal. "),
        "{soa:?}"
    );

    for (name, want_status) in [
        ("db-0.db.prod.roster.internal", "NOERROR"),
        ("db-2.db.prod.roster.internal", "NOERROR"),
        ("db-9.db.prod.roster.internal", "NXDOMAIN"),
        ("kubernetes.default.svc.cluster.local", "REFUSED"),
    ] {
        let (flags, status) = flags_and_status(&dig(r.addr, &[name]));
        assert_eq!(status, want_status, "{name}");
        // dig sets RD; roster copies it but never offers recursion.
        let aa = want_status != "REFUSED";
        assert_eq!(flags, if aa { "qr aa rd" } else { "qr rd" }, "{name}");
    }
}

#[test]
fn dig_falls_back_to_tcp_for_a_large_answer() {
    let mut pods = String::new();
    for i in 0..60 {
        pods.push_str(&format!(
            "---\nmetadata:\n  name: m-{i}\n  namespace: big\n  labels: {{roster.io/service: m}}\nstatus:\n  conditions: [{{type: Ready, status: \"True\"}}]\n  podIP: 10.3.0.{}\n",
            i + 1
        ));
    }
    let r = Roster::start(&pods);
    // Without EDNS the answer does not fit 512 bytes: dig sees TC=1 and retries over TCP.
    let out = dig(r.addr, &["+noedns", "m.big.roster.internal", "A"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 60"), "complete over TCP: {out}");
    let out = dig(
        r.addr,
        &["+noedns", "+ignore", "m.big.roster.internal", "A"],
    );
    let (flags, _) = flags_and_status(&out);
    assert!(flags.contains("tc"), "{flags}");
}

/// `dig +nsid` names the server that answered when `dns.nsid` is set: its text, or with `true`
/// the host's name; without it, dig shows none.
#[test]
fn dig_nsid_names_the_server_when_configured() {
    let nsid = |r: &Roster, transport: &str| {
        let out = dig(
            r.addr,
            &["+nsid", transport, "db-0.db.prod.roster.internal", "A"],
        );
        assert!(out.contains("10.1.0.1"), "{out}");
        out.lines().find(|l| l.contains("; NSID:")).map(|l| {
            l.rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_owned()
        })
    };
    let r = Roster::start(&world());
    assert_eq!(nsid(&r, "+notcp"), None, "not configured");
    let r = Roster::start_with("[dns]\nnsid = \"replica-a\"\n", &world(), &[]);
    for transport in ["+notcp", "+tcp"] {
        assert_eq!(
            nsid(&r, transport).as_deref(),
            Some("\"replica-a\""),
            "{transport}"
        );
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let r = Roster::start_with("[dns]\nnsid = true\n", &world(), &[]);
    assert_eq!(nsid(&r, "+notcp"), Some(format!("\"{}\"", host.trim())));
}

/// A member whose name would not fit in a DNS name under the zone (255 octets) is not
/// published: an SRV or PTR answer naming it would be a packet every client refuses ("name too
/// long"), losing the service's other members with it.
#[test]
fn a_member_name_too_long_for_the_zone_is_skipped_not_sent() {
    let zone = ["a", "b", "c"].map(|c| c.repeat(60)).join(".") + ".internal";
    let (service, namespace) = ("s".repeat(20), "n".repeat(20));
    let pod = |set: &str, ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {set}-0\n  namespace: {namespace}\n  \
             labels: {{roster.io/service: {service}, roster.io/name: {set}, roster.io/ordinal: \"0\"}}\n\
             spec:\n  containers: [{{name: c, ports: [{{containerPort: 5432}}]}}]\n\
             status:\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"True\"}}]\n"
        )
    };
    // 21 + 21 + 21 + 192 octets: one over; "x-0" leaves room.
    let long = "m".repeat(18);
    let pods = pod(&long, "10.1.2.3") + &pod("x", "10.1.2.4");
    let config = format!("[dns]\nzones = [\"{zone}\"]\nreverse_zones = [\"10.in-addr.arpa\"]\n");
    let r = Roster::start_with(&config, &pods, &[]);
    let srv = dig(r.addr, &[&format!("{service}.{namespace}.{zone}"), "SRV"]);
    assert!(!srv.contains("bad packet"), "{srv}");
    let (_, status) = flags_and_status(&srv);
    assert_eq!(status, "NOERROR", "{srv}");
    let targets: Vec<&str> = srv.lines().filter(|l| l.contains("SRV 0 1 ")).collect();
    assert_eq!(targets.len(), 1, "only the member that fits:\n{srv}");
    assert!(targets[0].contains(&format!(" x-0.{service}.")), "{srv}");
    let ptr = dig(r.addr, &["-x", "10.1.2.3"]);
    assert!(!ptr.contains("bad packet"), "{ptr}");
    assert_eq!(flags_and_status(&ptr).1, "NXDOMAIN", "{ptr}");
    let log = r.log();
    assert!(
        log.contains("255") && log.contains(&format!("{long}-0")),
        "the skip is logged with the reason:\n{log}"
    );
}
