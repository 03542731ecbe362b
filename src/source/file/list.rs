//! A JSON list read item by item, a chunk at a time, and compared in order with the last
//! version applied: only the items whose text changed are scanned as JSON and parsed. Owns
//! nothing else: what a version means (its index, the pods it changes) is the parent's.

use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::window::Window;
use super::{CHUNK, Compare, Index, Item, JsonDocument, Layout, text_hash, view};
use crate::source::PodView;
use crate::source::slim::SlimPod;

/// Reads a JSON list a chunk at a time, item by item, comparing it in order with the last version
/// applied (`index`) where there is one: an item whose text is the same as the item expected at
/// its place is checked by its hash alone, so only the items that differ are scanned as JSON and
/// only unknown ones parsed. At 100,000 pods that spares scanning 40 MB of JSON at every change,
/// and holding 40 MB of text when the file is first read. `None` when the text is not a JSON
/// list or anything does not fit, a syntax error included: the version is then read whole, which
/// also gives the error its place in the file. Each item parsed goes to `parsed` with its hash
/// as soon as it is, so that a large list is never held whole (items given before a `None` do
/// not count).
pub(super) fn walk(
    w: &mut Window<impl Read>,
    index: Option<&Index>,
    parsed: &mut impl FnMut(u64, PodView),
) -> std::io::Result<Option<Walked>> {
    let Some((head, mut at)) = list_head(w)? else {
        return Ok(None);
    };
    // An empty list is read whole: it is small.
    if w.get(at, 1)?.first() == Some(&b']') {
        return Ok(None);
    }
    let mut compare = Compare::new(index);
    let mut items = Vec::with_capacity(compare.old.len());
    // The space after an item: the start of the tail if the list ends there.
    let mut space = Vec::new();
    let (end, tail) = loop {
        let item = match compare.expected() {
            Some(item) if same_text(w.get(at, item.len as usize)?, item) => {
                compare.met();
                item
            }
            _ => {
                let Some(len) = value_len(w, at)? else {
                    return Ok(None);
                };
                let text = &w.get(at, len)?[..len];
                let hash = text_hash(text);
                if compare.elsewhere(hash) {
                    let Ok(pod) = serde_json::from_slice::<SlimPod>(text) else {
                        return Ok(None);
                    };
                    parsed(hash, view(pod));
                }
                let Ok(len) = u32::try_from(len) else {
                    return Ok(None);
                };
                Item { hash, len }
            }
        };
        items.push(item);
        at += item.len as usize;
        // Most items are followed by a comma, a little space and the next item, all read already.
        if let Some(next) = separator(w.get(at, SEPARATOR)?) {
            at += next;
            continue;
        }
        let end = at;
        space.clear();
        at = copy_space(w, at, &mut space)?;
        match w.get(at, 1)?.first() {
            Some(b',') => at = skip_space(w, at + 1)?,
            Some(b']') => {
                copy_rest(w, at, &mut space)?;
                break (end, space);
            }
            _ => return Ok(None),
        }
    };
    // What surrounds the items must make a list: the text with no items in between is checked
    // as a document, which also refuses anything after it. As text first: serde_json does not
    // check that the strings it skips (fields roster does not read) are UTF-8.
    let mut empty = head.clone();
    empty.extend_from_slice(&tail);
    let document = std::str::from_utf8(&empty).map(serde_json::from_str::<JsonDocument>);
    match document {
        Ok(Ok(doc)) if matches!(doc.kind.as_deref(), None | Some("PodList" | "List")) => {}
        _ => return Ok(None),
    }
    let len = (end + tail.len()) as u64;
    Ok(Some(Walked {
        layout: Layout::new(&head, items, &tail),
        gone: compare.gone(),
        len,
    }))
}

/// How far after an item [`separator`] looks.
const SEPARATOR: usize = 32;

/// Where the next item starts in `bytes`, which follow an item, when they hold a comma with only
/// JSON space around it and the first byte of that item; `None` for anything else.
fn separator(bytes: &[u8]) -> Option<usize> {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let comma = bytes.iter().position(|b| !space(b))?;
    if bytes[comma] != b',' {
        return None;
    }
    let next = comma + 1 + bytes[comma + 1..].iter().position(|b| !space(b))?;
    Some(next)
}

/// A JSON list walked: its items; with the last version's index, the hashes of its items this
/// one no longer has (see [`Content::Items`](super::Content::Items)); its length in bytes.
pub(super) struct Walked {
    pub(super) layout: Layout,
    pub(super) gone: Option<Vec<u64>>,
    pub(super) len: u64,
}

