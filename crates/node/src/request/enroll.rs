//! ENROLL: store a person's faces.
//!
//! Two forms. From a client, photos: parse checks the name and the
//! detection overrides; run finds one face per photo (or the largest, if
//! asked), crops it and, when this node has the model files, computes its
//! `resnet` chip and descriptor from the photo; then it hands the faces to
//! the recognition role, here or on the recognition node (a wait that does
//! not hold the worker). From a detection node, face crops (`crops`, with
//! their descriptors and chips when computed): parse checks that this node
//! has the recognition role and that every part is well-formed; run stores
//! them.

use bytes::Bytes;
use ocellus_codec::decode;
use ocellus_detect::DetectParams;
use ocellus_embed::CHIP_SIZE;
use ocellus_protocol::face::{
    CropInfo, EnrollRequest, EnrollResult, EnrolledImage, Rejection, descriptor_from_wire,
};
use ocellus_protocol::message::from_header;
use ocellus_protocol::{ErrorCode, ErrorEvent};
use ocellus_store::Embedding;
use sha2::{Digest, Sha256};

use super::{NO_FACE, bad_header, images};
use crate::call::{Incoming, error};
use crate::exec::{Cancel, Output, Ran, Work, cancelled};
use crate::roles::Roles;
use crate::roles::detection::{crop_face, decode_crops, parse_hash, scan};
use crate::roles::embedding;
use crate::roles::recognition::FaceCrop;
use crate::state::State;

/// ENROLL of photos (detection role, then the recognition role).
struct EnrollPhotos {
    name: String,
    images: Vec<Bytes>,
    largest_face: bool,
    params: DetectParams,
}

/// ENROLL of crops a detection node sent (recognition role).
struct EnrollCrops {
    name: String,
    crops: Vec<Bytes>,
    hashes: Vec<Option<[u8; 32]>>,
    embeddings: Vec<Option<Embedding>>,
}

/// Checks an ENROLL request and makes its job.
pub(super) fn parse(state: &State, request: &Incoming) -> Result<Box<dyn Work>, ErrorEvent> {
    let header: EnrollRequest =
        from_header(&request.header).map_err(|e| bad_header("Enroll", e))?;
    ocellus_store::validate_name(&header.name)
        .map_err(|e| error(ErrorCode::BadName, e.to_string()))?;
    let images = images(state, request)?;
    if let Some(crops) = &header.crops {
        let chips = crops.iter().filter(|c| c.chip.is_some()).count();
        super::check_crops(state, crops.len() + chips, images.len())?;
        let hashes = crops
            .iter()
            .map(|c| c.source_hash.as_deref().and_then(parse_hash))
            .collect();
        let embeddings = crops
            .iter()
            .map(|c| crop_embedding(state, c, &images, crops.len()))
            .collect::<Result<_, _>>()?;
        let mut images = images;
        images.truncate(crops.len());
        return Ok(Box::new(EnrollCrops {
            name: header.name,
            crops: images,
            hashes,
            embeddings,
        }));
    }
    let params = state.roles.detection()?.resolve(&header.overrides)?;
    super::cost::check_detection(state, &images, &params)?;
    Ok(Box::new(EnrollPhotos {
        params,
        name: header.name,
        images,
        largest_face: header.largest_face,
    }))
}

/// The descriptor and chip a detection node sent with a crop: both or
/// neither; a chip that is a 150x150 PNG after the crops.
fn crop_embedding(
    state: &State,
    info: &CropInfo,
    images: &[Bytes],
    crops: usize,
) -> Result<Option<Embedding>, ErrorEvent> {
    let bad = |m: String| error(ErrorCode::BadRequest, m);
    let (descriptor, chip) = match (&info.descriptor, info.chip) {
        (None, None) => return Ok(None),
        (Some(d), Some(c)) => (d, c),
        _ => return Err(bad("a crop's descriptor and chip come together".into())),
    };
    let descriptor = descriptor_from_wire(descriptor).map_err(bad)?;
    if chip < crops || chip >= images.len() {
        return Err(bad(format!(
            "chip index {chip} is not among the images after the {crops} crops"
        )));
    }
    let png = &images[chip];
    let (image, _) =
        decode(png, &state.config.decode_limits).map_err(|e| bad(format!("chip {chip}: {e}")))?;
    if (image.width() as usize, image.height() as usize) != (CHIP_SIZE, CHIP_SIZE)
        || !png.starts_with(b"\x89PNG")
    {
        return Err(bad(format!(
            "chip {chip} is not a {CHIP_SIZE}x{CHIP_SIZE} PNG"
        )));
    }
    Ok(Some(Embedding {
        chip_png: png.to_vec(),
        descriptor,
    }))
}

