//! Response rate limiting (RRL) for UDP, as Knot DNS, NSD and BIND do it. Responses to each
//! source prefix (/24 for IPv4, /56 for IPv6) are counted per second; beyond the rate, one
//! response in `slip` goes out empty and truncated (TC=1: a real client retries over TCP, which
//! a spoofed source cannot) and the others are dropped. A flood from one prefix, spoofed or not,
//! then neither amplifies nor takes the answers of other prefixes.
//!
//! The counters live in a fixed table indexed by a keyed hash of the prefix, so a flood from
//! countless spoofed sources cannot grow memory; prefixes that share a slot share its budget.
//! Sources in an exempt block (the cluster DNS, say, beside pods that query roster directly)
//! are neither counted nor limited.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use tracing::warn;

use super::OncePerMinute;

/// Slots in the table: 512 KiB of counters.
const SLOTS: usize = 1 << 16;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it empty, with TC=1.
    Slip,
    Drop,
}

/// A block of addresses (CIDR notation; an address alone is a block of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    network: IpAddr,
    bits: u8,
}

impl Block {
    /// Parses `10.96.0.10`, `10.244.0.0/16` or `fd00::/8`. A block with host bits set is refused
    /// rather than widened: `10.244.1.5/16` is more likely a mistake than a wish.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a block (10.0.0.0/8, fd00::/8)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        let block = Block { network, bits };
        if block.masked(network) != network {
            return Err(format!(
                "{text:?} has bits set after its /{bits} prefix; the block is {}",
                Block {
                    network: block.masked(network),
                    bits,
                }
            ));
        }
        // Sources are compared as IPv4 when they are IPv4-mapped; so are such blocks.
        if let (IpAddr::V6(v6), 96..) = (network, bits)
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(Block {
                network: IpAddr::V4(v4),
                bits: bits - 96,
            });
        }
        Ok(block)
    }

    /// `ip` cut to this block's prefix length.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counting as IPv4) is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.bits)
    }
}

pub struct RateLimit {
    /// Responses per second per prefix.
    rate: u32,
    /// Every `slip`-th limited response is slipped; 0: none is.
    slip: u32,
    /// Sources never limited.
    exempt: Vec<Block>,
    /// Per slot: the second (since `epoch`) in the high half, responses in it in the low half.
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    epoch: Instant,
    logged: OncePerMinute,
}

/// An IPv4-mapped IPv6 address (a v4 client on a dual-stack socket) as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The prefix a source is limited by: the /24 of an IPv4 address, the /56 of an IPv6 one.
fn prefix(ip: IpAddr) -> (u8, u64) {
    match unmapped(ip) {
        IpAddr::V4(v4) => (4, u64::from(u32::from(v4) >> 8)),
        IpAddr::V6(v6) => (6, (u128::from(v6) >> 72) as u64),
    }
}

impl RateLimit {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, slip: u32, exempt: Vec<Block>) -> Option<Self> {
        (rate > 0).then(|| RateLimit {
            rate,
            slip,
            exempt,
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
            logged: OncePerMinute::new(),
        })
    }

    /// Counts one response to `src` and says what to do with it.
    pub fn check(&self, src: IpAddr) -> Verdict {
        self.check_at(src, self.epoch.elapsed().as_secs())
    }

    /// [`RateLimit::check`] in second `now` since the table was made.
    fn check_at(&self, src: IpAddr, now: u64) -> Verdict {
        if self.exempt.iter().any(|b| b.contains(src)) {
            return Verdict::Send;
        }
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
            self.log(src);
        }
        if self.slip > 0 && (count - self.rate) % self.slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    fn log(&self, src: IpAddr) {
        if self.logged.allow() {
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
        let rl = RateLimit::new(3, 2, vec![]).unwrap();
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
        let rl = RateLimit::new(1, 0, vec![]).unwrap();
        let src: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(rl.check_at(src, 0), Verdict::Send);
        let rest: Vec<Verdict> = (0..5).map(|_| rl.check_at(src, 0)).collect();
        assert!(rest.iter().all(|v| *v == Verdict::Drop), "{rest:?}");
    }

    #[test]
    fn exempt_sources_are_neither_limited_nor_counted() {
        let exempt = vec![
            Block::parse("192.0.2.53").unwrap(),
            Block::parse("2001:db8::/32").unwrap(),
        ];
        let rl = RateLimit::new(2, 0, exempt).unwrap();
        let resolver: IpAddr = "192.0.2.53".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(rl.check_at(resolver, 0), Verdict::Send);
        }
        let mapped: IpAddr = "::ffff:192.0.2.53".parse().unwrap();
        assert_eq!(rl.check_at(mapped, 0), Verdict::Send);
        // The rest of its /24 still has its whole budget, and no more.
        let pod: IpAddr = "192.0.2.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..3).map(|_| rl.check_at(pod, 0)).collect();
        assert_eq!(verdicts, [Verdict::Send, Verdict::Send, Verdict::Drop]);
        for _ in 0..10 {
            assert_eq!(
                rl.check_at("2001:db8:1::9".parse().unwrap(), 0),
                Verdict::Send
            );
        }
        let outside: IpAddr = "2001:db9::9".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..3).map(|_| rl.check_at(outside, 0)).collect();
        assert_eq!(verdicts, [Verdict::Send, Verdict::Send, Verdict::Drop]);
    }

    #[test]
    fn blocks_parse_with_clear_errors() {
        let b = Block::parse("10.244.0.0/16").unwrap();
        assert!(b.contains("10.244.255.1".parse().unwrap()));
        assert!(!b.contains("10.245.0.1".parse().unwrap()));
        assert!(!b.contains("::ffff:10.245.0.1".parse().unwrap()));
        assert!(!b.contains("fd00::1".parse().unwrap()));
        assert_eq!(b.to_string(), "10.244.0.0/16");
        assert_eq!(
            Block::parse("10.96.0.10").unwrap().to_string(),
            "10.96.0.10/32"
        );
        assert!(
            Block::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.9".parse().unwrap())
        );
        assert!(
            Block::parse("::/0")
                .unwrap()
                .contains("fd00::1".parse().unwrap())
        );
        assert_eq!(Block::parse("fd00::/8").unwrap().to_string(), "fd00::/8");
        let mapped = Block::parse("::ffff:10.96.0.0/108").unwrap();
        assert_eq!(mapped.to_string(), "10.96.0.0/12");
        assert!(mapped.contains("10.100.0.1".parse().unwrap()));
        assert!(mapped.contains("::ffff:10.100.0.1".parse().unwrap()));
        for (bad, says) in [
            (
                "10.244.1.5/16",
                "bits set after its /16 prefix; the block is 10.244.0.0/16",
            ),
            ("10.0.0.0/33", "the prefix length must be 0 to 32"),
            ("fd00::/129", "the prefix length must be 0 to 128"),
            ("10.0.0.0/x", "the prefix length"),
            ("coredns", "is not an address or a block"),
            ("", "is not an address or a block"),
        ] {
            let e = Block::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
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
