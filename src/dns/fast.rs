//! The fast path: common queries answered straight from the snapshot into the output buffer,
//! with no parse into owned types, no allocation and no lock. It produces the same bytes as the
//! general path (hickory's parser and encoder), which still answers everything else: other
//! opcodes, EDNS versions or options hickory interprets, unusual sections, and UDP answers that
//! must be truncated. A TCP answer too big for hickory's way of compressing names is written
//! with every owner as a pointer into the question instead (see [`Owners`]): hickory would cut
//! it where it still had room.

use std::cell::RefCell;

use super::wire::{self, Candidates, Full, Query, Writer};
use super::{Handler, Reply, SOA_EXPIRE, SOA_REFRESH, SOA_RETRY};
use crate::identity::Identity;
use crate::metrics::Transport;
use crate::zone::{self, AnswerKind, DomainName, QType, Rdata};

thread_local! {
    /// Compression candidates, reused by every message this thread writes.
    static CANDIDATES: RefCell<Candidates> = RefCell::new(Candidates::default());
}

/// How owner names are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owners {
    /// As hickory's encoder writes them, so that the fast path's bytes are the general path's.
    Hickory,
    /// Each as a pointer into the question, whose name (or zone) owns every answer record, then
    /// the targets' addresses while they fit, as in hickory's way (SPEC §1); answers that still
    /// do not fit are cut at the lowest ordinals with TC=1, and then carry no addresses. For TCP
    /// answers too big for hickory's way, whose compression stops after 120 names: a
    /// 65,535-byte message then holds about 1,230 SRV records instead of 850.
    Pointers,
}

fn qtype(t: u16) -> QType {
    match t {
        wire::TYPE_A => QType::A,
        wire::TYPE_AAAA => QType::Aaaa,
        wire::TYPE_SRV => QType::Srv,
        wire::TYPE_PTR => QType::Ptr,
        wire::TYPE_SOA => QType::Soa,
        wire::TYPE_NS => QType::Ns,
        wire::TYPE_ANY => QType::Any,
        _ => QType::Other,
    }
}

fn qtype_index(t: u16) -> usize {
    match t {
        wire::TYPE_A => 0,
        wire::TYPE_AAAA => 1,
        wire::TYPE_SRV => 2,
        wire::TYPE_PTR => 3,
        wire::TYPE_SOA => 4,
        wire::TYPE_NS => 5,
        wire::TYPE_ANY => 6,
        _ => 7,
    }
}

/// A target name: a member's name, then a zone.
fn target<'a>(member: &'a Identity, zone: &'a DomainName) -> impl Iterator<Item = &'a [u8]> + 'a {
    member
        .labels()
        .chain(zone.labels().iter().map(|l| l.as_bytes()))
}

