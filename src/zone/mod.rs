//! The zone: an immutable [`Snapshot`] of every name roster serves, and the pure functions that
//! answer from it. Nothing here does I/O or knows the wire format.
//!
//! The snapshot is built of persistent maps (`imbl`): the membership layer changes one service
//! in O(size of the service + log of the zone) and publishes a new snapshot in O(1), while every
//! query keeps reading the snapshot it started with. So a query never waits for a writer and
//! never sees half of a change, and a change never costs work proportional to the zone.

pub mod answer;
pub mod name;
pub mod serial;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::identity::{Identity, ServiceId, SkipReason, Unpublished};
use crate::source::PodKey;
use crate::source::Protocol;

pub use answer::{Answer, AnswerKind, QType, Rdata, Records, Resolution, answer, resolve};
pub use name::{DomainName, ReverseZone};

/// Everything about the served zones that comes from configuration, not from pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSettings {
    /// Forward zones; SRV and PTR targets use the first one that applies.
    pub zones: Vec<DomainName>,
    pub reverse_zones: Vec<ReverseZone>,
    /// TTL of member and service records.
    pub ttl: u32,
    /// TTL of negative answers: SOA minimum and SOA TTL (RFC 2308 §5).
    pub negative_ttl: u32,
    /// SOA MNAME and the target of the apex NS record.
    pub nameserver: DomainName,
    /// SOA RNAME (a mailbox written as a domain name).
    pub hostmaster: DomainName,
}

/// One member as the zone serves it: the identity that won the name (shared with the
/// membership layer, not copied), and what an operator needs to see why (`/members`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberNode {
    pub identity: Arc<Identity>,
    /// Other pods claiming the same name (they lost the conflict).
    pub contenders: Box<[Box<str>]>,
    /// The identity's ordinal, copied so that finding a member by ordinal reads only the
    /// service's array and not each identity it passes (a cache miss apiece at 100,000 members).
    ordinal: u32,
}

impl MemberNode {
    /// `<set>-<ordinal>`.
    pub fn name(&self) -> &str {
        &self.identity.member
    }

    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// The pod holding the name.
    pub fn pod(&self) -> &str {
        self.identity.pod()
    }

    /// Published members have at least one address; unpublished ones have none.
    pub fn is_published(&self) -> bool {
        self.identity.is_published()
    }

    pub fn v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.identity.v4()
    }

    pub fn v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.identity.v6()
    }

    /// Whether the two give the same DNS records (the other fields are diagnostics).
    fn same_records(&self, other: &Self) -> bool {
        let (a, b) = (&self.identity, &other.identity);
        (&a.member, a.ordinal, a.is_published(), &a.ips)
            == (&b.member, b.ordinal, b.is_published(), &b.ips)
    }
}

/// A pod that won its member name, as membership hands it over.
pub struct Holder<'a> {
    pub identity: &'a Arc<Identity>,
    pub contenders: Vec<&'a str>,
}

impl<'a> From<&'a Arc<Identity>> for Holder<'a> {
    fn from(identity: &'a Arc<Identity>) -> Self {
        Holder {
            identity,
            contenders: Vec::new(),
        }
    }
}

/// What replacing a service changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Only what `/members` shows (pod names, contenders, unpublished addresses).
    Diagnostics,
    /// The zone's records.
    Records,
}

/// An SRV record's variable part: which member, on which port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// Index into [`ServiceNode::members`].
    pub member: u32,
    pub port: u16,
}

/// The `_<name>._<proto>` SRV name of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortNode {
    pub name: Box<str>,
    pub protocol: Protocol,
    /// Published members that declare the port, by ordinal.
    pub targets: Box<[SrvTarget]>,
}

/// Every name at and below `<service>.<namespace>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNode {
    /// Members holding names (published or not), by ordinal then name: the order of every
    /// answer, so a cut answer keeps the lowest ordinals.
    pub members: Box<[MemberNode]>,
    /// SRV records at the service name: published members with a primary port.
    pub primary: Box<[SrvTarget]>,
    /// Named ports declared by any member holding a name, by (name, protocol).
    pub ports: Box<[PortNode]>,
}

