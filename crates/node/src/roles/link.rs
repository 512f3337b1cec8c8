//! The recognition role as the detection role reaches it: in this process
//! ([`RecognizerLink::Local`]), or on another node over the protocol
//! ([`RemoteRecognizer`]).
//!
//! Invariants: the answers are the same either way (the crops travel as
//! greyscale PNG, which is lossless; descriptors as exact numbers and
//! chips as PNG, see `docs/PROTOCOL.md`); and a call to a remote node never
//! blocks a worker thread: it comes back as a [`Call::Remote`] future that
//! the worker hands to the async runtime.

use crate::access::peer::PeerProver;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ocellus_client::{Client, ClientError, ConnectOptions, Event, TlsOptions};
use ocellus_codec::{EncodeOptions, ImageFormat, encode};
use ocellus_embed::Descriptor;
use ocellus_imaging::Image;
use ocellus_protocol::face::{
    CropEnrollResult, CropInfo, CropRecognizeResult, DetectOverrides, EnrollRequest, Identity,
    PeopleResult, PersonEntry, RecognizeRequest, RemovePersonRequest, RemovePersonResult,
    descriptor_to_wire,
};
use ocellus_protocol::message::{from_header, to_header};
use ocellus_protocol::{ErrorCode, ErrorEvent, Op, field};
use ocellus_recognize::Algorithm;
use serde_json::Value;

use super::detection::hash_hex;
use super::recognition::{FaceCrop, RecognitionService};
use crate::call::error;

/// The answer of a call to the recognition role: ready now (this process),
/// or a future (another node).
pub(crate) enum Call<T> {
    /// Answered in this process.
    Ready(Result<T, ErrorEvent>),
    /// To be awaited: the recognition node is elsewhere.
    Remote(Pin<Box<dyn Future<Output = Result<T, ErrorEvent>> + Send>>),
}

impl<T: Send + 'static> Call<T> {
    /// The call, followed by `f` on its answer.
    pub fn then<U>(self, f: impl FnOnce(T) -> Result<U, ErrorEvent> + Send + 'static) -> Call<U> {
        match self {
            Call::Ready(r) => Call::Ready(r.and_then(f)),
            Call::Remote(fut) => Call::Remote(Box::pin(async move { f(fut.await?) })),
        }
    }
}

/// The faces of a RECOGNIZE, as the recognition role takes them.
pub(crate) enum Faces {
    /// Greyscale crops (eigen, fisher, lbph).
    Crops(Vec<Image>),
    /// `resnet` descriptors, computed by the detection role.
    Descriptors(Vec<Descriptor>),
}

impl Faces {
    fn len(&self) -> usize {
        match self {
            Faces::Crops(c) => c.len(),
            Faces::Descriptors(d) => d.len(),
        }
    }
}

/// Where the detection role sends faces: the recognition role in this
/// process, or a recognition node elsewhere.
#[derive(Clone)]
pub enum RecognizerLink {
    /// Both roles in one process.
    Local(Arc<RecognitionService>),
    /// A recognition node reached over the protocol.
    Remote(Arc<RemoteRecognizer>),
}

impl RecognizerLink {
    /// Stores faces of `name`: at once here, or a future for a remote node.
    pub(crate) fn enroll(&self, name: &str, crops: Vec<FaceCrop>) -> Call<CropEnrollResult> {
        match self {
            RecognizerLink::Local(service) => {
                Call::Ready(service.enroll(name, &crops).map_err(Into::into))
            }
            RecognizerLink::Remote(remote) => {
                let (remote, name) = (remote.clone(), name.to_string());
                Call::Remote(Box::pin(async move { remote.enroll(&name, crops).await }))
            }
        }
    }

    /// Names faces: at once here, or a future for a remote node.
    pub(crate) fn recognize(
        &self,
        faces: Faces,
        algorithm: Option<Algorithm>,
        tolerance: Option<f64>,
    ) -> Call<Vec<Identity>> {
        match self {
            RecognizerLink::Local(service) => Call::Ready(
                match &faces {
                    Faces::Crops(crops) => service.recognize(crops, algorithm),
                    Faces::Descriptors(d) => service.recognize_descriptors(d, tolerance),
                }
                .map_err(Into::into),
            ),
            RecognizerLink::Remote(remote) => {
                let remote = remote.clone();
                Call::Remote(Box::pin(async move {
                    remote.recognize(faces, algorithm, tolerance).await
                }))
            }
        }
    }

