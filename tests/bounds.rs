//! Bounds: a 1,100-member service is answered in full over TCP; a 10,000-member service answers
//! with TC=1 over UDP and over TCP as much as fits in 65,535 bytes, cut at the lowest ordinals
//! and counted; `members.max_per_service` leaves the highest ordinals without a name;
//! `members.max_pods` refuses new pods once full, and gives them names as others go. Each limit
//! is logged and counted.

mod common;

use std::time::Duration;

use common::*;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{RData, RecordType};

/// `n` ready members `big-<i>` of service `big` in `prod`, as a JSON PodList.
fn big_service(n: usize) -> String {
    big_members(0..n)
}

/// The members `big-<i>` for `i` in `ordinals`, as `big_service` writes them.
fn big_members(ordinals: impl IntoIterator<Item = usize>) -> String {
    let items: Vec<String> = ordinals
        .into_iter()
        .map(|i| {
            let ip = format!("10.9.{}.{}", i / 256, i % 256);
            format!(
                r#"{{"metadata":{{"name":"big-{i}","namespace":"prod","labels":{{"roster.io/service":"big"}},"creationTimestamp":"2026-01-01T00:00:00Z"}},"spec":{{"containers":[{{"name":"c","image":"i","ports":[{{"name":"peer","containerPort":7000}}]}}]}},"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True"}}],"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"apiVersion":"v1","kind":"PodList","items":[{}]}}"#,
        items.join(",")
    )
}

fn ordinal(target: &str) -> usize {
    target
        .strip_prefix("big-")
        .and_then(|t| t.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("target {target}"))
}

/// SPEC §4: over TCP the answer is complete, wherever 65,535 bytes can hold it; whatever EDNS
/// options the query carries (dig +nsid, a resolver's client subnet).
#[test]
fn over_tcp_an_answer_of_1100_members_is_complete() {
    let r = Roster::start_with("", &big_service(1_100), &[]);
    let options = [
        None,
        Some(EdnsOption::Unknown(3, vec![])),
        Some(EdnsOption::Subnet(ClientSubnet::new(
            std::net::Ipv4Addr::new(192, 0, 2, 0).into(),
            24,
            0,
        ))),
    ];
    for (name, qtype) in [
        ("big.prod.roster.internal.", RecordType::SRV),
        ("_peer._tcp.big.prod.roster.internal.", RecordType::SRV),
        ("big.prod.roster.internal.", RecordType::A),
    ] {
        for option in &options {
            let mut q = with_edns(query(name, qtype), 1232);
            if let Some(option) = option {
                q.edns
                    .as_mut()
                    .unwrap()
                    .options_mut()
                    .insert(option.clone());
            }
            let (m, size) = tcp(r.addr, &q);
            assert!(
                !m.metadata.truncation,
                "{name} {qtype} {option:?}: complete, {size} bytes"
            );
            assert_eq!(m.answers.len(), 1_100, "{name} {qtype} {option:?}");
            assert!(m.edns.is_some(), "{name} {qtype}: the OPT record");
            if qtype == RecordType::SRV {
                assert_eq!(srv_ordinals(&m), (0..1_100).collect::<Vec<_>>(), "{name}");
                assert!(m.answers.iter().all(|a| a.name.to_string() == name));
                // The targets' addresses follow while they fit (SPEC §1), lowest ordinals first.
                let glue: Vec<(usize, String)> = m
                    .additionals
                    .iter()
                    .map(|r| match &r.data {
                        RData::A(a) => (ordinal(&r.name.to_string()), a.to_string()),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert!(glue.len() > 100, "{name}: {} addresses", glue.len());
                for (n, (i, ip)) in glue.iter().enumerate() {
                    assert_eq!(
                        (*i, ip.as_str()),
                        (n, format!("10.9.{}.{}", n / 256, n % 256).as_str())
                    );
                }
            }
            // Over UDP it is cut, and says so.
            assert!(
                udp(r.addr, &q).0.metadata.truncation,
                "{name} {qtype} over UDP"
            );
        }
    }
}

/// The ordinals of an SRV answer's targets, in answer order.
fn srv_ordinals(m: &Message) -> Vec<usize> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(srv) => ordinal(&srv.target.to_string()),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_ten_thousand_member_service_is_cut_at_the_lowest_ordinals() {
    let r = Roster::start_with("", &big_service(10_000), &["--admin-listen", "127.0.0.1:0"]);
    let q = query("big.prod.roster.internal.", RecordType::SRV);
    for (transport, (m, size)) in [("udp", udp(r.addr, &q)), ("tcp", tcp(r.addr, &q))] {
        assert!(m.metadata.truncation, "{transport}: TC=1");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let limit = if transport == "udp" { 512 } else { 65_535 };
        assert!(size <= limit, "{transport}: {size} bytes");
        let ordinals = srv_ordinals(&m);
        assert!(!ordinals.is_empty());
        assert_eq!(
            ordinals,
            (0..ordinals.len()).collect::<Vec<_>>(),
            "{transport}: the lowest ordinals, in order"
        );
        if transport == "tcp" {
            // Every owner a pointer into the question: about 1,190 records of 55 bytes (hickory's
            // encoder, compressing only its first 120 names, fitted 847).
            assert!(
                ordinals.len() > 1_100,
                "TCP carries as much as fits: {}",
                ordinals.len()
            );
            assert!(size > 60_000, "{size} bytes");
            assert!(
                m.additionals.is_empty(),
                "a cut answer carries no addresses"
            );
        }
    }
    // The same query again gives the same cut.
    assert_eq!(tcp(r.addr, &q).0.answers, tcp(r.addr, &q).0.answers);
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert!(metric(&text, "roster_dns_truncated_total{transport=\"udp\"}") >= 1.0);
    assert!(metric(&text, "roster_dns_truncated_total{transport=\"tcp\"}") >= 3.0);
}

#[test]
fn members_over_the_per_service_limit_get_no_name() {
    let r = Roster::start_with(
        "[members]\nmax_per_service = 3\n",
        &big_service(5),
        &["--admin-listen", "127.0.0.1:0"],
    );
    for i in 0..3 {
        let m = udp(
            r.addr,
            &query(&format!("big-{i}.big.prod.roster.internal."), RecordType::A),
        )
        .0;
        assert_eq!(a_records(&m).len(), 1, "big-{i} has its name");
    }
    for i in 3..5 {
        let m = udp(
            r.addr,
            &query(&format!("big-{i}.big.prod.roster.internal."), RecordType::A),
        )
        .0;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "big-{i}");
    }
    let srv = udp(r.addr, &query("big.prod.roster.internal.", RecordType::SRV)).0;
    assert_eq!(srv.answers.len(), 3);
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(metric(&text, "roster_members_over_limit"), 2.0);
    assert!(r.log().contains("members.max_per_service"), "{}", r.log());

    // Below the limit again, the gauge goes back to zero.
    r.write_pods(&big_service(2));
    assert!(
        r.eventually(Duration::from_secs(5), || {
            let (_, text) = http_get(r.admin.unwrap(), "/metrics");
            metric(&text, "roster_members_over_limit") == 0.0
        })
        .is_some()
    );
}

#[test]
fn pods_beyond_the_limit_are_refused_and_counted() {
    let r = Roster::start_with(
        "[members]\nmax_pods = 3\n",
        &big_service(5),
        &["--admin-listen", "127.0.0.1:0"],
    );
    let member = |i: usize| {
        let q = query(&format!("big-{i}.big.prod.roster.internal."), RecordType::A);
        !a_records(&udp(r.addr, &q).0).is_empty()
    };
    // When a list holds more than fit, the pods that fit first by namespace and name get in.
    let tracked: Vec<usize> = (0..5).filter(|&i| member(i)).collect();
    assert_eq!(tracked, [0, 1, 2], "only max_pods pods are tracked");
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(metric(&text, "roster_pods_refused_total"), 2.0);
    assert_eq!(metric(&text, "roster_pods_waiting"), 2.0);
    assert!(r.log().contains("members.max_pods"), "{}", r.log());
    // Still serving, and the other services are unaffected by the refusal being logged.
    let (m, _) = udp(r.addr, &query("big.prod.roster.internal.", RecordType::SRV));
    assert_eq!(m.answers.len(), 3);

    // big-0 goes; the file's other items are unchanged, so only the refused pods kept waiting
    // can fill the room it leaves: the first refused, big-3, takes it.
    r.write_pods(&big_members(1..5));
    let filled = r.eventually(Duration::from_secs(5), || member(3));
    assert!(filled.is_some(), "big-3 never got the room big-0 left");
    assert!(!member(0) && !member(4));
    assert!(member(1) && member(2));
    let (_, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(metric(&text, "roster_pods_refused_total"), 2.0);
    assert_eq!(metric(&text, "roster_pods_waiting"), 1.0);
}
