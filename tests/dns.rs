//! SPEC §1 and §4 over the wire: the real binary, raw DNS messages over UDP and TCP, exact
//! header bits.

mod common;

use common::*;
use hickory_server::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{DNSClass, RData, RecordType};
use std::time::Duration;

#[test]
fn member_and_service_addresses_by_family_in_ordinal_order() {
    let r = Roster::start(&world());
    for (t, m) in both(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    ) {
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(m.metadata.authoritative, "{t}: AA=1");
        assert!(!m.metadata.recursion_available, "{t}: RA=0");
        assert_eq!(a_records(&m), ["10.1.0.1"], "{t}");
        assert_eq!(m.answers[0].ttl, 5, "{t}: default TTL");
    }
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::AAAA),
    );
    assert_eq!(a_records(&m), ["fd00::1"], "every podIPs entry, by family");
    let (m, _) = udp(r.addr, &query("db.prod.roster.internal.", RecordType::A));
    assert_eq!(
        a_records(&m),
        ["10.1.0.1", "10.1.0.2"],
        "published members only, by ordinal"
    );
    let (m, _) = udp(r.addr, &query("db.prod.roster.internal.", RecordType::AAAA));
    assert_eq!(a_records(&m), ["fd00::1"]);
}

#[test]
fn srv_at_the_service_and_at_named_ports_with_glue() {
    let r = Roster::start(&world());
    for (t, m) in both(r.addr, &query("db.prod.roster.internal.", RecordType::SRV)) {
        assert_eq!(
            rdata(&m),
            [
                "0 1 5432 db-0.db.prod.roster.internal.",
                "0 1 5432 db-1.db.prod.roster.internal."
            ],
            "{t}: primary port, priority 0, weight 1"
        );
        let glue: Vec<String> = m
            .additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(
            glue,
            [
                "db-0.db.prod.roster.internal. 10.1.0.1",
                "db-0.db.prod.roster.internal. fd00::1",
                "db-1.db.prod.roster.internal. 10.1.0.2"
            ],
            "{t}: targets' addresses in the additional section"
        );
    }
    let (m, _) = udp(
        r.addr,
        &query("_peer._tcp.db.prod.roster.internal.", RecordType::SRV),
    );
    assert_eq!(
        rdata(&m),
        [
            "0 1 7000 db-0.db.prod.roster.internal.",
            "0 1 7000 db-1.db.prod.roster.internal."
        ]
    );
    let (m, _) = udp(
        r.addr,
        &query("_gossip._udp.db.prod.roster.internal.", RecordType::SRV),
    );
    assert_eq!(rdata(&m).len(), 2, "UDP ports have _udp names");
    let (m, _) = udp(
        r.addr,
        &query("_gossip._tcp.db.prod.roster.internal.", RecordType::SRV),
    );
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "no TCP port named gossip"
    );
}

