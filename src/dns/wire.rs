//! Wire format for the fast path: a zero-copy query parser and a message writer that produces,
//! byte for byte, what hickory's encoder produces for the same records (the general path), so
//! that the two paths are interchangeable. A test in `tests/fastpath.rs` holds them to that.
//!
//! hickory's rules, reproduced here: owner names and names in RFC 1035 RDATA (NS, PTR, SOA) are
//! compressed against earlier names, the question's included, case-sensitively, at the first
//! label whose remainder matches; SRV targets are written whole (RFC 2782) but become candidates;
//! at most 64 candidates are kept, only below offset 0x3FFF, and only the first 120 names are
//! compressed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Most compression candidates hickory keeps.
const CANDIDATES: usize = 64;
/// Names hickory compresses in one message; later ones are written whole.
const COMPRESSED_NAMES: usize = 120;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_ANY: u16 = 255;
/// EDNS Client Subnet (RFC 7871).
const OPTION_CLIENT_SUBNET: u16 = 8;
/// Name Server Identifier (RFC 5001).
const OPTION_NSID: u16 = 3;
const CLASS_IN: u16 = 1;

/// The EDNS part of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    /// DO, "DNSSEC answer OK": copied into the answer (RFC 3225 §3).
    pub dnssec_ok: bool,
    /// The query carries an NSID option (RFC 5001), whatever its data.
    pub nsid: bool,
}

/// A query the fast path can answer, borrowed from the packet.
#[derive(Debug)]
pub struct Query<'p> {
    pub id: u16,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// The question section as received: name, type and class.
    pub question: &'p [u8],
    pub qtype: u16,
    pub edns: Option<Edns>,
}

impl<'p> Query<'p> {
    /// The question name's labels, leftmost first, as received.
    pub fn labels(&self) -> Labels<'p> {
        Labels {
            rest: &self.question[..self.question.len() - 4],
        }
    }
}

/// The labels of an uncompressed wire name.
#[derive(Clone, Copy)]
pub struct Labels<'p> {
    rest: &'p [u8],
}

impl<'p> Iterator for Labels<'p> {
    type Item = &'p [u8];
    fn next(&mut self) -> Option<&'p [u8]> {
        let (&len, rest) = self.rest.split_first()?;
        if len == 0 {
            return None;
        }
        let (label, rest) = rest.split_at(len as usize);
        self.rest = rest;
        Some(label)
    }
}

fn u16_at(p: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([p[i], p[i + 1]])
}

