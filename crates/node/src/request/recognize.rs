//! RECOGNIZE: who is in these photos.
//!
//! Two forms, as ENROLL. From a client, photos: run finds every face of
//! every photo and asks the recognition role (here, or on the recognition
//! node: a wait that does not hold the worker) to name them all in one
//! call; a request without faces never reaches it. With `resnet` (the
//! algorithm the request names, else this node's default) this node aligns
//! each face and computes its descriptor, and only descriptors travel;
//! with the other algorithms, greyscale crops. From a detection node, face
//! crops or descriptors (`crops`): run names them.

use bytes::Bytes;
use ocellus_detect::DetectParams;
use ocellus_embed::Descriptor;
use ocellus_imaging::Image;
use ocellus_protocol::face::{
    CropRecognizeResult, RecognizeRequest, RecognizeResult, RecognizedFace, RecognizedImage,
    descriptor_from_wire,
};
use ocellus_protocol::message::from_header;
use ocellus_protocol::{ErrorCode, ErrorEvent};
use ocellus_recognize::Algorithm;

use super::{NO_FACE, bad_header, check_tolerance, frame_images, images, parse_algorithm};
use crate::call::{Incoming, error};
use crate::exec::{Cancel, Output, Ran, Work, cancelled};
use crate::roles::Roles;
use crate::roles::detection::{Scanned, crop_face, decode_crops, scan};
use crate::roles::embedding;
use crate::roles::link::Faces;
use crate::state::State;

/// RECOGNIZE of photos (detection role, then the recognition role).
struct RecognizePhotos {
    images: Vec<Bytes>,
    algorithm: Algorithm,
    tolerance: Option<f64>,
    params: DetectParams,
}

/// RECOGNIZE of descriptors a detection node sent (recognition role).
struct RecognizeDescriptors {
    descriptors: Vec<Descriptor>,
    tolerance: Option<f64>,
}

/// RECOGNIZE of crops a detection node sent (recognition role).
struct RecognizeCrops {
    crops: Vec<Bytes>,
    algorithm: Option<Algorithm>,
}

/// Checks a RECOGNIZE request and makes its job.
pub(super) fn parse(state: &State, request: &Incoming) -> Result<Box<dyn Work>, ErrorEvent> {
    let header: RecognizeRequest =
        from_header(&request.header).map_err(|e| bad_header("Recognize", e))?;
    let algorithm = parse_algorithm(header.algorithm.as_deref())?;
    let tolerance = check_tolerance(header.tolerance)?;
    if let Some(crops) = &header.crops
        && !crops.is_empty()
        && crops.iter().all(|c| c.descriptor.is_some())
    {
        return descriptors(state, request, crops, tolerance);
    }
    let images = images(state, request)?;
    if let Some(crops) = &header.crops {
        super::check_crops(state, crops.len(), images.len())?;
        return Ok(Box::new(RecognizeCrops {
            crops: images,
            algorithm,
        }));
    }
    let algorithm = algorithm.unwrap_or(state.roles.default_algorithm);
    if algorithm == Algorithm::Resnet {
        state.roles.models()?;
    }
    let params = state.roles.detection()?.resolve(&header.overrides)?;
    super::cost::check_detection(state, &images, &params)?;
    Ok(Box::new(RecognizePhotos {
        params,
        images,
        algorithm,
        tolerance,
    }))
}

/// The descriptor form: no images, one descriptor per face.
fn descriptors(
    state: &State,
    request: &Incoming,
    crops: &[ocellus_protocol::face::CropInfo],
    tolerance: Option<f64>,
) -> Result<Box<dyn Work>, ErrorEvent> {
    super::check_crops(state, 0, frame_images(request)?.len())?;
    let max = state.config.max_images;
    if crops.len() > max {
        return Err(error(
            ErrorCode::TooManyImages,
            format!("{} faces; the limit is {max}", crops.len()),
        ));
    }
    let descriptors = crops
        .iter()
        .filter_map(|c| c.descriptor.as_deref())
        .map(|d| descriptor_from_wire(d).map_err(|e| error(ErrorCode::BadRequest, e)))
        .collect::<Result<_, _>>()?;
    Ok(Box::new(RecognizeDescriptors {
        descriptors,
        tolerance,
    }))
}