/// Scans a JSON object up to the `[` of its "items" and the space after it: that text, and
/// where the first item is. `None` when the text is not an object with an "items" array.
fn list_head(w: &mut Window<impl Read>) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut head = Vec::new();
    let mut at = copy_space(w, 0, &mut head)?;
    if !copy_byte(w, at, b'{', &mut head)? {
        return Ok(None);
    }
    loop {
        at = copy_space(w, at + 1, &mut head)?;
        let Some(len) = value_len(w, at)? else {
            return Ok(None);
        };
        let key = &w.get(at, len)?[..len];
        let Ok(key) = serde_json::from_slice::<String>(key) else {
            return Ok(None);
        };
        let items = key == "items";
        head.extend_from_slice(&w.get(at, len)?[..len]);
        at = copy_space(w, at + len, &mut head)?;
        if !copy_byte(w, at, b':', &mut head)? {
            return Ok(None);
        }
        at = copy_space(w, at + 1, &mut head)?;
        if items && copy_byte(w, at, b'[', &mut head)? {
            let first = copy_space(w, at + 1, &mut head)?;
            return Ok(Some((head, first)));
        }
        let Some(len) = value_len(w, at)? else {
            return Ok(None);
        };
        head.extend_from_slice(&w.get(at, len)?[..len]);
        at = copy_space(w, at + len, &mut head)?;
        // The object ends, or goes on to its next key.
        if !copy_byte(w, at, b',', &mut head)? {
            return Ok(None);
        }
    }
}

/// Whether the byte at `at` is `byte`; if so it is added to `out`.
fn copy_byte(
    w: &mut Window<impl Read>,
    at: usize,
    byte: u8,
    out: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let found = w.get(at, 1)?.first() == Some(&byte);
    if found {
        out.push(byte);
    }
    Ok(found)
}

/// Skips JSON space from `at`, adding it to `out`; where the space ends.
fn copy_space(w: &mut Window<impl Read>, at: usize, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let from = out.len();
    let end = skip_space_with(w, at, |b| out.push(b))?;
    debug_assert_eq!(out.len() - from, end - at);
    Ok(end)
}

/// Adds the file from `at` to its end to `out`.
fn copy_rest(w: &mut Window<impl Read>, mut at: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let bytes = w.get(at, CHUNK)?;
        if bytes.is_empty() {
            return Ok(());
        }
        out.extend_from_slice(bytes);
        at += bytes.len();
    }
}

fn same_text(bytes: &[u8], item: Item) -> bool {
    bytes
        .get(..item.len as usize)
        .is_some_and(|text| text_hash(text) == item.hash)
}

/// The length of the JSON value at `at`, checked as JSON; `None` where there is none.
fn value_len(w: &mut Window<impl Read>, at: usize) -> std::io::Result<Option<usize>> {
    let mut want = 1;
    loop {
        let bytes = w.get(at, want)?;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let available = match <&RawValue>::deserialize(&mut de) {
            Ok(raw) => return Ok(Some(raw.get().len())),
            // Cut at the end of what is read: read on, unless the file ends there.
            Err(e) if e.is_eof() => bytes.len(),
            Err(_) => return Ok(None),
        };
        if w.ended() {
            return Ok(None);
        }
        want = available.saturating_mul(2).max(1);
    }
}

fn skip_space(w: &mut Window<impl Read>, at: usize) -> std::io::Result<usize> {
    skip_space_with(w, at, |_| {})
}

/// Skips JSON space from `at`, giving each byte skipped to `each`; where the space ends.
fn skip_space_with(
    w: &mut Window<impl Read>,
    mut at: usize,
    mut each: impl FnMut(u8),
) -> std::io::Result<usize> {
    while let Some(&b) = w.get(at, 1)?.first() {
        if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        each(b);
        at += 1;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_between_items() {
        assert_eq!(separator(b", {"), Some(2));
        assert_eq!(separator(b",\n        {"), Some(10));
        assert_eq!(separator(b" ,\t{"), Some(3));
        assert_eq!(separator(b",{"), Some(1));
        // The list's end, space that goes on past what was read, anything else: looked at
        // byte by byte.
        assert_eq!(separator(b"\n]}"), None);
        assert_eq!(separator(b",   "), None);
        assert_eq!(separator(b"   "), None);
        assert_eq!(separator(b"x,"), None);
        assert_eq!(separator(b""), None);
    }
}
