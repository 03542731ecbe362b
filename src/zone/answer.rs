//! Answering: a pure function of (settings, snapshot, question) to an [`Answer`] value.
//! NXDOMAIN, NODATA and REFUSED are values here, not errors; the wire layer only encodes them.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::name::{ForwardName, NameBuf, QueryName, ReverseName, parse};
use std::sync::Arc;

use super::{MemberNode, ServiceNode, Snapshot, SrvTarget, ZoneSettings};
use crate::identity::Identity;

/// The query types roster distinguishes; every other type is `Other` (NODATA where the name
/// exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
    Srv,
    Ptr,
    Soa,
    Ns,
    /// `ANY`, answered with one RRset (RFC 8482 §4.1).
    Any,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// NOERROR with records.
    Data,
    /// NOERROR, no records, SOA in authority: the name exists but not with this type.
    NoData,
    /// The name does not exist; SOA in authority.
    NxDomain,
    /// Outside every served zone; not authoritative.
    Refused,
    /// In a served zone, but the source has not completed its first sync (SERVFAIL).
    NotReady,
}

/// One record of the answer section. Its owner is always the question name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rdata<'s> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Priority 0, weight 1; the target is the member's name in the answer's target zone.
    Srv {
        port: u16,
        target: &'s Identity,
    },
    /// The member's name in the answer's target zone.
    Ptr(&'s Identity),
    Soa,
    Ns,
}

/// The records of an answer, as views into the snapshot: nothing is copied or allocated, so the
/// wire layer can write them straight out.
#[derive(Clone, Copy, Debug)]
pub enum Records<'s> {
    None,
    /// The SOA or NS record of the apex.
    Apex(Rdata<'s>),
    /// The A (`v4`) or AAAA records of these members, in order.
    Addresses {
        members: &'s [MemberNode],
        v4: bool,
    },
    /// SRV records; `glue` when their targets' addresses go to the additional section.
    Srv {
        service: &'s ServiceNode,
        targets: &'s [SrvTarget],
        glue: bool,
    },
    /// PTR records to these relative names.
    Ptr(&'s [Arc<Identity>]),
}

/// What a question gets, before any encoding.
#[derive(Clone, Copy, Debug)]
pub struct Resolution<'s> {
    pub kind: AnswerKind,
    /// Labels of the zone apex, counted from the right of the question: the owner of the SOA.
    pub apex_labels: usize,
    /// Index into [`ZoneSettings::zones`] of the zone SRV and PTR targets live in.
    pub target_zone: usize,
    pub records: Records<'s>,
}

impl<'s> Resolution<'s> {
    fn new(kind: AnswerKind, apex_labels: usize, target_zone: usize) -> Self {
        Self {
            kind,
            apex_labels,
            target_zone,
            records: Records::None,
        }
    }

    /// Whether the authority section carries the zone's SOA (negative answers, RFC 2308).
    pub fn has_soa_authority(&self) -> bool {
        matches!(self.kind, AnswerKind::NoData | AnswerKind::NxDomain)
    }

    /// The answer section, in order.
    pub fn records(&self) -> impl Iterator<Item = Rdata<'s>> + 's {
        let (apex, members, v4, srv, ptr) = match self.records {
            Records::None => (None, None, false, None, None),
            Records::Apex(r) => (Some(r), None, false, None, None),
            Records::Addresses { members, v4 } => (None, Some(members), v4, None, None),
            Records::Srv {
                service, targets, ..
            } => (None, None, false, Some((service, targets)), None),
            Records::Ptr(names) => (None, None, false, None, Some(names)),
        };
        let addresses = members.into_iter().flatten().flat_map(move |m| {
            let a = m.v4().filter(move |_| v4).map(Rdata::A);
            let aaaa = m.v6().filter(move |_| !v4).map(Rdata::Aaaa);
            a.chain(aaaa)
        });
        let srv = srv.into_iter().flat_map(|(service, targets)| {
            targets.iter().map(move |t| Rdata::Srv {
                port: t.port,
                target: &service.members[t.member as usize].identity,
            })
        });
        let ptr = ptr.into_iter().flatten().map(|n| Rdata::Ptr(n));
        apex.into_iter().chain(addresses).chain(srv).chain(ptr)
    }

    /// Members whose addresses go to the additional section (SRV targets), in answer order.
    pub fn glue(&self) -> impl Iterator<Item = &'s MemberNode> + 's {
        let srv = match self.records {
            Records::Srv {
                service,
                targets,
                glue: true,
            } => Some((service, targets)),
            _ => None,
        };
        srv.into_iter().flat_map(|(service, targets)| {
            targets
                .iter()
                .map(move |t| &service.members[t.member as usize])
        })
    }

