//! Face jobs as a worker runs them: DETECT, ENROLL and RECOGNIZE of photos
//! (detection role) and of face crops (recognition role).

use ocellus_detect::DetectParams;
use ocellus_imaging::Image;
use ocellus_protocol::face::{
    CropEnrollResult, CropRecognizeResult, DetectResult, DetectedImage, EnrollResult,
    EnrolledImage, FaceBox, Identity, RecognizeResult, RecognizedFace, RecognizedImage,
};
use ocellus_protocol::message::{ErrorEvent, to_header};
use ocellus_recognize::Algorithm;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::faces::{
    DetectionSettings, Photo, RecognizerLink, crop_face, decode_crops, decode_photo, find_faces,
};
use crate::job::{Context, Images, Output, error};
use crate::recognition::{FaceCrop, RecognitionService};

fn output<T: Serialize>(value: &T) -> Output {
    Output {
        header: to_header(value),
        payload: Vec::new(),
    }
}

fn detection(ctx: &Context) -> Result<&DetectionSettings, ErrorEvent> {
    ctx.detection
        .as_ref()
        .ok_or_else(|| error("role_unavailable", "this node has no detection role"))
}

fn link(ctx: &Context) -> Result<&RecognizerLink, ErrorEvent> {
    ctx.link.as_ref().ok_or_else(|| {
        error(
            "role_unavailable",
            "this node has no recognition role to send faces to",
        )
    })
}

fn recognition(ctx: &Context) -> Result<&RecognitionService, ErrorEvent> {
    ctx.recognition
        .as_deref()
        .ok_or_else(|| error("role_unavailable", "this node has no recognition role"))
}

/// A photo and the faces in it, or why it could not be read.
type Scanned = Result<(Photo, Vec<FaceBox>), ErrorEvent>;

fn scan(
    ctx: &Context,
    settings: &DetectionSettings,
    bytes: &[u8],
    params: &DetectParams,
) -> Scanned {
    let photo = decode_photo(bytes, &ctx.decode_limits)?;
    let faces = find_faces(settings, &photo.gray, params)?;
    Ok((photo, faces))
}

fn faces_message(n: usize) -> String {
    match n {
        0 => "no face found".to_string(),
        1 => "1 face".to_string(),
        n => format!("{n} faces"),
    }
}

/// DETECT: boxes only.
pub(crate) fn detect(
    ctx: &Context,
    images: &Images,
    params: &DetectParams,
) -> Result<Output, ErrorEvent> {
    let settings = detection(ctx)?;
    let results = images
        .slices()
        .into_iter()
        .map(|bytes| match scan(ctx, settings, bytes, params) {
            Ok((photo, faces)) => DetectedImage {
                width: photo.gray.width(),
                height: photo.gray.height(),
                message: faces_message(faces.len()),
                faces,
                error: None,
            },
            Err(e) => DetectedImage {
                width: 0,
                height: 0,
                faces: Vec::new(),
                message: e.message,
                error: Some(e.code),
            },
        })
        .collect();
    Ok(output(&DetectResult { results }))
}

/// ENROLL of photos: one face per photo (or the largest, if asked), then
/// the recognition role stores them.
pub(crate) fn enroll(
    ctx: &Context,
    name: &str,
    images: &Images,
    largest_face: bool,
    params: &DetectParams,
) -> Result<Output, ErrorEvent> {
    // The name was checked when the request arrived (connection.rs).
    let settings = detection(ctx)?;
    let link = link(ctx)?;
    let mut outcomes = Vec::new();
    let mut crops = Vec::new();
    // Index in `outcomes` of each crop.
    let mut crop_of = Vec::new();
    for bytes in images.slices() {
        let (photo, faces) = match scan(ctx, settings, bytes, params) {
            Ok(s) => s,
            Err(e) => {
                outcomes.push(rejected(e.message));
                continue;
            }
        };
        let face = match faces.len() {
            0 => {
                outcomes.push(rejected("no face found".to_string()));
                continue;
            }
            1 => faces[0],
            n if !largest_face => {
                outcomes.push(rejected(format!("more than one face ({n} found)")));
                continue;
            }
            _ => faces[0], // largest first
        };
        crops.push(FaceCrop {
            gray: crop_face(&photo.gray, &face)?,
            source_hash: photo.hash,
        });
        crop_of.push(outcomes.len());
        outcomes.push(EnrolledImage {
            accepted: true,
            message: String::new(),
            face: Some(face),
        });
    }
    let (faces, generation) = if crops.is_empty() {
        (0, 0)
    } else {
        let stored = link.enroll(name, crops, &ctx.runtime)?;
        for (&i, message) in crop_of.iter().zip(stored.outcomes) {
            outcomes[i].message = message;
        }
        (stored.faces, stored.generation)
    };
    Ok(output(&EnrollResult {
        name: name.to_string(),
        images: outcomes,
        faces,
        generation,
    }))
}

