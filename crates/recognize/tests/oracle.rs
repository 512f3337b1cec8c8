//! Runs the recognition protocols of `shared/data/oracle` (ORL protocol A,
//! ORL 10-fold, Yale leave-one-condition-out, Yale de-duplicated) through our
//! recognizers and compares every prediction with what OpenCV 4 answered,
//! loaded from the oracle JSON files.
//!
//! Tolerances (see `shared/data/oracle/README.md`, "How closely a
//! re-implementation can match"):
//! - LBPH: labels, nearest sample and distances bit-identical;
//! - Eigen with K <= rank (eigen_80, eigen_nm1): same labels and nearest
//!   sample, distances within 1e-9 relative;
//! - Eigen default (K = N, one noise component): same label on >= 99 %;
//! - Fisher (ORL, Yale de-duplicated): same label on >= 99 %, distances within
//!   1e-3 relative;
//! - and in every case our accuracy equals OpenCV's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ocellus_codec::{DecodeLimits, decode};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::{EigenFaces, FisherFaces, Label, Lbph, LbphParams, Prediction, Recognizer};
use serde_json::Value;

/// How closely an algorithm must reproduce OpenCV.
#[derive(Clone, Copy, Debug)]
enum Tolerance {
    /// Same label, nearest index and distance bits.
    BitExact,
    /// Same label and nearest index, distance within this relative error.
    Relative(f64),
    /// Same label on at least this fraction of tests; distances not compared.
    LabelsOnly(f64),
    /// Same label on at least this fraction; every distance within rel.
    LabelsAndDistance(f64, f64),
    /// Fisherfaces on ORL 10-fold: same label everywhere; same nearest
    /// sample and distances within `rel`, except in at most `runs` training
    /// runs (where two discriminant eigenvalues leave the Schur reduction in
    /// another order than in OpenCV, which rescales their columns): there
    /// distances within `loose`, and the nearest sample may be another image
    /// of the same person when two are that close.
    FisherRuns { rel: f64, runs: usize, loose: f64 },
    /// Labels on at least this fraction, and our accuracy at least OpenCV's
    /// (used where OpenCV's model contains rounding-noise components).
    LabelsAtLeastAsAccurate(f64),
}

/// One test image with OpenCV's answer.
struct Case {
    file: String,
    face: Image,
    truth: Label,
    label: Label,
    distance: f64,
    nearest: usize,
}

/// One training run and the tests evaluated on it.
struct Run {
    train: Vec<Image>,
    labels: Vec<Label>,
    cases: Vec<Case>,
}

struct Loader {
    shared: PathBuf,
    cache: HashMap<String, Image>,
}

impl Loader {
    fn new(data: &Path) -> Self {
        Loader {
            shared: data.join(".."),
            cache: HashMap::new(),
        }
    }

