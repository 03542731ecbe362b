//! The `file` source: Pod objects from a local file, watched and applied as a whole.
//!
//! Accepted: a `PodList` or `List` as `kubectl get pods -A -o json|yaml` prints it, a single Pod,
//! or a multi-document YAML of Pods and lists. A change is read at once when the directory reports
//! a finished write (see `super::dirwatch`): a file closed after writing, an editor's rename, a
//! ConfigMap volume's symlink swap. The file is also polled (a `stat` every 100 ms) for the
//! changes inotify does not report; a polled change is read once the file has stopped changing
//! for one poll. A version is applied only if it parses completely, so a half-written file never
//! reaches the zone; on reload an empty file is not a version (see `read`). A version read
//! whole goes out as one list (`Init`, `InitApply`…, `InitDone`); a JSON list compared with the
//! last version (see `walk`), or YAML split into its items as it is read (see `yaml_walk`), as
//! one `Changes` event holding only the pods that changed.
//!
//! Here: what a version holds and what it changes (its index). Apart: `file/watch.rs`, when a
//! version is read; `file/list.rs` and `file/yaml.rs`, how a JSON list and YAML are split into
//! items as they are read; `file/yaml_json.rs`, YAML items as kubectl writes them rewritten as
//! JSON, which serde_json reads ten times faster than the YAML parser; `file/window.rs`, the
//! file read a chunk at a time for them.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::selection::Selection;
use super::slim::{SlimMeta, SlimPod, SlimSpec, SlimStatus};
use super::{PodEvent, PodKey, PodView, Received, Scope};

/// Tables keyed by item hashes and pods, which come from the file, never from queries: foldhash,
/// as in membership, rather than SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

mod list;
mod watch;
mod window;
mod yaml;
mod yaml_json;

pub use watch::{Watch, watch};

use list::{Walked, walk};
use window::Window;

/// Why a pods file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("pods file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pods file {path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("pods file {path}: document {document}: {message}")]
    Content {
        path: PathBuf,
        document: usize,
        message: String,
    },
    #[error(
        "pods file {path}: empty, as a file written in place is between being truncated and \
         written; to serve no pods, write an empty list (items: [])"
    )]
    Empty { path: PathBuf },
}

/// A parse problem before the path is known.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
    Content {
        document: usize,
        message: String,
    },
}

impl ParseError {
    fn at(self, path: &Path) -> FileError {
        let path = path.to_owned();
        match self {
            ParseError::Syntax {
                line,
                column,
                message,
            } => FileError::Syntax {
                path,
                line,
                column,
                message,
            },
            ParseError::Content { document, message } => FileError::Content {
                path,
                document,
                message,
            },
        }
    }
}

/// One top-level YAML document: a Pod, or a list of Pods. The fields of both are read in one
/// pass; `metadata` is read as `ObjectMeta`, which ignores the list-only fields.
#[derive(Deserialize)]
struct Document {
    kind: Option<String>,
    metadata: Option<SlimMeta>,
    spec: Option<SlimSpec>,
    status: Option<SlimStatus>,
    items: Option<Items>,
}

/// A list's items, each stripped to a [`PodView`] as soon as it is read: a large list never
/// exists in memory as full Pod objects.
struct Items(Vec<PodView>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Items;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of Pods")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Items, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pod) = seq.next_element::<SlimPod>()? {
                    out.push(view(pod));
                }
                Ok(Items(out))
            }
            fn visit_unit<E>(self) -> Result<Items, E> {
                Ok(Items(Vec::new())) // `items: null`
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

impl Document {
    fn into_pods(self, document: usize, out: &mut Vec<PodView>) -> Result<(), ParseError> {
        let bad = |message: String| ParseError::Content { document, message };
        match self.kind.as_deref() {
            Some("PodList" | "List") | None if self.items.is_some() => {
                out.extend(self.items.map(|i| i.0).unwrap_or_default());
                Ok(())
            }
            Some("Pod") | None => {
                let pod = SlimPod::new(self.metadata, self.spec, self.status);
                if pod.name().is_none_or(str::is_empty) {
                    return Err(bad("a Pod without metadata.name".into()));
                }
                out.push(view(pod));
                Ok(())
            }
            Some(kind) => Err(bad(format!(
                "kind {kind:?} is neither a Pod nor a list of Pods"
            ))),
        }
    }
}

/// A JSON document. A list's items stay raw text until it is known which of them changed.
#[derive(Deserialize)]
struct JsonDocument<'a> {
    kind: Option<String>,
    metadata: Option<SlimMeta>,
    spec: Option<SlimSpec>,
    status: Option<SlimStatus>,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// What a version of the file holds.
enum Content {
    /// Every pod: YAML parsed whole, or a single JSON Pod.
    Pods(Vec<PodView>),
    /// A JSON list, or YAML split into items (see [`yaml_walk`]): where its items are, and the
    /// items parsed. When it was compared with the last one applied (see [`walk`]), only the
    /// items that one did not have are parsed, and `gone` holds the hashes of that one's items
    /// this one no longer has; else (`None`) every item is parsed.
    Items {
        layout: Layout,
        parsed: Vec<(u64, PodView)>,
        gone: Option<Vec<u64>>,
    },
}

impl Content {
    /// Equal for versions that mean the same; `text` is the whole version's.
    fn fingerprint(&self, text: &[u8]) -> u64 {
        match self {
            Content::Pods(_) => text_hash(text),
            Content::Items { layout, .. } => layout.fingerprint,
        }
    }

    fn pods(&self) -> usize {
        match self {
            Content::Pods(pods) => pods.len(),
            Content::Items { layout, .. } => layout.items.len(),
        }
    }
}

/// A JSON list's items in order, each by its hash and length, and a fingerprint of the list:
/// what separates the items (a comma and any space) is not kept, as it carries nothing.
struct Layout {
    items: Vec<Item>,
    /// Equal for two versions with the same pods in the same order, whatever the space between
    /// items; computed from the item hashes rather than from 40 MB of text.
    fingerprint: u64,
}

#[derive(Clone, Copy)]
struct Item {
    hash: u64,
    len: u32,
}

impl Layout {
    /// The layout of `items` between `head` (the text up to `[` and the space after it) and
    /// `tail` (the text after the last item).
    fn new(head: &[u8], items: Vec<Item>, tail: &[u8]) -> Self {
        let mut hasher = foldhash::quality::FixedState::with_seed(HASH_SEED).build_hasher();
        hasher.write(head);
        for item in &items {
            hasher.write_u64(item.hash);
        }
        hasher.write(tail);
        let fingerprint = hasher.finish();
        Layout { items, fingerprint }
    }
}

/// How far ahead in the last version an item is looked for when the item at its place
/// differs: a run of up to this many items deleted at one place costs no parse after it.
const RESYNC: usize = 256;

/// How much of the file is read at a time when a JSON list is walked: small enough to stay in
/// the processor's cache while its items are hashed, and to hold no copy of a 40 MB file, when it
/// is first read nor between versions.
const CHUNK: usize = 256 << 10;

thread_local! {
    /// The selection (`source.namespaces`, `source.label_selector`) of the read in progress on
    /// this thread, set by [`Selecting`]. Each pod is selected as it is parsed, where its labels
    /// are at hand, so that no version holds every pod's labels; serde gives the list visitor
    /// ([`Items`]) no other way to know it.
    static SELECTION: RefCell<Selection> = RefCell::new(Selection::default());
}

/// Sets this thread's [`SELECTION`] until dropped.
struct Selecting;

impl Selecting {
    fn enter(selection: Selection) -> Selecting {
        SELECTION.set(selection);
        Selecting
    }
}

impl Drop for Selecting {
    fn drop(&mut self) {
        SELECTION.set(Selection::default());
    }
}

/// A parsed pod as this thread's read delivers it.
fn view(pod: SlimPod) -> PodView {
    SELECTION.with_borrow(|selection| pod.view(selection))
}

/// Hashes an item's text, or a whole file's. 64 bits: two different texts share a hash with a
/// probability near 2^-64 per pair, far below any other failure of the machine.
fn text_hash(text: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(HASH_SEED).hash_one(text)
}

const HASH_SEED: u64 = 0x726f_7374_6572;

/// Parses a pods file's text. JSON when it starts with `{`, YAML (one or more documents)
/// otherwise.
pub fn parse(text: &str) -> Result<Vec<PodView>, ParseError> {
    Ok(match parse_content(text)? {
        Content::Pods(pods) => pods,
        Content::Items { parsed, .. } => parsed.into_iter().map(|(_, pod)| pod).collect(),
    })
}

/// A JSON text starts with `{` (a YAML file could too, in flow style: it is read as JSON).
fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses a version whole.
fn parse_content(text: &str) -> Result<Content, ParseError> {
    let mut pods = Vec::new();
    if is_json(text) {
        let doc: JsonDocument = serde_json::from_str(text).map_err(|e| json_error(text, 0, e))?;
        return match doc.kind.as_deref() {
            Some("PodList" | "List") => Ok(items(text, doc.items.unwrap_or_default())?),
            None if doc.items.is_some() => Ok(items(text, doc.items.unwrap_or_default())?),
            _ => {
                let doc = Document {
                    kind: doc.kind,
                    metadata: doc.metadata,
                    spec: doc.spec,
                    status: doc.status,
                    items: None,
                };
                doc.into_pods(1, &mut pods)?;
                Ok(Content::Pods(pods))
            }
        };
    }
    let docs: Vec<Document> = serde_saphyr::from_multiple_with_options(text, yaml_options(text))
        .map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.without_snippet().to_string();
            ParseError::Syntax {
                line,
                column,
                message: first_line(&message),
            }
        })?;
    for (i, doc) in docs.into_iter().enumerate() {
        doc.into_pods(i + 1, &mut pods)?;
    }
    Ok(Content::Pods(pods))
}

