//! The recognition role: enrolls people (stores their faces, updates the
//! models) and names faces, with the store of `ocellus-store`.
//!
//! Models and the store stay consistent this way:
//! - every change of the face set (enroll, remove) takes the LBPH write
//!   lock first, so changes are serialised and LBPH, which updates
//!   incrementally, always holds exactly the store's faces in id order;
//! - Eigenfaces and Fisherfaces cannot update: a background trainer
//!   retrains them from the store, once per burst of changes. Until a new
//!   model is ready the previous one answers (its `model_version`, the
//!   store generation it was trained on, says so), except after a removal:
//!   a model that still knows a removed person is never used again, and
//!   recognition waits for the retrained one;
//! - the trainer's cost is bounded: it runs on a thread pool of its own
//!   with one thread (never more than one core, whatever the models'
//!   parallel code would take) at a lower priority than the workers
//!   ([`TRAINER_NICE`]), and a round starts only once the changes
//!   have paused ([`Pacing::quiet`]; at most [`Pacing::max_delay`] after
//!   the first change of a burst) and a pause after the previous round
//!   ([`Pacing::gap_factor`] times its duration) has passed, so that during
//!   a long burst training takes a bounded share of that core. A
//!   recognition waiting for a model (none yet, or after a removal) starts
//!   the round at once. The trainer keeps the decoded training set and
//!   reads only the faces added since its last round (all of them again
//!   after a removal);
//! - after training, snapshots go to the store, tagged with their
//!   generation, unless the store has moved on meanwhile (a snapshot older
//!   than the store is never loaded, so writing it would be wasted); a
//!   restarted node loads the snapshots that match the store's generation
//!   and retrains only the others;
//! - `resnet` needs no training: its index holds the descriptor of every
//!   stored face that has one, in id order, changed under the same lock as
//!   LBPH. A face stored without a descriptor (by a node without the model
//!   files, or before the upgrade) gets one from its stored crop as soon as
//!   this role has the models: at enrollment, or when the role opens.
//!
//! It speaks the domain, not the wire: its failures are
//! [`RecognitionError`]s, each of which names the protocol [`ErrorCode`] a
//! client gets for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_embed::{Descriptor, FaceModels};
use ocellus_imaging::Image;
use ocellus_protocol::face::{CropEnrollResult, Identity, PersonEntry};
use ocellus_recognize::prepare::DEFAULT_FACE_SIZE;
use ocellus_recognize::resnet::DEFAULT_TOLERANCE;
use ocellus_recognize::{
    Algorithm, DescriptorIndex, FaceRect, Label, Recognizer, model_from_bytes, new_recognizer,
    prepare_face,
};
use ocellus_store::{AddOutcome, Embedding, FaceId, NewFace, Store, StoreError, StoredFace};
use tracing::{info, warn};

use super::embedding::{self, INSTALL_HINT};

use ocellus_protocol::{ErrorCode, ErrorEvent};

/// A face cut out of a photo by the detection role: greyscale, at the
/// size it was found, with the hash of the photo.
#[derive(Clone, Debug)]
pub struct FaceCrop {
    /// The face region of the photo, greyscale.
    pub gray: Image,
    /// SHA-256 of the photo's bytes (the same photo enrolled twice for one
    /// person is stored once).
    pub source_hash: [u8; 32],
    /// Its `resnet` chip and descriptor, when the detection node computed
    /// them from the photo.
    pub embedding: Option<Embedding>,
}

/// How the recognition role answers.
#[derive(Clone, Debug)]
pub struct RecognitionSettings {
    /// The algorithm of requests that name none.
    pub default_algorithm: Algorithm,
    /// `resnet`: the largest distance at which a face is named.
    pub tolerance: f64,
    /// The dlib model files, to compute descriptors of faces that come
    /// without one.
    pub models: Option<Arc<FaceModels>>,
}

impl Default for RecognitionSettings {
    fn default() -> Self {
        RecognitionSettings {
            default_algorithm: Algorithm::Lbph,
            tolerance: DEFAULT_TOLERANCE,
            models: None,
        }
    }
}

/// Why the recognition role could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RecognitionError {
    /// The person's name is not acceptable.
    #[error("{0}")]
    BadName(String),
    /// Nobody has that name.
    #[error("nobody called {0:?} is enrolled")]
    UnknownPerson(String),
    /// Recognition before anyone was enrolled.
    #[error("nobody is enrolled yet: enroll people (op 1) before recognizing")]
    NobodyEnrolled,
    /// The algorithm has no model for the enrolled faces (yet).
    #[error("{0}")]
    ModelUnavailable(String),
    /// The node is stopping.
    #[error("server shutting down")]
    ShuttingDown,
    /// A face that cannot be prepared for recognition.
    #[error("{0}")]
    BadFace(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
    /// A bug.
    #[error("{0}")]
    Internal(String),
}