    fn with(mut self, records: Records<'s>) -> Self {
        let empty = match records {
            Records::None => true,
            Records::Apex(_) => false,
            Records::Addresses { members, v4 } => !members.iter().any(|m| {
                if v4 {
                    m.v4().next().is_some()
                } else {
                    m.v6().next().is_some()
                }
            }),
            Records::Srv { targets, .. } => targets.is_empty(),
            Records::Ptr(names) => names.is_empty(),
        };
        self.kind = if empty {
            AnswerKind::NoData
        } else {
            AnswerKind::Data
        };
        self.records = if empty { Records::None } else { records };
        self
    }
}

/// An answer with its records collected, for callers that want values (tests, the general
/// path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer<'s> {
    pub kind: AnswerKind,
    pub apex_labels: usize,
    pub target_zone: usize,
    pub records: Vec<Rdata<'s>>,
    /// Members whose addresses go to the additional section (SRV targets), in answer order.
    pub glue: Vec<&'s MemberNode>,
}

impl<'s> Answer<'s> {
    /// Whether the authority section carries the zone's SOA (negative answers, RFC 2308).
    pub fn has_soa_authority(&self) -> bool {
        matches!(self.kind, AnswerKind::NoData | AnswerKind::NxDomain)
    }
}

impl<'s> From<Resolution<'s>> for Answer<'s> {
    fn from(r: Resolution<'s>) -> Self {
        Answer {
            kind: r.kind,
            apex_labels: r.apex_labels,
            target_zone: r.target_zone,
            records: r.records().collect(),
            glue: r.glue().collect(),
        }
    }
}

/// Answers one question, collecting the records. See [`resolve`].
pub fn answer<'s>(
    settings: &ZoneSettings,
    snapshot: Option<&'s Snapshot>,
    labels: &[&[u8]],
    qtype: QType,
) -> Answer<'s> {
    resolve(settings, snapshot, labels, qtype).into()
}

/// Answers one question. `labels` is the question name, leftmost label first, lower-case.
pub fn resolve<'s>(
    settings: &ZoneSettings,
    snapshot: Option<&'s Snapshot>,
    labels: &[&[u8]],
    qtype: QType,
) -> Resolution<'s> {
    let mut buf = NameBuf::default();
    let parsed = parse(&settings.zones, &settings.reverse_zones, labels, &mut buf);
    let (apex_labels, target_zone) = match parsed {
        QueryName::OutOfZone => return Resolution::new(AnswerKind::Refused, 0, 0),
        QueryName::Forward { zone, .. } => (settings.zones[zone].labels().len(), zone),
        QueryName::Reverse { zone, .. } => (settings.reverse_zones[zone].name.labels().len(), 0),
    };
    let Some(snapshot) = snapshot else {
        return Resolution::new(AnswerKind::NotReady, apex_labels, target_zone);
    };
    let exists = Resolution::new(AnswerKind::NoData, apex_labels, target_zone);
    let nxdomain = Resolution::new(AnswerKind::NxDomain, apex_labels, target_zone);
    match parsed {
        QueryName::OutOfZone => unreachable!("handled above"),
        QueryName::Forward { name, .. } => match name {
            ForwardName::Apex => exists.with(apex(qtype)),
            ForwardName::Namespace(ns) if snapshot.has_namespace(ns) => exists,
            ForwardName::Namespace(_) | ForwardName::Nonexistent => nxdomain,
            ForwardName::Service { key } => match snapshot.service(key) {
                Some(service) => service_answer(exists, service, qtype),
                None => nxdomain,
            },
            ForwardName::Member { key, member } => {
                match snapshot.service(key).and_then(|s| s.member(member)) {
                    Some(m) => exists.with(addresses(std::slice::from_ref(m), qtype)),
                    None => nxdomain,
                }
            }
            ForwardName::Protocol { key, protocol } => {
                match snapshot.service(key).filter(|s| s.has_protocol(protocol)) {
                    Some(_) => exists,
                    None => nxdomain,
                }
            }
            ForwardName::Port {
                key,
                port,
                protocol,
            } => {
                let service = snapshot.service(key);
                match service.and_then(|s| s.port(port, protocol).map(|p| (s, p))) {
                    Some((s, p)) => exists.with(srv(s, &p.targets, qtype)),
                    None => nxdomain,
                }
            }
        },
        QueryName::Reverse { name, .. } => match name {
            ReverseName::Apex => exists.with(apex(qtype)),
            ReverseName::Address(ip) => match snapshot.reverse(&ip) {
                Some(targets) if matches!(qtype, QType::Ptr | QType::Any) => {
                    exists.with(Records::Ptr(targets))
                }
                Some(_) => exists,
                None => nxdomain,
            },
            ReverseName::Prefix { low, high } if snapshot.has_address_in(low, high) => exists,
            ReverseName::Prefix { .. } | ReverseName::Nonexistent => nxdomain,
        },
    }
}

