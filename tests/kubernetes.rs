//! The Kubernetes source (SPEC §3, §4): the real binary, the real kube client, and a fake API
//! server over HTTP that lists and watches faithfully and fails on demand.

mod common;

use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, pod};
use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

const WITHIN: Duration = Duration::from_secs(3);

/// roster on the fake API server, with `source` added under [source].
fn roster(api: &FakeApi, source: &str) -> Roster {
    let dir = temp_dir();
    Roster::start_with(&kube_config(api, &dir, source), "", &[])
}

/// A configuration of the Kubernetes source on the fake API server, its kubeconfig in `dir`,
/// with `source` added under [source] (`api_timeout = 6` unless `source` sets it).
fn kube_config(api: &FakeApi, dir: &std::path::Path, source: &str) -> String {
    let kubeconfig = api.kubeconfig(dir);
    let timeout = if source.contains("api_timeout") {
        ""
    } else {
        "api_timeout = 6\n"
    };
    format!(
        "[source]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\n{timeout}{source}",
        kubeconfig.display()
    )
}

fn a(r: &Roster, qname: &str) -> (ResponseCode, Vec<String>) {
    let (m, _) = udp(r.addr, &query(qname, RecordType::A));
    (m.metadata.response_code, a_records(&m))
}

fn ok(ips: &[&str]) -> (ResponseCode, Vec<String>) {
    (
        ResponseCode::NoError,
        ips.iter().map(|s| s.to_string()).collect(),
    )
}

fn nx() -> (ResponseCode, Vec<String>) {
    (ResponseCode::NXDomain, vec![])
}

/// Waits until `qname` answers `want`.
fn expect(r: &Roster, qname: &str, want: (ResponseCode, Vec<String>), what: &str) {
    expect_within(r, qname, want, WITHIN, what);
}

/// After an error, kube's backoff (0.8 s doubling, with jitter) comes before the next request.
const AFTER_BACKOFF: Duration = Duration::from_secs(20);

fn expect_within(
    r: &Roster,
    qname: &str,
    want: (ResponseCode, Vec<String>),
    within: Duration,
    what: &str,
) {
    let took = r.eventually(within, || a(r, qname) == want);
    assert!(
        took.is_some(),
        "{what}: {qname} answers {:?}, want {want:?}\n{}",
        a(r, qname),
        r.log()
    );
}

fn db(api: &FakeApi, n: u32, ip: &str) {
    api.apply(pod("prod", &format!("db-{n}"), "db", ip, true));
}

/// Waits until member `n` of what [`db`] applies answers `ip`.
fn expect_db(r: &Roster, n: u32, ip: &str, within: Duration, what: &str) {
    let name = format!("db-{n}.db.prod.roster.internal.");
    expect_within(r, &name, ok(&[ip]), within, what);
}

#[test]
fn watch_events_follow_pods() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    db(&api, 1, "10.0.0.2");
    let r = roster(&api, "");
    assert_eq!(
        a(&r, "db.prod.roster.internal."),
        ok(&["10.0.0.1", "10.0.0.2"])
    );

    // Scale up, then down.
    db(&api, 2, "10.0.0.3");
    expect(
        &r,
        "db-2.db.prod.roster.internal.",
        ok(&["10.0.0.3"]),
        "scale up",
    );
    api.delete("prod", "db-2");
    api.delete("prod", "db-1");
    expect(
        &r,
        "db.prod.roster.internal.",
        ok(&["10.0.0.1"]),
        "scale down",
    );
    assert_eq!(a(&r, "db-1.db.prod.roster.internal."), nx());

    // Re-created under the same name with a new IP.
    api.delete("prod", "db-0");
    db(&api, 0, "10.0.9.1");
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        ok(&["10.0.9.1"]),
        "re-created",
    );

    // Readiness flips.
    api.apply(pod("prod", "db-0", "db", "10.0.9.1", false));
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        ok(&[]),
        "not ready: NODATA",
    );
    api.apply(pod("prod", "db-0", "db", "10.0.9.1", true));
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        ok(&["10.0.9.1"]),
        "ready again",
    );

    // Terminating, then gone.
    let mut terminating = pod("prod", "db-0", "db", "10.0.9.1", true);
    terminating["metadata"]["deletionTimestamp"] = serde_json::json!("2026-11-26T10:00:00Z");
    api.apply(terminating);
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        ok(&[]),
        "terminating: NODATA",
    );
    api.delete("prod", "db-0");
    expect(&r, "db-0.db.prod.roster.internal.", nx(), "deleted");

    // A finished pod leaves the watch (the field selector) and its name.
    db(&api, 5, "10.0.0.6");
    expect(
        &r,
        "db-5.db.prod.roster.internal.",
        ok(&["10.0.0.6"]),
        "new",
    );
    let mut done = pod("prod", "db-5", "db", "10.0.0.6", false);
    done["status"]["phase"] = serde_json::json!("Succeeded");
    api.apply(done);
    expect(&r, "db-5.db.prod.roster.internal.", nx(), "succeeded");
}

