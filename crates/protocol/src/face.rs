//! Headers of the face operations: DETECT, ENROLL, RECOGNIZE, PEOPLE and
//! REMOVE_PERSON (see `docs/PROTOCOL.md`).
//!
//! ENROLL and RECOGNIZE come in two forms. A client sends whole photos; a
//! detection node that forwards to a recognition node elsewhere sends face
//! crops instead, marked by the `crops` field (one entry per image). The
//! answers to the crop form are [`CropEnrollResult`] and
//! [`CropRecognizeResult`]; the detection node turns them into the
//! per-photo answers a client gets.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// A face box in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaceBox {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

/// Detection settings a request may override (the safe ones: the node
/// bounds each to keep the cost of a request reasonable).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectOverrides {
    /// Ratio between successive window sizes (the node enforces a minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_factor: Option<f64>,
    /// Raw detections needed to keep a box, minus one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_neighbors: Option<u32>,
    /// Smallest face in pixels (the node enforces a minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u32>,
}

/// DETECT request header (besides `images`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectRequest {
    /// Overridden detection settings.
    #[serde(flatten)]
    pub overrides: DetectOverrides,
}

/// What was found in one image of a DETECT request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectedImage {
    /// Image width (0 if it could not be decoded).
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// The faces, largest first.
    pub faces: Vec<FaceBox>,
    /// Set when the image could not be processed (e.g. `bad_image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    /// Explanation for people.
    pub message: String,
}

/// DETECT result header: one entry per image, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectResult {
    /// Per image.
    pub results: Vec<DetectedImage>,
}

/// ENROLL request header (besides `images`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// The person's name: any non-empty Unicode string (up to 128
    /// characters, no control characters); stored as data.
    pub name: String,
    /// With several faces in a photo, enroll the largest instead of
    /// rejecting the photo (the original system rejected it).
    #[serde(default)]
    pub largest_face: bool,
    /// Overridden detection settings.
    #[serde(flatten)]
    pub overrides: DetectOverrides,
    /// Present when the images are face crops from a detection node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crops: Option<Vec<CropInfo>>,
}

/// About one face crop sent by a detection node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CropInfo {
    /// SHA-256 (hex) of the photo the crop comes from, so that the same
    /// photo enrolled twice is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<String>,
    /// The face's 128-d `resnet` descriptor, computed by the detection node
    /// (which has the photo): 128 numbers, each exactly an `f32` value, sent
    /// as JSON doubles so that they arrive bit-exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<Vec<f64>>,
    /// ENROLL only: index, in the request's `images`, of the face's aligned
    /// 150x150 RGB chip (PNG), stored with the descriptor. Chips follow the
    /// crops: the index is at least the number of crops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<usize>,
}

/// Length of a descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// A descriptor as [`CropInfo::descriptor`] carries it.
pub fn descriptor_to_wire(d: &[f32; DESCRIPTOR_LEN]) -> Vec<f64> {
    d.iter().map(|&x| f64::from(x)).collect()
}

/// A descriptor from [`CropInfo::descriptor`]: exactly 128 finite `f32`
/// numbers, or why not.
pub fn descriptor_from_wire(v: &[f64]) -> Result<[f32; DESCRIPTOR_LEN], String> {
    if v.len() != DESCRIPTOR_LEN {
        return Err(format!(
            "a descriptor has {DESCRIPTOR_LEN} numbers, not {}",
            v.len()
        ));
    }
    let mut d = [0f32; DESCRIPTOR_LEN];
    for (out, &x) in d.iter_mut().zip(v) {
        // The nearest f32: the value sent, even if the JSON parser is one
        // f64 ulp off.
        let f = x as f32;
        if !f.is_finite() {
            return Err(format!("descriptor value {x} is not a finite f32"));
        }
        *out = f;
    }
    Ok(d)
}

/// The outcome for one image of an ENROLL request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolledImage {
    /// Whether the person's face from this image is in the store (newly,
    /// or already from an earlier enrollment of the same photo).
    pub accepted: bool,
    /// Why not, or what happened: "stored", "already stored", "no face
    /// found", "more than one face (3 found)", "bad image: ...".
    pub message: String,
    /// The face used, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceBox>,
    /// Why it was not accepted (absent when it was): what a client
    /// branches on; `message` is for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
    /// With `rejection: unreadable`, the image's error code (`bad_image`,
    /// `image_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
}

/// Why a photo of an ENROLL request was not enrolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// No face was found in it.
    NoFace,
    /// More than one face, and `largest_face` was not asked for.
    SeveralFaces,
    /// It could not be decoded (see `error`).
    Unreadable,
    /// A reason this version does not know (from a newer node).
    #[serde(other)]
    Other,
}

/// ENROLL result header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResult {
    /// The person's name.
    pub name: String,
    /// Per image, in request order.
    pub images: Vec<EnrolledImage>,
    /// Faces the person has in the store now.
    pub faces: u64,
    /// Store generation after this enrollment (models trained on it or
    /// later include these faces).
    pub generation: u64,
}

