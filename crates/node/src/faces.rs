//! The detection role's work: find faces in photos, crop them and hand
//! them to the recognition role, in this process or on another node.
//!
//! The crops travel as greyscale PNG (lossless), so a detection node that
//! forwards to a remote recognition node gets exactly the answers of one
//! that runs both roles in one process.

use std::sync::Arc;
use std::time::Duration;

use ocellus_codec::{DecodeError, DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_detect::{Cascade, DetectParams, Rect, detect};
use ocellus_imaging::filter::geometry::crop;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_imaging::{Image, PixelLayout};
use ocellus_protocol::Op;
use ocellus_protocol::face::{
    CropEnrollResult, CropInfo, CropRecognizeResult, DetectOverrides, EnrollRequest, FaceBox,
    Identity, PeopleResult, PersonEntry, RecognizeRequest, RemovePersonRequest, RemovePersonResult,
};
use ocellus_protocol::message::{ErrorEvent, from_header, to_header};
use ocellus_recognize::Algorithm;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError};
use crate::job::error;
use crate::recognition::{FaceCrop, RecognitionService, hash_hex};

/// Smallest scale factor a request may ask for: below it the number of
/// pyramid levels, and the cost, grows without bound.
pub const MIN_SCALE_FACTOR: f64 = 1.05;
/// Smallest face size (pixels) a request may ask for.
pub const MIN_FACE_SIZE: u32 = 20;

/// The detection role's settings.
#[derive(Clone, Debug)]
pub struct DetectionSettings {
    /// The cascade (loaded once, shared by the workers).
    pub cascade: Arc<Cascade>,
    /// Default parameters; see `docs/faces.md` for how they were chosen.
    pub params: DetectParams,
}

impl DetectionSettings {
    /// The node's parameters with a request's overrides, bounded.
    pub fn resolve(&self, o: &DetectOverrides) -> Result<DetectParams, ErrorEvent> {
        let mut params = self.params;
        if let Some(s) = o.scale_factor {
            if !(MIN_SCALE_FACTOR..=4.0).contains(&s) {
                return Err(error(
                    "bad_request",
                    format!("scale_factor must be between {MIN_SCALE_FACTOR} and 4 (got {s})"),
                ));
            }
            params.scale_factor = s;
        }
        if let Some(n) = o.min_neighbors {
            if n > 100 {
                return Err(error("bad_request", "min_neighbors must be at most 100"));
            }
            params.min_neighbors = n;
        }
        if let Some(m) = o.min_size {
            if m < MIN_FACE_SIZE {
                return Err(error(
                    "bad_request",
                    format!("min_size must be at least {MIN_FACE_SIZE} (got {m})"),
                ));
            }
            params.min_size = (m, m);
        }
        Ok(params)
    }
}

/// A photo decoded for detection: its grey version and its hash.
pub(crate) struct Photo {
    pub gray: Image,
    pub hash: [u8; 32],
}

/// Decodes a client's photo.
pub(crate) fn decode_photo(bytes: &[u8], limits: &DecodeLimits) -> Result<Photo, ErrorEvent> {
    let (image, _) = decode(bytes, limits).map_err(decode_error)?;
    let gray = if image.layout() == PixelLayout::Gray {
        image
    } else {
        to_gray(&image)
    };
    Ok(Photo {
        gray,
        hash: Sha256::digest(bytes).into(),
    })
}

/// The ERROR for an image that cannot be decoded.
pub(crate) fn decode_error(e: DecodeError) -> ErrorEvent {
    match e {
        DecodeError::TooLarge { .. } | DecodeError::TooManyPixels { .. } => {
            error("image_too_large", e.to_string())
        }
        other => error("bad_image", other.to_string()),
    }
}

/// Faces in a grey image, largest first (then top to bottom, left to right).
pub(crate) fn find_faces(
    settings: &DetectionSettings,
    gray: &Image,
    params: &DetectParams,
) -> Result<Vec<FaceBox>, ErrorEvent> {
    let mut faces: Vec<FaceBox> = detect(&settings.cascade, gray, params)
        .map_err(|e| error("bad_request", e.to_string()))?
        .into_iter()
        .filter(|r| r.width > 0 && r.height > 0)
        .map(
            |Rect {
                 x,
                 y,
                 width,
                 height,
             }| FaceBox {
                x,
                y,
                width,
                height,
            },
        )
        .collect();
    faces.sort_by_key(|f| {
        (
            std::cmp::Reverse(i64::from(f.width) * i64::from(f.height)),
            f.y,
            f.x,
        )
    });
    Ok(faces)
}

