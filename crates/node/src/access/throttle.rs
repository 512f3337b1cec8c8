//! Slowing down guessing: each address that keeps failing AUTH waits
//! longer before its next AUTH is answered.
//!
//! The first [`FREE_FAILURES`] failures cost nothing (a mistyped key);
//! after that each failure doubles the wait, from [`FIRST_DELAY`] up to
//! [`MAX_DELAY`]; an address with no failure for [`FORGET_AFTER`] starts
//! afresh. With 192-bit keys guessing is hopeless anyway: this keeps a
//! guesser from costing the node CPU and log lines at line rate.
//!
//! Invariant: the table holds at most [`MAX_ADDRESSES`] addresses (the
//! oldest are dropped first), so spoofed or many addresses cannot grow it
//! without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures from one address before it is slowed down.
pub(crate) const FREE_FAILURES: u32 = 3;
/// The wait after the first failure beyond the free ones.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest wait.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(8);
/// Failures older than this are forgotten.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at most.
pub(crate) const MAX_ADDRESSES: usize = 10_000;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failures per address.
#[derive(Default)]
pub(crate) struct Throttle {
    table: Mutex<HashMap<IpAddr, Record>>,
}

impl Throttle {
    /// How long `addr` must wait before its AUTH is answered.
    pub fn delay(&self, addr: IpAddr, now: Instant) -> Duration {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(&addr) {
            Some(r) if now.duration_since(r.last) < FORGET_AFTER => delay_for(r.failures),
            _ => Duration::ZERO,
        }
    }

    /// Records a failure from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&addr) {
            table.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if table.len() >= MAX_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, r)| r.last).map(|(a, _)| *a)
            {
                table.remove(&oldest);
            }
        }
        let r = table.entry(addr).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(r.last) >= FORGET_AFTER {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
    }

    /// A success from `addr` clears its record.
    pub fn succeeded(&self, addr: IpAddr) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
    }
}

/// The wait after `failures` failures.
fn delay_for(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_the_free_failures_and_are_forgotten() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed(a, now);
            assert_eq!(t.delay(a, now), Duration::ZERO);
        }
        t.failed(a, now);
        assert_eq!(t.delay(a, now), FIRST_DELAY);
        t.failed(a, now);
        assert_eq!(t.delay(a, now), FIRST_DELAY * 2);
        for _ in 0..40 {
            t.failed(a, now);
        }
        assert_eq!(t.delay(a, now), MAX_DELAY);
        assert_eq!(t.delay(b, now), Duration::ZERO);
        assert_eq!(t.delay(a, now + FORGET_AFTER), Duration::ZERO);
        t.succeeded(a);
        assert_eq!(t.delay(a, now), Duration::ZERO);
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(t.table.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
