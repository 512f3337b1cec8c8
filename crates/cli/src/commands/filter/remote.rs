//! `ocellus filter --server`: the files go to a node, the results come back.
//!
//! Invariant: at most `--in-flight` files are read or in flight at once
//! (`remote::Batch`), and each file's line (result or error) is printed
//! once, in the files' order; the result is written under the format the
//! node says it encoded.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use ocellus_client::{ClientError, Event};
use ocellus_protocol::Op;
use ocellus_protocol::message::{FilterRequest, FilterResult, from_header, to_header};

use super::{FilterArgs, output_path, write_new};
use crate::output::progress::FileProgress;
use crate::output::report;
use crate::remote::{Batch, connect, runtime};

/// Runs the networked mode (the stems and the output folder are ready).
pub(super) fn run(args: &FilterArgs, addr: &str) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(run_async(args, addr))
}

async fn run_async(args: &FilterArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let client = Arc::new(connect(addr, &args.connect).await?);
    let display = Arc::new(FileProgress::remote(args.files.len()));
    let batch = Batch {
        files: &args.files,
        in_flight: args.in_flight,
        op: Op::Filter,
        header: to_header(&FilterRequest {
            ops: args.ops.to_string(),
            format: args.format.map(|f| f.extension().to_string()),
            quality: Some(args.quality),
        }),
        unreadable: "reading",
    };
    let news = display.clone();
    let failures = batch
        .send(
            client,
            Arc::new(move |file: &Path, line| news.news(file, line)),
            |file, outcome| {
                let saved = outcome.and_then(|(event, _)| save(&event, file, &args.out_dir));
                match &saved {
                    Ok(line) => display.println(line.clone()),
                    Err(e) => display.eprintln(report::error_line(file, e)),
                }
                display.inc();
                saved.is_ok()
            },
        )
        .await;
    display.finish();
    Ok(report::finish_files(failures, args.files.len()))
}

/// Writes the image of a FILTER RESULT next to the others; returns the
/// line that says so.
fn save(event: &Event, file: &Path, out_dir: &Path) -> anyhow::Result<String> {
    let result: FilterResult =
        from_header(&event.header).map_err(|e| ClientError::Unexpected(e.to_string()))?;
    let output = output_path(out_dir, file, &result.format)?;
    write_new(&output, file, &event.payload)?;
    Ok(format!(
        "{} -> {} ({}x{})",
        file.display(),
        output.display(),
        result.width,
        result.height
    ))
}
