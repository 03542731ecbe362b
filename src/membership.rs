//! The live set of members: applies [`PodEvent`]s, resolves conflicts between claims on one name,
//! and is the only writer of zone snapshots.
//!
//! A (re)list is buffered from `Init` to `InitDone` and applied as a whole, so a member present
//! before and after never disappears in between. Every change marks its service dirty; after a
//! batch of events only the dirty services are rebuilt, and one new snapshot is published.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::identity::{self, Claim, Identity, IdentityConfig, ServiceId, SkipReason};
use crate::metrics::Metrics;
use crate::source::{Health, PodEvent, PodKey, PodView, Received, Scope};
use crate::zone::{Change, Holder, ServiceNode, Skipped, Snapshot, serial};

/// The snapshot queries read: `None` until the source's first complete list.
pub type Published = ArcSwapOption<Snapshot>;

/// Counts an operator watches (and metrics export).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pods that ask to be members but cannot have a name, by reason (current).
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Member names claimed by more than one pod (current).
    pub conflicts: usize,
    /// Conflicts seen since start: every time a second pod claims a held name.
    pub conflicts_total: u64,
    /// Snapshots published since start.
    pub publications: u64,
}

type MemberKey = (ServiceId, Box<str>);

pub struct Membership {
    config: IdentityConfig,
    /// Every pod that claims a name or was skipped; pods that are not members are not kept.
    pods: HashMap<PodKey, Claim>,
    /// Pods claiming each member name; the winner is chosen when the service is rebuilt.
    claims: HashMap<MemberKey, Vec<PodKey>>,
    /// Member names claimed in each service.
    members: HashMap<ServiceId, BTreeSet<Box<str>>>,
    /// Lists in progress, between `Init` and `InitDone`, by scope.
    relists: HashMap<Scope, HashMap<PodKey, PodView>>,
    /// Scopes whose first list is still to complete; roster is not ready until this is empty.
    unsynced: HashSet<Scope>,
    dirty: HashSet<ServiceId>,
    /// Only diagnostics changed (skipped pods), which publishes without a new serial.
    diagnostics_dirty: bool,
    zone: Snapshot,
    published_once: bool,
    stats: Stats,
    metrics: Arc<Metrics>,
}