impl RecognitionError {
    /// The protocol code a client gets for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            RecognitionError::BadName(_) => ErrorCode::BadName,
            RecognitionError::UnknownPerson(_) => ErrorCode::UnknownPerson,
            RecognitionError::NobodyEnrolled => ErrorCode::NoPeopleEnrolled,
            RecognitionError::ModelUnavailable(_) => ErrorCode::ModelUnavailable,
            RecognitionError::ShuttingDown => ErrorCode::ShuttingDown,
            RecognitionError::BadFace(_) => ErrorCode::BadRequest,
            RecognitionError::Store(_) => ErrorCode::StoreFailed,
            RecognitionError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<RecognitionError> for ErrorEvent {
    fn from(e: RecognitionError) -> ErrorEvent {
        ErrorEvent::new(e.code(), e.to_string())
    }
}

/// How long a recognition may wait for a model that is being trained.
const MODEL_WAIT: Duration = Duration::from_secs(120);

/// The trainer thread's nice value. Training is background work: on a node
/// whose cores are all busy with requests (enrolment on a 2-core machine is
/// one worker plus the client), a trainer at the workers' priority took a
/// full share of a core from them and enrolment slowed as rounds grew
/// (`bench/enroll_scale.py`, issue #14). At nice 10 the scheduler gives it
/// about a tenth of a contended core (CFS weight 110 against 1024) and all
/// of an idle one, so models still follow a long burst.
const TRAINER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to `nice`. Linux keeps
/// the nice value per thread, and `setpriority(PRIO_PROCESS, tid)` sets the
/// given thread's only (`man 2 setpriority`, NOTES); elsewhere, or when it
/// fails, the thread keeps its priority, which costs speed, not
/// correctness.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers and
        // touch no memory of ours.
        let failed = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
        };
        if failed {
            warn!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the trainer's priority; it competes with requests"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// When the background trainer starts a round (module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacing {
    /// A burst of changes is over once none came for this long. Enrolling
    /// a list one face at a time sends the next face within milliseconds
    /// (8 ms per face at 125 faces/s, issue #14), so half a second of
    /// silence ends a burst without delaying the models much.
    pub quiet: Duration,
    /// A continuous stream of changes still gets a round this long after
    /// its first change (then at the pace `gap_factor` allows).
    pub max_delay: Duration,
    /// The pause after a round, as a multiple of its duration: 1 keeps
    /// training under half of one core during a long burst (rounds of 1,000
    /// ORL-sized faces take seconds: `bench/enroll_scale.py`).
    pub gap_factor: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            quiet: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            gap_factor: 1.0,
        }
    }
}

/// The end and the duration of the trainer's last round.
#[derive(Clone, Copy)]
struct LastRound {
    ended: Instant,
    took: Duration,
}

impl Pacing {
    /// How long the trainer should still wait before a round, `None` to
    /// start it now.
    fn delay(&self, state: &Subspace, last: Option<LastRound>, now: Instant) -> Option<Duration> {
        if state.waiting > 0 {
            return None;
        }
        let mut start = now;
        if let Some(last_change) = state.last_change {
            let quiet = last_change + self.quiet;
            start = state
                .first_change
                .map_or(quiet, |first| quiet.min(first + self.max_delay));
        }
        if let Some(round) = last {
            start = start.max(round.ended + round.took.mul_f64(self.gap_factor));
        }
        start.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// The training set as the trainer last read it, decoded, in id order.
#[derive(Default)]
struct TrainingCache {
    ids: Vec<FaceId>,
    images: Vec<Image>,
    labels: Vec<Label>,
}

impl TrainingCache {
    fn clear(&mut self) {
        self.ids.clear();
        self.images.clear();
        self.labels.clear();
    }
}

/// A trained Eigenfaces or Fisherfaces model and the store generation it
/// was trained on.
struct Trained {
    model: Arc<dyn Recognizer>,
    generation: u64,
}

/// What the background trainer has produced, and what it should do next.
#[derive(Default)]
struct Subspace {
    eigen: Option<Trained>,
    fisher: Option<Trained>,
    /// Why a model could not be trained on the latest generation (e.g.
    /// Fisherfaces with one person).
    eigen_error: Option<(u64, String)>,
    fisher_error: Option<(u64, String)>,
    /// Models trained before this generation know a removed person.
    usable_from: u64,
    /// The store changed since the last training.
    dirty: bool,
    /// A training round is running.
    training: bool,
    stopping: bool,
    /// Recognitions waiting for a model: the trainer starts at once.
    waiting: usize,
    /// The first and the latest change since the last round started.
    first_change: Option<Instant>,
    last_change: Option<Instant>,
}

/// What is enrolled, at one moment ([`RecognitionService::census`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    /// People enrolled.
    pub people: u64,
    /// Their stored faces.
    pub faces: u64,
    /// The store's generation: it grows with every change of the face set,
    /// LBPH and `resnet` always hold it, and a retrained Eigenfaces or
    /// Fisherfaces model is tagged with it (RECOGNIZE's `model_version`).
    pub generation: u64,
}

/// The LBPH model with the generation it holds.
struct LbphState {
    model: Box<dyn Recognizer>,
    generation: u64,
}

/// The `resnet` index with the generation it holds.
struct ResnetState {
    index: DescriptorIndex,
    generation: u64,
}

/// The recognition role of a node.
pub struct RecognitionService {
    store: Mutex<Store>,
    lbph: RwLock<LbphState>,
    resnet: RwLock<ResnetState>,
    subspace: Mutex<Subspace>,
    /// Signalled when the trainer finishes a model, and when there is work
    /// for it.
    changed: Condvar,
    names: RwLock<BTreeMap<Label, String>>,
    settings: RecognitionSettings,
    face_size: (u32, u32),
    /// Training rounds run by the background trainer.
    rounds: std::sync::atomic::AtomicU64,
    /// The threads the last round could use (1: the trainer's own pool).
    training_threads: std::sync::atomic::AtomicUsize,
    pacing: Pacing,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn store_error(e: StoreError) -> RecognitionError {
    match e {
        StoreError::BadName(_) => RecognitionError::BadName(e.to_string()),
        other => RecognitionError::Store(format!("face store: {other}")),
    }
}

fn label_of(person: i64) -> Result<Label, RecognitionError> {
    Label::try_from(person)
        .map_err(|_| RecognitionError::Internal(format!("person id {person} overflows")))
}

impl RecognitionService {
    /// Opens the store in `data_dir` (created if missing), loads the models
    /// that match it, and starts the trainer for the others.
    pub fn open(
        data_dir: &Path,
        settings: RecognitionSettings,
    ) -> Result<Arc<RecognitionService>, RecognitionError> {
        let store = Store::open(data_dir).map_err(store_error)?;
        Self::with_store(store, settings)
    }

