//! YAML written as `kubectl get -o yaml` writes it, rewritten as JSON so that serde_json reads it:
//! the general YAML parser takes 27 µs for a small pod (2.3 s for 100,000, most of a YAML file's
//! start-up), the rewrite and serde_json a tenth of that.
//!
//! Only block YAML is rewritten: mappings and sequences by indentation; plain, single- and
//! double-quoted scalars, on one line or folded over several as kubectl folds long strings at 80
//! columns; `{}` and `[]`; literal block scalars with any header kubectl writes (`|`, `|-`,
//! `|2`, `|2+`…); comments; lines ending in LF or CR LF. Anything else is declined (`None`)
//! and the text goes to the YAML parser, which is also the one to report errors: anchors,
//! aliases, tags, flow collections, folded (`>`) blocks, keys over several lines, escapes JSON
//! does not share, duplicate keys, keys that are not plainly strings, tabs, a carriage return
//! but before a line feed, characters YAML does not allow in a document, and folded lines that
//! start or hold what could be read as YAML's syntax.
//!
//! Scalars are typed as they must be for the rewrite to mean what the YAML parser gives: a plain
//! `null`, `Null`, `NULL`, `~` or nothing is null, plain `true` and `false` are booleans, a plain
//! decimal integer is a number, and every other scalar is a string. The YAML parser reads other
//! plain scalars for a string field as their text, as here; where it would read one as
//! something else (`yes` for a boolean, `0x1F` for a number), serde_json finds a string where it
//! wants another type and fails, and the text goes to the YAML parser after all. In a field
//! roster does not read, which serde_json skips, the YAML parser accepts any scalar too (its
//! refusal of `.inf` there is turned off, see `yaml_options`). So whatever serde_json reads from
//! the rewrite is what the YAML parser reads from the text.

use super::yaml::Form;

/// The items of `text` (the entries of one block sequence, or documents) as a JSON array, or
/// `None` where the text is not written as this module reads it.
pub(super) fn to_json(text: &str, form: Form) -> Option<String> {
    if !plain_text(text.as_bytes()) {
        return None;
    }
    let mut r = Rewrite {
        s: text.as_bytes(),
        pos: 0,
        out: String::with_capacity(text.len() + text.len() / 4),
        keys: Vec::new(),
        depth: 0,
    };
    match form {
        Form::List => {
            let line = r.significant()?;
            if !line.is_entry(r.s) {
                return None;
            }
            r.sequence(line.indent)?;
            if r.significant().is_some() {
                return None;
            }
        }
        Form::Documents => {
            r.out.push('[');
            r.documents()?;
            r.out.push(']');
        }
    }
    Some(r.out)
}

/// Whether `s` holds only what this module rewrites: no tab or other control character but the
/// line feed and a carriage return before one, no DEL, C1 control, byte order mark, U+2028, U+2029, U+FFFE or
/// U+FFFF (which YAML refuses, or reads as a line break, and JSON takes as any character).
fn plain_text(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        match b {
            b'\n' | 0x20..=0x7e => {}
            b'\r' if s.get(i + 1) == Some(&b'\n') => {}
            0xc2 => {
                if s.get(i + 1).is_some_and(|c| (0x80..=0x9f).contains(c)) {
                    return false;
                }
            }
            0xe2 => {
                if s.get(i + 1) == Some(&0x80) && matches!(s.get(i + 2), Some(0xa8 | 0xa9)) {
                    return false;
                }
            }
            0xef => match (s.get(i + 1), s.get(i + 2)) {
                (Some(0xbb), Some(0xbf)) | (Some(0xbf), Some(0xbe | 0xbf)) => return false,
                _ => {}
            },
            0x80..=0xff => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// One line: where it starts, its indentation, where its content starts, where it ends (before
/// its line break, LF or CR LF) and where the next starts.
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    indent: usize,
    content: usize,
    end: usize,
    next: usize,
}

impl Line {
    /// Whether the line holds a sequence entry: `-` then a space or nothing.
    fn is_entry(&self, s: &[u8]) -> bool {
        s[self.content] == b'-' && (self.content + 1 == self.end || s[self.content + 1] == b' ')
    }

    /// Whether the line is a document marker (`---` or `...` at its start).
    fn is_marker(&self, s: &[u8]) -> bool {
        self.indent == 0
            && (s[self.start..].starts_with(b"---") || s[self.start..].starts_with(b"..."))
            && (self.start + 3 == self.end || s[self.start + 3] == b' ')
    }
}

/// Nesting deeper than this is declined (a pod's is under 15).
const DEPTH: usize = 64;

/// Longest key YAML reads without `?` (its limit for implicit keys).
const KEY: usize = 1024;

struct Rewrite<'a> {
    s: &'a [u8],
    /// The start of the line the rewrite is at.
    pos: usize,
    out: String,
    /// The keys written of the mappings being written, as ranges of `out`.
    keys: Vec<(usize, usize)>,
    depth: usize,
}

