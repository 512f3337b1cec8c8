//! Sealed gossip: the chitchat [`Transport`] that closes the mesh.
//!
//! Every chitchat message this node sends is serialized as chitchat would
//! put it on UDP (by chitchat itself, through a loopback codec: see
//! `Codec`), then sealed with XChaCha20-Poly1305 under the cluster
//! secret's gossip key ([`ClusterSecret::gossip_key`]), and sent on this
//! module's own UDP socket. One datagram:
//!
//! | bytes   | what                                                        |
//! |---------|-------------------------------------------------------------|
//! | 0       | format version, [`VERSION`] (1)                             |
//! | 1..25   | nonce, 24 random bytes                                      |
//! | 25..33  | sender's clock, milliseconds since the Unix epoch, u64 BE   |
//! | 33..    | the ciphertext of the chitchat envelope, then the 16-byte tag |
//!
//! Bytes 0..33 are the associated data: authenticated, not encrypted.
//!
//! A received datagram reaches chitchat only if it is of this version, its
//! tag verifies under the key, its timestamp is within [`WINDOW`] of this
//! node's clock (either way), its nonce was not seen within that window,
//! and its plaintext is a chitchat envelope. Any other datagram (a plain
//! chitchat one, one sealed under another secret, a tampered, stale,
//! replayed or truncated one) is dropped without an answer and counted in
//! [`Rejections`].
//!
//! Replay protection is the window plus a cache of the nonces of accepted
//! datagrams whose timestamps are still within it, at most [`MAX_SEEN`] of them: a datagram
//! older than the window is refused by its timestamp, one within it by
//! its nonce. The cache only grows from datagrams whose tag verified, so
//! only holders of the secret can fill it; when it is full (more than
//! [`MAX_SEEN`] datagrams in one window, about a hundred times what one
//! node of a ten-node mesh receives at the default 500 ms interval) new
//! datagrams are refused rather than old nonces forgotten.
//!
//! Invariant: nothing that did not pass every check above is handed to
//! chitchat, and nothing is ever sent in answer to such a datagram.
//!
//! Why XChaCha20-Poly1305: its 192-bit nonce can be drawn at random for
//! every datagram with no counter to keep across restarts (a node's
//! generations would otherwise have to coordinate a 96-bit counter), it is
//! fast in software on every CPU (no AES-NI needed), and the RustCrypto
//! implementation is audited and widely used.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};
use ocellus_auth::ClusterSecret;
use tracing::{debug, warn};

/// The datagram format's version byte.
pub const VERSION: u8 = 1;
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 24;
/// Bytes of the authenticated header: version, nonce, timestamp.
pub const HEADER_LEN: usize = 1 + NONCE_LEN + 8;
/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a chitchat envelope.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP), which is
/// also what chitchat sizes its messages to: a message within
/// [`OVERHEAD`] bytes of it cannot be sealed and is dropped (logged).
/// Ocellus nodes publish eight short keys each, so a message that large
/// would take a mesh of hundreds of nodes.
pub const MAX_DATAGRAM: usize = 65_507;
/// How far a datagram's timestamp may be from this node's clock, either
/// way. Clocks of the mesh's machines must agree within it.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Most nonces remembered (those of datagrams accepted within [`WINDOW`]).
pub const MAX_SEEN: usize = 65_536;

/// Datagrams dropped, by reason. Shared between the transport and STATUS.
#[derive(Debug, Default)]
pub struct Rejections {
    /// Too short, of another version, or not a chitchat envelope inside.
    pub malformed: AtomicU64,
    /// The tag did not verify: another key, plain chitchat, tampered.
    pub unauthentic: AtomicU64,
    /// The timestamp is outside the window.
    pub stale: AtomicU64,
    /// The nonce was seen within the window (or the cache is full).
    pub replayed: AtomicU64,
}

