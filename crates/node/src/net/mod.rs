//! The TCP side of a node: accepting connections ([`listener`]) within
//! the connection caps ([`crate::admission`]), TLS on
//! them when configured ([`tls`]), reading
//! frames and writing events on each ([`connection`]), and delivering a
//! request's events in order with backpressure ([`writer`]).
//!
//! What a request means is not decided here: each complete frame becomes
//! an [`Incoming`](crate::call::Incoming) handed to
//! [`crate::request::handle`].

pub(crate) mod connection;
pub(crate) mod listener;
pub(crate) mod writer;