impl Membership {
    /// `scopes` are the lists the source will deliver; the zone is published once each has
    /// completed once.
    pub fn new(config: IdentityConfig, scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            config,
            pods: HashMap::new(),
            claims: HashMap::new(),
            members: HashMap::new(),
            relists: HashMap::new(),
            unsynced: scopes.into_iter().collect(),
            dirty: HashSet::new(),
            diagnostics_dirty: false,
            zone: Snapshot::default(),
            published_once: false,
            stats: Stats::default(),
            metrics: Arc::new(Metrics::new(Arc::new(Health::default()))),
        }
    }

    /// Counts into `metrics` instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Applies events as they arrive, publishing one snapshot per batch, until the sender is
    /// dropped.
    pub async fn run(mut self, mut events: mpsc::Receiver<Received>, published: Arc<Published>) {
        let mut batch = Vec::with_capacity(1024);
        let mut changes: Vec<Instant> = Vec::with_capacity(1024);
        while events.recv_many(&mut batch, 1024).await > 0 {
            for Received { at, event } in batch.drain(..) {
                if matches!(
                    event,
                    PodEvent::Apply(_) | PodEvent::Delete(_) | PodEvent::InitDone(_)
                ) {
                    changes.push(at);
                }
                self.handle(event);
            }
            if let Some(snapshot) = self.publish() {
                published.store(Some(snapshot));
                for at in changes.drain(..) {
                    self.metrics.programming_latency.observe(at.elapsed());
                }
            }
            changes.clear();
        }
        debug!("pod event stream ended");
    }

    pub fn handle(&mut self, event: PodEvent) {
        self.metrics.event(match &event {
            PodEvent::Init(_) => 0,
            PodEvent::InitApply(..) => 1,
            PodEvent::InitDone(_) => 2,
            PodEvent::Apply(_) => 3,
            PodEvent::Delete(_) => 4,
        });
        match event {
            PodEvent::Init(scope) => {
                self.relists.insert(scope, HashMap::new());
            }
            PodEvent::InitApply(scope, pod) => match self.relists.get_mut(&scope) {
                Some(list) => {
                    list.insert(pod.key(), pod);
                }
                None => self.apply(&pod),
            },
            PodEvent::InitDone(scope) => {
                let list = self.relists.remove(&scope).unwrap_or_default();
                let gone: Vec<PodKey> = self
                    .pods
                    .keys()
                    .filter(|k| scope.contains(k) && !list.contains_key(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.delete(&key);
                }
                for pod in list.values() {
                    self.apply(pod);
                }
                self.unsynced.remove(&scope);
            }
            PodEvent::Apply(pod) => self.apply(&pod),
            PodEvent::Delete(key) => self.delete(&key),
        }
    }

    fn apply(&mut self, pod: &PodView) {
        let key = pod.key();
        let claim = identity::claim(pod, self.config);
        match self.pods.get(&key) {
            Some(old) if *old == claim => return,
            None if claim == Claim::NotMember => return,
            old => report(&key, old, &claim),
        }
        if let Some(old) = self.pods.remove(&key) {
            self.release(&key, &old);
        }
        if claim != Claim::NotMember {
            self.take(&key, &claim);
            self.pods.insert(key, claim);
        }
    }

    fn delete(&mut self, key: &PodKey) {
        if let Some(old) = self.pods.remove(key) {
            debug!(pod = %key, "pod gone");
            self.release(key, &old);
        }
    }

    fn take(&mut self, key: &PodKey, claim: &Claim) {
        match claim {
            Claim::NotMember => {}
            Claim::Skipped { reason, detail } => {
                let count = self.stats.skipped.entry(*reason).or_default();
                *count += 1;
                warn!(
                    pod = %key,
                    reason = reason.as_str(),
                    skipped_for_reason = *count,
                    "pod asks to be a member but has no name: {detail}"
                );
                let skipped = Skipped {
                    reason: *reason,
                    detail: detail.as_str().into(),
                };
                self.zone.set_skipped(key, Some(skipped));
                self.diagnostics_dirty = true;
            }
            Claim::Member(id) => {
                self.dirty.insert(id.service.clone());
                self.members
                    .entry(id.service.clone())
                    .or_default()
                    .insert(id.member.clone());
                let holders = self
                    .claims
                    .entry((id.service.clone(), id.member.clone()))
                    .or_default();
                holders.push(key.clone());
                if holders.len() > 1 {
                    if holders.len() == 2 {
                        self.stats.conflicts += 1;
                    }
                    self.stats.conflicts_total += 1;
                    let holders = holders.clone();
                    let winner = self.winner(&holders).map(|(k, _)| k.to_string());
                    let pods: Vec<String> = holders.iter().map(ToString::to_string).collect();
                    warn!(
                        name = %format_args!("{}.{}", id.member, id.service),
                        pods = ?pods,
                        winner = winner.as_deref().unwrap_or("none"),
                        conflicts_total = self.stats.conflicts_total,
                        "member name claimed by more than one pod"
                    );
                }
            }
        }
    }

    fn release(&mut self, key: &PodKey, claim: &Claim) {
        match claim {
            Claim::NotMember => {}
            Claim::Skipped { reason, .. } => {
                if let Some(n) = self.stats.skipped.get_mut(reason) {
                    *n = n.saturating_sub(1);
                }
                self.zone.set_skipped(key, None);
                self.diagnostics_dirty = true;
            }
            Claim::Member(id) => {
                self.dirty.insert(id.service.clone());
                let member_key = (id.service.clone(), id.member.clone());
                let Some(holders) = self.claims.get_mut(&member_key) else {
                    return;
                };
                holders.retain(|k| k != key);
                match holders.len() {
                    0 => {
                        self.claims.remove(&member_key);
                        if let Some(names) = self.members.get_mut(&id.service) {
                            names.remove(&id.member);
                            if names.is_empty() {
                                self.members.remove(&id.service);
                            }
                        }
                    }
                    1 => self.stats.conflicts = self.stats.conflicts.saturating_sub(1),
                    _ => {}
                }
            }
        }
    }

    /// SPEC §2 conflict order: not terminating, ready, older, then pod name.
    fn winner<'a>(&'a self, holders: &'a [PodKey]) -> Option<(&'a PodKey, &'a Identity)> {
        holders
            .iter()
            .filter_map(|k| match self.pods.get(k) {
                Some(Claim::Member(id)) => Some((k, id)),
                _ => None,
            })
            .min_by(|(ka, a), (kb, b)| (a.rank(), &ka.name).cmp(&(b.rank(), &kb.name)))
    }

    /// The pods claiming one member name: the winner first, then the others (by rank).
    fn holders<'a>(&'a self, claimants: &'a [PodKey]) -> Option<Holder<'a>> {
        let (winner, identity) = self.winner(claimants)?;
        let contenders = claimants
            .iter()
            .filter(|k| *k != winner)
            .map(|k| &*k.name)
            .collect();
        Some(Holder {
            identity,
            pod: &winner.name,
            contenders,
        })
    }

    /// Rebuilds the dirty services and returns a new snapshot if anything changed (or if this
    /// is the first complete list). The serial moves only when records change. Nothing is
    /// published before every scope's first `InitDone`.
    pub fn publish(&mut self) -> Option<Arc<Snapshot>> {
        if !self.unsynced.is_empty() {
            return None;
        }
        let mut records = 0usize;
        let mut diagnostics = std::mem::take(&mut self.diagnostics_dirty);
        for service in std::mem::take(&mut self.dirty) {
            let node = match self.members.get(&service) {
                Some(names) => {
                    let holders: Vec<Holder<'_>> = names
                        .iter()
                        .filter_map(|m| self.claims.get(&(service.clone(), m.clone())))
                        .filter_map(|claimants| self.holders(claimants))
                        .collect();
                    ServiceNode::build(&service, holders)
                }
                None => None,
            };
            match self.zone.set_service(&service, node) {
                Change::None => {}
                Change::Diagnostics => diagnostics = true,
                Change::Records => records += 1,
            }
        }
        if records == 0 && !diagnostics && self.published_once {
            return None;
        }
        if records > 0 || !self.published_once {
            let previous = self.published_once.then_some(self.zone.serial);
            self.zone.serial = serial::next(previous, serial::clock_ms());
        }
        self.stats.publications += 1;
        if self.published_once {
            debug!(
                services_changed = records,
                serial = self.zone.serial,
                "zone updated"
            );
        } else {
            info!(
                services = self.zone.service_count(),
                pods = self.pods.len(),
                serial = self.zone.serial,
                "first complete list applied; serving"
            );
        }
        self.published_once = true;
        let skipped: [usize; 6] =
            SkipReason::ALL.map(|r| self.stats.skipped.get(&r).copied().unwrap_or(0));
        self.metrics
            .set_membership(&skipped, self.stats.conflicts, self.stats.conflicts_total);
        self.metrics.set_zone(
            self.zone.serial,
            self.zone.service_count(),
            self.zone.member_counts(),
        );
        Some(Arc::new(self.zone.clone()))
    }
}