impl Rejections {
    /// All datagrams dropped.
    pub fn total(&self) -> u64 {
        [
            &self.malformed,
            &self.unauthentic,
            &self.stale,
            &self.replayed,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// Why a datagram is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// See [`Rejections::malformed`].
    Malformed,
    /// See [`Rejections::unauthentic`].
    Unauthentic,
    /// See [`Rejections::stale`].
    Stale,
    /// See [`Rejections::replayed`].
    Replayed,
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seals and opens datagrams under one key; remembers recent nonces.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// Nonces of accepted datagrams whose timestamps are within the
    /// window, and the same ordered by timestamp for expiry.
    seen: HashSet<[u8; NONCE_LEN]>,
    by_stamp: BTreeSet<(u64, [u8; NONCE_LEN])>,
}

impl Sealer {
    /// A sealer keyed by the cluster secret's gossip key.
    pub fn new(secret: &ClusterSecret) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&secret.gossip_key().into()),
            seen: HashSet::new(),
            by_stamp: BTreeSet::new(),
        }
    }

    /// The datagram carrying `plain`, stamped with `timestamp_ms`.
    pub fn seal(&self, plain: &[u8], timestamp_ms: u64) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // The OS random source failing is not something to gossip through.
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &out[..HEADER_LEN],
                },
            )
            // Encryption only fails for plaintexts beyond 256 GiB.
            .expect("XChaCha20-Poly1305 seals a datagram");
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of `datagram`, if it passes every check at `now_ms`.
    pub fn open(&mut self, datagram: &[u8], now_ms: u64) -> Result<Vec<u8>, Refusal> {
        if datagram.len() < OVERHEAD || datagram[0] != VERSION {
            return Err(Refusal::Malformed);
        }
        let (header, body) = datagram.split_at(HEADER_LEN);
        let nonce: [u8; NONCE_LEN] = header[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| Refusal::Malformed)?;
        let stamp: [u8; 8] = header[1 + NONCE_LEN..]
            .try_into()
            .map_err(|_| Refusal::Malformed)?;
        let timestamp = u64::from_be_bytes(stamp);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: body,
                    aad: header,
                },
            )
            .map_err(|_| Refusal::Unauthentic)?;
        let window = WINDOW.as_millis() as u64;
        if timestamp.abs_diff(now_ms) > window {
            return Err(Refusal::Stale);
        }
        self.expire(now_ms.saturating_sub(window));
        if self.seen.contains(&nonce) || self.seen.len() >= MAX_SEEN {
            return Err(Refusal::Replayed);
        }
        self.seen.insert(nonce);
        self.by_stamp.insert((timestamp, nonce));
        Ok(plain)
    }

    /// Forgets the nonces stamped before `oldest_ms`: a replay of one of
    /// them now fails the timestamp check instead.
    fn expire(&mut self, oldest_ms: u64) {
        while let Some(&(stamp, nonce)) = self.by_stamp.first() {
            if stamp >= oldest_ms {
                break;
            }
            self.by_stamp.pop_first();
            self.seen.remove(&nonce);
        }
    }

    /// Nonces remembered now.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.seen.len()
    }
}

/// How long a message may take through the loopback codec (below).
const CODEC_TIMEOUT: Duration = Duration::from_secs(1);

/// Received datagrams that passed every check, waiting for chitchat.
const INBOX: usize = 256;

/// Gossip over UDP, every datagram sealed under the cluster secret.
pub struct SealedUdpTransport {
    secret: ClusterSecret,
    rejections: Arc<Rejections>,
}

impl SealedUdpTransport {
    /// A transport keyed by `secret` that counts what it drops in
    /// `rejections`.
    pub fn new(secret: ClusterSecret, rejections: Arc<Rejections>) -> SealedUdpTransport {
        SealedUdpTransport { secret, rejections }
    }
}

/// chitchat keeps its wire encoding crate-private: the only public way
/// between a `ChitchatEnvelope` and its bytes is chitchat's own UDP socket.
/// A codec is such a socket and a plain one, both on 127.0.0.1, that
/// exchange datagrams with each other only: the plain one reads what
/// chitchat wrote, or writes what chitchat is to read. Each side accepts
/// only the other's address, so a local process writing to either port
/// injects nothing (it cannot send from those ports).
struct Codec {
    chitchat: chitchat::transport::UdpSocket,
    chitchat_addr: SocketAddr,
    plain: tokio::net::UdpSocket,
    plain_addr: SocketAddr,
    buf: Box<[u8]>,
}

impl Codec {
    async fn open() -> anyhow::Result<Codec> {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let chitchat = chitchat::transport::UdpSocket::open(loopback).await?;
        let chitchat_addr = chitchat.local_addr()?;
        let plain = tokio::net::UdpSocket::bind(loopback).await?;
        let plain_addr = plain.local_addr()?;
        Ok(Codec {
            chitchat,
            chitchat_addr,
            plain,
            plain_addr,
            buf: vec![0u8; 65_536].into_boxed_slice(),
        })
    }