    /// Loads a greyscale image by its path relative to `shared/`.
    fn image(&mut self, rel: &str) -> Image {
        if let Some(img) = self.cache.get(rel) {
            return img.clone();
        }
        let path = self.shared.join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (img, _) = decode(&bytes, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let gray = to_gray(&img);
        self.cache.insert(rel.to_string(), gray.clone());
        gray
    }
}

fn load_json(data: &Path, name: &str) -> Value {
    let path = data.join("oracle").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("oracle JSON")
}

fn case(loader: &mut Loader, test: &Value, key: &str, file_override: Option<String>) -> Case {
    let file = test["file"].as_str().expect("file").to_string();
    let p = &test["predictions"][key];
    let image_path = file_override.unwrap_or_else(|| file.clone());
    Case {
        face: loader.image(&image_path),
        file,
        truth: test["true_label"].as_i64().expect("true_label") as Label,
        label: p["label"].as_i64().expect("label") as Label,
        distance: p["distance"].as_f64().expect("distance"),
        nearest: p["nearest_train_index"].as_u64().expect("nearest") as usize,
    }
}

/// The cases of the oracle `tests` that `keep` selects, in order; each
/// test image is read from `image_of(test)`, or from the test's own file
/// when that is `None`.
fn cases(
    loader: &mut Loader,
    tests: &[Value],
    key: &str,
    keep: impl Fn(&Value) -> bool,
    image_of: impl Fn(&Value) -> Option<String>,
) -> Vec<Case> {
    tests
        .iter()
        .filter(|t| keep(t))
        .map(|t| case(loader, t, key, image_of(t)))
        .collect()
}

/// ORL protocol A: images 1-5 train, 6-10 test.
fn orl_split5(data: &Path, key: &str) -> Vec<Run> {
    let json = load_json(data, "orl_split5.json");
    let mut loader = Loader::new(data);
    let mut train = Vec::new();
    let mut labels = Vec::new();
    for t in json["train"].as_array().expect("train") {
        train.push(loader.image(t["file"].as_str().expect("file")));
        labels.push(t["label"].as_i64().expect("label") as Label);
    }
    let tests = json["tests"].as_array().expect("tests");
    let cases = cases(&mut loader, tests, key, |_| true, |_| None);
    vec![Run {
        train,
        labels,
        cases,
    }]
}

/// ORL protocol B: fold k tests image k of every subject, trains on the
/// other nine (subjects ascending, then image number ascending).
fn orl_10fold(data: &Path, key: &str) -> Vec<Run> {
    let json = load_json(data, "orl_10fold.json");
    let mut loader = Loader::new(data);
    let tests = json["tests"].as_array().expect("tests");
    (1..=10u64)
        .map(|fold| {
            let mut train = Vec::new();
            let mut labels = Vec::new();
            for subject in 1..=40 {
                for image in (1..=10).filter(|&i| i != fold) {
                    train.push(loader.image(&format!("data/faces/orl/s{subject}/{image}.pgm")));
                    labels.push(subject);
                }
            }
            let in_fold = |t: &Value| t["fold"].as_u64() == Some(fold);
            let cases = cases(&mut loader, tests, key, in_fold, |_| None);
            Run {
                train,
                labels,
                cases,
            }
        })
        .collect()
}

/// Yale leave-one-condition-out on the stored 100x76 resized images, full
/// set or de-duplicated.
fn yale(data: &Path, key: &str, dedup: bool) -> Vec<Run> {
    let json = load_json(data, "yale_loo.json");
    let root = if dedup { &json["dedup"] } else { &json };
    let mut loader = Loader::new(data);
    let resized = |name: &str| format!("data/oracle/yale_100x76/{name}.pgm");
    let subject = |name: &str| -> Label {
        name.trim_start_matches("subject")
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("subjectNN.condition")
    };
    let tests = root["tests"].as_array().expect("tests");
    root["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            let condition = c["condition"].as_str().expect("condition");
            let mut train = Vec::new();
            let mut labels = Vec::new();
            for f in c["train_files"].as_array().expect("train_files") {
                let name = f.as_str().expect("train file");
                train.push(loader.image(&resized(name)));
                labels.push(subject(name));
            }
            let in_condition = |t: &Value| t["condition"].as_str() == Some(condition);
            let stored = |t: &Value| {
                let file = t["file"].as_str().expect("file");
                Some(resized(file.rsplit('/').next().expect("name")))
            };
            let cases = cases(&mut loader, tests, key, in_condition, stored);
            Run {
                train,
                labels,
                cases,
            }
        })
        .collect()
}