#[test]
fn servfail_until_the_first_list_then_ready() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    api.fail_lists(Some(500), None);
    let dir = temp_dir();
    let config = kube_config(&api, &dir, "");
    let r = Roster::start_unready(&config);
    std::thread::sleep(Duration::from_millis(500));
    let (m, _) = udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "no list yet"
    );
    let (m, _) = udp(r.addr, &query("example.com.", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    api.fail_lists(None, None);
    // kube's backoff is at most a few seconds at this point.
    expect_db(&r, 0, "10.0.0.1", Duration::from_secs(10), "lists work");
    assert!(
        r.log().contains("answered 500"),
        "the failure is logged\n{}",
        r.log()
    );
}

/// kube's watcher says `Init` before each list request, so a list that keeps failing gives
/// `Init`, error, `Init`, error…: none of that is the API server answering.
#[test]
fn failing_lists_back_off_and_are_not_taken_for_recovery() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    api.fail_lists(Some(503), None);
    let dir = temp_dir();
    let config = kube_config(&api, &dir, "");
    let r = Roster::start_unready(&config);
    std::thread::sleep(Duration::from_secs(7));
    let lists = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|q| !q.contains("watch="))
            .count()
    };
    // Retries 0.8-1.6 s, then 1.6-3.2 s, then 3.2-6.4 s after the one before: at most four
    // lists in 7 s. A backoff that starts over at each retry lists at least five times.
    let tried = lists(&api);
    assert!(
        (2..=4).contains(&tried),
        "lists in 7 s of failures: {tried}\n{}",
        r.log()
    );
    let log = r.log();
    assert!(
        !log.contains("reachable again"),
        "no list succeeded:\n{log}"
    );
    assert!(
        log.contains("consecutive_errors=2 "),
        "the errors are counted as one run:\n{log}"
    );
    api.fail_lists(None, None);
    expect_db(&r, 0, "10.0.0.1", AFTER_BACKOFF, "lists work");
    assert!(
        r.log().contains("Kubernetes API reachable again"),
        "{}",
        r.log()
    );
}

/// A quiet cluster can go hours without a pod event while roster's watch is renewed every two
/// thirds of `api_timeout`: each renewal is the API server answering, and the last sync says
/// so, or an alert on it would fire on every quiet night.
#[test]
fn a_quiet_watch_keeps_the_last_sync_recent() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let dir = temp_dir();
    // Watches renewed every 2 s.
    let config = kube_config(&api, &dir, "api_timeout = 3\n");
    let r = Roster::start_with(&config, "", &["--admin-listen", "127.0.0.1:0"]);
    let listed = unix_now();
    std::thread::sleep(Duration::from_secs(7));
    let last = last_sync(r.admin.unwrap());
    assert!(
        last > listed + 3.0,
        "last sync {:.1} s after the list, 7 s later, watches renewed every 2 s\n{}",
        last - listed,
        r.log()
    );
    assert!(last <= unix_now() + 1.0, "{last}");
}