#[test]
fn negative_answers_nodata_and_nxdomain_with_soa() {
    let r = Roster::start(&world());
    let nodata = [
        (
            "db-2.db.prod.roster.internal.",
            RecordType::A,
            "a member that is not ready",
        ),
        (
            "db-1.db.prod.roster.internal.",
            RecordType::AAAA,
            "a type the member lacks",
        ),
        (
            "db-0.db.prod.roster.internal.",
            RecordType::TXT,
            "a type roster never serves",
        ),
        (
            "prod.roster.internal.",
            RecordType::A,
            "the namespace: an empty non-terminal",
        ),
        (
            "_tcp.db.prod.roster.internal.",
            RecordType::SRV,
            "the protocol: an empty non-terminal",
        ),
        (
            "_peer._tcp.db.prod.roster.internal.",
            RecordType::A,
            "an SRV name asked for A",
        ),
        ("roster.internal.", RecordType::A, "the apex asked for A"),
    ];
    for (qname, qtype, what) in nodata {
        for (t, m) in both(r.addr, &query(qname, qtype)) {
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{t} {what}"
            );
            assert!(m.answers.is_empty(), "{t} {what}");
            assert!(m.metadata.authoritative, "{t} {what}");
            assert_eq!(m.authorities.len(), 1, "{t} {what}: SOA in authority");
            let soa = &m.authorities[0];
            assert_eq!(soa.name.to_string(), ZONE, "{t} {what}");
            assert_eq!(soa.ttl, 5, "{t} {what}: negative TTL");
            let RData::SOA(data) = &soa.data else {
                panic!("{what}: not an SOA")
            };
            assert_eq!(data.minimum, 5, "{what}");
        }
    }
    let nx = [
        "db-3.db.prod.roster.internal.",
        "web.prod.roster.internal.",
        "staging.roster.internal.",
        "x.db-0.db.prod.roster.internal.",
        "_sctp.db.prod.roster.internal.",
        "_nope._tcp.db.prod.roster.internal.",
    ];
    for qname in nx {
        for (t, m) in both(r.addr, &query(qname, RecordType::A)) {
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "{t} {qname}"
            );
            assert!(m.metadata.authoritative, "{t} {qname}");
            assert_eq!(m.authorities.len(), 1, "{t} {qname}: SOA in authority");
            assert!(
                matches!(m.authorities[0].data, RData::SOA(_)),
                "{t} {qname}"
            );
        }
    }
}

#[test]
fn a_service_whose_members_are_all_unpublished_exists() {
    let r = Roster::start(&db_pod(0, "10.1.0.1", false));
    for qtype in [RecordType::A, RecordType::SRV] {
        let (m, _) = udp(r.addr, &query("db.prod.roster.internal.", qtype));
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{qtype}: NODATA, never NXDOMAIN"
        );
        assert!(m.answers.is_empty());
    }
    let (m, _) = udp(
        r.addr,
        &query("_peer._tcp.db.prod.roster.internal.", RecordType::SRV),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn apex_soa_and_ns() {
    let r = Roster::start(&world());
    for (t, m) in both(r.addr, &query("roster.internal.", RecordType::SOA)) {
        assert_eq!(m.answers.len(), 1, "{t}");
        let RData::SOA(soa) = &m.answers[0].data else {
            panic!("{t}")
        };
        assert_eq!(
            soa.mname.to_string(),
            "roster.roster-system.svc.cluster.local."
        );
        assert_eq!(soa.rname.to_string(), "hostmaster.roster.internal.");
        assert!(soa.serial > 0);
    }
    let (m, _) = udp(r.addr, &query("roster.internal.", RecordType::NS));
    assert_eq!(rdata(&m), ["roster.roster-system.svc.cluster.local."]);
}

#[test]
fn ptr_in_configured_reverse_zones() {
    let r = Roster::start(&world());
    let (m, _) = udp(r.addr, &query("2.0.1.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(rdata(&m), ["db-1.db.prod.roster.internal."]);
    let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let (m, _) = udp(r.addr, &query(v6, RecordType::PTR));
    assert_eq!(rdata(&m), ["db-0.db.prod.roster.internal."]);
    let (m, _) = udp(r.addr, &query("3.0.1.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "db-2 is not published"
    );
    let (m, _) = udp(r.addr, &query("1.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "a partial address with members below"
    );
    let (m, _) = udp(r.addr, &query("1.0.1.11.in-addr.arpa.", RecordType::PTR));
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::Refused,
        "not a configured reverse zone"
    );
}

#[test]
fn outside_the_zones_refused_and_never_recursive() {
    let r = Roster::start(&world());
    let mut q = query("example.com.", RecordType::A);
    q.metadata.recursion_desired = true;
    for (t, m) in both(r.addr, &q) {
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t}");
        assert!(!m.metadata.authoritative, "{t}: AA=0 outside the zones");
        assert!(!m.metadata.recursion_available, "{t}: RA=0");
        assert!(m.metadata.recursion_desired, "{t}: RD copied");
    }
    let mut q = query("db-0.db.prod.roster.internal.", RecordType::A);
    q.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        udp(r.addr, &q).0.metadata.response_code,
        ResponseCode::Refused,
        "class CH"
    );
    let q = query("roster.internal.", RecordType::AXFR);
    assert_eq!(
        tcp(r.addr, &q).0.metadata.response_code,
        ResponseCode::Refused,
        "no transfers"
    );
}

#[test]
fn owner_names_keep_the_case_of_the_question() {
    let r = Roster::start(&world());
    let q = query("DB-0.Db.PROD.Roster.Internal.", RecordType::A);
    let (m, _) = udp(r.addr, &q);
    assert_eq!(a_records(&m), ["10.1.0.1"]);
    assert_eq!(
        m.answers[0].name.to_string(),
        "DB-0.Db.PROD.Roster.Internal."
    );
    assert_eq!(
        m.queries[0].name().to_string(),
        "DB-0.Db.PROD.Roster.Internal."
    );
    let (m, _) = udp(r.addr, &query("NOPE.Roster.INTERNAL.", RecordType::A));
    assert_eq!(m.authorities[0].name.to_string(), "Roster.INTERNAL.");
}

/// A raw query for `qname` (type `qtype`, RD=0), with an OPT record holding an NSID option when
/// `nsid` (which roster reads and leaves unanswered).
fn raw_query(qname: &str, qtype: u16, nsid: bool) -> (Vec<u8>, usize) {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(nsid)];
    for label in qname.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    let question = q.len() - 12;
    if nsid {
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 0]);
    }
    (q, question)
}

