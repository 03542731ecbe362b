//! Response rate limiting (RRL) for UDP, as Knot DNS, NSD and BIND do it. Responses to each
//! source prefix (/24 for IPv4, /56 for IPv6) are counted per second; beyond the rate, one
//! response in `slip` goes out empty and truncated (TC=1: a real client retries over TCP, which
//! a spoofed source cannot) and the others are dropped. A flood from one prefix, spoofed or not,
//! then neither amplifies nor takes the answers of other prefixes.
//!
//! The counters live in a fixed table indexed by a keyed hash of the prefix, so a flood from
//! countless spoofed sources cannot grow memory; prefixes that share a slot share its budget.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::warn;

/// Slots in the table: 512 KiB of counters.
const SLOTS: usize = 1 << 16;
/// How often, at most, rate limiting is reported in the log.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it empty, with TC=1.
    Slip,
    Drop,
}

pub struct RateLimit {
    /// Responses per second per prefix.
    rate: u32,
    /// Every `slip`-th limited response is slipped; 0: none is.
    slip: u32,
    /// Per slot: the second (since `epoch`) in the high half, responses in it in the low half.
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    epoch: Instant,
    /// The second of the last log line, plus one (0: never).
    logged: AtomicU64,
}

/// The prefix a source is limited by: the /24 of an IPv4 address, the /56 of an IPv6 one.
fn prefix(ip: IpAddr) -> (u8, u64) {
    match ip {
        IpAddr::V4(v4) => (4, u64::from(u32::from(v4) >> 8)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (4, u64::from(u32::from(v4) >> 8)),
            None => (6, (u128::from(v6) >> 72) as u64),
        },
    }
}

impl RateLimit {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, slip: u32) -> Option<Self> {
        (rate > 0).then(|| RateLimit {
            rate,
            slip,
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            logged: AtomicU64::new(0),
        })
    }

    /// Counts one response to `src` and says what to do with it.
    pub fn check(&self, src: IpAddr) -> Verdict {
        self.check_at(src, self.epoch.elapsed().as_secs())
    }

    /// [`RateLimit::check`] in second `now` since the table was made.
    fn check_at(&self, src: IpAddr, now: u64) -> Verdict {
        let key = prefix(src);
        let slot = &self.slots[self.hasher.hash_one(key) as usize % SLOTS];
        let mut old = slot.load(Relaxed);
        let count = loop {
            let count = if old >> 32 == now & 0xffff_ffff {
                (old as u32).saturating_add(1)
            } else {
                1
            };
            let new = (now << 32) | u64::from(count);
            match slot.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                Ok(_) => break count,
                Err(current) => old = current,
            }
        };
        if count <= self.rate {
            return Verdict::Send;
        }
        if count == self.rate + 1 {
            self.log(src, now);
        }
        if self.slip > 0 && (count - self.rate) % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    fn log(&self, src: IpAddr, now: u64) {
        let last = self.logged.load(Relaxed);
        if (last == 0 || now + 1 - last >= LOG_EVERY.as_secs())
            && self
                .logged
                .compare_exchange(last, now + 1, Relaxed, Relaxed)
                .is_ok()
        {
            let (family, _) = prefix(src);
            let bits = if family == 4 { 24 } else { 56 };
            warn!(
                %src,
                prefix_bits = bits,
                rate = self.rate,
                "rate limiting UDP responses to a source prefix (dns.rate_limit); \
                 roster_dns_rate_limited_total counts them (logged at most once a minute)"
            );
        }
    }
}

/// Turns the answer in `out` into an empty truncated one: the header with TC=1 and no records,
/// and the question.
pub fn slip(out: &mut Vec<u8>) {
    if out.len() < 12 {
        return;
    }
    let questions = u16::from_be_bytes([out[4], out[5]]);
    let mut end = 12;
    if questions == 1 {
        // The question is the first name in the message, so it has no compression pointer.
        while end < out.len() && out[end] != 0 {
            end += 1 + out[end] as usize;
        }
        end = (end + 5).min(out.len());
    } else {
        out[4..6].fill(0);
    }
    out.truncate(end);
    out[2] |= 0x02; // TC
    out[6..12].fill(0); // no answer, authority or additional records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_gets_its_rate_then_one_slip_in_n() {
        let rl = RateLimit::new(3, 2).unwrap();
        let src: IpAddr = "192.0.2.10".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..9).map(|_| rl.check_at(src, 7)).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Send, Send, Send, Drop, Slip, Drop, Slip, Drop, Slip]
        );
        // Another host of the same /24 shares the budget; another /24 has its own.
        assert_eq!(rl.check_at("192.0.2.99".parse().unwrap(), 7), Drop);
        assert_eq!(rl.check_at("192.0.3.10".parse().unwrap(), 7), Send);
        // The next second starts afresh.
        assert_eq!(rl.check_at(src, 8), Send);
    }

    #[test]
    fn ipv6_sources_are_limited_by_their_56_bit_prefix() {
        assert_eq!(
            prefix("2001:db8:0:ab00::1".parse().unwrap()),
            prefix("2001:db8:0:abff:ffff::2".parse().unwrap())
        );
        assert_ne!(
            prefix("2001:db8:0:ab00::1".parse().unwrap()),
            prefix("2001:db8:0:ac00::1".parse().unwrap())
        );
        assert_eq!(
            prefix("::ffff:192.0.2.1".parse().unwrap()),
            prefix("192.0.2.200".parse().unwrap())
        );
    }

    #[test]
    fn no_slip_drops_every_limited_response() {
        let rl = RateLimit::new(1, 0).unwrap();
        let src: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(rl.check_at(src, 0), Verdict::Send);
        let rest: Vec<Verdict> = (0..5).map(|_| rl.check_at(src, 0)).collect();
        assert!(rest.iter().all(|v| *v == Verdict::Drop), "{rest:?}");
    }

    #[test]
    fn a_slipped_answer_keeps_header_and_question_only() {
        // ID 0x1234, QR AA RD, 1 question, 1 answer: a.b. A, then an A record.
        let mut out = vec![
            0x12, 0x34, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1, 0xc0,
            12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1,
        ];
        slip(&mut out);
        assert_eq!(
            out,
            [
                0x12, 0x34, 0x87, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1
            ]
        );
    }
}
