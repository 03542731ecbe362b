//! The fast path: common queries answered straight from the snapshot into the output buffer,
//! with no parse into owned types, no allocation and no lock. It produces the same bytes as the
//! general path (hickory's parser and encoder), which still answers everything else: other
//! opcodes, EDNS versions or options hickory interprets, unusual sections, and answers that
//! must be truncated.

use std::cell::RefCell;

use super::wire::{self, Candidates, Full, Query, Writer};
use super::{Handler, OPT_LEN, Reply, SOA_EXPIRE, SOA_REFRESH, SOA_RETRY};
use crate::identity::Identity;
use crate::metrics::Transport;
use crate::zone::{self, AnswerKind, DomainName, QType, Rdata};

thread_local! {
    /// Compression candidates, reused by every message this thread writes.
    static CANDIDATES: RefCell<Candidates> = RefCell::new(Candidates::default());
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
            self.write(
                &query,
                original,
                &resolution,
                serial,
                limit,
                out,
                candidates,
            )
            .ok()
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
        out: &mut Vec<u8>,
        candidates: &mut Candidates,
    ) -> Result<Reply, Full> {
        let settings = &self.settings;
        let opt = if query.edns.is_some() { OPT_LEN } else { 0 };
        let mut w = Writer::new(out, limit - opt, candidates);
        w.bytes(&[0; 12])?;
        w.question(query)?;
        let owner = || question.iter().copied();
        let apex = || {
            question[question.len() - resolution.apex_labels.min(question.len())..]
                .iter()
                .copied()
        };
        let zone = &settings.zones[resolution.target_zone];

        let mut answers = 0u16;
        for record in resolution.records() {
            answers += 1;
            match record {
                Rdata::A(a) => w.record(owner(), wire::TYPE_A, settings.ttl, |w| w.a(a))?,
                Rdata::Aaaa(a) => {
                    w.record(owner(), wire::TYPE_AAAA, settings.ttl, |w| w.aaaa(a))?
                }
                Rdata::Srv { port, target: t } => {
                    w.record(owner(), wire::TYPE_SRV, settings.ttl, |w| {
                        w.u16(0)?;
                        w.u16(1)?;
                        w.u16(port)?;
                        w.name(target(t, zone), false)
                    })?
                }
                Rdata::Ptr(t) => w.record(owner(), wire::TYPE_PTR, settings.ttl, |w| {
                    w.name(target(t, zone), true)
                })?,
                Rdata::Ns => w.record(owner(), wire::TYPE_NS, settings.ttl, |w| {
                    w.name(
                        settings.nameserver.labels().iter().map(|l| l.as_bytes()),
                        true,
                    )
                })?,
                Rdata::Soa => w.record(apex(), wire::TYPE_SOA, settings.negative_ttl, |w| {
                    self.soa_rdata(w, serial)
                })?,
            }
        }
        let authorities = if resolution.has_soa_authority() {
            w.record(apex(), wire::TYPE_SOA, settings.negative_ttl, |w| {
                self.soa_rdata(w, serial)
            })?;
            1
        } else {
            0
        };
        // Additional records go in whole per member while they fit; none is cut (no TC).
        let mut additionals = 0u16;
        for member in resolution.glue() {
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
            truncated: false,
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
