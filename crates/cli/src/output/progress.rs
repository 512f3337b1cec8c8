//! What a person sees while files wait or run: the queue news of a
//! request as lines ([`line`]), and a progress bar for many files
//! ([`FileProgress`]).
//!
//! Invariant: the wording of the news is the original system's ("queued
//! as #4; position 2 of 3", "Now processing #3; yours is #5 (about 2 s)")
//! and every line about a forwarded job starts with the peer's address;
//! while a bar is shown, every line is printed through it, so the bar is
//! never torn.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use ocellus_client::Progress;
use ocellus_protocol::message::Position;

/// The queue news as a line for people.
pub(crate) fn line(progress: &Progress) -> String {
    // A job the node handed to a peer: its events say which.
    let there = |forwarded_to: &Option<String>| {
        forwarded_to
            .as_ref()
            .map(|addr| format!("forwarded to node {addr}; "))
            .unwrap_or_default()
    };
    match progress {
        Progress::Accepted {
            accepted: a,
            forwarded_to,
        } => {
            let (place, of) = if forwarded_to.is_none() {
                ("queued as", "")
            } else {
                ("queued there as", " there")
            };
            format!(
                "{}{place} #{}; position{of} {} of {}",
                there(forwarded_to),
                a.job,
                a.position,
                a.queue_length
            )
        }
        Progress::Position {
            job,
            position,
            forwarded_to,
        } => format!("{}{}", there(forwarded_to), position_line(*job, position)),
        Progress::Started { job, forwarded_to } => {
            format!("{}now processing #{job} (yours)", there(forwarded_to))
        }
        Progress::Busy {
            queue_length,
            retry_in,
        } => format!(
            "server busy ({queue_length} queued); retrying in {} ms",
            retry_in.as_millis()
        ),
    }
}

/// "Now processing #3; yours is #5 (about 2 s)", as the original system said.
fn position_line(job: u64, p: &Position) -> String {
    let now = p
        .processing
        .iter()
        .min()
        .map_or_else(|| "nothing".to_string(), |j| format!("#{j}"));
    format!(
        "Now processing {now}; yours is #{job} (about {:.0} s)",
        p.eta_s.max(0.0).ceil()
    )
}

/// The bar of `filter --local`.
const LOCAL_BAR: &str = "{bar:40} {pos}/{len} {elapsed_precise} eta {eta}";
/// The bar of `filter --server`, with the latest queue news beside it.
const REMOTE_BAR: &str = "{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}";

/// The display of a command that processes many files: a bar on a
/// terminal with the lines printed above it, else plain lines.
pub(crate) struct FileProgress {
    bar: Option<ProgressBar>,
    /// Without a bar: whether queue news is printed (to stderr).
    news: bool,
}

impl FileProgress {
    /// For local processing: a bar when there are several files, stderr is
    /// a terminal and the lines are not JSON (`timings`); no queue news.
    pub(crate) fn local(files: usize, timings: bool) -> FileProgress {
        FileProgress {
            bar: (files > 1 && !timings && std::io::stderr().is_terminal())
                .then(|| bar(files, LOCAL_BAR)),
            news: false,
        }
    }

    /// For files sent to a node: one file gets its queue news as lines on
    /// stderr; several get a bar with the news beside it on a terminal,
    /// and no news elsewhere.
    pub(crate) fn remote(files: usize) -> FileProgress {
        if files == 1 {
            FileProgress {
                bar: None,
                news: true,
            }
        } else {
            FileProgress {
                bar: std::io::stderr()
                    .is_terminal()
                    .then(|| bar(files, REMOTE_BAR)),
                news: false,
            }
        }
    }

    /// Queue news about `file`.
    pub(crate) fn news(&self, file: &Path, line: String) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {line}", file_name(file))),
            None if self.news => eprintln!("{line}"),
            None => {}
        }
    }

    /// A result line (stdout, or above the bar).
    pub(crate) fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// An error line (stderr, with the bar out of the way).
    pub(crate) fn eprintln(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// One more file done.
    pub(crate) fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn bar(files: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(files as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ocellus_protocol::message::Accepted;

    use super::*;

    #[test]
    fn queue_news_reads_as_before() {
        let accepted = Accepted {
            job: 4,
            position: 2,
            queue_length: 3,
        };
        let position = Position {
            position: 1,
            queue_length: 2,
            processing: vec![5, 3],
            eta_s: 1.2,
        };
        let peer = Some("10.0.0.2:7070".to_string());
        let cases = [
            (
                Progress::Accepted {
                    accepted: accepted.clone(),
                    forwarded_to: None,
                },
                "queued as #4; position 2 of 3",
            ),
            (
                Progress::Accepted {
                    accepted,
                    forwarded_to: peer.clone(),
                },
                "forwarded to node 10.0.0.2:7070; queued there as #4; position there 2 of 3",
            ),
            (
                Progress::Position {
                    job: 4,
                    position: position.clone(),
                    forwarded_to: None,
                },
                "Now processing #3; yours is #4 (about 2 s)",
            ),
            (
                Progress::Position {
                    job: 4,
                    position: Position {
                        processing: vec![],
                        eta_s: -1.0,
                        ..position
                    },
                    forwarded_to: peer.clone(),
                },
                "forwarded to node 10.0.0.2:7070; Now processing nothing; yours is #4 (about 0 s)",
            ),
            (
                Progress::Started {
                    job: 4,
                    forwarded_to: None,
                },
                "now processing #4 (yours)",
            ),
            (
                Progress::Started {
                    job: 4,
                    forwarded_to: peer,
                },
                "forwarded to node 10.0.0.2:7070; now processing #4 (yours)",
            ),
            (
                Progress::Busy {
                    queue_length: 8,
                    retry_in: Duration::from_millis(400),
                },
                "server busy (8 queued); retrying in 400 ms",
            ),
        ];
        for (progress, expected) in cases {
            assert_eq!(line(&progress), expected);
        }
    }
}