/// Hashes and parses every item, each into a [`PodView`] at once: a large list never exists in
/// memory as full Pod objects.
fn items(text: &str, raw: Vec<&RawValue>) -> Result<Content, ParseError> {
    let offset = |item: &RawValue| item.get().as_ptr() as usize - text.as_ptr() as usize;
    let (head, tail) = match (raw.first(), raw.last()) {
        (Some(first), Some(last)) => (offset(first), offset(last) + last.get().len()),
        _ => (0, text.len()),
    };
    let mut items = Vec::with_capacity(raw.len());
    let mut parsed = Vec::new();
    for item in raw {
        let hash = text_hash(item.get().as_bytes());
        let len = u32::try_from(item.get().len()).map_err(|_| ParseError::Content {
            document: 1,
            message: "an item longer than 4 GiB".into(),
        })?;
        items.push(Item { hash, len });
        let pod: SlimPod =
            serde_json::from_str(item.get()).map_err(|e| json_error(text, offset(item), e))?;
        parsed.push((hash, view(pod)));
    }
    let layout = Layout::new(&text.as_bytes()[..head], items, &text.as_bytes()[tail..]);
    Ok(Content::Items {
        layout,
        parsed,
        gone: None,
    })
}

/// Reads a YAML pods file a chunk at a time, split into its items by lines as it is read (see
/// [`yaml`]); each item is hashed and compared in order with the last version applied (`index`)
/// as a JSON list is walked, and the items that version did not have are parsed, those next to
/// each other together. Like [`walk`], it holds neither a large file's text nor its pods whole.
/// `None` when the text is JSON (which [`walk`] gave up on: it is parsed whole), does not split,
/// or its items do not parse as items: the version is then parsed whole, which also places the
/// error.
fn yaml_walk(
    w: &mut Window<impl Read>,
    index: Option<&Index>,
    parsed: &mut impl FnMut(u64, PodView),
) -> std::io::Result<Option<Walked>> {
    // What a JSON text starts with, or a byte the split does not read as YAML's space.
    let first = w
        .get(0, CHUNK)?
        .iter()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        .copied();
    if first.is_none_or(|c| c == b'{' || !c.is_ascii_graphic()) {
        return Ok(None);
    }
    let mut splitter = yaml::Splitter::new();
    let mut items = YamlItems {
        compare: Compare::new(index),
        items: Vec::with_capacity(index.map_or(0, |i| i.layout.items.len())),
        batch: None,
    };
    let mut head = Vec::new();
    // Where the next line starts, and how much of a line the last chunk ended in.
    let mut at = 0;
    let mut partial = 0;
    loop {
        let keep = splitter.keep().min(items.batch.map_or(at, |b| b.1)).min(at);
        let want = (at - keep) + CHUNK.max(2 * partial + 1);
        let buf = w.get(keep, want)?;
        let ended = buf.len() < want;
        let text = Text {
            bytes: buf,
            base: keep,
        };
        let mut origin = at;
        let mut lines = memchr::memchr_iter(b'\n', &buf[at - keep..]);
        let mut deep = splitter.deep();
        loop {
            // Runs of lines deep in an item, found 64 bytes at a time; the lines a run leaves
            // (near the end of what was read), and those that start no run, are looked at one
            // by one below.
            let rest = &buf[at - keep..];
            if let Some(n) = deep
                && yaml::is_deep(rest, n)
            {
                let skipped = yaml::skip_deep(rest, n);
                if skipped > 0 {
                    at += skipped;
                    origin = at;
                    lines = memchr::memchr_iter(b'\n', &buf[at - keep..]);
                }
            }
            let end = match lines.next() {
                Some(i) => origin + i + 1,
                None if ended && at < keep + buf.len() => keep + buf.len(),
                None => break,
            };
            let line = text.get(at..end);
            // Most lines are deep in an item: skipped here, a call to the splitter apiece
            // would cost a third of the version.
            if deep.is_some_and(|n| yaml::is_deep(line, n)) {
                at = end;
                continue;
            }
            let step = splitter.line(at, line);
            deep = splitter.deep();
            at = end;
            match step {
                yaml::Step::More => {}
                yaml::Step::Head(r) => head = text.get(r).to_vec(),
                yaml::Step::Item(r) => {
                    if items.item(&text, r, splitter.form(), parsed).is_none() {
                        return Ok(None);
                    }
                }
                yaml::Step::Decline => return Ok(None),
            }
        }
        if !ended {
            partial = keep + buf.len() - at;
            continue;
        }
        let Some(end) = splitter.finish(at) else {
            return Ok(None);
        };
        if let Some(last) = end.last
            && items.item(&text, last, end.form, parsed).is_none()
        {
            return Ok(None);
        }
        // The last items' text ends where the tail starts.
        if items
            .flush(&text, end.tail.start, end.form, parsed)
            .is_none()
        {
            return Ok(None);
        }
        let tail = text.get(end.tail);
        if yaml::may_refer(&head) || yaml::may_refer(tail) || !yaml_around(&head, tail, end.form) {
            return Ok(None);
        }
        let layout = Layout::new(&head, items.items, tail);
        return Ok(Some(Walked {
            layout,
            gone: items.compare.gone(),
            len: at as u64,
        }));
    }
}

/// A part of the file as read, with the file's offset of its first byte.
struct Text<'a> {
    bytes: &'a [u8],
    base: usize,
}

impl Text<'_> {
    fn get(&self, r: std::ops::Range<usize>) -> &[u8] {
        &self.bytes[r.start - self.base..r.end - self.base]
    }
}

/// Whether what surrounds a YAML list's items makes a list, as it must around a JSON list's;
/// around documents (comments), whether it is YAML (which refuses a control character even in
/// a comment, as the whole version's parse would); and, as the rest of a version is, UTF-8.
fn yaml_around(head: &[u8], tail: &[u8], form: yaml::Form) -> bool {
    let (Ok(head), Ok(tail)) = (std::str::from_utf8(head), std::str::from_utf8(tail)) else {
        return false;
    };
    let around = [head, tail].concat();
    if form == yaml::Form::Documents {
        return serde_saphyr::from_multiple_with_options::<serde::de::IgnoredAny>(
            &around,
            yaml_options(&around),
        )
        .is_ok();
    }
    let Ok(docs) =
        serde_saphyr::from_multiple_with_options::<Document>(&around, yaml_options(&around))
    else {
        return false;
    };
    let [doc] = &docs[..] else {
        return false;
    };
    matches!(doc.kind.as_deref(), None | Some("PodList" | "List"))
        && doc.items.as_ref().is_none_or(|items| items.0.is_empty())
}

/// The items of a YAML version as [`yaml_walk`] reads them.
struct YamlItems<'a> {
    compare: Compare<'a>,
    items: Vec<Item>,
    /// The items to parse that are next to each other, not parsed yet: the place in `items` of
    /// the first, and where its text starts.
    batch: Option<(usize, usize)>,
}