/// Trains one recognizer per run and checks every prediction.
fn check(
    name: &str,
    runs: Vec<Run>,
    make: impl Fn(usize) -> Box<dyn Recognizer>,
    tolerance: Tolerance,
) {
    let mut total = 0usize;
    let mut same_label = 0usize;
    let mut ours_correct = 0usize;
    let mut opencv_correct = 0usize;
    let mut worst_rel: f64 = 0.0;
    let mut failures = Vec::new();
    let mut runs_over_rel = 0usize;
    for run in &runs {
        let mut run_worst: f64 = 0.0;
        let mut run_nearest_differs = Vec::new();
        let mut rec = make(run.train.len());
        rec.set_threshold(f64::INFINITY);
        rec.train(&run.train, &run.labels).expect("train");
        for c in &run.cases {
            let p: Prediction = rec.predict(&c.face).expect("predict");
            let ours = p.label.expect("no threshold: every face gets a label");
            total += 1;
            same_label += usize::from(ours == c.label);
            ours_correct += usize::from(ours == c.truth);
            opencv_correct += usize::from(c.label == c.truth);
            let rel = (p.distance - c.distance).abs() / c.distance.abs().max(f64::MIN_POSITIVE);
            worst_rel = worst_rel.max(rel);
            run_worst = run_worst.max(rel);
            let ok = match tolerance {
                Tolerance::BitExact => {
                    ours == c.label
                        && p.nearest_index == c.nearest
                        && p.distance.to_bits() == c.distance.to_bits()
                }
                Tolerance::Relative(tol) => {
                    ours == c.label && p.nearest_index == c.nearest && rel <= tol
                }
                Tolerance::LabelsOnly(_) | Tolerance::LabelsAtLeastAsAccurate(_) => true,
                Tolerance::LabelsAndDistance(_, tol) => rel <= tol,
                Tolerance::FisherRuns { loose, .. } => {
                    if p.nearest_index != c.nearest {
                        run_nearest_differs.push(c.file.clone());
                    }
                    ours == c.label && rel <= loose
                }
            };
            if !ok {
                failures.push(format!(
                    "{}: ours label {ours} idx {} d {:.17} / OpenCV label {} idx {} d {:.17}",
                    c.file, p.nearest_index, p.distance, c.label, c.nearest, c.distance
                ));
            }
        }
        if let Tolerance::FisherRuns { rel, .. } = tolerance {
            if run_worst > rel {
                runs_over_rel += 1;
                eprintln!(
                    "{name}: a training run with worst relative distance difference {run_worst:.3e}, nearest sample differs for {run_nearest_differs:?}"
                );
            } else {
                assert!(
                    run_nearest_differs.is_empty(),
                    "{name}: nearest sample differs for {run_nearest_differs:?}"
                );
            }
        }
    }
    if let Tolerance::FisherRuns {
        runs: allowed, rel, ..
    } = tolerance
    {
        assert!(
            runs_over_rel <= allowed,
            "{name}: {runs_over_rel} training runs exceed {rel:e} relative (at most {allowed} allowed)"
        );
    }
    let agreement = same_label as f64 / total as f64;
    eprintln!(
        "{name}: {total} tests, same label {same_label} ({agreement:.4}), accuracy ours {ours_correct} / OpenCV {opencv_correct}, worst relative distance difference {worst_rel:.3e}"
    );
    assert!(total > 0, "{name}: no test cases loaded");
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if let Tolerance::LabelsOnly(frac)
    | Tolerance::LabelsAndDistance(frac, _)
    | Tolerance::LabelsAtLeastAsAccurate(frac) = tolerance
    {
        assert!(
            agreement >= frac,
            "{name}: labels agree on {agreement:.4} < {frac}"
        );
    }
    if let Tolerance::LabelsAtLeastAsAccurate(_) = tolerance {
        assert!(
            ours_correct >= opencv_correct,
            "{name}: accuracy {ours_correct} below OpenCV's {opencv_correct}"
        );
        return;
    }
    assert_eq!(
        ours_correct, opencv_correct,
        "{name}: accuracy differs from OpenCV's"
    );
}

fn eigen(k: usize) -> impl Fn(usize) -> Box<dyn Recognizer> {
    move |_| Box::new(EigenFaces::new(k)) as Box<dyn Recognizer>
}

fn eigen_nm1() -> impl Fn(usize) -> Box<dyn Recognizer> {
    |n| Box::new(EigenFaces::new(n - 1)) as Box<dyn Recognizer>
}

fn fisher() -> impl Fn(usize) -> Box<dyn Recognizer> {
    |_| Box::new(FisherFaces::new(0)) as Box<dyn Recognizer>
}

fn lbph() -> impl Fn(usize) -> Box<dyn Recognizer> {
    |_| Box::new(Lbph::new(LbphParams::default())) as Box<dyn Recognizer>
}