fn apex<'s>(qtype: QType) -> Records<'s> {
    match qtype {
        QType::Soa | QType::Any => Records::Apex(Rdata::Soa),
        QType::Ns => Records::Apex(Rdata::Ns),
        _ => Records::None,
    }
}

/// A or AAAA records of `members`. `ANY` gives the A RRset when there is one, else the AAAA
/// RRset (RFC 8482: one RRset is enough).
fn addresses<'s>(members: &'s [MemberNode], qtype: QType) -> Records<'s> {
    match qtype {
        QType::A => Records::Addresses { members, v4: true },
        QType::Aaaa => Records::Addresses { members, v4: false },
        QType::Any => {
            let v4 = members.iter().any(|m| m.v4().next().is_some());
            Records::Addresses { members, v4 }
        }
        _ => Records::None,
    }
}

fn service_answer<'s>(
    exists: Resolution<'s>,
    service: &'s ServiceNode,
    qtype: QType,
) -> Resolution<'s> {
    match qtype {
        QType::Srv => exists.with(srv(service, &service.primary, qtype)),
        QType::Any => {
            let with_addresses = exists.with(addresses(&service.members, qtype));
            if with_addresses.kind == AnswerKind::Data {
                with_addresses
            } else {
                exists.with(srv(service, &service.primary, qtype))
            }
        }
        _ => exists.with(addresses(&service.members, qtype)),
    }
}

