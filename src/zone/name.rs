//! Names: validated zone names, and the one place a query name is parsed into a typed
//! [`QueryName`]. Every later step matches on the variant; leftover labels never reach it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::identity::is_dns_label;
use crate::source::Protocol;

/// A fully qualified domain name from configuration, lower-case, without the root label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName {
    labels: Vec<Box<str>>,
}

impl DomainName {
    /// Accepts the name with or without the final dot, in any case (SPEC §5). Labels may hold
    /// letters, digits, `-` and `_`; the root itself is refused (roster never serves it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return Err(
                "the root zone cannot be served; name a zone such as roster.internal.".into(),
            );
        }
        if trimmed.len() > 253 {
            return Err(format!("{text:?} is longer than 253 characters"));
        }
        let mut labels = Vec::new();
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(format!("{text:?} has an empty label"));
            }
            if label.len() > 63 {
                return Err(format!("{text:?} has a label longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return Err(format!(
                    "{text:?}: label {label:?} may hold only letters, digits, '-' and '_'"
                ));
            }
            labels.push(label.to_ascii_lowercase().into_boxed_str());
        }
        Ok(Self { labels })
    }

    /// Octets the name takes on the wire, the root's included.
    pub fn wire_len(&self) -> usize {
        self.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1
    }

    /// Labels from the leftmost to the one below the root.
    pub fn labels(&self) -> &[Box<str>] {
        &self.labels
    }

    /// Whether `self` is `other` or below it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.labels.len() >= other.labels.len()
            && self.labels[self.labels.len() - other.labels.len()..] == other.labels[..]
    }

    /// Whether the query name (labels leftmost first) is this name or below it.
    fn contains(&self, query: &[&[u8]]) -> bool {
        query.len() >= self.labels.len()
            && query[query.len() - self.labels.len()..]
                .iter()
                .zip(&self.labels)
                .all(|(q, z)| q.eq_ignore_ascii_case(z.as_bytes()))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for label in &self.labels {
            write!(f, "{label}.")?;
        }
        Ok(())
    }
}

/// Address family of a reverse zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// A reverse zone (`….in-addr.arpa.` or `….ip6.arpa.`) and the address prefix it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverseZone {
    pub name: DomainName,
    pub family: Family,
    /// Octets (IPv4) or nibbles (IPv6) from the most significant end.
    prefix: Vec<u8>,
}

impl ReverseZone {
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = DomainName::parse(text)?;
        let labels = name.labels();
        let (family, digits) = match labels {
            [rest @ .., a, b] if &**a == "in-addr" && &**b == "arpa" => (Family::V4, rest),
            [rest @ .., a, b] if &**a == "ip6" && &**b == "arpa" => (Family::V6, rest),
            _ => return Err(format!("{text:?} is not under in-addr.arpa. or ip6.arpa.")),
        };
        let prefix: Option<Vec<u8>> = digits
            .iter()
            .rev()
            .map(|l| reverse_digit(family, l.as_bytes()))
            .collect();
        let prefix = prefix.ok_or_else(|| match family {
            Family::V4 => format!("{text:?}: labels under in-addr.arpa. must be octets 0-255"),
            Family::V6 => format!("{text:?}: labels under ip6.arpa. must be single hex digits"),
        })?;
        let max = match family {
            Family::V4 => 4,
            Family::V6 => 32,
        };
        if prefix.len() > max {
            return Err(format!("{text:?} has more labels than an address"));
        }
        Ok(Self {
            name,
            family,
            prefix,
        })
    }
}

/// One label of a reverse name: a decimal octet without leading zeros, or one hex nibble.
fn reverse_digit(family: Family, label: &[u8]) -> Option<u8> {
    match family {
        Family::V4 => {
            let s = std::str::from_utf8(label).ok()?;
            if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
                return None;
            }
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse::<u16>().ok().and_then(|n| u8::try_from(n).ok())
        }
        Family::V6 => match label {
            [c] => (*c as char).to_digit(16).map(|d| d as u8),
            _ => None,
        },
    }
}

/// A name below a forward zone, by what it can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardName<'q> {
    Apex,
    /// `<namespace>`: an empty non-terminal when the namespace has services.
    Namespace(&'q str),
    /// `<service>.<namespace>`; the string is that whole relative name.
    Service {
        key: &'q str,
    },
    /// `<member>.<service>.<namespace>`.
    Member {
        key: &'q str,
        member: &'q str,
    },
    /// `_<proto>.<service>.<namespace>`: an empty non-terminal.
    Protocol {
        key: &'q str,
        protocol: Protocol,
    },
    /// `_<port>._<proto>.<service>.<namespace>`.
    Port {
        key: &'q str,
        port: &'q str,
        protocol: Protocol,
    },
    /// A name that no pod can ever hold (too deep, or labels that are not DNS labels).
    Nonexistent,
}

/// A name below a reverse zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReverseName {
    Apex,
    Address(IpAddr),
    /// A partial address: exists while a published address lies in `low..=high`.
    Prefix {
        low: IpAddr,
        high: IpAddr,
    },
    Nonexistent,
}

