//! The zone of the answer-path tests and of the fuzz target: `db` (dual stack, one member not
//! ready), `big` (40 members: answers that need truncation or lose glue), `cache` (none
//! published), in two zones with reverse zones; and the query names that reach every kind of
//! answer.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use roster::dns::{Handler, Path};
use roster::identity::IdentityConfig;
use roster::membership::{Membership, Published};
use roster::metrics::{Metrics, Transport};
use roster::source::{Health, PodEvent, PodView, PortView, Protocol, Scope};
use roster::zone::{DomainName, ReverseZone, ZoneSettings};

fn pod(ns: &str, name: &str, service: &str, ips: &[&str], ready: bool) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        label_service: Some(service.into()),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        ready,
        created: Some(1),
        ports: vec![
            PortView {
                container: 0,
                name: Some("client".into()),
                number: 5432,
                protocol: Some(Protocol::Tcp),
            },
            PortView {
                container: 0,
                name: Some("peer".into()),
                number: 7000,
                protocol: Some(Protocol::Tcp),
            },
            PortView {
                container: 1,
                name: Some("gossip".into()),
                number: 7946,
                protocol: Some(Protocol::Udp),
            },
        ],
        ..Default::default()
    }
}

pub fn handler() -> Handler {
    let mut pods = vec![
        pod("prod", "db-0", "db", &["10.0.0.1", "fd00::1"], true),
        pod("prod", "db-1", "db", &["10.0.0.2"], true),
        pod("prod", "db-2", "db", &["10.0.0.3"], false),
        pod("prod", "cache-0", "cache", &["10.0.2.1"], false),
    ];
    for i in 0..40 {
        pods.push(pod(
            "prod",
            &format!("big-{i}"),
            "big",
            &[&format!("10.0.1.{}", i + 1), &format!("fd00::1:{i:x}")],
            true,
        ));
    }
    let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
    m.handle(PodEvent::Init(Scope::Cluster));
    for p in pods {
        m.handle(PodEvent::InitApply(Scope::Cluster, p));
    }
    m.handle(PodEvent::InitDone(Scope::Cluster));
    let published = Arc::new(Published::empty());
    published.store(m.publish());
    let settings = ZoneSettings {
        zones: vec![
            DomainName::parse("roster.internal").unwrap(),
            DomainName::parse("Other.Example").unwrap(),
        ],
        reverse_zones: vec![
            ReverseZone::parse("10.in-addr.arpa").unwrap(),
            ReverseZone::parse("d.f.ip6.arpa").unwrap(),
        ],
        ttl: 5,
        negative_ttl: 7,
        nameserver: DomainName::parse("roster.roster-system.svc.cluster.local").unwrap(),
        hostmaster: DomainName::parse("hostmaster.roster.internal").unwrap(),
    };
    Handler::new(
        settings,
        1232,
        published,
        Arc::new(Metrics::new(Arc::new(Health::default()))),
    )
}

/// The identifier [`handler_with_nsid`] sends to NSID queries (`dns.nsid`).
pub const NSID: &[u8] = b"roster-a.example";

/// An NSID option as clients send it: code 3, no data (RFC 5001 §2.1).
pub const NSID_ASK: &[u8] = &[0, 3, 0, 0];

/// [`handler`] with `dns.nsid` set to [`NSID`].
pub fn handler_with_nsid() -> Handler {
    handler().with_nsid(Some(NSID.into()))
}

pub fn query(name: &str, qtype: RecordType, edns: Option<u16>, rd: bool, cd: bool) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.metadata.checking_disabled = cd;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// `query` (whose OPT record, with no options, ends it) with `options` (each code, length, data)
/// in its OPT record.
pub fn with_options(query: &[u8], options: &[&[u8]]) -> Vec<u8> {
    let mut q = query.to_vec();
    let rdata: Vec<u8> = options.concat();
    let rdlen = q.len() - 2;
    q[rdlen..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    q.extend_from_slice(&rdata);
    q
}

/// Every record type a client asks about in the world, and one roster never has (MX).
pub const QTYPES: [RecordType; 9] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::NS,
    RecordType::ANY,
    RecordType::TXT,
    RecordType::MX,
];

