//! Cooperative cancellation: the token long-running computations poll.
//!
//! Owns [`Cancel`], a cheap clonable handle on a shared flag that whoever
//! started a computation (the node, when a client goes away or a request is
//! withdrawn) may raise from any thread. Invariant: once a token reports
//! cancelled it stays cancelled (the flag is only ever raised), and
//! [`Cancel::never`] never does. Algorithms poll it at checkpoints (between
//! pipeline operations, between row bands of a filter, between pyramid
//! levels of detection) and give up with [`Cancelled`]; polling is one
//! relaxed atomic load, so it costs nothing measurable per row.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

/// A handle on a cancellation flag; [`Cancel::never`] (also the
/// `Default`) is a token that is never cancelled.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

/// The computation was stopped at a checkpoint because its [`Cancel`]
/// token was raised; whatever it had produced so far was dropped.
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancel {
    /// A token that is never cancelled.
    pub fn never() -> Cancel {
        Cancel(None)
    }

    /// A token that is cancelled once `flag` is true.
    pub fn new(flag: Arc<AtomicBool>) -> Cancel {
        Cancel(Some(flag))
    }

    /// Whether the flag has been raised.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// `Err(Cancelled)` once the flag has been raised.
    #[inline]
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_never_cancelled_and_a_flag_is_seen_by_clones() {
        assert_eq!(Cancel::never().check(), Ok(()));
        assert!(!Cancel::default().is_cancelled());
        let flag = Arc::new(AtomicBool::new(false));
        let token = Cancel::new(flag.clone());
        let clone = token.clone();
        assert_eq!(token.check(), Ok(()));
        flag.store(true, Ordering::Relaxed);
        assert_eq!(token.check(), Err(Cancelled));
        assert!(clone.is_cancelled());
        assert_eq!(Cancelled.to_string(), "cancelled");
    }
}