#[test]
fn answers_point_to_the_question_instead_of_repeating_its_name() {
    let r = Roster::start(&world());
    for nsid in [false, true] {
        // A member's address: the owner is the question's name, so two bytes (0xC00C).
        let (q, question) = raw_query("db-0.Db.prod.roster.internal.", 1, nsid);
        let opt = if nsid { 11 } else { 0 };
        for (t, reply) in [
            (
                "udp",
                udp_raw(r.addr, &q, Duration::from_secs(3)).expect("reply"),
            ),
            ("tcp", tcp_raw(r.addr, &q)),
        ] {
            let answer = 12 + question;
            assert_eq!(
                &reply[12..answer],
                &q[12..answer],
                "{t} nsid={nsid}: the question"
            );
            assert_eq!(
                &reply[answer..answer + 2],
                [0xC0, 12],
                "{t} nsid={nsid}: the owner"
            );
            assert_eq!(
                &reply[answer + 12..answer + 16],
                [10, 1, 0, 1],
                "{t} nsid={nsid}"
            );
            assert_eq!(reply.len(), answer + 16 + opt, "{t} nsid={nsid}: {reply:?}");
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(
                m.answers[0].name.to_string(),
                "db-0.Db.prod.roster.internal."
            );
        }
        // NXDOMAIN: the SOA's owner is the zone, the end of the question's name.
        let (q, question) = raw_query("nope.prod.Roster.internal.", 1, nsid);
        let reply = udp_raw(r.addr, &q, Duration::from_secs(3)).expect("reply");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities[0].name.to_string(), "Roster.internal.");
        let zone = 12 + 5 + 5; // after "nope" and "prod"
        let authority = 12 + question;
        assert_eq!(
            &reply[authority..authority + 2],
            [0xC0, zone as u8],
            "nsid={nsid}: the SOA owner points into the question"
        );
    }
}

#[test]
fn any_is_answered_with_one_rrset() {
    let r = Roster::start(&world());
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::ANY),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(
        types,
        [RecordType::A],
        "RFC 8482: one RRset, not everything"
    );
    let (m, _) = udp(r.addr, &query("roster.internal.", RecordType::ANY));
    assert_eq!(m.answers.len(), 1);
}

