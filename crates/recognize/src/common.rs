//! What every recognizer holds besides its trained model, and what is
//! decided from that alone, written once for LBPH and the two subspace
//! recognizers:
//!
//! - [`Common`]: the rejection threshold and the label names;
//! - [`prediction`]: OpenCV's nearest-neighbour answer with our rejection
//!   rule;
//! - [`recognizer_accessors!`]: the [`Recognizer`](crate::Recognizer)
//!   methods that only read or set the threshold, the names, or the
//!   trained model's size and labels.
//!
//! Invariant: a face is named only when its nearest distance is strictly
//! below the threshold; an equal (or NaN) distance is unknown, and
//! `f64::INFINITY` names every face whose distance is finite.

use std::collections::BTreeMap;

use crate::{Label, Prediction};

/// Threshold and label names, common to every recognizer.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    /// Rejection threshold.
    pub threshold: f64,
    /// Optional label names.
    pub names: BTreeMap<Label, String>,
}

impl Common {
    /// The given threshold and no label names.
    pub fn new(threshold: f64) -> Self {
        Common {
            threshold,
            names: BTreeMap::new(),
        }
    }
}

/// The answer for the training sample `nearest_index` (of `labels`, in
/// training order) at `distance`: named only if `distance` is strictly
/// below `threshold`. An index outside `labels` (no training sample) gives
/// the label -1.
#[inline]
pub(crate) fn prediction(
    labels: &[Label],
    nearest_index: usize,
    distance: f64,
    threshold: f64,
) -> Prediction {
    let nearest_label = labels.get(nearest_index).copied().unwrap_or(-1);
    Prediction {
        label: (distance < threshold).then_some(nearest_label),
        nearest_label,
        nearest_index,
        distance,
    }
}

/// The [`Recognizer`](crate::Recognizer) methods that only read or set
/// `self.common` ([`Common`]) or read `self.model`, an `Option` of a model
/// with the fields `width`, `height` and `labels`; expands to items inside
/// an `impl Recognizer for ...` block.
macro_rules! recognizer_accessors {
    () => {
        fn threshold(&self) -> f64 {
            self.common.threshold
        }

        fn set_threshold(&mut self, threshold: f64) {
            self.common.threshold = threshold;
        }

        fn is_trained(&self) -> bool {
            self.model.is_some()
        }

        fn num_samples(&self) -> usize {
            self.model.as_ref().map_or(0, |m| m.labels.len())
        }

        fn face_size(&self) -> Option<(u32, u32)> {
            self.model.as_ref().map(|m| (m.width, m.height))
        }

        fn label_names(&self) -> &std::collections::BTreeMap<crate::Label, String> {
            &self.common.names
        }

        fn set_label_names(&mut self, names: std::collections::BTreeMap<crate::Label, String>) {
            self.common.names = names;
        }
    };
}
pub(crate) use recognizer_accessors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_distance_strictly_below_the_threshold_is_named() {
        let labels = [4, 7];
        let p = prediction(&labels, 1, 2.0, 2.5);
        assert_eq!((p.label, p.nearest_label, p.nearest_index), (Some(7), 7, 1));
        assert_eq!(prediction(&labels, 1, 2.5, 2.5).label, None);
        assert_eq!(prediction(&labels, 0, f64::NAN, f64::INFINITY).label, None);
        assert_eq!(prediction(&labels, 0, 1e300, f64::INFINITY).label, Some(4));
        let none = prediction(&[], 0, f64::INFINITY, f64::INFINITY);
        assert_eq!((none.label, none.nearest_label), (None, -1));
    }
}