/// With several namespaces, one whose requests are refused (its RoleBinding deleted) stops the
/// last sync though the others answer: the alert on it is the operator's only sign that
/// staging's answers are frozen.
#[test]
fn one_failing_namespace_ages_the_last_sync() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    api.apply(pod("staging", "db-0", "db", "10.1.0.1", true));
    let dir = temp_dir();
    // Watches renewed every 2 s.
    let config = kube_config(
        &api,
        &dir,
        "api_timeout = 3\nnamespaces = [\"prod\", \"staging\"]\n",
    );
    let r = Roster::start_with(&config, "", &["--admin-listen", "127.0.0.1:0"]);
    let synced = || last_sync(r.admin.unwrap());
    // Which namespace ages it, for an operator reading the metrics.
    let namespace = |ns: &str| {
        let (_, body) = http_get(r.admin.unwrap(), "/metrics");
        let sample =
            format!("roster_source_namespace_last_sync_timestamp_seconds{{namespace=\"{ns}\"}}");
        metric(&body, &sample)
    };
    let listed = synced();
    assert!(listed > 0.0, "both namespaces listed\n{}", r.log());
    assert!(namespace("prod") >= listed && namespace("staging") >= listed);
    api.forbid_namespace(Some("staging"));
    api.drop_watches();
    let refused = r.wait_log("still serving the last good state", Duration::from_secs(10));
    assert!(
        refused.is_some_and(|l| l.contains("namespace staging")),
        "the refusal is logged\n{}",
        r.log()
    );
    let frozen = synced();
    // prod's watch is renewed and its changes served all along.
    db(&api, 1, "10.0.0.2");
    expect_db(&r, 1, "10.0.0.2", WITHIN, "prod still watched");
    let staging = namespace("staging");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        synced(),
        frozen,
        "prod's answers moved the last sync on while staging was refused\n{}",
        r.log()
    );
    assert_eq!(
        namespace("staging"),
        staging,
        "staging's own sync stands still"
    );
    assert!(
        namespace("prod") > staging + 3.0,
        "prod's own sync follows its renewed watches: {} against staging's {staging}",
        namespace("prod")
    );
    api.forbid_namespace(None);
    let recent = r.eventually(AFTER_BACKOFF, || synced() > frozen + 4.0);
    assert!(recent.is_some(), "staging answers again\n{}", r.log());
}

/// The end of an outage is logged though no pod changed (the renewed watch brings no event),
/// and from then the backoff starts over: a later failure is retried after the first step
/// (0.8-1.6 s), not after the step the outage grew it to (6.4 s or more).
#[test]
fn a_quiet_recovery_is_logged_and_resets_the_backoff() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let r = roster(&api, "");
    api.down();
    let failing = r.wait_log("still serving the last good state", Duration::from_secs(10));
    assert!(failing.is_some(), "the outage is logged\n{}", r.log());
    // Retries 0.8-1.6, 1.6-3.2 and 3.2-6.4 s apart: three steps are taken before it is up.
    std::thread::sleep(Duration::from_secs(6));
    api.up();
    // The next retry is at most one backoff step (6.4-12.8 s) away.
    let back = r.wait_log("Kubernetes API reachable again", Duration::from_secs(20));
    assert!(back.is_some(), "{}", r.log());
    assert_eq!(a(&r, "db-0.db.prod.roster.internal."), ok(&["10.0.0.1"]));
    api.fail_watches(Some(500), None);
    let before = api.requests().len();
    api.drop_watches();
    std::thread::sleep(Duration::from_secs(4));
    // The dropped watch is resumed at once and refused; the retries follow 0.8-1.6 and then
    // 1.6-3.2 s later. After the grown step, none would in 4 s.
    let retries = api.requests().len() - before;
    assert!(retries >= 2, "{retries} requests in 4 s\n{}", r.log());
}

#[test]
fn a_conflict_keeps_the_incumbent() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let r = roster(&api, "");
    let mut claimant = pod("prod", "impostor", "db", "10.0.6.6", true);
    claimant["metadata"]["labels"]["roster.io/name"] = serde_json::json!("db");
    claimant["metadata"]["labels"]["roster.io/ordinal"] = serde_json::json!("0");
    claimant["metadata"]["creationTimestamp"] = serde_json::json!("2030-01-01T00:00:00Z");
    api.apply(claimant);
    assert!(
        r.wait_log("member name claimed by more than one pod", WITHIN)
            .is_some(),
        "{}",
        r.log()
    );
    assert_eq!(
        a(&r, "db-0.db.prod.roster.internal."),
        ok(&["10.0.0.1"]),
        "older wins"
    );
    api.delete("prod", "db-0");
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        ok(&["10.0.6.6"]),
        "the claimant takes over",
    );
}

