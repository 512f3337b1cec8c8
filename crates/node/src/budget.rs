//! The node's memory budget: one count of the bytes that clients make the
//! node hold — frames being received, requests waiting or running (their
//! payloads), and results waiting to be written.
//!
//! Invariants:
//! - every such byte is held through a [`Charge`], and dropping the charge
//!   gives it back (a closed connection, a finished request, a written
//!   result: whatever path it takes);
//! - [`MemoryBudget::reserve`] (reading from a connection) waits while the
//!   budget is spent: the node stops reading rather than failing, and
//!   resumes as soon as something is given back. It lets a reservation
//!   through when nothing else is held, so one frame within the limit is
//!   always read;
//! - [`MemoryBudget::charge`] (a result that exists already) never waits:
//!   it may take the count over the limit, which only delays reading.
//!
//! The budget counts what clients send and are sent, not the working
//! memory of a running job (decoded pixels, filter buffers): that is
//! bounded per job by the decode and cost limits (`docs/limits.md`) and in
//! number by the workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// What one connection may always hold, budget or not: a frame of this
/// size (a request with a thumbnail, any STATUS or PEOPLE) is read even
/// when large uploads have spent the budget.
pub(crate) const ALWAYS_FITS: u64 = 64 * 1024;

/// The node-wide count of held bytes against a limit.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    /// Woken whenever bytes are given back.
    freed: Notify,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit: limit.max(1),
            used: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// The limit, bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// An empty charge, to grow later.
    pub fn empty(self: &Arc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Holds `bytes` at once, over the limit if need be.
    pub fn charge(self: &Arc<Self>, bytes: u64) -> Charge {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    /// Adds `bytes` if they fit (or nothing is held); whether it did.
    fn try_take(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used != 0 && used.saturating_add(bytes) > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Waits until `bytes` fit, then holds them.
    #[cfg(test)]
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Charge {
        let mut charge = self.empty();
        charge.grow(bytes).await;
        charge
    }

    fn give_back(&self, bytes: u64) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }
}

/// Bytes held against the budget until dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Charge {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Waits until `more` bytes fit in the budget, then holds them too.
    /// A charge of at most [`ALWAYS_FITS`] bytes never waits, so that
    /// small requests are still read while large uploads have spent the
    /// budget (the count may then exceed the limit by that much per
    /// connection).
    pub async fn grow(&mut self, more: u64) {
        if self.bytes + more <= ALWAYS_FITS {
            return self.force(more);
        }
        loop {
            // Registered before trying, so a release between the try and
            // the wait is not missed.
            let freed = self.budget.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.budget.try_take(more) {
                self.bytes += more;
                return;
            }
            freed.await;
        }
    }

    /// Holds `more` bytes at once, over the limit if need be.
    pub fn force(&mut self, more: u64) {
        self.budget.used.fetch_add(more, Ordering::AcqRel);
        self.bytes += more;
    }

    /// Gives back all but `keep` bytes.
    pub fn shrink_to(&mut self, keep: u64) {
        if keep < self.bytes {
            self.budget.give_back(self.bytes - keep);
            self.bytes = keep;
        }
    }

    /// Moves `bytes` (at most all of them) into a charge of their own.
    pub fn split(&mut self, bytes: u64) -> Charge {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Charge {
            budget: self.budget.clone(),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// A quarter of the machine's physical memory (the default budget), or
/// 1 GiB when it cannot be read.
pub fn default_memory_budget() -> u64 {
    physical_memory().map_or(1 << 30, |m| m / 4)
}

/// Physical memory, bytes, from `/proc/meminfo`.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_bytes_are_given_back() {
        let budget = MemoryBudget::new(100 * ALWAYS_FITS);
        let a = budget.reserve(60 * ALWAYS_FITS).await;
        assert_eq!(budget.used(), 60 * ALWAYS_FITS);
        // 60 + 50 > 100: waits.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50 * ALWAYS_FITS).await })
        };
        // A small one does not.
        let small = budget.reserve(ALWAYS_FITS).await;
        drop(small);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.bytes(), budget.used()),
            (50 * ALWAYS_FITS, 50 * ALWAYS_FITS)
        );
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn one_reservation_over_the_limit_passes_when_nothing_is_held() {
        let budget = MemoryBudget::new(10 * ALWAYS_FITS);
        let big = budget.reserve(25 * ALWAYS_FITS).await;
        assert_eq!(budget.used(), 25 * ALWAYS_FITS);
        // Results may go over; reading waits.
        let result = budget.charge(5);
        assert_eq!(budget.used(), 25 * ALWAYS_FITS + 5);
        drop((big, result));
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn split_and_shrink_keep_the_count_exact() {
        let budget = MemoryBudget::new(1000);
        let mut c = budget.reserve(300).await;
        let part = c.split(120);
        assert_eq!((c.bytes(), part.bytes(), budget.used()), (180, 120, 300));
        c.shrink_to(80);
        assert_eq!(budget.used(), 200);
        c.force(2000);
        assert_eq!(budget.used(), 2200);
        drop(c);
        drop(part);
        assert_eq!(budget.used(), 0);
    }
}
