//! A fake Kubernetes API server for pods, over real HTTP/1.1 on loopback, faithful where kube-rs
//! can tell: LIST with resource versions, `limit`/`continue` paging, label and field selectors;
//! WATCH as chunked newline-delimited JSON with ADDED, MODIFIED, DELETED, BOOKMARK, and an
//! ERROR 410 Expired event when the requested version is older than the kept history; watches
//! close at `timeoutSeconds`. Objects that leave a watch's selection arrive as DELETED, and ones
//! that enter it as ADDED, as the real server does.
//!
//! Fault knobs: HTTP statuses (500, 503, 401, 403, 410) for lists, watches or both; stalls (a
//! request accepted and never answered); watches dropped in the middle of a chunk; garbage
//! lines; history compaction (forcing 410); ERROR 410 sent to open watches; the listener closed
//! (connections refused) and reopened on the same port.
//!
//! It runs on its own tokio runtime, so synchronous tests drive it through plain method calls.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Changes kept for watches that resume; older versions get 410.
const HISTORY: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Added,
    Modified,
    Deleted,
}

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: Kind,
    /// The object before the change (for selection changes), if any.
    old: Option<Value>,
    /// The object after the change; for a deletion, its last state with the new version.
    object: Value,
}

/// What open watch connections are told.
#[derive(Clone, Debug)]
enum Live {
    Change(Arc<Change>),
    /// Close in the middle of a chunk (a dropped connection).
    Drop,
    /// Send a line that is not JSON.
    Garbage,
    /// Send ERROR 410 Expired and close.
    Expire,
}

/// HTTP faults. A count of `None` means until cleared.
#[derive(Clone, Debug, Default)]
struct Faults {
    list_status: Option<(u16, Option<u32>)>,
    watch_status: Option<(u16, Option<u32>)>,
    stall: bool,
    bookmark_every: Option<Duration>,
    /// Requests for this namespace's pods are refused with 403, as without a RoleBinding there.
    forbidden: Option<String>,
}

struct State {
    rv: u64,
    objects: BTreeMap<(String, String), Value>,
    history: VecDeque<Arc<Change>>,
    /// Watches from versions below this are expired.
    oldest: u64,
    faults: Faults,
    /// `METHOD path?query` of every request, in order.
    requests: Vec<String>,
    pages: HashMap<String, (u64, Vec<Value>)>,
    next_page: u64,
}