/// Queries `names` continuously on a thread until stopped; returns every answer that was not
/// the expected one.
struct Watchdog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Watchdog {
    fn start(
        addr: std::net::SocketAddr,
        expected: Vec<(&'static str, (ResponseCode, Vec<String>))>,
    ) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut asked, mut wrong) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (name, want) in &expected {
                    let (m, _) = udp(addr, &query(name, RecordType::A));
                    let got = (m.metadata.response_code, a_records(&m));
                    asked += 1;
                    if got != *want {
                        wrong.push(format!("{name}: {got:?}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (asked, wrong)
        });
        Watchdog { stop, thread }
    }

    /// How many queries were asked, and the first few wrong answers with their count.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (asked, mut wrong) = self.thread.join().unwrap();
        let total = wrong.len();
        wrong.truncate(5);
        if total > 5 {
            wrong.push(format!("... {total} wrong in all"));
        }
        (asked, wrong)
    }
}

#[test]
fn a_relist_after_410_never_flaps_and_drops_what_vanished() {
    let api = FakeApi::start();
    for n in 0..5 {
        db(&api, n, &format!("10.0.0.{}", n + 1));
    }
    let r = roster(&api, "");
    let steady = Watchdog::start(
        r.addr,
        vec![
            ("db-0.db.prod.roster.internal.", ok(&["10.0.0.1"])),
            ("db-3.db.prod.roster.internal.", ok(&["10.0.0.4"])),
        ],
    );
    let lists_before = api
        .requests()
        .iter()
        .filter(|q| !q.contains("watch="))
        .count();
    // The watch breaks; meanwhile db-9 comes and goes, and the history is compacted, so the
    // resumed watch gets 410 Expired and roster lists again.
    api.down();
    db(&api, 9, "10.0.0.9");
    api.compact();
    api.up();
    let relisted = r.eventually(Duration::from_secs(15), || {
        api.requests()
            .iter()
            .filter(|q| !q.contains("watch="))
            .count()
            > lists_before
    });
    assert!(
        relisted.is_some(),
        "roster lists again after 410\n{}",
        r.log()
    );
    expect_within(
        &r,
        "db-9.db.prod.roster.internal.",
        ok(&["10.0.0.9"]),
        AFTER_BACKOFF,
        "seen through the relist",
    );
    api.down();
    api.delete("prod", "db-9");
    api.compact();
    api.up();
    expect_within(
        &r,
        "db-9.db.prod.roster.internal.",
        nx(),
        AFTER_BACKOFF,
        "vanished during the disconnect",
    );
    let (asked, wrong) = steady.finish();
    assert!(asked > 50, "{asked}");
    assert!(
        wrong.is_empty(),
        "members present throughout never flap: {wrong:?}"
    );
}

/// A watch that ends with 410 Expired (the API server compacted past roster's resource
/// version; nothing is wrong with it) is followed by a list at once: kube's backoff after an
/// error is at least 0.8 s, all of it stale answers.
#[test]
fn a_watch_expired_with_410_lists_again_at_once() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let r = roster(&api, "");
    let lists = || {
        api.requests()
            .iter()
            .filter(|q| !q.contains("watch="))
            .count()
    };
    for round in 0..3 {
        // Ready means listed, not yet watching: a 410 sent before the watch opens reaches no one.
        r.eventually(Duration::from_secs(5), || api.open_watches() > 0)
            .unwrap_or_else(|| panic!("round {round}: no watch opened\n{}", r.log()));
        let before = lists();
        api.expire_watches();
        let relisted = r.eventually(Duration::from_secs(5), || lists() > before);
        let took = relisted.unwrap_or_else(|| panic!("round {round}: no list\n{}", r.log()));
        assert!(
            took < Duration::from_millis(600),
            "round {round}: listed again after {took:?}, as after a backoff\n{}",
            r.log()
        );
        db(&api, 1, &format!("10.0.1.{}", round + 1));
        expect(
            &r,
            "db-1.db.prod.roster.internal.",
            ok(&[&format!("10.0.1.{}", round + 1)]),
            "a change after the list",
        );
    }
}