    /// The bytes chitchat puts on the wire for `envelope`.
    async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<u8>> {
        self.chitchat.send(self.plain_addr, envelope).await?;
        let read = async {
            loop {
                let (len, from) = self.plain.recv_from(&mut self.buf).await?;
                if from == self.chitchat_addr {
                    return anyhow::Ok(self.buf[..len].to_vec());
                }
            }
        };
        tokio::time::timeout(CODEC_TIMEOUT, read).await?
    }

    /// The envelope `bytes` encode; `None` if they are not one.
    async fn decode(&mut self, bytes: &[u8]) -> anyhow::Result<Option<ChitchatEnvelope>> {
        self.plain.send_to(bytes, self.chitchat_addr).await?;
        let read = async {
            loop {
                let got = self.chitchat.recv().await?;
                if got.from_addr == self.plain_addr {
                    return anyhow::Ok(got.envelope);
                }
            }
        };
        // chitchat drops (and logs) what it cannot decode, and waits on.
        match tokio::time::timeout(CODEC_TIMEOUT, read).await {
            Ok(got) => got.map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[async_trait]
impl Transport for SealedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = Arc::new(tokio::net::UdpSocket::bind(listen_addr).await?);
        let local_addr = socket.local_addr()?;
        let (tx, inbox) = tokio::sync::mpsc::channel(INBOX);
        let receiver = Receiver {
            socket: socket.clone(),
            sealer: Sealer::new(&self.secret),
            rejections: self.rejections.clone(),
            codec: Codec::open().await?,
            tx,
        };
        // chitchat cancels `recv` at every gossip tick: the receiving runs
        // in a task of its own, and `recv` only takes from its inbox.
        let task = tokio::spawn(receiver.run());
        Ok(Box::new(SealedSocket {
            socket,
            local_addr,
            sealer: Sealer::new(&self.secret),
            codec: Codec::open().await?,
            inbox,
            task,
        }))
    }
}

/// Reads, opens and decodes datagrams until the socket is dropped.
struct Receiver {
    socket: Arc<tokio::net::UdpSocket>,
    sealer: Sealer,
    rejections: Arc<Rejections>,
    codec: Codec,
    tx: tokio::sync::mpsc::Sender<anyhow::Result<RecvOutcome>>,
}

impl Receiver {
    fn count(&self, refusal: Refusal, from: SocketAddr, len: usize) {
        let counter = match refusal {
            Refusal::Malformed => &self.rejections.malformed,
            Refusal::Unauthentic => &self.rejections.unauthentic,
            Refusal::Stale => &self.rejections.stale,
            Refusal::Replayed => &self.rejections.replayed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        debug!(%from, len, reason = ?refusal, "gossip: datagram dropped");
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536].into_boxed_slice();
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::OutOfMemory
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e.into())).await;
                    return;
                }
            };
            let plain = match self.sealer.open(&buf[..len], now_ms()) {
                Ok(plain) => plain,
                Err(refusal) => {
                    self.count(refusal, from, len);
                    continue;
                }
            };
            let outcome = match self.codec.decode(&plain).await {
                Ok(Some(envelope)) => Ok(RecvOutcome {
                    from_addr: from,
                    envelope,
                    num_bytes_received: len,
                }),
                Ok(None) => {
                    self.count(Refusal::Malformed, from, len);
                    continue;
                }
                Err(e) => Err(e),
            };
            let fatal = outcome.is_err();
            if self.tx.send(outcome).await.is_err() || fatal {
                return;
            }
        }
    }
}