impl Handler {
    /// Answers `packet` on the fast path, or `None` to leave it to the general path.
    pub(super) fn answer_fast(
        &self,
        packet: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        let query = wire::parse_query(packet)?;
        if matches!(query.qtype, wire::TYPE_AXFR | wire::TYPE_IXFR) {
            return None;
        }
        // The question's labels as received (for owner names), and lower-cased (for lookups).
        let mut original: [&[u8]; 128] = [&[]; 128];
        let mut count = 0;
        for label in query.labels() {
            *original.get_mut(count)? = label;
            count += 1;
        }
        let original = &original[..count];
        let mut lower_bytes = [0u8; 256];
        let name_len = query.question.len() - 4;
        lower_bytes[..name_len].copy_from_slice(&query.question[..name_len]);
        lower_bytes[..name_len].make_ascii_lowercase();
        let mut lower: [&[u8]; 128] = [&[]; 128];
        let mut at = 0;
        for slot in lower.iter_mut().take(count) {
            let len = lower_bytes[at] as usize;
            *slot = &lower_bytes[at + 1..at + 1 + len];
            at += 1 + len;
        }

        let snapshot = self.published.load();
        let resolution = zone::resolve(
            &self.settings,
            snapshot.as_deref(),
            &lower[..count],
            qtype(query.qtype),
        );
        let serial = snapshot.as_ref().map_or(0, |s| s.serial);
        let limit = match transport {
            Transport::Udp => query
                .edns
                .map_or(512, |e| e.payload.clamp(512, self.max_udp_payload) as usize),
            Transport::Tcp => u16::MAX as usize,
        };
        CANDIDATES.with_borrow_mut(|candidates| {
            let start = out.len();
            let mut write = |owners| {
                out.truncate(start);
                let r = &resolution;
                self.write(&query, original, r, serial, limit, owners, out, candidates)
            };
            match write(Owners::Hickory) {
                Ok(reply) => Some(reply),
                // Over TCP the answer must be complete where it can be (SPEC §4).
                Err(Full) if transport == Transport::Tcp => write(Owners::Pointers).ok(),
                Err(Full) => None,
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        query: &Query<'_>,
        question: &[&[u8]],
        resolution: &zone::Resolution<'_>,
        serial: u32,
        limit: usize,
        owners: Owners,
        out: &mut Vec<u8>,
        candidates: &mut Candidates,
    ) -> Result<Reply, Full> {
        let settings = &self.settings;
        let nsid = query.edns.and_then(|e| self.nsid_for(e.nsid));
        let opt = if query.edns.is_some() {
            self.opt_len(nsid)
        } else {
            0
        };
        let mut w = Writer::new(out, limit - opt, candidates);
        w.bytes(&[0; 12])?;
        w.question(query)?;
        let owner = || question.iter().copied();
        // The zone's labels end the question's name.
        let apex_from = question.len() - resolution.apex_labels.min(question.len());
        let apex = || question[apex_from..].iter().copied();
        // Where the zone's name is in the message (the question follows the 12-byte header),
        // for `Owners::Pointers`; computed only there.
        let apex_at = || {
            let before: usize = question[..apex_from].iter().map(|l| 1 + l.len()).sum();
            12 + before as u16
        };
        let zone = &settings.zones[resolution.target_zone];

        let mut answers = 0u16;
        let mut truncated = false;
        for record in resolution.records() {
            let (rtype, ttl) = match record {
                Rdata::A(_) => (wire::TYPE_A, settings.ttl),
                Rdata::Aaaa(_) => (wire::TYPE_AAAA, settings.ttl),
                Rdata::Srv { .. } => (wire::TYPE_SRV, settings.ttl),
                Rdata::Ptr(_) => (wire::TYPE_PTR, settings.ttl),
                Rdata::Ns => (wire::TYPE_NS, settings.ttl),
                Rdata::Soa => (wire::TYPE_SOA, settings.negative_ttl),
            };
            let rdata = |w: &mut Writer<'_>| match record {
                Rdata::A(a) => w.a(a),
                Rdata::Aaaa(a) => w.aaaa(a),
                Rdata::Srv { port, target: t } => {
                    w.u16(0)?;
                    w.u16(1)?;
                    w.u16(port)?;
                    w.name(target(t, zone), false)
                }
                Rdata::Ptr(t) => w.name(target(t, zone), true),
                Rdata::Ns => w.name(
                    settings.nameserver.labels().iter().map(|l| l.as_bytes()),
                    true,
                ),
                Rdata::Soa => self.soa_rdata(w, serial),
            };
            let at_apex = matches!(record, Rdata::Soa);
            match owners {
                Owners::Hickory if at_apex => w.record(apex(), rtype, ttl, rdata)?,
                Owners::Hickory => w.record(owner(), rtype, ttl, rdata)?,
                Owners::Pointers => {
                    let mark = w.mark();
                    let at = if at_apex { apex_at() } else { 12 };
                    if w.record_at(at, rtype, ttl, rdata).is_err() {
                        // Cut here: the records so far are the lowest ordinals.
                        w.rewind(mark);
                        truncated = true;
                        break;
                    }
                }
            }
            answers += 1;
        }
        let authorities = if resolution.has_soa_authority() && !truncated {
            let ttl = settings.negative_ttl;
            let rdata = |w: &mut Writer<'_>| self.soa_rdata(w, serial);
            match owners {
                Owners::Hickory => w.record(apex(), wire::TYPE_SOA, ttl, rdata)?,
                Owners::Pointers => w.record_at(apex_at(), wire::TYPE_SOA, ttl, rdata)?,
            }
            1
        } else {
            0
        };
        // Additional records go in whole per member while they fit; none is cut (no TC).
        let mut additionals = 0u16;
        let glue = resolution.glue().filter(|_| !truncated);
        for member in glue {
            let mark = w.mark();
            let group = (|| {
                let mut n = 0;
                for a in member.v4() {
                    w.record(
                        target(&member.identity, zone),
                        wire::TYPE_A,
                        settings.ttl,
                        |w| w.a(a),
                    )?;
                    n += 1;
                }
                for a in member.v6() {
                    w.record(
                        target(&member.identity, zone),
                        wire::TYPE_AAAA,
                        settings.ttl,
                        |w| w.aaaa(a),
                    )?;
                    n += 1;
                }
                Ok::<u16, Full>(n)
            })();
            match group {
                Ok(n) => additionals += n,
                Err(Full) => {
                    w.rewind(mark);
                    break;
                }
            }
        }
        if let Some(edns) = query.edns {
            w.set_limit(limit);
            w.opt(
                edns.payload.clamp(512, self.max_udp_payload),
                edns.dnssec_ok,
                nsid,
            )?;
            additionals += 1;
        }

        let rcode: u8 = match resolution.kind {
            AnswerKind::Data | AnswerKind::NoData => 0,
            AnswerKind::NxDomain => 3,
            AnswerKind::Refused => 5,
            AnswerKind::NotReady => 2,
        };
        let authoritative = matches!(
            resolution.kind,
            AnswerKind::Data | AnswerKind::NoData | AnswerKind::NxDomain
        );
        let flags1 = 0x80
            | if authoritative { 0x04 } else { 0 }
            | if truncated { 0x02 } else { 0 }
            | if query.recursion_desired { 0x01 } else { 0 };
        let flags2 = if query.checking_disabled { 0x10 } else { 0 } | rcode;
        w.set_u16(0, query.id);
        w.set_u16(2, u16::from_be_bytes([flags1, flags2]));
        w.set_u16(4, 1);
        w.set_u16(6, answers);
        w.set_u16(8, authorities);
        w.set_u16(10, additionals);
        let rcode_index = match rcode {
            0 => 0,
            3 => 1,
            2 => 2,
            _ => 3,
        };
        Ok(Reply {
            qtype: qtype_index(query.qtype),
            rcode: rcode_index,
            truncated,
        })
    }

    fn soa_rdata(&self, w: &mut Writer<'_>, serial: u32) -> Result<(), Full> {
        let s = &self.settings;
        w.name(s.nameserver.labels().iter().map(|l| l.as_bytes()), true)?;
        w.name(s.hostmaster.labels().iter().map(|l| l.as_bytes()), true)?;
        w.u32(serial)?;
        w.u32(SOA_REFRESH as u32)?;
        w.u32(SOA_RETRY as u32)?;
        w.u32(SOA_EXPIRE as u32)?;
        w.u32(s.negative_ttl)
    }
}