/// What a recognition node did with one crop of an ENROLL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CropEnrollResult {
    /// Per crop: "stored" or "already stored".
    pub outcomes: Vec<String>,
    /// Faces the person has in the store now.
    pub faces: u64,
    /// Store generation after the enrollment.
    pub generation: u64,
}

/// RECOGNIZE request header (besides `images`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecognizeRequest {
    /// `eigen`, `fisher`, `lbph` or `resnet`; default: the node's (see
    /// `docs/recognition.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `resnet` only: the largest distance at which a face is named
    /// (default: the node's `--tolerance`, 0.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Overridden detection settings.
    #[serde(flatten)]
    pub overrides: DetectOverrides,
    /// Present when the images are face crops from a detection node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crops: Option<Vec<CropInfo>>,
}

/// Who one face is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    /// The person, or `None` when not identified (nearest distance not
    /// below the threshold).
    pub name: Option<String>,
    /// Distance to the nearest enrolled face (smaller is closer).
    pub distance: f64,
    /// The algorithm that answered.
    pub algorithm: String,
    /// Store generation the answering model was trained on.
    pub model_version: u64,
    /// `resnet`: the nearest other person, named or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<String>,
    /// `resnet`: the distance to the runner-up's nearest face.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up_distance: Option<f64>,
}

/// One face of a RECOGNIZE answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecognizedFace {
    /// Where.
    #[serde(flatten)]
    pub face: FaceBox,
    /// Who.
    #[serde(flatten)]
    pub identity: Identity,
}

/// The answer for one image of a RECOGNIZE request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecognizedImage {
    /// Every face found, largest first.
    pub faces: Vec<RecognizedFace>,
    /// "no face found", "People not identified", "Recognized: Alice", or
    /// why the image could not be processed.
    pub message: String,
    /// Set when the image could not be processed (e.g. `bad_image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
}

/// RECOGNIZE result header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecognizeResult {
    /// Per image, in request order.
    pub results: Vec<RecognizedImage>,
}

/// What a recognition node answers for crops: one identity per crop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CropRecognizeResult {
    /// Per crop, in request order.
    pub identities: Vec<Identity>,
}

/// One person in PEOPLE's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonEntry {
    /// The name.
    pub name: String,
    /// Faces stored.
    pub faces: u64,
}

/// PEOPLE result header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeopleResult {
    /// Everyone enrolled, by name.
    pub people: Vec<PersonEntry>,
}

/// REMOVE_PERSON request header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovePersonRequest {
    /// Who.
    pub name: String,
}

/// REMOVE_PERSON result header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovePersonResult {
    /// Who.
    pub name: String,
    /// Faces deleted.
    pub removed_faces: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{from_header, to_header};

    #[test]
    fn recognized_face_is_flat_on_the_wire() {
        let face = RecognizedFace {
            face: FaceBox {
                x: 1,
                y: 2,
                width: 3,
                height: 4,
            },
            identity: Identity {
                name: None,
                distance: 41.5,
                algorithm: "lbph".into(),
                model_version: 7,
                runner_up: None,
                runner_up_distance: None,
            },
        };
        let map = to_header(&face);
        for key in ["x", "y", "width", "height", "name", "distance", "algorithm"] {
            assert!(map.contains_key(key), "{key} missing in {map:?}");
        }
        assert!(map["name"].is_null());
        assert_eq!(from_header::<RecognizedFace>(&map).unwrap(), face);
    }

    #[test]
    fn descriptors_cross_the_wire_bit_exact() {
        let mut d = [0f32; DESCRIPTOR_LEN];
        for (i, x) in d.iter_mut().enumerate() {
            // Values with all 24 bits of mantissa in use.
            *x = (i as f32 * 0.731_234_5 - 40.0).sin() * 0.123_456_79 + f32::EPSILON;
        }
        let info = CropInfo {
            descriptor: Some(descriptor_to_wire(&d)),
            ..CropInfo::default()
        };
        let text = serde_json::to_string(&info).unwrap();
        let back: CropInfo = serde_json::from_str(&text).unwrap();
        let got = descriptor_from_wire(back.descriptor.as_deref().unwrap()).unwrap();
        assert_eq!(got.map(f32::to_bits), d.map(f32::to_bits));
        assert!(descriptor_from_wire(&[0.5; 127]).is_err());
        let mut bad = descriptor_to_wire(&d);
        bad[3] = 1e300;
        assert!(descriptor_from_wire(&bad).is_err());
    }

    #[test]
    fn enroll_request_defaults() {
        let map = serde_json::json!({"name": "Zoë", "images": [3]});
        let req: EnrollRequest = from_header(map.as_object().unwrap()).unwrap();
        assert_eq!(req.name, "Zoë");
        assert!(!req.largest_face && req.crops.is_none());
        assert_eq!(req.overrides, DetectOverrides::default());
    }
}