impl YamlItems<'_> {
    /// The item at `r`: compared, and parsed with the unknown ones next to it (up to
    /// [`YAML_BATCH`] at a time, or when an item the last version had comes between). `None`
    /// when it cannot be read as an item.
    fn item(
        &mut self,
        text: &Text,
        r: std::ops::Range<usize>,
        form: yaml::Form,
        parsed: &mut impl FnMut(u64, PodView),
    ) -> Option<()> {
        let bytes = text.get(r.clone());
        let item = Item {
            hash: text_hash(bytes),
            len: u32::try_from(bytes.len()).ok()?,
        };
        let known = if self
            .compare
            .expected()
            .is_some_and(|e| (e.hash, e.len) == (item.hash, item.len))
        {
            self.compare.met();
            true
        } else {
            !self.compare.elsewhere(item.hash)
        };
        if known {
            // Its text was split and parsed in an earlier version: no anchor, and UTF-8.
            self.flush(text, r.start, form, parsed)?;
        } else {
            if yaml::may_refer(bytes) {
                return None;
            }
            self.batch.get_or_insert((self.items.len(), r.start));
        }
        self.items.push(item);
        if self
            .batch
            .is_some_and(|(first, _)| self.items.len() - first == YAML_BATCH)
        {
            self.flush(text, r.end, form, parsed)?;
        }
        Some(())
    }

    /// Parses the batch, whose text ends at `end`.
    fn flush(
        &mut self,
        text: &Text,
        end: usize,
        form: yaml::Form,
        parsed: &mut impl FnMut(u64, PodView),
    ) -> Option<()> {
        let Some((first, start)) = self.batch.take() else {
            return Some(());
        };
        let batch = std::str::from_utf8(text.get(start..end)).ok()?;
        let hashes = &self.items[first..];
        let pods = match yaml_pods_rewritten(batch, form) {
            Some(pods) => pods,
            // One item the rewrite declines (a `>` block, written by hand) would send all of
            // them to the YAML parser, ten times slower: only that one goes. The items are
            // next to each other, each from its start to the next's.
            None => {
                let mut pods = Vec::with_capacity(hashes.len());
                let mut at = 0;
                for item in hashes {
                    let len = item.len as usize;
                    let one = yaml_pods(batch.get(at..at + len)?, form)?;
                    if one.len() != 1 {
                        return None;
                    }
                    pods.extend(one);
                    at += len;
                }
                (at == batch.len()).then_some(pods)?
            }
        };
        if pods.len() != hashes.len() {
            return None;
        }
        for (item, pod) in hashes.iter().zip(pods) {
            parsed(item.hash, pod);
        }
        Some(())
    }
}

/// How many YAML items are parsed together at most.
const YAML_BATCH: usize = 256;

/// YAML items next to each other parsed together: list entries (a sequence of Pods), or
/// documents each of which must be one Pod. Written as kubectl writes YAML, they are rewritten
/// as JSON for serde_json (see [`yaml_json`]); otherwise, or where serde_json refuses that, the
/// YAML parser reads them.
fn yaml_pods(text: &str, form: yaml::Form) -> Option<Vec<PodView>> {
    yaml_pods_rewritten(text, form).or_else(|| yaml_pods_parsed(text, form))
}

fn yaml_pods_rewritten(text: &str, form: yaml::Form) -> Option<Vec<PodView>> {
    let json = yaml_json::to_json(text, form)?;
    match form {
        yaml::Form::List => serde_json::from_str::<Vec<SlimPod>>(&json)
            .ok()
            .map(|slim| slim.into_iter().map(view).collect()),
        yaml::Form::Documents => serde_json::from_str::<Vec<Document>>(&json)
            .ok()
            .and_then(one_pod_each),
    }
}

fn yaml_pods_parsed(text: &str, form: yaml::Form) -> Option<Vec<PodView>> {
    let options = yaml_options(text);
    match form {
        yaml::Form::List => {
            let slim: Vec<SlimPod> = serde_saphyr::from_str_with_options(text, options).ok()?;
            Some(slim.into_iter().map(view).collect())
        }
        yaml::Form::Documents => {
            one_pod_each(serde_saphyr::from_multiple_with_options(text, options).ok()?)
        }
    }
}

/// The pods of documents that must each be one Pod.
fn one_pod_each(docs: Vec<Document>) -> Option<Vec<PodView>> {
    let mut pods = Vec::with_capacity(docs.len());
    for doc in docs {
        let before = pods.len();
        doc.into_pods(1, &mut pods).ok()?;
        if pods.len() != before + 1 {
            return None;
        }
    }
    Some(pods)
}

/// A JSON error at a position relative to `offset` in `text`, placed in the whole file.
fn json_error(text: &str, offset: usize, e: serde_json::Error) -> ParseError {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let lines_before = before.bytes().filter(|&b| b == b'\n').count() as u64;
    let (line, column) = match e.line() as u64 {
        0 | 1 => (
            lines_before + 1,
            (offset - line_start) as u64 + e.column() as u64,
        ),
        line => (lines_before + line, e.column() as u64),
    };
    ParseError::Syntax {
        line,
        column,
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The items of the JSON list last applied, by the hash of each item's text, with the pod each
/// is, and where they were in the text. A new version is compared with it in order (`walk`):
/// only the items whose text changed are parsed, and only their pods, and the pods whose items
/// are gone, reach the membership layer. At 100,000 pods that is the difference between parsing
/// 40 MB and a few hundred bytes.
pub struct Index {
    items: HashMap<u64, PodKey>,
    layout: Layout,
}

impl Index {
    /// The index of a list whose every item is given with the pod it names; `None` when two
    /// items name one pod (see [`advance`]).
    fn new(layout: Layout, items: impl Iterator<Item = (u64, PodKey)>) -> Option<Index> {
        let mut map = HashMap::with_capacity_and_hasher(layout.items.len(), Default::default());
        map.extend(items);
        let distinct: HashSet<&PodKey> = map.values().collect();
        (distinct.len() == layout.items.len()).then_some(Index { items: map, layout })
    }
}

/// A version's items compared in order with the last version's (`index`): the item expected
/// at each place is checked first, then a few ahead, then every item the last version had.
struct Compare<'a> {
    index: Option<&'a Index>,
    old: &'a [Item],
    /// The last version's item expected at the place being read.
    next: usize,
    seen: Vec<bool>,
    /// The items not met at their place: only they can hold the text of an item not seen.
    moved: Vec<u64>,
}

impl<'a> Compare<'a> {
    fn new(index: Option<&'a Index>) -> Self {
        let old = index
            .map(|index| &index.layout.items[..])
            .unwrap_or_default();
        Compare {
            index,
            old,
            next: 0,
            seen: vec![false; old.len()],
            moved: Vec::new(),
        }
    }

    /// The last version's item at this place.
    fn expected(&self) -> Option<Item> {
        self.old.get(self.next).copied()
    }

    /// The item at this place is the one expected.
    fn met(&mut self) {
        self.seen[self.next] = true;
        self.next += 1;
    }

    /// The item at this place, by its hash, is not the one expected: whether no item of the
    /// last version had its text, so that it must be parsed.
    fn elsewhere(&mut self, hash: u64) -> bool {
        let n = self.old.len();
        let ahead = &self.old[self.next.min(n)..(self.next + RESYNC).min(n)];
        let unknown = if let Some(k) = ahead.iter().position(|i| i.hash == hash) {
            // The items in between are gone, or moved elsewhere.
            self.seen[self.next + k] = true;
            self.next += k + 1;
            false
        } else {
            !self
                .index
                .is_some_and(|index| index.items.contains_key(&hash))
        };
        self.moved.push(hash);
        unknown
    }

    /// The hashes of the last version's items this one does not have; `None` without a last
    /// version.
    fn gone(self) -> Option<Vec<u64>> {
        self.index?;
        let mut gone: HashSet<u64> = self
            .old
            .iter()
            .zip(&self.seen)
            .filter(|(_, seen)| !**seen)
            .map(|(item, _)| item.hash)
            .collect();
        // An item met at its place is the last version's item there, and the last version's
        // items all differ (see `advance`): only the items met elsewhere can hold the text of
        // one not seen.
        for hash in &self.moved {
            gone.remove(hash);
        }
        Some(gone.into_iter().collect())
    }
}

/// What the membership layer is told about a version.
pub enum Version {
    Whole(Vec<PodView>),
    Changes {
        delete: Vec<PodKey>,
        apply: Vec<PodView>,
    },
}

/// Makes `index` describe `content` and returns what changed since the version it described.
/// A version in which two items name the same pod, even in the same words, keeps no index
/// (which of them counts depends on their order, which only a whole list keeps): an index holds
/// one entry per item. `None` when two items naming one pod in different words were found with
/// an index: the version must be read again whole.
fn advance(index: &mut Option<Index>, content: Content) -> Option<Version> {
    let previous = index.take();
    let (layout, parsed, gone) = match content {
        Content::Pods(pods) => return Some(Version::Whole(pods)),
        Content::Items {
            layout,
            parsed,
            gone,
        } => (layout, parsed, gone),
    };
    let (Some(previous), Some(gone)) = (previous, gone) else {
        // Every item parsed: the version is whole.
        *index = Index::new(layout, parsed.iter().map(|(hash, pod)| (*hash, pod.key())));
        return Some(Version::Whole(
            parsed.into_iter().map(|(_, pod)| pod).collect(),
        ));
    };
    // The items kept name distinct pods (the index's invariant); a parsed item must not name one
    // of them, nor the same pod as another parsed item.
    let applied: HashSet<PodKey> = parsed.iter().map(|(_, pod)| pod.key()).collect();
    let parsed_items: HashSet<u64> = parsed.iter().map(|(hash, _)| *hash).collect();
    if applied.len() < parsed_items.len() {
        return None;
    }
    let mut items = previous.items;
    let gone: Vec<PodKey> = gone.iter().filter_map(|hash| items.remove(hash)).collect();
    // A pod whose item is gone is named by no item kept; any other pod applied must be looked
    // for among them.
    let known: HashSet<&PodKey> = gone.iter().collect();
    if applied.iter().any(|key| !known.contains(key))
        && items.values().any(|key| applied.contains(key))
    {
        return None;
    }
    for (hash, pod) in &parsed {
        items.insert(*hash, pod.key());
    }
    let delete = gone
        .into_iter()
        .filter(|key| !applied.contains(key))
        .collect();
    // Fewer entries than items: two items are the same text.
    if items.len() == layout.items.len() {
        *index = Some(Index { items, layout });
    }
    Some(Version::Changes {
        delete,
        apply: parsed.into_iter().map(|(_, pod)| pod).collect(),
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

/// The YAML parser's default budget is made for configuration files; a pods file of a large
/// cluster has far more nodes. Alias limits stay, so an alias bomb is still refused. A field
/// roster does not read is not checked (see `slim`), so `.inf` there does not refuse the pod.
fn yaml_options(text: &str) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    let scale = text.len().max(1 << 20);
    budget.max_documents = scale;
    budget.max_nodes = scale;
    budget.max_events = scale.saturating_mul(2);
    budget.max_total_scalar_bytes = scale;
    budget.max_reader_input_bytes = None;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options
}

/// What identifies a version of the file without reading it. The inode's change time is part of
/// it because the modification time is not enough: tools that copy times (`rsync -a --inplace`,
/// `cp -p` over the file) can rewrite a file in place at its old size and modification time,
/// while every write moves the change time, which no tool can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    /// The inode's change time (seconds, nanoseconds).
    changed: (i64, i64),
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let (inode, changed) = {
        use std::os::unix::fs::MetadataExt;
        (meta.ino(), (meta.ctime(), meta.ctime_nsec()))
    };
    #[cfg(not(unix))]
    let (inode, changed) = (0, (0, 0));
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
        changed,
    })
}