impl Rewrite<'_> {
    fn line(&self, start: usize) -> Line {
        let s = self.s;
        let (end, next) = match memchr(b'\n', &s[start..]) {
            Some(n) if n > 0 && s[start + n - 1] == b'\r' => (start + n - 1, start + n + 1),
            Some(n) => (start + n, start + n + 1),
            None => (s.len(), s.len()),
        };
        let content = s[start..end]
            .iter()
            .position(|&c| c != b' ')
            .map_or(end, |n| start + n);
        Line {
            start,
            indent: content - start,
            content,
            end,
            next,
        }
    }

    fn after(&self, line: Line) -> usize {
        line.next
    }

    /// The next line from `pos` that holds more than space or a comment, with `pos` moved to
    /// its start; `None` (and `pos` at the end) when none is left.
    fn significant(&mut self) -> Option<Line> {
        while self.pos < self.s.len() {
            let line = self.line(self.pos);
            if line.content < line.end && self.s[line.content] != b'#' {
                return Some(line);
            }
            self.pos = self.after(line);
        }
        None
    }

    fn documents(&mut self) -> Option<()> {
        let mut first = true;
        let mut marked = false;
        loop {
            let Some(line) = self.significant() else {
                // Text after a last marker is a document, even when it is empty.
                return (!marked && !first).then_some(());
            };
            if line.is_marker(self.s) {
                // Only `---` alone (a comment may follow) opens a document here.
                let rest = &self.s[line.start + 3..line.end];
                if self.s[line.start] != b'-' || marked || !is_blank_or_comment(rest) {
                    return None;
                }
                marked = true;
                self.pos = self.after(line);
                continue;
            }
            if !first && !marked {
                return None;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            marked = false;
            self.node(line)?;
        }
    }

    /// The node whose first line is `line` (a mapping or a sequence).
    fn node(&mut self, line: Line) -> Option<()> {
        if line.is_entry(self.s) {
            self.sequence(line.indent)
        } else {
            self.mapping(line.indent, line.content)
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= DEPTH).then_some(())
    }

    /// A block sequence at `indent`, `pos` at its first entry's line.
    fn sequence(&mut self, indent: usize) -> Option<()> {
        self.enter()?;
        self.out.push('[');
        let mut line = self.line(self.pos);
        loop {
            let mut at = line.content + 1;
            while at < line.end && self.s[at] == b' ' {
                at += 1;
            }
            if at == line.end || self.s[at] == b'#' {
                self.pos = self.after(line);
                match self.significant() {
                    Some(next) if next.indent > indent && !next.is_marker(self.s) => {
                        self.node(next)?
                    }
                    _ => self.out.push_str("null"),
                }
            } else if self.s[at] == b'-' && (at + 1 == line.end || self.s[at + 1] == b' ') {
                return None; // `- - x`: a sequence in an entry's line
            } else if self.is_key(at, line.end) {
                self.mapping(at - line.start, at)?;
            } else {
                self.value(indent, line, at)?;
            }
            match self.significant() {
                Some(next) if next.indent == indent && next.is_entry(self.s) => {
                    self.out.push(',');
                    line = next;
                }
                Some(next) if next.indent > indent && !next.is_marker(self.s) => return None,
                _ => break,
            }
        }
        self.out.push(']');
        self.depth -= 1;
        Some(())
    }

    /// A block mapping at `indent`, its first key at `at` on the line at `pos`.
    fn mapping(&mut self, indent: usize, mut at: usize) -> Option<()> {
        self.enter()?;
        self.out.push('{');
        let keys = self.keys.len();
        let mut line = self.line(self.pos);
        loop {
            let colon = self.key(at, line.end, keys)?;
            let value = colon + 1;
            let mut v = value;
            while v < line.end && self.s[v] == b' ' {
                v += 1;
            }
            if v == line.end || (self.s[v] == b'#' && v > value) {
                // The value is on the lines below: more indented, or a sequence at the key's
                // indentation; else null.
                self.pos = self.after(line);
                match self.significant() {
                    Some(next) if next.is_marker(self.s) => self.out.push_str("null"),
                    Some(next) if next.indent > indent => self.node(next)?,
                    Some(next) if next.indent == indent && next.is_entry(self.s) => {
                        self.sequence(indent)?
                    }
                    _ => self.out.push_str("null"),
                }
            } else {
                self.value(indent, line, v)?;
            }
            match self.significant() {
                Some(next) if next.is_marker(self.s) => break,
                Some(next) if next.indent == indent => {
                    self.out.push(',');
                    line = next;
                    at = next.content;
                }
                Some(next) if next.indent > indent => return None,
                _ => break,
            }
        }
        self.keys.truncate(keys);
        self.out.push('}');
        self.depth -= 1;
        Some(())
    }

    /// Whether a key (a scalar then `:` and a space or the line's end) starts at `at`.
    fn is_key(&self, at: usize, end: usize) -> bool {
        let s = self.s;
        // A quoted scalar that does not close on its line goes on over the next: not a key.
        let after = match s[at] {
            b'"' => match double_end(s, at, end) {
                Some(after) => after,
                None => return false,
            },
            b'\'' => match single_end(s, at, end) {
                Some(after) => after,
                None => return false,
            },
            _ => {
                let (_, stop) = plain_end(s, at, end);
                return stop < end && s[stop] == b':';
            }
        };
        after < end && s[after] == b':' && (after + 1 == end || s[after + 1] == b' ')
    }

    /// Writes the key at `at` and its `:`; returns where the `:` is. A key must be a string as
    /// both readers see it, and new in its mapping, whose keys start at `keys[from]`.
    fn key(&mut self, at: usize, end: usize, from: usize) -> Option<usize> {
        let s = self.s;
        let start = self.out.len();
        let colon = match s[at] {
            b'"' => {
                let close = double_end(s, at, end)? - 1;
                let raw = &s[at + 1..close];
                if raw.contains(&b'\\') {
                    return None;
                }
                self.string(raw);
                close + 1
            }
            b'\'' => {
                let close = single_end(s, at, end)? - 1;
                self.single(&s[at + 1..close]);
                close + 1
            }
            _ => {
                if !plain_first(s, at, end) {
                    return None;
                }
                let (text, stop) = plain_end(s, at, end);
                // `a : b` is a key too, but not as kubectl writes one.
                if text != stop || special_key(&s[at..text]) {
                    return None;
                }
                self.string(&s[at..text]);
                stop
            }
        };
        if colon >= end || s[colon] != b':' || !(colon + 1 == end || s[colon + 1] == b' ') {
            return None;
        }
        let key = (start, self.out.len());
        let written = self.out.as_bytes();
        if key.1 - key.0 > KEY + 2
            || self.keys[from..]
                .iter()
                .any(|&(a, b)| written[a..b] == written[key.0..key.1])
        {
            return None;
        }
        self.keys.push(key);
        self.out.push(':');
        Some(colon)
    }

    /// Writes the scalar at `at` on `line`, the value of a key or entry at `indent`, and moves
    /// `pos` past it. A quoted or plain scalar may go on over lines indented more than `indent`
    /// (kubectl folds long strings at 80 columns); nothing may follow it on its last line but a
    /// comment.
    fn value(&mut self, indent: usize, line: Line, at: usize) -> Option<()> {
        let s = self.s;
        let end = line.end;
        let rest = &s[at..end];
        if rest.starts_with(b"|") {
            let (width, chomp) = block_header(&rest[1..])?;
            self.pos = self.after(line);
            return self.literal(indent, width.map(|w| indent + w), chomp);
        }
        let (last, after) = if rest.starts_with(b"{}") || rest.starts_with(b"[]") {
            self.out.push_str(if rest[0] == b'{' { "{}" } else { "[]" });
            (line, at + 2)
        } else if matches!(s[at], b'"' | b'\'') {
            self.quoted(indent, line, at)?
        } else {
            let (text, stop) = plain_end(s, at, end);
            if !plain_first(s, at, end) || stop < end && s[stop] == b':' {
                return None;
            }
            if s[text..end].contains(&b'#') {
                // A comment ends the scalar: no line may go on with it.
                self.plain(&s[at..text]);
                (line, stop)
            } else {
                self.plain_lines(indent, line, at, text)?
            }
        };
        if !is_blank_or_comment(&s[after..last.end]) {
            return None;
        }
        self.pos = self.after(last);
        match self.significant() {
            Some(next) if next.indent > indent && !next.is_marker(s) => None,
            _ => Some(()),
        }
    }

    /// The next line after `line` that is not empty, and how many empty lines came between;
    /// `None` at the end of the text.
    fn next_filled(&self, line: Line) -> Option<(Line, usize)> {
        let mut empty = 0;
        let mut at = line.next;
        while at < self.s.len() {
            let next = self.line(at);
            if next.content < next.end {
                return Some((next, empty));
            }
            empty += 1;
            at = next.next;
        }
        None
    }

    /// Whether `line` goes on a scalar under a key or entry at `indent`.
    fn goes_on(&self, line: Line, indent: usize) -> bool {
        line.indent > indent && !line.is_marker(self.s)
    }

    /// A plain scalar from `at` to `text` on `line` and the lines that go on with it, folded: a
    /// line break between two lines is a space, each empty line between them a line break.
    /// Returns its last line and where it ends there.
    fn plain_lines(
        &mut self,
        indent: usize,
        line: Line,
        at: usize,
        text: usize,
    ) -> Option<(Line, usize)> {
        let s = self.s;
        let mut last = line;
        let mut folded = false;
        while let Some((next, empty)) = self.next_filled(last) {
            if !self.goes_on(next, indent) || s[next.content] == b'#' {
                break;
            }
            // What kubectl folds is words; a line that starts with what could start a node,
            // or holds what would end the scalar, is left to the YAML parser.
            let (end, stop) = plain_end(s, next.content, next.end);
            if !plain_first(s, next.content, next.end)
                || stop != next.end
                || s[end..next.end].contains(&b'#')
            {
                return None;
            }
            if !folded {
                self.out.push('"');
                self.escape(&s[at..text]);
                folded = true;
            }
            if empty == 0 {
                self.out.push(' ');
            }
            for _ in 0..empty {
                self.out.push_str("\\n");
            }
            self.escape(&s[next.content..end]);
            last = next;
        }
        if folded {
            self.out.push('"');
        } else {
            self.plain(&s[at..text]);
        }
        Some((last, last.end))
    }

    /// A single- or double-quoted scalar starting at `at` on `line`, over as many lines as it
    /// takes: line breaks folded as in a plain scalar (the spaces around them dropped), a
    /// double-quoted line ending in `\` joined to the next without a space. Returns the line
    /// it closes on and where, after the quote.
    fn quoted(&mut self, indent: usize, line: Line, at: usize) -> Option<(Line, usize)> {
        let s = self.s;
        let quote = s[at];
        let double = quote == b'"';
        let mut line = line;
        let mut i = at + 1;
        self.out.push('"');
        // Where the text written ends without the spaces at its end, which a line break drops.
        let mut kept = self.out.len();
        loop {
            if i == line.end {
                let (next, empty) = self.next_filled(line)?;
                if !self.goes_on(next, indent) {
                    return None;
                }
                self.out.truncate(kept);
                if empty == 0 {
                    self.out.push(' ');
                }
                for _ in 0..empty {
                    self.out.push_str("\\n");
                }
                kept = self.out.len();
                line = next;
                i = next.content;
                continue;
            }
            match s[i] {
                c if c == quote => {
                    if !double && i + 1 < line.end && s[i + 1] == b'\'' {
                        self.out.push('\'');
                        i += 2;
                        kept = self.out.len();
                        continue;
                    }
                    self.out.push('"');
                    return Some((line, i + 1));
                }
                b'\\' if double => {
                    if i + 1 == line.end {
                        // An escaped line break: the next line follows without a space.
                        let (next, empty) = self.next_filled(line)?;
                        if empty > 0 || !self.goes_on(next, indent) {
                            return None;
                        }
                        line = next;
                        i = next.content;
                        continue;
                    }
                    let len = escape_len(&s[i..line.end])?;
                    self.push(&s[i..i + len]);
                    i += len;
                    kept = self.out.len();
                }
                b'"' | b'\\' => {
                    self.out.push('\\');
                    self.out.push(char::from(s[i]));
                    i += 1;
                    kept = self.out.len();
                }
                _ => {
                    let from = i;
                    i += 1;
                    while i < line.end && !matches!(s[i], b'"' | b'\'' | b'\\') {
                        i += 1;
                    }
                    self.push(&s[from..i]);
                    let spaces = s[from..i].iter().rev().take_while(|&&c| c == b' ').count();
                    if spaces < i - from {
                        kept = self.out.len() - spaces;
                    }
                }
            }
        }
    }

    /// A literal block scalar under a key or entry at `indent`, its lines from `pos`: indented
    /// by `width` (the first line's indentation when the header gives none), its last line
    /// break kept (clip), dropped (strip) or kept with the empty lines after it (keep).
    fn literal(&mut self, indent: usize, width: Option<usize>, chomp: Chomp) -> Option<()> {
        let s = self.s;
        let width = match width {
            Some(width) => width,
            None => {
                let first = self.line(self.pos);
                if first.content == first.end || first.indent <= indent {
                    return None; // starts with an empty line, or is empty
                }
                first.indent
            }
        };
        self.out.push('"');
        let mut blank = 0;
        let mut any = false;
        while self.pos < s.len() {
            let line = self.line(self.pos);
            if line.content == line.end {
                if line.indent > width {
                    return None; // spaces that are content
                }
                blank += 1;
            } else if line.indent < width {
                break;
            } else {
                if any {
                    self.out.push_str("\\n");
                }
                for _ in 0..blank {
                    self.out.push_str("\\n");
                }
                blank = 0;
                any = true;
                self.escape(&s[line.start + width..line.end]);
            }
            self.pos = self.after(line);
        }
        if any && chomp != Chomp::Strip {
            self.out.push_str("\\n");
        }
        if chomp == Chomp::Keep {
            for _ in 0..blank {
                self.out.push_str("\\n");
            }
        }
        self.out.push('"');
        match self.significant() {
            Some(next) if next.indent > indent && !next.is_marker(s) => None,
            _ => Some(()),
        }
    }

    /// A plain scalar, typed as the YAML parser types it where that differs from a string.
    fn plain(&mut self, text: &[u8]) {
        match text {
            b"" | b"~" | b"null" | b"Null" | b"NULL" => self.out.push_str("null"),
            b"true" | b"false" => self.push(text),
            _ if is_integer(text) => self.push(text),
            _ => self.string(text),
        }
    }

    /// A single-quoted scalar's text, where `''` is one quote.
    fn single(&mut self, raw: &[u8]) {
        self.out.push('"');
        let mut from = 0;
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\'' {
                self.escape(&raw[from..=i]);
                i += 2;
                from = i;
            } else {
                i += 1;
            }
        }
        self.escape(&raw[from..]);
        self.out.push('"');
    }

    fn string(&mut self, text: &[u8]) {
        self.out.push('"');
        self.escape(text);
        self.out.push('"');
    }

    /// `text` inside a JSON string: `"` and `\` escaped (no other character needs it here).
    fn escape(&mut self, text: &[u8]) {
        let mut from = 0;
        for (i, &c) in text.iter().enumerate() {
            if c == b'"' || c == b'\\' {
                self.push(&text[from..i]);
                self.out.push('\\');
                from = i;
            }
        }
        self.push(&text[from..]);
    }

    /// Bytes of the text, which is UTF-8, cut only at ASCII characters.
    fn push(&mut self, bytes: &[u8]) {
        self.out
            .push_str(std::str::from_utf8(bytes).expect("cut at ASCII characters"));
    }
}