    /// The same, on a store already open (tests use an in-memory one).
    pub fn with_store(
        store: Store,
        settings: RecognitionSettings,
    ) -> Result<Arc<RecognitionService>, RecognitionError> {
        Self::with_pacing(store, settings, Pacing::default())
    }

    /// The same, with the trainer paced as `pacing` says.
    pub(crate) fn with_pacing(
        mut store: Store,
        settings: RecognitionSettings,
        pacing: Pacing,
    ) -> Result<Arc<RecognitionService>, RecognitionError> {
        let face_size = DEFAULT_FACE_SIZE;
        if let Some(models) = &settings.models {
            compute_missing_descriptors(&mut store, models)?;
        }
        let generation = store.generation().map_err(store_error)?;
        let resnet = ResnetState {
            index: load_index(&store)?,
            generation,
        };
        let names = load_names(&store)?;
        let mut stale = false;
        let lbph = match load_snapshot(&store, Algorithm::Lbph, generation) {
            Some(model) => model,
            None => {
                stale = true;
                let started = Instant::now();
                let model = train_from(&store, Algorithm::Lbph)?;
                info!(
                    faces = model.num_samples(),
                    ms = started.elapsed().as_millis() as u64,
                    "LBPH trained from the store"
                );
                model
            }
        };
        let mut subspace = Subspace {
            usable_from: generation,
            // The trainer also saves the fresh LBPH snapshot.
            dirty: stale && generation > 0,
            ..Subspace::default()
        };
        for algorithm in [Algorithm::Eigen, Algorithm::Fisher] {
            match load_snapshot(&store, algorithm, generation) {
                Some(model) => {
                    *subspace.slot(algorithm) = Some(Trained {
                        model: Arc::from(model),
                        generation,
                    })
                }
                None => subspace.dirty = true,
            }
        }
        let service = Arc::new(RecognitionService {
            store: Mutex::new(store),
            lbph: RwLock::new(LbphState {
                model: lbph,
                generation,
            }),
            resnet: RwLock::new(resnet),
            subspace: Mutex::new(subspace),
            changed: Condvar::new(),
            names: RwLock::new(names),
            settings,
            face_size,
            rounds: std::sync::atomic::AtomicU64::new(0),
            training_threads: std::sync::atomic::AtomicUsize::new(0),
            pacing,
        });
        let weak = Arc::downgrade(&service);
        // The trainer is the only thread of its own pool: the models'
        // parallel code (rayon, faer) then runs on it alone instead of
        // taking every core of the node's global pool. The spawned job
        // keeps the pool alive after the handle is dropped.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "ocellus-trainer".into())
            .start_handler(|_| lower_priority(TRAINER_NICE))
            .panic_handler(|_| warn!("the model trainer panicked; Eigen/Fisher stop updating"))
            .build()
            .map_err(|e| RecognitionError::Internal(format!("cannot start the trainer: {e}")))?;
        pool.spawn(move || trainer(weak));
        Ok(service)
    }

    /// Stops the trainer (it finishes the model it is training).
    pub fn stop(&self) {
        lock(&self.subspace).stopping = true;
        self.changed.notify_all();
    }

    /// Stores the faces of `name` and updates the models. Returns once the
    /// store has committed them: one outcome per crop, in order.
    pub fn enroll(
        &self,
        name: &str,
        crops: &[FaceCrop],
    ) -> Result<CropEnrollResult, RecognitionError> {
        ocellus_store::validate_name(name).map_err(store_error)?;
        let prepared: Vec<Image> = crops
            .iter()
            .map(|c| self.prepare(&c.gray))
            .collect::<Result<_, _>>()?;
        let new_faces: Vec<NewFace> = crops
            .iter()
            .zip(&prepared)
            .map(|(crop, face)| {
                let png =
                    encode(face, ImageFormat::Png, &EncodeOptions::default()).map_err(|e| {
                        RecognitionError::Internal(format!("cannot encode a face: {e}"))
                    })?;
                let embedding = match (&crop.embedding, &self.settings.models) {
                    (Some(e), _) => Some(e.clone()),
                    (None, Some(models)) => Some(
                        embedding::embed_crop(models, &crop.gray)
                            .map_err(|e| RecognitionError::Internal(e.message))?,
                    ),
                    (None, None) => None,
                };
                Ok(NewFace {
                    source_hash: crop.source_hash,
                    png,
                    width: face.width(),
                    height: face.height(),
                    embedding,
                })
            })
            .collect::<Result<_, RecognitionError>>()?;

        // Serialise changes of the face set: LBPH first, then the store.
        let mut lbph = self.lbph.write().unwrap_or_else(|p| p.into_inner());
        let (person, outcomes, generation, faces) = {
            let mut store = lock(&self.store);
            let (person, outcomes) = store.add_faces(name, &new_faces).map_err(store_error)?;
            let generation = store.generation().map_err(store_error)?;
            let faces = store.face_count(person).map_err(store_error)?;
            (person, outcomes, generation, faces)
        };
        let label = label_of(person)?;
        {
            let mut resnet = self.resnet.write().unwrap_or_else(|p| p.into_inner());
            for (outcome, face) in outcomes.iter().zip(&new_faces) {
                if let (true, Some(e)) = (outcome.is_added(), &face.embedding) {
                    resnet.index.push(label, e.descriptor);
                }
            }
            resnet.generation = generation;
        }
        let added: Vec<Image> = outcomes
            .iter()
            .zip(prepared)
            .filter(|(o, _)| o.is_added())
            .map(|(_, face)| face)
            .collect();
        if !added.is_empty() {
            self.names
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(label, name.to_string());
            let labels = vec![label; added.len()];
            if let Err(e) = lbph.model.update(&added, &labels) {
                // Cannot happen with prepared faces; rebuild from the store
                // rather than answer with a model that misses them.
                warn!(error = %e, "LBPH update failed; retraining from the store");
                lbph.model = train_from(&lock(&self.store), Algorithm::Lbph)?;
            }
            lbph.generation = generation;
            drop(lbph);
            lock(&self.subspace).mark_changed();
            self.changed.notify_all();
        }
        info!(name, added = added.len(), generation, "enrolled");
        Ok(CropEnrollResult {
            outcomes: outcomes
                .iter()
                .map(|o| match o {
                    AddOutcome::Added(_) => "stored".to_string(),
                    AddOutcome::Duplicate(_) => "already stored".to_string(),
                })
                .collect(),
            faces,
            generation,
        })
    }

