//! The live set of members: applies [`PodEvent`]s, resolves conflicts between claims on one name,
//! and is the only writer of zone snapshots.
//!
//! A (re)list is buffered from `Init` to `InitDone` and applied as a whole, so a member present
//! before and after never disappears in between. Every change marks its service dirty; after a
//! batch of events only the dirty services are rebuilt, and one new snapshot is published.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::identity::{self, Claim, Identity, IdentityConfig, ServiceId, SkipReason};
use crate::metrics::Metrics;
use crate::source::{Health, PodEvent, PodKey, Received, Scope};
use crate::zone::{Change, Holder, ServiceNode, Skipped, Snapshot, serial};

/// Tables keyed by pods and services, which come from the cluster, never from queries: foldhash
/// instead of SipHash, whose resistance to chosen keys buys nothing here and costs per key.
type HashMap<K, V> = std::collections::HashMap<K, V, RandomState>;
type HashSet<K> = std::collections::HashSet<K, RandomState>;

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
    /// Members left out of services over `max_per_service` (current), by service.
    pub over_limit: HashMap<ServiceId, usize>,
    /// Pods refused since start because `max_pods` pods were kept.
    pub refused_total: u64,
}

pub struct Membership {
    config: IdentityConfig,
    /// Every pod that claims a name or was skipped; pods that are not members are not kept.
    pods: Pods,
    /// Pods refused at `max_pods`, admitted as others go.
    waiting: Waiting,
    /// For each service, every claim on one of its names, sorted by (member, pod) so the claims
    /// on one name are adjacent; the winner is chosen when the service is rebuilt. The keys are
    /// the one shared copy of each service's name. The claims are shared with `pods` and the
    /// zone, not copied: at 100,000 members every byte per member is 100 kB.
    services: HashMap<ServiceId, Vec<Arc<Identity>>>,
    /// Lists in progress, between `Init` and `InitDone`, by scope: the claims of the pods listed
    /// so far (pods that are not members are not kept). A claim is made as a pod arrives, so
    /// the pod itself is dropped at once rather than held until the list ends.
    relists: HashMap<Scope, Relist>,
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
            pods: Pods::default(),
            waiting: Waiting::default(),
            services: HashMap::default(),
            relists: HashMap::default(),
            unsynced: scopes.into_iter().collect(),
            dirty: HashSet::default(),
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
        let mut retired = Retired::default();
        loop {
            let received = tokio::select! {
                n = events.recv_many(&mut batch, 1024) => n,
                () = tokio::time::sleep(Retired::AGAIN), if !retired.is_empty() => {
                    retired.free_unread();
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            for Received { at, event } in batch.drain(..) {
                if matches!(
                    event,
                    PodEvent::Apply(_)
                        | PodEvent::Delete(_)
                        | PodEvent::InitDone(_)
                        | PodEvent::Changes { .. }
                ) {
                    changes.push(at);
                }
                self.handle(event);
            }
            if let Some(snapshot) = self.publish() {
                let (services, serial) = (snapshot.service_count(), snapshot.serial);
                let replaced = published.swap(Some(snapshot));
                // Said once queries see the zone, not before: operators and scripts wait for it.
                // The source's own count includes pods that are no member of anything; these
                // are the pods that claim a name, as `roster_members` and
                // `roster_skipped_pods` count them.
                if self.stats.publications == 1 {
                    info!(
                        services,
                        member_pods = self.pods.members.len(),
                        skipped_pods = self.pods.skipped.len(),
                        serial,
                        "first complete list applied; serving"
                    );
                }
                for at in changes.drain(..) {
                    self.metrics.programming_latency.observe(at.elapsed());
                }
                retired.add(replaced);
            }
            changes.clear();
        }
        debug!("pod event stream ended");
    }

    pub fn handle(&mut self, event: PodEvent) {
        match &event {
            PodEvent::Init(_) => self.metrics.events(0, 1),
            PodEvent::InitApply(..) => self.metrics.events(1, 1),
            PodEvent::InitDone(_) => self.metrics.events(2, 1),
            PodEvent::Apply(_) => self.metrics.events(3, 1),
            PodEvent::Delete(_) => self.metrics.events(4, 1),
            PodEvent::Changes { delete, apply } => {
                self.metrics.events(3, apply.len());
                self.metrics.events(4, delete.len());
            }
        }
        match event {
            PodEvent::Init(scope) => {
                self.relists.insert(scope, Relist::default());
            }
            PodEvent::InitApply(scope, pod) => {
                let mut claim = identity::claim(&pod, self.config);
                match self.relists.get_mut(&scope) {
                    Some(list) if claim == Claim::NotMember => {
                        // Not kept, so the list's end deletes it if it was a member before.
                        list.claims.remove(&pod.key());
                    }
                    Some(list) => {
                        if let Claim::Member(id) = &mut claim {
                            let known = self.services.get_key_value(&id.service).map(|(k, _)| k);
                            intern(id, known.or_else(|| list.services.get(&id.service)));
                            list.services.insert(id.service.clone());
                        }
                        list.claims.insert(pod.key(), claim);
                    }
                    None => self.apply(pod.key(), claim),
                }
            }
            PodEvent::InitDone(scope) => {
                let list = self.relists.remove(&scope).unwrap_or_default();
                // Before the deletions below make room: a pod no longer listed must not get it.
                self.waiting
                    .retain(|key| !scope.contains(key) || list.claims.contains_key(key));
                let gone = self.pods.keys(&scope, |ns, name| {
                    !list.claims.contains_key(&PodKey::new(ns, name))
                });
                for key in gone {
                    self.delete(&key);
                }
                self.pods.reserve(list.claims.len());
                if self.pods.len() + list.claims.len() > self.config.max_pods {
                    // Which pods get the room, and which wait, must not depend on a hash.
                    let mut claims: Vec<(PodKey, Claim)> = list.claims.into_iter().collect();
                    claims.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    for (key, claim) in claims {
                        self.apply(key, claim);
                    }
                } else {
                    // Straight from the map: collecting 100,000 claims to sort nothing left 5 MiB
                    // more resident after the first list and took 0.08 s longer (compare.py).
                    for (key, claim) in list.claims {
                        self.apply(key, claim);
                    }
                }
                self.unsynced.remove(&scope);
            }
            PodEvent::Apply(pod) => {
                let claim = identity::claim(&pod, self.config);
                self.apply(pod.key(), claim);
            }
            PodEvent::Delete(key) => self.delete(&key),
            PodEvent::Changes { delete, apply } => {
                for key in &delete {
                    self.delete(key);
                }
                for pod in apply {
                    let claim = identity::claim(&pod, self.config);
                    self.apply(pod.key(), claim);
                }
            }
        }
    }

    fn apply(&mut self, key: PodKey, claim: Claim) {
        self.apply_one(key, claim);
        self.admit_waiting();
    }

    fn apply_one(&mut self, key: PodKey, mut claim: Claim) {
        if let Claim::Member(id) = &mut claim {
            intern(id, self.services.get_key_value(&id.service).map(|(k, _)| k));
        }
        match self.pods.get(&key) {
            Some(old) if old == claim => return,
            None if claim == Claim::NotMember => {
                self.waiting.remove(&key);
                return;
            }
            None if self.pods.len() >= self.config.max_pods => {
                if self.waiting.update(&key, &claim) {
                    return;
                }
                self.stats.refused_total += 1;
                self.metrics.pod_refused();
                let bound = (self.config.max_pods / 10).max(WAITING_AT_LEAST);
                let waits = self.waiting.put(key.clone(), claim, bound);
                // The first refusal, then one in 1,000: a flood of pods must not flood the log.
                if self.stats.refused_total % 1000 == 1 {
                    let then = if waits {
                        "it gets a name as soon as another pod goes"
                    } else {
                        "too many wait already to keep it: it gets a name at its next change \
                         after others go"
                    };
                    warn!(
                        pod = %key,
                        limit = self.config.max_pods,
                        refused_total = self.stats.refused_total,
                        "pod not tracked: members.max_pods pods are kept already; {then}"
                    );
                }
                return;
            }
            old => report(&key, old.as_ref(), &claim),
        }
        self.waiting.remove(&key);
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
            self.admit_waiting();
        } else {
            self.waiting.remove(key);
        }
    }

