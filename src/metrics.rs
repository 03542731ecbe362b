//! Metrics: every number roster exports, kept in atomics (nothing on the query path takes a
//! lock) and written in the Prometheus text format by one prometheus-client collector at scrape
//! time. Labels come from closed enums only, never from pod or service names.
//!
//! A log line and its counter come from the same place: the code that logs an event also counts
//! it here.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::dns::rrl::Verdict;
use crate::identity::{SkipReason, Unpublished};
use crate::source::Health;

/// Query types with their own counter; the rest count as `other`.
pub const QTYPES: [&str; 8] = ["a", "aaaa", "srv", "ptr", "soa", "ns", "any", "other"];
/// Response codes roster sends.
pub const RCODES: [&str; 8] = [
    "noerror", "nxdomain", "servfail", "refused", "formerr", "notimp", "badvers", "other",
];
pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// Kinds of source events (see [`crate::source::PodEvent`]).
pub const EVENTS: [&str; 5] = ["init", "init_apply", "init_done", "apply", "delete"];

/// Why roster closed a TCP connection, in the order of [`TCP_CLOSE_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpClose {
    Idle = 0,
    Lifetime = 1,
    Queries = 2,
    Evicted = 3,
}

pub const TCP_CLOSE_REASONS: [&str; 4] = ["idle", "lifetime", "queries", "evicted"];

/// Why a UDP answer was not sent, in the order of [`UNSENT_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsent {
    /// The socket's send buffer stayed full (the network or the clients take answers more
    /// slowly than they are asked for).
    BufferFull = 0,
    /// The kernel refused the datagram (no route, a firewall).
    Refused = 1,
}

pub const UNSENT_REASONS: [&str; 2] = ["send_buffer_full", "refused"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
}

/// A histogram of durations with fixed buckets, updated with relaxed atomic adds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// `n` observations of the same duration (a batch answered together).
    pub fn observe_n(&self, d: Duration, n: u64) {
        let s = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(n, Relaxed);
        }
        self.count.fetch_add(n, Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64 * n, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// (sum in seconds, count, per-bucket counts) as prometheus-client's encoder takes them (it
    /// makes them cumulative itself); the last bucket, +Inf, holds what lies above every bound.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let count = self.count.load(Relaxed);
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(&b, c)| (b, c.load(Relaxed)))
            .collect();
        let bounded: u64 = buckets.iter().map(|(_, c)| c).sum();
        buckets.push((f64::MAX, count.saturating_sub(bounded))); // written as +Inf
        (self.sum_ns.load(Relaxed) as f64 / 1e9, count, buckets)
    }
}

const ANSWER_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1,
];
const PROGRAMMING_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// Sums the `drops` column of the rows of a /proc/net/udp table whose inode is in `sockets`.
fn udp_drops(table: &str, sockets: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let drops: u64 = fields.last()?.parse().ok()?;
            sockets.contains(&inode).then_some(drops)
        })
        .sum()
}

/// Every number roster exports.
#[derive(Debug)]
pub struct Metrics {
    /// Indexed `[qtype][rcode][transport]`, flattened.
    queries: Box<[AtomicU64]>,
    truncated: Box<[AtomicU64]>,
    malformed: Box<[AtomicU64]>,
    tcp_connections: AtomicI64,
    /// [dropped, slipped]
    rate_limited: Box<[AtomicU64]>,
    /// Indexed by [`Unsent`].
    unsent: Box<[AtomicU64]>,
    /// Inodes of the UDP sockets served, whose receive-buffer drops the kernel counts (set once
    /// the sockets are bound, read at scrape time).
    udp_sockets: OnceLock<Vec<u64>>,
    tcp_closed: Box<[AtomicU64]>,
    answer_latency: [Histogram; 2],
    events: Box<[AtomicU64]>,
    reloads: AtomicU64,
    pub programming_latency: Histogram,
    /// [published, no_ip, not_ready, terminating]
    members: Box<[AtomicI64]>,
    services: AtomicI64,
    skipped: Box<[AtomicI64]>,
    conflicts: AtomicI64,
    conflicts_total: AtomicU64,
    over_limit: AtomicI64,
    refused: AtomicU64,
    waiting: AtomicI64,
    serial: AtomicU64,
    ready: AtomicI64,
    health: Arc<Health>,
}

/// Member states, in the order of the `members` gauges.
pub const MEMBER_STATES: [&str; 4] = ["published", "no_ip", "not_ready", "terminating"];

pub fn member_state(unpublished: Option<Unpublished>) -> usize {
    match unpublished {
        None => 0,
        Some(Unpublished::NoIp) => 1,
        Some(Unpublished::NotReady) => 2,
        Some(Unpublished::Terminating) => 3,
    }
}

