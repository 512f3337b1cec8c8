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
//!
//! The protocols and every figure are computed by `ocellus_recognize::eval`;
//! this module parses the arguments, reads the folders, calls it and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail, ensure};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::eval::{EvalError, LabelledFace, Protocol, Summary, evaluate, natural_cmp};
use ocellus_recognize::prepare::resize_gray;
use ocellus_recognize::{Algorithm, EigenFaces, FisherFaces, Lbph, LbphParams, Recognizer};
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

/// Face images read from disk: the file of each (as found under the folder
/// given on the command line) and the labelled face.
#[derive(Default)]
struct Faces {
    files: Vec<String>,
    faces: Vec<LabelledFace>,
}

impl Faces {
    fn push(&mut self, file: &Path, person: &str) -> Result<()> {
        self.faces.push(LabelledFace {
            person: person.to_owned(),
            image: load_image(file)?,
        });
        self.files.push(file.to_string_lossy().into_owned());
        Ok(())
    }
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
fn load_people(dir: &Path) -> Result<Faces> {
    let mut faces = Faces::default();
    for (person, path) in sorted_entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        for (_, file) in sorted_entries(&path)? {
            if !file.is_file() {
                continue;
            }
            faces.push(&file, &person)?;
        }
    }
    ensure!(
        !faces.faces.is_empty(),
        "no face images in {} (expected one sub-folder per person)",
        dir.display()
    );
    Ok(faces)
}

/// Loads every image under DIR (person folders or loose files), for impostors.
fn load_any(dir: &Path) -> Result<Faces> {
    let mut faces = Faces::default();
    for (name, path) in sorted_entries(dir)? {
        if path.is_dir() {
            for (_, file) in sorted_entries(&path)? {
                if file.is_file() {
                    faces.push(&file, &name)?;
                }
            }
        } else if path.is_file() {
            faces.push(&path, "")?;
        }
    }
    ensure!(!faces.faces.is_empty(), "no images in {}", dir.display());
    Ok(faces)
}

/// Resizes to `size` when given, else checks that all faces share one size.
fn normalise_sizes(sets: &mut [&mut Faces], size: Option<(u32, u32)>) -> Result<()> {
    if let Some((w, h)) = size {
        for f in sets.iter_mut().flat_map(|s| s.faces.iter_mut()) {
            f.image = resize_gray(&f.image, w, h);
        }
        return Ok(());
    }
    let mut all = sets
        .iter()
        .flat_map(|s| s.files.iter().zip(&s.faces))
        .map(|(file, f)| (file, f.image.width(), f.image.height()));
    let Some((first_file, w, h)) = all.next() else {
        return Ok(());
    };
    for (file, fw, fh) in all {
        if (fw, fh) != (w, h) {
            bail!(
                "images differ in size: {first_file} is {w}x{h} but {file} is {fw}x{fh}; pass --size WxH to resize them all"
            );
        }
    }
    Ok(())
}

/// Checks the recognizer options, then returns what makes a fresh
/// recognizer for each training run.
fn recognizer_factory(args: &EvalArgs) -> Result<impl Fn() -> Box<dyn Recognizer> + '_> {
    let params = LbphParams {
        radius: args.radius,
        neighbors: args.neighbors,
        grid_x: args.grid_x,
        grid_y: args.grid_y,
    };
    if args.algorithm == Algorithm::Lbph {
        ensure!(
            args.components.is_none(),
            "--components applies to eigen and fisher only"
        );
        params.validate()?;
    }
    Ok(move || {
        let mut rec: Box<dyn Recognizer> = match args.algorithm {
            Algorithm::Eigen => Box::new(EigenFaces::new(args.components.unwrap_or(0))),
            Algorithm::Fisher => Box::new(FisherFaces::new(args.components.unwrap_or(0))),
            Algorithm::Lbph => Box::new(Lbph::new(params)),
        };
        if let Some(t) = args.threshold {
            rec.set_threshold(t);
        }
        rec
    })
}