struct Inner {
    state: Mutex<State>,
    live: broadcast::Sender<Live>,
    /// Connection tasks, aborted when the server goes down.
    conns: Mutex<Vec<JoinHandle<()>>>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

pub struct FakeApi {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (live, _) = broadcast::channel(100_000);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                rv: 1000,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 1000,
                faults: Faults {
                    bookmark_every: Some(Duration::from_millis(500)),
                    ..Faults::default()
                },
                requests: Vec::new(),
                pages: HashMap::new(),
                next_page: 0,
            }),
            live,
            conns: Mutex::new(Vec::new()),
            accept: Mutex::new(None),
        });
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeApi {
            inner,
            addr,
            runtime,
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let task = self.runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(handle(inner.clone(), stream));
                let mut conns = inner.conns.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(conn);
            }
        });
        *self.inner.accept.lock().unwrap() = Some(task);
    }

    /// A kubeconfig that points kube-rs at this server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
                 current-context: fake\nusers:\n- name: fake\n  user:\n    token: test-token\n",
                self.addr
            ),
        )
        .unwrap();
        path
    }

    fn mutate(&self, ns: &str, name: &str, object: Option<Value>) {
        let mut st = self.inner.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let key = (ns.to_owned(), name.to_owned());
        let old = st.objects.get(&key).cloned();
        let change = match (object, old.clone()) {
            (Some(mut obj), old) => {
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                obj["metadata"]["namespace"] = json!(ns);
                if obj["metadata"]["creationTimestamp"].is_null() {
                    let created = old
                        .as_ref()
                        .map(|o| o["metadata"]["creationTimestamp"].clone())
                        .unwrap_or_else(|| json!("2026-01-01T00:00:00Z"));
                    obj["metadata"]["creationTimestamp"] = created;
                }
                st.objects.insert(key, obj.clone());
                let kind = if old.is_some() {
                    Kind::Modified
                } else {
                    Kind::Added
                };
                Change {
                    rv,
                    kind,
                    old,
                    object: obj,
                }
            }
            (None, Some(mut last)) => {
                st.objects.remove(&key);
                last["metadata"]["resourceVersion"] = json!(rv.to_string());
                Change {
                    rv,
                    kind: Kind::Deleted,
                    old: Some(last.clone()),
                    object: last,
                }
            }
            (None, None) => return,
        };
        let change = Arc::new(change);
        st.history.push_back(change.clone());
        if st.history.len() > HISTORY {
            let dropped = st.history.pop_front().unwrap();
            st.oldest = dropped.rv;
        }
        let _ = self.inner.live.send(Live::Change(change));
    }

    /// Creates or replaces a pod (its namespace and name come from the object).
    pub fn apply(&self, pod: Value) {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        self.mutate(&ns, &name, Some(pod));
    }

    pub fn delete(&self, ns: &str, name: &str) {
        self.mutate(ns, name, None);
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Value> {
        let st = self.inner.state.lock().unwrap();
        st.objects.get(&(ns.to_owned(), name.to_owned())).cloned()
    }

    pub fn resource_version(&self) -> u64 {
        self.inner.state.lock().unwrap().rv
    }

    pub fn requests(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// Answers LIST requests with `status` (`count` times, or until cleared with `None`).
    pub fn fail_lists(&self, status: Option<u16>, count: Option<u32>) {
        self.inner.state.lock().unwrap().faults.list_status = status.map(|s| (s, count));
    }

    /// Answers WATCH requests with `status` (`count` times, or until cleared with `None`).
    pub fn fail_watches(&self, status: Option<u16>, count: Option<u32>) {
        self.inner.state.lock().unwrap().faults.watch_status = status.map(|s| (s, count));
    }

    /// Both lists and watches.
    pub fn fail_all(&self, status: Option<u16>) {
        self.fail_lists(status, None);
        self.fail_watches(status, None);
    }

    /// Refuses every request for the pods of `namespace` with 403 (or none, with `None`).
    pub fn forbid_namespace(&self, namespace: Option<&str>) {
        self.inner.state.lock().unwrap().faults.forbidden = namespace.map(str::to_owned);
    }

    /// Accepts requests but never answers them, while `on`.
    pub fn stall(&self, on: bool) {
        self.inner.state.lock().unwrap().faults.stall = on;
    }

    pub fn bookmarks(&self, every: Option<Duration>) {
        self.inner.state.lock().unwrap().faults.bookmark_every = every;
    }

    /// Drops every open watch in the middle of a chunk.
    pub fn drop_watches(&self) {
        let _ = self.inner.live.send(Live::Drop);
    }

    pub fn send_garbage(&self) {
        let _ = self.inner.live.send(Live::Garbage);
    }

    /// Watches open now: each holds a subscription to live changes while it runs.
    pub fn open_watches(&self) -> usize {
        self.inner.live.receiver_count()
    }

    /// Sends ERROR 410 Expired to open watches, which then close.
    pub fn expire_watches(&self) {
        let _ = self.inner.live.send(Live::Expire);
    }

    /// Forgets the change history: a watch resuming from any earlier version gets 410.
    pub fn compact(&self) {
        let mut st = self.inner.state.lock().unwrap();
        st.history.clear();
        st.oldest = st.rv;
    }

    /// Closes the listener and every connection: new connections are refused.
    pub fn down(&self) {
        if let Some(task) = self.inner.accept.lock().unwrap().take() {
            task.abort();
        }
        for conn in self.inner.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
        // Let the aborts land before the port is reopened.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Listens again on the same address.
    pub fn up(&self) {
        let listener = loop {
            match self.runtime.block_on(TcpListener::bind(self.addr)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.serve(listener);
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.down();
    }
}

// ---- HTTP --------------------------------------------------------------------------------

struct Request {
    path: String,
    query: HashMap<String, String>,
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    String::from_utf8(buf).ok()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_request(head: &str) -> Option<Request> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let _method = parts.next()?;
    let target = parts.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Some(Request {
        path: path.to_owned(),
        query,
    })
}

async fn respond(stream: &mut TcpStream, code: u16, body: &str) {
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn status_body(code: u16) -> String {
    let (reason, message) = match code {
        401 => ("Unauthorized", "Unauthorized".to_string()),
        403 => (
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:roster-system:roster\" cannot list resource \"pods\" in API group \"\" at the cluster scope".to_string(),
        ),
        410 => ("Expired", "too old resource version".to_string()),
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
        _ => ("InternalError", "an error on the server has prevented the request from succeeding".to_string()),
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
    .to_string()
}

/// Takes one use of a counted fault.
fn take(fault: &mut Option<(u16, Option<u32>)>) -> Option<u16> {
    let (code, count) = (*fault)?;
    match count {
        None => Some(code),
        Some(0) => {
            *fault = None;
            None
        }
        Some(n) => {
            *fault = if n == 1 {
                None
            } else {
                Some((code, Some(n - 1)))
            };
            Some(code)
        }
    }
}

async fn handle(inner: Arc<Inner>, mut stream: TcpStream) {
    // As the Go runtime of kube-apiserver does: a watch event is written as soon as it exists,
    // not held back by Nagle's algorithm until the previous one is acknowledged.
    let _ = stream.set_nodelay(true);
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let Some(req) = parse_request(&head) else {
        return;
    };
    let first_line = head.lines().next().unwrap_or_default().to_owned();
    let watch = matches!(
        req.query.get("watch").map(String::as_str),
        Some("true" | "1")
    );
    let (fault, stall) = {
        let mut st = inner.state.lock().unwrap();
        st.requests.push(
            first_line
                .rsplit_once(' ')
                .map_or(first_line.clone(), |(a, _)| a.to_owned()),
        );
        let forbidden = st
            .faults
            .forbidden
            .as_ref()
            .is_some_and(|ns| req.path.starts_with(&format!("/api/v1/namespaces/{ns}/")));
        let fault = if forbidden {
            Some(403)
        } else if watch {
            take(&mut st.faults.watch_status)
        } else {
            take(&mut st.faults.list_status)
        };
        (fault, st.faults.stall)
    };
    if stall {
        // Accepted, never answered: the client's own timeouts must end this.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    if let Some(code) = fault {
        return respond(&mut stream, code, &status_body(code)).await;
    }
    let namespace = match req.path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "api", "v1", "pods"] => None,
        ["", "api", "v1", "namespaces", ns, "pods"] => Some(ns.to_string()),
        _ => return respond(&mut stream, 404, &status_body(404)).await,
    };
    let filter = Filter {
        namespace,
        labels: req
            .query
            .get("labelSelector")
            .map(|s| parse_labels(s))
            .unwrap_or_default(),
        fields: req
            .query
            .get("fieldSelector")
            .map(|s| parse_fields(s))
            .unwrap_or_default(),
    };
    if watch {
        watch_stream(inner, stream, req, filter).await;
    } else {
        list(inner, &mut stream, &req, &filter).await;
    }
}

async fn list(inner: Arc<Inner>, stream: &mut TcpStream, req: &Request, filter: &Filter) {
    let limit: Option<usize> = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|&l| l > 0);
    let body = (|| {
        let mut st = inner.state.lock().unwrap();
        let (rv, mut items) = match req.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => st.pages.remove(token)?,
            None => {
                let items: Vec<Value> = st
                    .objects
                    .values()
                    .filter(|o| filter.matches(o))
                    .cloned()
                    .collect();
                (st.rv, items)
            }
        };
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(limit) = limit
            && items.len() > limit
        {
            let rest = items.split_off(limit);
            st.next_page += 1;
            let token = format!("page-{}", st.next_page);
            meta["continue"] = json!(token);
            meta["remainingItemCount"] = json!(rest.len());
            st.pages.insert(token, (rv, rest));
        }
        Some(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": meta, "items": items})
                .to_string(),
        )
    })();
    match body {
        Some(body) => respond(stream, 200, &body).await,
        // An unknown or used continue token: the list has expired.
        None => respond(stream, 410, &status_body(410)).await,
    }
}

fn event_line(kind: &str, object: &Value) -> String {
    let mut object = object.clone();
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("Pod");
    json!({"type": kind, "object": object}).to_string()
}

async fn chunk(stream: &mut TcpStream, line: &str) -> bool {
    let data = format!("{line}\n");
    let framed = format!("{:x}\r\n{data}\r\n", data.len());
    stream.write_all(framed.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
}

/// The event a watch with `filter` sees for `change`, if any.
fn view(change: &Change, filter: &Filter) -> Option<String> {
    let was = change.old.as_ref().is_some_and(|o| filter.matches(o));
    let is = change.kind != Kind::Deleted && filter.matches(&change.object);
    let kind = match (change.kind, was, is) {
        (Kind::Deleted, true, _) => "DELETED",
        (_, false, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        _ => return None,
    };
    Some(event_line(kind, &change.object))
}

async fn watch_stream(inner: Arc<Inner>, mut stream: TcpStream, req: Request, filter: Filter) {
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let bookmarks = req
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let from: Option<u64> = req
        .query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0);

    // Subscribe before reading the history, so nothing falls between the two.
    let mut live = inner.live.subscribe();
    let (replay, expired, every) = {
        let st = inner.state.lock().unwrap();
        match from {
            Some(rv) if rv < st.oldest => (Vec::new(), true, None),
            Some(rv) => {
                let replay: Vec<Arc<Change>> =
                    st.history.iter().filter(|c| c.rv > rv).cloned().collect();
                (replay, false, st.faults.bookmark_every)
            }
            None => {
                // No version: the current objects as ADDED, then changes.
                let rv = st.rv;
                let adds = st
                    .objects
                    .values()
                    .map(|o| {
                        Arc::new(Change {
                            rv,
                            kind: Kind::Added,
                            old: None,
                            object: o.clone(),
                        })
                    })
                    .collect();
                (adds, false, st.faults.bookmark_every)
            }
        }
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if expired {
        let status: Value = serde_json::from_str(&status_body(410)).unwrap();
        let _ = chunk(
            &mut stream,
            &json!({"type": "ERROR", "object": status}).to_string(),
        )
        .await;
        let _ = stream.write_all(b"0\r\n\r\n").await;
        return;
    }
    let mut sent_up_to = from.unwrap_or(0);
    for change in replay {
        sent_up_to = sent_up_to.max(change.rv);
        if let Some(line) = view(&change, &filter)
            && !chunk(&mut stream, &line).await
        {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
    tick.tick().await;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick(), if bookmarks && every.is_some() => {
                let rv = inner.state.lock().unwrap().rv;
                let line = json!({"type": "BOOKMARK", "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"resourceVersion": rv.to_string()}}}).to_string();
                if !chunk(&mut stream, &line).await { return; }
            }
            msg = live.recv() => match msg {
                Ok(Live::Change(change)) => {
                    if change.rv <= sent_up_to { continue; }
                    sent_up_to = change.rv;
                    if let Some(line) = view(&change, &filter)
                        && !chunk(&mut stream, &line).await
                    {
                        return;
                    }
                }
                Ok(Live::Drop) => {
                    // A chunk header promising more than ever arrives.
                    let _ = stream.write_all(b"400\r\n{\"type\":\"MODIFIED\",\"obj").await;
                    return;
                }
                Ok(Live::Garbage) => {
                    if !chunk(&mut stream, "this is not json {").await { return; }
                }
                Ok(Live::Expire) => {
                    let status: Value = serde_json::from_str(&status_body(410)).unwrap();
                    let _ = chunk(&mut stream, &json!({"type": "ERROR", "object": status}).to_string()).await;
                    break;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let _ = stream.shutdown().await;
}

// ---- selectors ----------------------------------------------------------------------------

#[derive(Debug)]
enum Req {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn parse_labels(s: &str) -> Vec<Req> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim().to_owned());
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let set = |v: &str| -> Vec<String> {
                v.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|x| x.trim().to_owned())
                    .collect()
            };
            if let Some(k) = p.strip_prefix('!') {
                Req::NotExists(k.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Req::Eq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Req::NotIn(k.trim().to_owned(), set(v))
            } else if let Some((k, v)) = p.split_once(" in ") {
                Req::In(k.trim().to_owned(), set(v))
            } else {
                Req::Exists(p)
            }
        })
        .collect()
}

/// Field requirements: (path, equals?, value).
fn parse_fields(s: &str) -> Vec<(String, bool, String)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                Some((k.to_owned(), false, v.to_owned()))
            } else {
                p.split_once('=')
                    .map(|(k, v)| (k.trim_end_matches('=').to_owned(), true, v.to_owned()))
            }
        })
        .collect()
}

#[derive(Default)]
struct Filter {
    namespace: Option<String>,
    labels: Vec<Req>,
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        let meta = &o["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let label = |k: &str| meta["labels"][k].as_str();
        let labels_ok = self.labels.iter().all(|r| match r {
            Req::Exists(k) => label(k).is_some(),
            Req::NotExists(k) => label(k).is_none(),
            Req::Eq(k, v) => label(k) == Some(v),
            Req::NotEq(k, v) => label(k) != Some(v),
            Req::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Req::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
        });
        let fields_ok = self.fields.iter().all(|(path, eq, value)| {
            let actual = match path.as_str() {
                "status.phase" => o["status"]["phase"].as_str().unwrap_or(""),
                "metadata.name" => meta["name"].as_str().unwrap_or(""),
                "metadata.namespace" => meta["namespace"].as_str().unwrap_or(""),
                _ => "",
            };
            (actual == value) == *eq
        });
        labels_ok && fields_ok
    }
}

// ---- pods ---------------------------------------------------------------------------------

/// A pod as the API server returns it: `service` label, ready, one IP, a `peer` port.
pub fn pod(ns: &str, name: &str, service: &str, ip: &str, ready: bool) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("uid-{ns}-{name}-{ip}"),
            "labels": {"roster.io/service": service},
        },
        "spec": {"containers": [{"name": "c", "image": "img", "ports": [{"name": "peer", "containerPort": 7000}]}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
        },
    })
}
