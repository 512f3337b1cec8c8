//! `ocellus eval`: measure a face recognizer on labelled face folders.
//!
//! A data folder holds one sub-folder per person (the folder name is the
//! person's name) of already-cropped face images in any format
//! `ocellus-codec` decodes (found by content, so files without an extension
//! work); colour images are converted to grey (BT.601). Training order, which
//! decides ties exactly as in OpenCV: persons sorted by folder name, then
//! files sorted by name, both in natural order (digit runs compare as
//! numbers, so `s2` < `s10` and `2.pgm` < `10.pgm`). Labels are the persons'
//! positions in that order.
//!
//! Modes: `--train DIR --test DIR` (one split), `--data DIR --folds K`
//! (k-fold: the i-th file of each person, counting from 0, is tested in fold
//! i mod K + 1 and the others train), and `--impostors DIR` with either of
//! them to report false-accept / false-reject rates over a range of
//! thresholds and the threshold that meets `--far`.
//!
//! `--timings` adds `train_s` (training wall time) and `predict_ms` (mean
//! wall time of one `predict`) to the output; `--save-model FILE` writes the
//! trained model (train/test mode) in the binary model format.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::prepare::resize_gray;
use ocellus_recognize::{
    Algorithm, EigenFaces, FisherFaces, Label, Lbph, LbphParams, Prediction, Recognizer,
};
use serde_json::{Value, json};

/// Arguments of `ocellus eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Recognition algorithm: eigen, fisher or lbph.
    #[arg(long, value_parser = parse_algorithm)]
    algorithm: Algorithm,
    /// Eigen/Fisher components (default OpenCV's: all N for eigen, C-1 for fisher).
    #[arg(long)]
    components: Option<usize>,
    /// Rejection threshold: a face is unknown unless its nearest distance is
    /// strictly below it. `inf` disables rejection (OpenCV's default).
    /// Default: the algorithm's calibrated threshold.
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f64>,
    /// Training folder (one sub-folder per person).
    #[arg(long, requires = "test", conflicts_with_all = ["data", "folds"])]
    train: Option<PathBuf>,
    /// Test folder (one sub-folder per person).
    #[arg(long, requires = "train")]
    test: Option<PathBuf>,
    /// Data folder for k-fold cross-validation (with --folds).
    #[arg(long, requires = "folds")]
    data: Option<PathBuf>,
    /// Number of folds for cross-validation (with --data).
    #[arg(long, requires = "data", value_parser = clap::value_parser!(u32).range(2..))]
    folds: Option<u32>,
    /// Faces of people absent from training: report false-accept and
    /// false-reject rates over a range of thresholds.
    #[arg(long)]
    impostors: Option<PathBuf>,
    /// Target false-accept rate for the suggested threshold (with --impostors).
    #[arg(long, default_value_t = 0.01)]
    far: f64,
    /// Resize every face to WxH (area averaging when shrinking, linear when
    /// growing). Without it all images must already have one size.
    #[arg(long, value_parser = parse_size)]
    size: Option<(u32, u32)>,
    /// LBPH radius.
    #[arg(long, default_value_t = 1)]
    radius: u32,
    /// LBPH neighbours.
    #[arg(long, default_value_t = 8)]
    neighbors: u32,
    /// LBPH grid columns.
    #[arg(long, default_value_t = 8)]
    grid_x: u32,
    /// LBPH grid rows.
    #[arg(long, default_value_t = 8)]
    grid_y: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Report training time (train_s) and mean prediction time (predict_ms).
    #[arg(long)]
    timings: bool,
    /// Write the trained model to FILE (train/test mode only).
    #[arg(long, value_name = "FILE", requires = "train")]
    save_model: Option<PathBuf>,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| format!("unknown algorithm {s:?} (eigen, fisher, lbph)"))
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("not a number: {s:?} (use inf to disable rejection)"))?;
    if v.is_nan() {
        return Err("threshold cannot be NaN".into());
    }
    Ok(v)
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WxH, got {s:?}"))?;
    let w: u32 = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    if w == 0 || h == 0 || w > 4096 || h > 4096 {
        return Err(format!("size must be 1..=4096 on each side, got {s:?}"));
    }
    Ok((w, h))
}

/// Compares names in natural order: runs of digits as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then(na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

