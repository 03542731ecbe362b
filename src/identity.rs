//! Who is a member (SPEC §2): a pure function from a [`PodView`] to a [`Claim`].
//!
//! Nothing here knows about other pods: conflicts between claims are the membership layer's job.
//! Everything a claim needs later (name, addresses, ports, the conflict rank) is decided here
//! once, so the rest of the pipeline never looks at labels or annotations again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::source::{PodView, Protocol};

/// Settings that change how pods become members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Publish members that are not ready (SPEC §2 `publish_not_ready`).
    pub publish_not_ready: bool,
    /// A pod owned by a StatefulSet wins every conflict with a pod that is not, so that labels
    /// alone can never take a StatefulSet member's name (`members.protect_statefulset_names`).
    pub protect_statefulset_names: bool,
    /// Member pods (and pods skipped with a reason) kept at most; beyond it new ones are
    /// refused until others go (`members.max_pods`).
    pub max_pods: usize,
    /// Members a service publishes at most, lowest ordinals first (`members.max_per_service`).
    pub max_per_service: usize,
    /// Octets a member's `<member>.<service>.<namespace>.` may take in a DNS name under the
    /// longest zone served: 255 less that zone's own.
    pub name_room: usize,
}

pub const DEFAULT_MAX_PODS: usize = 1_000_000;
pub const DEFAULT_MAX_PER_SERVICE: usize = 10_000;

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            publish_not_ready: false,
            protect_statefulset_names: false,
            max_pods: DEFAULT_MAX_PODS,
            max_per_service: DEFAULT_MAX_PER_SERVICE,
            name_room: 255 - "roster.internal.".len() - 1,
        }
    }
}

/// A service: its relative DNS name `<service>.<namespace>`, which is also its key everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(Arc<str>);

impl ServiceId {
    /// Both parts must already be valid DNS labels (so neither contains a dot).
    pub fn new(namespace: &str, service: &str) -> Self {
        Self(format!("{service}.{namespace}").into())
    }

    pub fn service(&self) -> &str {
        self.0.split_once('.').map_or(&*self.0, |(s, _)| s)
    }

    pub fn namespace(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, n)| n)
    }

    /// `<service>.<namespace>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ServiceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a member holds its name without records (it answers NODATA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unpublished {
    NoIp,
    Terminating,
    NotReady,
}

impl Unpublished {
    pub fn as_str(self) -> &'static str {
        match self {
            Unpublished::NoIp => "no_ip",
            Unpublished::Terminating => "terminating",
            Unpublished::NotReady => "not_ready",
        }
    }
}

/// Why a pod that asks to be a member cannot have a name. A closed set: metrics use it as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    NoOrdinal,
    InvalidOrdinal,
    InvalidNamespace,
    InvalidService,
    InvalidSet,
    InvalidMember,
    /// `<member>.<service>.<namespace>.<zone>` would be longer than a DNS name may be.
    NameTooLong,
}

impl SkipReason {
    pub const ALL: [SkipReason; 7] = [
        SkipReason::NoOrdinal,
        SkipReason::InvalidOrdinal,
        SkipReason::InvalidNamespace,
        SkipReason::InvalidService,
        SkipReason::InvalidSet,
        SkipReason::InvalidMember,
        SkipReason::NameTooLong,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoOrdinal => "no_ordinal",
            SkipReason::InvalidOrdinal => "invalid_ordinal",
            SkipReason::InvalidNamespace => "invalid_namespace",
            SkipReason::InvalidService => "invalid_service",
            SkipReason::InvalidSet => "invalid_set",
            SkipReason::InvalidMember => "invalid_member",
            SkipReason::NameTooLong => "name_too_long",
        }
    }
}

/// A named container port: the `_<name>._<proto>` SRV names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    pub name: Box<str>,
    pub protocol: Protocol,
    pub number: u16,
}

