//! A YAML pods file split into its items by lines, without parsing it, so that a new version is
//! parsed only where its text changed: at 100,000 pods, parsing 40 MB of YAML takes seconds,
//! hashing it milliseconds. The [`Splitter`] is fed the lines as the file is read, so that the
//! text is never held whole.
//!
//! Two layouts are split: a list as `kubectl get pods -o yaml` prints it (an `items:` key at the
//! start of a line, then one `- ` entry per item, all at one indentation), and a stream of
//! documents (`---` lines between them). Both are read by YAML's own rules for where a node
//! ends: a line less indented than an entry's content, or another entry at the entry's
//! indentation, ends it, and no scalar, comment or block may hold a line that looks like one
//! (block scalars and multi-line scalars are indented further; `---` at the start of a line is
//! always a document marker). What the split cannot vouch for is declined, and the version is
//! then parsed whole: anchors and aliases (an item could use another's), directives
//! and document end markers, tabs where indentation is read, a list written any other way.

use std::ops::Range;

/// How the items are written; each item parses alone as its form says.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Form {
    /// Entries of a list: each item is a YAML sequence of one Pod, and the head and tail
    /// together are the list without its items.
    List,
    /// Documents: each item is one document.
    Documents,
}

/// What a line told the [`Splitter`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing to act on yet.
    More,
    /// The text before the first item ends here: a list's keys up to `items:`, or comments
    /// before the first document. Given once, before any item.
    Head(Range<usize>),
    /// An item ended: a list's entry with its `- `, or a whole document.
    Item(Range<usize>),
    /// The text cannot be split: parse it whole.
    Decline,
}

/// The end of a split text: its last item unless a line after it was read, and the text after
/// it (a list's remaining keys; empty for documents).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct End {
    pub last: Option<Range<usize>>,
    pub tail: Range<usize>,
    pub form: Form,
}

/// Splits a text fed to it line by line, in order, each line with its line break and where it
/// starts. It decides between the two layouts at the first line that tells them apart: a line
/// starting with `items:` makes a list (or nothing), a document marker documents.
pub(super) struct Splitter {
    state: State,
}

enum State {
    /// No `items:` line yet: documents, or the head of a list while `list` holds (no line a
    /// list's head cannot have, such as a document marker, was seen).
    Documents { docs: Documents, list: bool },
    /// Before the `items:` key.
    ListHead,
    /// After `items:`, before the first entry, which starts the first item at `item`.
    FirstEntry { item: usize },
    /// Entries at `indent`; the one being read starts at `item`.
    Entries { indent: usize, item: usize },
    /// After the last entry, from `end`.
    Tail { end: usize },
}

/// Documents read so far.
struct Documents {
    /// Where the document being read starts.
    item: usize,
    /// Whether it holds anything yet.
    content: bool,
    /// Whether a document marker was met: the head ends at the first, and an empty document
    /// after one is declined.
    head: bool,
}

impl Splitter {
    pub fn new() -> Self {
        Splitter {
            state: State::Documents {
                docs: Documents {
                    item: 0,
                    content: false,
                    head: false,
                },
                list: true,
            },
        }
    }

    /// The first place in the text still needed: the item being read, or the head or tail
    /// until they are given.
    pub fn keep(&self) -> usize {
        match &self.state {
            State::Documents { docs, .. } => docs.item,
            State::ListHead => 0,
            State::FirstEntry { item } | State::Entries { item, .. } => *item,
            State::Tail { end } => *end,
        }
    }

    /// How many spaces a line may start with and still be of no interest (deeper in an entry,
    /// or inside a document that has content, once the text cannot be a list); `None` where
    /// every line matters.
    pub fn deep(&self) -> Option<usize> {
        match &self.state {
            State::Entries { indent, .. } => Some(indent + 1),
            State::Documents { docs, list: false } if docs.content => Some(1),
            _ => None,
        }
    }

    /// The form of the items given so far (each is given once the form is known).
    pub fn form(&self) -> Form {
        match self.state {
            State::Documents { .. } => Form::Documents,
            _ => Form::List,
        }
    }