/// The command's error for an evaluation error: a failed prediction names
/// the file (`files` are those of the faces the evaluation was given).
fn eval_error(err: EvalError, files: &[String]) -> anyhow::Error {
    match err {
        EvalError::Predict { index, source } => {
            let file = files.get(index).map_or("?", String::as_str);
            anyhow::Error::new(source).context(format!("predicting {file}"))
        }
        other => anyhow::Error::new(other),
    }
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
    let mut impostors = match &args.impostors {
        Some(dir) => load_any(dir)?,
        None => Faces::default(),
    };

    // The test faces' files (the data's for folds), for the output.
    let (evaluation, files) = if let (Some(train_dir), Some(test_dir)) = (&args.train, &args.test) {
        let mut train = load_people(train_dir)?;
        let mut test = load_people(test_dir)?;
        normalise_sizes(&mut [&mut train, &mut test, &mut impostors], args.size)?;
        let make = recognizer_factory(&args)?;
        let protocol = Protocol::Split {
            train: &train.faces,
            test: &test.faces,
        };
        let evaluation = evaluate(protocol, make).map_err(|e| eval_error(e, &test.files))?;
        (evaluation, test.files)
    } else if let (Some(data_dir), Some(k)) = (&args.data, args.folds) {
        let mut data = load_people(data_dir)?;
        normalise_sizes(&mut [&mut data, &mut impostors], args.size)?;
        let make = recognizer_factory(&args)?;
        let protocol = Protocol::Folds {
            data: &data.faces,
            k,
        };
        let evaluation = evaluate(protocol, make).map_err(|e| eval_error(e, &data.files))?;
        (evaluation, data.files)
    } else {
        bail!("give either --train DIR --test DIR, or --data DIR --folds K");
    };

    if let (Some(path), Some(model)) = (&args.save_model, &evaluation.model) {
        let bytes = model.recognizer.to_bytes()?;
        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }

    let Summary {
        tests,
        correct,
        accuracy,
        unknown,
    } = evaluation.summary();
    let persons = evaluation.per_person();
    let fold_accuracy = &evaluation.fold_accuracy;
    let folds = evaluation.fold_stats();

    // Impostor analysis with the last model (train/test) or the last fold's.
    let analysis = if impostors.faces.is_empty() {
        None
    } else {
        let analysis = evaluation
            .impostor_analysis(&impostors.faces, args.far)
            .map_err(|e| eval_error(e, &impostors.files))?;
        Some(analysis)
    };

    let train_count = evaluation.train_count;
    let threshold = evaluation.threshold();
    let timings = evaluation.timings;
    let predict_ms = timings.predict_ms();
    if args.json {
        let mut obj = json!({
            "algorithm": args.algorithm.name(),
            "train": train_count,
            "test": tests,
            "accuracy": accuracy,
            "threshold": json_number(threshold),
            "unknown": unknown,
            "predictions": evaluation.outcomes.iter().map(|o| {
                let mut p = json!({
                    "file": files[o.index],
                    "truth": o.truth,
                    "predicted": o.predicted,
                    "distance": json_number(o.distance),
                });
                if let Some(f) = o.fold {
                    p["fold"] = json!(f);
                }
                p
            }).collect::<Vec<_>>(),
            "per_person": persons.iter().map(|p| json!({
                "person": p.person, "tests": p.tests, "correct": p.correct, "unknown": p.unknown,
            })).collect::<Vec<_>>(),
        });
        if let Some(k) = args.folds {
            obj["folds"] = json!(k);
            obj["fold_accuracy"] = json!(fold_accuracy);
            obj["mean_accuracy"] = json!(folds.mean);
            obj["std_accuracy"] = json!(folds.std);
        }
        if let Some(a) = &analysis {
            let s = &a.suggested;
            obj["impostors"] = json!({
                "count": impostors.faces.len(),
                "target_far": args.far,
                "threshold": json_number(s.threshold),
                "far": s.far,
                "frr": s.frr,
                "misidentified": s.misidentified,
                "curve": a.curve.iter().map(|p| json!({
                    "threshold": p.threshold, "far": p.far, "frr": p.frr,
                    "misidentified": p.misidentified,
                })).collect::<Vec<_>>(),
            });
        }
        if args.timings {
            obj["train_s"] = json!(timings.train_s);
            obj["predict_ms"] = json!(predict_ms);
        }
        println!("{obj}");
    } else {
        println!(
            "{}: trained on {train_count}, tested {tests}: accuracy {accuracy:.4} ({correct}/{tests}), unknown {unknown}, threshold {threshold}",
            args.algorithm,
        );
        if let Some(k) = args.folds {
            println!(
                "{k} folds, accuracy per fold: {fold_accuracy:.4?}, mean {:.4}",
                folds.mean
            );
        }
        println!(
            "{:<24} {:>6} {:>8} {:>8}",
            "person", "tests", "correct", "unknown"
        );
        for p in &persons {
            println!(
                "{:<24} {:>6} {:>8} {:>8}",
                p.person, p.tests, p.correct, p.unknown
            );
        }
        if let Some(a) = &analysis {
            let s = &a.suggested;
            println!(
                "\nimpostors: {} faces; threshold for FAR <= {}: {:.6} (FAR {:.4}, FRR {:.4}, misidentified {:.4})",
                impostors.faces.len(),
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
            for p in &a.curve {
                println!(
                    "{:>14.4} {:>8.4} {:>8.4} {:>8.4}",
                    p.threshold, p.far, p.frr, p.misidentified
                );
            }
        }
        if args.timings {
            println!("train_s {:.6}, predict_ms {predict_ms:.4}", timings.train_s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_threshold_parsing() {
        assert_eq!(parse_size("92x112"), Ok((92, 112)));
        assert!(parse_size("0x3").is_err());
        assert_eq!(parse_threshold("inf"), Ok(f64::INFINITY));
        assert!(parse_threshold("nan").is_err());
    }
}