/// What a literal block's last line break becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chomp {
    Clip,
    Strip,
    Keep,
}

/// A literal block's header after its `|`: an indentation (1 to 9) and a chomping indicator,
/// in either order, then nothing but a comment.
fn block_header(header: &[u8]) -> Option<(Option<usize>, Chomp)> {
    let mut width = None;
    let mut chomp = Chomp::Clip;
    let mut i = 0;
    while i < header.len() && i < 2 {
        match header[i] {
            c @ b'1'..=b'9' if width.is_none() => width = Some(usize::from(c - b'0')),
            b'-' if chomp == Chomp::Clip => chomp = Chomp::Strip,
            b'+' if chomp == Chomp::Clip => chomp = Chomp::Keep,
            _ => break,
        }
        i += 1;
    }
    is_blank_or_comment(&header[i..]).then_some((width, chomp))
}

/// The length of the escape at the start of `text` if JSON writes it the same: `\"`, `\\`,
/// `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, or `\u` and four hex digits naming a character
/// (not half of a surrogate pair, which JSON joins and YAML refuses).
fn escape_len(text: &[u8]) -> Option<usize> {
    match text.get(1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => {
            let hex = text.get(2..6)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let code = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            (!(0xd800..0xe000).contains(&code)).then_some(6)
        }
        _ => None,
    }
}

fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

/// Spaces, then nothing or a comment (which a space must precede, unless it starts the text).
fn is_blank_or_comment(rest: &[u8]) -> bool {
    match rest.iter().position(|&c| c != b' ') {
        None => true,
        Some(n) => rest[n] == b'#' && n > 0,
    }
}

/// Past the closing quote of the double-quoted scalar at `at`, on its line.
fn double_end(s: &[u8], at: usize, end: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < end {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Past the closing quote of the single-quoted scalar at `at`, on its line.
fn single_end(s: &[u8], at: usize, end: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < end {
        if s[i] == b'\'' {
            if i + 1 < end && s[i + 1] == b'\'' {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The end of the plain scalar at `at` without its trailing spaces, and where it stops: a `:`
/// that a space or the line's end follows, a comment, or the line's end.
fn plain_end(s: &[u8], at: usize, end: usize) -> (usize, usize) {
    let mut i = at;
    while i < end {
        match s[i] {
            b':' if i + 1 == end || s[i + 1] == b' ' => break,
            b'#' if i > at && s[i - 1] == b' ' => break,
            _ => i += 1,
        }
    }
    let mut text = i;
    while text > at && s[text - 1] == b' ' {
        text -= 1;
    }
    let stop = if i < end && s[i] == b'#' { end } else { i };
    (text, stop)
}

/// Whether a plain scalar may start at `at`: not with an indicator, nor with `-`, `?` or `:`
/// that a space follows.
fn plain_first(s: &[u8], at: usize, end: usize) -> bool {
    match s[at] {
        b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
        | b'"' | b'%' | b'@' | b'`' => false,
        b'-' | b'?' | b':' => at + 1 < end && s[at + 1] != b' ',
        _ => true,
    }
}

/// A plain key the YAML parser could read as other than its text: null, a boolean in any
/// spelling YAML has had, what could be a number in any base or form YAML has had (`1_000`,
/// `0x1F`, `1:30`, `.inf`), or the merge key. managedFields' `.` and `f:spec` are plainly
/// strings.
fn special_key(text: &[u8]) -> bool {
    let lower = text.to_ascii_lowercase();
    let unsigned = lower
        .strip_prefix(b"+")
        .or(lower.strip_prefix(b"-"))
        .unwrap_or(&lower);
    matches!(
        lower.as_slice(),
        b"" | b"~"
            | b"null"
            | b"true"
            | b"false"
            | b"yes"
            | b"no"
            | b"on"
            | b"off"
            | b"y"
            | b"n"
            | b"<<"
    ) || matches!(unsigned, b".inf" | b".nan")
        || (unsigned.iter().any(u8::is_ascii_digit)
            && unsigned
                .iter()
                .all(|c| c.is_ascii_hexdigit() || b"xob_.:+-".contains(c)))
}

/// A decimal integer as JSON writes one: an optional minus, no leading zero.
fn is_integer(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::super::{PodView, parse, yaml_pods_parsed, yaml_pods_rewritten};
    use super::*;

    /// Requires the rewrite of `text`, when serde_json reads it, to mean what the YAML parser
    /// reads; says whether it was read.
    fn agrees(text: &str, form: Form) -> bool {
        let rewritten = yaml_pods_rewritten(text, form);
        if let Some(pods) = &rewritten {
            assert_eq!(
                Some(pods),
                yaml_pods_parsed(text, form).as_ref(),
                "rewritten as {:?}",
                to_json(text, form)
            );
        }
        rewritten.is_some()
    }

    /// kubectl's own YAML of the fixtures (see tests/fixtures/pods-yaml/README.md), each a Pod
    /// document, and the pods it means (read from the JSON it was made from).
    fn kubectl_fixtures() -> Vec<(String, Vec<PodView>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut fixtures = Vec::new();
        for entry in std::fs::read_dir(format!("{dir}/pods-yaml")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let name = path.file_stem().unwrap().to_str().unwrap();
            let json = ["pods", "pods-yaml"]
                .iter()
                .find_map(|d| std::fs::read_to_string(format!("{dir}/{d}/{name}.json")).ok())
                .unwrap();
            let yaml = std::fs::read_to_string(&path).unwrap();
            fixtures.push((yaml, parse(&json).unwrap()));
        }
        assert_eq!(fixtures.len(), 6);
        fixtures
    }

    /// Every item of `text` is rewritten, and together they mean `expected`.
    fn rewritten_as(text: &str, expected: &[PodView]) {
        let split = super::super::yaml::split(text).unwrap();
        let mut pods = Vec::new();
        for item in &split.items {
            assert!(agrees(item, split.form), "not rewritten: {item}");
            pods.extend(yaml_pods_rewritten(item, split.form).unwrap());
        }
        assert_eq!(pods, expected);
    }

    /// kubectl's YAML of real pods, with strings folded over lines, `|2` blocks and
    /// managedFields' `k:{...}` keys, is rewritten item by item and means what its JSON means:
    /// each alone, all as documents and as a list's entries (as `kubectl get pods -o yaml`
    /// nests them), with LF or CR LF line breaks.
    #[test]
    fn kubectl_output_is_rewritten() {
        let fixtures = kubectl_fixtures();
        let all: Vec<PodView> = fixtures.iter().flat_map(|(_, p)| p.clone()).collect();
        let entries = |indent: usize| {
            let pad = " ".repeat(indent);
            let mut list = String::from("apiVersion: v1\nitems:\n");
            for (yaml, _) in &fixtures {
                for (n, line) in yaml.lines().enumerate() {
                    let mark = if n == 0 { "- " } else { "  " };
                    let line = if line.is_empty() {
                        String::new()
                    } else {
                        format!("{pad}{mark}{line}")
                    };
                    list.push_str(&line);
                    list.push('\n');
                }
            }
            list + "kind: List\nmetadata:\n  resourceVersion: \"\"\n"
        };
        let documents: String = fixtures.iter().map(|(y, _)| format!("---\n{y}")).collect();
        for crlf in [false, true] {
            let lines = |text: &str| {
                if crlf {
                    text.replace('\n', "\r\n")
                } else {
                    text.to_owned()
                }
            };
            for (yaml, pods) in &fixtures {
                rewritten_as(&lines(yaml), pods);
            }
            rewritten_as(&lines(&documents), &all);
            rewritten_as(&lines(&entries(0)), &all);
            rewritten_as(&lines(&entries(2)), &all);
        }
    }

    #[test]
    fn the_example_pods_file_is_rewritten() {
        let text = include_str!("../../../config/example-pods.yaml");
        assert!(agrees(text, Form::Documents));
    }

    /// A pod with `slot` in place of one value, as a list entry.
    fn pod_with(slot: &str, value: &str) -> String {
        let pod = "\
- metadata:
    name: {name}
    namespace: prod
    labels:
      roster.io/service: {label}
    annotations:
      roster.io/port: {annotation}
    ownerReferences:
    - apiVersion: apps/v1
      kind: StatefulSet
      name: db
      uid: u
      controller: {controller}
    creationTimestamp: {created}
  spec:
    containers:
    - name: c
      ports:
      - name: peer
        containerPort: {port}
  status:
    phase: Running
    restartCount: {ignored}
    conditions:
    - type: Ready
      status: {status}
    podIP: {ip}
";
        let defaults = [
            ("name", "db-0"),
            ("label", "db"),
            ("annotation", "peer"),
            ("controller", "true"),
            ("created", "2026-01-01T00:00:00Z"),
            ("port", "7000"),
            ("ignored", "0"),
            ("status", "\"True\""),
            ("ip", "10.0.0.1"),
        ];
        let mut text = pod.to_owned();
        for (key, default) in defaults {
            let with = if key == slot { value } else { default };
            text = text.replace(&format!("{{{key}}}"), with);
        }
        text
    }

    #[test]
    fn scalars_mean_what_the_yaml_parser_reads() {
        let values = [
            "7000",
            "\"7000\"",
            "'7000'",
            "07000",
            "-1",
            "+1",
            "0x1F",
            "0o17",
            "1_000",
            "1e3",
            "1.5",
            ".5",
            "1:30",
            ".inf",
            "-.inf",
            ".nan",
            "true",
            "True",
            "TRUE",
            "false",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "null",
            "Null",
            "NULL",
            "~",
            "",
            "\"\"",
            "''",
            "\"null\"",
            "10.0.0.1",
            "fd00:10:244:1::10",
            "::1",
            "2026-01-01T00:00:00Z",
            "db-0",
            "db 0",
            "db #0",
            "db#0",
            "db # comment",
            "\"db\" # comment",
            "'it''s'",
            "'a\"b'",
            "\"a\\\"b\"",
            "\"a\\\\b\"",
            "a\\b",
            "a\"b",
            "\"\\t\"",
            "\"\\u00e9t\\u00e9\"",
            "\"\\ud800\"",
            "\"\\x41\"",
            "\"\\N\"",
            "\"\\/\"",
            "\"a\\/b\"",
            "été",
            "\"été\"",
            "{}",
            "[]",
            "{ }",
            "[a]",
            "{a: b}",
            "&a db",
            "*a",
            "!!str db",
            "!!int 7000",
            "|\n      db",
            "|-\n      db",
            ">\n      db",
            "|+\n      db",
            "db\n      continued",
            "db:",
            "a: b",
            "'db",
            "\"db",
            "-",
            "- db",
            "? db",
            "@db",
            "`db`",
            "%db",
            "db ",
            // Over several lines, as kubectl folds long strings, and ways that must not be.
            "db\n      more",
            "db\n\n      more",
            "db  \n      more  ",
            "db\n        more",
            "db\n    more",
            "db\n      more: x",
            "db\n      - x",
            "db\n      #c\n      more",
            "db\n      more #c",
            "'db\n      more'",
            "'db  \n\n      more '",
            "'db\n\n\n      it''s'",
            "'db\n    more'",
            "'db\n  more'",
            "\"db\\\n      more\"",
            "\"db \\\n      more\"",
            "\"db\\\n\n      more\"",
            "\"db\n      \\tmore\"",
            "\"db\n\n      more \"",
            "\"db\n      more\" # c",
            "\"db\n      more\" x",
            "\"db\n---\n\"",
            "'db\n      more",
            "|2\n      db",
            "|2\n        db",
            "|2-\n        db\n\n        more",
            "|2+\n        db\n\n",
            "|+\n        db\n\n",
            "|-2\n        db",
            "|2\n\n        db",
            "|2\n          db\n        x",
            "|1\n     db",
            "|0\n      db",
            "|22\n      db",
            "|2 # c\n        db",
            "|2x\n        db",
            "|\n        db\n          more\n        x\n",
        ];
        let slots = [
            "name",
            "label",
            "annotation",
            "controller",
            "created",
            "port",
            "ignored",
            "status",
            "ip",
        ];
        let mut rewritten = 0;
        for slot in slots {
            for value in values {
                let text = pod_with(slot, value);
                rewritten += usize::from(agrees(&text, Form::List));
                agrees(&text.replace('\n', "\r\n"), Form::List);
            }
        }
        // The usual ones are read from the rewrite, not only agreed with.
        for (slot, value) in [
            ("port", "7000"),
            ("controller", "true"),
            ("ip", "10.0.0.1"),
            ("ip", "fd00:10:244:1::10"),
            ("name", "'db-0'"),
            ("label", "\"db\" # comment"),
            ("annotation", "|-\n        peer"),
            ("name", "|-\n      db-0"),
            ("ignored", "{}"),
            ("created", "null"),
        ] {
            assert!(
                agrees(&pod_with(slot, value), Form::List),
                "{slot}: {value}"
            );
        }
        assert!(rewritten > slots.len() * values.len() / 3, "{rewritten}");
    }

    #[test]
    fn layouts_it_does_not_read_go_to_the_yaml_parser() {
        let pod = pod_with("", "");
        assert!(agrees(&pod, Form::List));
        assert!(
            agrees(&pod.replace('\n', "\r\n"), Form::List),
            "CR LF line breaks"
        );
        let declined = [
            pod.replace("  spec:", "  spec:\t"),
            pod.replace("  spec:\n", "  spec:\r  x: y\n"),
            format!("{}\r", pod.replace('\n', "\r\n").trim_end_matches('\n')),
            pod.replace("namespace: prod", "namespace: &ns prod"),
            pod.replace("  spec:\n", "  spec: {containers: []}\n  x:\n"),
            pod.replace("    name: db-0\n", "    name: db-0\n    name: db-1\n"),
            pod.replace("    name: db-0\n", "    name: db-0\n    \"name\": db-1\n"),
            pod.replace(
                "service: db\n",
                "service: db\n      roster.io/service: web\n",
            ),
            pod.replace("    name: db-0\n", "    ? name\n    : db-0\n"),
            pod.replace("    namespace: prod\n", "    namespace:\n      prod\n"),
            pod.replace("  spec:\n", "  1: x\n  spec:\n"),
            pod.replace("  spec:\n", "  <<: {}\n  spec:\n"),
            pod.replace("- metadata:", "- - metadata:"),
            pod.replace("  spec:\n", "   spec:\n"),
            pod.replace("    name: db-0\n", "    name : db-0\n"),
            format!("{pod}x: y\n"),
            format!("{pod}---\n{pod}"),
        ];
        for text in &declined {
            assert_eq!(to_json(text, Form::List), None, "{text}");
            agrees(text, Form::List);
        }
        let documents = pod.replace("\n  ", "\n").replacen("- ", "", 1);
        for text in [
            format!("{documents}---\n---\n{documents}"),
            format!("{documents}---\n"),
            format!("{documents}...\n"),
            format!("{documents}--- x\n{documents}"),
            format!("{documents}{documents}"),
        ] {
            assert_eq!(to_json(&text, Form::Documents), None, "{text}");
            agrees(&text, Form::Documents);
        }
        assert!(agrees(
            &format!("{documents}---\n{documents}"),
            Form::Documents
        ));
    }
}