    /// Reads the line at `at`.
    pub fn line(&mut self, at: usize, line: &[u8]) -> Step {
        match &mut self.state {
            State::Entries { indent, item } => {
                // Most lines are deeper in an item: only lines as shallow as the entries need a
                // look.
                let indent = *indent;
                if is_deep(line, indent + 1) {
                    return Step::More;
                }
                if not_in_list(line) {
                    return Step::Decline;
                }
                if is_blank(line) {
                    return Step::More;
                }
                let Some(i) = indentation(line) else {
                    return Step::Decline;
                };
                if i > indent {
                    return Step::More;
                }
                if i == indent && entry(&line[i..]) {
                    let ended = *item..at;
                    *item = at;
                    return Step::Item(ended);
                }
                let last = *item..at;
                self.state = State::Tail { end: at };
                // The line is the tail's first.
                match self.line(at, line) {
                    Step::More => Step::Item(last),
                    other => other,
                }
            }
            State::Documents { docs, list } => {
                if line.starts_with(b"items:") {
                    // A list, or nothing.
                    if !*list {
                        return Step::Decline;
                    }
                    self.state = State::ListHead;
                    return self.line(at, line);
                }
                *list = *list && !not_in_list(line);
                docs.line(at, line)
            }
            State::ListHead => {
                if not_in_list(line) {
                    return Step::Decline;
                }
                if items_key(line) {
                    let start = at + line.len();
                    self.state = State::FirstEntry { item: start };
                    return Step::Head(0..start);
                }
                Step::More
            }
            State::FirstEntry { item } => {
                if not_in_list(line) {
                    return Step::Decline;
                }
                if is_blank(line) {
                    return Step::More;
                }
                let Some(indent) = indentation(line).filter(|&i| entry(&line[i..])) else {
                    return Step::Decline;
                };
                self.state = State::Entries {
                    indent,
                    item: *item,
                };
                Step::More
            }
            State::Tail { .. } => {
                // A second `items:` key would be the list's, whatever the first held.
                if not_in_list(line) || items_key(line) {
                    Step::Decline
                } else {
                    Step::More
                }
            }
        }
    }

    /// Ends the text at `len`: its last item and its tail, or `None` when it does not split.
    /// A head not given yet is empty.
    pub fn finish(self, len: usize) -> Option<End> {
        match self.state {
            State::Entries { item, .. } => Some(End {
                last: Some(item..len),
                tail: len..len,
                form: Form::List,
            }),
            State::Tail { end } => Some(End {
                last: None,
                tail: end..len,
                form: Form::List,
            }),
            State::Documents { docs, .. } => docs.content.then_some(End {
                last: Some(docs.item..len),
                tail: len..len,
                form: Form::Documents,
            }),
            State::ListHead | State::FirstEntry { .. } => None,
        }
    }
}

impl Documents {
    /// A stream of documents, each from its `---` line (the first may have none) to the next.
    fn line(&mut self, at: usize, line: &[u8]) -> Step {
        // Only a line's start can make it a marker, a directive or an end marker.
        if !line.starts_with(b"-") && !line.starts_with(b".") && !line.starts_with(b"%") {
            self.content = self.content || !is_blank(line);
            return Step::More;
        }
        if forbidden(line) {
            return Step::Decline;
        }
        if !document_marker(line) {
            self.content = self.content || !is_blank(line);
            return Step::More;
        }
        let step = if self.content {
            Step::Item(self.item..at)
        } else if !self.head {
            Step::Head(0..at)
        } else {
            // An empty document: what it means is the parser's to say.
            return Step::Decline;
        };
        self.head = true;
        self.item = at;
        // Content may follow the marker on its line ("--- {…}").
        self.content = !is_blank(&line[3..]);
        step
    }
}

/// `items:` at the start of a line, with nothing after it but space or a comment.
fn items_key(line: &[u8]) -> bool {
    line.strip_prefix(b"items:").is_some_and(is_blank)
}

/// A line this split cannot place, or a document marker, which a list cannot hold.
fn not_in_list(line: &[u8]) -> bool {
    forbidden(line) || document_marker(line)
}

/// A line YAML reads apart from the nodes around it, or that this split cannot place: a
/// directive, a document end marker, a tab among the indentation.
fn forbidden(line: &[u8]) -> bool {
    line.starts_with(b"%")
        || line.strip_prefix(b"...").is_some_and(is_blank)
        || line[line.iter().take_while(|&&c| c == b' ').count()..].starts_with(b"\t")
}