/// One face image on disk.
struct Face {
    /// Path as found under the folder given on the command line.
    file: String,
    person: String,
    image: Image,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        entries.push((name, entry.path()));
    }
    entries.sort_by(|a, b| natural_cmp(&a.0, &b.0).then_with(|| a.0.cmp(&b.0)));
    Ok(entries)
}

fn load_image(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (image, _) = decode(&bytes, &DecodeLimits::default())
        .with_context(|| format!("decoding {}", path.display()))?;
    Ok(to_gray(&image))
}

/// Loads DIR/<person>/<file> in training order (see the module docs).
fn load_people(dir: &Path) -> Result<Vec<Face>> {
    let mut faces = Vec::new();
    for (person, path) in sorted_entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        for (_, file) in sorted_entries(&path)? {
            if !file.is_file() {
                continue;
            }
            faces.push(Face {
                file: file.to_string_lossy().into_owned(),
                person: person.clone(),
                image: load_image(&file)?,
            });
        }
    }
    ensure!(
        !faces.is_empty(),
        "no face images in {} (expected one sub-folder per person)",
        dir.display()
    );
    Ok(faces)
}

/// Loads every image under DIR (person folders or loose files), for impostors.
fn load_any(dir: &Path) -> Result<Vec<Face>> {
    let mut faces = Vec::new();
    for (name, path) in sorted_entries(dir)? {
        if path.is_dir() {
            for (_, file) in sorted_entries(&path)? {
                if file.is_file() {
                    faces.push(Face {
                        file: file.to_string_lossy().into_owned(),
                        person: name.clone(),
                        image: load_image(&file)?,
                    });
                }
            }
        } else if path.is_file() {
            faces.push(Face {
                file: path.to_string_lossy().into_owned(),
                person: String::new(),
                image: load_image(&path)?,
            });
        }
    }
    ensure!(!faces.is_empty(), "no images in {}", dir.display());
    Ok(faces)
}

/// Resizes to `size` when given, else checks that all faces share one size.
fn normalise_sizes(faces: &mut [&mut Face], size: Option<(u32, u32)>) -> Result<()> {
    if let Some((w, h)) = size {
        for f in faces.iter_mut() {
            f.image = resize_gray(&f.image, w, h);
        }
        return Ok(());
    }
    let Some(first) = faces.first() else {
        return Ok(());
    };
    let (w, h) = (first.image.width(), first.image.height());
    let first_file = first.file.clone();
    for f in faces.iter() {
        if (f.image.width(), f.image.height()) != (w, h) {
            bail!(
                "images differ in size: {first_file} is {w}x{h} but {} is {}x{}; pass --size WxH to resize them all",
                f.file,
                f.image.width(),
                f.image.height()
            );
        }
    }
    Ok(())
}

fn make_recognizer(args: &EvalArgs) -> Result<Box<dyn Recognizer>> {
    let mut rec: Box<dyn Recognizer> = match args.algorithm {
        Algorithm::Eigen => Box::new(EigenFaces::new(args.components.unwrap_or(0))),
        Algorithm::Fisher => Box::new(FisherFaces::new(args.components.unwrap_or(0))),
        Algorithm::Lbph => {
            ensure!(
                args.components.is_none(),
                "--components applies to eigen and fisher only"
            );
            let params = LbphParams {
                radius: args.radius,
                neighbors: args.neighbors,
                grid_x: args.grid_x,
                grid_y: args.grid_y,
            };
            params.validate()?;
            Box::new(Lbph::new(params))
        }
    };
    if let Some(t) = args.threshold {
        rec.set_threshold(t);
    }
    Ok(rec)
}

/// Result of predicting one test face.
struct Outcome {
    file: String,
    truth: String,
    predicted: Option<String>,
    nearest: String,
    distance: f64,
    fold: Option<u32>,
}

impl Outcome {
    /// Correct: named as the right person, or rejected when that person is
    /// not in the training set.
    fn correct(&self, known: bool) -> bool {
        match &self.predicted {
            Some(p) => *p == self.truth,
            None => !known,
        }
    }
}

struct Timing {
    train_s: f64,
    predict_s: f64,
    predictions: usize,
}

/// Outcomes of one training run, its model and the person names (label i
/// is `names[i]`).
type TrainedRun = (Vec<Outcome>, Box<dyn Recognizer>, Vec<String>);

