//! The detection role: its settings, and finding and cutting out faces in
//! photos.
//!
//! Invariant: request overrides are bounded ([`DetectionSettings::resolve`])
//! so that no request makes a scan arbitrarily expensive; faces come out
//! largest first, then top to bottom, left to right, on every node alike.

use std::sync::Arc;

use ocellus_codec::{DecodeError, DecodeLimits, decode};
use ocellus_detect::{Cascade, DetectError, DetectParams, Rect, detect_cancellable};
use ocellus_imaging::filter::geometry::crop;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_imaging::{Image, PixelLayout};
use ocellus_protocol::face::{DetectOverrides, FaceBox};
use ocellus_protocol::{ErrorCode, ErrorEvent};
use sha2::{Digest, Sha256};

use crate::call::cancelled;
use crate::call::error;
use ocellus_imaging::Cancel;

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
                    ErrorCode::BadRequest,
                    format!("scale_factor must be between {MIN_SCALE_FACTOR} and 4 (got {s})"),
                ));
            }
            params.scale_factor = s;
        }
        if let Some(n) = o.min_neighbors {
            if n > 100 {
                return Err(error(
                    ErrorCode::BadRequest,
                    "min_neighbors must be at most 100",
                ));
            }
            params.min_neighbors = n;
        }
        if let Some(m) = o.min_size {
            if m < MIN_FACE_SIZE {
                return Err(error(
                    ErrorCode::BadRequest,
                    format!("min_size must be at least {MIN_FACE_SIZE} (got {m})"),
                ));
            }
            params.min_size = (m, m);
        }
        Ok(params)
    }
}

/// A photo decoded for detection: its grey version, the colour one when
/// it has colour (the `resnet` chips are cut from it), and its hash.
pub(crate) struct Photo {
    pub gray: Image,
    colour: Option<Image>,
    pub hash: [u8; 32],
}

impl Photo {
    /// The photo as decoded: colour if it has colour.
    pub fn image(&self) -> &Image {
        self.colour.as_ref().unwrap_or(&self.gray)
    }
}

/// Decodes a client's photo.
pub(crate) fn decode_photo(bytes: &[u8], limits: &DecodeLimits) -> Result<Photo, ErrorEvent> {
    let (image, _) = decode(bytes, limits).map_err(decode_error)?;
    let (gray, colour) = if image.layout() == PixelLayout::Gray {
        (image, None)
    } else {
        (to_gray(&image), Some(image))
    };
    Ok(Photo {
        gray,
        colour,
        hash: Sha256::digest(bytes).into(),
    })
}

/// The ERROR for an image that cannot be decoded.
pub(crate) fn decode_error(e: DecodeError) -> ErrorEvent {
    match e {
        DecodeError::TooLarge { .. } | DecodeError::TooManyPixels { .. } => {
            error(ErrorCode::ImageTooLarge, e.to_string())
        }
        DecodeError::TooCostly { .. } | DecodeError::TooManyScans { .. } => {
            error(ErrorCode::TooCostly, e.to_string())
        }
        other => error(ErrorCode::BadImage, other.to_string()),
    }
}

/// Faces in a grey image, largest first (then top to bottom, left to right).
pub(crate) fn find_faces(
    settings: &DetectionSettings,
    gray: &Image,
    params: &DetectParams,
    cancel: &Cancel,
) -> Result<Vec<FaceBox>, ErrorEvent> {
    let mut faces: Vec<FaceBox> = detect_cancellable(&settings.cascade, gray, params, cancel)
        .map_err(|e| match e {
            DetectError::Cancelled => cancelled(),
            e => error(ErrorCode::BadRequest, e.to_string()),
        })?
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
    crop(gray, face.width as u32, face.height as u32, x, y).map_err(|e| {
        error(
            ErrorCode::Internal,
            format!("face box outside the image: {e}"),
        )
    })
}

/// Decodes the crops a detection node sent (greyscale PNGs).
pub(crate) fn decode_crops(
    images: &[bytes::Bytes],
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

/// Hex of a photo hash, as the protocol carries it.
pub(crate) fn hash_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
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

/// A photo and the faces in it, or why it could not be read.
pub(crate) type Scanned = Result<(Photo, Vec<FaceBox>), ErrorEvent>;

/// Decodes a photo and finds its faces; gives up at once when `cancel`
/// is raised (the error is then nobody's: the caller has gone).
pub(crate) fn scan(
    settings: &DetectionSettings,
    limits: &DecodeLimits,
    bytes: &[u8],
    params: &DetectParams,
    cancel: &Cancel,
) -> Scanned {
    cancel.check().map_err(|_| cancelled())?;
    let photo = decode_photo(bytes, limits)?;
    let faces = find_faces(settings, &photo.gray, params, cancel)?;
    Ok((photo, faces))
}