fn rejected(rejection: Rejection, message: String, code: Option<ErrorCode>) -> EnrolledImage {
    EnrolledImage {
        accepted: false,
        message,
        face: None,
        rejection: Some(rejection),
        error: code,
    }
}

impl Work for EnrollPhotos {
    fn describe(&self) -> String {
        format!("enroll {} images", self.images.len())
    }

    fn run(self: Box<Self>, roles: &Roles, cancel: &Cancel) -> Ran {
        let (settings, link) = match (roles.detection(), roles.link()) {
            (Ok(s), Ok(l)) => (s, l),
            (Err(e), _) | (_, Err(e)) => return Ran::Done(Err(e)),
        };
        let mut outcomes = Vec::new();
        let mut crops = Vec::new();
        // Index in `outcomes` of each crop.
        let mut crop_of = Vec::new();
        for bytes in &self.images {
            if cancel.is_cancelled() {
                return Ran::Done(Err(cancelled()));
            }
            let (photo, faces) =
                match scan(settings, &roles.decode_limits, bytes, &self.params, cancel) {
                    Ok(s) => s,
                    Err(e) => {
                        outcomes.push(rejected(Rejection::Unreadable, e.message, Some(e.code)));
                        continue;
                    }
                };
            let face = match faces.len() {
                0 => {
                    outcomes.push(rejected(Rejection::NoFace, NO_FACE.to_string(), None));
                    continue;
                }
                1 => faces[0],
                n if !self.largest_face => {
                    let message = format!("more than one face ({n} found)");
                    outcomes.push(rejected(Rejection::SeveralFaces, message, None));
                    continue;
                }
                _ => faces[0], // largest first
            };
            let gray = match crop_face(&photo.gray, &face) {
                Ok(g) => g,
                Err(e) => return Ran::Done(Err(e)),
            };
            let embedding = match roles.models.as_deref() {
                Some(models) => match embedding::embed(models, photo.image(), &face) {
                    Ok(e) => Some(e),
                    Err(e) => return Ran::Done(Err(e)),
                },
                None => None,
            };
            crops.push(FaceCrop {
                gray,
                source_hash: photo.hash,
                embedding,
            });
            crop_of.push(outcomes.len());
            outcomes.push(EnrolledImage {
                accepted: true,
                message: String::new(),
                face: Some(face),
                rejection: None,
                error: None,
            });
        }
        if crops.is_empty() {
            return Ran::Done(Ok(enroll_result(self.name, outcomes, 0, 0)));
        }
        let call = link.enroll(&self.name, crops);
        let name = self.name;
        call.then(move |stored| {
            for (&i, message) in crop_of.iter().zip(stored.outcomes) {
                outcomes[i].message = message;
            }
            Ok(enroll_result(
                name,
                outcomes,
                stored.faces,
                stored.generation,
            ))
        })
        .into()
    }
}

fn enroll_result(name: String, images: Vec<EnrolledImage>, faces: u64, generation: u64) -> Output {
    Output::header(&EnrollResult {
        name,
        images,
        faces,
        generation,
    })
}

impl Work for EnrollCrops {
    fn describe(&self) -> String {
        format!("enroll {} faces", self.crops.len())
    }

    fn run(self: Box<Self>, roles: &Roles, _cancel: &Cancel) -> Ran {
        let run = || {
            let service = roles.recognition()?;
            let images = decode_crops(&self.crops, &roles.decode_limits)?;
            let faces: Vec<FaceCrop> = images
                .into_iter()
                .zip(&self.crops)
                .zip(&self.hashes)
                .zip(self.embeddings)
                .map(|(((gray, bytes), hash), embedding)| FaceCrop {
                    gray,
                    source_hash: hash.unwrap_or_else(|| Sha256::digest(bytes).into()),
                    embedding,
                })
                .collect();
            let result = service.enroll(&self.name, &faces)?;
            Ok(Output::header(&result))
        };
        Ran::Done(run())
    }
}