/// Trains on `train` and predicts `test`, returning outcomes and the model.
fn train_and_predict(
    args: &EvalArgs,
    train: &[&Face],
    test: &[&Face],
    fold: Option<u32>,
    timing: &mut Timing,
) -> Result<TrainedRun> {
    let mut names: Vec<String> = train.iter().map(|f| f.person.clone()).collect();
    names.dedup();
    let label_of: BTreeMap<&str, Label> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as Label))
        .collect();
    let images: Vec<Image> = train.iter().map(|f| f.image.clone()).collect();
    let labels: Vec<Label> = train.iter().map(|f| label_of[f.person.as_str()]).collect();
    let mut rec = make_recognizer(args)?;
    let start = Instant::now();
    rec.train(&images, &labels).context("training")?;
    timing.train_s += start.elapsed().as_secs_f64();
    rec.set_label_names(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as Label, n.clone()))
            .collect(),
    );
    let outcomes = predict_all(rec.as_ref(), &names, test, fold, timing)?;
    Ok((outcomes, rec, names))
}

fn predict_all(
    rec: &dyn Recognizer,
    names: &[String],
    faces: &[&Face],
    fold: Option<u32>,
    timing: &mut Timing,
) -> Result<Vec<Outcome>> {
    let name = |l: Label| {
        names
            .get(l as usize)
            .cloned()
            .unwrap_or_else(|| l.to_string())
    };
    let mut out = Vec::with_capacity(faces.len());
    for f in faces {
        let start = Instant::now();
        let p: Prediction = rec
            .predict(&f.image)
            .with_context(|| format!("predicting {}", f.file))?;
        timing.predict_s += start.elapsed().as_secs_f64();
        timing.predictions += 1;
        out.push(Outcome {
            file: f.file.clone(),
            truth: f.person.clone(),
            predicted: p.label.map(name),
            nearest: name(p.nearest_label),
            distance: p.distance,
            fold,
        });
    }
    Ok(out)
}

/// False-accept / false-reject analysis over impostor and genuine distances.
struct RocPoint {
    threshold: f64,
    far: f64,
    frr: f64,
    misidentified: f64,
}

fn roc_point(threshold: f64, genuine: &[(f64, bool)], impostor: &[f64]) -> RocPoint {
    let accepted_impostors = impostor.iter().filter(|&&d| d < threshold).count();
    let rejected = genuine.iter().filter(|(d, _)| *d >= threshold).count();
    let wrong = genuine
        .iter()
        .filter(|(d, right)| *d < threshold && !right)
        .count();
    let g = genuine.len().max(1) as f64;
    RocPoint {
        threshold,
        far: accepted_impostors as f64 / impostor.len().max(1) as f64,
        frr: rejected as f64 / g,
        misidentified: wrong as f64 / g,
    }
}

/// The largest threshold whose false-accept rate is at most `target`.
fn threshold_for_far(impostor: &[f64], target: f64) -> f64 {
    let mut sorted = impostor.to_vec();
    sorted.sort_by(f64::total_cmp);
    let allowed = (target * sorted.len() as f64).floor() as usize;
    sorted.get(allowed).copied().unwrap_or(f64::INFINITY)
}

fn json_number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