#[test]
fn edns_is_echoed_and_bad_versions_get_badvers() {
    let r = Roster::start(&world());
    let q = with_edns(query("db-0.db.prod.roster.internal.", RecordType::A), 4096);
    for (t, m) in both(r.addr, &q) {
        let edns = m.edns.as_ref().expect("OPT echoed");
        assert_eq!(edns.max_payload(), 1232, "{t}: min(client, 1232)");
        assert_eq!(edns.version(), 0, "{t}");
    }
    let q = with_edns(query("db-0.db.prod.roster.internal.", RecordType::A), 700);
    assert_eq!(udp(r.addr, &q).0.edns.unwrap().max_payload(), 700);
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    assert!(m.edns.is_none(), "no OPT without EDNS in the query");

    // DO (DNSSEC answer OK) is copied into the answer (RFC 3225 §3), which stays unsigned; an
    // NSID option changes nothing.
    for nsid in [false, true] {
        for dnssec_ok in [false, true] {
            let mut q = with_edns(query("db-0.db.prod.roster.internal.", RecordType::A), 1232);
            q.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
            if nsid {
                let opt = q.edns.as_mut().unwrap().options_mut();
                opt.insert(EdnsOption::Unknown(3, vec![]));
            }
            for (t, m) in both(r.addr, &q) {
                let edns = m.edns.as_ref().expect("OPT echoed");
                assert_eq!(edns.flags().dnssec_ok, dnssec_ok, "{t} nsid={nsid}: DO");
                assert_eq!(a_records(&m), ["10.1.0.1"], "{t}");
                assert_eq!(m.answers.len(), 1, "{t}: no signatures");
            }
        }
    }

    let mut q = with_edns(query("db-0.db.prod.roster.internal.", RecordType::A), 1232);
    q.edns.as_mut().unwrap().set_version(1);
    for (t, m) in both(r.addr, &q) {
        // 16 is BADVERS in an OPT context (hickory's parser names it BADSIG, the TSIG meaning).
        assert_eq!(u16::from(m.metadata.response_code), 16, "{t}: BADVERS");
        assert!(m.edns.is_some(), "{t}: BADVERS travels in the OPT record");
        assert!(m.answers.is_empty(), "{t}");
    }
}

#[test]
fn other_opcodes_not_implemented_and_question_count_checked() {
    let r = Roster::start(&world());
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut q = query("roster.internal.", RecordType::SOA);
        q.metadata.op_code = op;
        for (t, m) in both(r.addr, &q) {
            assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{t} {op:?}");
            assert_eq!(m.metadata.op_code, op, "{t}");
        }
    }
    let mut two = query("db-0.db.prod.roster.internal.", RecordType::A);
    two.add_query(hickory_server::proto::op::Query::query(
        name("db-1.db.prod.roster.internal."),
        RecordType::A,
    ));
    let none = Message::new(7, MessageType::Query, OpCode::Query);
    for (what, q) in [("two questions", two), ("no question", none)] {
        for (t, m) in both(r.addr, &q) {
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "{t} {what}"
            );
            assert_eq!(m.metadata.id, q.metadata.id, "{t} {what}");
            assert!(m.queries.is_empty(), "{t} {what}: no question echoed");
        }
    }
    // Twenty long questions: the FORMERR still fits 512 bytes (echoing them would not).
    let mut many = query("db-0.db.prod.roster.internal.", RecordType::A);
    for i in 0..20 {
        many.add_query(hickory_server::proto::op::Query::query(
            name(&format!("{}-{i}.db.prod.roster.internal.", "x".repeat(50))),
            RecordType::A,
        ));
    }
    let (m, size) = udp(r.addr, &many);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(size <= 512, "{size} bytes");
}

