//! Freshness and footprint of the Kubernetes source, against the fake API server of the tests.
//!
//! For 1,000 and 100,000 pods (5 members per service) it starts the release `roster` binary
//! on the fake API server and reports: time from start to the first answer after the initial
//! list; resident memory once ready; and, over a few hundred single-pod changes, the time from
//! the API server writing the watch event to the new answer arriving at a DNS client (p50, p99,
//! max).
//!
//! At 100,000 pods it then measures freshness under load: `dnsperf` finds roster's maximum
//! query rate, then sends half of it while the API server changes 1,000 pods a second, and
//! every change is timed from the API server taking it to its answer on the wire. roster runs
//! on core 0, everything else (API server, `dnsperf`, the prober) on core 1, as in
//! `benches/compare.py`. Skipped when `dnsperf` is not installed.
//!
//! Run with `cargo bench --bench kube`; `-- --pods 1000` limits it to one size.
//!
//! `-- --soak 600 --pods 100000` instead runs the soak: ten minutes of `dnsperf` at half of the
//! maximum query rate while the API server changes 100 pods a second, reporting lost queries,
//! SERVFAILs, and resident memory minute by minute.

#[path = "../tests/common/fake_api.rs"]
mod fake_api;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::{FakeApi, pod};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};

const CHANGES: usize = 300;
/// Pod changes per second under load, and for how long.
const CHANGE_RATE: u64 = 1_000;
const CHANGE_SECONDS: u64 = 10;
/// Every how many changes one is timed: timing all of them would make the prober's own queries
/// a load of their own.
const TIME_EVERY: usize = 5;
/// How often the prober asks again for a change not yet served.
const PROBE_EVERY: Duration = Duration::from_micros(250);
/// Queries a second the prober sends at most, all changes together.
const PROBE_RATE: f64 = 20_000.0;
const SERVER_CORE: usize = 0;
const CLIENT_CORE: usize = 1;

struct Roster(Child);

