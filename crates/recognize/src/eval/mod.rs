//! Measuring a recognizer on labelled faces, as `ocellus eval` does: one
//! train/test split or k-fold cross-validation ([`Protocol`]), accuracy,
//! per-person results, and with impostor faces the false-accept /
//! false-reject analysis that calibrates a rejection threshold ([`roc`]).
//!
//! Pure computation: faces come in decoded, results go out as values, and
//! the caller reads the files and prints. The wall time of training and of
//! each prediction is measured ([`Timings`]), because the command reports
//! it.
//!
//! The rules (invariants of every [`Evaluation`]):
//!
//! - training order is the order of the faces given, and a person's label
//!   is its position among the training persons in that order (the first
//!   person is label 0); the model's label names are the person names;
//! - k-fold: the i-th face of each person (from 0, in the order given) is
//!   tested in fold i mod K + 1, every other face trains; a fold without
//!   test faces is skipped;
//! - a test face is correct when it is named as its own person, or rejected
//!   when its person is not in the training set.

mod natural_order;
pub mod roc;

use std::collections::BTreeMap;
use std::time::Instant;

use ocellus_imaging::Image;
use thiserror::Error;

use crate::{Label, Prediction, RecognizeError, Recognizer};
pub use natural_order::natural_cmp;
use roc::{GenuineScore, ImpostorAnalysis};

/// One face of a known person.
#[derive(Clone, Debug)]
pub struct LabelledFace {
    /// The person's name.
    pub person: String,
    /// The face, greyscale, of the size the recognizer expects.
    pub image: Image,
}

/// Which faces train and which are tested.
#[derive(Clone, Copy, Debug)]
pub enum Protocol<'a> {
    /// Train on `train`, test every face of `test`.
    Split {
        /// Training faces, in training order.
        train: &'a [LabelledFace],
        /// Test faces.
        test: &'a [LabelledFace],
    },
    /// K-fold cross-validation over `data` (see the module docs).
    Folds {
        /// Every face, in training order.
        data: &'a [LabelledFace],
        /// Number of folds, at least 1.
        k: u32,
    },
    /// Each face in turn is tested against a model of all the others
    /// (one "fold" per face, numbered from 1 in data order).
    LeaveOneOut {
        /// Every face, in training order.
        data: &'a [LabelledFace],
    },
}

/// Why an evaluation failed.
#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    /// Training failed (too few faces, mixed sizes, ...).
    #[error("training")]
    Train(#[source] RecognizeError),
    /// Predicting the face of this index (in the test faces, the data of
    /// the folds, or the impostors) failed.
    #[error("predicting face {index}")]
    Predict {
        /// Index of the face in the slice it was given in.
        index: usize,
        /// What went wrong.
        #[source]
        source: RecognizeError,
    },
    /// Zero folds were asked for.
    #[error("k-fold cross-validation needs at least one fold")]
    NoFolds,
    /// An impostor analysis was asked of an evaluation that trained nothing.
    #[error("no model was trained")]
    NoModel,
}

/// The answer for one test face.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Index of the face in the test faces (split) or in the data (folds).
    pub index: usize,
    /// The face's person.
    pub truth: String,
    /// The person it was named as, `None` when rejected as unknown.
    pub predicted: Option<String>,
    /// The person of the nearest training sample, accepted or not.
    pub nearest: String,
    /// Distance to the nearest training sample.
    pub distance: f64,
    /// The fold that tested it (k-fold only), from 1.
    pub fold: Option<u32>,
}

impl Outcome {
    /// Correct: named as the right person, or rejected when that person is
    /// not in the training set (`known` false).
    pub fn correct(&self, known: bool) -> bool {
        match &self.predicted {
            Some(p) => *p == self.truth,
            None => !known,
        }
    }
}

/// Wall time spent in `train` and `predict` (impostor predictions are not
/// counted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Seconds spent training, over every training run.
    pub train_s: f64,
    /// Seconds spent predicting test faces.
    pub predict_s: f64,
    /// Number of test predictions.
    pub predictions: usize,
}

impl Timings {
    /// Mean milliseconds per prediction (0 without predictions).
    pub fn predict_ms(&self) -> f64 {
        1e3 * self.predict_s / self.predictions.max(1) as f64
    }
}

/// A trained model with its person names (label i is `names[i]`).
pub struct TrainedModel {
    /// The model.
    pub recognizer: Box<dyn Recognizer>,
    /// The person of each label.
    pub names: Vec<String>,
}

