//! Caps on open connections — in all, and per client address — and the
//! process' file-descriptor limit they must fit in.
//!
//! Invariants: a connection counts from accept to close through its
//! [`Slot`] (dropping it gives the place back); a connection over a cap is
//! still accepted, told why in one ERROR `busy` and closed
//! (the TCP and HTTP listeners), never left hanging in the backlog; the total cap
//! is never above what the descriptor limit leaves after a reserve for the
//! node's own files (store, logs, peer links).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

/// Descriptors kept for the node's own use (store, model files, peer
/// links, the HTTP listener, refused connections being answered).
const RESERVED_FDS: u64 = 64;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The node has as many connections as it allows.
    Total {
        /// The cap.
        max: usize,
    },
    /// This address has as many connections as one client may.
    Client {
        /// The cap.
        max: usize,
    },
}

impl Refused {
    /// What the refused client is told.
    pub fn message(self) -> String {
        match self {
            Refused::Total { max } => format!(
                "the node has {max} connections open, as many as it allows (--max-connections): retry later"
            ),
            Refused::Client { max } => format!(
                "this address has {max} connections open, as many as one client may (--max-connections-per-client): reuse them, or close one"
            ),
        }
    }
}

/// Open connections, counted against the caps.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Caps of `max_total` connections, `max_per_client` from one address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a place for a connection from `ip`, or says why not.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total {
                max: self.max_total,
            });
        }
        let mine = open.1.entry(ip).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refused::Client {
                max: self.max_per_client,
            });
        }
        *mine += 1;
        open.0 += 1;
        Ok(Slot {
            connections: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Raises the soft file-descriptor limit to the hard one and returns the
/// connection cap that fits in it: `wanted`, or less when the limit is
/// lower. Each listener (TCP, HTTP) has its own cap, so the descriptors
/// are shared between `listeners`.
pub(crate) fn fit_connections(wanted: usize, listeners: u64) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "cannot read or raise the file-descriptor limit");
            return wanted;
        }
    };
    let room = soft.saturating_sub(RESERVED_FDS) / listeners.max(1);
    let cap = (wanted as u64).min(room).max(1) as usize;
    info!(
        fd_limit = soft,
        max_connections = cap,
        "file-descriptor limit raised to the hard limit"
    );
    if cap < wanted {
        warn!(
            fd_limit = soft,
            wanted,
            max_connections = cap,
            "the file-descriptor limit allows fewer connections than --max-connections"
        );
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_all_and_per_address_and_places_come_back() {
        let c = Connections::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = c.open(a).unwrap();
        let _a2 = c.open(a).unwrap();
        assert_eq!(c.open(a).unwrap_err(), Refused::Client { max: 2 });
        let _b1 = c.open(b).unwrap();
        assert_eq!(c.open(b).unwrap_err(), Refused::Total { max: 3 });
        drop(a1);
        assert_eq!(c.count(), 2);
        let _b2 = c.open(b).unwrap();
        assert!(
            Refused::Client { max: 2 }
                .message()
                .contains("--max-connections-per-client")
        );
    }
}