impl Metrics {
    pub fn new(health: Arc<Health>) -> Self {
        Self {
            queries: counters(QTYPES.len() * RCODES.len() * TRANSPORTS.len()),
            truncated: counters(2),
            malformed: counters(2),
            tcp_connections: AtomicI64::new(0),
            rate_limited: counters(2),
            unsent: counters(UNSENT_REASONS.len()),
            udp_sockets: OnceLock::new(),
            tcp_closed: counters(TCP_CLOSE_REASONS.len()),
            answer_latency: [
                Histogram::new(ANSWER_BUCKETS),
                Histogram::new(ANSWER_BUCKETS),
            ],
            events: counters(EVENTS.len()),
            reloads: AtomicU64::new(0),
            programming_latency: Histogram::new(PROGRAMMING_BUCKETS),
            members: (0..MEMBER_STATES.len())
                .map(|_| AtomicI64::new(0))
                .collect(),
            services: AtomicI64::new(0),
            skipped: SkipReason::ALL.iter().map(|_| AtomicI64::new(0)).collect(),
            conflicts: AtomicI64::new(0),
            conflicts_total: AtomicU64::new(0),
            over_limit: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            waiting: AtomicI64::new(0),
            serial: AtomicU64::new(0),
            ready: AtomicI64::new(0),
            health,
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// One answered query. `qtype` and `rcode` index [`QTYPES`] and [`RCODES`].
    pub fn query(&self, qtype: usize, rcode: usize, t: Transport, truncated: bool) {
        let i = (qtype * RCODES.len() + rcode) * TRANSPORTS.len() + t as usize;
        self.queries[i].fetch_add(1, Relaxed);
        if truncated {
            self.truncated[t as usize].fetch_add(1, Relaxed);
        }
    }

    /// `n` answers sent `took` after their queries arrived.
    pub fn answered(&self, t: Transport, took: Duration, n: u64) {
        if n > 0 {
            self.answer_latency[t as usize].observe_n(took, n);
        }
    }

    pub fn malformed(&self, t: Transport) {
        self.malformed[t as usize].fetch_add(1, Relaxed);
    }

    /// A UDP response dropped or slipped by response rate limiting.
    pub fn rate_limited(&self, verdict: Verdict) {
        match verdict {
            Verdict::Drop => self.rate_limited[0].fetch_add(1, Relaxed),
            Verdict::Slip => self.rate_limited[1].fetch_add(1, Relaxed),
            Verdict::Send => 0,
        };
    }

    /// `n` UDP answers that were made but not sent.
    pub fn unsent(&self, reason: Unsent, n: u64) {
        self.unsent[reason as usize].fetch_add(n, Relaxed);
    }

    /// The inodes of the UDP sockets being served, whose kernel drop counts the collector reads;
    /// the sockets are bound once, so only the first call counts.
    pub fn set_udp_sockets(&self, inodes: Vec<u64>) {
        let _ = self.udp_sockets.set(inodes);
    }

    /// Queries the kernel dropped at roster's full UDP receive buffers: roster was slower than
    /// the load. `None` where the kernel does not tell (no /proc).
    fn udp_receive_drops(&self) -> Option<u64> {
        let sockets = self.udp_sockets.get().map_or(&[][..], Vec::as_slice);
        let mut drops = None;
        for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
            if let Ok(text) = std::fs::read_to_string(table) {
                let found = udp_drops(&text, sockets);
                drops = Some(drops.unwrap_or(0) + found);
            }
        }
        drops
    }

    pub fn set_tcp_connections(&self, open: usize) {
        self.tcp_connections.store(open as i64, Relaxed);
    }

    pub fn tcp_closed(&self, reason: TcpClose) {
        self.tcp_closed[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn malformed_total(&self, t: Transport) -> u64 {
        self.malformed[t as usize].load(Relaxed)
    }

    /// `kind` indexes [`EVENTS`].
    pub fn events(&self, kind: usize, count: usize) {
        self.events[kind].fetch_add(count as u64, Relaxed);
    }

    pub fn reloaded(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    pub fn set_zone(&self, serial: u32, services: usize, members: [usize; 4]) {
        self.serial.store(serial.into(), Relaxed);
        self.services.store(services as i64, Relaxed);
        for (gauge, n) in self.members.iter().zip(members) {
            gauge.store(n as i64, Relaxed);
        }
    }

    pub fn set_membership(&self, skipped: &[usize; 7], conflicts: usize, conflicts_total: u64) {
        for (gauge, n) in self.skipped.iter().zip(skipped) {
            gauge.store(*n as i64, Relaxed);
        }
        self.conflicts.store(conflicts as i64, Relaxed);
        self.conflicts_total.store(conflicts_total, Relaxed);
    }

    pub fn set_over_limit(&self, members: usize) {
        self.over_limit.store(members as i64, Relaxed);
    }

    pub fn pod_refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub fn set_waiting(&self, pods: usize) {
        self.waiting.store(pods as i64, Relaxed);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready.into(), Relaxed);
    }

    /// A registry holding these metrics, for the text encoder.
    pub fn registry(self: &Arc<Self>) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        registry
    }

    /// The OpenMetrics text exposition.
    pub fn render(self: &Arc<Self>) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry())
            .expect("writing to a String cannot fail");
        out
    }

