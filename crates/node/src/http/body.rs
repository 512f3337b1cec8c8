//! A request body counted against the node's memory budget as it arrives,
//! as the TCP port counts a frame being received (`crate::budget`).
//!
//! Invariants:
//! - before each read from the client, the bytes it may bring are held in
//!   the budget ([`STEP`] at a time, or what the `Content-Length` says is
//!   left, whichever is smaller); when the budget is spent the wait happens
//!   there, so hyper stops reading the connection: backpressure, not a
//!   failure. Bodies of at most [`ALWAYS_FITS`] never wait;
//! - a body declaring more than the whole budget is refused before any of
//!   it is read (`frame_too_large`, naming `--memory-budget`);
//! - once the body is read, [`Counted::finish`] hands over one charge of
//!   exactly the bytes received, which the request then holds until it is
//!   answered; any other path drops it and gives the bytes back.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use futures_util::StreamExt;
use ocellus_protocol::ErrorCode;
use tokio::sync::Mutex;

use super::error::ApiError;
use crate::budget::{ALWAYS_FITS, Charge, MemoryBudget};

/// How much is held ahead of a read: the TCP port's step, so that the two
/// ports wait for the budget alike.
const STEP: u64 = 1 << 20;

#[derive(Debug)]
struct Count {
    charge: Charge,
    /// Held, not yet received.
    credit: u64,
    received: u64,
    /// What the client said is still to come, if it said.
    left: Option<u64>,
    /// Set once the body proved larger than the whole budget.
    refused: bool,
}

/// The count of a body being read; see the module docs.
#[derive(Debug)]
pub(crate) struct Counted {
    count: Arc<Mutex<Count>>,
}

/// Replaces `request`'s body with one counted against `budget`.
pub(crate) fn count(
    request: Request,
    budget: &Arc<MemoryBudget>,
) -> Result<(Request, Counted), ApiError> {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared
        && length > budget.limit()
        && length > ALWAYS_FITS
    {
        return Err(ApiError::protocol(
            ErrorCode::FrameTooLarge,
            format!(
                "a body of {length} bytes is larger than the node's memory budget of {} bytes (--memory-budget)",
                budget.limit()
            ),
        ));
    }
    let count = Arc::new(Mutex::new(Count {
        charge: budget.empty(),
        credit: 0,
        received: 0,
        left: declared,
        refused: false,
    }));
    let limit = budget.limit();
    let (parts, body) = request.into_parts();
    let stream = futures_util::stream::unfold(
        (body.into_data_stream(), count.clone()),
        move |(mut stream, count)| async move {
            let refusal = {
                let mut c = count.lock().await;
                if c.refused {
                    return None;
                }
                if c.credit == 0 && c.left != Some(0) {
                    let step = c.left.map_or(STEP, |left| left.min(STEP));
                    let after = c.charge.bytes() + step;
                    if after > limit && after > ALWAYS_FITS {
                        // Only a body without a Content-Length gets here:
                        // waiting would never end, since the budget would
                        // have to hold this body alone.
                        c.refused = true;
                        Some(std::io::Error::other(format!(
                            "the body is larger than the node's memory budget of {limit} bytes (--memory-budget)"
                        )))
                    } else {
                        c.charge.grow(step).await;
                        c.credit = step;
                        None
                    }
                } else {
                    None
                }
            };
            if let Some(error) = refusal {
                return Some((Err(axum::Error::new(error)), (stream, count)));
            }
            let chunk = stream.next().await?;
            if let Ok(bytes) = &chunk {
                let mut c = count.lock().await;
                let n = bytes.len() as u64;
                if n > c.credit {
                    let over = n - c.credit;
                    c.charge.force(over);
                    c.credit = 0;
                } else {
                    c.credit -= n;
                }
                c.received += n;
                c.left = c.left.map(|left| left.saturating_sub(n));
            }
            Some((chunk, (stream, count)))
        },
    );
    let request = Request::from_parts(parts, Body::from_stream(stream));
    Ok((request, Counted { count }))
}

impl Counted {
    /// The charge of exactly the bytes received (the credit held ahead is
    /// given back).
    pub async fn finish(self) -> Charge {
        let mut c = self.count.lock().await;
        let received = c.received;
        c.credit = 0;
        c.charge.shrink_to(received);
        let empty = c.charge.split(0);
        std::mem::replace(&mut c.charge, empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(bytes: usize, declared: bool) -> Request {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..bytes.div_ceil(100_000))
            .map(|i| {
                Ok(bytes::Bytes::from(vec![
                    1u8;
                    100_000.min(bytes - i * 100_000)
                ]))
            })
            .collect();
        let mut builder = Request::builder().method("POST").uri("/v1/filter");
        if declared {
            builder = builder.header("content-length", bytes.to_string());
        }
        builder
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap()
    }

    #[tokio::test]
    async fn the_received_bytes_are_held_and_handed_over() {
        for declared in [true, false] {
            let budget = MemoryBudget::new(64 << 20);
            let (request, counted) = count(upload(2_500_000, declared), &budget).unwrap();
            let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body.len(), 2_500_000);
            let charge = counted.finish().await;
            assert_eq!(charge.bytes(), 2_500_000);
            // The body and the charge are all that is held.
            assert_eq!(budget.used(), 2_500_000);
            drop(charge);
            assert_eq!(budget.used(), 0);
        }
    }

    #[tokio::test]
    async fn a_spent_budget_stops_the_reading_until_bytes_are_given_back() {
        let budget = MemoryBudget::new(4 << 20);
        let other = budget.charge(4 << 20);
        let (request, _counted) = count(upload(3_000_000, true), &budget).unwrap();
        let read = tokio::spawn(axum::body::to_bytes(request.into_body(), usize::MAX));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!read.is_finished(), "read while the budget was spent");
        drop(other);
        let body = read.await.unwrap().unwrap();
        assert_eq!(body.len(), 3_000_000);
    }

    #[tokio::test]
    async fn small_bodies_never_wait_and_larger_than_the_budget_is_refused() {
        let budget = MemoryBudget::new(1 << 20);
        let _spent = budget.charge(1 << 20);
        let (request, counted) = count(upload(10_000, true), &budget).unwrap();
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), 10_000);
        assert_eq!(counted.finish().await.bytes(), 10_000);
        let refused = count(upload(2 << 20, true), &budget).unwrap_err();
        assert!(
            format!("{refused:?}").contains("--memory-budget"),
            "{refused:?}"
        );
        // Without a Content-Length, it is refused once it outgrows it.
        drop(_spent);
        let (request, _counted) = count(upload(3 << 20, false), &budget).unwrap();
        let failed = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap_err();
        assert!(
            format!("{failed:?}").contains("--memory-budget"),
            "{failed:?}"
        );
    }
}