const EIGEN_REL: f64 = 1e-9;
const FISHER: Tolerance = Tolerance::LabelsAndDistance(0.99, 1e-3);
const EIGEN_DEFAULT: Tolerance = Tolerance::LabelsOnly(0.99);

macro_rules! oracle_test {
    ($name:ident, $protocol:expr, $key:literal, $make:expr, $tol:expr) => {
        #[test]
        fn $name() {
            let data = ocellus_testdata::require_data!();
            let runs = $protocol(&data, $key);
            check(stringify!($name), runs, $make, $tol);
        }
    };
}

oracle_test!(
    orl_a_lbph,
    orl_split5,
    "lbph_default",
    lbph(),
    Tolerance::BitExact
);
oracle_test!(
    orl_a_eigen_80,
    orl_split5,
    "eigen_80",
    eigen(80),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    orl_a_eigen_nm1,
    orl_split5,
    "eigen_nm1",
    eigen_nm1(),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    orl_a_eigen_default,
    orl_split5,
    "eigen_default",
    eigen(0),
    EIGEN_DEFAULT
);
oracle_test!(orl_a_fisher, orl_split5, "fisher_default", fisher(), FISHER);
oracle_test!(orl_a_fisher_0, orl_split5, "fisher_0", fisher(), FISHER);

oracle_test!(
    orl_b_lbph,
    orl_10fold,
    "lbph_default",
    lbph(),
    Tolerance::BitExact
);
oracle_test!(
    orl_b_eigen_80,
    orl_10fold,
    "eigen_80",
    eigen(80),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    orl_b_eigen_nm1,
    orl_10fold,
    "eigen_nm1",
    eigen_nm1(),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    orl_b_eigen_default,
    orl_10fold,
    "eigen_default",
    eigen(0),
    EIGEN_DEFAULT
);
// README of the oracle: in 3 of the 10 folds an independent port got two
// discriminant eigenvalues out of the Schur reduction in another order than
// OpenCV (directions equal, lengths differ); here it happens in 2 folds
// (worst 3.9e-3 relative), with the same nearest sample in all 400 tests.
oracle_test!(
    orl_b_fisher,
    orl_10fold,
    "fisher_default",
    fisher(),
    Tolerance::FisherRuns {
        rel: 1e-3,
        runs: 3,
        loose: 1e-2
    }
);

fn yale_full(data: &Path, key: &str) -> Vec<Run> {
    yale(data, key, false)
}

fn yale_dedup(data: &Path, key: &str) -> Vec<Run> {
    yale(data, key, true)
}

oracle_test!(
    yale_lbph,
    yale_full,
    "lbph_default",
    lbph(),
    Tolerance::BitExact
);
oracle_test!(
    yale_eigen_80,
    yale_full,
    "eigen_80",
    eigen(80),
    Tolerance::Relative(EIGEN_REL)
);
// The full Yale set has nine pairs of identical images, so the centred data
// has rank N - 10 and OpenCV's default model keeps ten rounding-noise
// components (not one as elsewhere): labels can only agree loosely. Ours is
// at least as accurate (138 vs 137 of 164).
oracle_test!(
    yale_eigen_default,
    yale_full,
    "eigen_default",
    eigen(0),
    Tolerance::LabelsAtLeastAsAccurate(0.95)
);
oracle_test!(
    yale_dedup_lbph,
    yale_dedup,
    "lbph_default",
    lbph(),
    Tolerance::BitExact
);
oracle_test!(
    yale_dedup_eigen_80,
    yale_dedup,
    "eigen_80",
    eigen(80),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    yale_dedup_eigen_nm1,
    yale_dedup,
    "eigen_nm1",
    eigen_nm1(),
    Tolerance::Relative(EIGEN_REL)
);
oracle_test!(
    yale_dedup_eigen_default,
    yale_dedup,
    "eigen_default",
    eigen(0),
    EIGEN_DEFAULT
);
oracle_test!(
    yale_dedup_fisher,
    yale_dedup,
    "fisher_default",
    fisher(),
    FISHER
);