impl Work for RecognizePhotos {
    fn describe(&self) -> String {
        format!("recognize {} images", self.images.len())
    }

    fn run(self: Box<Self>, roles: &Roles, cancel: &Cancel) -> Ran {
        let (settings, link) = match (roles.detection(), roles.link()) {
            (Ok(s), Ok(l)) => (s, l),
            (Err(e), _) | (_, Err(e)) => return Ran::Done(Err(e)),
        };
        let scanned: Vec<Scanned> = self
            .images
            .iter()
            .map(|bytes| scan(settings, &roles.decode_limits, bytes, &self.params, cancel))
            .collect();
        let found = scanned
            .iter()
            .flatten()
            .map(|(_, f)| f.len())
            .sum::<usize>();
        let faces = if self.algorithm == Algorithm::Resnet {
            let models = match roles.models() {
                Ok(m) => m,
                Err(e) => return Ran::Done(Err(e)),
            };
            let mut descriptors: Vec<Descriptor> = Vec::with_capacity(found);
            for (photo, faces) in scanned.iter().flatten() {
                for face in faces {
                    if cancel.is_cancelled() {
                        return Ran::Done(Err(cancelled()));
                    }
                    descriptors.push(embedding::descriptor(models, photo.image(), face));
                }
            }
            Faces::Descriptors(descriptors)
        } else {
            let mut crops: Vec<Image> = Vec::with_capacity(found);
            for (photo, faces) in scanned.iter().flatten() {
                for face in faces {
                    match crop_face(&photo.gray, face) {
                        Ok(c) => crops.push(c),
                        Err(e) => return Ran::Done(Err(e)),
                    }
                }
            }
            Faces::Crops(crops)
        };
        // Only the boxes are needed from here on: free the photos.
        let scanned: Vec<Result<Vec<_>, ErrorEvent>> = scanned
            .into_iter()
            .map(|s| s.map(|(_, faces)| faces))
            .collect();
        if found == 0 {
            return Ran::Done(Ok(answer(scanned, Vec::new())));
        }
        // One call for all faces of the request.
        link.recognize(faces, Some(self.algorithm), self.tolerance)
            .then(move |identities| Ok(answer(scanned, identities)))
            .into()
    }
}

/// The per-photo answer, with the faces named in order.
fn answer(
    scanned: Vec<Result<Vec<ocellus_protocol::face::FaceBox>, ErrorEvent>>,
    identities: Vec<ocellus_protocol::face::Identity>,
) -> Output {
    let mut identities = identities.into_iter();
    let results = scanned
        .into_iter()
        .map(|s| match s {
            Err(e) => RecognizedImage {
                faces: Vec::new(),
                message: e.message,
                error: Some(e.code),
            },
            Ok(faces) => {
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
    Output::header(&RecognizeResult { results })
}

/// "Recognized: Alice, Bob; 1 not identified", "People not identified" or
/// "no face found" (the original system's words).
fn recognize_message(faces: &[RecognizedFace]) -> String {
    if faces.is_empty() {
        return NO_FACE.to_string();
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

impl Work for RecognizeDescriptors {
    fn describe(&self) -> String {
        format!("recognize {} descriptors", self.descriptors.len())
    }

    fn run(self: Box<Self>, roles: &Roles, _cancel: &Cancel) -> Ran {
        let run = || {
            let service = roles.recognition()?;
            let identities = service.recognize_descriptors(&self.descriptors, self.tolerance)?;
            Ok(Output::header(&CropRecognizeResult { identities }))
        };
        Ran::Done(run())
    }
}

impl Work for RecognizeCrops {
    fn describe(&self) -> String {
        format!(
            "recognize {} faces ({} bytes)",
            self.crops.len(),
            self.crops.iter().map(Bytes::len).sum::<usize>()
        )
    }

    fn run(self: Box<Self>, roles: &Roles, _cancel: &Cancel) -> Ran {
        let run = || {
            let service = roles.recognition()?;
            let images = decode_crops(&self.crops, &roles.decode_limits)?;
            let identities = service.recognize(&images, self.algorithm)?;
            Ok(Output::header(&CropRecognizeResult { identities }))
        };
        Ran::Done(run())
    }
}