/// A version of the file that parsed.
struct Loaded {
    content: Content,
    stamp: Option<Stamp>,
    fingerprint: u64,
}

/// The file's first version, which was delivered pod by pod as it was read.
pub struct First {
    stamp: Option<Stamp>,
    fingerprint: u64,
    pods: usize,
    index: Option<Index>,
}

impl First {
    /// Pods in the version.
    pub fn pods(&self) -> usize {
        self.pods
    }
}

/// Reads the file's first version, delivering it as a list (`Init`, then `InitApply` for each pod
/// as it is parsed, as `selection` leaves it; `Init` again if the read starts over): a large JSON
/// list is never held whole, as text nor as pods. What was delivered counts only if this returns
/// `Ok`; the caller ends the list.
pub fn load(
    path: &Path,
    selection: &Selection,
    mut deliver: impl FnMut(PodEvent),
) -> Result<First, FileError> {
    let start = || PodEvent::Init(Scope::Cluster);
    let _selecting = Selecting::enter(selection.clone());
    let pod = |pod| PodEvent::InitApply(Scope::Cluster, pod);
    let ((fingerprint, pods, index, len), stamp) = read_file(path, |file| {
        deliver(start());
        let mut keys = Vec::new();
        // Pods delivered since the last `Init`.
        let mut begun = false;
        let walked = walk_file(file, None, CHUNK, &mut |parsed| match parsed {
            Some((hash, view)) => {
                keys.push((hash, view.key()));
                begun = true;
                deliver(pod(view));
            }
            None => {
                keys.clear();
                begun = false;
                deliver(start());
            }
        })?;
        if let Some(walked) = walked {
            let (pods, fingerprint) = (walked.layout.items.len(), walked.layout.fingerprint);
            let index = Index::new(walked.layout, keys.into_iter());
            return Ok(((fingerprint, pods, index, walked.len), walked.len));
        }
        let (content, fingerprint, len) = read_whole(file)?;
        let pods = content.pods();
        let mut index = None;
        let Some(Version::Whole(all)) = advance(&mut index, content) else {
            unreachable!("a first version has no index to compare with");
        };
        if begun {
            deliver(start());
        }
        all.into_iter().for_each(|view| deliver(pod(view)));
        Ok(((fingerprint, pods, index, len), len))
    })?;
    // As on reload (see `read`): an empty file is one being written, or never written, and
    // serving it would deny every name.
    if len == 0 {
        return Err(FileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(First {
        stamp,
        fingerprint,
        pods,
        index,
    })
}

/// How many events the reader of a first version hands over at a time.
const HANDOVER: usize = 1024;

/// [`load`] on a blocking thread, delivering the first version to the pipeline as one list while
/// it is read. The pods go over in batches: handed over one by one, each would wake the other
/// thread, and on one core that switch costs more than the pod.
pub async fn load_into(
    path: PathBuf,
    selection: Selection,
    events: &mpsc::Sender<Received>,
) -> Result<First, FileError> {
    let at = Instant::now();
    let (batches, mut handed) = mpsc::channel::<Vec<PodEvent>>(4);
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(HANDOVER);
        let first = load(&path, &selection, |event| {
            batch.push(event);
            if batch.len() == HANDOVER {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(HANDOVER));
                let _ = batches.blocking_send(full);
            }
        });
        let _ = batches.blocking_send(batch);
        first
    });
    while let Some(batch) = handed.recv().await {
        for event in batch {
            // Fails only when the pipeline has stopped (shutdown): nothing is left to tell.
            let _ = events.send(Received { at, event }).await;
        }
    }
    let first = reader.await.expect("pods file reader panicked")?;
    let _ = events
        .send(Received {
            at,
            event: PodEvent::InitDone(Scope::Cluster),
        })
        .await;
    Ok(first)
}