    /// Gives the room under `max_pods` to the pods refused before, oldest first.
    fn admit_waiting(&mut self) {
        while self.pods.len() < self.config.max_pods {
            let Some((key, claim)) = self.waiting.pop_oldest() else {
                return;
            };
            info!(pod = %key, "pod tracked now that members.max_pods has room again");
            self.apply_one(key, claim);
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
                let claims = self.services.entry(id.service.clone()).or_default();
                let at = claims.partition_point(|c| order(c) < order(id));
                claims.insert(at, id.clone());
                let holders = same_name(claims, &id.member);
                if holders.len() > 1 {
                    if holders.len() == 2 {
                        self.stats.conflicts += 1;
                    }
                    self.stats.conflicts_total += 1;
                    let namespace = id.service.namespace();
                    let winner = winner(holders).map(|w| format!("{namespace}/{}", w.pod()));
                    let pods: Vec<String> = holders
                        .iter()
                        .map(|h| format!("{namespace}/{}", h.pod()))
                        .collect();
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
                let Some(claims) = self.services.get_mut(&id.service) else {
                    return;
                };
                let Ok(at) = claims.binary_search_by(|c| order(c).cmp(&order(id))) else {
                    return;
                };
                claims.remove(at);
                if claims.is_empty() {
                    self.services.remove(&id.service);
                } else if same_name(claims, &id.member).len() == 1 {
                    self.stats.conflicts = self.stats.conflicts.saturating_sub(1);
                }
            }
        }
    }

