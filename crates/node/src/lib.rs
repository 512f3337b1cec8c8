//! The Ocellus node: one bounded FIFO queue of jobs shared by every client,
//! a pool of worker threads, the TCP server that speaks the protocol of
//! `ocellus-protocol`, and the client the CLI uses.
//!
//! Structure (after tokio-rs/mini-redis): [`queue`] holds jobs and tells
//! every waiting client where it stands; [`connection`] reads frames,
//! turns requests into jobs and writes events back; [`server`] accepts
//! connections and shuts down gracefully; [`client`] is the other end.

#![warn(missing_docs)]

pub mod client;
pub mod config;
mod connection;
mod face_jobs;
pub mod faces;
mod forward;
mod job;
pub mod mesh;
pub mod queue;
pub mod recognition;
pub mod routing;
pub mod server;
pub mod status;

pub use config::{NodeConfig, Roles};
pub use server::{Server, ServerHandle};
