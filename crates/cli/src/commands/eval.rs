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
//! `--leave-one-out` with `--data` tests each face against all the others.
//! `--photos` takes the images as photos: the largest face the service's
//! cascade finds in each is the face (photos without one are skipped and
//! counted). `--algorithm resnet` aligns each face (its box: the detected
//! one, or the whole image for cropped faces) into dlib's 150x150 chip and
//! compares 128-d descriptors, with the model files found as `serve` finds
//! them; its threshold is the tolerance (0.6).
//!
//! `--timings` adds `train_s` (training wall time) and `predict_ms` (mean
//! wall time of one `predict`) to the output; `--save-model FILE` writes the
//! trained model (train/test mode) in the binary model format.
//!
//! The protocols and every figure are computed by `ocellus_recognize::eval`;
//! this module parses the arguments, reads the folders, calls it and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_detect::{Cascade, DetectParams, detect};
use ocellus_embed::FaceModels;
use ocellus_imaging::Image;
use ocellus_imaging::filter::geometry::crop;
use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_recognize::eval::{EvalError, LabelledFace, Protocol, Summary, evaluate, natural_cmp};
use ocellus_recognize::prepare::{DEFAULT_FACE_SIZE, resize_gray};
use ocellus_recognize::{Algorithm, EigenFaces, FisherFaces, Lbph, LbphParams, Recognizer, Resnet};
use serde_json::{Value, json};

use crate::cascades;
use crate::commands::serve::SERVICE_CASCADE;
use crate::models;

/// Arguments of `ocellus eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Recognition algorithm: eigen, fisher, lbph or resnet.
    #[arg(long, value_parser = parse_algorithm)]
    algorithm: Algorithm,
    /// The images are photos: recognize the largest face found in each
    /// (photos without a face are skipped and counted).
    #[arg(long)]
    photos: bool,
    /// Detection cascade for --photos (a path or a name, as for serve).
    #[arg(long, default_value = SERVICE_CASCADE)]
    cascade: String,
    /// resnet: the folder of the model files (default: as serve finds them).
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
    /// With --data: test each face against a model of all the others.
    #[arg(long, requires = "data", conflicts_with = "folds")]
    leave_one_out: bool,
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
    /// Data folder for k-fold cross-validation (with --folds) or
    /// --leave-one-out.
    #[arg(long)]
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
    Algorithm::from_name(s)
        .ok_or_else(|| format!("unknown algorithm {s:?} (eigen, fisher, lbph, resnet)"))
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
/// given on the command line) and the labelled face; photos without a face.
#[derive(Default)]
struct Faces {
    files: Vec<String>,
    faces: Vec<LabelledFace>,
    no_face: Vec<String>,
}

impl Faces {
    fn push(&mut self, loader: &Loader, file: &Path, person: &str) -> Result<()> {
        let name = file.to_string_lossy().into_owned();
        match loader.face(file)? {
            Some(image) => {
                self.faces.push(LabelledFace {
                    person: person.to_owned(),
                    image,
                });
                self.files.push(name);
            }
            None => self.no_face.push(name),
        }
        Ok(())
    }
}

/// How an image file becomes the face a recognizer takes.
struct Loader {
    /// With --photos: the cascade and the service's detection settings.
    detector: Option<(Cascade, DetectParams)>,
    /// resnet: the model files.
    models: Option<Arc<FaceModels>>,
}

impl Loader {
    fn new(args: &EvalArgs) -> Result<Loader> {
        let detector = if args.photos {
            let (_, cascade) = cascades::load(&args.cascade)?;
            // The detection role's defaults (serve --scale-factor,
            // --min-neighbors, --min-size).
            let params = DetectParams {
                scale_factor: 1.1,
                min_neighbors: 3,
                min_size: (30, 30),
                max_size: (0, 0),
            };
            Some((cascade, params))
        } else {
            None
        };
        let models = if args.algorithm == Algorithm::Resnet {
            let found = models::discover(args.models.as_deref(), None)?;
            let Some((_, m)) = found else {
                bail!("{}", models::not_found(&models::search_dirs(None, None)));
            };
            Some(Arc::new(m))
        } else {
            None
        };
        Ok(Loader { detector, models })
    }

