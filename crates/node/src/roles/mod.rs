//! The face roles a node serves, loaded: detection (a cascade and its
//! settings), the link from detection to recognition (here or on another
//! node), and recognition (the store and the models). The filter role
//! needs nothing loaded.
//!
//! Invariant: a node has the detection role only with a cascade and a
//! link to a recognition role (its own or `--recognizer`'s): the node
//! refuses to start with any other combination (`crate::node`), so no
//! request finds half a role.

pub(crate) mod detection;
pub(crate) mod embedding;
pub(crate) mod link;
pub(crate) mod recognition;

use std::sync::Arc;

use ocellus_codec::DecodeLimits;
use ocellus_embed::FaceModels;
use ocellus_protocol::{ErrorCode, ErrorEvent};
use ocellus_recognize::Algorithm;

use crate::call::error;
use detection::DetectionSettings;
use link::RecognizerLink;
use recognition::RecognitionService;

/// What a worker needs besides the job: limits and the loaded roles.
pub(crate) struct Roles {
    pub decode_limits: DecodeLimits,
    /// Whether this node applies filters.
    pub filter: bool,
    pub detection: Option<DetectionSettings>,
    /// Where detected faces go (the recognition role, here or elsewhere).
    pub link: Option<RecognizerLink>,
    /// The recognition role, when this node has it.
    pub recognition: Option<Arc<RecognitionService>>,
    /// The dlib model files (the `resnet` embedding), when installed.
    pub models: Option<Arc<FaceModels>>,
    /// The algorithm of requests that name none.
    pub default_algorithm: Algorithm,
}

impl Roles {
    /// The detection role, or `role_unavailable`.
    pub fn detection(&self) -> Result<&DetectionSettings, ErrorEvent> {
        self.detection.as_ref().ok_or_else(|| {
            error(
                ErrorCode::RoleUnavailable,
                "this node has no detection role",
            )
        })
    }

    /// Where faces go, or `role_unavailable`.
    pub fn link(&self) -> Result<&RecognizerLink, ErrorEvent> {
        self.link.as_ref().ok_or_else(|| {
            error(
                ErrorCode::RoleUnavailable,
                "this node has no recognition role to send faces to",
            )
        })
    }

    /// The recognition role, or `role_unavailable`.
    pub fn recognition(&self) -> Result<&Arc<RecognitionService>, ErrorEvent> {
        self.recognition.as_ref().ok_or_else(|| {
            error(
                ErrorCode::RoleUnavailable,
                "this node has no recognition role",
            )
        })
    }

    /// The dlib models, or `model_unavailable` with how to install them.
    pub fn models(&self) -> Result<&Arc<FaceModels>, ErrorEvent> {
        self.models
            .as_ref()
            .ok_or_else(|| error(ErrorCode::ModelUnavailable, embedding::INSTALL_HINT))
    }

    /// Stops background work (the recognition role's trainer).
    pub fn stop(&self) {
        if let Some(service) = &self.recognition {
            service.stop();
        }
    }
}