    /// Rebuilds the dirty services and returns a new snapshot if anything changed (or if this
    /// is the first complete list). The serial moves only when records change. Nothing is
    /// published before every scope's first `InitDone`.
    pub fn publish(&mut self) -> Option<Arc<Snapshot>> {
        // Refusals and admissions may change no record, so this is kept apart from the rest.
        self.metrics.set_waiting(self.waiting.claims.len());
        if !self.unsynced.is_empty() {
            return None;
        }
        let mut records = 0usize;
        let mut diagnostics = std::mem::take(&mut self.diagnostics_dirty);
        for service in std::mem::take(&mut self.dirty) {
            let node = match self.services.get(&service) {
                Some(claims) => {
                    let holders = claims
                        .chunk_by(|a, b| a.member == b.member)
                        .filter_map(holder);
                    let limit = self.config.max_per_service;
                    if claims.len() <= limit {
                        self.stats.over_limit.remove(&service);
                        ServiceNode::build(holders)
                    } else {
                        let mut holders: Vec<Holder<'_>> = holders.collect();
                        holders.sort_by(|a, b| {
                            (a.identity.ordinal, &a.identity.member)
                                .cmp(&(b.identity.ordinal, &b.identity.member))
                        });
                        let over = holders.len().saturating_sub(limit);
                        holders.truncate(limit);
                        let was = if over > 0 {
                            self.stats.over_limit.insert(service.clone(), over)
                        } else {
                            self.stats.over_limit.remove(&service)
                        };
                        if over > 0 && was.is_none() {
                            warn!(
                                service = %service,
                                limit,
                                left_out = over,
                                "service has more members than members.max_per_service; the \
                                 highest ordinals get no name"
                            );
                        }
                        ServiceNode::build(holders)
                    }
                }
                None => {
                    self.stats.over_limit.remove(&service);
                    None
                }
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
        }
        self.published_once = true;
        let skipped: [usize; 7] =
            SkipReason::ALL.map(|r| self.stats.skipped.get(&r).copied().unwrap_or(0));
        self.metrics
            .set_membership(&skipped, self.stats.conflicts, self.stats.conflicts_total);
        self.metrics
            .set_over_limit(self.stats.over_limit.values().sum());
        self.metrics.set_zone(
            self.zone.serial,
            self.zone.service_count(),
            self.zone.member_counts(),
        );
        Some(Arc::new(self.zone.clone()))
    }
}

/// Snapshots replaced by a newer one, freed on the pods thread once no query reads them.
///
/// A query holds the snapshot it started with, so the last holder of a replaced snapshot is often
/// a DNS thread, which would then free what the new version replaced (the tree nodes it copied,
/// the services and identities it dropped) between two queries: a few hundred microseconds for
/// a version of 240 changes at 100,000 members, milliseconds for a large change or a relist.
/// Kept here instead until only this holds it, as an RCU server (Knot) frees an old zone on its
/// updating side. Queries hold a snapshot for microseconds, so this is rarely more than one.
#[derive(Default)]
struct Retired(Vec<Arc<Snapshot>>);

impl Retired {
    /// How soon to look again while a query still holds a replaced snapshot.
    const AGAIN: std::time::Duration = std::time::Duration::from_millis(5);