    /// Names each crop with `algorithm` (default: the node's).
    pub fn recognize(
        &self,
        crops: &[Image],
        algorithm: Option<Algorithm>,
    ) -> Result<Vec<Identity>, RecognitionError> {
        let algorithm = algorithm.unwrap_or(self.settings.default_algorithm);
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        if algorithm == Algorithm::Resnet {
            // Crops from a detection node without the model files.
            let models = self
                .settings
                .models
                .as_ref()
                .ok_or_else(|| RecognitionError::ModelUnavailable(INSTALL_HINT.into()))?;
            let descriptors: Vec<Descriptor> = crops
                .iter()
                .map(|c| embedding::crop_descriptor(models, c))
                .collect();
            return self.recognize_descriptors(&descriptors, None);
        }
        let prepared: Vec<Image> = crops
            .iter()
            .map(|c| self.prepare(c))
            .collect::<Result<_, _>>()?;
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        let answer = |model: &dyn Recognizer, generation: u64| {
            prepared
                .iter()
                .map(|face| {
                    let p = model
                        .predict(face)
                        .map_err(|e| RecognitionError::Internal(format!("{algorithm}: {e}")))?;
                    Ok(Identity {
                        name: p.label.and_then(|l| names.get(&l).cloned()),
                        distance: p.distance,
                        algorithm: algorithm.name().to_string(),
                        model_version: generation,
                        runner_up: None,
                        runner_up_distance: None,
                    })
                })
                .collect::<Result<Vec<_>, RecognitionError>>()
        };
        if algorithm == Algorithm::Lbph {
            let lbph = self.lbph.read().unwrap_or_else(|p| p.into_inner());
            if !lbph.model.is_trained() || lbph.model.num_samples() == 0 {
                return Err(nobody_enrolled());
            }
            return answer(lbph.model.as_ref(), lbph.generation);
        }
        let (model, generation) = self.subspace_model(algorithm)?;
        answer(model.as_ref(), generation)
    }

    /// Names each face by its `resnet` descriptor: the nearest stored face,
    /// named if at most `tolerance` (default: the node's) away.
    pub fn recognize_descriptors(
        &self,
        descriptors: &[Descriptor],
        tolerance: Option<f64>,
    ) -> Result<Vec<Identity>, RecognitionError> {
        let tolerance = tolerance.unwrap_or(self.settings.tolerance);
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        if names.is_empty() {
            return Err(nobody_enrolled());
        }
        let resnet = self.resnet.read().unwrap_or_else(|p| p.into_inner());
        if resnet.index.is_empty() {
            return Err(RecognitionError::ModelUnavailable(format!(
                "no enrolled face has a resnet descriptor yet; {INSTALL_HINT}"
            )));
        }
        descriptors
            .iter()
            .map(|d| {
                let m = resnet
                    .index
                    .nearest(d, tolerance)
                    .ok_or_else(nobody_enrolled)?;
                Ok(Identity {
                    name: m.label.and_then(|l| names.get(&l).cloned()),
                    distance: m.distance,
                    algorithm: Algorithm::Resnet.name().to_string(),
                    model_version: resnet.generation,
                    runner_up: m.runner_up.and_then(|(l, _)| names.get(&l).cloned()),
                    runner_up_distance: m.runner_up.map(|(_, d)| d),
                })
            })
            .collect()
    }