/// Runs the command.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
    ensure!(
        args.far > 0.0 && args.far < 1.0,
        "--far must be between 0 and 1"
    );
    let mut timing = Timing {
        train_s: 0.0,
        predict_s: 0.0,
        predictions: 0,
    };
    let mut outcomes = Vec::new();
    let mut train_count = 0usize;
    let mut known_people: Vec<String> = Vec::new();
    let mut fold_accuracy = Vec::new();
    let mut last_model: Option<(Box<dyn Recognizer>, Vec<String>)> = None;
    let mut impostor_faces = match &args.impostors {
        Some(dir) => load_any(dir)?,
        None => Vec::new(),
    };

    if let (Some(train_dir), Some(test_dir)) = (&args.train, &args.test) {
        let mut train = load_people(train_dir)?;
        let mut test = load_people(test_dir)?;
        {
            let mut all: Vec<&mut Face> = train
                .iter_mut()
                .chain(test.iter_mut())
                .chain(impostor_faces.iter_mut())
                .collect();
            normalise_sizes(&mut all, args.size)?;
        }
        let train_refs: Vec<&Face> = train.iter().collect();
        let test_refs: Vec<&Face> = test.iter().collect();
        let (out, rec, names) =
            train_and_predict(&args, &train_refs, &test_refs, None, &mut timing)?;
        train_count = train.len();
        outcomes = out;
        known_people = names.clone();
        last_model = Some((rec, names));
    } else if let (Some(data_dir), Some(k)) = (&args.data, args.folds) {
        let mut data = load_people(data_dir)?;
        {
            let mut all: Vec<&mut Face> =
                data.iter_mut().chain(impostor_faces.iter_mut()).collect();
            normalise_sizes(&mut all, args.size)?;
        }
        // Index of each file within its person, in training order.
        let mut position = Vec::with_capacity(data.len());
        let mut counter: BTreeMap<&str, u32> = BTreeMap::new();
        for f in &data {
            let c = counter.entry(f.person.as_str()).or_insert(0);
            position.push(*c);
            *c += 1;
        }
        for fold in 1..=k {
            let in_test = |i: usize| position[i] % k + 1 == fold;
            let train: Vec<&Face> = (0..data.len())
                .filter(|&i| !in_test(i))
                .map(|i| &data[i])
                .collect();
            let test: Vec<&Face> = (0..data.len())
                .filter(|&i| in_test(i))
                .map(|i| &data[i])
                .collect();
            if test.is_empty() {
                continue;
            }
            let (out, rec, names) =
                train_and_predict(&args, &train, &test, Some(fold), &mut timing)?;
            let correct = out
                .iter()
                .filter(|o| o.correct(names.contains(&o.truth)))
                .count();
            fold_accuracy.push(correct as f64 / out.len() as f64);
            train_count += train.len();
            for n in &names {
                if !known_people.contains(n) {
                    known_people.push(n.clone());
                }
            }
            outcomes.extend(out);
            last_model = Some((rec, names));
        }
    } else {
        bail!("give either --train DIR --test DIR, or --data DIR --folds K");
    }

    if let (Some(path), Some((rec, _))) = (&args.save_model, &last_model) {
        let bytes = rec.to_bytes()?;
        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }

    let known = |o: &Outcome| known_people.contains(&o.truth);
    let correct = outcomes.iter().filter(|o| o.correct(known(o))).count();
    let accuracy = correct as f64 / outcomes.len().max(1) as f64;
    let unknown = outcomes.iter().filter(|o| o.predicted.is_none()).count();

    // Per person: tests, correct, rejected.
    let mut per_person: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let e = per_person.entry(o.truth.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(o.correct(known(o)));
        e.2 += usize::from(o.predicted.is_none());
    }
    let mut persons: Vec<_> = per_person.into_iter().collect();
    persons.sort_by(|a, b| natural_cmp(&a.0, &b.0));

    // Impostor analysis: the last model (train/test) or every fold's model.
    let mut roc = Vec::new();
    let mut suggested = None;
    if !impostor_faces.is_empty() {
        let Some((rec, names)) = &last_model else {
            bail!("no model was trained");
        };
        let refs: Vec<&Face> = impostor_faces.iter().collect();
        let mut scratch = Timing {
            train_s: 0.0,
            predict_s: 0.0,
            predictions: 0,
        };
        let imp = predict_all(rec.as_ref(), names, &refs, None, &mut scratch)?;
        let impostor: Vec<f64> = imp.iter().map(|o| o.distance).collect();
        let genuine: Vec<(f64, bool)> = outcomes
            .iter()
            .filter(|o| known(o))
            .map(|o| (o.distance, o.nearest == o.truth))
            .collect();
        let all: Vec<f64> = impostor
            .iter()
            .copied()
            .chain(genuine.iter().map(|g| g.0))
            .filter(|d| d.is_finite())
            .collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let steps = 20;
        for i in 0..=steps {
            let t = lo + (hi - lo) * i as f64 / steps as f64;
            roc.push(roc_point(t, &genuine, &impostor));
        }
        let t = threshold_for_far(&impostor, args.far);
        suggested = Some(roc_point(t, &genuine, &impostor));
    }

    let threshold = last_model
        .as_ref()
        .map(|(r, _)| r.threshold())
        .unwrap_or(f64::INFINITY);
    let predict_ms = 1e3 * timing.predict_s / timing.predictions.max(1) as f64;
    if args.json {
        let mut obj = json!({
            "algorithm": args.algorithm.name(),
            "train": train_count,
            "test": outcomes.len(),
            "accuracy": accuracy,
            "threshold": json_number(threshold),
            "unknown": unknown,
            "predictions": outcomes.iter().map(|o| {
                let mut p = json!({
                    "file": o.file,
                    "truth": o.truth,
                    "predicted": o.predicted,
                    "distance": json_number(o.distance),
                });
                if let Some(f) = o.fold {
                    p["fold"] = json!(f);
                }
                p
            }).collect::<Vec<_>>(),
            "per_person": persons.iter().map(|(name, (n, c, u))| json!({
                "person": name, "tests": n, "correct": c, "unknown": u,
            })).collect::<Vec<_>>(),
        });
        if let Some(k) = args.folds {
            let mean = fold_accuracy.iter().sum::<f64>() / fold_accuracy.len().max(1) as f64;
            let var = fold_accuracy
                .iter()
                .map(|a| (a - mean).powi(2))
                .sum::<f64>()
                / fold_accuracy.len().max(1) as f64;
            obj["folds"] = json!(k);
            obj["fold_accuracy"] = json!(fold_accuracy);
            obj["mean_accuracy"] = json!(mean);
            obj["std_accuracy"] = json!(var.sqrt());
        }
        if let Some(s) = &suggested {
            obj["impostors"] = json!({
                "count": impostor_faces.len(),
                "target_far": args.far,
                "threshold": json_number(s.threshold),
                "far": s.far,
                "frr": s.frr,
                "misidentified": s.misidentified,
                "curve": roc.iter().map(|p| json!({
                    "threshold": p.threshold, "far": p.far, "frr": p.frr,
                    "misidentified": p.misidentified,
                })).collect::<Vec<_>>(),
            });
        }
        if args.timings {
            obj["train_s"] = json!(timing.train_s);
            obj["predict_ms"] = json!(predict_ms);
        }
        println!("{obj}");
    } else {
        println!(
            "{}: trained on {train_count}, tested {}: accuracy {accuracy:.4} ({correct}/{}), unknown {unknown}, threshold {threshold}",
            args.algorithm,
            outcomes.len(),
            outcomes.len()
        );
        if let Some(k) = args.folds {
            let mean = fold_accuracy.iter().sum::<f64>() / fold_accuracy.len().max(1) as f64;
            println!("{k} folds, accuracy per fold: {fold_accuracy:.4?}, mean {mean:.4}");
        }
        println!(
            "{:<24} {:>6} {:>8} {:>8}",
            "person", "tests", "correct", "unknown"
        );
        for (name, (n, c, u)) in &persons {
            println!("{name:<24} {n:>6} {c:>8} {u:>8}");
        }
        if let Some(s) = &suggested {
            println!(
                "\nimpostors: {} faces; threshold for FAR <= {}: {:.6} (FAR {:.4}, FRR {:.4}, misidentified {:.4})",
                impostor_faces.len(),
                args.far,
                s.threshold,
                s.far,
                s.frr,
                s.misidentified
            );
            println!(
                "{:>14} {:>8} {:>8} {:>8}",
                "threshold", "FAR", "FRR", "misid"
            );
            for p in &roc {
                println!(
                    "{:>14.4} {:>8.4} {:>8.4} {:>8.4}",
                    p.threshold, p.far, p.frr, p.misidentified
                );
            }
        }
        if args.timings {
            println!("train_s {:.6}, predict_ms {predict_ms:.4}", timing.train_s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers() {
        let mut v = vec!["s10", "s2", "s1", "a", "s02"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "s1", "s2", "s02", "s10"]);
        assert_eq!(natural_cmp("10.pgm", "2.pgm"), Ordering::Greater);
    }

    #[test]
    fn far_threshold_accepts_at_most_the_target() {
        let imp: Vec<f64> = (1..=100).map(f64::from).collect();
        let t = threshold_for_far(&imp, 0.01);
        assert_eq!(t, 2.0);
        assert_eq!(roc_point(t, &[], &imp).far, 0.01);
    }

    #[test]
    fn size_and_threshold_parsing() {
        assert_eq!(parse_size("92x112"), Ok((92, 112)));
        assert!(parse_size("0x3").is_err());
        assert_eq!(parse_threshold("inf"), Ok(f64::INFINITY));
        assert!(parse_threshold("nan").is_err());
    }
}
