//! roster as Prometheus sees it: the real Prometheus scraping the real binary and evaluating the
//! alerts of `deploy/extras/prometheusrule.yaml`, and promtool checking roster's metrics and
//! those alerts, and running their unit tests (`tests/fixtures/prometheus`).
//!
//! Both come from Debian's `prometheus` package, which `tests/run.sh` unpacks into
//! `target/prometheus` (installing it would also start a Prometheus server).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_server::proto::rr::RecordType;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `promtool` or `prometheus`: unpacked by tests/run.sh, or installed.
fn tool(name: &str) -> PathBuf {
    let unpacked = root().join("target/prometheus/usr/bin").join(name);
    if unpacked.exists() {
        return unpacked;
    }
    let installed = Path::new("/usr/bin").join(name);
    assert!(
        installed.exists(),
        "{name} is not there; run tests/run.sh (it unpacks Debian's prometheus package into {})",
        unpacked.display()
    );
    installed
}

/// The PrometheusRule's `spec`: a Prometheus rules file (JSON is YAML).
fn rules() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/extras/prometheusrule.yaml")).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["kind"], "PrometheusRule");
    doc["spec"].clone()
}

/// Every `roster_…` metric name the alerts' expressions use.
fn metric_names(rules: &Value) -> Vec<String> {
    let mut names: Vec<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .flat_map(|r| {
            r["expr"]
                .as_str()
                .unwrap()
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("roster_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn promtool(dir: &Path, args: &[&str]) -> String {
    tool_output(
        Command::new(tool("promtool")).args(args).current_dir(dir),
        Duration::from_secs(60),
    )
}

/// promtool finds the alerts valid, and each fires when it should and not before, with the
/// text an operator reads (the unit tests in tests/fixtures/prometheus).
#[test]
fn the_alerts_are_valid_and_fire_when_they_should() {
    let dir = temp_dir();
    std::fs::write(dir.join("rules.yaml"), rules().to_string()).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/prometheus/alerts-test.yaml"),
        dir.join("alerts-test.yaml"),
    )
    .unwrap();
    let checked = promtool(&dir, &["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "alerts-test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// What a plain GET of /metrics returns (to curl, or a scraper that does not ask for
/// OpenMetrics) passes promtool's check: it parses as the Prometheus text format (OpenMetrics'
/// `info` type and `# EOF` do not) and breaks none of its naming rules.
#[test]
fn the_metrics_pass_promtool_check() {
    let r = Roster::start_with("", &world(), &["--admin-listen", "127.0.0.1:0"]);
    // Series of every kind: counters, histograms with observations, gauges, the info metric.
    udp(
        r.addr,
        &query("db-0.db.prod.roster.internal.", RecordType::A),
    );
    udp(
        r.addr,
        &query("nope.db.prod.roster.internal.", RecordType::SRV),
    );
    let (status, text) = http_get(r.admin.unwrap(), "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("roster_dns_answer_duration_seconds_bucket"),
        "{text}"
    );
    let dir = temp_dir();
    std::fs::write(dir.join("metrics.txt"), &text).unwrap();
    let script = format!("{} check metrics < metrics.txt", tool("promtool").display());
    tool_output(
        Command::new("sh").args(["-c", &script]).current_dir(&dir),
        Duration::from_secs(60),
    );
}

/// Prometheus, killed by its PID when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Prometheus in `dir`, scraping `target` every second with the alerts loaded.
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        std::fs::write(dir.join("rules.yaml"), rules().to_string()).unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n\
             - job_name: roster\n  static_configs: [{{targets: [\"{target}\"]}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .args([
                "--config.file=prometheus.yml".to_owned(),
                "--storage.tsdb.path=tsdb".to_owned(),
                format!("--web.listen-address={addr}"),
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr }
    }

    /// The API's `data` at `path`, or `None` while Prometheus does not answer.
    fn api(&self, path: &str) -> Option<Value> {
        let stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        stream.ok()?;
        let (status, body) = http_get(self.addr, path);
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["status"] == "success").then(|| v["data"].clone())
    }

    /// The instant vector of `query`.
    fn query(&self, query: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", encode(query)))
            .and_then(|d| d["result"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// Percent-encodes a query for a URL.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits (at most `within`) for `check` to give something.
fn within<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(v) = check() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// The real Prometheus scrapes roster's /metrics (OpenMetrics, which it asks for),
/// stores what roster reports, has every metric the alerts name (a misspelt one would leave an
/// alert silent for ever), and evaluates every alert against it without error.
#[test]
fn prometheus_scrapes_roster_and_evaluates_the_alerts() {
    // Two pods claim db-0: one conflicting name.
    let mut pods = world();
    pods.push_str(
        "---\nmetadata:\n  name: other\n  namespace: prod\n  creationTimestamp: \"2030-01-01T00:00:00Z\"\n  labels: {roster.io/service: db, roster.io/name: db, roster.io/ordinal: \"0\"}\nstatus:\n  podIP: 10.1.9.9\n",
    );
    let r = Roster::start_with("", &pods, &["--admin-listen", "127.0.0.1:0"]);
    let admin = r.admin.unwrap();
    let (_, own) = http_get(admin, "/metrics");
    let dir = temp_dir();
    let prometheus = Prometheus::start(&dir, admin);
    let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    // Prometheus hands its targets to the scraper up to 5 s after start.
    let up = within(Duration::from_secs(30), || {
        let up = prometheus.query("up{job=\"roster\"}");
        (up.first()?["value"][1] == "1").then_some(())
    });
    assert!(up.is_some(), "roster not scraped\n{}", log());
    let targets = prometheus.api("/api/v1/targets").unwrap();
    assert_eq!(
        targets["activeTargets"][0]["health"],
        "up",
        "{targets}\n{}",
        log()
    );
    for (query, sample) in [
        (
            "roster_members{state=\"published\"}",
            "roster_members{state=\"published\"}",
        ),
        ("roster_conflicting_names", "roster_conflicting_names"),
        ("roster_ready", "roster_ready"),
    ] {
        let stored = prometheus.query(query);
        let value: f64 = stored[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(value, metric(&own, sample), "{query}: {stored:?}");
    }
    assert_eq!(metric(&own, "roster_conflicting_names"), 1.0, "{own}");
    let info = prometheus.query("roster_build_info");
    assert_eq!(
        info[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{info:?}"
    );
    let stored: Vec<String> = prometheus
        .api("/api/v1/label/__name__/values")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let names = metric_names(&rules());
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        assert!(
            stored.contains(name),
            "the alerts use {name}, which roster does not export: {stored:?}"
        );
    }
    // Every alert evaluated without error; the conflict's is pending (it fires after 10
    // minutes).
    let pending = |r: &Value| r["name"] == "RosterConflictingNames" && r["state"] == "pending";
    let evaluated = within(Duration::from_secs(10), || {
        let groups = prometheus.api("/api/v1/rules")?;
        let rules: Vec<Value> = groups["groups"][0]["rules"].as_array()?.clone();
        rules.iter().any(pending).then_some(rules)
    });
    let rules = evaluated.unwrap_or_else(|| {
        panic!(
            "RosterConflictingNames is not pending: {:?}\n{}",
            prometheus.api("/api/v1/rules"),
            log()
        )
    });
    assert_eq!(rules.len(), 7);
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert!(
            rule["name"] == "RosterConflictingNames" || rule["state"] == "inactive",
            "{rule}"
        );
    }
}