/// Accuracy over every test face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of test faces.
    pub tests: usize,
    /// Number of correct answers (see [`Outcome::correct`]).
    pub correct: usize,
    /// `correct / tests` (0 without tests).
    pub accuracy: f64,
    /// Number of faces rejected as unknown.
    pub unknown: usize,
}

/// The results of one person's test faces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonResult {
    /// The person.
    pub person: String,
    /// Number of test faces.
    pub tests: usize,
    /// Number answered correctly.
    pub correct: usize,
    /// Number rejected as unknown.
    pub unknown: usize,
}

/// Mean and spread of the per-fold accuracies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoldStats {
    /// Mean accuracy (0 without folds).
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

/// The results of [`evaluate`].
pub struct Evaluation {
    /// Every test face's answer, fold after fold.
    pub outcomes: Vec<Outcome>,
    /// Training faces, summed over the training runs.
    pub train_count: usize,
    /// Every person that was in a training set, in order of first
    /// appearance.
    pub known_people: Vec<String>,
    /// Accuracy of each fold that ran, in fold order (empty for a split).
    pub fold_accuracy: Vec<f64>,
    /// Training and prediction wall times.
    pub timings: Timings,
    /// The model of the split, or of the last fold.
    pub model: Option<TrainedModel>,
}

/// Runs `protocol`, with a recognizer from `make` (untrained, with its
/// threshold set) for each training run.
pub fn evaluate(
    protocol: Protocol<'_>,
    mut make: impl FnMut() -> Box<dyn Recognizer>,
) -> Result<Evaluation, EvalError> {
    let mut ev = Evaluation {
        outcomes: Vec::new(),
        train_count: 0,
        known_people: Vec::new(),
        fold_accuracy: Vec::new(),
        timings: Timings::default(),
        model: None,
    };
    match protocol {
        Protocol::Split { train, test } => {
            let train_refs: Vec<&LabelledFace> = train.iter().collect();
            let test_refs: Vec<(usize, &LabelledFace)> = test.iter().enumerate().collect();
            let run = train_and_predict(make(), &train_refs, &test_refs, None, &mut ev.timings)?;
            ev.train_count = train.len();
            ev.outcomes = run.outcomes;
            ev.known_people = run.model.names.clone();
            ev.model = Some(run.model);
        }
        Protocol::Folds { data, k } => {
            run_folds(&mut ev, data, k, &positions_within_person(data), &mut make)?
        }
        Protocol::LeaveOneOut { data } => {
            let k = u32::try_from(data.len()).map_err(|_| EvalError::NoFolds)?;
            let position: Vec<u32> = (0..k).collect();
            run_folds(&mut ev, data, k, &position, &mut make)?
        }
    }
    Ok(ev)
}

/// Folds 1..=k: face i is tested in fold `position[i] % k + 1`, trained on
/// in the others.
fn run_folds(
    ev: &mut Evaluation,
    data: &[LabelledFace],
    k: u32,
    position: &[u32],
    make: &mut impl FnMut() -> Box<dyn Recognizer>,
) -> Result<(), EvalError> {
    if k == 0 {
        return Err(EvalError::NoFolds);
    }
    for fold in 1..=k {
        let in_test = |i: usize| position[i] % k + 1 == fold;
        let train: Vec<&LabelledFace> = (0..data.len())
            .filter(|&i| !in_test(i))
            .map(|i| &data[i])
            .collect();
        let test: Vec<(usize, &LabelledFace)> = (0..data.len())
            .filter(|&i| in_test(i))
            .map(|i| (i, &data[i]))
            .collect();
        if test.is_empty() {
            continue;
        }
        let run = train_and_predict(make(), &train, &test, Some(fold), &mut ev.timings)?;
        let names = &run.model.names;
        let correct = run
            .outcomes
            .iter()
            .filter(|o| o.correct(names.contains(&o.truth)))
            .count();
        ev.fold_accuracy
            .push(correct as f64 / run.outcomes.len() as f64);
        ev.train_count += train.len();
        for n in names {
            if !ev.known_people.contains(n) {
                ev.known_people.push(n.clone());
            }
        }
        ev.outcomes.extend(run.outcomes);
        ev.model = Some(run.model);
    }
    Ok(())
}