impl ServiceNode {
    /// Builds the node from the identities that won their member names. `None` when no member
    /// holds a name (the service name then does not exist).
    pub fn build<'a, H: Into<Holder<'a>>>(holders: impl IntoIterator<Item = H>) -> Option<Self> {
        let mut holders: Vec<Holder<'a>> = holders.into_iter().map(Into::into).collect();
        if holders.is_empty() {
            return None;
        }
        holders.sort_by(|a, b| {
            (a.identity.ordinal, &a.identity.member).cmp(&(b.identity.ordinal, &b.identity.member))
        });
        let members: Box<[MemberNode]> = holders
            .iter()
            .map(|h| MemberNode {
                identity: h.identity.clone(),
                contenders: h.contenders.iter().map(|&c| c.into()).collect(),
                ordinal: h.identity.ordinal,
            })
            .collect();
        let winners: Vec<&Identity> = holders.iter().map(|h| &**h.identity).collect();

        let primary = winners
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_published())
            .filter_map(|(i, id)| {
                id.primary_port.map(|port| SrvTarget {
                    member: i as u32,
                    port,
                })
            })
            .collect();

        let mut port_names: Vec<(&str, Protocol)> = winners
            .iter()
            .flat_map(|id| id.ports.iter().map(|p| (&*p.name, p.protocol)))
            .collect();
        port_names.sort();
        port_names.dedup();
        let ports = port_names
            .into_iter()
            .map(|(name, protocol)| PortNode {
                name: name.into(),
                protocol,
                targets: winners
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| id.is_published())
                    .filter_map(|(i, id)| {
                        id.ports
                            .iter()
                            .find(|p| &*p.name == name && p.protocol == protocol)
                            .map(|p| SrvTarget {
                                member: i as u32,
                                port: p.number,
                            })
                    })
                    .collect(),
            })
            .collect();

        Some(ServiceNode {
            members,
            primary,
            ports,
        })
    }

    /// The member named `<set>-<ordinal>`: found by its ordinal (members are ordered by it),
    /// then by name among the members of that ordinal (one per set).
    pub fn member(&self, name: &str) -> Option<&MemberNode> {
        let ordinal: u32 = name.rsplit_once('-')?.1.parse().ok()?;
        let start = self.members.partition_point(|m| m.ordinal() < ordinal);
        self.members[start..]
            .iter()
            .take_while(|m| m.ordinal() == ordinal)
            .find(|m| m.name() == name)
    }

    pub fn port(&self, name: &str, protocol: Protocol) -> Option<&PortNode> {
        self.ports
            .binary_search_by(|p| (&*p.name, p.protocol).cmp(&(name, protocol)))
            .ok()
            .map(|i| &self.ports[i])
    }

    /// Whether the two give the same DNS records.
    pub fn same_records(&self, other: &Self) -> bool {
        self.members.len() == other.members.len()
            && self
                .members
                .iter()
                .zip(other.members.iter())
                .all(|(a, b)| a.same_records(b))
            && self.primary == other.primary
            && self.ports == other.ports
    }

    pub fn has_protocol(&self, protocol: Protocol) -> bool {
        self.ports.iter().any(|p| p.protocol == protocol)
    }

    fn published(&self) -> impl Iterator<Item = &MemberNode> {
        self.members.iter().filter(|m| m.is_published())
    }
}

/// A persistent map hashed with foldhash rather than SipHash (the default): its keys come from
/// pods, not from queries, so SipHash's resistance to chosen keys buys nothing here.
type FastMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// Every name roster serves, at one moment. Cheap to clone: the maps share structure.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// SOA serial of this content (RFC 1982 arithmetic; see [`serial`]).
    pub serial: u32,
    services: FastMap<ServiceId, Arc<ServiceNode>>,
    /// Services per namespace: `<namespace>.<zone>` exists (NODATA) while this is non-zero.
    namespaces: FastMap<Box<str>, u32>,
    /// Published addresses → the members holding them, for PTR.
    reverse: imbl::OrdMap<IpAddr, Arc<[Arc<Identity>]>>,
    /// Members holding names, by state (published, no IP, not ready, terminating).
    members: [usize; 4],
    /// Diagnostics: pods that ask to be members but cannot have a name.
    skipped: imbl::OrdMap<PodKey, Skipped>,
}