/// Parses the common query: opcode QUERY, one question in class IN with an uncompressed name,
/// no answer or authority records, and at most an OPT record (version 0, its options readable).
/// Anything else is `None` and goes to the general path, which answers every case.
/// Options are read and ignored (RFC 6891 §6.1.2), NSID excepted, which is noted; no answer is
/// scoped to a client subnet (RFC 7871 §7.2.1).
pub fn parse_query(p: &[u8]) -> Option<Query<'_>> {
    if p.len() < 17 {
        return None;
    }
    let flags = u16_at(p, 2);
    // QR=0, opcode 0; counts 1, 0, 0, 0..=1.
    if flags & 0xF800 != 0 || u16_at(p, 4) != 1 || u16_at(p, 6) != 0 || u16_at(p, 8) != 0 {
        return None;
    }
    let additional = u16_at(p, 10);
    if additional > 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = *p.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 {
            return None; // a compression pointer or a reserved label type
        }
        i += 1 + len;
    }
    if i - 12 > 255 || p.len() < i + 4 {
        return None;
    }
    let qtype = u16_at(p, i);
    if u16_at(p, i + 2) != CLASS_IN {
        return None;
    }
    let question = &p[12..i + 4];
    let mut end = i + 4;
    let edns = if additional == 1 {
        // OPT: root name, type 41, class = payload, TTL = ext-rcode, version, flags; RDATA.
        if p.len() < end + 11 || p[end] != 0 || u16_at(p, end + 1) != TYPE_OPT {
            return None;
        }
        let payload = u16_at(p, end + 3);
        let dnssec_ok = p[end + 7] & 0x80 != 0;
        if p[end + 6] != 0 {
            return None; // EDNS version above 0: BADVERS, from the general path
        }
        let rdlen = u16_at(p, end + 9) as usize;
        let options = p.get(end + 11..end + 11 + rdlen)?;
        // The options as hickory reads them, so that both paths answer alike: one cut short
        // (a lone code, or data running past the RDATA) drops the options, and the query is
        // answered; one or three stray bytes, or a length beyond the whole RDATA, are FORMERR,
        // from the general path.
        let mut o = 0;
        let mut nsid = false;
        while o < options.len() {
            match options.len() - o {
                2 => break,
                1 | 3 => return None,
                _ => {}
            }
            let code = u16_at(options, o);
            let len = u16_at(options, o + 2) as usize;
            if len > rdlen {
                return None;
            }
            let Some(data) = options.get(o + 4..o + 4 + len) else {
                break;
            };
            // A client subnet that cannot be read is FORMERR (RFC 7871 §7.2.1).
            if code == OPTION_CLIENT_SUBNET && !client_subnet_reads(data) {
                return None;
            }
            nsid |= code == OPTION_NSID;
            o += 4 + len;
        }
        end += 11 + rdlen;
        Some(Edns {
            payload,
            dnssec_ok,
            // Options cut short (the loop left early) are all dropped, an NSID among them.
            nsid: nsid && o == options.len(),
        })
    } else {
        None
    };
    if end != p.len() {
        return None;
    }
    Some(Query {
        id: u16_at(p, 0),
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        question,
        qtype,
        edns,
    })
}

/// Whether a client-subnet option reads as hickory reads it (RFC 7871 §6): a known family, and
/// at least the address bytes its source prefix covers, no more than the family's address has.
fn client_subnet_reads(data: &[u8]) -> bool {
    let [f0, f1, source, _scope, address @ ..] = data else {
        return false;
    };
    let most = match u16::from_be_bytes([*f0, *f1]) {
        1 => 4,
        2 => 16,
        _ => return false,
    };
    let covered = usize::from(*source).div_ceil(8);
    covered <= most && address.len() >= covered
}

/// The message did not fit its size limit.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Reusable storage for compression candidates, kept across messages (no allocation per
/// message once warm).
#[derive(Default)]
pub struct Candidates {
    /// (offset in the message, range in `bytes`)
    entries: Vec<(u16, u32, u32)>,
    bytes: Vec<u8>,
}

/// Where a writer can be rewound to.
#[derive(Clone, Copy)]
pub struct Mark {
    len: usize,
    entries: usize,
    bytes: usize,
    compressed: usize,
}