/// Index of each face within its person, in the order given.
fn positions_within_person(data: &[LabelledFace]) -> Vec<u32> {
    let mut counter: BTreeMap<&str, u32> = BTreeMap::new();
    data.iter()
        .map(|f| {
            let c = counter.entry(f.person.as_str()).or_insert(0);
            let position = *c;
            *c += 1;
            position
        })
        .collect()
}

/// The outcomes and the model of one training run.
struct Run {
    outcomes: Vec<Outcome>,
    model: TrainedModel,
}

/// Trains `rec` on `train` and predicts `test` (each with its index).
fn train_and_predict(
    mut rec: Box<dyn Recognizer>,
    train: &[&LabelledFace],
    test: &[(usize, &LabelledFace)],
    fold: Option<u32>,
    timings: &mut Timings,
) -> Result<Run, EvalError> {
    let mut names: Vec<String> = train.iter().map(|f| f.person.clone()).collect();
    names.dedup();
    let label_of: BTreeMap<&str, Label> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as Label))
        .collect();
    let images: Vec<Image> = train.iter().map(|f| f.image.clone()).collect();
    let labels: Vec<Label> = train
        .iter()
        .map(|f| label_of.get(f.person.as_str()).copied().unwrap_or(-1))
        .collect();
    let start = Instant::now();
    rec.train(&images, &labels).map_err(EvalError::Train)?;
    timings.train_s += start.elapsed().as_secs_f64();
    rec.set_label_names(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as Label, n.clone()))
            .collect(),
    );
    let mut outcomes = Vec::with_capacity(test.len());
    for &(index, face) in test {
        let start = Instant::now();
        let p = predict(rec.as_ref(), index, &face.image)?;
        timings.predict_s += start.elapsed().as_secs_f64();
        timings.predictions += 1;
        let name = |l: Label| person_of(&names, l);
        outcomes.push(Outcome {
            index,
            truth: face.person.clone(),
            predicted: p.label.map(name),
            nearest: name(p.nearest_label),
            distance: p.distance,
            fold,
        });
    }
    Ok(Run {
        outcomes,
        model: TrainedModel {
            recognizer: rec,
            names,
        },
    })
}

fn predict(rec: &dyn Recognizer, index: usize, face: &Image) -> Result<Prediction, EvalError> {
    rec.predict(face)
        .map_err(|source| EvalError::Predict { index, source })
}

/// The person of label `l`, or the label as text when it has no name.
fn person_of(names: &[String], l: Label) -> String {
    usize::try_from(l)
        .ok()
        .and_then(|i| names.get(i))
        .cloned()
        .unwrap_or_else(|| l.to_string())
}

impl Evaluation {
    /// Whether the outcome's person was in a training set.
    pub fn is_known(&self, o: &Outcome) -> bool {
        self.known_people.contains(&o.truth)
    }

    /// Accuracy over every test face.
    pub fn summary(&self) -> Summary {
        let correct = self
            .outcomes
            .iter()
            .filter(|o| o.correct(self.is_known(o)))
            .count();
        Summary {
            tests: self.outcomes.len(),
            correct,
            accuracy: correct as f64 / self.outcomes.len().max(1) as f64,
            unknown: self
                .outcomes
                .iter()
                .filter(|o| o.predicted.is_none())
                .count(),
        }
    }

    /// The results per person, persons in natural order ([`natural_cmp`]).
    pub fn per_person(&self) -> Vec<PersonResult> {
        let mut per_person: BTreeMap<&str, PersonResult> = BTreeMap::new();
        for o in &self.outcomes {
            let e = per_person
                .entry(o.truth.as_str())
                .or_insert_with(|| PersonResult {
                    person: o.truth.clone(),
                    tests: 0,
                    correct: 0,
                    unknown: 0,
                });
            e.tests += 1;
            e.correct += usize::from(o.correct(self.is_known(o)));
            e.unknown += usize::from(o.predicted.is_none());
        }
        let mut persons: Vec<PersonResult> = per_person.into_values().collect();
        persons.sort_by(|a, b| natural_cmp(&a.person, &b.person));
        persons
    }

    /// Mean and standard deviation of [`Evaluation::fold_accuracy`].
    pub fn fold_stats(&self) -> FoldStats {
        let folds = self.fold_accuracy.len().max(1) as f64;
        let mean = self.fold_accuracy.iter().sum::<f64>() / folds;
        let var = self
            .fold_accuracy
            .iter()
            .map(|a| (a - mean).powi(2))
            .sum::<f64>()
            / folds;
        FoldStats {
            mean,
            std: var.sqrt(),
        }
    }