/// A pod's claim on a member name, with everything needed to publish it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub service: ServiceId,
    /// `<set>-<ordinal>`.
    pub member: Box<str>,
    /// The pod's name, when it is not the member name (members named by label): StatefulSet
    /// pods, the common case, keep no second copy.
    pub pod: Option<Box<str>>,
    pub ordinal: u32,
    pub ips: Box<[IpAddr]>,
    pub ready: bool,
    pub terminating: bool,
    /// Owned by a StatefulSet, under `protect_statefulset_names`: first in every conflict.
    pub protected: bool,
    /// Seconds since the Unix epoch; a pod without a timestamp ranks as the newest.
    pub created: Option<i64>,
    /// `None` when the member is published.
    pub unpublished: Option<Unpublished>,
    /// Port of the SRV records at the service's own name.
    pub primary_port: Option<u16>,
    /// Named ports, in pod order, first of each (name, protocol).
    pub ports: Box<[NamedPort]>,
    /// Problems that do not stop the claim, reported when the claim changes.
    pub warnings: Box<[String]>,
}

impl Identity {
    pub fn is_published(&self) -> bool {
        self.unpublished.is_none()
    }

    /// The name of the pod making the claim.
    pub fn pod(&self) -> &str {
        self.pod.as_deref().unwrap_or(&self.member)
    }

    /// `<member>.<service>.<namespace>`: the name of SRV and PTR targets, without the zone.
    pub fn relative(&self) -> String {
        format!("{}.{}", self.member, self.service)
    }

    /// The labels of [`Identity::relative`], without allocating.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> + Clone {
        std::iter::once(self.member.as_bytes())
            .chain(self.service.as_str().split('.').map(str::as_bytes))
    }

    /// The addresses served for the member: IPv4, when published.
    pub fn v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let published = self.is_published();
        self.ips
            .iter()
            .filter(move |_| published)
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
    }

    /// The addresses served for the member: IPv6, when published.
    pub fn v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        let published = self.is_published();
        self.ips
            .iter()
            .filter(move |_| published)
            .filter_map(|ip| match ip {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
    }

    /// Conflict order (SPEC §2): not terminating, then ready, then older, then (by the caller)
    /// pod name; before all of them, under `protect_statefulset_names`, owned by a StatefulSet.
    /// Lower ranks win.
    pub fn rank(&self) -> (bool, bool, bool, i64) {
        (
            !self.protected,
            self.terminating,
            !self.ready,
            self.created.unwrap_or(i64::MAX),
        )
    }
}

/// What a pod is to roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not a member of any service (most pods of a cluster); roster forgets it.
    NotMember,
    /// Asks to be a member but cannot have a name.
    Skipped {
        reason: SkipReason,
        detail: String,
    },
    Member(Arc<Identity>),
}

/// RFC 1123 label: lower-case letters, digits and `-`, 1 to 63 characters, alphanumeric at both
/// ends.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| edge(c) || c == b'-')
}

/// A decimal ordinal as Kubernetes writes it: digits without a leading zero (except `0`).
fn parse_ordinal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn skip(reason: SkipReason, detail: String) -> Claim {
    Claim::Skipped { reason, detail }
}