    /// The face of one file: grey for eigen/fisher/lbph, the aligned chip
    /// for resnet; `None` for a photo without a face.
    fn face(&self, path: &Path) -> Result<Option<Image>> {
        let image = load_image(path)?;
        let gray = to_gray(&image);
        let (x, y, w, h) = match &self.detector {
            None => (0, 0, gray.width(), gray.height()),
            Some((cascade, params)) => {
                let found = detect(cascade, &gray, params)
                    .with_context(|| format!("detecting faces in {}", path.display()))?;
                // The largest, then the topmost, leftmost (as the node).
                let Some(r) = found
                    .into_iter()
                    .filter(|r| r.width > 0 && r.height > 0)
                    .min_by_key(|r| {
                        (
                            std::cmp::Reverse(i64::from(r.width) * i64::from(r.height)),
                            r.y,
                            r.x,
                        )
                    })
                else {
                    return Ok(None);
                };
                (
                    r.x.max(0) as u32,
                    r.y.max(0) as u32,
                    r.width as u32,
                    r.height as u32,
                )
            }
        };
        if let Some(m) = &self.models {
            let rect = ocellus_embed::Rect::from_xywh(
                i64::from(x),
                i64::from(y),
                i64::from(w),
                i64::from(h),
            );
            let landmarks = m.landmarks(&image, rect);
            return Ok(Some(m.chip(&image, &landmarks).to_image()));
        }
        if self.detector.is_none() {
            return Ok(Some(gray));
        }
        Ok(Some(crop(&gray, w, h, x, y).with_context(|| {
            format!("cropping the face of {}", path.display())
        })?))
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

/// An image as decoded (colour kept, for resnet's chips).
fn load_image(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (image, _) = decode(&bytes, &DecodeLimits::default())
        .with_context(|| format!("decoding {}", path.display()))?;
    Ok(image)
}

/// Loads DIR/<person>/<file> in training order (see the module docs).
fn load_people(loader: &Loader, dir: &Path) -> Result<Faces> {
    let mut faces = Faces::default();
    for (person, path) in sorted_entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        for (_, file) in sorted_entries(&path)? {
            if !file.is_file() {
                continue;
            }
            faces.push(loader, &file, &person)?;
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
fn load_any(loader: &Loader, dir: &Path) -> Result<Faces> {
    let mut faces = Faces::default();
    for (name, path) in sorted_entries(dir)? {
        if path.is_dir() {
            for (_, file) in sorted_entries(&path)? {
                if file.is_file() {
                    faces.push(loader, &file, &name)?;
                }
            }
        } else if path.is_file() {
            faces.push(loader, &path, "")?;
        }
    }
    ensure!(!faces.faces.is_empty(), "no images in {}", dir.display());
    Ok(faces)
}

/// Resizes to `size` when given, else checks that all faces share one size
/// (resnet's chips always do).
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
fn recognizer_factory<'a>(
    args: &'a EvalArgs,
    loader: &Loader,
) -> Result<impl Fn() -> Box<dyn Recognizer> + 'a> {
    // One prototype whose siblings share the descriptors computed so far:
    // each face goes through the network once, whatever the protocol.
    let resnet = loader.models.clone().map(Resnet::new);
    if resnet.is_some() {
        ensure!(
            args.components.is_none() && args.size.is_none(),
            "--components and --size do not apply to resnet (its faces are 150x150 chips)"
        );
    }
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
        let mut rec: Box<dyn Recognizer> = match (&resnet, args.algorithm) {
            (Some(r), _) => Box::new(r.sibling()),
            (None, Algorithm::Eigen) => Box::new(EigenFaces::new(args.components.unwrap_or(0))),
            (None, Algorithm::Fisher) => Box::new(FisherFaces::new(args.components.unwrap_or(0))),
            (None, _) => Box::new(Lbph::new(params)),
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
    let loader = Loader::new(&args)?;
    let mut impostors = match &args.impostors {
        Some(dir) => load_any(&loader, dir)?,
        None => Faces::default(),
    };
    // Cropped photo faces come in every size: the node's face size unless
    // told otherwise.
    let size = match (args.size, args.photos && loader.models.is_none()) {
        (None, true) => Some(DEFAULT_FACE_SIZE),
        (size, _) => size,
    };

    // The test faces' files (the data's for folds), for the output, and the
    // photos without a face.
    let (evaluation, files, no_face) = if let (Some(train_dir), Some(test_dir)) =
        (&args.train, &args.test)
    {
        let mut train = load_people(&loader, train_dir)?;
        let mut test = load_people(&loader, test_dir)?;
        normalise_sizes(&mut [&mut train, &mut test, &mut impostors], size)?;
        let make = recognizer_factory(&args, &loader)?;
        let protocol = Protocol::Split {
            train: &train.faces,
            test: &test.faces,
        };
        let evaluation = evaluate(protocol, make).map_err(|e| eval_error(e, &test.files))?;
        let mut no_face = train.no_face;
        no_face.extend(test.no_face);
        (evaluation, test.files, no_face)
    } else if let Some(data_dir) = &args.data {
        let mut data = load_people(&loader, data_dir)?;
        normalise_sizes(&mut [&mut data, &mut impostors], size)?;
        let make = recognizer_factory(&args, &loader)?;
        let protocol = match args.folds {
            Some(k) => Protocol::Folds {
                data: &data.faces,
                k,
            },
            None if args.leave_one_out => Protocol::LeaveOneOut { data: &data.faces },
            None => bail!("--data needs --folds K or --leave-one-out"),
        };
        let evaluation = evaluate(protocol, make).map_err(|e| eval_error(e, &data.files))?;
        (evaluation, data.files, data.no_face)
    } else {
        bail!(
            "give either --train DIR --test DIR, or --data DIR with --folds K or --leave-one-out"
        );
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
            "no_face": no_face,
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
        if !no_face.is_empty() {
            println!(
                "{} photos without a face, skipped: {}",
                no_face.len(),
                no_face.join(", ")
            );
        }
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