#[test]
fn http_410_at_watch_start_is_not_retried_for_ever() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let r = roster(&api, "");
    // kube-rs answers an HTTP 410 on the watch request by retrying the same version; roster
    // rebuilds the watcher after three, which lists again.
    api.fail_watches(Some(410), Some(4));
    api.drop_watches();
    let lists = || {
        api.requests()
            .iter()
            .filter(|q| !q.contains("watch="))
            .count()
    };
    let before = lists();
    let relisted = r.eventually(Duration::from_secs(30), || lists() > before);
    assert!(
        relisted.is_some(),
        "a fresh list after repeated 410s\n{}",
        r.log()
    );
    assert!(r.log().contains("410"), "{}", r.log());
    db(&api, 1, "10.0.0.2");
    expect_db(&r, 1, "10.0.0.2", Duration::from_secs(15), "updates resume");
}

#[test]
fn thirty_seconds_without_the_api_server() {
    let api = FakeApi::start();
    for n in 0..3 {
        db(&api, n, &format!("10.0.0.{}", n + 1));
    }
    let r = roster(&api, "");
    let during = Watchdog::start(
        r.addr,
        vec![
            ("db-0.db.prod.roster.internal.", ok(&["10.0.0.1"])),
            ("db-1.db.prod.roster.internal.", ok(&["10.0.0.2"])),
            (
                "db.prod.roster.internal.",
                ok(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            ),
        ],
    );
    api.down();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    // Changes roster cannot see yet.
    api.delete("prod", "db-1");
    db(&api, 3, "10.0.0.4");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed()));
    let (asked, wrong) = during.finish();
    assert!(asked > 1000, "{asked}");
    assert!(
        wrong.is_empty(),
        "every answer unchanged during the outage: {wrong:?}"
    );
    let warnings = r.log().matches("Kubernetes API:").count();
    assert!(
        (1..=8).contains(&warnings),
        "errors logged with backoff, not per retry: {warnings}\n{}",
        r.log()
    );
    assert!(r.log().contains("last_sync="), "{}", r.log());

    api.up();
    // The retry after the outage can be a whole backoff step away: kube's delays double up to
    // 30 s, and its jitter adds up to as much again.
    let back = r.eventually(Duration::from_secs(70), || {
        a(&r, "db-3.db.prod.roster.internal.") == ok(&["10.0.0.4"])
            && a(&r, "db-1.db.prod.roster.internal.") == nx()
    });
    assert!(back.is_some(), "updates resume by themselves\n{}", r.log());
    assert!(
        r.log().contains("Kubernetes API reachable again"),
        "{}",
        r.log()
    );
    db(&api, 4, "10.0.0.5");
    expect(
        &r,
        "db-4.db.prod.roster.internal.",
        ok(&["10.0.0.5"]),
        "and keep flowing",
    );
}

#[test]
fn only_the_configured_namespaces() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    api.apply(pod("staging", "db-0", "db", "10.1.0.1", true));
    api.apply(pod("other", "db-0", "db", "10.2.0.1", true));
    let r = roster(&api, "namespaces = [\"prod\", \"staging\"]\n");
    assert_eq!(a(&r, "db-0.db.prod.roster.internal."), ok(&["10.0.0.1"]));
    assert_eq!(a(&r, "db-0.db.staging.roster.internal."), ok(&["10.1.0.1"]));
    assert_eq!(a(&r, "db-0.db.other.roster.internal."), nx());
    api.apply(pod("other", "db-1", "db", "10.2.0.2", true));
    api.apply(pod("staging", "db-1", "db", "10.1.0.2", true));
    expect(
        &r,
        "db-1.db.staging.roster.internal.",
        ok(&["10.1.0.2"]),
        "watched",
    );
    assert_eq!(a(&r, "db-1.db.other.roster.internal."), nx());
    let paths: Vec<String> = api.requests();
    assert!(
        paths
            .iter()
            .all(|p| p.contains("/namespaces/prod/") || p.contains("/namespaces/staging/")),
        "{paths:?}"
    );
}