    fn add(&mut self, replaced: Option<Arc<Snapshot>>) {
        self.0.extend(replaced);
        self.free_unread();
    }

    fn free_unread(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Shares one copy of a service's name among its members: 100,000 members of 20,000
/// services would otherwise hold 100,000 copies.
fn intern(id: &mut Arc<Identity>, known: Option<&ServiceId>) {
    if let Some(known) = known
        && let Some(id) = Arc::get_mut(id)
    {
        id.service = known.clone();
    }
}

/// A list in progress, between `Init` and `InitDone`.
#[derive(Default)]
struct Relist {
    claims: HashMap<PodKey, Claim>,
    /// The services named so far that membership does not know yet, to share their names.
    services: HashSet<ServiceId>,
}

/// Pods refused may wait at least this many, else a tenth of `max_pods`: the limit bounds
/// memory, so what waits is bounded too.
const WAITING_AT_LEAST: usize = 1_000;

/// Pods refused at `max_pods`, in the order they were refused, with their latest claim.
#[derive(Default)]
struct Waiting {
    claims: HashMap<PodKey, (u64, Claim)>,
    order: BTreeMap<u64, PodKey>,
    next: u64,
}

impl Waiting {
    /// Keeps `key`'s claim, unless `bound` claims wait already.
    fn put(&mut self, key: PodKey, claim: Claim, bound: usize) -> bool {
        if self.claims.len() >= bound {
            return false;
        }
        self.order.insert(self.next, key.clone());
        self.claims.insert(key, (self.next, claim));
        self.next += 1;
        true
    }

    /// Replaces the claim of a waiting pod; false when `key` is not waiting.
    fn update(&mut self, key: &PodKey, claim: &Claim) -> bool {
        match self.claims.get_mut(key) {
            Some((_, waiting)) => {
                *waiting = claim.clone();
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: &PodKey) {
        // Called for every pod applied: nearly always with none waiting, and then unhashed.
        if self.claims.is_empty() {
            return;
        }
        if let Some((seq, _)) = self.claims.remove(key) {
            self.order.remove(&seq);
        }
    }

    fn pop_oldest(&mut self) -> Option<(PodKey, Claim)> {
        let (_, key) = self.order.pop_first()?;
        let (_, claim) = self.claims.remove(&key)?;
        Some((key, claim))
    }

    fn retain(&mut self, keep: impl Fn(&PodKey) -> bool) {
        let order = &mut self.order;
        self.claims.retain(|key, (seq, _)| {
            let kept = keep(key);
            if !kept {
                order.remove(seq);
            }
            kept
        });
    }
}

/// The claim of every pod that claims a name or was skipped. A member's key (namespace, pod
/// name) is read from its identity rather than stored: at 100,000 members a key per pod costs
/// more than the table itself.
#[derive(Default)]
struct Pods {
    members: HashTable<Arc<Identity>>,
    skipped: HashMap<PodKey, Claim>,
    hasher: RandomState,
}

impl Pods {
    fn hash(&self, namespace: &str, name: &str) -> u64 {
        self.hasher.hash_one((namespace, name))
    }

    fn hash_member(&self, id: &Identity) -> u64 {
        self.hash(id.service.namespace(), id.pod())
    }

    fn is(key: &PodKey) -> impl Fn(&Arc<Identity>) -> bool + '_ {
        |id| id.pod() == &*key.name && id.service.namespace() == &*key.namespace
    }

    fn len(&self) -> usize {
        self.members.len() + self.skipped.len()
    }

    fn get(&self, key: &PodKey) -> Option<Claim> {
        self.members
            .find(self.hash(&key.namespace, &key.name), Self::is(key))
            .map(|id| Claim::Member(id.clone()))
            .or_else(|| self.skipped.get(key).cloned())
    }

    fn remove(&mut self, key: &PodKey) -> Option<Claim> {
        let hash = self.hash(&key.namespace, &key.name);
        match self.members.find_entry(hash, Self::is(key)) {
            Ok(entry) => Some(Claim::Member(entry.remove().0)),
            Err(_) => self.skipped.remove(key),
        }
    }

    /// `claim` must not be `NotMember`, and `key` must hold no claim.
    fn insert(&mut self, key: PodKey, claim: Claim) {
        match claim {
            Claim::Member(id) => {
                let hash = self.hash_member(&id);
                let hasher = &self.hasher;
                self.members.insert_unique(hash, id, |id| {
                    hasher.hash_one((id.service.namespace(), id.pod()))
                });
            }
            Claim::Skipped { .. } => {
                self.skipped.insert(key, claim);
            }
            Claim::NotMember => {}
        }
    }

    fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        self.members.reserve(additional, |id| {
            hasher.hash_one((id.service.namespace(), id.pod()))
        });
    }

    /// The pods in `scope` for which `select(namespace, name)` holds.
    fn keys(&self, scope: &Scope, select: impl Fn(&str, &str) -> bool) -> Vec<PodKey> {
        let members = self
            .members
            .iter()
            .map(|id| (id.service.namespace(), id.pod()));
        let skipped = self.skipped.keys().map(|k| (&*k.namespace, &*k.name));
        members
            .chain(skipped)
            .filter(|(ns, name)| scope.contains_namespace(ns) && select(ns, name))
            .map(|(ns, name)| PodKey::new(ns, name))
            .collect()
    }
}

/// Where a claim sorts among its service's claims; unique, as a pod name is unique in its
/// namespace.
fn order(id: &Identity) -> (&str, &str) {
    (&id.member, id.pod())
}

/// The claims on `member`, adjacent in a service's sorted claims.
fn same_name<'a>(claims: &'a [Arc<Identity>], member: &str) -> &'a [Arc<Identity>] {
    let start = claims.partition_point(|c| &*c.member < member);
    let end = start + claims[start..].partition_point(|c| &*c.member == member);
    &claims[start..end]
}

/// SPEC §2 conflict order: not terminating, ready, older, then pod name.
fn winner(claims: &[Arc<Identity>]) -> Option<&Arc<Identity>> {
    claims
        .iter()
        .min_by(|a, b| (a.rank(), a.pod()).cmp(&(b.rank(), b.pod())))
}

/// The claims on one member name as the zone takes them: the winner, and the pods it beat.
fn holder(claims: &[Arc<Identity>]) -> Option<Holder<'_>> {
    let identity = winner(claims)?;
    let contenders = claims
        .iter()
        .filter(|c| !Arc::ptr_eq(c, identity))
        .map(|c| c.pod())
        .collect();
    Some(Holder {
        identity,
        contenders,
    })
}

