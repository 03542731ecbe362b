//! The fast path answers byte for byte as the general path (hickory's parser and encoder) does,
//! for every record kind, negative answer, EDNS size and DO flag, header flag and case, and it
//! declines (leaving the general path to answer) whatever it does not handle. Every integration
//! test runs on the fast path too, since the server tries it first.

#[path = "common/answer_world.rs"]
mod answer_world;

use answer_world::{
    NAMES, NSID, NSID_ASK, QTYPES, handler, handler_with_nsid, query, with_options,
};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use roster::dns::{Handler, Path};
use roster::metrics::Transport;

/// Both paths on `bytes`; panics if the fast path answers differently. Returns whether the fast
/// path answered.
fn compare(h: &Handler, bytes: &[u8], transport: Transport, what: &str) -> bool {
    let src = "127.0.0.1:5353".parse().unwrap();
    let (mut fast, mut general) = (Vec::new(), Vec::new());
    let f = h.answer_by(Path::Fast, bytes, src, transport, &mut fast);
    let g = h.answer_by(Path::General, bytes, src, transport, &mut general);
    if f.is_some() {
        assert_eq!(f, g, "{what}: the same reply summary");
        if fast != general {
            let show = |b: &[u8]| {
                Message::from_vec(b)
                    .map(|m| format!("{m:#?}"))
                    .unwrap_or_default()
            };
            panic!(
                "{what}: fast and general answers differ\nfast    {fast:02x?}\ngeneral {general:02x?}\n{}\n{}",
                show(&fast),
                show(&general)
            );
        }
    }
    f.is_some()
}

#[test]
fn the_same_bytes_for_every_kind_of_answer() {
    for (h, nsid) in [(handler(), ""), (handler_with_nsid(), " dns.nsid")] {
        same_bytes_for_every_kind_of_answer(&h, nsid);
    }
}