/// Logs a pod's new claim once, when it changes: identity warnings at warn level, ordinary
/// membership changes at debug. (Skips and conflicts are logged where they are counted.)
fn report(key: &PodKey, old: Option<&Claim>, new: &Claim) {
    match new {
        Claim::Skipped { .. } => {}
        Claim::Member(id) => {
            let old_warnings = match old {
                Some(Claim::Member(o)) => o.warnings.as_slice(),
                _ => &[],
            };
            for w in id.warnings.iter().filter(|w| !old_warnings.contains(w)) {
                warn!(pod = %key, member = %format_args!("{}.{}", id.member, id.service), "{w}");
            }
            debug!(
                pod = %key,
                member = %format_args!("{}.{}", id.member, id.service),
                published = id.is_published(),
                "member claim changed"
            );
        }
        Claim::NotMember => debug!(pod = %key, "pod is no longer a member"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{PortView, Protocol};
    use crate::zone::{AnswerKind, DomainName, QType, Rdata, ZoneSettings, answer};

    fn pod(name: &str, ip: &str) -> PodView {
        PodView {
            namespace: "prod".into(),
            name: name.into(),
            label_service: Some("db".into()),
            ips: vec![ip.parse().unwrap()],
            ready: true,
            created: Some(1000),
            ports: vec![PortView {
                container: 0,
                name: Some("peer".into()),
                number: 7000,
                protocol: Some(Protocol::Tcp),
            }],
            ..Default::default()
        }
    }

    fn settings() -> ZoneSettings {
        ZoneSettings {
            zones: vec![DomainName::parse("roster.internal").unwrap()],
            reverse_zones: vec![],
            ttl: 5,
            negative_ttl: 5,
            nameserver: DomainName::parse("ns.example").unwrap(),
            hostmaster: DomainName::parse("hostmaster.example").unwrap(),
        }
    }

    fn a_records(snap: &Snapshot, name: &str) -> (AnswerKind, Vec<String>) {
        let labels: Vec<&[u8]> = name.split('.').map(str::as_bytes).collect();
        let got = answer(&settings(), Some(snap), &labels, QType::A);
        let ips = got
            .records
            .iter()
            .map(|r| match r {
                Rdata::A(a) => a.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        (got.kind, ips)
    }

    fn list(m: &mut Membership, pods: &[PodView]) -> Option<Arc<Snapshot>> {
        m.handle(PodEvent::Init(Scope::Cluster));
        for p in pods {
            m.handle(PodEvent::InitApply(Scope::Cluster, p.clone()));
        }
        m.handle(PodEvent::InitDone(Scope::Cluster));
        m.publish()
    }

    #[test]
    fn nothing_published_before_the_first_complete_list() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        m.handle(PodEvent::Init(Scope::Cluster));
        m.handle(PodEvent::InitApply(Scope::Cluster, pod("db-0", "10.0.0.1")));
        assert!(m.publish().is_none());
        m.handle(PodEvent::InitDone(Scope::Cluster));
        let snap = m.publish().expect("published after InitDone");
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").1,
            ["10.0.0.1"]
        );
        assert!(m.publish().is_none(), "no change, no new snapshot");
    }

    #[test]
    fn an_empty_first_list_still_makes_the_zone_ready() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let snap = list(&mut m, &[]).expect("ready with no pods");
        assert_eq!(
            a_records(&snap, "db.prod.roster.internal").0,
            AnswerKind::NxDomain
        );
    }

    #[test]
    fn relist_applies_as_a_whole_and_removes_vanished_pods() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let first = list(&mut m, &[pod("db-0", "10.0.0.1"), pod("db-1", "10.0.0.2")]).unwrap();

        m.handle(PodEvent::Init(Scope::Cluster));
        m.handle(PodEvent::InitApply(Scope::Cluster, pod("db-0", "10.0.0.1")));
        assert!(m.publish().is_none(), "half a list is never published");
        m.handle(PodEvent::InitApply(Scope::Cluster, pod("db-2", "10.0.0.3")));
        m.handle(PodEvent::InitDone(Scope::Cluster));
        let second = m.publish().unwrap();

        assert_eq!(
            a_records(&second, "db.prod.roster.internal").1,
            ["10.0.0.1", "10.0.0.3"]
        );
        assert_eq!(
            a_records(&second, "db-1.db.prod.roster.internal").0,
            AnswerKind::NxDomain
        );
        assert!(serial::serial_gt(second.serial, first.serial));
        assert_eq!(
            a_records(&first, "db-1.db.prod.roster.internal").1,
            ["10.0.0.2"],
            "old snapshot intact"
        );
    }

    #[test]
    fn conflicts_follow_the_spec_order() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let incumbent = pod("db-0", "10.0.0.1");
        // A second pod claims db-0 through labels.
        let mut newcomer = pod("db-0-replacement", "10.0.0.9");
        newcomer.label_ordinal = Some("0".into());
        newcomer.created = Some(2000);
        let snap = list(&mut m, &[incumbent.clone(), newcomer.clone()]).unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").1,
            ["10.0.0.1"],
            "older wins"
        );
        assert_eq!(m.stats().conflicts, 1);
        assert_eq!(m.stats().conflicts_total, 1);

        let mut terminating = incumbent.clone();
        terminating.terminating = true;
        m.handle(PodEvent::Apply(terminating));
        let snap = m.publish().unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").1,
            ["10.0.0.9"],
            "not terminating beats older"
        );

        let mut not_ready = newcomer.clone();
        not_ready.ready = false;
        m.handle(PodEvent::Apply(not_ready));
        m.handle(PodEvent::Apply(incumbent.clone()));
        let snap = m.publish().unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").1,
            ["10.0.0.1"],
            "ready wins"
        );

        m.handle(PodEvent::Delete(incumbent.key()));
        let snap = m.publish().unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal"),
            (AnswerKind::NoData, vec![]),
            "the remaining claimant holds the name, unpublished while not ready"
        );
        assert_eq!(m.stats().conflicts, 0);

        // Same rank: the pod name decides.
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let mut b = pod("b", "10.0.0.2");
        b.label_ordinal = Some("0".into());
        let mut a = pod("a", "10.0.0.1");
        a.label_ordinal = Some("0".into());
        let snap = list(&mut m, &[b, a]).unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").1,
            ["10.0.0.1"]
        );
    }

    #[test]
    fn a_namespace_relist_replaces_only_that_namespace() {
        let a = Scope::Namespace("a".into());
        let b = Scope::Namespace("b".into());
        let mut m = Membership::new(IdentityConfig::default(), [a.clone(), b.clone()]);
        let in_ns = |ns: &str, name: &str, ip: &str| PodView {
            namespace: ns.into(),
            ..pod(name, ip)
        };
        m.handle(PodEvent::Init(a.clone()));
        m.handle(PodEvent::InitApply(
            a.clone(),
            in_ns("a", "db-0", "10.0.0.1"),
        ));
        m.handle(PodEvent::InitDone(a.clone()));
        assert!(
            m.publish().is_none(),
            "not ready until every namespace has listed once"
        );
        // The two lists interleave, as two watchers do.
        m.handle(PodEvent::Init(b.clone()));
        m.handle(PodEvent::Init(a.clone()));
        m.handle(PodEvent::InitApply(
            b.clone(),
            in_ns("b", "db-0", "10.0.1.1"),
        ));
        m.handle(PodEvent::InitApply(
            a.clone(),
            in_ns("a", "db-1", "10.0.0.2"),
        ));
        m.handle(PodEvent::InitDone(b.clone()));
        let snap = m.publish().expect("both listed: ready");
        assert_eq!(
            a_records(&snap, "db.a.roster.internal").1,
            ["10.0.0.1"],
            "a's relist not done yet"
        );
        assert_eq!(a_records(&snap, "db.b.roster.internal").1, ["10.0.1.1"]);
        m.handle(PodEvent::InitDone(a.clone()));
        let snap = m.publish().unwrap();
        assert_eq!(
            a_records(&snap, "db.a.roster.internal").1,
            ["10.0.0.2"],
            "a replaced"
        );
        assert_eq!(
            a_records(&snap, "db.b.roster.internal").1,
            ["10.0.1.1"],
            "b untouched"
        );
    }

    #[test]
    fn skipped_pods_are_counted_by_reason() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let mut bad = pod("db-x", "10.0.0.1");
        bad.name = "db-x".into();
        let snap = list(&mut m, &[bad.clone(), pod("db-0", "10.0.0.2")]).unwrap();
        assert_eq!(m.stats().skipped.get(&SkipReason::NoOrdinal), Some(&1));
        assert_eq!(a_records(&snap, "db.prod.roster.internal").1, ["10.0.0.2"]);
        m.handle(PodEvent::Delete(bad.key()));
        assert_eq!(m.stats().skipped.get(&SkipReason::NoOrdinal), Some(&0));
    }

    #[test]
    fn a_pod_that_leaves_the_service_releases_its_name() {
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let p = pod("db-0", "10.0.0.1");
        list(&mut m, std::slice::from_ref(&p)).unwrap();
        let mut gone = p.clone();
        gone.label_service = None;
        m.handle(PodEvent::Apply(gone));
        let snap = m.publish().unwrap();
        assert_eq!(
            a_records(&snap, "db.prod.roster.internal").0,
            AnswerKind::NxDomain
        );
        assert_eq!(
            a_records(&snap, "prod.roster.internal").0,
            AnswerKind::NxDomain
        );
    }
}