/// One open sealed socket.
struct SealedSocket {
    socket: Arc<tokio::net::UdpSocket>,
    local_addr: SocketAddr,
    sealer: Sealer,
    codec: Codec,
    inbox: tokio::sync::mpsc::Receiver<anyhow::Result<RecvOutcome>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SealedSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let plain = match self.codec.encode(envelope).await {
            Ok(plain) => plain,
            Err(e) => {
                warn!(%to, error = %e, "gossip: cannot encode a message, not sent");
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        };
        if plain.len() + OVERHEAD > MAX_DATAGRAM {
            warn!(
                %to,
                len = plain.len(),
                "gossip: message too large to seal, not sent"
            );
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let datagram = self.sealer.seal(&plain, now_ms());
        match self.socket.send_to(&datagram, to).await {
            Ok(n) => Ok(SendOutcome { num_bytes_sent: n }),
            // An unreachable peer is the failure detector's business; a
            // transport error would stop gossip altogether.
            Err(e) => {
                debug!(%to, error = %e, "gossip: send failed");
                Ok(SendOutcome { num_bytes_sent: 0 })
            }
        }
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        match self.inbox.recv().await {
            Some(got) => got,
            None => anyhow::bail!("the gossip socket's receiver stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::{ChitchatMessage, ProtocolVersion};

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::parse(&format!("ocs_{}", format!("{byte:02x}").repeat(32)))
            .expect("a well-formed secret")
    }

    /// A chitchat envelope whose parts are all public.
    fn envelope() -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::BadCluster,
        }
    }

    /// The bytes of a real chitchat SYN, as chitchat sends it on UDP to a
    /// seed (here a plain socket).
    async fn captured_syn() -> Vec<u8> {
        use chitchat::transport::UdpTransport;
        use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig};
        let tap = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let from = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new("forger", 1, from),
            cluster_id: "ocellus".into(),
            gossip_interval: Duration::from_millis(20),
            listen_addr: from,
            seed_nodes: vec![tap.local_addr().unwrap().to_string()],
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(60),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let handle = chitchat::spawn_chitchat(
            config,
            vec![("addr".into(), "127.0.0.1:9".into())],
            &UdpTransport,
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 65_536];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), tap.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        handle.shutdown().await.unwrap();
        buf.truncate(len);
        buf
    }

    async fn decode(bytes: &[u8]) -> ChitchatEnvelope {
        Codec::open()
            .await
            .unwrap()
            .decode(bytes)
            .await
            .unwrap()
            .expect("a chitchat envelope")
    }

    async fn pair(key: u8) -> (Box<dyn Socket>, Arc<Rejections>, SocketAddr) {
        let rejections = Arc::new(Rejections::default());
        let t = SealedUdpTransport::new(secret(key), rejections.clone());
        let socket = t.open("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, rejections, addr)
    }

    async fn nothing_arrives(socket: &mut Box<dyn Socket>, within: Duration) {
        let got = tokio::time::timeout(within, socket.recv()).await;
        assert!(got.is_err(), "a datagram got through: {got:?}");
    }

    #[tokio::test]
    async fn round_trip_over_loopback() {
        let (mut a, _, _) = pair(1).await;
        let (mut b, rejections, b_addr) = pair(1).await;
        let syn = captured_syn().await;
        assert!(matches!(
            decode(&syn).await.message,
            ChitchatMessage::Syn { .. }
        ));
        let sent = a.send(b_addr, decode(&syn).await).await.unwrap();
        assert_eq!(sent.num_bytes_sent, syn.len() + OVERHEAD);
        let got = b.recv().await.unwrap();
        assert_eq!(got.envelope, decode(&syn).await);
        assert_eq!(got.from_addr, a.local_addr().unwrap());
        a.send(b_addr, envelope()).await.unwrap();
        assert_eq!(b.recv().await.unwrap().envelope, envelope());
        assert_eq!(rejections.total(), 0);
    }

    #[tokio::test]
    async fn foreign_tampered_replayed_stale_and_plain_datagrams_are_dropped_and_counted() {
        let (mut b, rejections, b_addr) = pair(1).await;
        let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let syn = captured_syn().await;

        // Plain chitchat, as an attacker without the secret sends it.
        raw.send_to(&syn, b_addr).await.unwrap();
        // Sealed under another secret.
        let other = Sealer::new(&secret(2));
        raw.send_to(&other.seal(&syn, now_ms()), b_addr)
            .await
            .unwrap();
        // Tampered: one bit of the ciphertext, then one of the timestamp.
        let mine = Sealer::new(&secret(1));
        let mut bad = mine.seal(&syn, now_ms());
        bad[HEADER_LEN + 3] ^= 1;
        raw.send_to(&bad, b_addr).await.unwrap();
        let mut bad = mine.seal(&syn, now_ms());
        bad[HEADER_LEN - 1] ^= 1;
        raw.send_to(&bad, b_addr).await.unwrap();
        // Truncated and empty.
        raw.send_to(&[VERSION; 10], b_addr).await.unwrap();
        raw.send_to(&[], b_addr).await.unwrap();
        // Stale: stamped outside the window, both ways.
        let window = WINDOW.as_millis() as u64;
        raw.send_to(&mine.seal(&syn, now_ms() - window - 5_000), b_addr)
            .await
            .unwrap();
        raw.send_to(&mine.seal(&syn, now_ms() + window + 5_000), b_addr)
            .await
            .unwrap();
        // Sealed right, but not chitchat inside.
        raw.send_to(&mine.seal(b"junk", now_ms()), b_addr)
            .await
            .unwrap();
        // (Junk inside is known once the codec gives up on it.)
        nothing_arrives(&mut b, CODEC_TIMEOUT + Duration::from_millis(500)).await;
        assert_eq!(rejections.malformed.load(Ordering::Relaxed), 4);
        assert_eq!(rejections.unauthentic.load(Ordering::Relaxed), 3);
        assert_eq!(rejections.stale.load(Ordering::Relaxed), 2);

        // A good datagram gets through once; its replay does not.
        let good = mine.seal(&syn, now_ms());
        raw.send_to(&good, b_addr).await.unwrap();
        let got = b.recv().await.unwrap();
        assert_eq!(got.envelope, decode(&syn).await);
        raw.send_to(&good, b_addr).await.unwrap();
        raw.send_to(&good, b_addr).await.unwrap();
        nothing_arrives(&mut b, Duration::from_millis(300)).await;
        assert_eq!(rejections.replayed.load(Ordering::Relaxed), 2);
        assert_eq!(rejections.total(), 11);

        // Nothing was ever answered.
        let mut buf = [0u8; 1024];
        let answer =
            tokio::time::timeout(Duration::from_millis(200), raw.recv_from(&mut buf)).await;
        assert!(answer.is_err());
    }

    #[test]
    fn the_nonce_cache_forgets_only_what_the_window_refuses() {
        let s = secret(7);
        let mine = Sealer::new(&s);
        let mut opener = Sealer::new(&s);
        let window = WINDOW.as_millis() as u64;
        let t0 = 1_000_000_000;
        let d1 = mine.seal(b"one", t0);
        // Stamped ahead of the receiver's clock, within the window.
        let d2 = mine.seal(b"two", t0 + window / 2);
        assert_eq!(opener.open(&d1, t0).unwrap(), b"one");
        assert_eq!(opener.open(&d2, t0).unwrap(), b"two");
        assert_eq!(opener.open(&d1, t0 + 1).unwrap_err(), Refusal::Replayed);
        // Past the window: d1 is stale, and forgotten; d2 is still within
        // the window by its timestamp, and still remembered.
        let later = t0 + window + 1;
        assert_eq!(opener.open(&d1, later).unwrap_err(), Refusal::Stale);
        assert_eq!(opener.open(&d2, later).unwrap_err(), Refusal::Replayed);
        let d3 = mine.seal(b"three", later);
        assert_eq!(opener.open(&d3, later).unwrap(), b"three");
        assert_eq!(opener.remembered(), 2);
        let much_later = t0 + 3 * window;
        let d4 = mine.seal(b"four", much_later);
        assert_eq!(opener.open(&d4, much_later).unwrap(), b"four");
        assert_eq!(opener.remembered(), 1);
    }

    /// The CPU cost of one datagram: seal and open of a 1 KiB message, and
    /// the loopback codec's round trip. `cargo test -p ocellus-node --lib
    /// cost_per_datagram -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn cost_per_datagram() {
        let s = secret(3);
        let sealer = Sealer::new(&s);
        let mut opener = Sealer::new(&s);
        let plain = vec![7u8; 1024];
        let n = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let d = sealer.seal(&plain, now_ms());
            opener.open(&d, now_ms()).unwrap();
        }
        let aead = t.elapsed() / n;
        let syn = captured_syn().await;
        let mut codec = Codec::open().await.unwrap();
        let m = 2_000;
        let t = std::time::Instant::now();
        for _ in 0..m {
            let e = codec.decode(&syn).await.unwrap().unwrap();
            codec.encode(e).await.unwrap();
        }
        let through = t.elapsed() / m;
        println!(
            "seal + open of 1 KiB: {aead:?}; codec decode + encode of a {}-byte SYN: {through:?}",
            syn.len()
        );
    }
}
