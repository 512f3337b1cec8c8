//! The route handlers, one file per group: the synchronous operations
//! ([`ops`]), jobs ([`jobs`]), probes ([`probe`]), metrics ([`metrics`]) and the page ([`web`]).

pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod ops;
pub(crate) mod probe;
pub(crate) mod web;