pub const NAMES: &[&str] = &[
    "db-0.db.prod.roster.internal.",
    "DB-0.Db.PROD.roster.INTERNAL.",
    "db-1.db.prod.roster.internal.",
    "db-2.db.prod.roster.internal.",
    "db-9.db.prod.roster.internal.",
    "db.prod.roster.internal.",
    "_peer._tcp.db.prod.roster.internal.",
    "_gossip._udp.db.prod.roster.internal.",
    "_tcp.db.prod.roster.internal.",
    "_nope._tcp.db.prod.roster.internal.",
    "big.prod.roster.internal.",
    "_peer._tcp.big.prod.roster.internal.",
    "big-39.big.prod.roster.internal.",
    "cache.prod.roster.internal.",
    "cache-0.cache.prod.roster.internal.",
    "prod.roster.internal.",
    "staging.roster.internal.",
    "x.y.z.w.v.roster.internal.",
    "roster.internal.",
    "db-0.db.prod.other.example.",
    "db.prod.Other.Example.",
    "other.example.",
    "1.0.0.10.in-addr.arpa.",
    "2.0.0.10.in-addr.arpa.",
    "9.9.9.10.in-addr.arpa.",
    "0.10.in-addr.arpa.",
    "10.in-addr.arpa.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
    "example.com.",
    "com.",
];

/// Whatever `bytes` are, the request path gives a sane reply or none, and the fast path, where
/// it answers, the general path's bytes (see `tests/hostile.rs`); the problem otherwise.
pub fn check_reply(h: &Handler, bytes: &[u8], transport: Transport) -> Result<(), String> {
    let src: SocketAddr = "192.0.2.7:5353".parse().unwrap();
    let mut out = Vec::new();
    let reply = h.answer(bytes, src, transport, &mut out);
    let due = bytes.len() >= 12 && bytes[2] & 0x80 == 0;
    if reply.is_some() != due {
        return Err(format!("reply {reply:?}, but one is due: {due}"));
    }
    if reply.is_none() {
        return Ok(());
    }
    let response =
        Message::from_vec(&out).map_err(|e| format!("reply does not parse: {e}: {out:02x?}"))?;
    if out[..2] != bytes[..2] {
        return Err(format!(
            "reply ID {:02x?} for query ID {:02x?}",
            &out[..2],
            &bytes[..2]
        ));
    }
    if response.metadata.message_type != MessageType::Response {
        return Err("reply is not a response (QR=0)".into());
    }
    // By value: BADVERS shares 16 with BADSIG, as which a parser reads it back.
    let code = response.metadata.response_code;
    let sane = [
        ResponseCode::NoError,
        ResponseCode::NXDomain,
        ResponseCode::Refused,
        ResponseCode::FormErr,
        ResponseCode::NotImp,
        ResponseCode::BADVERS,
    ];
    if !sane.iter().any(|&s| u16::from(s) == u16::from(code)) {
        return Err(format!("response code {code:?}"));
    }
    let limit = match transport {
        Transport::Tcp => u16::MAX as usize,
        // The request's own EDNS payload size, as a client reads it; a request that does not
        // parse has none, and so gets at most 512 bytes.
        Transport::Udp => Message::from_vec(bytes)
            .ok()
            .and_then(|m| m.edns.map(|e| e.max_payload()))
            .map_or(512, |p| p.clamp(512, 1232) as usize),
    };
    if out.len() > limit {
        return Err(format!("{} bytes over a limit of {limit}", out.len()));
    }
    let mut fast = Vec::new();
    if h.answer_by(Path::Fast, bytes, src, transport, &mut fast)
        .is_some()
    {
        let mut general = Vec::new();
        h.answer_by(Path::General, bytes, src, transport, &mut general);
        if fast != general {
            return Err(format!(
                "the fast path answers {fast:02x?}, the general path {general:02x?}"
            ));
        }
    }
    Ok(())
}
