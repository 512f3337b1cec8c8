//! The `resnet` recognizer: the nearest enrolled face by Euclidean
//! distance between dlib's 128-d descriptors (`ocellus-embed`), "not
//! identified" above a tolerance, as `face_recognition.compare_faces`.
//!
//! Two forms over one rule:
//! - [`DescriptorIndex`]: the search over descriptors that the recognition
//!   role holds. Adding or removing a face is adding or removing a row:
//!   no training, effective at once;
//! - [`Resnet`]: a [`Recognizer`] whose faces are aligned chips (150x150
//!   RGB, [`ocellus_embed::extract_chip`]), computing their descriptors
//!   with the shared [`FaceModels`]; `ocellus eval` runs it like the other
//!   recognizers.
//!
//! Invariants: the nearest face wins, the earliest among equal distances
//! (as every recognizer here); a face is named iff its distance is at most
//! the tolerance (dlib's rule is `<=`, unlike OpenCV's strict threshold);
//! the runner-up is the nearest face of another person.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use ocellus_embed::{CHIP_SIZE, Chip, Descriptor, FaceModels, distance};
use ocellus_imaging::{Image, PixelLayout};

use crate::{Algorithm, Label, Prediction, RecognizeError, Recognizer};

/// The chip's side, as image dimensions.
const SIDE: u32 = CHIP_SIZE as u32;

/// The tolerance dlib's authors chose (`face_recognition`'s default):
/// two descriptors at most this far apart are the same person.
pub const DEFAULT_TOLERANCE: f64 = ocellus_embed::SAME_PERSON_DISTANCE;

/// The largest tolerance a request may ask for. Descriptors have L2 norms
/// of about 1.3-1.6, so no two are farther apart than about 3: a larger
/// tolerance would name every face.
pub const MAX_TOLERANCE: f64 = 3.0;

/// Length of a descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// The answer of [`DescriptorIndex::nearest`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Match {
    /// The recognised person, or `None` above the tolerance.
    pub label: Option<Label>,
    /// The person of the nearest face, named or not.
    pub nearest_label: Label,
    /// Index (in insertion order) of the nearest face.
    pub nearest_index: usize,
    /// Its distance.
    pub distance: f64,
    /// The nearest face of another person, and its distance.
    pub runner_up: Option<(Label, f64)>,
}

/// Enrolled descriptors with their labels, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct DescriptorIndex {
    labels: Vec<Label>,
    descriptors: Vec<Descriptor>,
}

impl DescriptorIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one face.
    pub fn push(&mut self, label: Label, descriptor: Descriptor) {
        self.labels.push(label);
        self.descriptors.push(descriptor);
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no face is enrolled.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The nearest face to `query`, named if its distance is at most
    /// `tolerance`; `None` when the index is empty.
    pub fn nearest(&self, query: &Descriptor, tolerance: f64) -> Option<Match> {
        let distances: Vec<f64> = self
            .descriptors
            .iter()
            .map(|d| distance(query, d))
            .collect();
        let (nearest_index, &best) = distances
            .iter()
            .enumerate()
            .reduce(|best, this| if this.1 < best.1 { this } else { best })?;
        let nearest_label = self.labels[nearest_index];
        let runner_up = distances
            .iter()
            .zip(&self.labels)
            .filter(|&(_, &l)| l != nearest_label)
            .map(|(&d, &l)| (l, d))
            .reduce(|best, this| if this.1 < best.1 { this } else { best });
        Some(Match {
            label: (best <= tolerance).then_some(nearest_label),
            nearest_label,
            nearest_index,
            distance: best,
            runner_up,
        })
    }
}

/// Descriptors of chips already seen, by a hash of their bytes: an
/// evaluation trains on the same faces in every fold.
type Cache = Arc<Mutex<HashMap<u64, Descriptor>>>;

/// The `resnet` recognizer over aligned chips (see the module docs).
pub struct Resnet {
    models: Arc<FaceModels>,
    index: DescriptorIndex,
    tolerance: f64,
    names: BTreeMap<Label, String>,
    trained: bool,
    cache: Cache,
}

impl Resnet {
    /// An untrained recognizer with the default tolerance.
    pub fn new(models: Arc<FaceModels>) -> Self {
        Resnet {
            models,
            index: DescriptorIndex::new(),
            tolerance: DEFAULT_TOLERANCE,
            names: BTreeMap::new(),
            trained: false,
            cache: Cache::default(),
        }
    }

    /// A new untrained recognizer sharing this one's models and its cache of
    /// computed descriptors (evaluations make one per fold).
    pub fn sibling(&self) -> Self {
        Resnet {
            cache: self.cache.clone(),
            tolerance: self.tolerance,
            ..Resnet::new(self.models.clone())
        }
    }

    /// The descriptor of one chip image (150x150 RGB).
    pub fn descriptor_of(&self, face: &Image, index: usize) -> Result<Descriptor, RecognizeError> {
        let key = chip_key(face);
        if let Some(d) = self.cache_get(key) {
            return Ok(d);
        }
        let chip = to_chip(face, index)?;
        let d = self.models.descriptor(&chip);
        self.cache_put(key, d);
        Ok(d)
    }

