//! Following one request to its answer: its queue events as typed
//! [`Progress`], a BUSY answer sent again after a growing delay, an ERROR
//! as [`ClientError::Server`].
//!
//! It owns what every caller that wants one answer does with a request,
//! and nothing of how the news is shown (the caller's `progress` callback
//! decides that).
//!
//! Invariant: [`Client::call`] ends with exactly one of: the RESULT event;
//! the node's ERROR; [`ClientError::Closed`] when the events stop without
//! an answer; [`ClientError::StillBusy`] after [`Retry::attempts`] BUSY
//! answers. Progress comes in the order of the events, and each BUSY is
//! reported (with the wait) before the wait starts.

use std::time::Duration;

use ocellus_protocol::message::{Accepted, Busy, Position, from_header};
use ocellus_protocol::{Op, field};

use crate::{Call, Client, ClientError, Event};

/// How BUSY answers are retried: at most `attempts` sends; after the first
/// BUSY the request waits `first_delay`, after each next one twice as long
/// as before, never more than `max_delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Sends at most (at least one is made).
    pub attempts: u32,
    /// The wait after the first BUSY.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 30 attempts, waiting 0.2 s, 0.4 s, 0.8 s, 1.6 s, then 2 s.
    fn default() -> Retry {
        Retry {
            attempts: 30,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl Retry {
    /// The wait after a BUSY that followed a wait of `delay`.
    fn next_delay(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max_delay)
    }
}

/// News about a request before its answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The job is queued (ACCEPTED).
    Accepted {
        /// Its job number, place and the queue's length.
        accepted: Accepted,
        /// The address of the peer that holds it, when the node the
        /// client talks to handed the job on.
        forwarded_to: Option<String>,
    },
    /// The job's place in the queue (POSITION).
    Position {
        /// The job number from ACCEPTED (0 if none came).
        job: u64,
        /// Its place, what runs now and the expected wait.
        position: Position,
        /// As for [`Progress::Accepted`].
        forwarded_to: Option<String>,
    },
    /// The job runs (STARTED).
    Started {
        /// The job number from ACCEPTED (0 if none came).
        job: u64,
        /// As for [`Progress::Accepted`].
        forwarded_to: Option<String>,
    },
    /// The node's queue was full (BUSY): the request is sent again after
    /// `retry_in`.
    Busy {
        /// Jobs waiting there (0 if the node did not say).
        queue_length: u64,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

impl Client {
    /// Sends `call` and follows it to its answer, sending it again after
    /// each BUSY as `retry` says; `progress` gets the news meanwhile.
    /// Returns the RESULT event; an ERROR becomes
    /// `Err(ClientError::Server)`.
    pub async fn call(
        &self,
        call: &Call,
        retry: &Retry,
        mut progress: impl FnMut(Progress),
    ) -> Result<Event, ClientError> {
        let attempts = retry.attempts.max(1);
        let mut delay = retry.first_delay;
        for _ in 0..attempts {
            let mut request = self.send(call).await?;
            let mut job = 0;
            let mut busy = false;
            while let Some(event) = request.next().await {
                // A job the node handed to a peer: its events say which.
                let forwarded_to = event
                    .header
                    .get(field::NODE_ADDR)
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                match event.op {
                    Op::Accepted => {
                        if let Ok(accepted) = from_header::<Accepted>(&event.header) {
                            job = accepted.job;
                            progress(Progress::Accepted {
                                accepted,
                                forwarded_to,
                            });
                        }
                    }
                    Op::Position => {
                        if let Ok(position) = from_header::<Position>(&event.header) {
                            progress(Progress::Position {
                                job,
                                position,
                                forwarded_to,
                            });
                        }
                    }
                    Op::Started => progress(Progress::Started { job, forwarded_to }),
                    Op::Result => return Ok(event),
                    Op::Busy => {
                        let queue_length =
                            from_header::<Busy>(&event.header).map_or(0, |b| b.queue_length);
                        progress(Progress::Busy {
                            queue_length,
                            retry_in: delay,
                        });
                        busy = true;
                        break;
                    }
                    Op::Error => {
                        if let Some(e) = event.as_error() {
                            return Err(ClientError::Server(e));
                        }
                    }
                    _ => {}
                }
            }
            if !busy {
                // The events ended without a RESULT, ERROR or BUSY.
                return Err(request.closed());
            }
            tokio::time::sleep(delay).await;
            delay = retry.next_delay(delay);
        }
        Err(ClientError::StillBusy { attempts })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use ocellus_protocol::{Decoded, ErrorCode, Frame, FrameLimits, decode_frame};
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// The events a scripted node sends for one request.
    pub(crate) type Answer = Vec<(Op, Value)>;

    /// A node on a local port that answers the n-th request with the n-th
    /// answer (a RESULT echoes the request's payload), then closes the
    /// connection; its task returns the requests it got.
    pub(crate) async fn scripted_node(
        answers: Vec<Answer>,
    ) -> (String, tokio::task::JoinHandle<Vec<Frame>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut answers = answers.into_iter();
            let mut got = Vec::new();
            let mut buf = Vec::new();
            let limits = FrameLimits::default();
            loop {
                match decode_frame(&buf, &limits).expect("a valid frame") {
                    Decoded::Frame(frame, used) => {
                        buf.drain(..used);
                        let Some(answer) = answers.next() else { break };
                        for (op, header) in answer {
                            let Value::Object(header) = header else {
                                panic!("a header is an object")
                            };
                            let payload = if op == Op::Result {
                                frame.payload.clone()
                            } else {
                                Bytes::new()
                            };
                            let event = Frame::new(op, frame.request_id, header, payload);
                            stream.write_all(&event.to_bytes()).await.expect("write");
                        }
                        got.push(frame);
                        if answers.len() == 0 {
                            break;
                        }
                    }
                    Decoded::NeedMore(_) => {
                        if stream.read_buf(&mut buf).await.expect("read") == 0 {
                            break;
                        }
                    }
                }
            }
            got
        });
        (addr, task)
    }

    fn busy() -> Answer {
        vec![(Op::Busy, json!({"queue_length": 1, "capacity": 1}))]
    }

    /// Short waits, so the tests do not sleep.
    const FAST: Retry = Retry {
        attempts: 5,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };

    /// Calls the node at `addr` with a one-image DETECT; returns the
    /// outcome and the news.
    async fn call(addr: &str, retry: &Retry) -> (Result<Event, ClientError>, Vec<Progress>) {
        let client = Client::connect(addr).await.expect("connect");
        let news = Arc::new(Mutex::new(Vec::new()));
        let call = Call::with_images(Op::Detect, Default::default(), &[b"photo".as_slice()]);
        let sink = news.clone();
        let outcome = client
            .call(&call, retry, |p| sink.lock().expect("lock").push(p))
            .await;
        let news = news.lock().expect("lock").clone();
        (outcome, news)
    }

    #[tokio::test]
    async fn busy_twice_then_the_result_with_the_queue_news() {
        let (addr, node) = scripted_node(vec![
            busy(),
            busy(),
            vec![
                (
                    Op::Accepted,
                    json!({"job": 4, "position": 2, "queue_length": 3}),
                ),
                (
                    Op::Position,
                    json!({"position": 1, "queue_length": 2, "processing": [3], "eta_s": 1.5}),
                ),
                (Op::Started, json!({"job": 4})),
                (Op::Result, json!({"results": []})),
            ],
        ])
        .await;
        let (outcome, news) = call(&addr, &FAST).await;
        let event = outcome.expect("a RESULT");
        assert_eq!(event.op, Op::Result);
        assert_eq!(&event.payload[..], b"photo");
        assert_eq!(
            news,
            [
                Progress::Busy {
                    queue_length: 1,
                    retry_in: Duration::from_millis(1)
                },
                Progress::Busy {
                    queue_length: 1,
                    retry_in: Duration::from_millis(2)
                },
                Progress::Accepted {
                    accepted: Accepted {
                        job: 4,
                        position: 2,
                        queue_length: 3
                    },
                    forwarded_to: None
                },
                Progress::Position {
                    job: 4,
                    position: Position {
                        position: 1,
                        queue_length: 2,
                        processing: vec![3],
                        eta_s: 1.5
                    },
                    forwarded_to: None
                },
                Progress::Started {
                    job: 4,
                    forwarded_to: None
                },
            ]
        );
        // The same request three times, each under a new id.
        let got = node.await.expect("node");
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|f| &f.payload[..] == b"photo"));
        assert!(got.windows(2).all(|w| w[0].request_id < w[1].request_id));
    }

    #[tokio::test]
    async fn an_error_is_typed() {
        let (addr, _node) = scripted_node(vec![vec![
            (
                Op::Accepted,
                json!({"job": 1, "position": 1, "queue_length": 1}),
            ),
            (
                Op::Error,
                json!({"code": "bad_image", "message": "not an image"}),
            ),
        ]])
        .await;
        match call(&addr, &FAST).await.0 {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::BadImage);
                assert_eq!(e.message, "not an image");
            }
            other => panic!("expected the node's error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn gives_up_when_every_attempt_is_busy() {
        let retry = Retry {
            attempts: 3,
            ..FAST
        };
        let (addr, node) = scripted_node(vec![busy(), busy(), busy()]).await;
        let (outcome, news) = call(&addr, &retry).await;
        let err = outcome.expect_err("still busy");
        assert!(
            matches!(err, ClientError::StillBusy { attempts: 3 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "server still busy after 3 tries");
        let waits: Vec<Duration> = news
            .iter()
            .map(|p| match p {
                Progress::Busy { retry_in, .. } => *retry_in,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(waits, [1, 2, 2].map(Duration::from_millis));
        assert_eq!(node.await.expect("node").len(), 3);
    }

    #[tokio::test]
    async fn the_events_of_a_forwarded_job_name_the_peer() {
        let (addr, _node) = scripted_node(vec![vec![
            (
                Op::Accepted,
                json!({"job": 7, "position": 1, "queue_length": 1, "node_addr": "10.0.0.2:7070"}),
            ),
            (Op::Started, json!({"job": 7, "node_addr": "10.0.0.2:7070"})),
            (Op::Result, json!({})),
        ]])
        .await;
        let (outcome, news) = call(&addr, &FAST).await;
        assert!(outcome.is_ok());
        let peer = Some("10.0.0.2:7070".to_string());
        assert_eq!(
            news[1],
            Progress::Started {
                job: 7,
                forwarded_to: peer.clone()
            }
        );
        assert!(
            matches!(&news[0], Progress::Accepted { forwarded_to, .. } if *forwarded_to == peer)
        );
    }

    #[tokio::test]
    async fn a_connection_that_closes_before_the_answer_is_an_error() {
        let (addr, _node) = scripted_node(vec![vec![(
            Op::Accepted,
            json!({"job": 1, "position": 1, "queue_length": 1}),
        )]])
        .await;
        let (outcome, news) = call(&addr, &FAST).await;
        assert!(matches!(outcome, Err(ClientError::Closed)), "{outcome:?}");
        assert_eq!(news.len(), 1);
    }

    #[test]
    fn the_wait_doubles_up_to_the_cap() {
        let retry = Retry::default();
        let mut delay = retry.first_delay;
        let mut waits = vec![delay];
        for _ in 0..5 {
            delay = retry.next_delay(delay);
            waits.push(delay);
        }
        assert_eq!(
            waits,
            [200, 400, 800, 1600, 2000, 2000].map(Duration::from_millis)
        );
        let huge = Retry {
            first_delay: Duration::MAX,
            max_delay: Duration::MAX,
            ..retry
        };
        assert_eq!(huge.next_delay(Duration::MAX), Duration::MAX);
    }
}