/// Decides what a pod is (SPEC §2).
pub fn claim(pod: &PodView, config: IdentityConfig) -> Claim {
    if pod.finished {
        return Claim::NotMember;
    }
    let service = match (&pod.label_service, &pod.statefulset, &pod.subdomain) {
        (Some(s), _, _) => s.as_str(),
        (None, Some(_), Some(sub)) if !sub.is_empty() => sub.as_str(),
        _ => return Claim::NotMember,
    };
    if !is_dns_label(&pod.namespace) {
        return skip(
            SkipReason::InvalidNamespace,
            format!("namespace {:?} is not a DNS label", pod.namespace),
        );
    }
    if !is_dns_label(service) {
        return skip(
            SkipReason::InvalidService,
            format!("service name {service:?} is not a DNS label"),
        );
    }
    let set = pod
        .label_name
        .as_deref()
        .or(pod.statefulset.as_deref())
        .unwrap_or(service);
    if !is_dns_label(set) {
        return skip(
            SkipReason::InvalidSet,
            format!("set name {set:?} is not a DNS label"),
        );
    }

    let ordinal = match (&pod.label_ordinal, &pod.label_pod_index) {
        (Some(v), _) => parse_ordinal(v).ok_or_else(|| {
            format!(
                "label {} is {v:?}, not a decimal ordinal",
                crate::source::LABEL_ORDINAL
            )
        }),
        (None, Some(v)) => parse_ordinal(v).ok_or_else(|| {
            format!(
                "label {} is {v:?}, not a decimal ordinal",
                crate::source::LABEL_POD_INDEX
            )
        }),
        (None, None) => {
            let suffix = pod.name.strip_prefix(set).and_then(|r| r.strip_prefix('-'));
            match suffix.and_then(parse_ordinal) {
                Some(n) => Ok(n),
                None => {
                    return skip(
                        SkipReason::NoOrdinal,
                        format!(
                            "no ordinal: no {} or {} label, and the pod name is not {set}-<n>",
                            crate::source::LABEL_ORDINAL,
                            crate::source::LABEL_POD_INDEX
                        ),
                    );
                }
            }
        }
    };
    let ordinal = match ordinal {
        Ok(n) => n,
        Err(detail) => return skip(SkipReason::InvalidOrdinal, detail),
    };
    let member = format!("{set}-{ordinal}");
    if !is_dns_label(&member) {
        return skip(
            SkipReason::InvalidMember,
            format!("member name {member:?} is longer than 63 characters"),
        );
    }
    // Every answer naming the member (SRV targets, PTR) would be a packet clients refuse.
    let octets = member.len() + service.len() + pod.namespace.len() + 3;
    if octets > config.name_room {
        return skip(
            SkipReason::NameTooLong,
            format!(
                "{member}.{service}.{namespace}. takes {octets} octets, and the longest zone \
                 served leaves {} of a DNS name's 255",
                config.name_room,
                namespace = pod.namespace
            ),
        );
    }

    let mut warnings = Vec::new();
    for bad in &pod.bad_ips {
        warnings.push(format!("pod IP {bad:?} is not an IP address"));
    }
    let ports = named_ports(pod, &mut warnings);
    let primary_port = primary_port(pod, &mut warnings);

    let unpublished = if pod.terminating {
        Some(Unpublished::Terminating)
    } else if pod.ips.is_empty() {
        Some(Unpublished::NoIp)
    } else if !(pod.ready || config.publish_not_ready || pod.annotation_publish_not_ready) {
        Some(Unpublished::NotReady)
    } else {
        None
    };

    Claim::Member(Arc::new(Identity {
        service: ServiceId::new(&pod.namespace, service),
        pod: (pod.name != member).then(|| pod.name.as_str().into()),
        member: member.into_boxed_str(),
        ordinal,
        ips: pod.ips.as_slice().into(),
        ready: pod.ready,
        terminating: pod.terminating,
        protected: config.protect_statefulset_names && pod.statefulset.is_some(),
        created: pod.created,
        unpublished,
        primary_port,
        ports: ports.into(),
        warnings: warnings.into(),
    }))
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|&p| p != 0)
}

fn named_ports(pod: &PodView, warnings: &mut Vec<String>) -> Vec<NamedPort> {
    let mut out: Vec<NamedPort> = Vec::new();
    for p in &pod.ports {
        let Some(name) = p.name.as_deref() else {
            continue;
        };
        if !is_dns_label(name) {
            warnings.push(format!(
                "port name {name:?} is not a DNS label; it has no SRV name"
            ));
            continue;
        }
        let Some(protocol) = p.protocol else {
            warnings.push(format!(
                "port {name:?} has a protocol other than TCP, UDP or SCTP"
            ));
            continue;
        };
        let Some(number) = port_number(p.number) else {
            warnings.push(format!(
                "port {name:?} has number {}, not 1-65535",
                p.number
            ));
            continue;
        };
        if !out
            .iter()
            .any(|o| *o.name == *name && o.protocol == protocol)
        {
            out.push(NamedPort {
                name: name.into(),
                protocol,
                number,
            });
        }
    }
    out
}

