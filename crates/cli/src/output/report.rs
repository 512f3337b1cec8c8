//! Per-file lines and JSON reports that more than one command (or mode)
//! prints: a file's error line, the failure count, the exit code, and what
//! `detect` found (`--local` and `--server` print the same).
//!
//! Invariant: a file that failed is named in exactly one `error: FILE: …`
//! line on stderr and makes the exit code a failure; results go to stdout,
//! one line (or one JSON object) per file.

use std::path::Path;
use std::process::ExitCode;

use ocellus_detect::Rect;
use serde::Serialize;

/// The line that says why `file` failed.
pub(crate) fn error_line(file: &Path, err: &anyhow::Error) -> String {
    format!("error: {}: {err:#}", file.display())
}

/// Prints why `file` failed.
pub(crate) fn print_error(file: &Path, err: &anyhow::Error) {
    eprintln!("{}", error_line(file, err));
}

/// The end of a command over many files: "3 of 10 files failed" on
/// stderr when any did, and the exit code.
pub(crate) fn finish_files(failed: usize, files: usize) -> ExitCode {
    if failed > 0 {
        eprintln!("{failed} of {files} files failed");
    }
    exit_code(failed)
}

/// Success when no file failed.
pub(crate) fn exit_code(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A box as people read it: `WxH+X+Y`.
pub(crate) fn geometry(r: &Rect) -> String {
    format!("{}x{}+{}+{}", r.width, r.height, r.x, r.y)
}

#[derive(Serialize)]
struct Face {
    x: i32,
    y: i32,
    width: i32,
    height: i32,
}

#[derive(Serialize)]
struct FacesReport<'a> {
    file: &'a str,
    width: u32,
    height: u32,
    faces: Vec<Face>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detect_ms: Option<f64>,
}

/// Prints what was found in one file: a JSON line or a line for people.
pub(crate) fn print_faces(
    file: &Path,
    width: u32,
    height: u32,
    faces: &[Rect],
    detect_ms: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    if json {
        let report = FacesReport {
            file: &shown,
            width,
            height,
            faces: faces
                .iter()
                .map(|r| Face {
                    x: r.x,
                    y: r.y,
                    width: r.width,
                    height: r.height,
                })
                .collect(),
            detect_ms: detect_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let boxes: Vec<String> = faces.iter().map(geometry).collect();
        let timing = detect_ms.map_or(String::new(), |ms| format!(" ({ms:.2} ms)"));
        println!(
            "{shown}: {} face{}{}{timing}",
            faces.len(),
            if faces.len() == 1 { "" } else { "s" },
            if boxes.is_empty() {
                String::new()
            } else {
                format!(" {}", boxes.join(" "))
            }
        );
    }
    Ok(())
}