    /// The rejection threshold of the model (`f64::INFINITY` without one).
    pub fn threshold(&self) -> f64 {
        self.model
            .as_ref()
            .map_or(f64::INFINITY, |m| m.recognizer.threshold())
    }

    /// The distance of every test face whose person is known, and whether
    /// its nearest sample is of that person.
    pub fn genuine_scores(&self) -> Vec<GenuineScore> {
        self.outcomes
            .iter()
            .filter(|o| self.is_known(o))
            .map(|o| GenuineScore {
                distance: o.distance,
                nearest_is_right: o.nearest == o.truth,
            })
            .collect()
    }

    /// Predicts the `impostors` (faces of people absent from training) with
    /// [`Evaluation::model`] and analyses their distances against the
    /// genuine ones ([`roc::analyse`]) for `target_far`.
    pub fn impostor_analysis(
        &self,
        impostors: &[LabelledFace],
        target_far: f64,
    ) -> Result<ImpostorAnalysis, EvalError> {
        let model = self.model.as_ref().ok_or(EvalError::NoModel)?;
        let impostor = impostors
            .iter()
            .enumerate()
            .map(|(index, f)| Ok(predict(model.recognizer.as_ref(), index, &f.image)?.distance))
            .collect::<Result<Vec<f64>, EvalError>>()?;
        Ok(roc::analyse(&self.genuine_scores(), &impostor, target_far))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EigenFaces, Lbph, LbphParams};
    use ocellus_imaging::PixelLayout;
    use ocellus_testdata::noise_bytes;

    /// `per_person` noise faces of each person, 24 x 24, from seeds
    /// `first_seed`, `first_seed + 1`, ...
    fn people(names: &[&str], per_person: u64, first_seed: u64) -> Vec<LabelledFace> {
        let mut seed = first_seed;
        let mut faces = Vec::new();
        for name in names {
            for _ in 0..per_person {
                let image =
                    Image::from_vec(24, 24, PixelLayout::Gray, noise_bytes(seed, 24 * 24)).unwrap();
                seed += 1;
                faces.push(LabelledFace {
                    person: name.to_string(),
                    image,
                });
            }
        }
        faces
    }

    fn split(
        train: &[LabelledFace],
        test: &[LabelledFace],
        make: impl FnMut() -> Box<dyn Recognizer>,
    ) -> Result<Evaluation, EvalError> {
        evaluate(Protocol::Split { train, test }, make)
    }

    fn lbph(threshold: f64) -> impl FnMut() -> Box<dyn Recognizer> {
        move || {
            let mut r: Box<dyn Recognizer> = Box::new(Lbph::new(LbphParams::default()));
            r.set_threshold(threshold);
            r
        }
    }

    #[test]
    fn a_split_labels_persons_in_training_order() {
        let train = people(&["b", "a"], 2, 1);
        // The test faces are training faces: distance 0, named right.
        let test = vec![train[3].clone(), train[0].clone()];
        let ev = split(&train, &test, lbph(f64::INFINITY)).unwrap();
        let model = ev.model.as_ref().unwrap();
        assert_eq!(model.names, vec!["b", "a"]);
        assert_eq!(model.recognizer.label_names()[&1], "a");
        assert_eq!(ev.train_count, 4);
        assert_eq!(ev.known_people, vec!["b", "a"]);
        let answers: Vec<_> = ev
            .outcomes
            .iter()
            .map(|o| (o.index, o.predicted.as_deref(), o.distance, o.fold))
            .collect();
        assert_eq!(
            answers,
            vec![(0, Some("a"), 0.0, None), (1, Some("b"), 0.0, None)]
        );
        let s = ev.summary();
        assert_eq!((s.tests, s.correct, s.accuracy, s.unknown), (2, 2, 1.0, 0));
        assert_eq!(ev.timings.predictions, 2);
        assert!(ev.fold_accuracy.is_empty());
    }