impl Drop for Roster {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(n: usize, generation: usize) -> String {
    format!(
        "10.{}.{}.{}",
        1 + generation * 2 + n / 65_536 % 2,
        n / 256 % 256,
        n % 256
    )
}

fn member(n: usize) -> (String, String) {
    let (service, m) = (n / 5, n % 5);
    (format!("s{service}-{m}"), format!("s{service}"))
}

fn a_record(socket: &UdpSocket, addr: SocketAddr, name: &Name, id: u16) -> Option<String> {
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(name.clone(), RecordType::A));
    socket.send_to(&q.to_vec().unwrap(), addr).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let m = Message::from_vec(&buf[..n]).ok()?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) the process has used, all its threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: a plain query of a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / hz
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(pods: usize, soak_seconds: Option<u64>) -> Option<LoadResult> {
    let api = FakeApi::start();
    let loading = Instant::now();
    for n in 0..pods {
        let (name, service) = member(n);
        api.apply(pod("bench", &name, &service, &ip(n, 0), true));
    }
    eprintln!(
        "fake API server holds {pods} pods ({:.1} s)",
        loading.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("roster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = api.kubeconfig(&dir);
    std::fs::write(dir.join("roster.toml"), "[source]\ntype = \"kubernetes\"\n").unwrap();

    let started = Instant::now();
    let mut command = if pinned() {
        let mut c = Command::new("taskset");
        c.args(["-c", &SERVER_CORE.to_string(), env!("CARGO_BIN_EXE_roster")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_roster"))
    };
    let admin = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut child = command
        .args([
            "serve",
            "--admin-listen",
            &admin.to_string(),
            "--workers",
            "1",
            "--config",
            "roster.toml",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .current_dir(&dir)
        .env("RUST_LOG", "warn,roster::dns=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the roster binary");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let roster = Roster(child);
    let mut lines = stderr.lines().map_while(Result::ok);
    let addr: SocketAddr = lines
        .find_map(|l| l.split("addr=").nth(1).map(|a| a.trim().parse().unwrap()))
        .expect("roster listens");
    // Keep reading roster's log: a full pipe would stop roster at its next log line.
    let log = dir.join("roster.log");
    std::thread::spawn(move || {
        let mut out = std::fs::File::create(log).unwrap();
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    });

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (last, service) = member(pods - 1);
    let last_name = Name::from_ascii(format!("{last}.{service}.bench.roster.internal.")).unwrap();
    let want = ip(pods - 1, 0);
    while a_record(&socket, addr, &last_name, 1).as_deref() != Some(want.as_str()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "roster never became ready"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = started.elapsed();
    let rss_ready = rss_kib(roster.0.id());
    let cpu_ready = cpu_seconds(roster.0.id());

    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let n = (i * 7919) % pods;
        let (name, service) = member(n);
        let qname = Name::from_ascii(format!("{name}.{service}.bench.roster.internal.")).unwrap();
        let new_ip = ip(n, 1 + i % 2);
        let t0 = Instant::now();
        api.apply(pod("bench", &name, &service, &new_ip, true));
        let mut id = 0u16;
        loop {
            id = id.wrapping_add(1);
            if a_record(&socket, addr, &qname, id).as_deref() == Some(new_ip.as_str()) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "change {i} never served"
            );
        }
        latencies.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    latencies.sort();
    let rss_after = rss_kib(roster.0.id());
    println!(
        "| {pods:>7} | {:>8.2} | {:>8.2} | {:>8.2} | {:>9.2} | {:>9.2} | {:>10.1} | {:>10.1} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        ready.as_secs_f64(),
        cpu_ready,
        rss_ready as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
    if let Some(seconds) = soak_seconds {
        soak(&api, addr, admin, roster.0.id(), pods, &dir, seconds);
        drop(roster);
        let _ = std::fs::remove_dir_all(dir);
        return None;
    }
    let mut loaded = (pods >= 100_000)
        .then(|| under_load(&api, addr, pods, &dir))
        .flatten();
    if let Some(r) = &mut loaded {
        r.histogram = programming_latency(admin);
    }
    drop(roster);
    let log = std::fs::read_to_string(dir.join("roster.log")).unwrap_or_default();
    let logged: Vec<&str> = log.lines().collect();
    if !logged.is_empty() {
        eprintln!("roster logged {} lines; the last:", logged.len());
        for line in &logged[logged.len().saturating_sub(5)..] {
            eprintln!("  {line}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    loaded
}

/// roster's own `roster_programming_latency_seconds`: (events, share within 1 ms, within 5 ms).
fn programming_latency(admin: SocketAddr) -> Option<(f64, f64, f64)> {
    let text = http_get(admin, "/metrics")?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let count = value("roster_programming_latency_seconds_count ")?;
    let within = |le: &str| {
        value(&format!(
            "roster_programming_latency_seconds_bucket{{le=\"{le}\"}} "
        ))
        .unwrap_or(0.0)
            / count.max(1.0)
    };
    Some((count, within("0.001"), within("0.005")))
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: roster\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// roster gets a core of its own when the machine has two.
fn pinned() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok()
}

/// Keeps this process (and every thread it starts later) off roster's core.
fn pin_self(core: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct LoadResult {
    max_qps: f64,
    load_qps: f64,
    lost: u64,
    sent: u64,
    rate: f64,
    latencies: Vec<Duration>,
    unserved: usize,
    histogram: Option<(f64, f64, f64)>,
}

/// The query mix over the fake API's pods: 60% member A, 15% service SRV, 10%
/// `_peer._tcp` SRV, 10% service A, 5% names that do not exist.
fn query_file(pods: usize, path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 7;
    for _ in 0..200_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (x >> 33) as usize % pods;
        let (name, service) = member(n);
        let svc = format!("{service}.bench.roster.internal");
        let line = match (x >> 20) % 100 {
            0..60 => format!("{name}.{svc} A"),
            60..75 => format!("{svc} SRV"),
            75..85 => format!("_peer._tcp.{svc} SRV"),
            85..95 => format!("{svc} A"),
            _ => format!("nobody-{n}.{svc} A"),
        };
        writeln!(out, "{line}").unwrap();
    }
}

struct Dnsperf {
    qps: f64,
    sent: u64,
    lost: u64,
    /// The "Response codes:" line.
    rcodes: String,
}

/// roster's count of SERVFAIL answers.
fn servfails(admin: SocketAddr) -> f64 {
    http_get(admin, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("roster_dns_queries_total{") && l.contains("rcode=\"servfail\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Pod changes a second during a soak.
const SOAK_CHANGE_RATE: u64 = 100;

/// The soak: `dnsperf` at half of the maximum for `seconds` while the API server changes
/// [`SOAK_CHANGE_RATE`] pods a second; reports errors (lost queries, SERVFAIL) and resident
/// memory over time, growth measured from the first minute's end.
fn soak(
    api: &FakeApi,
    addr: SocketAddr,
    admin: SocketAddr,
    pid: u32,
    pods: usize,
    dir: &Path,
    seconds: u64,
) {
    let queries = dir.join("queries.txt");
    query_file(pods, &queries);
    // roster's SERVFAILs so far: those before the first list, while the bench waited.
    let servfail_before = servfails(admin);
    let max = dnsperf_result(dnsperf(addr, &queries, 5, None));
    let load = dnsperf(addr, &queries, seconds, Some(max.qps / 2.0));
    let period = Duration::from_micros(1_000_000 / SOAK_CHANGE_RATE);
    let start = Instant::now();
    let mut samples = vec![(0u64, rss_kib(pid))];
    let mut made = 0usize;
    let mut last_change = None;
    while start.elapsed() < Duration::from_secs(seconds) {
        let n = (made * 7919 + 13) % pods;
        let (name, service) = member(n);
        let new_ip = ip(n, 5 + made % 2);
        api.apply(pod("bench", &name, &service, &new_ip, true));
        last_change = Some((name, service, new_ip));
        made += 1;
        let minute = start.elapsed().as_secs() / 60;
        if minute as usize >= samples.len() {
            samples.push((minute * 60, rss_kib(pid)));
        }
        if let Some(wait) = (start + period * made as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let load = dnsperf_result(load);
    samples.push((start.elapsed().as_secs(), rss_kib(pid)));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let last_served = last_change.is_some_and(|(name, service, ip)| {
        let qname = Name::from_ascii(format!("{name}.{service}.bench.roster.internal.")).unwrap();
        a_record(&socket, addr, &qname, 7).as_deref() == Some(ip.as_str())
    });
    let servfail = servfails(admin) - servfail_before;
    println!(
        "\nSoak, {pods} pods: {seconds} s of dnsperf at {:.0} qps (half of the measured maximum, \
         {:.0}) while the API server made {made} pod changes ({:.0}/s)\n",
        load.qps,
        max.qps,
        made as f64 / seconds as f64
    );
    println!("| queries sent | lost | SERVFAIL (roster's count) | last change served |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {servfail:.0} | {} |",
        load.sent,
        load.lost,
        if last_served { "yes" } else { "no" }
    );
    println!("\ndnsperf {}", load.rcodes);
    println!("\n| time (s) | resident memory (MiB) |\n|---|---|");
    for (at, kib) in &samples {
        println!("| {at} | {:.1} |", *kib as f64 / 1024.0);
    }
    if samples.len() > 2 {
        let base = samples[1].1 as f64;
        let end = samples.last().unwrap().1 as f64;
        println!(
            "\nresident memory growth after the first minute: {:+.1}%",
            (end - base) / base * 100.0
        );
    }
}

/// With a `limit`, `dnsperf` runs at the lowest priority: it shares the client core with the
/// API server and the prober, which in a cluster have machines of their own, and a load
/// generator that never sleeps would otherwise delay them and have their waiting counted as
/// roster's. The rate it reaches is reported, so a load it could not send does not go unseen.
fn dnsperf(addr: SocketAddr, queries: &Path, seconds: u64, limit: Option<f64>) -> Child {
    let mut c = Command::new("nice");
    let niceness = if limit.is_some() { "19" } else { "0" };
    c.args([
        "-n",
        niceness,
        "dnsperf",
        "-s",
        &addr.ip().to_string(),
        "-p",
        &addr.port().to_string(),
    ])
    .arg("-d")
    .arg(queries)
    .args([
        "-l",
        &seconds.to_string(),
        "-c",
        "8",
        "-T",
        "1",
        "-q",
        "200",
        "-t",
        "2",
    ]);
    if let Some(qps) = limit {
        c.args(["-Q", &format!("{}", qps as u64)]);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsperf")
}

fn dnsperf_result(child: Child) -> Dnsperf {
    let out = child.wait_with_output().expect("dnsperf ran");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str, index: usize| -> f64 {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(index)?.parse().ok())
            .unwrap_or(0.0)
    };
    Dnsperf {
        qps: field("Queries per second:", 3),
        sent: field("Queries sent:", 2) as u64,
        lost: field("Queries lost:", 2) as u64,
        rcodes: text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("Response codes:"))
            .unwrap_or("Response codes: (none)")
            .to_owned(),
    }
}

struct Change {
    name: Name,
    ip: String,
    at: Instant,
}

/// Times changes from the API server taking them to the first answer with the new address,
/// asking again every [`PROBE_EVERY`] for each change not yet served, at most [`PROBE_RATE`]
/// queries a second in all (if changes pile up, the prober must not become the load).
struct Prober {
    socket: UdpSocket,
    addr: SocketAddr,
    pending: HashMap<usize, Change>,
    /// Changes to ask about, least recently asked first.
    queue: VecDeque<(usize, Instant)>,
    ids: HashMap<u16, usize>,
    next: usize,
    id: u16,
    tokens: f64,
    refilled: Instant,
    latencies: Vec<Duration>,
}

impl Prober {
    fn new(addr: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        Prober {
            socket,
            addr,
            pending: HashMap::new(),
            queue: VecDeque::new(),
            ids: HashMap::new(),
            next: 0,
            id: 0,
            tokens: 0.0,
            refilled: Instant::now(),
            latencies: Vec::new(),
        }
    }

    fn add(&mut self, change: Change) {
        self.pending.insert(self.next, change);
        self.queue
            .push_front((self.next, Instant::now() - PROBE_EVERY));
        self.next += 1;
    }

    /// When the next query is due, if any change is pending (and the rate allows it).
    fn due(&self) -> Option<Instant> {
        let token =
            self.refilled + Duration::from_secs_f64((1.0 - self.tokens).max(0.0) / PROBE_RATE);
        self.queue
            .front()
            .map(|&(_, sent)| (sent + PROBE_EVERY).max(token))
    }

    fn send_due(&mut self) {
        self.tokens = (self.tokens + self.refilled.elapsed().as_secs_f64() * PROBE_RATE).min(64.0);
        self.refilled = Instant::now();
        while let Some(&(k, sent)) = self.queue.front() {
            let Some(change) = self.pending.get(&k) else {
                self.queue.pop_front(); // served since it was queued
                continue;
            };
            if sent.elapsed() < PROBE_EVERY || self.tokens < 1.0 {
                break;
            }
            self.queue.pop_front();
            self.id = self.id.wrapping_add(1);
            let mut q = Message::new(self.id, MessageType::Query, OpCode::Query);
            q.add_query(Query::query(change.name.clone(), RecordType::A));
            let _ = self.socket.send_to(&q.to_vec().unwrap(), self.addr);
            self.ids.insert(self.id, k);
            self.queue.push_back((k, Instant::now()));
            self.tokens -= 1.0;
        }
    }

    /// Waits for an answer until `until`. A receive timeout (SO_RCVTIMEO) would count in
    /// scheduler ticks of up to 4 ms, measured as roster's latency; ppoll's is a precise timer.
    fn wait(&self, until: Instant) {
        use std::os::fd::AsRawFd;
        let left = until.saturating_duration_since(Instant::now());
        let mut fd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timeout, no signal mask.
        unsafe { libc::ppoll(&mut fd, 1, &timeout, std::ptr::null()) };
    }

    fn receive(&mut self) {
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(k) = self.ids.remove(&m.metadata.id) else {
                continue;
            };
            let Some(change) = self.pending.get(&k) else {
                continue;
            };
            let served = m.answers.iter().any(|r| match &r.data {
                RData::A(a) => a.0.to_string() == change.ip,
                _ => false,
            });
            if served && m.queries.first().is_some_and(|q| q.name() == &change.name) {
                self.latencies.push(change.at.elapsed());
                self.pending.remove(&k);
            }
        }
    }
}

/// Freshness at 1,000 changes a second while roster answers half its maximum query load. One
/// thread makes the changes on schedule and times them, so nothing waits on another thread.
fn under_load(api: &FakeApi, addr: SocketAddr, pods: usize, dir: &Path) -> Option<LoadResult> {
    if Command::new("dnsperf").arg("-h").output().is_err() {
        eprintln!("dnsperf is not installed: freshness under load skipped");
        return None;
    }
    let queries = dir.join("queries.txt");
    query_file(pods, &queries);
    let max = dnsperf_result(dnsperf(addr, &queries, 5, None));
    let load = dnsperf(addr, &queries, CHANGE_SECONDS + 2, Some(max.qps / 2.0));
    std::thread::sleep(Duration::from_secs(1));

    let mut prober = Prober::new(addr);
    let total = (CHANGE_RATE * CHANGE_SECONDS) as usize;
    let period = Duration::from_micros(1_000_000 / CHANGE_RATE);
    let start = Instant::now();
    let mut made = 0;
    let mut finished = None;
    loop {
        while made < total && start + period * made as u32 <= Instant::now() {
            let n = (made * 7919 + 13) % pods;
            let (name, service) = member(n);
            let new_ip = ip(n, 3 + made % 2);
            let qname =
                Name::from_ascii(format!("{name}.{service}.bench.roster.internal.")).unwrap();
            let at = Instant::now();
            api.apply(pod("bench", &name, &service, &new_ip, true));
            if made % TIME_EVERY == 0 {
                prober.add(Change {
                    name: qname,
                    ip: new_ip,
                    at,
                });
            }
            made += 1;
        }
        if made == total && finished.is_none() {
            finished = Some(start.elapsed());
        }
        prober.send_due();
        let last_call = finished.is_some_and(|f| start.elapsed() > f + Duration::from_secs(5));
        if finished.is_some() && prober.pending.is_empty() || last_call {
            break;
        }
        let next_change = (made < total).then(|| start + period * made as u32);
        let until = [next_change, prober.due(), Some(Instant::now() + period)]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        prober.wait(until);
        prober.receive();
    }
    let rate = total as f64 / finished.unwrap().as_secs_f64();
    let load = dnsperf_result(load);
    let mut latencies = prober.latencies;
    latencies.sort();
    Some(LoadResult {
        max_qps: max.qps,
        load_qps: load.qps,
        lost: load.lost,
        sent: load.sent,
        rate,
        latencies,
        unserved: prober.pending.len(),
        histogram: None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--pods") {
        Some(i) => vec![args[i + 1].parse().expect("--pods N")],
        None => vec![1_000, 100_000],
    };
    let soak_seconds: Option<u64> = args
        .iter()
        .position(|a| a == "--soak")
        .map(|i| args[i + 1].parse().expect("--soak SECONDS"));
    if pinned() {
        pin_self(CLIENT_CORE);
    }
    println!(
        "Kubernetes source: watch event written by the API server -> new answer at a DNS client"
    );
    println!(
        "({CHANGES} single-pod changes; ready = start to first answer after the initial list; \
         roster CPU = its CPU time until then, the rest of the wait being the API server's)\n"
    );
    println!(
        "|    pods | p50 (ms) | p99 (ms) | max (ms) | ready (s) | roster CPU (s) | RSS ready (MiB) | RSS after (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut loaded = Vec::new();
    for pods in sizes {
        if let Some(r) = run(pods, soak_seconds) {
            loaded.push((pods, r));
        }
    }
    for (pods, r) in loaded {
        println!(
            "\nFreshness under load, {pods} pods: {:.0} pod changes/s for {CHANGE_SECONDS} s \
             while dnsperf sends {:.0} qps (maximum measured: {:.0} qps; lost {} of {})\n",
            r.rate, r.load_qps, r.max_qps, r.lost, r.sent
        );
        println!("| changes timed | p50 (ms) | p99 (ms) | max (ms) | never served |");
        println!("|---|---|---|---|---|");
        if r.latencies.is_empty() {
            println!("| 0 | - | - | - | {} |", r.unserved);
            continue;
        }
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {} |",
            r.latencies.len(),
            ms(percentile(&r.latencies, 0.5)),
            ms(percentile(&r.latencies, 0.99)),
            ms(*r.latencies.last().unwrap()),
            r.unserved
        );
        if let Some((count, ms1, ms5)) = r.histogram {
            println!(
                "\nroster_programming_latency_seconds (event received -> snapshot published), \
                 whole run: {count:.0} events, {:.2}% within 1 ms, {:.2}% within 5 ms",
                ms1 * 100.0,
                ms5 * 100.0
            );
        }
    }
}
