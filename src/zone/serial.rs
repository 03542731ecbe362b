//! SOA serials that increase on every change and survive restarts without stored state.
//!
//! A serial is the wall clock in milliseconds modulo 2^32, or the previous serial plus one when
//! the clock has not moved past it (several changes in one millisecond, or a clock step back).
//! Comparison is RFC 1982 serial arithmetic, so the serial may wrap (every 49.7 days); a restarted
//! roster starts from the clock, which is ahead of every serial the previous run published unless
//! that run made more than one change per millisecond on average, or the restart came more than
//! 24.8 days (2^31 ms) later, when RFC 1982 no longer orders the two.

use std::time::{SystemTime, UNIX_EPOCH};

/// `a > b` in RFC 1982 arithmetic (SERIAL_BITS = 32).
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The serial to publish after `previous`, given the clock in milliseconds since the epoch.
pub fn next(previous: Option<u32>, now_ms: u64) -> u32 {
    let clock = now_ms as u32; // modulo 2^32 by design
    match previous {
        Some(p) if !serial_gt(clock, p) => p.wrapping_add(1),
        _ => clock,
    }
}

/// Milliseconds since the Unix epoch.
pub fn clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_order() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(!serial_gt(5, 5));
        assert!(serial_gt(0, u32::MAX), "wraps");
        assert!(serial_gt(100, u32::MAX - 100));
    }

    #[test]
    fn increases_on_every_change() {
        let t = 1_700_000_000_123u64;
        let first = next(None, t);
        let second = next(Some(first), t);
        assert!(serial_gt(second, first), "same millisecond still increases");
        let third = next(Some(second), t - 5_000);
        assert!(
            serial_gt(third, second),
            "a clock step back still increases"
        );
        let later = next(Some(third), t + 60_000);
        assert_eq!(
            later,
            (t + 60_000) as u32,
            "follows the clock when it is ahead"
        );
    }

    #[test]
    fn restart_is_ahead_of_the_previous_run() {
        let t = 1_700_000_000_000u64;
        let mut s = next(None, t);
        for _ in 0..500 {
            s = next(Some(s), t + 1_000); // 500 changes within one second
        }
        let after_restart = next(None, t + 2_000);
        assert!(serial_gt(after_restart, s));
    }

    #[test]
    fn wraps_across_the_modulus() {
        let t = (1u64 << 32) * 400 - 10; // ten milliseconds before a wrap
        let a = next(None, t);
        let b = next(Some(a), t + 20);
        assert!(
            b < a && serial_gt(b, a),
            "numerically smaller, but later in RFC 1982 terms"
        );
    }
}