/// SRV records to `targets`; their addresses go to the additional section, except for ANY.
fn srv<'s>(service: &'s ServiceNode, targets: &'s [SrvTarget], qtype: QType) -> Records<'s> {
    match qtype {
        QType::Srv => Records::Srv {
            service,
            targets,
            glue: true,
        },
        QType::Any => Records::Srv {
            service,
            targets,
            glue: false,
        },
        _ => Records::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ServiceId, Unpublished};
    use crate::zone::tests::identity;
    use crate::zone::{DomainName, ReverseZone, ServiceNode};

    fn settings() -> ZoneSettings {
        ZoneSettings {
            zones: vec![
                DomainName::parse("roster.internal").unwrap(),
                DomainName::parse("db.example").unwrap(),
            ],
            reverse_zones: vec![ReverseZone::parse("10.in-addr.arpa").unwrap()],
            ttl: 5,
            negative_ttl: 5,
            nameserver: DomainName::parse("ns.example").unwrap(),
            hostmaster: DomainName::parse("hostmaster.example").unwrap(),
        }
    }

    /// `db` in `prod`: db-0 and db-1 published, db-2 not ready. `cache` in `prod`: cache-0 not
    /// ready (a service with no published member).
    fn snapshot() -> Snapshot {
        let db = ServiceId::new("prod", "db");
        let mut ids = vec![
            identity(&db, "db-1", 1, "10.0.0.2"),
            identity(&db, "db-0", 0, "10.0.0.1"),
            identity(&db, "db-2", 2, "10.0.0.3"),
        ];
        Arc::make_mut(&mut ids[1]).ips = ["10.0.0.1", "fd00::1"].map(|a| a.parse().unwrap()).into();
        Arc::make_mut(&mut ids[2]).unpublished = Some(Unpublished::NotReady);
        let cache = ServiceId::new("prod", "cache");
        let mut c = identity(&cache, "cache-0", 0, "10.0.1.1");
        Arc::make_mut(&mut c).unpublished = Some(Unpublished::NotReady);
        let mut snap = Snapshot::default();
        snap.set_service(&db, ServiceNode::build(&ids));
        snap.set_service(&cache, ServiceNode::build([&c]));
        snap
    }

    fn show(r: &Rdata<'_>) -> String {
        match r {
            Rdata::A(a) => format!("A {a}"),
            Rdata::Aaaa(a) => format!("AAAA {a}"),
            Rdata::Srv { port, target } => format!("SRV {port} {}", target.relative()),
            Rdata::Ptr(target) => format!("PTR {}", target.relative()),
            Rdata::Soa => "SOA".into(),
            Rdata::Ns => "NS".into(),
        }
    }

    fn ask<'s>(snap: &'s Snapshot, name: &str, qtype: QType) -> Answer<'s> {
        let lower = name.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower
            .trim_end_matches('.')
            .split('.')
            .map(str::as_bytes)
            .collect();
        answer(&settings(), Some(snap), &labels, qtype)
    }

    #[test]
    fn table() {
        use AnswerKind::*;
        use QType::*;
        let snap = snapshot();
        let cases: Vec<(&str, QType, AnswerKind, Vec<&str>)> = vec![
            ("db-0.db.prod.roster.internal", A, Data, vec!["A 10.0.0.1"]),
            ("DB-0.Db.PROD.roster.internal", A, Data, vec!["A 10.0.0.1"]),
            (
                "db-0.db.prod.roster.internal",
                Aaaa,
                Data,
                vec!["AAAA fd00::1"],
            ),
            ("db-1.db.prod.roster.internal", Aaaa, NoData, vec![]),
            ("db-0.db.prod.roster.internal", Srv, NoData, vec![]),
            ("db-0.db.prod.roster.internal", Other, NoData, vec![]),
            ("db-2.db.prod.roster.internal", A, NoData, vec![]),
            ("db-3.db.prod.roster.internal", A, NxDomain, vec![]),
            ("x.db-0.db.prod.roster.internal", A, NxDomain, vec![]),
            (
                "db.prod.roster.internal",
                A,
                Data,
                vec!["A 10.0.0.1", "A 10.0.0.2"],
            ),
            (
                "db.prod.roster.internal",
                Srv,
                Data,
                vec!["SRV 5432 db-0.db.prod", "SRV 5432 db-1.db.prod"],
            ),
            (
                "_peer._tcp.db.prod.roster.internal",
                Srv,
                Data,
                vec!["SRV 7000 db-0.db.prod", "SRV 7000 db-1.db.prod"],
            ),
            ("_peer._tcp.db.prod.roster.internal", A, NoData, vec![]),
            ("_peer._udp.db.prod.roster.internal", Srv, NxDomain, vec![]),
            ("_other._tcp.db.prod.roster.internal", Srv, NxDomain, vec![]),
            ("_tcp.db.prod.roster.internal", Srv, NoData, vec![]),
            ("_udp.db.prod.roster.internal", Srv, NxDomain, vec![]),
            ("cache.prod.roster.internal", A, NoData, vec![]),
            ("cache.prod.roster.internal", Srv, NoData, vec![]),
            ("cache-0.cache.prod.roster.internal", A, NoData, vec![]),
            ("_peer._tcp.cache.prod.roster.internal", Srv, NoData, vec![]),
            ("prod.roster.internal", A, NoData, vec![]),
            ("staging.roster.internal", A, NxDomain, vec![]),
            ("web.prod.roster.internal", A, NxDomain, vec![]),
            ("roster.internal", Soa, Data, vec!["SOA"]),
            ("roster.internal", Ns, Data, vec!["NS"]),
            ("roster.internal", A, NoData, vec![]),
            ("roster.internal", Any, Data, vec!["SOA"]),
            (
                "db-0.db.prod.roster.internal",
                Any,
                Data,
                vec!["A 10.0.0.1"],
            ),
            ("db-0.db.prod.db.example", A, Data, vec!["A 10.0.0.1"]),
            ("example.com", A, Refused, vec![]),
            ("1.0.0.10.in-addr.arpa", Ptr, Data, vec!["PTR db-0.db.prod"]),
            ("1.0.0.10.in-addr.arpa", A, NoData, vec![]),
            ("3.0.0.10.in-addr.arpa", Ptr, NxDomain, vec![]),
            ("0.10.in-addr.arpa", Ptr, NoData, vec![]),
            ("9.10.in-addr.arpa", Ptr, NxDomain, vec![]),
            ("10.in-addr.arpa", Soa, Data, vec!["SOA"]),
            ("1.0.0.11.in-addr.arpa", Ptr, Refused, vec![]),
        ];
        for (name, qtype, kind, records) in cases {
            let got = ask(&snap, name, qtype);
            let shown: Vec<String> = got.records.iter().map(show).collect();
            assert_eq!(
                (got.kind, shown),
                (kind, records.iter().map(|r| r.to_string()).collect()),
                "{name} {qtype:?}"
            );
        }
    }

    #[test]
    fn srv_carries_glue_and_zone() {
        let snap = snapshot();
        let got = ask(&snap, "db.prod.db.example", QType::Srv);
        assert_eq!(
            got.target_zone, 1,
            "targets live in the zone of the question"
        );
        let glue: Vec<_> = got.glue.iter().map(|m| m.name()).collect();
        assert_eq!(glue, ["db-0", "db-1"]);
        assert_eq!(got.apex_labels, 2);
        assert!(
            ask(&snap, "db.prod.roster.internal", QType::Any)
                .glue
                .is_empty()
        );
    }

    #[test]
    fn not_ready_until_first_snapshot() {
        let labels: Vec<&[u8]> = vec![b"db-0", b"db", b"prod", b"roster", b"internal"];
        assert_eq!(
            answer(&settings(), None, &labels, QType::A).kind,
            AnswerKind::NotReady
        );
        let outside: Vec<&[u8]> = vec![b"example", b"com"];
        assert_eq!(
            answer(&settings(), None, &outside, QType::A).kind,
            AnswerKind::Refused
        );
    }
}