#[test]
fn only_pods_matching_the_label_selector() {
    let api = FakeApi::start();
    let tagged = |name: &str, ip: &str, tier: &str| {
        let mut p = pod("prod", name, "db", ip, true);
        p["metadata"]["labels"]["tier"] = serde_json::json!(tier);
        p
    };
    api.apply(tagged("db-0", "10.0.0.1", "data"));
    api.apply(tagged("db-1", "10.0.0.2", "web"));
    let r = roster(&api, "label_selector = \"tier in (data, cache)\"\n");
    assert_eq!(a(&r, "db.prod.roster.internal."), ok(&["10.0.0.1"]));
    // A pod that leaves the selection leaves the zone.
    api.apply(tagged("db-0", "10.0.0.1", "web"));
    expect(
        &r,
        "db-0.db.prod.roster.internal.",
        nx(),
        "left the selection",
    );
    api.apply(tagged("db-1", "10.0.0.2", "cache"));
    expect(
        &r,
        "db-1.db.prod.roster.internal.",
        ok(&["10.0.0.2"]),
        "entered the selection",
    );
    assert!(
        api.requests().iter().all(|q| q.contains("labelSelector=")),
        "{:?}",
        api.requests()
    );
}

#[test]
fn a_list_of_2000_pods_is_read_in_pages() {
    let api = FakeApi::start();
    for s in 0..400 {
        for m in 0..5 {
            api.apply(pod(
                "big",
                &format!("s{s}-{m}"),
                &format!("s{s}"),
                &format!("10.{}.{}.{}", 1 + s / 250, s % 250, m + 1),
                true,
            ));
        }
    }
    let r = roster(&api, "");
    let pages = api
        .requests()
        .iter()
        .filter(|q| !q.contains("watch=") && q.contains("limit=500"))
        .count();
    assert_eq!(pages, 4, "{:?}", api.requests());
    assert!(api.requests().iter().any(|q| q.contains("continue=")));
    assert_eq!(
        a(&r, "s399-4.s399.big.roster.internal."),
        ok(&["10.2.149.5"])
    );
    assert_eq!(a(&r, "s0.big.roster.internal.").1.len(), 5);
    let (m, _) = tcp(r.addr, &query("s123.big.roster.internal.", RecordType::SRV));
    assert_eq!(m.answers.len(), 5);
}

#[test]
fn wrong_credentials_or_permissions_say_what_is_missing() {
    for (code, needle) in [
        (403, "roster needs get, list and watch on pods cluster-wide"),
        (401, "rejected roster's credentials"),
    ] {
        let api = FakeApi::start();
        db(&api, 0, "10.0.0.1");
        let r = roster(&api, "");
        api.fail_all(Some(code));
        api.drop_watches();
        let line = r.wait_log(needle, Duration::from_secs(10));
        assert!(line.is_some(), "{code}: {needle:?}\n{}", r.log());
        assert_eq!(
            a(&r, "db-0.db.prod.roster.internal."),
            ok(&["10.0.0.1"]),
            "{code}: still serving"
        );
        api.fail_all(None);
        db(&api, 1, "10.0.0.2");
        expect_db(
            &r,
            1,
            "10.0.0.2",
            Duration::from_secs(20),
            &format!("{code}: recovers"),
        );
    }
}

