//! `import`: journal D&B delivery files, with a progress bar (lines/s, ETA) on a terminal and
//! one summary line per file otherwise. A running service picks the notifications up at its
//! next poll.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::cli::ImportArgs;
use crate::config::Settings;
use crate::files::{self, FileOutcome, Importer, Progress};
use crate::journal;

/// Imports every job the paths make and prints what became of each file; exit 1 when any
/// delivery was refused or failed.
pub async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let jobs = files::plan(&args.paths)?;
    if jobs.is_empty() {
        println!("no delivery files found");
        return Ok(ExitCode::SUCCESS);
    }
    let journal = journal::connect(&settings.storage)
        .await
        .with_context(|| format!("cannot open the journal at {}", settings.storage.url))?;
    let mut importer = Importer::new(journal.clone());
    importer.dry_run = args.dry_run;
    let progress = Bar::new(std::io::stderr().is_terminal());
    let mut failed = 0;
    let (mut imported, mut skipped) = (0, 0);
    for job in &jobs {
        match importer.run(job, &progress).await {
            Ok(reports) => {
                for report in reports {
                    match report.outcome {
                        FileOutcome::AlreadyImported => skipped += 1,
                        _ => imported += 1,
                    }
                    println!("{}", report.summary());
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("error: {error:#}");
            }
        }
    }
    journal.close().await;
    println!(
        "{imported} files {}, {skipped} already imported, {failed} failed",
        if args.dry_run { "checked" } else { "imported" }
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar over a file's uncompressed bytes, with its lines and lines/s.
struct Bar {
    bar: ProgressBar,
    started: Mutex<Instant>,
}

impl Bar {
    fn new(terminal: bool) -> Arc<Self> {
        let bar = if terminal {
            // Length 1 until the file's size is known: an empty bar reads 0%, not 100%.
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Arc::new(Self {
            bar,
            started: Mutex::new(Instant::now()),
        })
    }
}

impl Progress for Arc<Bar> {
    fn begin(&self, name: &str) {
        *self.started.lock() = Instant::now();
        self.bar.reset();
        self.bar.set_length(1);
        self.bar.set_prefix(name.to_string());
        self.bar.set_position(0);
    }

    fn advance(&self, position: u64, size: u64, lines: u64) {
        let seconds = self.started.lock().elapsed().as_secs_f64().max(0.001);
        self.bar.set_length(size.max(position));
        self.bar.set_position(position);
        self.bar.set_message(format!(
            "{lines} lines, {:.0} lines/s",
            lines as f64 / seconds
        ));
    }

    fn end(&self) {
        self.bar.finish_and_clear();
    }
}