/// A query name, parsed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryName<'q> {
    OutOfZone,
    Forward { zone: usize, name: ForwardName<'q> },
    Reverse { zone: usize, name: ReverseName },
}

/// The relative part of a forward name, dotted, in a buffer on the caller's stack: lookups then
/// borrow it instead of allocating.
pub struct NameBuf {
    buf: [u8; 255],
    len: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        Self {
            buf: [0; 255],
            len: 0,
        }
    }
}

impl NameBuf {
    fn join<'b>(&'b mut self, labels: &[&str]) -> &'b str {
        self.len = 0;
        for (i, label) in labels.iter().enumerate() {
            if i > 0 {
                self.buf[self.len] = b'.';
                self.len += 1;
            }
            self.buf[self.len..self.len + label.len()].copy_from_slice(label.as_bytes());
            self.len += label.len();
        }
        // Only DNS labels reach here, so the bytes are ASCII.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Parses `labels` (leftmost first, root excluded, as received) against the served zones.
/// Labels must already be lower-case (hickory hands them over as a `LowerName`).
pub fn parse<'q>(
    forward: &[DomainName],
    reverse: &[ReverseZone],
    labels: &'q [&'q [u8]],
    buf: &'q mut NameBuf,
) -> QueryName<'q> {
    if let Some(zone) = forward.iter().position(|z| z.contains(labels)) {
        let relative = &labels[..labels.len() - forward[zone].labels().len()];
        return QueryName::Forward {
            zone,
            name: parse_forward(relative, buf),
        };
    }
    if let Some(zone) = reverse.iter().position(|z| z.name.contains(labels)) {
        let relative = &labels[..labels.len() - reverse[zone].name.labels().len()];
        return QueryName::Reverse {
            zone,
            name: parse_reverse(&reverse[zone], relative),
        };
    }
    QueryName::OutOfZone
}

fn dns_label(label: &[u8]) -> Option<&str> {
    std::str::from_utf8(label).ok().filter(|s| is_dns_label(s))
}

/// `_name` where `name` is a DNS label.
fn underscored(label: &[u8]) -> Option<&str> {
    label.strip_prefix(b"_").and_then(dns_label)
}

fn parse_forward<'q>(relative: &'q [&'q [u8]], buf: &'q mut NameBuf) -> ForwardName<'q> {
    let nonexistent = ForwardName::Nonexistent;
    match relative {
        [] => ForwardName::Apex,
        [ns] => dns_label(ns).map_or(nonexistent, ForwardName::Namespace),
        [svc, ns] => match (dns_label(svc), dns_label(ns)) {
            (Some(svc), Some(ns)) => ForwardName::Service {
                key: buf.join(&[svc, ns]),
            },
            _ => nonexistent,
        },
        [first, svc, ns] => {
            let (Some(svc), Some(ns)) = (dns_label(svc), dns_label(ns)) else {
                return nonexistent;
            };
            if let Some(proto) = underscored(first) {
                match Protocol::from_label(proto) {
                    Some(protocol) => ForwardName::Protocol {
                        key: buf.join(&[svc, ns]),
                        protocol,
                    },
                    None => nonexistent,
                }
            } else if let Some(member) = dns_label(first) {
                ForwardName::Member {
                    key: buf.join(&[svc, ns]),
                    member,
                }
            } else {
                nonexistent
            }
        }
        [port, proto, svc, ns] => {
            let parts = (
                underscored(port),
                underscored(proto),
                dns_label(svc),
                dns_label(ns),
            );
            let (Some(port), Some(proto), Some(svc), Some(ns)) = parts else {
                return nonexistent;
            };
            match Protocol::from_label(proto) {
                Some(protocol) => ForwardName::Port {
                    key: buf.join(&[svc, ns]),
                    port,
                    protocol,
                },
                None => nonexistent,
            }
        }
        _ => nonexistent,
    }
}

