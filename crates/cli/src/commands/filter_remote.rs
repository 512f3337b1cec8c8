//! `ocellus filter --server`: the files go to a node, the results come back.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ocellus_node::client::{Client, ClientError};
use ocellus_protocol::message::from_header;
use tokio::sync::Semaphore;

use super::filter::{FilterArgs, write_new};
use super::remote::await_result;

/// Runs the networked mode.
pub fn run(args: &FilterArgs, addr: &str) -> anyhow::Result<ExitCode> {
    super::remote::runtime()?.block_on(run_async(args, addr))
}

/// What the user sees while files wait: lines for one file, a bar for many.
enum Display {
    Single,
    Batch(ProgressBar),
    Quiet,
}

impl Display {
    fn progress(&self, file: &Path, line: String) {
        match self {
            Display::Single => eprintln!("{line}"),
            Display::Batch(bar) => bar.set_message(format!("{}: {line}", file_name(file))),
            Display::Quiet => {}
        }
    }

    fn println(&self, line: String) {
        match self {
            Display::Batch(bar) => bar.println(line),
            _ => println!("{line}"),
        }
    }

    fn eprintln(&self, line: String) {
        match self {
            Display::Batch(bar) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

async fn run_async(args: &FilterArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let client = Arc::new(super::remote::connect(addr).await?);
    let display = Arc::new(if args.files.len() == 1 {
        Display::Single
    } else if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(args.files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}")
                .expect("valid template"),
        );
        Display::Batch(bar)
    } else {
        Display::Quiet
    });
    let slots = Arc::new(Semaphore::new(args.in_flight.max(1)));
    let spec = args.ops.to_string();
    let format = args.format.map(|f| f.extension().to_string());
    let mut tasks = tokio::task::JoinSet::new();
    for file in args.files.clone() {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (client, display) = (client.clone(), display.clone());
        let (spec, format, out_dir, quality) = (
            spec.clone(),
            format.clone(),
            args.out_dir.clone(),
            args.quality,
        );
        tasks.spawn(async move {
            let result = one_file(
                &client,
                &display,
                &file,
                &spec,
                format.as_deref(),
                quality,
                &out_dir,
            )
            .await;
            drop(permit);
            match &result {
                Ok(line) => display.println(line.clone()),
                Err(e) => display.eprintln(format!("error: {}: {e:#}", file.display())),
            }
            if let Display::Batch(bar) = &*display {
                bar.inc(1);
            }
            result.is_err()
        });
    }
    let mut failures = 0;
    while let Some(done) = tasks.join_next().await {
        failures += usize::from(done.unwrap_or(true));
    }
    if let Display::Batch(bar) = &*display {
        bar.finish_and_clear();
    }
    if failures > 0 {
        eprintln!("{failures} of {} files failed", args.files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn one_file(
    client: &Client,
    display: &Display,
    file: &Path,
    spec: &str,
    format: Option<&str>,
    quality: u8,
    out_dir: &Path,
) -> anyhow::Result<String> {
    let bytes = tokio::fs::read(file).await.context("reading")?;
    let event = await_result(
        || client.filter(bytes.clone(), spec, format, Some(quality)),
        &|line| display.progress(file, line),
    )
    .await?;
    save(&event, file, out_dir)
}

fn save(
    event: &ocellus_node::client::Event,
    file: &Path,
    out_dir: &Path,
) -> anyhow::Result<String> {
    let result: ocellus_protocol::message::FilterResult =
        from_header(&event.header).map_err(|e| ClientError::Unexpected(e.to_string()))?;
    let stem = file.file_stem().context("input has no file name")?;
    let output: PathBuf = out_dir.join(format!("{}.{}", stem.to_string_lossy(), result.format));
    write_new(&output, file, &event.payload)?;
    Ok(format!(
        "{} -> {} ({}x{})",
        file.display(),
        output.display(),
        result.width,
        result.height
    ))
}
