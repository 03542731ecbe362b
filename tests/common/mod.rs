//! Test harness: the real `roster` binary on a free loopback port, raw DNS over UDP and TCP, and
//! `dig`. Every wait is bounded; every process started here is stopped by its PID.

#![allow(dead_code)]

pub mod fake_api;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};

pub const ZONE: &str = "roster.internal.";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_roster")
}

/// `roster serve` of `dir`'s `roster.toml` on a free port, run in `dir`: for the tests that
/// watch the process itself rather than a started [`Roster`].
pub fn serve_in(dir: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .args([
            "serve",
            "--config",
            "roster.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir);
    command
}

/// Pods of the standard test world (YAML): `db` in `prod` with db-0 (dual-stack), db-1 ready
/// and db-2 not ready; named ports `peer` (TCP) and `gossip` (UDP).
pub fn db_pod(ordinal: u32, ip: &str, ready: bool) -> String {
    format!(
        "---
apiVersion: v1
kind: Pod
metadata:
  name: db-{ordinal}
  namespace: prod
  creationTimestamp: \"2026-01-01T00:00:0{ordinal}Z\"
  ownerReferences:
  - {{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u1, controller: true}}
spec:
  subdomain: db
  containers:
  - name: db
    image: db
    ports:
    - {{name: client, containerPort: 5432}}
    - {{name: peer, containerPort: 7000}}
    - {{name: gossip, containerPort: 7946, protocol: UDP}}
status:
  conditions:
  - {{type: Ready, status: \"{}\"}}
  podIPs:
  - ip: {ip}
",
        if ready { "True" } else { "False" }
    )
}

pub fn world() -> String {
    let mut s = db_pod(0, "10.1.0.1", true);
    s.push_str("  - ip: fd00::1\n");
    s.push_str(&db_pod(1, "10.1.0.2", true));
    s.push_str(&db_pod(2, "10.1.0.3", false));
    s
}

/// A running roster.
pub struct Roster {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The admin listener, when roster was started with `--admin-listen`.
    pub admin: Option<SocketAddr>,
    pub dir: PathBuf,
    log: Arc<Mutex<String>>,
    /// Set when roster's stderr closes, that is when it has exited.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// The path, no longer removed on drop (its new owner removes it).
    pub fn into_path(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Empty once handed over by `into_path`.
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn temp_dir() -> TempDir {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("roster-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Replaces a file the way operators should: write a temporary file, then rename it.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Roster {
    /// Starts roster with `config` (TOML; `pods_file = "pods.yaml"` is added when the text has
    /// no [source]) and `pods` as `pods.yaml`, listening on a free port.
    pub fn start_with(config: &str, pods: &str, args: &[&str]) -> Roster {
        Self::start_under(&[], config, pods, args)
    }

    /// [`Roster::start_with`] run by `wrapper` (such as `ip netns exec NS` or `setpriv ...`),
    /// which must exec roster in its own process, so that the PID is roster's.
    pub fn start_under(wrapper: &[&str], config: &str, pods: &str, args: &[&str]) -> Roster {
        let dir = temp_dir().into_path();
        let mut config = config.to_owned();
        if !config.contains("[source]") {
            config.push_str("\n[source]\npods_file = \"pods.yaml\"\n");
        }
        std::fs::write(dir.join("roster.toml"), config).unwrap();
        std::fs::write(dir.join("pods.yaml"), pods).unwrap();
        let mut all = vec!["serve", "--config", "roster.toml"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend(args);
        Self::spawn_under(wrapper, dir, &all, true)
    }

    /// Like [`Roster::start_with`] with no pods file, returning as soon as roster listens
    /// (before its source has delivered a first list).
    pub fn start_unready(config: &str) -> Roster {
        let dir = temp_dir().into_path();
        std::fs::write(dir.join("roster.toml"), config).unwrap();
        Self::spawn_with(
            dir,
            &[
                "serve",
                "--config",
                "roster.toml",
                "--listen",
                "127.0.0.1:0",
            ],
            false,
        )
    }

    pub fn start(pods: &str) -> Roster {
        Self::start_with(
            "[dns]\nreverse_zones = [\"10.in-addr.arpa\", \"d.f.ip6.arpa\"]\n",
            pods,
            &[],
        )
    }

    fn spawn_with(dir: PathBuf, args: &[&str], ready: bool) -> Roster {
        Self::spawn_under(&[], dir, args, ready)
    }

    fn spawn_under(wrapper: &[&str], dir: PathBuf, args: &[&str], ready: bool) -> Roster {
        let mut command = match wrapper {
            [program, rest @ ..] => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            [] => Command::new(bin()),
        };
        let mut child = command
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roster");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let eof = closed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            eof.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let addr = "0.0.0.0:0".parse().unwrap();
        let mut roster = Roster {
            child: Some(child),
            addr,
            admin: None,
            dir,
            log,
            closed,
        };
        let line = roster
            .wait_log("listening for DNS", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("roster did not start:\n{}", roster.log()));
        roster.addr = line.rsplit("addr=").next().unwrap().trim().parse().unwrap();
        if args.contains(&"--admin-listen") {
            let line = roster
                .wait_log("admin listening", Duration::from_secs(10))
                .unwrap_or_else(|| panic!("no admin listener:\n{}", roster.log()));
            roster.admin = Some(line.rsplit("addr=").next().unwrap().trim().parse().unwrap());
        }
        if ready {
            roster
                .wait_log("serving", Duration::from_secs(10))
                .unwrap_or_else(|| panic!("roster did not load its pods:\n{}", roster.log()));
        }
        roster
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The first log line containing `needle`, waiting up to `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            if Instant::now() > deadline || self.exited() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exited(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn pods_path(&self) -> PathBuf {
        self.dir.join("pods.yaml")
    }

    pub fn write_pods(&self, text: &str) {
        write_atomic(&self.pods_path(), text);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (`-HUP`) and returns at once.
    pub fn send(&self, signal: &str) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        self.signal("-TERM", timeout)
    }

    /// Sends one signal (`-TERM`, `-INT`) and waits (at most `timeout`) for the exit; kills the
    /// process and returns `None` if it is still running then.
    pub fn signal(&mut self, signal: &str, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let started = Instant::now();
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        while started.elapsed() < timeout {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The addresses roster answers for `name` A over UDP.
    pub fn a(&self, name: &str) -> Vec<String> {
        a_records(&udp(self.addr, &query(name, RecordType::A)).0)
    }

    /// Polls `check` until it holds or `timeout` passes; returns how long it took.
    pub fn eventually(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if check() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Roster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process that is killed (by its PID) if the test ends early.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary to completion with a timeout; returns (status code, stdout, stderr).
pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), out, err);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roster {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a tool a test checks with (a validator, promtool) to completion within `timeout`:
/// its standard output, or a panic with both outputs when it fails or hangs.
#[track_caller]
pub fn tool_output(command: &mut Command, timeout: Duration) -> String {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // Read as it runs: a tool that fills a pipe would wait for ever on a reader that waits too.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("{what}: {s}\n{out}{err}"),
        None => panic!("{what} did not finish in {timeout:?}\n{out}{err}"),
    }
}

// ---- DNS over the wire -------------------------------------------------------------------

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// A query with RD=0, no EDNS.
pub fn query(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(qname), qtype));
    m
}

pub fn with_edns(mut m: Message, payload: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    m.set_edns(e);
    m
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u16
}

/// Sends raw bytes over UDP; the reply, or `None` after `wait`.
pub fn udp_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(bytes, addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends `m` over UDP and parses the reply; also returns its size on the wire.
pub fn udp(addr: SocketAddr, m: &Message) -> (Message, usize) {
    let bytes = udp_raw(addr, &m.to_vec().unwrap(), Duration::from_secs(3)).expect("UDP reply");
    (
        Message::from_vec(&bytes).expect("reply parses"),
        bytes.len(),
    )
}

/// Sends raw bytes over TCP (length-prefixed) and reads one reply.
pub fn tcp_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

pub fn tcp(addr: SocketAddr, m: &Message) -> (Message, usize) {
    let bytes = tcp_raw(addr, &m.to_vec().unwrap());
    (
        Message::from_vec(&bytes).expect("reply parses"),
        bytes.len(),
    )
}

/// Both transports.
pub fn both(addr: SocketAddr, m: &Message) -> [(&'static str, Message); 2] {
    [("udp", udp(addr, m).0), ("tcp", tcp(addr, m).0)]
}

/// The answer section's data as text (`10.0.0.1`, `0 1 5432 db-0.db.prod.roster.internal.`).
pub fn rdata(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

pub fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

// ---- dig ----------------------------------------------------------------------------------

/// Runs dig against `addr` with bounded time; returns its output.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +short`.
pub fn dig_short(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend(args);
    dig(addr, &all).lines().map(str::to_owned).collect()
}

/// A free loopback port for UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A DNS daemon (a resolver, a reference server) started on a loopback port, killed by PID
/// when dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `program` (from /usr/sbin where it is there) and waits until it answers on `port`.
    pub fn spawn(name: &'static str, program: &str, args: &[String], port: u16) -> Daemon {
        // Daemons live in /usr/sbin, which is not on every user's PATH.
        let sbin = std::path::Path::new("/usr/sbin").join(program);
        let program = if sbin.exists() {
            sbin.display().to_string()
        } else {
            program.to_owned()
        };
        let child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program} must be installed for this test (see README): {e}")
            });
        let mut daemon = Daemon {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            name,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("{name} exited at start: {status}");
            }
            // Any answer (even REFUSED for the root) means the daemon is up; dig also prints
            // its errors ("connection refused") to stdout, so look for a header.
            if dig(daemon.addr, &["+norec", "."]).contains("status:") {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} did not start on port {port}");
    }
}

// ---- HTTP ---------------------------------------------------------------------------------

/// Seconds since the Unix epoch, as metrics carry times.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `roster_source_last_sync_timestamp_seconds` from the admin listener at `admin`.
pub fn last_sync(admin: SocketAddr) -> f64 {
    let (_, body) = http_get(admin, "/metrics");
    metric(&body, "roster_source_last_sync_timestamp_seconds")
}

/// GET `path` over HTTP/1.0; (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with(addr, path, "");
    (status, body)
}

/// GET `path` over HTTP/1.0 with `headers` (each ending in CR LF); (status code, head, body).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: roster\r\n{headers}\r\n").as_bytes())
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The value of one sample in a Prometheus text exposition (`name{labels}` as written), or 0.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