#[test]
fn server_errors_garbage_and_stalls_are_survived() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let r = roster(&api, "");
    // A line that is not JSON: the stream goes on.
    api.send_garbage();
    db(&api, 1, "10.0.0.2");
    expect(
        &r,
        "db-1.db.prod.roster.internal.",
        ok(&["10.0.0.2"]),
        "after garbage",
    );
    // 500s for a while.
    api.fail_all(Some(500));
    api.drop_watches();
    std::thread::sleep(Duration::from_secs(2));
    api.fail_all(None);
    db(&api, 2, "10.0.0.3");
    expect_db(&r, 2, "10.0.0.3", Duration::from_secs(20), "after 500s");
    // 503s (an overloaded server): reported, not retried silently inside the client.
    api.fail_all(Some(503));
    api.drop_watches();
    let reported = r.wait_log("answered 503", Duration::from_secs(10));
    assert!(reported.is_some(), "503 is logged\n{}", r.log());
    api.fail_all(None);
    db(&api, 6, "10.0.0.7");
    expect_db(&r, 6, "10.0.0.7", Duration::from_secs(20), "after 503s");
    // A stalled server: requests accepted and never answered. The read timeout (api_timeout)
    // ends them.
    api.stall(true);
    api.drop_watches();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a(&r, "db-2.db.prod.roster.internal."),
        ok(&["10.0.0.3"]),
        "serving while stalled"
    );
    api.stall(false);
    db(&api, 3, "10.0.0.4");
    expect_db(&r, 3, "10.0.0.4", Duration::from_secs(30), "after a stall");
}

/// SIGHUP lists the pods again at once: a watch that stopped delivering without an error (here,
/// a request the server accepted and never answered) is replaced then, not at its timeout.
#[test]
fn sighup_lists_the_pods_again() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    db(&api, 1, "10.0.0.2");
    let r = roster(&api, "");
    let db0 = "db-0.db.prod.roster.internal.";
    assert_eq!(a(&r, db0), ok(&["10.0.0.1"]));
    // The new list replaces the old one whole: db-1 never stops answering.
    let steady = Watchdog::start(
        r.addr,
        vec![("db-1.db.prod.roster.internal.", ok(&["10.0.0.2"]))],
    );
    let lists = || {
        api.requests()
            .iter()
            .filter(|q| !q.contains("watch="))
            .count()
    };
    let (before, requests) = (lists(), api.requests().len());
    // The watch is cut, and its replacement hangs (api_timeout is 6 s) while db-0 moves.
    api.stall(true);
    api.drop_watches();
    let hung = r.eventually(WITHIN, || api.requests().len() > requests);
    assert!(hung.is_some(), "roster watches again\n{}", r.log());
    api.stall(false);
    db(&api, 0, "10.0.5.1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        a(&r, db0),
        ok(&["10.0.0.1"]),
        "the hung watch brings nothing"
    );
    r.send("-HUP");
    expect(&r, db0, ok(&["10.0.5.1"]), "after SIGHUP");
    assert!(lists() > before, "a new list\n{:?}", api.requests());
    assert!(
        r.wait_log("listing the pods again, as asked", WITHIN)
            .is_some(),
        "{}",
        r.log()
    );
    let (asked, wrong) = steady.finish();
    assert!(asked > 10 && wrong.is_empty(), "{asked} asked: {wrong:?}");
}