/// A pod that cannot have a name, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub reason: SkipReason,
    pub detail: Arc<str>,
}

fn state_index(u: Option<Unpublished>) -> usize {
    match u {
        None => 0,
        Some(Unpublished::NoIp) => 1,
        Some(Unpublished::NotReady) => 2,
        Some(Unpublished::Terminating) => 3,
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("serial", &self.serial)
            .field("services", &self.services.len())
            .field("addresses", &self.reverse.len())
            .finish()
    }
}

/// A node's published members, sorted by where their identities are: two nodes share a member
/// when they hold the same `Arc`, not an equal one.
fn published(node: Option<&ServiceNode>) -> Vec<&Arc<Identity>> {
    let mut members: Vec<&Arc<Identity>> = node
        .into_iter()
        .flat_map(ServiceNode::published)
        .map(|m| &m.identity)
        .collect();
    members.sort_unstable_by_key(|id| Arc::as_ptr(id));
    members
}

fn holds(members: &[&Arc<Identity>], id: &Arc<Identity>) -> bool {
    members
        .binary_search_by_key(&Arc::as_ptr(id), |m| Arc::as_ptr(m))
        .is_ok()
}

impl Snapshot {
    /// `key` is `<service>.<namespace>`.
    pub fn service(&self, key: &str) -> Option<&ServiceNode> {
        self.services.get(key).map(|s| &**s)
    }

    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|&n| n > 0)
    }

    /// The published members holding `ip`, by relative name.
    pub fn reverse(&self, ip: &IpAddr) -> Option<&[Arc<Identity>]> {
        self.reverse.get(ip).map(|n| &**n)
    }

    /// Whether any published address lies in `low..=high` (an empty non-terminal in a reverse
    /// zone).
    pub fn has_address_in(&self, low: IpAddr, high: IpAddr) -> bool {
        self.reverse.range(low..=high).next().is_some()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn services(&self) -> impl Iterator<Item = (&ServiceId, &ServiceNode)> {
        self.services.iter().map(|(k, v)| (k, &**v))
    }

    /// Members holding names, by state: published, no IP, not ready, terminating.
    pub fn member_counts(&self) -> [usize; 4] {
        self.members
    }

    pub fn skipped(&self) -> impl Iterator<Item = (&PodKey, &Skipped)> {
        self.skipped.iter()
    }

    pub fn set_skipped(&mut self, pod: &PodKey, skipped: Option<Skipped>) {
        match skipped {
            Some(s) => {
                self.skipped.insert(pod.clone(), s);
            }
            None => {
                self.skipped.remove(pod);
            }
        }
    }

    /// Replaces one service's names and says what changed. Costs the size of the old and new
    /// node, plus a logarithm of the zone.
    pub fn set_service(&mut self, id: &ServiceId, node: Option<ServiceNode>) -> Change {
        let old = self.services.get(id).cloned();
        let change = match (old.as_deref(), node.as_ref()) {
            (None, None) => Change::None,
            (Some(a), Some(b)) if a == b => Change::None,
            (Some(a), Some(b)) if a.same_records(b) => Change::Diagnostics,
            _ => Change::Records,
        };
        if change == Change::None {
            return change;
        }
        for m in old.iter().flat_map(|o| o.members.iter()) {
            self.members[state_index(m.identity.unpublished)] -= 1;
        }
        for m in node.iter().flat_map(|n| n.members.iter()) {
            self.members[state_index(m.identity.unpublished)] += 1;
        }
        // A member whose identity both nodes share keeps its addresses: only the others move
        // in the reverse map, where each move copies a path of the tree.
        let (before, after) = (published(old.as_deref()), published(node.as_ref()));
        for m in before.iter().filter(|m| !holds(&after, m)) {
            for ip in m.ips.iter() {
                self.unlink_address(*ip, m);
            }
        }
        for m in after.iter().filter(|m| !holds(&before, m)) {
            for ip in m.ips.iter() {
                self.link_address(*ip, m);
            }
        }
        match (old.is_some(), node) {
            (false, Some(new)) => {
                *self.namespaces.entry(id.namespace().into()).or_insert(0) += 1;
                self.services.insert(id.clone(), Arc::new(new));
            }
            (true, Some(new)) => {
                self.services.insert(id.clone(), Arc::new(new));
            }
            (true, None) => {
                self.services.remove(id);
                let namespace: Box<str> = id.namespace().into();
                let left = self
                    .namespaces
                    .get(&namespace)
                    .map_or(0, |n| n.saturating_sub(1));
                if left == 0 {
                    self.namespaces.remove(&namespace);
                } else {
                    self.namespaces.insert(namespace, left);
                }
            }
            (false, None) => {}
        }
        change
    }

    fn link_address(&mut self, ip: IpAddr, member: &Arc<Identity>) {
        // Mostly the address is new: one walk down the tree, not a lookup and an insert.
        let Some(others) = self.reverse.insert(ip, Arc::from([member.clone()])) else {
            return;
        };
        let mut holders: Vec<Arc<Identity>> = others
            .iter()
            .filter(|h| holder_key(h) != holder_key(member))
            .cloned()
            .collect();
        let at = holders.partition_point(|h| holder_key(h) < holder_key(member));
        holders.insert(at, member.clone());
        self.reverse.insert(ip, holders.into());
    }

    fn unlink_address(&mut self, ip: IpAddr, member: &Identity) {
        let Some(holders) = self.reverse.remove(&ip) else {
            return;
        };
        let rest: Vec<Arc<Identity>> = holders
            .iter()
            .filter(|h| holder_key(h) != holder_key(member))
            .cloned()
            .collect();
        if !rest.is_empty() {
            self.reverse.insert(ip, rest.into());
        }
    }
}