fn rejected(message: String) -> EnrolledImage {
    EnrolledImage {
        accepted: false,
        message,
        face: None,
    }
}

/// RECOGNIZE of photos: every face of every photo is named.
pub(crate) fn recognize(
    ctx: &Context,
    images: &Images,
    algorithm: Option<Algorithm>,
    params: &DetectParams,
) -> Result<Output, ErrorEvent> {
    let settings = detection(ctx)?;
    let link = link(ctx)?;
    let scanned: Vec<Scanned> = images
        .slices()
        .into_iter()
        .map(|bytes| scan(ctx, settings, bytes, params))
        .collect();
    let mut crops: Vec<Image> = Vec::new();
    for (photo, faces) in scanned.iter().flatten() {
        for face in faces {
            crops.push(crop_face(&photo.gray, face)?);
        }
    }
    // One call for all faces of the request; a request without faces never
    // reaches the recognition role.
    let mut identities = if crops.is_empty() {
        Vec::new()
    } else {
        link.recognize(crops, algorithm, &ctx.runtime)?
    }
    .into_iter();
    let results = scanned
        .into_iter()
        .map(|s| match s {
            Err(e) => RecognizedImage {
                faces: Vec::new(),
                message: e.message,
                error: Some(e.code),
            },
            Ok((_, faces)) => {
                let faces: Vec<RecognizedFace> = faces
                    .into_iter()
                    .zip(identities.by_ref())
                    .map(|(face, identity)| RecognizedFace { face, identity })
                    .collect();
                RecognizedImage {
                    message: recognize_message(&faces),
                    faces,
                    error: None,
                }
            }
        })
        .collect();
    Ok(output(&RecognizeResult { results }))
}

/// "Recognized: Alice, Bob; 1 not identified", "People not identified" or
/// "no face found" (the original system's words).
fn recognize_message(faces: &[RecognizedFace]) -> String {
    if faces.is_empty() {
        return "no face found".to_string();
    }
    let named: Vec<&str> = faces
        .iter()
        .filter_map(|f| f.identity.name.as_deref())
        .collect();
    let unknown = faces.len() - named.len();
    match (named.is_empty(), unknown) {
        (true, _) => "People not identified".to_string(),
        (false, 0) => format!("Recognized: {}", named.join(", ")),
        (false, n) => format!("Recognized: {}; {n} not identified", named.join(", ")),
    }
}

/// ENROLL of crops (recognition role).
pub(crate) fn enroll_crops(
    ctx: &Context,
    name: &str,
    crops: &Images,
    hashes: &[Option<[u8; 32]>],
) -> Result<Output, ErrorEvent> {
    let service = recognition(ctx)?;
    let slices = crops.slices();
    let images = decode_crops(&slices, &ctx.decode_limits)?;
    let faces: Vec<FaceCrop> = images
        .into_iter()
        .zip(slices)
        .zip(hashes)
        .map(|((gray, bytes), hash)| FaceCrop {
            gray,
            source_hash: hash.unwrap_or_else(|| Sha256::digest(bytes).into()),
        })
        .collect();
    let result: CropEnrollResult = service.enroll(name, &faces)?;
    Ok(output(&result))
}

/// RECOGNIZE of crops (recognition role).
pub(crate) fn recognize_crops(
    ctx: &Context,
    crops: &Images,
    algorithm: Option<Algorithm>,
) -> Result<Output, ErrorEvent> {
    let service = recognition(ctx)?;
    let images = decode_crops(&crops.slices(), &ctx.decode_limits)?;
    let identities: Vec<Identity> = service.recognize(&images, algorithm)?;
    Ok(output(&CropRecognizeResult { identities }))
}