/// Writes one DNS message into `buf` (after whatever `buf` holds: offsets are relative to the
/// message start), refusing to grow past `limit` bytes.
pub struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    base: usize,
    limit: usize,
    candidates: &'b mut Candidates,
    compressed: usize,
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut Vec<u8>, limit: usize, candidates: &'b mut Candidates) -> Self {
        candidates.entries.clear();
        candidates.bytes.clear();
        let base = buf.len();
        Self {
            buf,
            base,
            limit,
            candidates,
            compressed: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.base
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn room(&self, more: usize) -> Result<(), Full> {
        if self.len() + more > self.limit {
            Err(Full)
        } else {
            Ok(())
        }
    }

    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Full> {
        self.room(b.len())?;
        self.buf.extend_from_slice(b);
        Ok(())
    }

    pub fn u16(&mut self, v: u16) -> Result<(), Full> {
        self.bytes(&v.to_be_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<(), Full> {
        self.bytes(&v.to_be_bytes())
    }

    pub fn set_u16(&mut self, at: usize, v: u16) {
        self.buf[self.base + at..self.base + at + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            entries: self.candidates.entries.len(),
            bytes: self.candidates.bytes.len(),
            compressed: self.compressed,
        }
    }

    pub fn rewind(&mut self, m: Mark) {
        self.buf.truncate(m.len);
        self.candidates.entries.truncate(m.entries);
        self.candidates.bytes.truncate(m.bytes);
        self.compressed = m.compressed;
    }

    fn store(&mut self, start: usize, end: usize) {
        // hickory tests the encoder's offset, which is the end of the labels just written.
        if end < 0x3FFF && self.candidates.entries.len() < CANDIDATES {
            let from = self.candidates.bytes.len() as u32;
            self.candidates
                .bytes
                .extend_from_slice(&self.buf[self.base + start..self.base + end]);
            let to = self.candidates.bytes.len() as u32;
            self.candidates.entries.push((start as u16, from, to));
        }
    }

    fn find(&self, start: usize, end: usize) -> Option<u16> {
        let wanted = &self.buf[self.base + start..self.base + end];
        self.candidates
            .entries
            .iter()
            .find(|(_, from, to)| &self.candidates.bytes[*from as usize..*to as usize] == wanted)
            .map(|(offset, ..)| *offset)
    }

    /// The question section: its name written as any name is (the first, so written whole), so
    /// that the names after it can point into it; then its type and class as received.
    pub fn question(&mut self, query: &Query<'_>) -> Result<(), Full> {
        self.name(query.labels(), true)?;
        self.bytes(&query.question[query.question.len() - 4..])
    }

    /// A name from its labels; compressed, or written whole and only remembered.
    pub fn name<'l>(
        &mut self,
        labels: impl Iterator<Item = &'l [u8]>,
        compress: bool,
    ) -> Result<(), Full> {
        let mut starts = [0u16; 128];
        let mut n = 0;
        for label in labels {
            if n == starts.len() {
                return Err(Full);
            }
            starts[n] = self.len() as u16;
            n += 1;
            self.room(1 + label.len())?;
            self.buf.push(label.len() as u8);
            self.buf.extend_from_slice(label);
        }
        let end = self.len();
        if compress && self.compressed < COMPRESSED_NAMES {
            self.compressed += 1;
            for &start in &starts[..n] {
                let start = start as usize;
                match self.find(start, end) {
                    Some(at) if at & 0xC000 == 0 => {
                        self.buf.truncate(self.base + start);
                        return self.u16(0xC000 | at);
                    }
                    _ => self.store(start, end),
                }
            }
        } else {
            for &start in &starts[..n] {
                self.store(start as usize, end);
            }
        }
        self.bytes(&[0])
    }

    /// A resource record: owner, type, class IN, TTL, and RDATA from `rdata`.
    pub fn record<'l>(
        &mut self,
        owner: impl Iterator<Item = &'l [u8]>,
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Self) -> Result<(), Full>,
    ) -> Result<(), Full> {
        self.name(owner, true)?;
        self.rest_of_record(rtype, ttl, rdata)
    }

    /// A resource record whose owner is the name already written at `owner` (below 0x3FFF):
    /// two bytes, whatever came before.
    pub fn record_at(
        &mut self,
        owner: u16,
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Self) -> Result<(), Full>,
    ) -> Result<(), Full> {
        self.u16(0xC000 | owner)?;
        self.rest_of_record(rtype, ttl, rdata)
    }

    fn rest_of_record(
        &mut self,
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Self) -> Result<(), Full>,
    ) -> Result<(), Full> {
        self.u16(rtype)?;
        self.u16(CLASS_IN)?;
        self.u32(ttl)?;
        let at = self.len();
        self.u16(0)?;
        rdata(self)?;
        let rdlen = self.len() - at - 2;
        self.set_u16(at, rdlen as u16);
        Ok(())
    }

    pub fn a(&mut self, a: Ipv4Addr) -> Result<(), Full> {
        self.bytes(&a.octets())
    }

    pub fn aaaa(&mut self, a: Ipv6Addr) -> Result<(), Full> {
        self.bytes(&a.octets())
    }

    /// The OPT record of a response: our payload size, version 0, the query's DO flag, and the
    /// NSID option when one is sent.
    pub fn opt(&mut self, payload: u16, dnssec_ok: bool, nsid: Option<&[u8]>) -> Result<(), Full> {
        self.compressed += 1; // hickory counts the root name as compressed
        self.bytes(&[0, 0, 41])?;
        self.u16(payload)?;
        self.bytes(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0])?;
        match nsid {
            Some(id) => {
                // At most MAX_NSID bytes (the handler checks).
                self.u16(4 + id.len() as u16)?;
                self.u16(OPTION_NSID)?;
                self.u16(id.len() as u16)?;
                self.bytes(id)
            }
            None => self.u16(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> impl Iterator<Item = &[u8]> {
        name.split('.').filter(|l| !l.is_empty()).map(str::as_bytes)
    }

    #[test]
    fn compression_follows_earlier_names() {
        let mut buf = vec![0u8; 12];
        buf.clear();
        let mut c = Candidates::default();
        let mut w = Writer::new(&mut buf, 512, &mut c);
        w.bytes(&[0; 12]).unwrap();
        w.name(labels("roster.internal"), true).unwrap();
        w.name(labels("hostmaster.roster.internal"), true).unwrap();
        w.name(labels("HOSTMASTER.roster.internal"), true).unwrap();
        w.name(labels("db-0.db.roster.internal"), false).unwrap();
        let expected: Vec<u8> = [
            &[0u8; 12][..],
            b"\x06roster\x08internal\x00",
            b"\x0ahostmaster\xc0\x0c",
            b"\x0aHOSTMASTER\xc0\x0c",
            b"\x04db-0\x02db\x06roster\x08internal\x00",
        ]
        .concat();
        assert_eq!(buf, expected);
    }

    #[test]
    fn parse_common_queries_only() {
        // id 0xabcd, RD, one question db.x A IN, an OPT with a cookie.
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x02db\x01x\x00\x00\x01\x00\x01");
        q.extend_from_slice(&[
            0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        let parsed = parse_query(&q).unwrap();
        assert_eq!(
            (parsed.id, parsed.qtype, parsed.recursion_desired),
            (0xabcd, 1, true)
        );
        assert_eq!(
            parsed.edns,
            Some(Edns {
                payload: 1232,
                dnssec_ok: false,
                nsid: false,
            })
        );
        assert_eq!(
            parsed.labels().collect::<Vec<_>>(),
            [b"db".as_slice(), b"x"]
        );
        let mut version1 = q.clone();
        version1[12 + 10 + 6] = 1;
        assert!(
            parse_query(&version1).is_none(),
            "EDNS version 1: general path"
        );
        // The cookie's code made NSID, then client subnet (family 0x0102: unreadable).
        let mut nsid = q.clone();
        nsid[12 + 10 + 12] = 3;
        let asks = |q: &[u8]| parse_query(q).and_then(|p| p.edns).map(|e| e.nsid);
        assert_eq!(asks(&nsid), Some(true), "NSID: read and noted");
        // Cut short by a lone option code after it: hickory drops every option.
        let mut cut = nsid.clone();
        cut.extend_from_slice(&[0, 9]);
        let rdlen = 12 + 10 + 9;
        cut[rdlen + 1] += 2;
        assert_eq!(asks(&cut), Some(false), "NSID dropped with the options");
        let mut ecs = q.clone();
        ecs[12 + 10 + 12] = 8;
        assert!(
            parse_query(&ecs).is_none(),
            "bad client subnet: general path"
        );
        let mut trailing = q.clone();
        trailing.push(0);
        assert!(parse_query(&trailing).is_none());
        let mut notify = q.clone();
        notify[2] = 0x20;
        assert!(parse_query(&notify).is_none());
        assert!(parse_query(&q[..20]).is_none());
    }
}