/// Holders of one address are sorted by this, and one member holds it once.
fn holder_key(id: &Identity) -> (&ServiceId, &str) {
    (&id.service, &id.member)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::{NamedPort, Unpublished};

    /// A published member of `service` with one address and a primary port.
    pub fn identity(service: &ServiceId, member: &str, ordinal: u32, ip: &str) -> Arc<Identity> {
        Arc::new(Identity {
            service: service.clone(),
            member: member.into(),
            pod: None,
            ordinal,
            ips: vec![ip.parse().unwrap()].into(),
            ready: true,
            terminating: false,
            protected: false,
            created: Some(1),
            unpublished: None,
            primary_port: Some(5432),
            ports: vec![NamedPort {
                name: "peer".into(),
                protocol: Protocol::Tcp,
                number: 7000,
            }]
            .into(),
            warnings: Box::new([]),
        })
    }

    #[test]
    fn service_node_orders_by_ordinal_and_finds_by_name() {
        let svc = ServiceId::new("prod", "db");
        let ids = [
            identity(&svc, "db-10", 10, "10.0.0.10"),
            identity(&svc, "db-2", 2, "10.0.0.2"),
            identity(&svc, "db-0", 0, "10.0.0.1"),
        ];
        let node = ServiceNode::build(&ids).unwrap();
        let order: Vec<_> = node.members.iter().map(|m| m.name()).collect();
        assert_eq!(order, ["db-0", "db-2", "db-10"]);
        assert_eq!(
            node.member("db-10").unwrap().identity.relative(),
            "db-10.db.prod"
        );
        assert!(node.member("db-1").is_none());
        assert!(
            node.member("db-010").is_none(),
            "not the canonical name of ordinal 10"
        );
        assert!(node.member("db").is_none());
        assert_eq!(node.primary.len(), 3);
        assert_eq!(node.port("peer", Protocol::Tcp).unwrap().targets.len(), 3);
        assert!(node.port("peer", Protocol::Udp).is_none());
    }

    #[test]
    fn unpublished_members_hold_names_without_records() {
        let svc = ServiceId::new("prod", "db");
        let mut id = identity(&svc, "db-0", 0, "10.0.0.1");
        Arc::make_mut(&mut id).unpublished = Some(Unpublished::NotReady);
        let node = ServiceNode::build([&id]).unwrap();
        let m = node.member("db-0").unwrap();
        assert!(!m.is_published());
        assert_eq!(m.v4().count(), 0, "no addresses served");
        assert!(node.primary.is_empty());
        let port = node
            .port("peer", Protocol::Tcp)
            .expect("the SRV name exists");
        assert!(port.targets.is_empty(), "but has no records");
    }

    #[test]
    fn snapshot_tracks_namespaces_and_addresses() {
        let mut snap = Snapshot::default();
        let a = ServiceId::new("prod", "db");
        let b = ServiceId::new("prod", "cache");
        let ida = identity(&a, "db-0", 0, "10.0.0.1");
        let idb = identity(&b, "cache-0", 0, "10.0.0.1");
        assert_eq!(
            snap.set_service(&a, ServiceNode::build([&ida])),
            Change::Records
        );
        assert_eq!(
            snap.set_service(&b, ServiceNode::build([&idb])),
            Change::Records
        );
        assert_eq!(
            snap.set_service(&b, ServiceNode::build([&idb])),
            Change::None,
            "no change, no bump"
        );
        let mut renamed = idb.clone();
        Arc::make_mut(&mut renamed).pod = Some("cache-0-new".into());
        assert_eq!(
            snap.set_service(&b, ServiceNode::build([&renamed])),
            Change::Diagnostics,
            "another pod, the same records"
        );
        assert_eq!(snap.member_counts(), [2, 0, 0, 0]);
        assert!(snap.has_namespace("prod"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let names: Vec<_> = snap
            .reverse(&ip)
            .unwrap()
            .iter()
            .map(|n| n.relative())
            .collect();
        assert_eq!(names, ["cache-0.cache.prod", "db-0.db.prod"]);

        let before = snap.clone();
        snap.set_service(&a, None);
        assert_eq!(snap.reverse(&ip).unwrap().len(), 1);
        assert!(snap.has_namespace("prod"));
        snap.set_service(&b, None);
        assert!(!snap.has_namespace("prod"));
        assert!(snap.reverse(&ip).is_none());
        assert!(!snap.has_address_in("10.0.0.0".parse().unwrap(), "10.0.0.255".parse().unwrap()));
        // The clone taken before is untouched: readers keep a consistent view.
        assert_eq!(before.service_count(), 2);
        assert_eq!(before.reverse(&ip).unwrap().len(), 2);
    }

    /// PTR names follow a service's change member by member: those kept, moved, rebuilt with
    /// the same address, unpublished and added.
    #[test]
    fn reverse_names_follow_each_member_of_a_changed_service() {
        let svc = ServiceId::new("prod", "db");
        let kept = identity(&svc, "db-0", 0, "10.0.0.1");
        let moved = identity(&svc, "db-1", 1, "10.0.0.2");
        let rebuilt = identity(&svc, "db-2", 2, "10.0.0.3");
        let hidden = identity(&svc, "db-3", 3, "10.0.0.4");
        let mut snap = Snapshot::default();
        snap.set_service(&svc, ServiceNode::build([&kept, &moved, &rebuilt, &hidden]));

        let moved_now = identity(&svc, "db-1", 1, "10.0.0.12");
        let mut rebuilt_now = (*rebuilt).clone();
        rebuilt_now.pod = Some("db-2-new".into());
        let rebuilt_now = Arc::new(rebuilt_now);
        let mut hidden_now = (*hidden).clone();
        hidden_now.unpublished = Some(Unpublished::NotReady);
        let hidden_now = Arc::new(hidden_now);
        let added = identity(&svc, "db-4", 4, "10.0.0.5");
        let node = ServiceNode::build([&kept, &moved_now, &rebuilt_now, &hidden_now, &added]);
        assert_eq!(snap.set_service(&svc, node), Change::Records);

        let names = |ip: &str| -> Vec<String> {
            snap.reverse(&ip.parse().unwrap())
                .into_iter()
                .flatten()
                .map(|n| n.relative())
                .collect()
        };
        assert_eq!(names("10.0.0.1"), ["db-0.db.prod"]);
        assert!(names("10.0.0.2").is_empty());
        assert_eq!(names("10.0.0.12"), ["db-1.db.prod"]);
        assert_eq!(names("10.0.0.3"), ["db-2.db.prod"]);
        assert!(names("10.0.0.4").is_empty());
        assert_eq!(names("10.0.0.5"), ["db-4.db.prod"]);
        assert_eq!(snap.member_counts(), [4, 0, 1, 0]);
    }
}