/// Logs a pod's new claim once, when it changes: identity warnings at warn level, ordinary
/// membership changes at debug. (Skips and conflicts are logged where they are counted.)
fn report(key: &PodKey, old: Option<&Claim>, new: &Claim) {
    match new {
        Claim::Skipped { .. } => {}
        Claim::Member(id) => {
            let old_warnings = match old {
                Some(Claim::Member(o)) => &*o.warnings,
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
    use crate::source::{PodView, PortView, Protocol};
    use crate::zone::{AnswerKind, DomainName, QType, Rdata, ZoneSettings, answer};
    use std::net::IpAddr;

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

    /// A query that still reads the snapshot a change replaced lets go of it without freeing
    /// it: the pods thread frees it, not a DNS thread between two queries.
    #[tokio::test]
    async fn the_last_reader_of_a_replaced_snapshot_does_not_free_it() {
        async fn eventually(done: impl Fn() -> bool) {
            let began = Instant::now();
            while !done() {
                assert!(began.elapsed().as_secs() < 5, "timed out");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let published = Arc::new(Published::empty());
        let (events, receiver) = mpsc::channel(16);
        let m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        let task = tokio::spawn(m.run(receiver, published.clone()));
        let send = |event| events.send(Received::from(event));
        send(PodEvent::Init(Scope::Cluster)).await.unwrap();
        send(PodEvent::InitApply(Scope::Cluster, pod("db-0", "10.0.0.1")))
            .await
            .unwrap();
        send(PodEvent::InitDone(Scope::Cluster)).await.unwrap();
        eventually(|| published.load().is_some()).await;

        let reading = published.load_full().unwrap();
        let replaced = Arc::downgrade(&reading);
        send(PodEvent::Apply(pod("db-0", "10.0.0.2")))
            .await
            .unwrap();
        eventually(|| published.load().as_ref().unwrap().serial != reading.serial).await;
        assert!(
            Arc::strong_count(&reading) > 1,
            "membership keeps the replaced snapshot while a query reads it"
        );
        drop(reading);
        assert!(
            replaced.upgrade().is_some(),
            "the reader let go of a snapshot it did not free"
        );
        eventually(|| replaced.upgrade().is_none()).await;
        drop(events);
        task.await.unwrap();
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
    fn pods_refused_at_max_pods_get_names_as_others_go() {
        let config = IdentityConfig {
            max_pods: 2,
            ..IdentityConfig::default()
        };
        let mut m = Membership::new(config, [Scope::Cluster]);
        list(&mut m, &[pod("db-0", "10.0.0.1"), pod("db-1", "10.0.0.2")]).unwrap();
        m.handle(PodEvent::Apply(pod("db-2", "10.0.0.3")));
        m.handle(PodEvent::Apply(pod("db-3", "10.0.0.4")));
        // A waiting pod that changes is not refused again.
        m.handle(PodEvent::Apply(pod("db-3", "10.0.0.5")));
        assert_eq!(m.stats().refused_total, 2);
        assert!(m.publish().is_none(), "refused pods change nothing");

        // The oldest refused pod takes the room, with its latest claim.
        m.handle(PodEvent::Delete(PodKey::new("prod", "db-0")));
        let snap = m.publish().unwrap();
        let name = |i: usize| format!("db-{i}.db.prod.roster.internal");
        assert_eq!(a_records(&snap, &name(0)).0, AnswerKind::NxDomain);
        assert_eq!(a_records(&snap, &name(2)).1, ["10.0.0.3"]);
        assert_eq!(a_records(&snap, &name(3)).0, AnswerKind::NxDomain);
        m.handle(PodEvent::Delete(PodKey::new("prod", "db-1")));
        assert_eq!(a_records(&m.publish().unwrap(), &name(3)).1, ["10.0.0.5"]);

        // A waiting pod that goes, or that a new list no longer has, never takes the room.
        m.handle(PodEvent::Apply(pod("db-4", "10.0.0.6")));
        m.handle(PodEvent::Apply(pod("db-5", "10.0.0.7")));
        m.handle(PodEvent::Delete(PodKey::new("prod", "db-4")));
        let snap = list(&mut m, &[pod("db-3", "10.0.0.5")]).unwrap();
        for (i, kind) in [
            (2, AnswerKind::NxDomain),
            (3, AnswerKind::Data),
            (4, AnswerKind::NxDomain),
            (5, AnswerKind::NxDomain),
        ] {
            assert_eq!(a_records(&snap, &name(i)).0, kind, "db-{i}");
        }
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

        // The same through a relist: the pod is still listed, but no longer a member.
        let mut m = Membership::new(IdentityConfig::default(), [Scope::Cluster]);
        list(&mut m, &[p.clone(), pod("db-1", "10.0.0.2")]).unwrap();
        let mut relabelled = p.clone();
        relabelled.label_service = None;
        let snap = list(&mut m, &[relabelled, pod("db-1", "10.0.0.2")]).unwrap();
        assert_eq!(
            a_records(&snap, "db-0.db.prod.roster.internal").0,
            AnswerKind::NxDomain
        );
        assert_eq!(a_records(&snap, "db.prod.roster.internal").1, ["10.0.0.2"]);
    }

    /// Everything a snapshot serves and shows, but its serial, as text.
    fn served(snap: &Snapshot, addresses: &[IpAddr]) -> String {
        let mut services: Vec<String> = snap
            .services()
            .map(|(id, node)| format!("{id:?} {node:?}"))
            .collect();
        services.sort();
        let reverse: Vec<String> = addresses
            .iter()
            .map(|ip| {
                let holders = snap.reverse(ip).unwrap_or_default();
                let names: Vec<String> = holders.iter().map(|id| id.relative()).collect();
                format!("{ip} {names:?}")
            })
            .collect();
        let namespaces: Vec<bool> = ["prod", "stage"]
            .iter()
            .map(|ns| snap.has_namespace(ns))
            .collect();
        let skipped: Vec<String> = snap
            .skipped()
            .map(|(k, v)| format!("{k:?} {v:?}"))
            .collect();
        format!(
            "{services:#?}\n{reverse:#?}\nnamespaces {namespaces:?}\ncounts {:?}\nskipped {skipped:#?}",
            snap.member_counts()
        )
    }

    /// However the pods arrived (added, changed and deleted one at a time, in batches as the pods
    /// file sends them, relisted), the zone is the one a first list of the pods there now gives:
    /// names follow the pods present, not their history. Pods are drawn from a small pool, so
    /// that names conflict, addresses are shared, and pods enter and leave services often.
    #[test]
    fn events_give_the_zone_a_fresh_list_of_the_same_pods_gives() {
        let mut next = crate::test_rng(0x9e37_79b9_7f4a_7c15u64);
        let addresses: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "fd00::2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let names = ["db-0", "db-1", "db-2", "db-01", "web-1", "x"];
        let random_pod = |next: &mut dyn FnMut(usize) -> usize| {
            let pick = |next: &mut dyn FnMut(usize) -> usize, options: &[&str]| {
                let i = next(options.len() + 1);
                options.get(i).map(|s| s.to_string())
            };
            let statefulset = pick(next, &["db"]);
            PodView {
                namespace: ["prod", "stage"][next(2)].into(),
                name: names[next(names.len())].into(),
                label_service: pick(next, &["db", "web"]),
                label_name: pick(next, &["db", "web"]).filter(|_| next(3) == 0),
                label_ordinal: pick(next, &["0", "1", "07"]).filter(|_| next(3) == 0),
                label_pod_index: pick(next, &["2"]).filter(|_| next(3) == 0),
                annotation_port: pick(next, &["peer", "9000", "nope"]).filter(|_| next(3) == 0),
                annotation_publish_not_ready: next(5) == 0,
                subdomain: statefulset.clone().filter(|_| next(4) != 0),
                statefulset,
                ips: (0..next(3))
                    .map(|_| addresses[next(addresses.len())])
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                bad_ips: vec![],
                ready: next(4) != 0,
                terminating: next(6) == 0,
                finished: next(12) == 0,
                created: [None, Some(1), Some(2)][next(3)],
                ports: [
                    ("peer", 7000, Protocol::Tcp),
                    ("gossip", 7946, Protocol::Udp),
                ]
                .into_iter()
                .filter(|_| next(2) == 0)
                .map(|(name, number, protocol)| PortView {
                    container: 0,
                    name: Some(name.into()),
                    number,
                    protocol: Some(protocol),
                })
                .collect(),
            }
        };
        for config in [
            IdentityConfig::default(),
            IdentityConfig {
                publish_not_ready: true,
                protect_statefulset_names: true,
                max_per_service: 2,
                ..IdentityConfig::default()
            },
        ] {
            let mut m = Membership::new(config, [Scope::Cluster]);
            list(&mut m, &[]);
            let mut pods: BTreeMap<PodKey, PodView> = BTreeMap::new();
            // Steps whose zone had services, conflicts, an address with two names, pods skipped.
            let mut seen = [0; 4];
            for step in 0..3000 {
                match next(10) {
                    0..=4 => {
                        let pod = random_pod(&mut next);
                        pods.insert(pod.key(), pod.clone());
                        m.handle(PodEvent::Apply(pod));
                    }
                    5 | 6 => {
                        let ns = ["prod", "stage"][next(2)];
                        let key = PodKey::new(ns, names[next(names.len())]);
                        pods.remove(&key);
                        m.handle(PodEvent::Delete(key));
                    }
                    7 | 8 => {
                        let mut delete = Vec::new();
                        let mut apply = Vec::new();
                        for _ in 0..next(4) {
                            let key =
                                PodKey::new(["prod", "stage"][next(2)], names[next(names.len())]);
                            if pods.remove(&key).is_some() {
                                delete.push(key);
                            }
                        }
                        for _ in 0..next(4) {
                            let pod = random_pod(&mut next);
                            if pods.insert(pod.key(), pod.clone()).is_none() {
                                apply.push(pod);
                            } else {
                                // One version of a pod per batch, as a version of the file has.
                                apply.retain(|p: &PodView| p.key() != pod.key());
                                apply.push(pod);
                            }
                        }
                        m.handle(PodEvent::Changes { delete, apply });
                    }
                    _ => {
                        let mut listed: Vec<PodView> = pods.values().cloned().collect();
                        listed.reverse();
                        list(&mut m, &listed);
                    }
                }
                m.publish();
                let mut fresh = Membership::new(config, [Scope::Cluster]);
                let current: Vec<PodView> = pods.values().cloned().collect();
                list(&mut fresh, &current);
                let (got, want) = (served(&m.zone, &addresses), served(&fresh.zone, &addresses));
                assert!(
                    got == want,
                    "step {step}: the zone after events differs from a fresh list of {current:#?}\
                     \n-- after events\n{got}\n-- fresh\n{want}"
                );
                assert_eq!(m.stats().conflicts, fresh.stats().conflicts, "step {step}");
                let zone = &fresh.zone;
                let shared = |ip| zone.reverse(ip).is_some_and(|names| names.len() > 1);
                for (n, seen) in [
                    zone.service_count() > 0,
                    fresh.stats().conflicts > 0,
                    addresses.iter().any(shared),
                    zone.skipped().next().is_some(),
                ]
                .into_iter()
                .zip(&mut seen)
                {
                    *seen += usize::from(n);
                }
            }
            assert!(seen.iter().all(|&n| n > 300), "{seen:?} of 3000 steps");
        }
    }
}