/// Why a version could not be used: the file could not be read, or its text is wrong.
enum ReadError {
    Io(std::io::Error),
    Parse(ParseError),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ParseError> for ReadError {
    fn from(e: ParseError) -> Self {
        ReadError::Parse(e)
    }
}

/// A version's content, fingerprint and length: a JSON list or YAML split into items, walked
/// `chunk` bytes at a time (and compared in order with the last one, given its index), anything
/// else read whole and parsed.
fn read_content(
    source: &mut (impl Read + Seek),
    index: Option<&Index>,
    chunk: usize,
) -> Result<(Content, u64, u64), ReadError> {
    let mut parsed = Vec::new();
    let walked = walk_file(source, index, chunk, &mut |pod| match pod {
        Some((hash, pod)) => parsed.push((hash, pod)),
        None => parsed.clear(),
    })?;
    if let Some(Walked { layout, gone, len }) = walked {
        let fingerprint = layout.fingerprint;
        let content = Content::Items {
            layout,
            parsed,
            gone,
        };
        return Ok((content, fingerprint, len));
    }
    read_whole(source)
}

/// Walks the file as a JSON list, else as YAML split into items, comparing it with the last
/// version applied (`index`); each pod parsed goes to `parsed` as soon as it is, and `None`
/// there means the read starts over (what was given before does not count). `None` when the
/// version must be read whole.
fn walk_file(
    source: &mut (impl Read + Seek),
    index: Option<&Index>,
    chunk: usize,
    parsed: &mut impl FnMut(Option<(u64, PodView)>),
) -> std::io::Result<Option<Walked>> {
    let mut given = false;
    let mut pod = |hash, pod| {
        given = true;
        parsed(Some((hash, pod)))
    };
    if let Some(walked) = walk(&mut Window::new(&mut *source, chunk), index, &mut pod)? {
        return Ok(Some(walked));
    }
    if given {
        parsed(None);
    }
    source.seek(SeekFrom::Start(0))?;
    let mut pod = |hash, pod| parsed(Some((hash, pod)));
    yaml_walk(&mut Window::new(&mut *source, chunk), index, &mut pod)
}

/// A version read into memory whole and parsed whole, with its content, fingerprint and
/// length.
fn read_whole(source: &mut (impl Read + Seek)) -> Result<(Content, u64, u64), ReadError> {
    // Sized at once: grown as it is read, a 40 MB buffer is moved and faulted in several times.
    let len = source.seek(SeekFrom::End(0))?;
    source.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    source.read_to_end(&mut bytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ParseError::Content {
        document: 0,
        message: format!("not UTF-8 text (byte {})", e.valid_up_to()),
    })?;
    let content = parse_content(text)?;
    let fingerprint = content.fingerprint(&bytes);
    Ok((content, fingerprint, bytes.len() as u64))
}

/// Reads and parses the file; of a JSON list, only the items `index` does not know. The stamp
/// is `None` when the file changed while it was read, so the watcher reads it again.
fn read(path: &Path, index: Option<&Index>) -> Result<Loaded, FileError> {
    let ((content, fingerprint, len), stamp) = read_file(path, |file| {
        let (content, fingerprint, len) = read_content(file, index, CHUNK)?;
        Ok(((content, fingerprint, len), len))
    })?;
    // A writer that truncates the file and is then kept from the core can leave it empty for
    // longer than a poll before the kernel queues the event that says it is being written (the
    // event follows the truncation); with polling only, `kubectl ... > file` leaves it empty
    // while kubectl runs. A version is never empty: a list without pods still says so.
    if len == 0 {
        return Err(FileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Loaded {
        content,
        stamp,
        fingerprint,
    })
}

/// Opens the file and reads it with `read`, which gives what it read and the file's length;
/// with the file's stamp, `None` when the file changed while it was read.
fn read_file<T>(
    path: &Path,
    read: impl FnOnce(&mut std::fs::File) -> Result<(T, u64), ReadError>,
) -> Result<(T, Option<Stamp>), FileError> {
    let read_err = |source| FileError::Read {
        path: path.to_owned(),
        source,
    };
    let before = stamp(path).map_err(read_err)?;
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let (read, len) = read(&mut file).map_err(|e| match e {
        ReadError::Io(e) => read_err(e),
        ReadError::Parse(e) => e.at(path),
    })?;
    // A writer that truncated the file as it was read shows in its length, even where its
    // event is not queued yet and the timestamp's granularity hides the change.
    let whole = len == before.len && stamp(path).ok() == Some(before);
    Ok((read, whole.then_some(before)))
}

/// What `content` changes since the version `index` describes, making `index` describe it.
/// Where two items name one pod only the whole list says which counts: the version is read
/// again without an index (`whole`), which always gives a whole version.
fn version<E>(
    index: &mut Option<Index>,
    content: Content,
    whole: impl FnOnce() -> Result<Content, E>,
) -> Result<Version, E> {
    match advance(index, content) {
        Some(version) => Ok(version),
        None => Ok(advance(index, whole()?).expect("a whole version")),
    }
}

/// Reads versions of a pods file held in memory as [`watch()`] reads the file: each compared in
/// order with the last one read, `chunk` bytes at a time. What `fuzz/` checks the walk with
/// against a whole parse ([`parse`]); a version that does not parse changes nothing.
pub struct Versions {
    index: Option<Index>,
    chunk: usize,
}

impl Versions {
    pub fn new(chunk: usize) -> Self {
        Versions {
            index: None,
            chunk: chunk.max(1),
        }
    }

    /// The next version: what changed since the last one read, or why it does not parse.
    pub fn read(&mut self, bytes: &[u8]) -> Result<Version, ParseError> {
        let content = |index: Option<&Index>| match read_content(
            &mut std::io::Cursor::new(bytes),
            index,
            self.chunk,
        ) {
            Ok((content, _, _)) => Ok(content),
            Err(ReadError::Parse(e)) => Err(e),
            Err(ReadError::Io(e)) => unreachable!("reading memory failed: {e}"),
        };
        let first = content(self.index.as_ref())?;
        version(&mut self.index, first, || content(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const POD_YAML: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: prod
  labels:
    roster.io/service: db
status:
  podIP: 10.0.0.1
";

    fn pod_list(items: &[(usize, usize)]) -> String {
        pod_list_as(items, 0, ",\n")
    }

    /// A list as `pod_list`, with `version` in its metadata and `separator` between items.
    fn pod_list_as(items: &[(usize, usize)], version: usize, separator: &str) -> String {
        let items: Vec<String> = items
            .iter()
            .map(|(name, ip)| {
                format!(
                    r#"{{"metadata":{{"name":"p{name}","namespace":"ns"}},"status":{{"podIP":"10.0.0.{ip}"}}}}"#
                )
            })
            .collect();
        format!(
            "{{\"kind\":\"PodList\",\"metadata\":{{\"resourceVersion\":\"{version}\"}},\"items\":[\n{}\n]}}",
            items.join(separator)
        )
    }

    /// A file that gives at most 7 bytes per read, as a pipe or a network filesystem may.
    struct Trickle<'a>(std::io::Cursor<&'a [u8]>);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            std::io::Read::read(&mut self.0, &mut buf[..n])
        }
    }

    impl Seek for Trickle<'_> {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.0.seek(to)
        }
    }

    /// Reads a version as the watcher does, `chunk` bytes at a time where it compares.
    fn read_bytes(
        bytes: &[u8],
        index: Option<&Index>,
        chunk: usize,
    ) -> Result<Content, ParseError> {
        match read_content(&mut Trickle(std::io::Cursor::new(bytes)), index, chunk) {
            Ok((content, _, len)) => {
                assert_eq!(len, bytes.len() as u64);
                Ok(content)
            }
            Err(ReadError::Parse(e)) => Err(e),
            Err(ReadError::Io(e)) => panic!("{e}"),
        }
    }

    fn read_text(text: &str, index: Option<&Index>) -> Content {
        read_bytes(text.as_bytes(), index, CHUNK).unwrap()
    }

    type State = std::collections::BTreeMap<PodKey, PodView>;

    /// What a whole list means: every pod, the later item winning where two name one pod.
    fn whole(pods: Vec<PodView>) -> State {
        pods.into_iter().map(|p| (p.key(), p)).collect()
    }

    /// How a version was read.
    #[derive(Debug, PartialEq, Eq, Hash)]
    enum Read {
        Whole,
        /// Compared with the last version in order.
        Walked,
        /// Compared, then read again whole: two items name one pod.
        Again,
    }

    /// Reads `text` as the watcher does and applies the result to `state`.
    fn step(index: &mut Option<Index>, state: &mut State, text: &str) -> Read {
        step_in_chunks(index, state, text, CHUNK)
    }

    fn step_in_chunks(
        index: &mut Option<Index>,
        state: &mut State,
        text: &str,
        chunk: usize,
    ) -> Read {
        let content = read_bytes(text.as_bytes(), index.as_ref(), chunk).unwrap();
        let walked = matches!(content, Content::Items { gone: Some(_), .. });
        let (version, again) = match advance(index, content) {
            Some(version) => (version, false),
            None => (advance(index, parse_content(text).unwrap()).unwrap(), true),
        };
        match version {
            Version::Whole(pods) => {
                *state = whole(pods);
                if again { Read::Again } else { Read::Whole }
            }
            Version::Changes { delete, apply } => {
                for key in delete {
                    state.remove(&key);
                }
                for pod in apply {
                    state.insert(pod.key(), pod);
                }
                assert!(walked, "changes come only from comparing in order");
                Read::Walked
            }
        }
    }