/// SPEC §2: the `roster.io/port` annotation (a name or a number), else the first port of the
/// first container. A bad annotation is reported and gives no primary port rather than a guess.
fn primary_port(pod: &PodView, warnings: &mut Vec<String>) -> Option<u16> {
    let annotation = crate::source::ANNOTATION_PORT;
    match pod.annotation_port.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => {
            let port = v.parse::<i32>().ok().and_then(port_number);
            if port.is_none() {
                warnings.push(format!(
                    "annotation {annotation} is {v:?}, not a port 1-65535"
                ));
            }
            port
        }
        Some(v) => {
            let port = pod
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(v))
                .and_then(|p| port_number(p.number));
            if port.is_none() {
                warnings.push(format!(
                    "annotation {annotation} names port {v:?}, which the pod lacks"
                ));
            }
            port
        }
        None => pod
            .ports
            .first()
            .filter(|p| p.container == 0)
            .and_then(|p| port_number(p.number)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::PortView;

    /// A ready StatefulSet member `db-0` of service `db` in `prod`, with one named TCP port.
    fn pod(name: &str) -> PodView {
        PodView {
            namespace: "prod".into(),
            name: name.into(),
            statefulset: Some("db".into()),
            subdomain: Some("db".into()),
            ips: vec!["10.0.0.1".parse().unwrap()],
            ready: true,
            created: Some(100),
            ports: vec![PortView {
                container: 0,
                name: Some("peer".into()),
                number: 2380,
                protocol: Some(Protocol::Tcp),
            }],
            ..Default::default()
        }
    }

    fn member(p: &PodView) -> Identity {
        match claim(p, IdentityConfig::default()) {
            Claim::Member(i) => Identity::clone(&i),
            other => panic!("expected a member, got {other:?}"),
        }
    }

    fn reason(p: &PodView) -> SkipReason {
        match claim(p, IdentityConfig::default()) {
            Claim::Skipped { reason, .. } => reason,
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "db", "db-0", "0", "a-b-c", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok:?}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64), "é"] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn membership_rules() {
        // (description, change, expected service or None for not a member)
        type Case = (&'static str, fn(&mut PodView), Option<&'static str>);
        let cases: &[Case] = &[
            ("statefulset with subdomain", |_| {}, Some("db.prod")),
            (
                "label wins over subdomain",
                |p| p.label_service = Some("other".into()),
                Some("other.prod"),
            ),
            (
                "label alone, no owner",
                |p| {
                    p.statefulset = None;
                    p.subdomain = None;
                    p.label_service = Some("db".into());
                },
                Some("db.prod"),
            ),
            (
                "subdomain without statefulset owner",
                |p| p.statefulset = None,
                None,
            ),
            (
                "statefulset without subdomain",
                |p| p.subdomain = None,
                None,
            ),
            (
                "empty subdomain",
                |p| p.subdomain = Some(String::new()),
                None,
            ),
            ("finished pod", |p| p.finished = true, None),
        ];
        for (what, change, want) in cases {
            let mut p = pod("db-0");
            change(&mut p);
            let got = match claim(&p, IdentityConfig::default()) {
                Claim::Member(i) => Some(i.service.to_string()),
                Claim::NotMember => None,
                Claim::Skipped { detail, .. } => panic!("{what}: skipped: {detail}"),
            };
            assert_eq!(got.as_deref(), *want, "{what}");
        }
    }

    #[test]
    fn set_name_and_ordinal_precedence() {
        type Case = (&'static str, fn(&mut PodView), &'static str, u32);
        let cases: &[Case] = &[
            ("pod name suffix", |_| {}, "db-0", 0),
            (
                "pod-index label over name",
                |p| p.label_pod_index = Some("4".into()),
                "db-4",
                4,
            ),
            (
                "roster ordinal over pod-index",
                |p| {
                    p.label_pod_index = Some("4".into());
                    p.label_ordinal = Some("7".into());
                },
                "db-7",
                7,
            ),
            (
                "name label over statefulset",
                |p| {
                    p.label_name = Some("pg".into());
                    p.label_ordinal = Some("2".into());
                },
                "pg-2",
                2,
            ),
            (
                "service name when no set",
                |p| {
                    p.statefulset = None;
                    p.label_service = Some("cache".into());
                    p.name = "cache-12".into();
                },
                "cache-12",
                12,
            ),
            (
                "multi-digit suffix",
                |p| p.name = "db-105".into(),
                "db-105",
                105,
            ),
        ];
        for (what, change, want_member, want_ordinal) in cases {
            let mut p = pod("db-0");
            change(&mut p);
            let m = member(&p);
            assert_eq!(
                (&*m.member, m.ordinal),
                (*want_member, *want_ordinal),
                "{what}"
            );
        }
    }

    #[test]
    fn skip_reasons() {
        type Case = (&'static str, fn(&mut PodView), SkipReason);
        let cases: &[Case] = &[
            (
                "name does not end in an ordinal",
                |p| p.name = "db-abc".into(),
                SkipReason::NoOrdinal,
            ),
            (
                "name of another set",
                |p| p.name = "web-0".into(),
                SkipReason::NoOrdinal,
            ),
            (
                "leading zero in name",
                |p| p.name = "db-01".into(),
                SkipReason::NoOrdinal,
            ),
            (
                "set name is a prefix only",
                |p| p.name = "dbx-0".into(),
                SkipReason::NoOrdinal,
            ),
            (
                "bad ordinal label",
                |p| p.label_ordinal = Some("-1".into()),
                SkipReason::InvalidOrdinal,
            ),
            (
                "bad pod-index label",
                |p| p.label_pod_index = Some("one".into()),
                SkipReason::InvalidOrdinal,
            ),
            (
                "bad service label",
                |p| p.label_service = Some("My_DB".into()),
                SkipReason::InvalidService,
            ),
            (
                "empty service label",
                |p| p.label_service = Some("".into()),
                SkipReason::InvalidService,
            ),
            (
                "bad set label",
                |p| p.label_name = Some("DB".into()),
                SkipReason::InvalidSet,
            ),
            (
                "member name too long",
                |p| {
                    p.label_name = Some("x".repeat(62));
                    p.label_ordinal = Some("10".into());
                },
                SkipReason::InvalidMember,
            ),
            (
                "bad namespace",
                |p| p.namespace = "Prod".into(),
                SkipReason::InvalidNamespace,
            ),
        ];
        for (what, change, want) in cases {
            let mut p = pod("db-0");
            change(&mut p);
            assert_eq!(reason(&p), *want, "{what}");
        }
    }

    #[test]
    fn publication() {
        type Case = (&'static str, bool, fn(&mut PodView), Option<Unpublished>);
        let cases: &[Case] = &[
            ("ready with ip", false, |_| {}, None),
            (
                "not ready",
                false,
                |p| p.ready = false,
                Some(Unpublished::NotReady),
            ),
            ("not ready, switch on", true, |p| p.ready = false, None),
            (
                "not ready, annotation",
                false,
                |p| {
                    p.ready = false;
                    p.annotation_publish_not_ready = true;
                },
                None,
            ),
            ("no ip", false, |p| p.ips.clear(), Some(Unpublished::NoIp)),
            (
                "no ip, switch on",
                true,
                |p| p.ips.clear(),
                Some(Unpublished::NoIp),
            ),
            (
                "terminating",
                false,
                |p| p.terminating = true,
                Some(Unpublished::Terminating),
            ),
            (
                "terminating, switch on",
                true,
                |p| p.terminating = true,
                Some(Unpublished::Terminating),
            ),
        ];
        for (what, switch, change, want) in cases {
            let mut p = pod("db-0");
            change(&mut p);
            let Claim::Member(m) = claim(
                &p,
                IdentityConfig {
                    publish_not_ready: *switch,
                    ..Default::default()
                },
            ) else {
                panic!("{what}: not a member")
            };
            assert_eq!(m.unpublished, *want, "{what}");
        }
    }

    #[test]
    fn ports() {
        let port = |container, name: Option<&str>, number, protocol| PortView {
            container,
            name: name.map(Into::into),
            number,
            protocol,
        };
        let mut p = pod("db-0");
        p.ports = vec![
            port(0, None, 5432, Some(Protocol::Tcp)),
            port(0, Some("peer"), 2380, Some(Protocol::Tcp)),
            port(1, Some("gossip"), 7946, Some(Protocol::Udp)),
            port(1, Some("gossip"), 7946, Some(Protocol::Tcp)),
            port(1, Some("peer"), 9999, Some(Protocol::Tcp)),
            port(1, Some("Bad_Name"), 1, Some(Protocol::Tcp)),
            port(1, Some("weird"), 2, None),
        ];
        let m = member(&p);
        assert_eq!(
            m.primary_port,
            Some(5432),
            "first port of the first container"
        );
        let names: Vec<_> = m
            .ports
            .iter()
            .map(|n| (&*n.name, n.protocol.label(), n.number))
            .collect();
        assert_eq!(
            names,
            [
                ("peer", "tcp", 2380),
                ("gossip", "udp", 7946),
                ("gossip", "tcp", 7946)
            ],
            "named ports of every container, first of each name and protocol"
        );
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);

        p.annotation_port = Some("gossip".into());
        assert_eq!(member(&p).primary_port, Some(7946), "annotation by name");
        p.annotation_port = Some("8080".into());
        assert_eq!(member(&p).primary_port, Some(8080), "annotation by number");
        p.annotation_port = Some("nope".into());
        let m = member(&p);
        assert_eq!(m.primary_port, None, "annotation naming no port");
        assert!(
            m.warnings.iter().any(|w| w.contains("nope")),
            "{:?}",
            m.warnings
        );
        p.annotation_port = Some("70000".into());
        assert_eq!(member(&p).primary_port, None, "annotation out of range");

        p.annotation_port = None;
        p.ports = vec![port(1, Some("peer"), 2380, Some(Protocol::Tcp))];
        assert_eq!(member(&p).primary_port, None, "first container has no port");
    }

    #[test]
    fn protected_statefulset_pods_win_every_conflict() {
        // The StatefulSet's own db-0: terminating, not ready and newer, so it loses by SPEC §2.
        let mut owned = pod("db-0");
        owned.terminating = true;
        owned.ready = false;
        owned.created = Some(500);
        // A pod that only carries labels asking for the same name.
        let mut labelled = pod("intruder");
        labelled.statefulset = None;
        labelled.subdomain = None;
        labelled.label_service = Some("db".into());
        labelled.label_name = Some("db".into());
        labelled.label_ordinal = Some("0".into());
        let rank = |p: &PodView, protect: bool| match claim(
            p,
            IdentityConfig {
                protect_statefulset_names: protect,
                ..Default::default()
            },
        ) {
            Claim::Member(i) => {
                assert_eq!(&*i.member, "db-0");
                i.rank()
            }
            other => panic!("expected a member, got {other:?}"),
        };
        assert!(rank(&labelled, false) < rank(&owned, false), "SPEC order");
        assert!(rank(&owned, true) < rank(&labelled, true), "protected");
        // Between two StatefulSet pods the SPEC order still decides.
        assert!(rank(&pod("db-0"), true) < rank(&owned, true));
    }

    #[test]
    fn rank_orders_conflicts() {
        let base = member(&pod("db-0"));
        let with = |f: fn(&mut Identity)| {
            let mut i = base.clone();
            f(&mut i);
            i.rank()
        };
        assert!(
            base.rank() < with(|i| i.terminating = true),
            "not terminating wins"
        );
        assert!(base.rank() < with(|i| i.ready = false), "ready wins");
        assert!(base.rank() < with(|i| i.created = Some(200)), "older wins");
        assert!(
            base.rank() < with(|i| i.created = None),
            "a timestamp beats none"
        );
        assert!(
            with(|i| {
                i.terminating = false;
                i.ready = false;
                i.created = Some(1);
            }) < with(|i| i.terminating = true),
            "terminating outweighs readiness and age"
        );
    }
}