    /// The usable Eigen/Fisher model, waiting for the trainer if needed.
    fn subspace_model(
        &self,
        algorithm: Algorithm,
    ) -> Result<(Arc<dyn Recognizer>, u64), RecognitionError> {
        if self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return Err(nobody_enrolled());
        }
        let deadline = Instant::now() + MODEL_WAIT;
        let mut state = lock(&self.subspace);
        let mut counted = false;
        let found = loop {
            let usable_from = state.usable_from;
            if let Some(t) = state.slot(algorithm).as_ref()
                && t.generation >= usable_from
            {
                break Ok((t.model.clone(), t.generation));
            }
            let settled = !state.dirty && !state.training;
            if let Some((generation, message)) = state.error_slot(algorithm).as_ref()
                && *generation >= usable_from
                && settled
            {
                break Err(RecognitionError::ModelUnavailable(message.clone()));
            }
            if state.stopping {
                break Err(RecognitionError::ShuttingDown);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(RecognitionError::ModelUnavailable(format!(
                    "the {algorithm} model is still training; try again"
                )));
            }
            if !counted {
                // Someone needs the model: the trainer stops pacing.
                counted = true;
                state.waiting += 1;
                self.changed.notify_all();
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        if counted {
            state.waiting -= 1;
        }
        found
    }

    /// Everyone enrolled, by name, with face counts.
    pub fn people(&self) -> Result<Vec<PersonEntry>, RecognitionError> {
        let people = lock(&self.store).people().map_err(store_error)?;
        Ok(people
            .into_iter()
            .map(|p| PersonEntry {
                name: p.name,
                faces: p.faces,
            })
            .collect())
    }

    /// How many people and faces are enrolled, and the face set's
    /// generation, read together from the store (the metrics read them at
    /// scrape time).
    pub fn census(&self) -> Result<Census, RecognitionError> {
        let store = lock(&self.store);
        let people = store.people().map_err(store_error)?;
        Ok(Census {
            people: people.len() as u64,
            faces: people.iter().map(|p| p.faces).sum(),
            generation: store.generation().map_err(store_error)?,
        })
    }

    /// Removes a person: their faces, and their influence on every model
    /// (LBPH is retrained at once; Eigen/Fisher models that know them are
    /// no longer used). Returns the number of faces removed.
    pub fn remove(&self, name: &str) -> Result<u64, RecognitionError> {
        let mut lbph = self.lbph.write().unwrap_or_else(|p| p.into_inner());
        let (removed, generation, model) = {
            let mut store = lock(&self.store);
            let removed = store
                .remove_person(name)
                .map_err(store_error)?
                .ok_or_else(|| RecognitionError::UnknownPerson(name.to_string()))?;
            let generation = store.generation().map_err(store_error)?;
            let names = load_names(&store)?;
            *self.names.write().unwrap_or_else(|p| p.into_inner()) = names;
            let index = load_index(&store)?;
            *self.resnet.write().unwrap_or_else(|p| p.into_inner()) =
                ResnetState { index, generation };
            (removed, generation, train_from(&store, Algorithm::Lbph)?)
        };
        lbph.model = model;
        lbph.generation = generation;
        drop(lbph);
        {
            let mut state = lock(&self.subspace);
            state.usable_from = generation;
            state.mark_changed();
        }
        self.changed.notify_all();
        info!(name, removed, generation, "removed");
        Ok(removed)
    }

    fn prepare(&self, gray: &Image) -> Result<Image, RecognitionError> {
        let whole = FaceRect {
            x: 0,
            y: 0,
            width: gray.width(),
            height: gray.height(),
        };
        prepare_face(gray, whole, self.face_size)
            .map_err(|e| RecognitionError::BadFace(e.to_string()))
    }

    /// Waits until the background trainer has caught up with the store
    /// (tests and benchmarks use it; recognition does not need it).
    #[cfg(test)]
    pub fn wait_trained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.subspace);
        while state.dirty || state.training {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Subspace {
    /// The face set changed: a round is due, paced from now.
    fn mark_changed(&mut self) {
        let now = Instant::now();
        self.dirty = true;
        self.first_change.get_or_insert(now);
        self.last_change = Some(now);
    }

    fn slot(&mut self, algorithm: Algorithm) -> &mut Option<Trained> {
        if algorithm == Algorithm::Fisher {
            &mut self.fisher
        } else {
            &mut self.eigen
        }
    }

    fn error_slot(&mut self, algorithm: Algorithm) -> &mut Option<(u64, String)> {
        if algorithm == Algorithm::Fisher {
            &mut self.fisher_error
        } else {
            &mut self.eigen_error
        }
    }
}

fn nobody_enrolled() -> RecognitionError {
    RecognitionError::NobodyEnrolled
}

fn load_names(store: &Store) -> Result<BTreeMap<Label, String>, RecognitionError> {
    store
        .names()
        .map_err(store_error)?
        .into_iter()
        .map(|(id, name)| Ok((label_of(id)?, name)))
        .collect()
}

/// The `resnet` index of the store: every stored descriptor, in id order.
fn load_index(store: &Store) -> Result<DescriptorIndex, RecognitionError> {
    let mut index = DescriptorIndex::new();
    for d in store.descriptors().map_err(store_error)? {
        index.push(label_of(d.person)?, d.descriptor);
    }
    Ok(index)
}

/// Gives every stored face without a descriptor one, from its stored crop
/// (the prepared greyscale face; the whole crop is its box). These are
/// weaker than descriptors from the photo (grey, 100x100), but they let a
/// store from before the upgrade answer `resnet` at once; enrolling the
/// photos again replaces nothing and adds nothing (same photo hash).
fn compute_missing_descriptors(
    store: &mut Store,
    models: &FaceModels,
) -> Result<(), RecognitionError> {
    let missing = store.faces_without_descriptor().map_err(store_error)?;
    if missing.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let (images, _) = training_set(&missing)?;
    for (face, image) in missing.iter().zip(&images) {
        let e = embedding::embed_crop(models, image)
            .map_err(|e| RecognitionError::Internal(e.message))?;
        store.set_embedding(face.id, &e).map_err(store_error)?;
    }
    info!(
        faces = missing.len(),
        ms = started.elapsed().as_millis() as u64,
        "resnet descriptors computed for faces stored without one"
    );
    Ok(())
}

/// The snapshot of `algorithm` if it was trained on `generation`.
fn load_snapshot(
    store: &Store,
    algorithm: Algorithm,
    generation: u64,
) -> Option<Box<dyn Recognizer>> {
    let snapshot = match store.load_snapshot(algorithm.name()) {
        Ok(Some(s)) if s.generation == generation => s,
        Ok(Some(s)) => {
            info!(%algorithm, snapshot = s.generation, generation, "snapshot is stale; retraining");
            return None;
        }
        Ok(None) => return None,
        Err(e) => {
            warn!(%algorithm, error = %e, "cannot read the snapshot; retraining");
            return None;
        }
    };
    match model_from_bytes(&snapshot.bytes) {
        Ok(model) if model.algorithm() == algorithm => {
            info!(%algorithm, generation, faces = model.num_samples(), "model loaded from its snapshot");
            Some(model)
        }
        Ok(_) => None,
        Err(e) => {
            warn!(%algorithm, error = %e, "unreadable snapshot; retraining");
            None
        }
    }
}

/// Decodes the stored faces: the training set, in id order.
fn training_set(faces: &[StoredFace]) -> Result<(Vec<Image>, Vec<Label>), RecognitionError> {
    let limits = DecodeLimits::default();
    let mut images = Vec::with_capacity(faces.len());
    let mut labels = Vec::with_capacity(faces.len());
    for face in faces {
        let (image, _) = decode(&face.png, &limits).map_err(|e| {
            RecognitionError::Store(format!("stored face {} is unreadable: {e}", face.id))
        })?;
        let gray = if image.layout() == ocellus_imaging::PixelLayout::Gray {
            image
        } else {
            ocellus_imaging::filter::grayscale::to_gray(&image)
        };
        images.push(gray);
        labels.push(label_of(face.person)?);
    }
    Ok((images, labels))
}

/// A model of `algorithm` trained on every face of the store (untrained if
/// the store is empty).
fn train_from(
    store: &Store,
    algorithm: Algorithm,
) -> Result<Box<dyn Recognizer>, RecognitionError> {
    let faces = store.faces().map_err(store_error)?;
    let (images, labels) = training_set(&faces)?;
    let mut model =
        new_recognizer(algorithm).map_err(|e| RecognitionError::Internal(e.to_string()))?;
    if !images.is_empty() {
        model
            .train(&images, &labels)
            .map_err(|e| RecognitionError::ModelUnavailable(format!("{algorithm}: {e}")))?;
    }
    Ok(model)
}

/// The background trainer: retrains Eigenfaces and Fisherfaces after
/// changes, paced as [`Pacing`] says (one round per burst), and saves
/// snapshots. It runs as the only thread of its pool.
fn trainer(service: std::sync::Weak<RecognitionService>) {
    let mut cache = TrainingCache::default();
    let mut last: Option<LastRound> = None;
    loop {
        let Some(s) = service.upgrade() else { return };
        {
            let mut state = lock(&s.subspace);
            loop {
                if state.stopping || Arc::strong_count(&s) == 1 {
                    return; // stopping, or the service is gone
                }
                // Wake up at least every second to see whether the
                // service is still there.
                let wait = if state.dirty {
                    match s.pacing.delay(&state, last, Instant::now()) {
                        None => break,
                        Some(d) => d.min(Duration::from_secs(1)),
                    }
                } else {
                    Duration::from_secs(1)
                };
                state = s
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let started = Instant::now();
        s.train_round(&mut cache);
        last = Some(LastRound {
            ended: Instant::now(),
            took: started.elapsed(),
        });
    }
}

impl RecognitionService {
    /// Training rounds the background trainer has run.
    #[cfg(test)]
    pub fn training_rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The threads the last training round could use.
    #[cfg(test)]
    fn training_threads(&self) -> usize {
        self.training_threads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads what changed in the store since `cache` was filled: the new
    /// faces, or every face when some cached face is gone (a removal).
    /// Returns the generation read and whether everything was read.
    fn read_training_set(
        &self,
        cache: &TrainingCache,
    ) -> Result<(u64, bool, Vec<StoredFace>), RecognitionError> {
        let store = lock(&self.store);
        // Clear the flag while holding the store: a change after this
        // point sets it again and causes another round.
        {
            let mut state = lock(&self.subspace);
            state.dirty = false;
            state.training = true;
            state.first_change = None;
            state.last_change = None;
        }
        let generation = store.generation().map_err(store_error)?;
        let total = store.face_total().map_err(store_error)?;
        let after = cache.ids.last().copied().unwrap_or(FaceId::MIN);
        let new = store.faces_after(after).map_err(store_error)?;
        // Faces are only ever appended (with larger ids) or removed: if
        // the cached ones plus the new ones make the total, none is gone.
        if (cache.ids.len() + new.len()) as u64 == total {
            return Ok((generation, false, new));
        }
        Ok((generation, true, store.faces().map_err(store_error)?))
    }

    /// One training round on the store as it is now.
    fn train_round(&self, cache: &mut TrainingCache) {
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let threads = rayon::current_num_threads();
        self.training_threads
            .store(threads, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let (generation, all, faces) = match self.read_training_set(cache) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "trainer cannot read the store");
                std::thread::sleep(Duration::from_secs(1));
                let mut state = lock(&self.subspace);
                state.dirty = true;
                state.training = false;
                return;
            }
        };
        let set = training_set(&faces).map(|(images, labels)| {
            if all {
                cache.clear();
            }
            cache.ids.extend(faces.iter().map(|f| f.id));
            cache.images.extend(images);
            cache.labels.extend(labels);
        });
        if set.is_err() {
            // Read everything again next time.
            cache.clear();
        }
        let mut trained: Vec<(Algorithm, Arc<dyn Recognizer>)> = Vec::new();
        for algorithm in [Algorithm::Eigen, Algorithm::Fisher] {
            let outcome = set.as_ref().map_err(|e| e.to_string()).and_then(|()| {
                if cache.images.is_empty() {
                    return Err("nobody is enrolled".to_string());
                }
                let mut model = new_recognizer(algorithm).map_err(|e| e.to_string())?;
                model
                    .train(&cache.images, &cache.labels)
                    .map_err(|e| e.to_string())?;
                Ok(Arc::<dyn Recognizer>::from(model))
            });
            let mut state = lock(&self.subspace);
            match outcome {
                Ok(model) => {
                    trained.push((algorithm, model.clone()));
                    *state.slot(algorithm) = Some(Trained { model, generation });
                    *state.error_slot(algorithm) = None;
                }
                Err(message) => {
                    *state.error_slot(algorithm) =
                        Some((generation, format!("{algorithm} is unavailable: {message}")));
                }
            }
        }
        lock(&self.subspace).training = false;
        self.changed.notify_all();
        let saved = self.save_snapshots(generation, trained);
        info!(
            generation,
            faces = cache.ids.len(),
            threads,
            saved,
            ms = started.elapsed().as_millis() as u64,
            "models retrained"
        );
    }

    /// Saves the snapshots of the models that still describe the store
    /// (the subspace models of `generation`, and LBPH); returns how many.
    fn save_snapshots(
        &self,
        generation: u64,
        trained: Vec<(Algorithm, Arc<dyn Recognizer>)>,
    ) -> usize {
        let current = match lock(&self.store).generation() {
            Ok(g) => g,
            Err(e) => {
                warn!(error = %e, "cannot read the store generation; snapshots not saved");
                return 0;
            }
        };
        let mut snapshots = Vec::new();
        if generation == current {
            for (algorithm, model) in trained {
                if let Ok(bytes) = model.to_bytes() {
                    snapshots.push((algorithm, generation, bytes));
                }
            }
        }
        {
            // Serialising LBPH holds its read lock (enrollment waits), so
            // only when the store has not moved on from it.
            let lbph = self.lbph.read().unwrap_or_else(|p| p.into_inner());
            if lbph.generation == current
                && lbph.model.is_trained()
                && let Ok(bytes) = lbph.model.to_bytes()
            {
                snapshots.push((Algorithm::Lbph, lbph.generation, bytes));
            }
        }
        let mut saved = 0;
        let mut store = lock(&self.store);
        for (algorithm, g, bytes) in snapshots {
            match store.save_snapshot(algorithm.name(), g, &bytes) {
                Ok(()) => saved += 1,
                Err(e) => warn!(%algorithm, error = %e, "cannot save the snapshot"),
            }
        }
        saved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::PixelLayout;

    /// A deterministic noise "face" of one person (`seed`), varied by `k`.
    fn face(seed: u32, k: u32) -> FaceCrop {
        let (w, h) = (60u32, 70u32);
        let pixels: Vec<u8> = ocellus_testdata::noise_bytes(u64::from(seed), (w * h) as usize)
            .into_iter()
            .map(|v| v.wrapping_add((k * 3) as u8))
            .collect();
        let gray = Image::from_vec(w, h, PixelLayout::Gray, pixels).expect("valid image");
        let mut source_hash = [0u8; 32];
        source_hash[..4].copy_from_slice(&seed.to_le_bytes());
        source_hash[4..8].copy_from_slice(&k.to_le_bytes());
        FaceCrop {
            gray,
            source_hash,
            embedding: None,
        }
    }

    fn service() -> Arc<RecognitionService> {
        let store = Store::open_in_memory().expect("store");
        RecognitionService::with_store(store, RecognitionSettings::default()).expect("service")
    }

    /// A descriptor near `person`'s own point, varied by `k`.
    fn descriptor(person: u32, k: u32) -> Descriptor {
        let mut d = [0f32; 128];
        d[person as usize] = 1.0;
        d[100] = k as f32 * 0.01;
        d
    }

    fn with_descriptor(person: u32, k: u32) -> FaceCrop {
        FaceCrop {
            embedding: Some(Embedding {
                chip_png: encode(
                    &Image::filled(150, 150, PixelLayout::Rgb, person as u8),
                    ImageFormat::Png,
                    &EncodeOptions::default(),
                )
                .expect("png"),
                descriptor: descriptor(person, k),
            }),
            ..face(person, k)
        }
    }

    #[test]
    fn census_counts_people_and_faces_and_follows_the_generation() {
        let s = service();
        let empty = s.census().expect("census");
        assert_eq!((empty.people, empty.faces), (0, 0));
        s.enroll("a", &[face(1, 0), face(1, 1)]).expect("enroll");
        s.enroll("b", &[face(2, 0)]).expect("enroll");
        let two = s.census().expect("census");
        assert_eq!((two.people, two.faces), (2, 3));
        assert!(two.generation > empty.generation);
        s.remove("a").expect("remove");
        let one = s.census().expect("census");
        assert_eq!((one.people, one.faces), (1, 1));
        assert!(one.generation > two.generation);
    }

    #[test]
    fn resnet_answers_from_the_descriptors_at_once_and_forgets_removed_people() {
        let s = service();
        // Stored without a descriptor, and no model files here.
        s.enroll("old", &[face(9, 0)]).expect("enroll");
        match s.recognize_descriptors(&[descriptor(9, 0)], None) {
            Err(RecognitionError::ModelUnavailable(m)) => {
                assert!(m.contains("scripts/setup"), "{m}")
            }
            other => panic!("expected model_unavailable, got {other:?}"),
        }
        for person in 0..3 {
            s.enroll(
                &format!("p{person}"),
                &[with_descriptor(person, 0), with_descriptor(person, 1)],
            )
            .expect("enroll");
        }
        let ids = s
            .recognize_descriptors(&[descriptor(1, 3), descriptor(5, 0)], None)
            .expect("recognize");
        assert_eq!(ids[0].name.as_deref(), Some("p1"));
        assert!((ids[0].distance - 0.02).abs() < 1e-6, "{}", ids[0].distance);
        assert_eq!(ids[0].algorithm, "resnet");
        assert!(ids[0].runner_up.is_some());
        assert!((ids[0].runner_up_distance.unwrap() - (2.0f64 + 0.0009).sqrt()).abs() < 1e-3);
        assert_eq!(ids[1].name, None, "no one near: not identified");
        // A tolerance per request.
        let strict = s
            .recognize_descriptors(&[descriptor(1, 3)], Some(0.01))
            .expect("ok");
        assert_eq!(strict[0].name, None);
        s.remove("p1").expect("remove");
        let after = s
            .recognize_descriptors(&[descriptor(1, 3)], None)
            .expect("ok");
        assert_ne!(after[0].name.as_deref(), Some("p1"));
        assert_ne!(after[0].runner_up.as_deref(), Some("p1"));
    }

    #[test]
    fn bursts_of_enrollments_are_coalesced_and_the_latest_model_answers() {
        let s = service();
        assert!(s.wait_trained(Duration::from_secs(60)));
        let before = s.training_rounds();
        for k in 0..12 {
            let person = k % 3;
            s.enroll(&format!("p{person}"), &[face(person, k)])
                .expect("enroll");
        }
        assert!(s.wait_trained(Duration::from_secs(60)));
        let rounds = s.training_rounds() - before;
        assert!(
            (1..12).contains(&rounds),
            "{rounds} rounds for 12 enrollments"
        );
        for algorithm in [Algorithm::Eigen, Algorithm::Fisher, Algorithm::Lbph] {
            let ids = s
                .recognize(&[face(1, 4).gray], Some(algorithm))
                .expect("recognize");
            assert_eq!(ids[0].model_version, 12, "{algorithm}");
            let mut exact = s
                .recognize(&[face(1, 4).gray], Some(algorithm))
                .expect("again");
            assert_eq!(exact.remove(0).name.as_deref(), Some("p1"), "{algorithm}");
        }
    }

    #[test]
    fn a_burst_of_changes_is_one_round_on_one_thread() {
        // An hour of quiet ends a burst: no round can start during it,
        // however slow the machine.
        let hour = Duration::from_secs(3600);
        let pacing = Pacing {
            quiet: hour,
            max_delay: hour,
            gap_factor: 0.0,
        };
        let store = Store::open_in_memory().expect("store");
        let s = RecognitionService::with_pacing(store, RecognitionSettings::default(), pacing)
            .expect("service");
        // The round at opening (no snapshot yet) is not paced.
        assert!(s.wait_trained(Duration::from_secs(60)));
        let before = s.training_rounds();
        for k in 0..40 {
            s.enroll(&format!("p{}", k % 4), &[face(k % 4, k)])
                .expect("enroll");
        }
        assert_eq!(s.training_rounds(), before, "a round during the burst");
        // LBPH follows every change at once.
        let lbph = s
            .recognize(&[face(1, 5).gray], Some(Algorithm::Lbph))
            .expect("lbph");
        assert_eq!(lbph[0].model_version, 40);
        // A recognition that needs the new model starts the round: one
        // round for the 40 changes, on one thread.
        for algorithm in [Algorithm::Eigen, Algorithm::Fisher, Algorithm::Eigen] {
            let ids = s
                .recognize(&[face(1, 5).gray], Some(algorithm))
                .expect("recognize");
            assert_eq!(ids[0].model_version, 40, "{algorithm}");
            assert_eq!(ids[0].name.as_deref(), Some("p1"), "{algorithm}");
        }
        assert_eq!(s.training_rounds(), before + 1);
        assert_eq!(s.training_threads(), 1);
        // A removal: the cached training set is read again in full.
        s.remove("p1").expect("remove");
        let ids = s
            .recognize(&[face(1, 5).gray], Some(Algorithm::Eigen))
            .expect("eigen");
        assert_ne!(ids[0].name.as_deref(), Some("p1"));
        assert_eq!(ids[0].model_version, 41);
        assert_eq!(s.training_rounds(), before + 2);
    }

    #[test]
    fn pacing_waits_for_quiet_and_for_a_gap_after_each_round() {
        let ms = Duration::from_millis;
        let pacing = Pacing {
            quiet: ms(500),
            max_delay: ms(10_000),
            gap_factor: 1.0,
        };
        let t0 = Instant::now();
        let mut state = Subspace {
            dirty: true,
            ..Subspace::default()
        };
        // Stale at opening: no change to wait for.
        assert_eq!(pacing.delay(&state, None, t0), None);
        state.first_change = Some(t0);
        state.last_change = Some(t0 + ms(300));
        assert_eq!(pacing.delay(&state, None, t0 + ms(400)), Some(ms(400)));
        assert_eq!(pacing.delay(&state, None, t0 + ms(800)), None);
        // A stream that never pauses: at most max_delay after its start.
        state.last_change = Some(t0 + ms(9_900));
        assert_eq!(pacing.delay(&state, None, t0 + ms(9_950)), Some(ms(50)));
        // After a round of 3 s that ended at 9 s: not before 12 s.
        let last = LastRound {
            ended: t0 + ms(9_000),
            took: ms(3_000),
        };
        assert_eq!(
            pacing.delay(&state, Some(last), t0 + ms(10_000)),
            Some(ms(2_000))
        );
        // Someone waits for a model: at once.
        state.waiting = 1;
        assert_eq!(pacing.delay(&state, Some(last), t0 + ms(10_000)), None);
    }

    #[test]
    fn removal_takes_the_person_out_of_every_model() {
        let s = service();
        for k in 0..4 {
            s.enroll("alice", &[face(1, k)]).expect("enroll");
            s.enroll("bob", &[face(2, k)]).expect("enroll");
        }
        let probe = face(1, 0).gray;
        let eigen = s
            .recognize(std::slice::from_ref(&probe), Some(Algorithm::Eigen))
            .expect("eigen");
        assert_eq!(eigen[0].name.as_deref(), Some("alice"));
        assert_eq!(s.remove("alice").expect("remove"), 4);
        for algorithm in [Algorithm::Eigen, Algorithm::Lbph] {
            let ids = s
                .recognize(std::slice::from_ref(&probe), Some(algorithm))
                .expect("recognize");
            assert_ne!(ids[0].name.as_deref(), Some("alice"), "{algorithm}");
            assert_eq!(ids[0].model_version, 9, "{algorithm}");
        }
        let fisher = s.recognize(&[probe], Some(Algorithm::Fisher));
        assert_eq!(
            fisher.map_err(|e| e.code()),
            Err(ErrorCode::ModelUnavailable)
        );
        assert_eq!(
            s.remove("alice").map_err(|e| e.code()),
            Err(ErrorCode::UnknownPerson)
        );
    }

    #[test]
    fn nothing_enrolled_is_an_error_not_a_guess() {
        let s = service();
        for algorithm in [Algorithm::Eigen, Algorithm::Fisher, Algorithm::Lbph] {
            let e = s.recognize(&[face(1, 0).gray], Some(algorithm));
            assert_eq!(e.map_err(|e| e.code()), Err(ErrorCode::NoPeopleEnrolled));
        }
        assert_eq!(
            s.enroll("", &[face(1, 0)]).map_err(|e| e.code()),
            Err(ErrorCode::BadName)
        );
    }
}