/// The face region of a grey photo (boxes come clipped to the image).
pub(crate) fn crop_face(gray: &Image, face: &FaceBox) -> Result<Image, ErrorEvent> {
    let (x, y) = (face.x.max(0) as u32, face.y.max(0) as u32);
    crop(gray, face.width as u32, face.height as u32, x, y)
        .map_err(|e| error("internal", format!("face box outside the image: {e}")))
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
    /// Stores faces of `name` (blocking; called from a worker).
    pub(crate) fn enroll(
        &self,
        name: &str,
        crops: Vec<FaceCrop>,
        rt: &tokio::runtime::Handle,
    ) -> Result<CropEnrollResult, ErrorEvent> {
        match self {
            RecognizerLink::Local(service) => service.enroll(name, &crops),
            RecognizerLink::Remote(remote) => rt.block_on(remote.enroll(name, crops)),
        }
    }

    /// Names faces (blocking; called from a worker).
    pub(crate) fn recognize(
        &self,
        crops: Vec<Image>,
        algorithm: Option<Algorithm>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<Identity>, ErrorEvent> {
        match self {
            RecognizerLink::Local(service) => service.recognize(&crops, algorithm),
            RecognizerLink::Remote(remote) => rt.block_on(remote.recognize(crops, algorithm)),
        }
    }

    /// Everyone enrolled.
    pub(crate) async fn people(&self) -> Result<Vec<PersonEntry>, ErrorEvent> {
        match self {
            RecognizerLink::Local(service) => {
                let service = service.clone();
                tokio::task::spawn_blocking(move || service.people())
                    .await
                    .map_err(|e| error("internal", e.to_string()))?
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
                    .map_err(|e| error("internal", e.to_string()))?
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
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl RemoteRecognizer {
    /// A link to the recognition node at `addr` (host:port); nothing is
    /// connected until the first request.
    pub fn new(addr: impl Into<String>) -> Self {
        RemoteRecognizer {
            addr: addr.into(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The recognition node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> ErrorEvent {
        error(
            "recognizer_unavailable",
            format!("recognition node {} is unreachable: {why}", self.addr),
        )
    }

    async fn connected(&self) -> Result<Arc<Client>, ErrorEvent> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = tokio::time::timeout(Duration::from_secs(5), Client::connect(&self.addr))
            .await
            .map_err(|_| self.unavailable("connection timed out"))?
            .map_err(|e| self.unavailable(e))?;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
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
        payload: Vec<u8>,
    ) -> Result<crate::client::Event, ErrorEvent> {
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
                        "recognizer_busy",
                        format!("recognition node {} is busy; try again later", self.addr),
                    ));
                }
                Ok(event) => return Ok(event),
                Err(ClientError::Server(e)) if e.code != "timeout" && e.code != "shutting_down" => {
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

    fn parse<T: for<'de> serde::Deserialize<'de>>(
        &self,
        event: &crate::client::Event,
    ) -> Result<T, ErrorEvent> {
        from_header(&event.header).map_err(|e| {
            error(
                "internal",
                format!("unexpected answer from recognition node {}: {e}", self.addr),
            )
        })
    }

    async fn enroll(
        &self,
        name: &str,
        crops: Vec<FaceCrop>,
    ) -> Result<CropEnrollResult, ErrorEvent> {
        let infos = crops
            .iter()
            .map(|c| CropInfo {
                source_hash: Some(hash_hex(&c.source_hash)),
            })
            .collect();
        let (lengths, payload) = encode_crops(crops.iter().map(|c| &c.gray))?;
        let mut header = to_header(&EnrollRequest {
            name: name.to_string(),
            largest_face: false,
            overrides: DetectOverrides::default(),
            crops: Some(infos),
        });
        header.insert("images".into(), Value::from(lengths));
        let event = self.call(Op::Enroll, header, payload).await?;
        self.parse(&event)
    }

    async fn recognize(
        &self,
        crops: Vec<Image>,
        algorithm: Option<Algorithm>,
    ) -> Result<Vec<Identity>, ErrorEvent> {
        let infos = vec![CropInfo::default(); crops.len()];
        let (lengths, payload) = encode_crops(crops.iter())?;
        let mut header = to_header(&RecognizeRequest {
            algorithm: algorithm.map(|a| a.name().to_string()),
            overrides: DetectOverrides::default(),
            crops: Some(infos),
        });
        header.insert("images".into(), Value::from(lengths));
        let event = self.call(Op::Recognize, header, payload).await?;
        let result: CropRecognizeResult = self.parse(&event)?;
        if result.identities.len() != crops.len() {
            return Err(error(
                "internal",
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
            .call(Op::People, serde_json::Map::new(), Vec::new())
            .await?;
        Ok(self.parse::<PeopleResult>(&event)?.people)
    }

    async fn remove(&self, name: String) -> Result<u64, ErrorEvent> {
        let header = to_header(&RemovePersonRequest { name });
        let event = self.call(Op::RemovePerson, header, Vec::new()).await?;
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
            .map_err(|e| error("internal", format!("cannot encode a face: {e}")))?;
        lengths.push(png.len() as u64);
        payload.extend_from_slice(&png);
    }
    Ok((lengths, payload))
}

/// Decodes the crops a detection node sent (greyscale PNGs).
pub(crate) fn decode_crops(
    images: &[&[u8]],
    limits: &DecodeLimits,
) -> Result<Vec<Image>, ErrorEvent> {
    images
        .iter()
        .map(|bytes| {
            let (image, _) = decode(bytes, limits).map_err(decode_error)?;
            Ok(if image.layout() == PixelLayout::Gray {
                image
            } else {
                to_gray(&image)
            })
        })
        .collect()
}

/// Parses a hex SHA-256.
pub(crate) fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The algorithm a request names, if valid.
pub(crate) fn parse_algorithm(name: Option<&str>) -> Result<Option<Algorithm>, ErrorEvent> {
    match name {
        None => Ok(None),
        Some(n) => Algorithm::from_name(n).map(Some).ok_or_else(|| {
            error(
                "bad_request",
                format!("unknown algorithm {n:?}: use eigen, fisher or lbph"),
            )
        }),
    }
}