    #[test]
    fn folds_test_the_ith_face_of_each_person_in_fold_i_mod_k_plus_1() {
        let data = people(&["p1", "p2", "p3"], 5, 1);
        let ev = evaluate(Protocol::Folds { data: &data, k: 3 }, lbph(0.0)).unwrap();
        // Positions 0..5 go to folds 1, 2, 3, 1, 2.
        let folds: Vec<(usize, Option<u32>)> =
            ev.outcomes.iter().map(|o| (o.index, o.fold)).collect();
        let mut want = Vec::new();
        for fold in 1..=3u32 {
            for i in 0..15usize {
                if (i % 5) as u32 % 3 + 1 == fold {
                    want.push((i, Some(fold)));
                }
            }
        }
        assert_eq!(folds, want);
        assert_eq!(ev.train_count, 3 * 15 - 15);
        // Threshold 0: every face is rejected, and every person is known.
        assert_eq!(ev.fold_accuracy, vec![0.0; 3]);
        let s = ev.summary();
        assert_eq!((s.correct, s.unknown), (0, 15));
        assert_eq!(ev.threshold(), 0.0);
        let persons = ev.per_person();
        assert_eq!(persons.len(), 3);
        assert_eq!(
            persons[2],
            PersonResult {
                person: "p3".into(),
                tests: 5,
                correct: 0,
                unknown: 5
            }
        );
    }

    #[test]
    fn empty_folds_are_skipped_and_zero_folds_is_an_error() {
        let data = people(&["x", "y"], 2, 1);
        let ev = evaluate(Protocol::Folds { data: &data, k: 4 }, lbph(f64::INFINITY)).unwrap();
        assert_eq!(ev.fold_accuracy.len(), 2);
        assert!(ev.outcomes.iter().all(|o| o.fold <= Some(2)));
        assert!(matches!(
            evaluate(Protocol::Folds { data: &data, k: 0 }, lbph(1.0)),
            Err(EvalError::NoFolds)
        ));
    }

    #[test]
    fn rejecting_an_unknown_person_is_correct() {
        let train = people(&["known"], 2, 1);
        let mut test = people(&["stranger"], 1, 100);
        test.push(train[0].clone());
        let ev = split(&train, &test, lbph(1e-9)).unwrap();
        assert!(!ev.is_known(&ev.outcomes[0]));
        assert_eq!(ev.outcomes[0].predicted, None);
        assert_eq!(ev.outcomes[0].nearest, "known");
        assert!(ev.outcomes[0].correct(false));
        assert_eq!(ev.summary().correct, 2);
        assert_eq!(ev.genuine_scores().len(), 1);
    }

    #[test]
    fn fold_stats_are_the_mean_and_population_deviation() {
        let mut ev = evaluate(
            Protocol::Split {
                train: &people(&["a"], 1, 1),
                test: &[],
            },
            lbph(1.0),
        )
        .unwrap();
        assert_eq!(
            ev.fold_stats(),
            FoldStats {
                mean: 0.0,
                std: 0.0
            }
        );
        ev.fold_accuracy = vec![0.5, 1.0];
        assert_eq!(
            ev.fold_stats(),
            FoldStats {
                mean: 0.75,
                std: 0.25
            }
        );
        assert_eq!(ev.summary().accuracy, 0.0);
    }

    #[test]
    fn impostors_are_predicted_with_the_last_model() {
        let train = people(&["a", "b"], 2, 1);
        let impostors = people(&["z"], 3, 100);
        let ev = split(&train, &train, lbph(f64::INFINITY)).unwrap();
        let a = ev.impostor_analysis(&impostors, 0.34).unwrap();
        // Genuine distances are 0; one of three impostors may be accepted.
        assert_eq!(a.suggested.frr, 0.0);
        assert!(a.suggested.far <= 0.34);
        assert_eq!(a.curve[0].threshold, 0.0);
        assert_eq!(a.curve[0].frr, 1.0);
    }

    #[test]
    fn errors_name_the_face() {
        let train = people(&["a", "b"], 2, 1);
        let small = vec![LabelledFace {
            person: "a".into(),
            image: Image::filled(5, 5, PixelLayout::Gray, 1),
        }];
        let eigen = || Box::new(EigenFaces::new(0)) as Box<dyn Recognizer>;
        let mixed: Vec<LabelledFace> = train.iter().chain(&small).cloned().collect();
        assert_eq!(
            split(&mixed, &[], eigen).err(),
            Some(EvalError::Train(RecognizeError::SizeMismatch {
                index: 4,
                got_w: 5,
                got_h: 5,
                want_w: 24,
                want_h: 24
            }))
        );
        let test = vec![train[0].clone(), small[0].clone()];
        let err = split(&train, &test, eigen).err();
        assert!(matches!(err, Some(EvalError::Predict { index: 1, .. })));
        let ev = split(&train, &[], eigen).unwrap();
        assert!(matches!(
            ev.impostor_analysis(&small, 0.1),
            Err(EvalError::Predict { index: 0, .. })
        ));
    }
}