    /// The Prometheus text exposition (format 0.0.4), for whatever does not ask for
    /// OpenMetrics: `curl`, `promtool check metrics`, scrapers that read only this format (they
    /// refuse OpenMetrics' `info` type and `# EOF`).
    pub fn render_prometheus(self: &Arc<Self>) -> String {
        prometheus_text(&self.render())
    }
}

/// OpenMetrics text as the Prometheus text format: the same samples, each family named as its
/// samples are (a counter's `_total`; an info metric's `_info`, a gauge there), without `# EOF`.
fn prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // A family's HELP comes before its TYPE, which decides its name.
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{family}_total"), kind),
                "info" => (format!("{family}_info"), "gauge"),
                "unknown" => (family.to_owned(), "untyped"),
                _ => (family.to_owned(), kind),
            };
            if let Some(text) = help.take().and_then(|h| h.strip_prefix(family)) {
                out.push_str(&format!("# HELP {name}{text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if !(line == "# EOF" || line.starts_with("# UNIT ")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// 0 for never, as the sync metrics say it.
fn sync_gauge(at: Option<std::time::SystemTime>) -> i64 {
    at.map_or(0, |t| crate::source::unix_seconds(t) as i64)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// A counter family with one label: a series per label value, `values` in the same order.
fn labelled_counters(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    (label, names): (&str, &[&str]),
    values: &[AtomicU64],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, name) in values.iter().zip(names) {
        let labels = [(label, *name)];
        m.encode_family(&labels.as_slice())?
            .encode_counter::<NoLabelSet, _, u64>(&value.load(Relaxed), None)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], &Histogram)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        let (sum, count, buckets) = h.snapshot();
        if labels.is_empty() {
            m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        } else {
            m.encode_family(labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        {
            let mut m = e.encode_descriptor(
                "roster_dns_queries",
                "DNS queries answered, by query type, response code and transport",
                None,
                MetricType::Counter,
            )?;
            for (q, qtype) in QTYPES.iter().enumerate() {
                for (r, rcode) in RCODES.iter().enumerate() {
                    for (t, transport) in TRANSPORTS.iter().enumerate() {
                        let v = self.queries[(q * RCODES.len() + r) * TRANSPORTS.len() + t]
                            .load(Relaxed);
                        if v > 0 {
                            let labels = [
                                ("qtype", *qtype),
                                ("rcode", *rcode),
                                ("transport", *transport),
                            ];
                            m.encode_family(&labels.as_slice())?
                                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                        }
                    }
                }
            }
        }
        labelled_counters(
            &mut e,
            "roster_dns_truncated",
            "Answers sent with TC=1 because they did not fit",
            ("transport", &TRANSPORTS),
            &self.truncated,
        )?;
        labelled_counters(
            &mut e,
            "roster_dns_malformed",
            "Messages that could not be parsed (FORMERR or dropped)",
            ("transport", &TRANSPORTS),
            &self.malformed,
        )?;
        labelled_counters(
            &mut e,
            "roster_dns_rate_limited",
            "UDP responses over dns.rate_limit: dropped, or slipped (sent empty with TC=1)",
            ("action", &["dropped", "slipped"]),
            &self.rate_limited,
        )?;
        labelled_counters(
            &mut e,
            "roster_dns_unsent",
            "UDP answers made but not sent: the socket's send buffer stayed full for 100 ms \
             (send_buffer_full), or the kernel refused the datagram (refused)",
            ("reason", &UNSENT_REASONS),
            &self.unsent,
        )?;
        if let Some(drops) = self.udp_receive_drops() {
            counter(
                &mut e,
                "roster_dns_udp_receive_dropped",
                "Queries the kernel dropped because a UDP socket's receive buffer was full: \
                 roster answered more slowly than queries arrived (from /proc/net/udp)",
                drops,
            )?;
        }
        gauge(
            &mut e,
            "roster_dns_tcp_connections",
            "TCP connections open",
            self.tcp_connections.load(Relaxed),
        )?;
        labelled_counters(
            &mut e,
            "roster_dns_tcp_closed",
            "TCP connections closed by roster, by reason (idle, lifetime, queries: the \
             dns.tcp_* limits; evicted: to admit a new one at dns.tcp_max_connections)",
            ("reason", &TCP_CLOSE_REASONS),
            &self.tcp_closed,
        )?;
        histogram(
            &mut e,
            "roster_dns_answer_duration_seconds",
            "Time from receiving a query to sending its answer",
            &[
                (&[("transport", "udp")], &self.answer_latency[0]),
                (&[("transport", "tcp")], &self.answer_latency[1]),
            ],
        )?;
        labelled_counters(
            &mut e,
            "roster_source_events",
            "Pod events received from the source, by kind",
            ("kind", &EVENTS),
            &self.events,
        )?;
        counter(
            &mut e,
            "roster_source_reloads",
            "Versions of the pods file applied",
            self.reloads.load(Relaxed),
        )?;
        counter(
            &mut e,
            "roster_source_errors",
            "Failed attempts of the source: pods file reloads that did not parse, API requests that failed",
            self.health.errors_total(),
        )?;
        gauge(
            &mut e,
            "roster_source_last_sync_timestamp_seconds",
            "Unix time of the last successful sync with the source (0: never)",
            sync_gauge(self.health.last_sync()),
        )?;
        let mut namespaces = self.health.namespace_syncs().peekable();
        if namespaces.peek().is_some() {
            let mut m = e.encode_descriptor(
                "roster_source_namespace_last_sync_timestamp_seconds",
                "Unix time of the API server's last successful answer for one of \
                 source.namespaces (0: never)",
                None,
                MetricType::Gauge,
            )?;
            for (namespace, at) in namespaces {
                let labels = [("namespace", namespace)];
                m.encode_family(&labels.as_slice())?
                    .encode_gauge(&sync_gauge(at))?;
            }
        }
        histogram(
            &mut e,
            "roster_programming_latency_seconds",
            "Time from a pod change reaching roster to the new answer being served",
            &[(&[], &self.programming_latency)],
        )?;
        {
            let mut m = e.encode_descriptor(
                "roster_members",
                "Members holding names, by state (published, or why not)",
                None,
                MetricType::Gauge,
            )?;
            for (i, state) in MEMBER_STATES.iter().enumerate() {
                let labels = [("state", *state)];
                m.encode_family(&labels.as_slice())?
                    .encode_gauge(&self.members[i].load(Relaxed))?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "roster_skipped_pods",
                "Pods that ask to be members but cannot have a name, by reason",
                None,
                MetricType::Gauge,
            )?;
            for (i, reason) in SkipReason::ALL.iter().enumerate() {
                let labels = [("reason", reason.as_str())];
                m.encode_family(&labels.as_slice())?
                    .encode_gauge(&self.skipped[i].load(Relaxed))?;
            }
        }
        gauge(
            &mut e,
            "roster_services",
            "Services with at least one member holding a name",
            self.services.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "roster_conflicting_names",
            "Member names claimed by more than one pod now",
            self.conflicts.load(Relaxed),
        )?;
        counter(
            &mut e,
            "roster_conflicts",
            "Conflicts seen: a pod claiming a member name another pod holds",
            self.conflicts_total.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "roster_members_over_limit",
            "Members without a name because their service has more than members.max_per_service",
            self.over_limit.load(Relaxed),
        )?;
        counter(
            &mut e,
            "roster_pods_refused",
            "Pods not tracked because members.max_pods pods were kept already",
            self.refused.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "roster_pods_waiting",
            "Pods refused at members.max_pods that wait to be tracked as others go",
            self.waiting.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "roster_zone_serial",
            "SOA serial of the zone served",
            self.serial.load(Relaxed) as i64,
        )?;
        gauge(
            &mut e,
            "roster_ready",
            "1 when the first complete list is served and roster is not shutting down",
            self.ready.load(Relaxed),
        )?;
        let mut info =
            e.encode_descriptor("roster_build", "roster's version", None, MetricType::Info)?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))].as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_drops_are_summed_over_roster_s_sockets_only() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  101: 0100007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 51001 2 0000000000000000 7
  102: 0100007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 51002 2 0000000000000000 35
  103: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9999 2 0000000000000000 1000
";
        assert_eq!(udp_drops(table, &[51001, 51002]), 42);
        assert_eq!(udp_drops(table, &[51002]), 35);
        assert_eq!(udp_drops(table, &[]), 0);
        assert_eq!(udp_drops("garbage\nnot a row\n", &[51001]), 0);
    }

    #[test]
    fn histograms_are_cumulative_once() {
        let m = Arc::new(Metrics::new(Arc::new(Health::default())));
        m.programming_latency.observe(Duration::from_micros(300));
        m.programming_latency.observe(Duration::from_secs(10));
        let text = m.render();
        for line in [
            "roster_programming_latency_seconds_count 2",
            "roster_programming_latency_seconds_bucket{le=\"0.00025\"} 0",
            "roster_programming_latency_seconds_bucket{le=\"0.0005\"} 1",
            "roster_programming_latency_seconds_bucket{le=\"2.5\"} 1",
            "roster_programming_latency_seconds_bucket{le=\"+Inf\"} 2",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