    /// Item by item comparison gives the same pods as reading each version whole, through
    /// changed, added, removed, renamed, reordered and duplicated items.
    #[test]
    fn changes_between_json_versions_equal_whole_versions() {
        let reads = random_versions(|items, round, next| {
            // Now and then the text around the items changes, or the space between them.
            let separator = if next(10) == 0 { " ,\t" } else { ",\n" };
            pod_list_as(items, round / 50, separator)
        });
        // The text around the items changing (every 50 rounds) is compared in order too, and an
        // item cut by a chunk's end is read on, not given up: only the versions after one with
        // a repeated item (which keeps no index) are read whole, and those found to name one
        // pod twice read again.
        assert!(reads[&Read::Walked] > 1500, "{reads:?}");
        assert!(reads[&Read::Again] > 10, "{reads:?}");
    }

    /// A YAML pod as `kubectl get pods -o yaml` lists it, entries at `indent`; one in seven
    /// with a folded block, as kubectl never writes (the rewrite to JSON declines it, and the
    /// YAML parser reads that item among the rewritten ones).
    fn yaml_entry((name, ip): (usize, usize), indent: usize) -> String {
        let i = " ".repeat(indent);
        format!(
            "{i}- apiVersion: v1\n{i}  kind: Pod\n{i}  metadata:\n{i}    name: p{name}\n\
             {i}    namespace: ns\n{}{i}  status:\n{i}    podIP: 10.0.0.{ip}\n",
            by_hand(name, &format!("{i}  "))
        )
    }

    /// A folded block in one pod of seven, at `indent`.
    fn by_hand(name: usize, indent: &str) -> String {
        if name % 7 == 3 {
            format!("{indent}note: >\n{indent}  written\n{indent}  by hand\n")
        } else {
            String::new()
        }
    }

    /// A YAML list as kubectl prints it, its entries at `indent`, `version` in its metadata.
    fn yaml_list(items: &[(usize, usize)], version: usize, indent: usize) -> String {
        let entries: String = items.iter().map(|&item| yaml_entry(item, indent)).collect();
        format!(
            "apiVersion: v1\nitems:\n{entries}kind: List\nmetadata:\n  resourceVersion: \"{version}\"\n"
        )
    }

    /// The same pods as YAML documents, after a comment.
    fn yaml_documents(items: &[(usize, usize)], version: usize) -> String {
        let documents: String = items
            .iter()
            .map(|&(name, ip)| {
                format!(
                    "---\nkind: Pod\nmetadata:\n  name: p{name}\n  namespace: ns\n{}status:\n  podIP: 10.0.0.{ip}\n",
                    by_hand(name, "")
                )
            })
            .collect();
        format!("# version {version}\n{documents}")
    }

    /// YAML lists and documents compared item by item give what parsing each version whole
    /// gives, through the same changes as JSON lists, and are compared rather than parsed.
    #[test]
    fn changes_between_yaml_versions_equal_whole_versions() {
        let reads = random_versions(|items, round, next| match (round / 200) % 3 {
            0 => yaml_list(items, round / 50, 0),
            1 => yaml_list(items, round / 50, 2 * next(2)),
            _ => yaml_documents(items, round / 50),
        });
        assert!(reads[&Read::Walked] > 1500, "{reads:?}");
        assert!(reads[&Read::Again] > 10, "{reads:?}");
    }

    /// Lines inside a YAML item that look like entries, keys or markers (in a block scalar, a
    /// quoted value over lines, a comment at the start of a line) stay in their item, as YAML
    /// reads them, and so do Windows line ends.
    #[test]
    fn yaml_values_that_look_like_entries_stay_in_their_item() {
        let pod = |name: &str, ip: &str| {
            format!(
                "- metadata:
    name: {name}
    namespace: ns
    annotations:
      script: |
        - not an entry
        items:
        ---
      note: \"a quoted
        value over lines\"
# a comment at the start of a line
  status:\r
    podIP: {ip}\r
"
            )
        };
        let list = |a: &str, b: &str| {
            format!(
                "kind: List\nitems:\n{}{}metadata: {{}}\n",
                pod("p1", a),
                pod("p2", b)
            )
        };
        let mut index = None;
        let mut state = State::new();
        for (text, how) in [
            (list("10.0.0.1", "10.0.0.2"), Read::Whole),
            (list("10.0.0.1", "10.0.0.3"), Read::Walked),
        ] {
            assert_eq!(step(&mut index, &mut state, &text), how, "{text}");
            assert_eq!(state, whole(parse(&text).unwrap()), "{text}");
            assert_eq!(state.len(), 2);
        }
    }

    /// Documents parsed together must each be one Pod: a list of two pods next to an empty list
    /// is two pods for two documents, but not one for each, so such a file is read whole.
    #[test]
    fn yaml_documents_that_are_lists_are_read_whole() {
        let text = "---\n{kind: List, items: [{metadata: {name: a}}, {metadata: {name: b}}]}\n\
                    ---\n{kind: List, items: []}\n";
        let mut index = None;
        let mut state = State::new();
        assert_eq!(step(&mut index, &mut state, text), Read::Whole);
        assert!(index.is_none(), "a version read whole keeps no index");
        assert_eq!(state.len(), 2);
        let moved = text.replace("name: b", "name: c");
        assert_eq!(step(&mut index, &mut state, &moved), Read::Whole);
        assert_eq!(state, whole(parse(&moved).unwrap()));
    }