#[test]
fn the_file_and_kubernetes_sources_agree_on_the_fixtures() {
    let fixtures = format!("{}/tests/fixtures/pods", env!("CARGO_MANIFEST_DIR"));
    let mut objects: Vec<serde_json::Value> = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            match v["items"].as_array() {
                Some(items) => objects.extend(items.iter().cloned()),
                None => objects.push(v),
            }
        }
    }
    // Both sources get the same objects: the file as YAML documents, the API as pods.
    let file: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
    let from_file = Roster::start(&file);
    let api = FakeApi::start();
    for o in &objects {
        api.apply(o.clone());
    }
    let dir = temp_dir();
    let kubeconfig = api.kubeconfig(&dir);
    let config = format!(
        "[dns]\nreverse_zones = [\"10.in-addr.arpa\", \"d.f.ip6.arpa\"]\n[source]\ntype = \"kubernetes\"\nkubeconfig = \"{}\"\n",
        kubeconfig.display()
    );
    let from_api = Roster::start_with(&config, "", &[]);
    let mon = "openshift-monitoring.roster.internal.";
    let mut names: Vec<String> = vec![ZONE.into(), "openshift-monitoring.roster.internal.".into()];
    for svc in ["prometheus-operated", "alertmanager-operated"] {
        names.push(format!("{svc}.{mon}"));
        names.push(format!("_tcp.{svc}.{mon}"));
        names.push(format!("_udp.{svc}.{mon}"));
        for port in [
            "web",
            "grpc",
            "http",
            "tenancy",
            "thanos-proxy",
            "mesh-tcp",
            "mesh-udp",
        ] {
            names.push(format!("_{port}._tcp.{svc}.{mon}"));
            names.push(format!("_{port}._udp.{svc}.{mon}"));
        }
    }
    for member in [
        "prometheus-k8s-0.prometheus-operated",
        "prometheus-k8s-1.prometheus-operated",
        "alertmanager-main-0.alertmanager-operated",
    ] {
        names.push(format!("{member}.{mon}"));
    }
    names.extend([
        "workbench-0.workbench.project.roster.internal.".into(),
        "project.roster.internal.".into(),
    ]);
    names.extend([
        "142.0.129.10.in-addr.arpa.".into(),
        "10.2.128.10.in-addr.arpa.".into(),
    ]);
    let mut compared = 0;
    for name in &names {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::PTR,
            RecordType::SOA,
            RecordType::NS,
        ] {
            let q = query(name, qtype);
            let (f, _) = tcp(from_file.addr, &q);
            let (k, _) = tcp(from_api.addr, &q);
            let show = |m: &hickory_server::proto::op::Message| {
                let mut records: Vec<String> = m
                    .answers
                    .iter()
                    .chain(&m.additionals)
                    .filter(|r| r.record_type() != RecordType::SOA)
                    .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
                    .collect();
                records.sort();
                (
                    m.metadata.response_code,
                    m.metadata.authoritative,
                    records,
                    m.authorities.len(),
                )
            };
            assert_eq!(show(&f), show(&k), "{name} {qtype}");
            compared += 1;
        }
    }
    assert!(compared > 200);
    // And the sources hold names at all: the comparison is not of two empty zones.
    assert_eq!(
        a(
            &from_api,
            &format!("prometheus-k8s-1.prometheus-operated.{mon}")
        ),
        ok(&["10.129.0.148"])
    );
}

#[test]
fn credentials_are_checked_at_start_up() {
    let dir = temp_dir();
    std::fs::write(dir.join("roster.toml"), "[source]\ntype = \"kubernetes\"\n").unwrap();
    // A kubeconfig that is not there: a usage error naming the file.
    let (code, _, err) = run(
        &dir,
        &[
            "serve",
            "--config",
            "roster.toml",
            "--kubeconfig",
            "missing-kubeconfig",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing-kubeconfig"), "{err}");
    // No kubeconfig anywhere and not in a cluster.
    let out = serve_in(&dir)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no Kubernetes credentials"), "{err}");
    // The two sources cannot both be chosen.
    let (code, _, err) = run(
        &dir,
        &["serve", "--pods-file", "p.yaml", "--kubeconfig", "k"],
    );
    assert_eq!(code, 2, "{err}");
    // check-config reads the kubeconfig without contacting the server.
    let api = FakeApi::start();
    let kubeconfig = api.kubeconfig(&dir);
    let (code, out, err) = run(
        &dir,
        &[
            "check-config",
            "--config",
            "roster.toml",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("type = \"kubernetes\""), "{out}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[test]
fn kubeconfig_from_the_environment() {
    let api = FakeApi::start();
    db(&api, 0, "10.0.0.1");
    let dir = temp_dir();
    let kubeconfig = api.kubeconfig(&dir);
    std::fs::write(dir.join("roster.toml"), "[source]\ntype = \"kubernetes\"\n").unwrap();
    let child = serve_in(&dir)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    use std::io::BufRead;
    let addr: std::net::SocketAddr = std::io::BufReader::new(child.0.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("addr=").nth(1).map(|a| a.trim().parse().unwrap()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (m, _) = udp(addr, &query("db-0.db.prod.roster.internal.", RecordType::A));
        if a_records(&m) == ["10.0.0.1"] {
            break;
        }
        assert!(Instant::now() < deadline, "KUBECONFIG was not used");
        std::thread::sleep(Duration::from_millis(20));
    }
}