    /// Everyone enrolled.
    pub(crate) async fn people(&self) -> Result<Vec<PersonEntry>, ErrorEvent> {
        match self {
            RecognizerLink::Local(service) => {
                let service = service.clone();
                tokio::task::spawn_blocking(move || service.people())
                    .await
                    .map_err(|e| error(ErrorCode::Internal, e.to_string()))?
                    .map_err(Into::into)
            }
            RecognizerLink::Remote(remote) => remote.people().await,
        }
    }

    /// Removes a person; the number of faces removed.
    pub(crate) async fn remove(&self, name: String) -> Result<u64, ErrorEvent> {
        match self {
            RecognizerLink::Local(service) => {
                let service = service.clone();
                tokio::task::spawn_blocking(move || service.remove(&name))
                    .await
                    .map_err(|e| error(ErrorCode::Internal, e.to_string()))?
                    .map_err(Into::into)
            }
            RecognizerLink::Remote(remote) => remote.remove(name).await,
        }
    }
}

/// The longest a forwarded request may take at the recognition node.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection to a recognition node, opened on first use and reopened
/// after it breaks (the node may restart).
pub struct RemoteRecognizer {
    addr: String,
    /// With a cluster secret: the proof each new connection starts with.
    prover: Option<Arc<PeerProver>>,
    /// Speak TLS to it, verified so; `None`: plain TCP.
    tls: Option<TlsOptions>,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl RemoteRecognizer {
    /// A link to the recognition node at `addr` (host:port), over TLS
    /// verified with `tls` if given, proving the cluster secret first with
    /// `prover` if given; nothing is connected until the first request.
    pub(crate) fn new(
        addr: impl Into<String>,
        tls: Option<TlsOptions>,
        prover: Option<Arc<PeerProver>>,
    ) -> Self {
        RemoteRecognizer {
            addr: addr.into(),
            tls,
            prover,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Opens a new connection to the recognition node: the one place a
    /// fresh one is made, so whatever must happen before any face goes
    /// over it (TLS; then, in `connected`, the proof of the cluster secret)
    /// happens exactly once per connection.
    async fn open(&self) -> Result<Client, ClientError> {
        let options = ConnectOptions {
            tls: self.tls.clone(),
            key: None,
        };
        Client::connect_with(&self.addr, &options).await
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> ErrorEvent {
        error(
            ErrorCode::RecognizerUnavailable,
            format!("recognition node {} is unreachable: {why}", self.addr),
        )
    }

    async fn connected(&self) -> Result<Arc<Client>, ErrorEvent> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let opened = async {
            let client = self.open().await.map_err(|e| self.unavailable(e))?;
            if let Some(prover) = &self.prover {
                // Nothing goes to a node that cannot prove the secret.
                prover
                    .prove(&client)
                    .await
                    .map_err(|e| self.unavailable(e))?;
            }
            Ok::<_, ErrorEvent>(client)
        };
        let client = tokio::time::timeout(Duration::from_secs(5), opened)
            .await
            .map_err(|_| self.unavailable("connection timed out"))??;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Whether the recognition node answers now (a STATUS round trip, on
    /// the link's connection, opened if need be): for `/readyz`.
    pub(crate) async fn check(&self) -> Result<(), ErrorEvent> {
        self.call(Op::Status, serde_json::Map::new(), Bytes::new())
            .await
            .map(|_| ())
    }

    async fn forget(&self, client: &Arc<Client>) {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            *slot = None;
        }
    }

    /// Sends one request and waits for its RESULT. A broken connection is
    /// reopened and the request sent again once: every forwarded request
    /// is safe to repeat (enrolling the same photo twice stores it once).
    async fn call(
        &self,
        op: Op,
        header: serde_json::Map<String, Value>,
        payload: Bytes,
    ) -> Result<Event, ErrorEvent> {
        let mut last = None;
        for _ in 0..2 {
            let client = self.connected().await?;
            let sent = client.request(op, header.clone(), payload.clone()).await;
            let outcome = match sent {
                Ok(request) => tokio::time::timeout(REMOTE_TIMEOUT, request.finish())
                    .await
                    .unwrap_or(Err(ClientError::Closed)),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(event) if event.op == Op::Busy => {
                    return Err(error(
                        ErrorCode::RecognizerBusy,
                        format!("recognition node {} is busy; try again later", self.addr),
                    ));
                }
                Ok(event) => return Ok(event),
                Err(ClientError::Server(e)) if !e.code.is_retryable() => {
                    return Err(e);
                }
                Err(e) => {
                    self.forget(&client).await;
                    last = Some(e);
                }
            }
        }
        Err(self.unavailable(last.map_or_else(|| "no answer".to_string(), |e| e.to_string())))
    }

    fn parse<T: for<'de> serde::Deserialize<'de>>(&self, event: &Event) -> Result<T, ErrorEvent> {
        from_header(&event.header).map_err(|e| {
            error(
                ErrorCode::Internal,
                format!("unexpected answer from recognition node {}: {e}", self.addr),
            )
        })
    }

    async fn enroll(
        &self,
        name: &str,
        crops: Vec<FaceCrop>,
    ) -> Result<CropEnrollResult, ErrorEvent> {
        let (mut lengths, mut payload) = encode_crops(crops.iter().map(|c| &c.gray))?;
        // The chips follow the crops.
        let infos = crops
            .iter()
            .map(|c| {
                let mut info = CropInfo {
                    source_hash: Some(hash_hex(&c.source_hash)),
                    ..CropInfo::default()
                };
                if let Some(e) = &c.embedding {
                    info.descriptor = Some(descriptor_to_wire(&e.descriptor));
                    info.chip = Some(lengths.len());
                    lengths.push(e.chip_png.len() as u64);
                    payload.extend_from_slice(&e.chip_png);
                }
                info
            })
            .collect();
        let mut header = to_header(&EnrollRequest {
            name: name.to_string(),
            largest_face: false,
            overrides: DetectOverrides::default(),
            crops: Some(infos),
        });
        header.insert(field::IMAGES.into(), Value::from(lengths));
        let event = self.call(Op::Enroll, header, payload.into()).await?;
        self.parse(&event)
    }

    async fn recognize(
        &self,
        faces: Faces,
        algorithm: Option<Algorithm>,
        tolerance: Option<f64>,
    ) -> Result<Vec<Identity>, ErrorEvent> {
        let count = faces.len();
        let (infos, lengths, payload) = match &faces {
            Faces::Crops(crops) => {
                let (lengths, payload) = encode_crops(crops.iter())?;
                (vec![CropInfo::default(); crops.len()], lengths, payload)
            }
            // Descriptors only: the recognition node searches, nothing more.
            Faces::Descriptors(ds) => {
                let infos = ds
                    .iter()
                    .map(|d| CropInfo {
                        descriptor: Some(descriptor_to_wire(d)),
                        ..CropInfo::default()
                    })
                    .collect();
                (infos, Vec::new(), Vec::new())
            }
        };
        let algorithm = match faces {
            Faces::Descriptors(_) => Some(Algorithm::Resnet),
            Faces::Crops(_) => algorithm,
        };
        let mut header = to_header(&RecognizeRequest {
            algorithm: algorithm.map(|a| a.name().to_string()),
            tolerance,
            overrides: DetectOverrides::default(),
            crops: Some(infos),
        });
        header.insert(field::IMAGES.into(), Value::from(lengths));
        let event = self.call(Op::Recognize, header, payload.into()).await?;
        let result: CropRecognizeResult = self.parse(&event)?;
        if result.identities.len() != count {
            return Err(error(
                ErrorCode::Internal,
                format!(
                    "recognition node {} answered for the wrong number of faces",
                    self.addr
                ),
            ));
        }
        Ok(result.identities)
    }

    async fn people(&self) -> Result<Vec<PersonEntry>, ErrorEvent> {
        let event = self
            .call(Op::People, serde_json::Map::new(), Bytes::new())
            .await?;
        Ok(self.parse::<PeopleResult>(&event)?.people)
    }

    async fn remove(&self, name: String) -> Result<u64, ErrorEvent> {
        let header = to_header(&RemovePersonRequest { name });
        let event = self.call(Op::RemovePerson, header, Bytes::new()).await?;
        Ok(self.parse::<RemovePersonResult>(&event)?.removed_faces)
    }
}

/// Greyscale PNGs of the crops, back to back, with their lengths.
fn encode_crops<'a>(
    crops: impl Iterator<Item = &'a Image>,
) -> Result<(Vec<u64>, Vec<u8>), ErrorEvent> {
    let mut lengths = Vec::new();
    let mut payload = Vec::new();
    for c in crops {
        let png = encode(c, ImageFormat::Png, &EncodeOptions::default())
            .map_err(|e| error(ErrorCode::Internal, format!("cannot encode a face: {e}")))?;
        lengths.push(png.len() as u64);
        payload.extend_from_slice(&png);
    }
    Ok((lengths, payload))
}
