//! A YAML pods file split into its items by lines, without parsing it, so that a new version is
//! parsed only where its text changed: at 100,000 pods, parsing 40 MB of YAML takes seconds,
//! hashing it milliseconds.
//!
//! Two layouts are split: a list as `kubectl get pods -o yaml` prints it (an `items:` key at the
//! start of a line, then one `- ` entry per item, all at one indentation), and a stream of
//! documents (`---` lines between them). Both are read by YAML's own rules for where a node
//! ends: a line less indented than an entry's content, or another entry at the entry's
//! indentation, ends it, and no scalar, comment or block may hold a line that looks like one
//! (block scalars and multi-line scalars are indented further; `---` at the start of a line is
//! always a document marker). What the split cannot vouch for is declined (`None`), and the
//! version is then parsed whole: anchors and aliases (an item could use another's), directives
//! and document end markers, tabs where indentation is read, a list written any other way.

/// A YAML pods file's text cut into the items each parsed alone, and the text around them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split<'a> {
    /// The text before the first item (a list's keys up to `items:`, or comments before the
    /// first document).
    pub head: &'a str,
    /// Each item's text: a list's entry with its `- `, or a whole document.
    pub items: Vec<&'a str>,
    /// The text after the last item: the list's remaining keys (empty for documents).
    pub tail: &'a str,
    pub form: Form,
}

/// How the items are written; each item parses alone as its form says.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Form {
    /// Entries of a list: each item is a YAML sequence of one Pod, and the head and tail
    /// together are the list without its items.
    List,
    /// Documents: each item is one document.
    Documents,
}

/// Splits `text`, or says why not by returning `None`. A text with an `items:` key at the start
/// of a line is a list or nothing; any other is documents.
pub(super) fn split(text: &str) -> Option<Split<'_>> {
    if may_refer(text) {
        return None;
    }
    if text.starts_with("items:") || memchr::memmem::find(text.as_bytes(), b"\nitems:").is_some() {
        list(text)
    } else {
        documents(text)
    }
}

/// `items:` at the start of a line, with nothing after it but space or a comment.
fn items_key(line: &str) -> bool {
    line.strip_prefix("items:").is_some_and(is_blank)
}

/// A line this split cannot place, or a document marker, which a list cannot hold.
fn not_in_list(line: &str) -> bool {
    forbidden(line) || document_marker(line)
}

/// A list: top-level keys, `items:` with its entries, more keys. The comments and blank lines
/// between `items:` and the first entry are the first item's, as those between entries are
/// the entry's before them.
fn list(text: &str) -> Option<Split<'_>> {
    let mut lines = Lines::new(text);
    let start = loop {
        let (at, line) = lines.next()?;
        if not_in_list(line) {
            return None;
        }
        if items_key(line) {
            break at + line.len();
        }
    };
    // The entries' indentation is the first entry's.
    let indent = loop {
        let (_, line) = lines.next()?;
        if not_in_list(line) {
            return None;
        }
        if is_blank(line) {
            continue;
        }
        let indent = indentation(line)?;
        if !entry(&line[indent..]) {
            return None;
        }
        break indent;
    };
    let mut items = Vec::new();
    let mut item = start;
    let mut end = text.len();
    for (at, line) in lines {
        // Most lines are deeper in an item: only lines as shallow as the entries need a look.
        if line
            .as_bytes()
            .get(..=indent)
            .is_some_and(|b| b.iter().all(|&c| c == b' '))
        {
            continue;
        }
        if not_in_list(line) {
            return None;
        }
        if is_blank(line) {
            continue;
        }
        let i = indentation(line)?;
        if i > indent {
            continue;
        }
        if i == indent && entry(&line[i..]) {
            items.push(&text[item..at]);
            item = at;
            continue;
        }
        end = at;
        break;
    }
    items.push(&text[item..end]);
    // A second `items:` key would be the list's, whatever the first held.
    if Lines::new(&text[end..]).any(|(_, line)| not_in_list(line) || items_key(line)) {
        return None;
    }
    Some(Split {
        head: &text[..start],
        items,
        tail: &text[end..],
        form: Form::List,
    })
}

/// A stream of documents, each from its `---` line (the first may have none) to the next.
fn documents(text: &str) -> Option<Split<'_>> {
    let mut items = Vec::new();
    // Where the document being read starts, and whether it holds anything yet.
    let mut item = 0;
    let mut content = false;
    let mut head = None;
    for (at, line) in Lines::new(text) {
        // Only a line's start can make it a marker, a directive or an end marker.
        if !line.starts_with(['-', '.', '%']) {
            content = content || !is_blank(line);
            continue;
        }
        if forbidden(line) {
            return None;
        }
        if document_marker(line) {
            if content {
                items.push(&text[item..at]);
            } else if head.is_none() && items.is_empty() {
                head = Some(at);
            } else {
                // An empty document: what it means is the parser's to say.
                return None;
            }
            item = at;
            // Content may follow the marker on its line ("--- {…}").
            content = !is_blank(&line[3..]);
            continue;
        }
        content = content || !is_blank(line);
    }
    if !content {
        return None;
    }
    items.push(&text[item..]);
    let head = head.unwrap_or(0);
    Some(Split {
        head: &text[..head],
        items,
        tail: "",
        form: Form::Documents,
    })
}

/// A line YAML reads apart from the nodes around it, or that this split cannot place: a
/// directive, a document end marker, a tab among the indentation.
fn forbidden(line: &str) -> bool {
    line.starts_with('%')
        || line.starts_with("...") && is_blank(&line[3..])
        || line.trim_start_matches(' ').starts_with('\t')
}

/// `---` at the start of a line, alone or followed by a space.
fn document_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// A list entry: `-` followed by a space or the end of the line.
fn entry(rest: &str) -> bool {
    rest.strip_prefix('-')
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\r', '\n']))
}

/// Nothing, space or a comment.
fn is_blank(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t', '\r', '\n']);
    rest.is_empty() || rest.starts_with('#')
}

/// The spaces a content line starts with; `None` when a tab is among them.
fn indentation(line: &str) -> Option<usize> {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    (!line[spaces..].starts_with('\t')).then_some(spaces)
}

/// Whether an anchor (`&a`) or an alias (`*a`) may be in the text: an `&` or `*` where a node
/// may start. Declined whole, so that no item is read apart from a node it names; an `&` or a
/// `*` inside a scalar (a URL's query, a glob) is harmless but cannot be told from one without
/// parsing, so a few files are parsed whole that need not be.
fn may_refer(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'&', b'*', bytes).any(|i| {
        i == 0
            || matches!(
                bytes[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'-' | b'[' | b'{' | b',' | b':' | b'?'
            )
    })
}

/// The lines of a text with where each starts, each with its line break.
struct Lines<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines { text, at: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.text[self.at..];
        if rest.is_empty() {
            return None;
        }
        let len = memchr::memchr(b'\n', rest.as_bytes()).map_or(rest.len(), |i| i + 1);
        let at = self.at;
        self.at += len;
        Some((at, &rest[..len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