#[test]
fn malformed_messages_never_stop_the_server() {
    let r = Roster::start(&world());
    let short = Duration::from_millis(300);
    // Shorter than a header: nothing can be answered.
    assert!(
        udp_raw(r.addr, &[0x12, 0x34, 0x01], short).is_none(),
        "silence without a header"
    );
    // A header promising a question that is not there: FORMERR.
    let header = [
        0xab, 0xcd, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x05, b'a',
    ];
    let reply = udp_raw(r.addr, &header, Duration::from_secs(2)).expect("FORMERR");
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(
        (m.metadata.id, m.metadata.response_code),
        (0xabcd, ResponseCode::FormErr)
    );
    // A label pointer loop.
    let looped = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    let reply = udp_raw(r.addr, &looped, Duration::from_secs(2)).expect("FORMERR");
    assert_eq!(
        Message::from_vec(&reply).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    // Random garbage, many times, over UDP and TCP.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 1 + (seed % 80) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (seed >> (j % 8 * 8)) as u8 ^ j as u8)
            .collect();
        let _ = udp_raw(
            r.addr,
            &bytes,
            Duration::from_millis(if i % 50 == 0 { 50 } else { 1 }),
        );
    }
    let _ = std::net::TcpStream::connect(r.addr).map(|mut s| {
        use std::io::Write;
        let _ = s.write_all(&[0, 40, 1, 2, 3]);
    });
    // A question whose name is a compression pointer into the header (found by fuzzing): the
    // header bytes it points at differ in the reply, so echoing it would give a reply that does
    // not parse. FORMERR instead, without the question.
    let pointer = [
        0x04, 0xcb, 0x01, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x02, 0x00, 0x01, 0x00, 0x01,
    ];
    let reply = udp_raw(r.addr, &pointer, Duration::from_secs(2)).expect("FORMERR");
    let m = Message::from_vec(&reply).expect("the reply parses");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.queries.is_empty());
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    assert_eq!(a_records(&m), ["10.1.0.1"], "still answering");
    let (m, _) = tcp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    assert_eq!(a_records(&m), ["10.1.0.1"], "still answering over TCP");
}

/// EDNS options that run past their OPT record are ignored, as hickory's parser reads them, and a
/// client sending such queries by the thousand cannot flood the log: that parser warns about
/// each one it reads (the queries the fast path leaves to it, here class CHAOS), which roster's
/// default log filter keeps out.
#[test]
fn unreadable_edns_options_are_answered_without_a_log_line_each() {
    let r = Roster::start(&world());
    let with_class = |class: u8| {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in ["db-0", "db", "prod", "roster", "internal"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, class]);
        // OPT, RDATA of 6 bytes: an NSID option that claims 4 bytes of data and has 2.
        q.extend_from_slice(&[
            0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 6, 0, 3, 0, 4, 0xaa, 0xbb,
        ]);
        q
    };
    let reply = udp_raw(r.addr, &with_class(1), Duration::from_secs(2)).expect("answered");
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), ["10.1.0.1"]);
    std::thread::sleep(Duration::from_millis(200));
    let before = r.log().lines().count();
    let chaos = with_class(3);
    for _ in 0..200 {
        let reply = udp_raw(r.addr, &chaos, Duration::from_secs(2)).expect("answered");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "not a class served"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = r.log();
    let lines: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        lines.len() < 5,
        "{} log lines for 200 queries:\n{}",
        lines.len(),
        lines.join("\n")
    );
}

/// A service of 120 members, each with an IPv4 and an IPv6 address.
fn big_service() -> String {
    let mut s = String::new();
    for i in 0..120u32 {
        s.push_str(&format!(
            "---\nmetadata:\n  name: big-{i}\n  namespace: prod\n  labels: {{roster.io/service: big}}\n\
             spec:\n  containers:\n  - name: c\n    ports:\n    - {{name: p, containerPort: 80}}\n\
             status:\n  conditions: [{{type: Ready, status: \"True\"}}]\n  podIPs:\n  - ip: 10.2.{}.{}\n  - ip: fd00::2:{i:x}\n",
            i / 200,
            i % 200 + 1
        ));
    }
    s
}