/// `---` at the start of a line, alone or followed by a space.
fn document_marker(line: &[u8]) -> bool {
    line.strip_prefix(b"---")
        .is_some_and(|rest| rest.is_empty() || matches!(rest[0], b' ' | b'\t' | b'\r' | b'\n'))
}

/// A list entry: `-` followed by a space or the end of the line.
fn entry(rest: &[u8]) -> bool {
    rest.strip_prefix(b"-")
        .is_some_and(|rest| rest.is_empty() || matches!(rest[0], b' ' | b'\r' | b'\n'))
}

/// Nothing, space or a comment.
fn is_blank(line: &[u8]) -> bool {
    let at = line
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
    at.is_none_or(|at| line[at] == b'#')
}

/// The spaces a content line starts with; `None` when a tab is among them.
fn indentation(line: &[u8]) -> Option<usize> {
    let spaces = line.iter().take_while(|&&c| c == b' ').count();
    (!line[spaces..].starts_with(b"\t")).then_some(spaces)
}

/// Whether an anchor (`&a`) or an alias (`*a`) may be in `text`, which starts a line: an `&` or
/// `*` where a node may start. Declined whole, so that no item is read apart from a node it
/// names; an `&` or a `*` inside a scalar (a URL's query, a glob) is harmless but cannot be
/// told from one without parsing, so a few files are parsed whole that need not be.
pub(super) fn may_refer(text: &[u8]) -> bool {
    memchr::memchr2_iter(b'&', b'*', text).any(|i| {
        i == 0
            || matches!(
                text[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'-' | b'[' | b'{' | b',' | b':' | b'?'
            )
    })
}

/// Whether the line at the start of `text` begins with `n` spaces: deep, where the splitter's
/// [`Splitter::deep`] is `n`.
pub(super) fn is_deep(text: &[u8], n: usize) -> bool {
    text.get(..n).is_some_and(|b| b.iter().all(|&c| c == b' '))
}

/// How far the lines from the start of `bytes` (a line start) are deep (see
/// [`Splitter::deep`]), each starting with `n` spaces, by 64 bytes at a time rather than line by
/// line: at 100,000 pods nearly every line of a kubectl list is deep, and finding each line's
/// end apart took half of a version's time. Returns where the first line starts that is not
/// deep, or, when none is found, where a deep line starts near the end of `bytes`, from which
/// lines are read one by one (every line before the returned place is deep and complete). `n`
/// is at most 64.
pub(super) fn skip_deep(bytes: &[u8], n: usize) -> usize {
    if n == 0 || n > BLOCK || bytes.len() < 2 * BLOCK {
        return 0;
    }
    let first = &bytes[..BLOCK];
    let (mut breaks, mut spaces) = (block_mask(first, b'\n'), block_mask(first, b' '));
    // Whether the block's first byte starts a line: the first does.
    let mut carry = 1;
    let mut last_start = 0;
    let mut at = 0;
    while at + 2 * BLOCK <= bytes.len() {
        let next = &bytes[at + BLOCK..at + 2 * BLOCK];
        let (next_breaks, next_spaces) = (block_mask(next, b'\n'), block_mask(next, b' '));
        let starts = (breaks << 1) | carry;
        // Bit i: the n bytes from i are spaces (the next block holds those past this one).
        let wide = (u128::from(next_spaces) << BLOCK) | u128::from(spaces);
        let deep = (1..n).fold(wide, |d, k| d & (wide >> k)) as u64;
        let shallow = starts & !deep;
        if shallow != 0 {
            return at + shallow.trailing_zeros() as usize;
        }
        if starts != 0 {
            last_start = at + (BLOCK - 1 - starts.leading_zeros() as usize);
        }
        carry = breaks >> (BLOCK - 1);
        (breaks, spaces) = (next_breaks, next_spaces);
        at += BLOCK;
    }
    last_start
}

/// The bytes [`skip_deep`] looks at together.
const BLOCK: usize = 64;

/// Bit i: whether byte i of the block is `c`; sixteen bytes at a time with SSE2, which every
/// x86-64 processor has (a byte-wise loop is not vectorized well).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_mask(block: &[u8], c: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    assert!(block.len() == BLOCK);
    let mut m = 0;
    // SAFETY: SSE2 is part of x86-64 itself, so the instructions exist wherever this runs; the
    // 16 bytes loaded from 16 * k lie in `block` (asserted above), and an unaligned load may
    // read them from any address.
    unsafe {
        let needle = _mm_set1_epi8(c as i8);
        for k in 0..BLOCK / 16 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
            let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) as u16;
            m |= u64::from(bits) << (16 * k);
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn block_mask(block: &[u8], c: u8) -> u64 {
    word_mask(block, c)
}

/// [`block_mask`] eight bytes at a time in a word, on other processors.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn word_mask(block: &[u8], c: u8) -> u64 {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = u64::from(c) * 0x0101_0101_0101_0101;
    let mut m = 0;
    for (k, word) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ pattern;
        // The high bit of each byte that is zero (equal to `c`), exactly: no carries.
        let zero = !(((x & LOW) + LOW) | x | LOW);
        // The eight high bits gathered into the top byte, in the bytes' order.
        m |= (zero.wrapping_mul(0x0002_0408_1020_4081) >> 56) << (8 * k);
    }
    m
}