    /// Reads 2,000 versions of a changing list as the watcher does, each `render`ed from the
    /// list's items (name and address of each pod), the round and a random source, requiring
    /// each to give the pods the version gives read whole; how each was read.
    fn random_versions(
        render: impl Fn(&[(usize, usize)], usize, &mut dyn FnMut(usize) -> usize) -> String,
    ) -> HashMap<Read, usize> {
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1du64);
        let mut items: Vec<(usize, usize)> = (0..20).map(|i| (i, i)).collect();
        let mut fresh = 20..;
        let mut index = None;
        let mut state = State::new();
        let mut reads = HashMap::new();
        for round in 0..2000 {
            match next(8) {
                0 if !items.is_empty() => {
                    let i = next(items.len());
                    items[i].1 = next(250);
                }
                1 => items.insert(next(items.len() + 1), (fresh.next().unwrap(), next(250))),
                2 if !items.is_empty() => {
                    items.remove(next(items.len()));
                }
                3 if !items.is_empty() => {
                    let i = next(items.len());
                    items[i].0 = fresh.next().unwrap();
                }
                6 => {
                    // Duplicates resolved: the last item of each pod stays.
                    let mut seen = HashSet::new();
                    items.reverse();
                    items.retain(|(name, _)| seen.insert(*name));
                    items.reverse();
                }
                4 if items.len() > 1 => {
                    let (a, b) = (next(items.len()), next(items.len()));
                    items.swap(a, b);
                }
                5 if !items.is_empty() && next(4) == 0 => {
                    // The same pod twice, with different or identical text.
                    let copy = (items[next(items.len())].0, next(3));
                    items.insert(next(items.len() + 1), copy);
                }
                _ => {}
            }
            let text = render(&items, round, &mut next);
            // Read a few bytes at a time: items and the space between them fall across every
            // kind of chunk boundary.
            let chunk = 1 + next(100);
            *reads
                .entry(step_in_chunks(&mut index, &mut state, &text, chunk))
                .or_insert(0) += 1;
            assert_eq!(state, whole(parse(&text).unwrap()), "round {round}: {text}");
        }
        reads
    }

    /// The pods of a JSON list walked a chunk at a time with no last version to compare with,
    /// as when the file is first read; `None` when the walk declines it.
    fn walked_alone(text: &str, chunk: usize) -> Option<State> {
        let mut w = Window::new(std::io::Cursor::new(text.as_bytes()), chunk);
        let mut pods = Vec::new();
        let walked = walk(&mut w, None, &mut |_, pod| pods.push(pod)).unwrap()?;
        assert_eq!(walked.len, text.len() as u64);
        assert_eq!(walked.layout.items.len(), pods.len());
        assert!(walked.gone.is_none());
        Some(whole(pods))
    }

    /// A list is read a chunk at a time whatever comes before and after its items: kubectl's
    /// layout, items last, a key written with an escape, an "items" key nested in an object
    /// before the list's own.
    #[test]
    fn a_list_is_walked_whatever_surrounds_its_items() {
        let pod = |n: usize| {
            format!(
                r#"{{"metadata":{{"name":"p{n}","namespace":"ns"}},"status":{{"podIP":"10.0.0.{n}"}}}}"#
            )
        };
        let kubectl = format!(
            "{{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {},\n        {}\n    ],\n    \
             \"kind\": \"List\",\n    \"metadata\": {{\n        \"resourceVersion\": \"\"\n    }}\n}}\n",
            pod(1),
            pod(2)
        );
        let shapes = [
            kubectl,
            format!(
                r#"{{"kind":"PodList","metadata":{{"resourceVersion":"7"}},"items":[{}]}}"#,
                pod(1)
            ),
            format!("\r\n\t{{ \"it\\u0065ms\" :\t[ {} , {} ] }}", pod(1), pod(3)),
            format!(
                r#"{{"metadata":{{"items":[{}]}},"items":[{}],"kind":"List"}}"#,
                pod(9),
                pod(2)
            ),
            // More space between items than `separator` looks at.
            format!("{{\"items\": [{}{:40},{:40}{}]}}", pod(1), "", "", pod(2)),
        ];
        for text in &shapes {
            for chunk in [1, 3, 64, CHUNK] {
                assert_eq!(
                    walked_alone(text, chunk),
                    Some(whole(parse(text).unwrap())),
                    "chunk {chunk}: {text}"
                );
            }
        }
        // Not lists, or not a list's end: read whole, which gives the same pods or the error.
        let others = [
            format!("{{\"kind\":\"Pod\",{}", &pod(1)[1..]),
            r#"{"kind":"PodList","items":null}"#.to_owned(),
            r#"{"kind":"PodList","items":[]}"#.to_owned(),
            format!(r#"{{"kind":"Pod","items":[{}]}}"#, pod(1)),
            format!(r#"{{"items":[{}],"items":[]}}"#, pod(1)),
            format!(r#"{{"items":[{}]}} {{}}"#, pod(1)),
            format!("[{}]", pod(1)),
            POD_YAML.to_owned(),
        ];
        for text in &others {
            assert_eq!(walked_alone(text, 5), None, "{text}");
            match (read_bytes(text.as_bytes(), None, 5), parse(text)) {
                (Ok(content), Ok(pods)) => {
                    let read = match content {
                        Content::Pods(pods) => pods,
                        Content::Items { parsed, .. } => {
                            parsed.into_iter().map(|(_, pod)| pod).collect()
                        }
                    };
                    assert_eq!(whole(read), whole(pods), "{text}");
                }
                (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text}"),
                (a, b) => panic!("{text}: {:?} / {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    /// The first read delivers, pod by pod, what reading the file whole gives, starting over
    /// when the walk gives up on a text it had begun to deliver.
    #[test]
    fn the_first_read_delivers_what_a_whole_read_gives() {
        let path = std::env::temp_dir().join(format!("roster-first-{}.json", std::process::id()));
        let list = pod_list(&[(1, 1), (2, 2), (3, 3)]);
        // Items, then a kind that makes it one Pod: walked, then read whole.
        let pod_with_items = format!(
            r#"{{"items":[{}],"kind":"Pod","metadata":{{"name":"solo","namespace":"ns"}}}}"#,
            r#"{"metadata":{"name":"p1","namespace":"ns"}}"#
        );
        for (text, starts) in [
            (list.as_str(), 1),
            // YAML is walked too: one document, one item.
            (POD_YAML, 1),
            (pod_with_items.as_str(), 2),
        ] {
            std::fs::write(&path, text).unwrap();
            let (mut state, mut started) = (State::new(), 0);
            let first = load(&path, &Selection::default(), |event| match event {
                PodEvent::Init(_) => {
                    state.clear();
                    started += 1;
                }
                PodEvent::InitApply(_, pod) => {
                    state.insert(pod.key(), pod);
                }
                other => panic!("{other:?}"),
            })
            .unwrap();
            assert_eq!(state, whole(parse(text).unwrap()), "{text}");
            assert_eq!(first.pods(), state.len(), "{text}");
            assert_eq!(started, starts, "{text}");
        }
        // A list cut short: delivered in part, then refused with its place in the file.
        std::fs::write(&path, &list[..list.len() - 3]).unwrap();
        match load(&path, &Selection::default(), |_| {}) {
            Err(FileError::Syntax { line, .. }) => assert_eq!(line, 4),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a list cut short was read"),
        }
        let _ = std::fs::remove_file(&path);
    }

    /// `Versions`, which `fuzz/` reads with, compares each version with the last one that
    /// parsed, and a broken version changes nothing.
    #[test]
    fn versions_in_memory_compare_with_the_last_that_parsed() {
        let first = pod_list(&[(1, 1), (2, 2), (3, 3)]);
        let second = pod_list(&[(1, 1), (2, 9), (3, 3)]);
        let mut versions = Versions::new(7);
        match versions.read(first.as_bytes()) {
            Ok(Version::Whole(pods)) => assert_eq!(whole(pods), whole(parse(&first).unwrap())),
            _ => panic!("the first version is read whole"),
        }
        match versions.read(&first.as_bytes()[..first.len() - 2]) {
            Err(ParseError::Syntax { line, .. }) => assert_eq!(line, 5),
            _ => panic!("a list cut short was read"),
        }
        match versions.read(second.as_bytes()) {
            Ok(Version::Changes { delete, apply }) => {
                assert!(delete.is_empty());
                assert_eq!(apply.len(), 1);
                assert_eq!(apply[0].name, "p2");
                assert_eq!(
                    apply[0].ips,
                    ["10.0.0.9".parse::<std::net::IpAddr>().unwrap()]
                );
            }
            _ => panic!("compared with the first version"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..Default::default()
        })]

        /// A list damaged anywhere (bytes changed, inserted, removed, the end cut) reads the
        /// same walked as whole: the same pods, or an error; first read or compared with the
        /// undamaged version.
        #[test]
        fn damaged_lists_read_the_same_walked_as_whole(
            items in proptest::collection::vec((0usize..6, 0usize..4), 1..6),
            edits in proptest::collection::vec((0usize..4, 0usize..10_000, 0usize..12), 1..4),
            chunk in 1usize..80,
        ) {
            let good = pod_list_as(&items, 1, ", ");
            let mut bytes = good.clone().into_bytes();
            for (kind, at, with) in edits {
                let at = at % (bytes.len() + 1);
                let byte = b",]}[{\" :\n0a\xff"[with];
                match kind {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            let text = std::str::from_utf8(&bytes).ok();
            let whole_read = text.map(parse);
            let mut compared = (None, State::new());
            step(&mut compared.0, &mut compared.1, &good);
            // Read first (nothing to compare with), then compared with the undamaged version.
            for (mut index, mut state) in [(None, State::new()), compared] {
                match (read_bytes(&bytes, index.as_ref(), chunk), &whole_read) {
                    (Ok(_), Some(Ok(pods))) => {
                        step_in_chunks(&mut index, &mut state, text.unwrap(), chunk);
                        proptest::prop_assert_eq!(state, whole(pods.clone()));
                    }
                    (Err(_), None | Some(Err(_))) => {}
                    (read, whole_read) => proptest::prop_assert!(
                        false,
                        "walked: {:?}, whole: {:?}, text: {:?}",
                        read.is_ok(),
                        whole_read.as_ref().map(Result::is_ok),
                        String::from_utf8_lossy(&bytes)
                    ),
                }
            }
        }
    }

    /// Text that is not UTF-8 where roster reads nothing (found by fuzzing: a field after the
    /// items) is refused walked as it is read whole, first read or compared.
    #[test]
    fn text_around_the_items_must_be_utf8() {
        let items: Vec<(usize, usize)> = (0..3).map(|i| (i, i)).collect();
        let good = pod_list(&items);
        let mut index = None;
        step(&mut index, &mut State::new(), &good);
        // A key after the items, and a value before them, each with a byte that is not UTF-8.
        let end = good.rfind("]}").unwrap();
        let cases = [
            [
                &good.as_bytes()[..end],
                b"],\"x\":{\"n\xffe\":1}}".as_slice(),
            ]
            .concat(),
            [b"{\"x\":\"\xfe\",".as_slice(), &good.as_bytes()[1..]].concat(),
        ];
        for bytes in cases {
            refused_as_not_utf8(&bytes, index.as_ref());
        }
    }

    /// `bytes` are refused as not UTF-8, read first or compared with `index`, in small chunks
    /// or whole.
    fn refused_as_not_utf8(bytes: &[u8], index: Option<&Index>) {
        assert!(std::str::from_utf8(bytes).is_err());
        for (compared, chunk) in [(None, 7), (index, 7), (index, CHUNK)] {
            match read_bytes(bytes, compared, chunk) {
                Err(ParseError::Content { message, .. }) => {
                    assert!(message.contains("not UTF-8"), "{message}")
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("read text that is not UTF-8: {bytes:?}"),
            }
        }
    }

    /// YAML text that is not UTF-8 is refused as it is read whole, wherever the byte is: in the
    /// text before the items, an item, or the text after them; read first or compared with a
    /// good version, in small chunks or whole.
    #[test]
    fn yaml_text_must_be_utf8() {
        let items: Vec<(usize, usize)> = (0..3).map(|i| (i, i)).collect();
        let good = yaml_list(&items, 1, 0);
        let mut index = None;
        step(&mut index, &mut State::new(), &good);
        assert!(index.is_some(), "the good version is compared item by item");
        let at = |needle: &str| good.find(needle).unwrap();
        for place in [0, at("    name: p1"), at("kind: List")] {
            let bytes = [
                &good.as_bytes()[..place],
                b"# \xff\n",
                &good.as_bytes()[place..],
            ]
            .concat();
            refused_as_not_utf8(&bytes, index.as_ref());
        }
    }

    /// YAML refuses a control character anywhere, in a comment too: one in the comments before
    /// the first document refuses the version read item by item, as it does read whole.
    #[test]
    fn yaml_comments_before_documents_are_yaml() {
        let items: Vec<(usize, usize)> = (0..3).map(|i| (i, i)).collect();
        let good = format!("# pods\n{}", yaml_documents(&items, 1));
        let mut index = None;
        step(&mut index, &mut State::new(), &good);
        assert!(index.is_some(), "the good version is compared item by item");
        let bad = good.replace("# pods", "# pods \u{1e}");
        assert!(parse(&bad).is_err());
        for compared in [None, index.as_ref()] {
            assert!(read_bytes(bad.as_bytes(), compared, CHUNK).is_err());
        }
    }

    /// The same items followed by more text: not the last version's end, and not JSON.
    #[test]
    fn text_after_an_unchanged_list_is_refused() {
        let items: Vec<(usize, usize)> = (0..5).map(|i| (i, i)).collect();
        let mut index = None;
        step(&mut index, &mut State::new(), &pod_list(&items));
        for chunk in [1, 7, CHUNK] {
            let text = pod_list(&items) + "{}";
            match read_bytes(text.as_bytes(), index.as_ref(), chunk) {
                Err(ParseError::Syntax { message, .. }) => {
                    assert!(message.contains("trailing characters"), "{message}")
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("chunk {chunk}: a list followed by more text was read"),
            }
        }
    }

    /// A pod listed twice in the same words, then once: still there. A version with a repeated
    /// item keeps no index, so the one after it is read whole.
    #[test]
    fn a_repeated_item_dropped_keeps_its_pod() {
        let mut index = None;
        let mut state = State::new();
        let versions = [
            (pod_list(&[(0, 0), (1, 1), (2, 2)]), Read::Whole),
            (pod_list(&[(0, 0), (1, 1), (0, 0), (2, 2)]), Read::Walked),
            (pod_list(&[(1, 1), (0, 0), (2, 2)]), Read::Whole),
            (pod_list(&[(1, 1), (0, 0), (2, 3)]), Read::Walked),
        ];
        for (text, how) in versions {
            assert_eq!(step(&mut index, &mut state, &text), how, "{text}");
            assert_eq!(state, whole(parse(&text).unwrap()), "{text}");
        }
    }

    #[test]
    fn only_changed_items_are_parsed() {
        let mut index = None;
        let mut state = State::new();
        let items: Vec<(usize, usize)> = (0..100).map(|i| (i, i)).collect();
        assert_eq!(step(&mut index, &mut state, &pod_list(&items)), Read::Whole);
        let mut changed = items.clone();
        changed[50].1 = 200;
        changed.remove(7);
        let content = read_text(&pod_list(&changed), index.as_ref());
        assert!(matches!(content, Content::Items { gone: Some(_), .. }));
        match advance(&mut index, content) {
            Some(Version::Changes { delete, apply }) => {
                assert_eq!(delete, [PodKey::new("ns", "p7")]);
                assert_eq!(apply.len(), 1);
                assert_eq!(apply[0].name, "p50");
            }
            _ => panic!("expected the changes"),
        }
        state = whole(parse(&pod_list(&changed)).unwrap());
        // A YAML version is compared by its items too: with no text in common, every pod of the
        // JSON version goes and the YAML one comes, and back again.
        assert_eq!(step(&mut index, &mut state, POD_YAML), Read::Walked);
        assert_eq!(state, whole(parse(POD_YAML).unwrap()));
        for version in [&changed, &items] {
            let text = pod_list(version);
            assert_eq!(step(&mut index, &mut state, &text), Read::Walked);
            assert_eq!(state, whole(parse(&text).unwrap()));
        }
    }

    #[test]
    fn a_version_that_is_not_utf8_is_refused_whole_or_compared() {
        let not_text = |e: Result<Content, ParseError>| match e {
            Err(ParseError::Content {
                document: 0,
                message,
            }) => assert!(message.starts_with("not UTF-8 text"), "{message}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a file that is not UTF-8 was read"),
        };
        not_text(read_bytes(b"{\"items\": [\xff]}", None, CHUNK));
        // Compared with the last version, a changed item that is not UTF-8 is refused the same.
        let items: Vec<(usize, usize)> = (0..10).map(|i| (i, i)).collect();
        let mut index = None;
        step(&mut index, &mut State::new(), &pod_list(&items));
        let mut bytes = pod_list(&items).into_bytes();
        let at = bytes.windows(4).position(|w| w == b"\"p5\"").unwrap();
        bytes[at + 2] = 0xff;
        not_text(read_bytes(&bytes, index.as_ref(), CHUNK));
    }

    #[test]
    fn item_errors_name_their_place_in_the_file() {
        let text = "{\"kind\": \"PodList\", \"items\": [\n  {\"metadata\": {\"name\": \"a\"}},\n  {\"metadata\": {\"name\": 7}}\n]}";
        match parse(text) {
            Err(ParseError::Syntax {
                line,
                column,
                message,
            }) => {
                assert_eq!((line, column), (3, 25), "{message}");
                assert!(message.contains("invalid type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn yaml_documents_and_lists() {
        let text = format!(
            "{POD_YAML}---\napiVersion: v1\nkind: List\nitems:\n- metadata:\n    name: db-1\n    namespace: prod\n---\n"
        );
        let pods = parse(&text).unwrap();
        let names: Vec<_> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db-0", "db-1"]);
        assert_eq!(pods[0].label_service.as_deref(), Some("db"));
        assert_eq!(
            pods[0].ips,
            ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn json_list() {
        let text = r#"{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"7"},
            "items":[{"metadata":{"name":"a","namespace":"x"}}]}"#;
        let pods = parse(text).unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].namespace, "x");
    }

    #[test]
    fn a_pod_without_namespace_is_in_default() {
        let pods = parse("metadata:\n  name: a\n").unwrap();
        assert_eq!(pods[0].namespace, "default");
    }

    #[test]
    fn errors_carry_positions() {
        match parse("{\"kind\": \"PodList\", \"items\": [\n  {\"metadata\": }\n]}") {
            Err(ParseError::Syntax { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse("metadata:\n  name: a\n  labels: [unclosed\n") {
            Err(ParseError::Syntax { line, .. }) => assert!(line >= 3, "line {line}"),
            other => panic!("{other:?}"),
        }
        match parse(&format!(
            "{POD_YAML}---\nkind: Deployment\nmetadata:\n  name: x\n"
        )) {
            Err(ParseError::Content {
                document: 2,
                message,
            }) => {
                assert!(message.contains("Deployment"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match parse("kind: Pod\nmetadata:\n  namespace: a\n") {
            Err(ParseError::Content {
                document: 1,
                message,
            }) => {
                assert!(message.contains("metadata.name"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match parse("kind: List\nitems:\n- kind: Service\n  metadata:\n    name: x\n") {
            Err(ParseError::Syntax { line, message, .. }) => {
                assert!(
                    line >= 3 && message.contains("Service"),
                    "{line}: {message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