    fn cache_get(&self, key: u64) -> Option<Descriptor> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
    }

    fn cache_put(&self, key: u64, d: Descriptor) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, d);
    }

    /// Descriptors of many chips (the new ones computed on rayon's threads).
    fn descriptors_of(&self, faces: &[Image]) -> Result<Vec<Descriptor>, RecognizeError> {
        let keys: Vec<u64> = faces.iter().map(chip_key).collect();
        let mut found: Vec<Option<Descriptor>> = keys.iter().map(|&k| self.cache_get(k)).collect();
        let missing: Vec<usize> = (0..faces.len()).filter(|&i| found[i].is_none()).collect();
        let chips = missing
            .iter()
            .map(|&i| to_chip(&faces[i], i))
            .collect::<Result<Vec<_>, _>>()?;
        for (&i, d) in missing.iter().zip(self.models.descriptors(&chips)) {
            self.cache_put(keys[i], d);
            found[i] = Some(d);
        }
        // Every entry is filled: from the cache or just computed.
        Ok(found.into_iter().flatten().collect())
    }

    fn add(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        if faces.len() != labels.len() {
            return Err(RecognizeError::LabelCount {
                images: faces.len(),
                labels: labels.len(),
            });
        }
        for (&label, d) in labels.iter().zip(self.descriptors_of(faces)?) {
            self.index.push(label, d);
        }
        self.trained = true;
        Ok(())
    }
}

fn chip_key(face: &Image) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    face.as_bytes().hash(&mut h);
    h.finish()
}

fn to_chip(face: &Image, index: usize) -> Result<Chip, RecognizeError> {
    if face.layout() != PixelLayout::Rgb {
        return Err(RecognizeError::NotChip { index });
    }
    if (face.width(), face.height()) != (SIDE, SIDE) {
        return Err(RecognizeError::SizeMismatch {
            index,
            got_w: face.width(),
            got_h: face.height(),
            want_w: SIDE,
            want_h: SIDE,
        });
    }
    Chip::from_rgb(face.as_bytes().to_vec()).ok_or(RecognizeError::NotChip { index })
}

impl Recognizer for Resnet {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Resnet
    }

    fn train(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        if faces.is_empty() {
            return Err(RecognizeError::NoTrainingData);
        }
        self.index = DescriptorIndex::new();
        self.add(faces, labels)
    }

    fn update(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        self.add(faces, labels)
    }

    fn predict(&self, face: &Image) -> Result<Prediction, RecognizeError> {
        let d = self.descriptor_of(face, 0)?;
        let m = self
            .index
            .nearest(&d, self.tolerance)
            .ok_or(RecognizeError::NotTrained)?;
        Ok(Prediction {
            label: m.label,
            nearest_label: m.nearest_label,
            nearest_index: m.nearest_index,
            distance: m.distance,
        })
    }

    fn threshold(&self) -> f64 {
        self.tolerance
    }

    fn set_threshold(&mut self, threshold: f64) {
        self.tolerance = threshold;
    }

    fn is_trained(&self) -> bool {
        self.trained
    }

    fn num_samples(&self) -> usize {
        self.index.len()
    }

    fn face_size(&self) -> Option<(u32, u32)> {
        self.trained.then_some((SIDE, SIDE))
    }

    fn label_names(&self) -> &BTreeMap<Label, String> {
        &self.names
    }

    fn set_label_names(&mut self, names: BTreeMap<Label, String>) {
        self.names = names;
    }

    fn to_bytes(&self) -> Result<Vec<u8>, RecognizeError> {
        // Its "model" is the enrolled descriptors, which the store keeps.
        Err(RecognizeError::NoModelFile(Algorithm::Resnet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f32, y: f32) -> Descriptor {
        let mut d = [0.0; 128];
        d[0] = x;
        d[1] = y;
        d
    }

    #[test]
    fn the_nearest_face_names_its_person_with_the_runner_up() {
        let mut index = DescriptorIndex::new();
        index.push(1, d(0.0, 0.0));
        index.push(2, d(1.0, 0.0));
        index.push(1, d(0.0, 0.1));
        let m = index.nearest(&d(0.0, 0.2), 0.6).unwrap();
        assert_eq!(m.label, Some(1));
        assert_eq!(m.nearest_index, 2);
        assert!((m.distance - 0.1).abs() < 1e-6);
        let (l, dist) = m.runner_up.unwrap();
        assert_eq!(l, 2);
        assert!((dist - (1.0f64 + 0.04).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn a_face_at_exactly_the_tolerance_is_named_and_beyond_it_is_not() {
        let mut index = DescriptorIndex::new();
        index.push(7, d(0.0, 0.0));
        assert_eq!(index.nearest(&d(0.5, 0.0), 0.5).unwrap().label, Some(7));
        let far = index.nearest(&d(0.5, 0.0), 0.4999).unwrap();
        assert_eq!(far.label, None);
        assert_eq!(far.nearest_label, 7);
        assert_eq!(far.runner_up, None, "nobody else is enrolled");
    }

    #[test]
    fn equal_distances_go_to_the_earliest_face() {
        let mut index = DescriptorIndex::new();
        index.push(3, d(1.0, 0.0));
        index.push(4, d(-1.0, 0.0));
        let m = index.nearest(&d(0.0, 0.0), 2.0).unwrap();
        assert_eq!((m.label, m.nearest_index), (Some(3), 0));
    }
}