/// A text cut into the items each parsed alone, and the text around them.
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split<'a> {
    pub head: &'a str,
    pub items: Vec<&'a str>,
    pub tail: &'a str,
    pub form: Form,
}

/// Splits a whole `text`, or says why not by returning `None`.
#[cfg(test)]
pub(super) fn split(text: &str) -> Option<Split<'_>> {
    if may_refer(text.as_bytes()) {
        return None;
    }
    let mut splitter = Splitter::new();
    let mut head = 0..0;
    let mut items = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        match splitter.line(at, line.as_bytes()) {
            Step::More => {}
            Step::Head(r) => head = r,
            Step::Item(r) => items.push(&text[r]),
            Step::Decline => return None,
        }
        at += line.len();
    }
    let end = splitter.finish(text.len())?;
    items.extend(end.last.map(|r| &text[r]));
    Some(Split {
        head: &text[head],
        items,
        tail: &text[end.tail],
        form: end.form,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_masks_mark_the_bytes_asked_for() {
        let mut next = crate::test_rng(0x51a3_e27c_0b9d_4f68u64);
        for _ in 0..20_000 {
            let block: Vec<u8> = (0..BLOCK)
                .map(|_| b" \n-a\x80\xff\x0a\x00"[next(8)])
                .collect();
            let c = b" \n\x80\x00"[next(4)];
            let want = (0..BLOCK).fold(0u64, |m, i| m | (u64::from(block[i] == c) << i));
            assert_eq!(block_mask(&block, c), want, "{block:?} {c}");
            assert_eq!(word_mask(&block, c), want, "{block:?} {c}");
        }
    }

    /// Lines skipped 64 bytes at a time are the deep lines a line-by-line reading skips: every
    /// line before the place returned is deep, and the line there is the first that is not
    /// unless it is near the end.
    #[test]
    fn deep_lines_are_skipped_as_line_by_line() {
        let mut next = crate::test_rng(0x8c3f_1b2d_a5e7_0913u64);
        for round in 0..4000 {
            let n = 1 + next(if round % 2 == 0 { 4 } else { 64 });
            let mut text = Vec::new();
            while text.len() < 64 + next(600) {
                // Mostly deep lines; some as shallow as the entries, blank, or one space short.
                let indent = match next(10) {
                    0 => 0,
                    1 => n.saturating_sub(1),
                    2 => next(n + 2),
                    _ => n + next(6),
                };
                text.extend(std::iter::repeat_n(b' ', indent));
                for _ in 0..next(90) {
                    text.push(b"ab: -#\t"[next(7)]);
                }
                text.push(b'\n');
            }
            let deep_at = |at: usize| is_deep(&text[at..], n);
            let starts: Vec<usize> = std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', &text).map(|i| i + 1))
                .filter(|&at| at < text.len())
                .collect();
            let first_shallow = starts.iter().copied().find(|&at| !deep_at(at));
            let got = skip_deep(&text, n);
            assert!(starts.contains(&got), "round {round}: {got} starts no line");
            for &at in starts.iter().take_while(|&&at| at < got) {
                assert!(
                    deep_at(at),
                    "round {round}: skipped the line at {at}, which is not deep"
                );
            }
            if let Some(first) = first_shallow
                && first + 128 <= text.len()
            {
                assert_eq!(
                    got, first,
                    "round {round}, n {n}: stopped short of the first shallow line"
                );
            }
        }
    }

    const KUBECTL: &str = "apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: a
  spec:
    containers:
    - name: c
      command:
      - |
        echo one
        echo two
- apiVersion: v1
  kind: Pod
  metadata:
    name: b
kind: List
metadata:
  resourceVersion: \"\"
";

    #[test]
    fn kubectl_lists_split_into_their_entries() {
        let split = split(KUBECTL).unwrap();
        assert_eq!(split.form, Form::List);
        assert_eq!(split.head, "apiVersion: v1\nitems:\n");
        assert_eq!(split.items.len(), 2);
        assert!(split.items[0].starts_with("- apiVersion: v1\n  kind: Pod\n"));
        assert!(split.items[0].ends_with("        echo two\n"));
        assert!(split.items[1].starts_with("- apiVersion"));
        assert!(split.items[1].ends_with("    name: b\n"));
        assert_eq!(
            split.tail,
            "kind: List\nmetadata:\n  resourceVersion: \"\"\n"
        );
        let joined: String = [split.head]
            .into_iter()
            .chain(split.items.iter().copied())
            .chain([split.tail])
            .collect();
        assert_eq!(joined, KUBECTL);
    }

    #[test]
    fn indented_entries_comments_and_blank_lines_stay_with_their_item() {
        let text = "# pods\nkind: PodList\nitems:\n\n  - metadata:\n      name: a\n\n# between\n  - metadata:\n      name: b\n";
        let split = split(text).unwrap();
        assert_eq!(split.head, "# pods\nkind: PodList\nitems:\n");
        assert_eq!(
            split.items,
            [
                "\n  - metadata:\n      name: a\n\n# between\n",
                "  - metadata:\n      name: b\n"
            ]
        );
        assert_eq!(split.tail, "");
    }

    #[test]
    fn documents_split_at_their_markers() {
        let text = "# example pods\n---\napiVersion: v1\nkind: Pod\n---\nkind: Pod\n# last\n";
        let documents = split(text).unwrap();
        assert_eq!(documents.form, Form::Documents);
        assert_eq!(documents.head, "# example pods\n");
        assert_eq!(
            documents.items,
            [
                "---\napiVersion: v1\nkind: Pod\n",
                "---\nkind: Pod\n# last\n"
            ]
        );
        let lone = "kind: Pod\nmetadata:\n  name: a\n";
        assert_eq!(split(lone).unwrap().items, [lone]);
        let unmarked = "kind: Pod\n---\nkind: Pod\n";
        assert_eq!(
            split(unmarked).unwrap().items,
            ["kind: Pod\n", "---\nkind: Pod\n"]
        );
    }

    #[test]
    fn what_the_lines_cannot_vouch_for_is_parsed_whole() {
        for text in [
            // Anchors and aliases.
            "items:\n- &a {metadata: {name: a}}\n- *a\n",
            "items:\n- metadata:\n    labels: &l {x: y}\n- metadata:\n    labels: *l\n",
            // Directives, end markers, empty documents.
            "%YAML 1.2\n---\nkind: Pod\n",
            "kind: Pod\n...\n---\nkind: Pod\n",
            "---\n---\nkind: Pod\n",
            // Flow style, no entries, a second items key, tabs.
            "items: [{metadata: {name: a}}]\n",
            "kind: List\nitems:\nmetadata: {}\n",
            "items:\n- kind: Pod\nitems:\n- kind: Pod\n",
            "items:\n\t- kind: Pod\n",
            // Nothing at all.
            "",
            "# only a comment\n",
        ] {
            assert_eq!(split(text), None, "{text:?}");
        }
        // An ampersand or a star inside a scalar is only declined where a node could start.
        assert!(split("items:\n- metadata:\n    annotations: {url: \"a?b=1&c=2\"}\n").is_some());
    }
}