fn parse_reverse(zone: &ReverseZone, relative: &[&[u8]]) -> ReverseName {
    if relative.is_empty() {
        return ReverseName::Apex;
    }
    let mut digits = zone.prefix.clone();
    for label in relative.iter().rev() {
        match reverse_digit(zone.family, label) {
            Some(d) => digits.push(d),
            None => return ReverseName::Nonexistent,
        }
    }
    match zone.family {
        Family::V4 => {
            if digits.len() > 4 {
                return ReverseName::Nonexistent;
            }
            let mut low = [0u8; 4];
            let mut high = [255u8; 4];
            low[..digits.len()].copy_from_slice(&digits);
            high[..digits.len()].copy_from_slice(&digits);
            let (low, high) = (Ipv4Addr::from(low), Ipv4Addr::from(high));
            if digits.len() == 4 {
                ReverseName::Address(IpAddr::V4(low))
            } else {
                ReverseName::Prefix {
                    low: IpAddr::V4(low),
                    high: IpAddr::V4(high),
                }
            }
        }
        Family::V6 => {
            if digits.len() > 32 {
                return ReverseName::Nonexistent;
            }
            let value = digits
                .iter()
                .fold(0u128, |acc, &d| (acc << 4) | u128::from(d));
            let free = 4 * (32 - digits.len() as u32);
            let low = value.checked_shl(free).unwrap_or(0);
            let high = low | 1u128.checked_shl(free).map_or(u128::MAX, |b| b - 1);
            if digits.len() == 32 {
                ReverseName::Address(IpAddr::V6(Ipv6Addr::from(low)))
            } else {
                ReverseName::Prefix {
                    low: IpAddr::V6(Ipv6Addr::from(low)),
                    high: IpAddr::V6(Ipv6Addr::from(high)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> (Vec<DomainName>, Vec<ReverseZone>) {
        (
            vec![DomainName::parse("roster.internal.").unwrap()],
            vec![
                ReverseZone::parse("10.in-addr.arpa").unwrap(),
                ReverseZone::parse("d.f.ip6.arpa.").unwrap(),
            ],
        )
    }

    fn run(name: &str, check: impl FnOnce(QueryName<'_>)) {
        let (fwd, rev) = zones();
        let lower = name.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower
            .trim_end_matches('.')
            .split('.')
            .map(str::as_bytes)
            .collect();
        let mut buf = NameBuf::default();
        check(parse(&fwd, &rev, &labels, &mut buf));
    }

    #[test]
    fn forward_names() {
        use ForwardName::*;
        let tcp = crate::source::Protocol::Tcp;
        let cases: Vec<(&str, ForwardName<'static>)> = vec![
            ("roster.internal.", Apex),
            ("ROSTER.Internal", Apex),
            ("prod.roster.internal.", Namespace("prod")),
            ("db.prod.roster.internal.", Service { key: "db.prod" }),
            (
                "db-0.db.prod.roster.internal.",
                Member {
                    key: "db.prod",
                    member: "db-0",
                },
            ),
            (
                "_tcp.db.prod.roster.internal.",
                Protocol {
                    key: "db.prod",
                    protocol: tcp,
                },
            ),
            (
                "_peer._tcp.db.prod.roster.internal.",
                Port {
                    key: "db.prod",
                    port: "peer",
                    protocol: tcp,
                },
            ),
            (
                "_peer._sctp.db.prod.roster.internal.",
                Port {
                    key: "db.prod",
                    port: "peer",
                    protocol: crate::source::Protocol::Sctp,
                },
            ),
            ("_peer._xyz.db.prod.roster.internal.", Nonexistent),
            ("_xyz.db.prod.roster.internal.", Nonexistent),
            ("x.db-0.db.prod.roster.internal.", Nonexistent),
            ("a.b.c.d.e.roster.internal.", Nonexistent),
            ("db_0.db.prod.roster.internal.", Nonexistent),
            ("-db.prod.roster.internal.", Nonexistent),
            ("_peer.db.prod.roster.internal.", Nonexistent),
        ];
        for (name, want) in cases {
            run(name, |got| {
                assert_eq!(
                    got,
                    QueryName::Forward {
                        zone: 0,
                        name: want
                    },
                    "{name}"
                );
            });
        }
    }

    #[test]
    fn out_of_zone() {
        for name in [
            "example.com.",
            "internal.",
            "roster.internal.evil.",
            "xroster.internal.",
        ] {
            run(name, |got| assert_eq!(got, QueryName::OutOfZone, "{name}"));
        }
    }

    #[test]
    fn reverse_names() {
        let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        let cases: Vec<(&str, usize, ReverseName)> = vec![
            ("10.in-addr.arpa.", 0, ReverseName::Apex),
            (
                "4.3.2.10.in-addr.arpa.",
                0,
                ReverseName::Address(v4("10.2.3.4")),
            ),
            (
                "2.10.in-addr.arpa.",
                0,
                ReverseName::Prefix {
                    low: v4("10.2.0.0"),
                    high: v4("10.2.255.255"),
                },
            ),
            ("5.4.3.2.10.in-addr.arpa.", 0, ReverseName::Nonexistent),
            ("256.3.2.10.in-addr.arpa.", 0, ReverseName::Nonexistent),
            ("04.3.2.10.in-addr.arpa.", 0, ReverseName::Nonexistent),
            (
                "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.",
                1,
                ReverseName::Address(v6("fd00:10:244:1::5")),
            ),
            (
                "0.0.d.f.ip6.arpa.",
                1,
                ReverseName::Prefix {
                    low: v6("fd00::"),
                    high: v6("fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                },
            ),
            ("g.d.f.ip6.arpa.", 1, ReverseName::Nonexistent),
        ];
        for (name, zone, want) in cases {
            run(name, |got| {
                assert_eq!(got, QueryName::Reverse { zone, name: want }, "{name}")
            });
        }
    }

    #[test]
    fn zone_name_validation() {
        assert_eq!(
            DomainName::parse("Roster.Internal").unwrap().to_string(),
            "roster.internal."
        );
        for bad in ["", ".", "a..b", "a b.c", &format!("{}.com", "x".repeat(64))] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "example.com",
            "300.in-addr.arpa",
            "ab.ip6.arpa",
            "1.2.3.4.5.in-addr.arpa",
        ] {
            assert!(ReverseZone::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ReverseZone::parse("in-addr.arpa").is_ok());
    }
}