/// Every name and type, with and without EDNS (sizes, DO, and an NSID option), header flags,
/// over UDP and TCP: `compare` on each.
fn same_bytes_for_every_kind_of_answer(h: &Handler, configured: &str) {
    let mut fast = 0;
    let mut total = 0;
    for name in NAMES {
        for qtype in QTYPES {
            for edns in [
                None,
                Some(512),
                Some(700),
                Some(1232),
                Some(4096),
                Some(100),
            ] {
                for (rd, cd) in [(false, false), (true, false), (true, true)] {
                    let q = query(name, qtype, edns, rd, cd);
                    let mut dnssec_ok = q.clone();
                    let mut variants = vec![(q.clone(), "")];
                    if edns.is_some() {
                        // The OPT record ends the query: its flags are 4 bytes from the end.
                        let at = dnssec_ok.len() - 4;
                        dnssec_ok[at] |= 0x80;
                        variants.push((dnssec_ok, " DO"));
                        variants.push((with_options(&q, &[NSID_ASK]), " NSID"));
                    }
                    for transport in [Transport::Udp, Transport::Tcp] {
                        for (q, flag) in &variants {
                            let what = format!(
                                "{name} {qtype} edns={edns:?}{flag} rd={rd} cd={cd} {transport:?}{configured}"
                            );
                            total += 1;
                            if compare(h, q, transport, &what) {
                                fast += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    // Only truncated answers are left to the general path here.
    assert!(
        fast * 100 >= total * 95,
        "the fast path answered {fast} of {total}{configured}"
    );
}

/// The NSID option of a reply, if it has one.
fn nsid_of(reply: &[u8]) -> Option<Vec<u8>> {
    use hickory_server::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let m = Message::from_vec(reply).unwrap();
    match m.edns?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(id) => Some(id.as_ref().to_vec()),
        other => panic!("{other:?}"),
    }
}

/// With `dns.nsid` set, a query that carries an NSID option (empty, as RFC 5001 asks, or with
/// data, which is ignored; alone or after a cookie) gets the identifier back, on every path and
/// transport, within the client's UDP size; a query without one gets none; and without
/// `dns.nsid` no query gets one.
#[test]
fn nsid_is_sent_when_configured_and_asked_for() {
    let src = "127.0.0.1:5353".parse().unwrap();
    let (with, without) = (handler_with_nsid(), handler());
    for (name, qtype, size) in [
        ("db-0.db.prod.roster.internal.", RecordType::A, 1232),
        ("db.prod.roster.internal.", RecordType::SRV, 1232),
        ("nope.prod.roster.internal.", RecordType::A, 1232),
        ("example.com.", RecordType::A, 1232),
        // Cut to fit 512 bytes, the option included (the general path's truncation).
        ("big.prod.roster.internal.", RecordType::SRV, 512),
    ] {
        let plain = query(name, qtype, Some(size), false, false);
        for options in [
            &[NSID_ASK][..],
            &[&[0, 3, 0, 3, b'a', b'b', b'c']],
            &[COOKIE, NSID_ASK],
        ] {
            let asked = with_options(&plain, options);
            for transport in [Transport::Udp, Transport::Tcp] {
                let what = format!("{name} {qtype} {options:?} {transport:?}");
                for path in [Path::Any, Path::General] {
                    let mut out = Vec::new();
                    with.answer_by(path, &asked, src, transport, &mut out)
                        .unwrap();
                    assert_eq!(nsid_of(&out).as_deref(), Some(NSID), "{what} {path:?}");
                    if transport == Transport::Udp {
                        assert!(out.len() <= size as usize, "{what}: {} bytes", out.len());
                    }
                    without
                        .answer_by(path, &asked, src, transport, &mut out)
                        .unwrap();
                    assert_eq!(nsid_of(&out), None, "{what} {path:?}: dns.nsid unset");
                    with.answer_by(path, &plain, src, transport, &mut out)
                        .unwrap();
                    assert_eq!(nsid_of(&out), None, "{what} {path:?}: not asked");
                }
            }
        }
    }
}

#[test]
fn the_common_queries_take_the_fast_path() {
    let h = handler();
    let src = "127.0.0.1:5353".parse().unwrap();
    let mut out = Vec::new();
    for (name, qtype) in [
        ("db-0.db.prod.roster.internal.", RecordType::A),
        ("db.prod.roster.internal.", RecordType::SRV),
        ("_peer._tcp.db.prod.roster.internal.", RecordType::SRV),
        ("db.prod.roster.internal.", RecordType::A),
        ("nope.db.prod.roster.internal.", RecordType::A),
        ("db-1.db.prod.roster.internal.", RecordType::AAAA),
        ("example.com.", RecordType::A),
    ] {
        for edns in [None, Some(1232)] {
            let q = query(name, qtype, edns, true, false);
            assert!(
                h.answer_by(Path::Fast, &q, src, Transport::Udp, &mut out)
                    .is_some(),
                "{name} {qtype} {edns:?}"
            );
        }
    }
    // Big answers that must be cut go to the general path, which sets TC.
    let q = query(
        "big.prod.roster.internal.",
        RecordType::SRV,
        None,
        false,
        false,
    );
    assert!(
        h.answer_by(Path::Fast, &q, src, Transport::Udp, &mut out)
            .is_none()
    );
    assert!(
        compare(&h, &q, Transport::Tcp, "big SRV over TCP"),
        "TCP fits: fast"
    );
}

#[test]
fn unusual_messages_are_left_to_the_general_path() {
    let h = handler();
    let base = query(
        "db-0.db.prod.roster.internal.",
        RecordType::A,
        Some(1232),
        false,
        false,
    );
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut notify = base.clone();
    notify[2] |= 0x20;
    cases.push(("NOTIFY", notify));
    let mut badvers = base.clone();
    let opt = base.len() - 11;
    badvers[opt + 6] = 1;
    cases.push(("EDNS version 1", badvers));
    let mut chaos = query(
        "db-0.db.prod.roster.internal.",
        RecordType::A,
        None,
        false,
        false,
    );
    let class = chaos.len() - 2;
    chaos[class..].copy_from_slice(&u16::from(DNSClass::CH).to_be_bytes());
    cases.push(("class CH", chaos));
    cases.push((
        "AXFR",
        query("roster.internal.", RecordType::AXFR, None, false, false),
    ));
    let mut two = Message::new(1, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("a.roster.internal.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.roster.internal.").unwrap(),
        RecordType::A,
    ));
    cases.push(("two questions", two.to_vec().unwrap()));
    let mut response = base.clone();
    response[2] |= 0x80;
    cases.push(("a response", response));
    let src = "127.0.0.1:5353".parse().unwrap();
    for (what, bytes) in cases {
        let mut out = Vec::new();
        assert!(
            h.answer_by(Path::Fast, &bytes, src, Transport::Udp, &mut out)
                .is_none(),
            "{what}"
        );
        // ...and the server still answers it (or, for a response, stays silent).
        let answered = h
            .answer_by(Path::Any, &bytes, src, Transport::Udp, &mut out)
            .is_some();
        assert_eq!(answered, what != "a response", "{what}");
    }
}

#[test]
fn mutated_queries_never_make_the_paths_disagree() {
    let h = handler();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut fast = 0;
    for i in 0..20_000 {
        let name = NAMES[(next() % NAMES.len() as u64) as usize];
        let qtype = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::PTR,
        ][(next() % 4) as usize];
        let mut bytes = query(
            name,
            qtype,
            if next() % 2 == 0 { Some(1232) } else { None },
            true,
            false,
        );
        // Flip a few bytes, or cut the message, or add bytes.
        match next() % 4 {
            0 => {
                for _ in 0..1 + next() % 3 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << (next() % 8);
                }
            }
            1 => bytes.truncate((next() % bytes.len() as u64) as usize),
            2 => bytes.push(next() as u8),
            _ => {}
        }
        if compare(
            &h,
            &bytes,
            Transport::Udp,
            &format!("mutation {i}: {bytes:02x?}"),
        ) {
            fast += 1;
        }
    }
    assert!(fast > 5_000, "{fast}");
}

/// EDNS options are read and ignored: a query carrying NSID, a client subnet or an unknown
/// option is answered as it would be without (and fast), unless hickory cannot read its client
/// subnet, which is FORMERR (RFC 7871 §7.2.1) from the general path alone.
#[test]
fn edns_options_are_ignored_unless_unreadable() {
    let h = handler();
    // (what, option code, option data, readable)
    let cases: [(&str, u16, &[u8], bool); 13] = [
        ("NSID, empty", 3, &[], true),
        ("NSID with data", 3, b"ask", true),
        ("client subnet IPv4 /24", 8, &[0, 1, 24, 0, 192, 0, 2], true),
        (
            "client subnet IPv6 /56",
            8,
            &[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 0],
            true,
        ),
        ("client subnet /0", 8, &[0, 1, 0, 0], true),
        (
            "client subnet, bytes past the prefix",
            8,
            &[0, 1, 8, 0, 10, 1, 2],
            true,
        ),
        ("unknown option", 65_001, b"xyz", true),
        ("client subnet, empty", 8, &[], false),
        (
            "client subnet, family 3",
            8,
            &[0, 3, 24, 0, 192, 0, 2],
            false,
        ),
        (
            "client subnet IPv4 /33",
            8,
            &[0, 1, 33, 0, 1, 2, 3, 4, 5],
            false,
        ),
        ("client subnet IPv6 /129", 8, &[0, 2, 129, 0, 0], false),
        (
            "client subnet, address short of its prefix",
            8,
            &[0, 1, 24, 0, 192, 0],
            false,
        ),
        ("client subnet, no address", 8, &[0, 1, 24], false),
    ];
    for (what, code, data, readable) in cases {
        let mut option = code.to_be_bytes().to_vec();
        option.extend_from_slice(&(data.len() as u16).to_be_bytes());
        option.extend_from_slice(data);
        let alone = format!("{what}, alone");
        check_options(&h, &alone, &[&option], readable);
        let second = format!("{what}, after a cookie");
        check_options(&h, &second, &[COOKIE, &option], readable);
    }
}

/// Options cut short are read as hickory reads them, so the fast path answers exactly what the
/// general path answers: a lone code or data running past the OPT record drops the options (the
/// query is answered as without them); one or three stray bytes, or a length beyond the whole
/// record, are FORMERR.
#[test]
fn options_cut_short_are_read_as_the_general_path_reads_them() {
    let h = handler();
    // (what, the OPT record's RDATA after a cookie, answered as without options)
    let cases: [(&str, &[u8], bool); 7] = [
        ("a lone code", &[0, 3], true),
        ("a lone client-subnet code", &[0, 8], true),
        ("data running past the record", &[0, 3, 0, 9, 1, 2], true),
        (
            "a client subnet running past the record",
            &[0, 8, 0, 8, 0, 1, 24],
            true,
        ),
        ("one stray byte", &[0], false),
        ("three stray bytes", &[0, 3, 0], false),
        (
            "a length beyond the whole record",
            &[0, 3, 0xff, 0xff, 1],
            false,
        ),
    ];
    for (what, rest, answered) in cases {
        check_options(&h, what, &[COOKIE, rest], answered);
    }
}

/// A cookie option (RFC 7873), which every path reads and ignores.
const COOKIE: &[u8] = &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];

/// The SRV query for `db` with `options` (each code, length, data) in its OPT record, over UDP
/// and TCP: the fast path answers exactly when `answered`, byte for byte as the general path,
/// with the answer to the query without options; else the general path answers FORMERR.
fn check_options(h: &Handler, what: &str, options: &[&[u8]], answered: bool) {
    let src = "127.0.0.1:5353".parse().unwrap();
    let plain = query(
        "db.prod.roster.internal.",
        RecordType::SRV,
        Some(1232),
        false,
        false,
    );
    let mut expected = Vec::new();
    h.answer_by(Path::General, &plain, src, Transport::Udp, &mut expected)
        .unwrap();
    let q = with_options(&plain, options);
    for transport in [Transport::Udp, Transport::Tcp] {
        let label = format!("{what}, {transport:?}");
        assert_eq!(compare(h, &q, transport, &label), answered, "{label}: fast");
        let mut out = Vec::new();
        h.answer_by(Path::Any, &q, src, transport, &mut out)
            .unwrap();
        if answered {
            assert_eq!(out, expected, "{label}: as without options");
        } else {
            assert_eq!(out[3] & 0x0f, 1, "{label}: FORMERR");
        }
    }
}