#[test]
fn udp_answers_fit_the_payload_and_tcp_is_complete() {
    let r = Roster::start(&big_service());
    // Without EDNS: 512 bytes; the answers kept are the lowest ordinals, and TC=1.
    let (m, size) = udp(r.addr, &query("big.prod.roster.internal.", RecordType::A));
    assert!(size <= 512, "{size}");
    assert!(m.metadata.truncation, "TC=1");
    let got = a_records(&m);
    let want: Vec<String> = (0..got.len())
        .map(|i| format!("10.2.0.{}", i + 1))
        .collect();
    assert!(!got.is_empty());
    assert_eq!(got, want, "cut at the lowest ordinals");
    // With EDNS: the client's size, at most 1232; the OPT record survives truncation.
    for (payload, limit) in [(4096u16, 1232usize), (800, 800)] {
        let q = with_edns(query("big.prod.roster.internal.", RecordType::SRV), payload);
        let (m, size) = udp(r.addr, &q);
        assert!(size <= limit, "{payload}: {size} > {limit}");
        assert!(m.metadata.truncation, "{payload}");
        assert!(m.edns.is_some(), "{payload}: OPT kept when truncated");
        assert!(
            m.additionals.is_empty(),
            "{payload}: additional records go first"
        );
        assert!(rdata(&m)[0].ends_with("big-0.big.prod.roster.internal."));
    }
    // Over TCP everything arrives.
    let (m, _) = tcp(r.addr, &query("big.prod.roster.internal.", RecordType::A));
    assert!(!m.metadata.truncation);
    assert_eq!(a_records(&m).len(), 120);
    let (m, _) = tcp(
        r.addr,
        &with_edns(query("big.prod.roster.internal.", RecordType::SRV), 1232),
    );
    assert_eq!(m.answers.len(), 120);
    assert_eq!(m.additionals.len(), 240, "glue for every target over TCP");
}

#[test]
fn srv_glue_is_dropped_before_answers_without_setting_tc() {
    // 7 members: their SRV records fit in 512 bytes (SRV targets are never compressed, RFC 2782),
    // their addresses do not all fit.
    let pods: String = big_service()
        .split("---\n")
        .filter(|d| !d.is_empty())
        .take(7)
        .map(|d| format!("---\n{d}"))
        .collect();
    let r = Roster::start(&pods);
    let (m, size) = udp(r.addr, &query("big.prod.roster.internal.", RecordType::SRV));
    assert!(size <= 512);
    assert_eq!(m.answers.len(), 7, "all answers fit");
    assert!(
        !m.metadata.truncation,
        "TC only when answers are cut (RFC 2181 §9)"
    );
    let glue = m.additionals.len();
    assert!((2..14).contains(&glue), "some glue, not all: {glue}");
    assert_eq!(
        m.additionals.len() % 2,
        0,
        "a target's addresses come together"
    );
}

#[test]
fn settings_from_the_configuration() {
    let config = "[dns]\nzones = [\"Roster.Internal\", \"db.example.\"]\nttl = 30\nnegative_ttl = 7\n\
                  hostmaster = \"ops.example.com\"\n[members]\npublish_not_ready = true\n";
    let r = Roster::start_with(config, &world(), &[]);
    let (m, _) = udp(
        r.addr,
        &query("db-2.db.prod.roster.internal.", RecordType::A),
    );
    assert_eq!(
        a_records(&m),
        ["10.1.0.3"],
        "publish_not_ready publishes db-2"
    );
    assert_eq!(m.answers[0].ttl, 30);
    let (m, _) = udp(r.addr, &query("db.prod.db.example.", RecordType::SRV));
    assert!(
        rdata(&m)[0].ends_with("db-0.db.prod.db.example."),
        "targets in the zone asked"
    );
    let (m, _) = udp(r.addr, &query("nope.db.example.", RecordType::A));
    assert_eq!(m.authorities[0].name.to_string(), "db.example.");
    assert_eq!(m.authorities[0].ttl, 7);
    let RData::SOA(soa) = &m.authorities[0].data else {
        panic!()
    };
    assert_eq!(
        (soa.minimum, soa.rname.to_string().as_str()),
        (7, "ops.example.com.")
    );
}
