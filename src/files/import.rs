//! Journals delivery files: a reader thread streams a file's lines and parses them into
//! chunks while the journal commits the previous chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::mpsc;

use super::read::{self, for_each_line, is_blank, with_text};
use super::{FileKind, Job, Named, classify, file_name, name_time, read_manifest};
use crate::dnb::{IncomingItem, SeedDefaults, parse_line};
use crate::journal::{Delivery, DnbException, ImportedFile, ItemFate, Journal, now_ms};
use crate::telemetry::Metrics;
use crate::worker::Doorbell;

/// Lines per journal transaction (one delivery per chunk).
pub const CHUNK_LINES: usize = 5_000;
/// Parsed chunks waiting for the journal (bounds memory: the reader stays at most this far ahead).
const CHUNKS_AHEAD: usize = 2;

/// Told how an import advances (a progress bar on a terminal).
pub trait Progress: Send + Sync {
    /// A file's import starts.
    fn begin(&self, _name: &str) {}
    /// `position` of `size` uncompressed bytes read; `lines` records handled so far.
    fn advance(&self, _position: u64, _size: u64, _lines: u64) {}
    /// The file is done (or failed).
    fn end(&self) {}
}

/// No progress shown.
pub struct Silent;

impl Progress for Silent {}

/// How a file's import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    /// Its lines are journaled (or, for EXCEPTIONS, its DUNS recorded).
    Imported,
    /// The journal had already imported this name and content: nothing done.
    AlreadyImported,
    /// `--dry-run`: read and checked, nothing journaled.
    Checked,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: FileKind,
    /// How it ended.
    pub outcome: FileOutcome,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// Records (non-blank lines; the header row of EXCEPTIONS left out) read in this run.
    pub records: u64,
    /// Notifications newly journaled (valid ones, on a dry run).
    pub accepted: u64,
    /// Notifications already journaled.
    pub duplicates: u64,
    /// Lines kept as rejected (or malformed EXCEPTIONS lines).
    pub rejected: u64,
    /// DUNS recorded from an EXCEPTIONS file.
    pub exceptions: u64,
    /// Lines an earlier, interrupted import had committed; this run started after them.
    pub resumed_after: u64,
    /// Time spent on the file.
    pub seconds: f64,
}

impl FileReport {
    /// One plain line for logs and non-terminal output.
    pub fn summary(&self) -> String {
        let kind = self.kind.label();
        match self.outcome {
            FileOutcome::AlreadyImported => format!(
                "{}: already imported (sha256 {}), skipped",
                self.name,
                &self.sha256[..self.sha256.len().min(12)]
            ),
            _ => {
                let rate = if self.seconds > 0.0 {
                    self.records as f64 / self.seconds
                } else {
                    0.0
                };
                let resumed = if self.resumed_after > 0 {
                    format!(", resumed after line {}", self.resumed_after)
                } else {
                    String::new()
                };
                let dry = if self.outcome == FileOutcome::Checked {
                    " (dry run: nothing journaled)"
                } else {
                    ""
                };
                if self.kind == FileKind::Exceptions {
                    format!(
                        "{}: {kind}, {} DUNS recorded, {} malformed lines{resumed}{dry}",
                        self.name, self.exceptions, self.rejected
                    )
                } else {
                    format!(
                        "{}: {kind}, {} lines, {} accepted, {} duplicates, {} rejected in {:.1}s ({:.0} lines/s){resumed}{dry}",
                        self.name,
                        self.records,
                        self.accepted,
                        self.duplicates,
                        self.rejected,
                        self.seconds,
                        rate
                    )
                }
            }
        }
    }
}

/// Imports jobs into a journal.
#[derive(Clone)]
pub struct Importer {
    /// Where notifications and file records go.
    pub journal: Arc<dyn Journal>,
    /// Counts files, received notifications and exceptions, when given.
    pub metrics: Option<Arc<Metrics>>,
    /// Rung after a chunk with new notifications, so workers start at once.
    pub doorbell: Option<Doorbell>,
    /// Read and check only.
    pub dry_run: bool,
    /// Lines per journal transaction.
    pub chunk_lines: usize,
}

impl Importer {
    /// An importer that journals, in chunks of [`CHUNK_LINES`].
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self {
            journal,
            metrics: None,
            doorbell: None,
            dry_run: false,
            chunk_lines: CHUNK_LINES,
        }
    }

    /// Imports one job; a delivery with a manifest is checked whole first and imports
    /// nothing when any check fails.
    pub async fn run(&self, job: &Job, progress: &dyn Progress) -> anyhow::Result<Vec<FileReport>> {
        let result = match job {
            Job::File { path, kind } => {
                let sha256 = hash(path).await?;
                self.import_file(path, *kind, sha256, None, progress)
                    .await
                    .map(|report| vec![report])
            }
            Job::Delivery { header } => self.import_delivery(header, progress).await,
        };
        if let Some(metrics) = &self.metrics {
            match &result {
                Ok(reports) => {
                    for report in reports {
                        match report.outcome {
                            FileOutcome::Imported => {
                                metrics.file_imported(report.kind.label(), "imported")
                            }
                            FileOutcome::AlreadyImported => {
                                metrics.file_imported(report.kind.label(), "skipped")
                            }
                            FileOutcome::Checked => {}
                        }
                    }
                }
                Err(_) if !self.dry_run => {
                    for kind in job_kinds(job) {
                        metrics.file_imported(kind.label(), "failed");
                    }
                }
                Err(_) => {}
            }
        }
        result
    }

    async fn import_delivery(
        &self,
        header: &Path,
        progress: &dyn Progress,
    ) -> anyhow::Result<Vec<FileReport>> {
        let manifest = read_manifest(header)?;
        let header_name = file_name(header);
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for listed in &manifest.file_header.files {
            let mut path = header.with_file_name(&listed.name);
            // In an inbox, a file imported on its own before its manifest came is in `imported/`.
            let moved = header
                .with_file_name(super::inbox::IMPORTED)
                .join(&listed.name);
            if !path.is_file() && moved.is_file() {
                path = moved;
            }
            let Some(Named::Data(kind)) = classify(&listed.name) else {
                problems.push(format!("{} is not a delivery file name", listed.name));
                continue;
            };
            if !path.is_file() {
                problems.push(format!("{} is missing", listed.name));
                continue;
            }
            let sha256 = hash(&path).await?;
            if !sha256.eq_ignore_ascii_case(listed.hash.trim()) {
                problems.push(format!(
                    "{} has SHA-256 {sha256}, the manifest says {}",
                    listed.name, listed.hash
                ));
                continue;
            }
            files.push((path, kind, sha256));
        }
        if problems.is_empty() {
            let mut finished = true;
            for (path, _, sha256) in &files {
                finished &= self
                    .journal
                    .imported_file(&file_name(path), sha256)
                    .await?
                    .is_some_and(|file| file.finished_at_ms.is_some());
            }
            // A delivery imported before was counted then; a count now would only re-read it.
            if !finished || self.dry_run {
                let mut total = 0;
                for (path, kind, _) in &files {
                    if *kind != FileKind::Exceptions {
                        let path = path.clone();
                        total += tokio::task::spawn_blocking(move || read::count_records(&path))
                            .await??;
                    }
                }
                if total != manifest.file_header.total_record_count {
                    problems.push(format!(
                        "the files hold {total} records, the manifest's totalRecordCount is {}",
                        manifest.file_header.total_record_count
                    ));
                }
            }
        }
        if !problems.is_empty() {
            anyhow::bail!(
                "{header_name}: delivery refused, nothing imported: {}",
                problems.join("; ")
            );
        }
        let manifest_time = manifest.file_header.file_time_stamp.clone();
        let mut reports = Vec::new();
        for (path, kind, sha256) in files {
            let seed_time = name_time(&file_name(&path)).or_else(|| manifest_time.clone());
            reports.push(
                self.import_file(&path, kind, sha256, seed_time, progress)
                    .await?,
            );
        }
        Ok(reports)
    }

    /// Imports one file whose SHA-256 is known (skipped when the journal has it finished,
    /// resumed after its committed lines when it has it begun).
    async fn import_file(
        &self,
        path: &Path,
        kind: FileKind,
        sha256: String,
        seed_time: Option<String>,
        progress: &dyn Progress,
    ) -> anyhow::Result<FileReport> {
        let name = file_name(path);
        let started = Instant::now();
        let known = self.journal.imported_file(&name, &sha256).await?;
        let mut report = FileReport {
            name: name.clone(),
            kind,
            outcome: if self.dry_run {
                FileOutcome::Checked
            } else {
                FileOutcome::Imported
            },
            sha256: sha256.clone(),
            records: 0,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            exceptions: 0,
            resumed_after: 0,
            seconds: 0.0,
        };
        if let Some(file) = &known
            && file.finished_at_ms.is_some()
        {
            report.outcome = FileOutcome::AlreadyImported;
            report.accepted = file.accepted;
            report.duplicates = file.duplicates;
            report.rejected = file.rejected;
            return Ok(report);
        }
        let mut record = match known {
            Some(file) if !self.dry_run => file,
            _ => ImportedFile {
                name: name.clone(),
                sha256: sha256.clone(),
                kind: kind.label().to_string(),
                lines_committed: 0,
                accepted: 0,
                duplicates: 0,
                rejected: 0,
                started_at_ms: now_ms(),
                finished_at_ms: None,
            },
        };
        report.resumed_after = record.lines_committed;
        let base = (record.accepted, record.duplicates, record.rejected);
        let seed_time = seed_time.or_else(|| name_time(&name));

        let (sender, mut chunks) = mpsc::channel(CHUNKS_AHEAD);
        let reader = {
            let path = path.to_path_buf();
            let name = name.clone();
            let resume_after = record.lines_committed;
            let chunk_lines = self.chunk_lines.max(1) as u64;
            tokio::task::spawn_blocking(move || {
                read_chunks(
                    &path,
                    &name,
                    kind,
                    seed_time.as_deref(),
                    resume_after,
                    chunk_lines,
                    &sender,
                )
            })
        };
        progress.begin(&name);
        let webhook_prefix = format!("file:{name}:{}", &sha256[..sha256.len().min(16)]);
        let journaled = async {
            while let Some(chunk) = chunks.recv().await {
                let chunk: Chunk = chunk;
                report.records += chunk.records;
                match chunk.body {
                    Body::Items(items) => {
                        self.journal_items(
                            &mut report,
                            format!("{webhook_prefix}:{}", chunk.first_line),
                            items,
                        )
                        .await?
                    }
                    Body::Exceptions {
                        exceptions,
                        malformed,
                    } => {
                        report.rejected += malformed;
                        report.exceptions += exceptions.len() as u64;
                        if !self.dry_run {
                            record.lines_committed = chunk.last_line;
                            tally(&mut record, base, &report);
                            let count = exceptions.len() as u64;
                            self.journal
                                .record_imported_file(record.clone(), exceptions)
                                .await?;
                            if let Some(metrics) = &self.metrics {
                                metrics.exceptions_recorded(count);
                            }
                        }
                    }
                }
                if !self.dry_run && kind != FileKind::Exceptions {
                    record.lines_committed = chunk.last_line;
                    tally(&mut record, base, &report);
                    self.journal
                        .record_imported_file(record.clone(), Vec::new())
                        .await?;
                }
                progress.advance(chunk.position, chunk.size, report.records);
            }
            anyhow::Ok(())
        }
        .await;
        // The reader stops at its next chunk once the receiver is gone.
        drop(chunks);
        let read = reader.await.context("the file reader stopped")?;
        progress.end();
        journaled?;
        let last_line = read?;
        report.seconds = started.elapsed().as_secs_f64();
        if !self.dry_run {
            record.lines_committed = record.lines_committed.max(last_line);
            tally(&mut record, base, &report);
            record.finished_at_ms = Some(now_ms());
            self.journal
                .record_imported_file(record, Vec::new())
                .await?;
        }
        Ok(report)
    }

    async fn journal_items(
        &self,
        report: &mut FileReport,
        webhook_id: String,
        items: Vec<IncomingItem>,
    ) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for item in &items {
                match item {
                    IncomingItem::Valid(_) => report.accepted += 1,
                    IncomingItem::Rejected(_) => report.rejected += 1,
                }
            }
            return Ok(());
        }
        let kinds: Vec<_> = match &self.metrics {
            Some(_) => items
                .iter()
                .map(|item| match item {
                    IncomingItem::Valid(valid) => (Some(valid.notification_type), None),
                    IncomingItem::Rejected(rejected) => {
                        (rejected.notification_type, Some(rejected.rejection.reason))
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let outcome = self
            .journal
            .append(Delivery {
                webhook_id,
                received_at: Utc::now(),
                items,
                checkpoint: None,
            })
            .await?;
        let accepted = outcome.accepted() as u64;
        report.accepted += accepted;
        report.duplicates += outcome.duplicates() as u64;
        report.rejected += outcome
            .items
            .iter()
            .filter(|fate| matches!(fate, ItemFate::Rejected))
            .count() as u64;
        if accepted > 0
            && let Some(doorbell) = &self.doorbell
        {
            doorbell.ring();
        }
        if let Some(metrics) = &self.metrics {
            if !outcome.redelivery {
                for ((kind, rejected), fate) in kinds.iter().zip(&outcome.items) {
                    match (fate, rejected) {
                        (ItemFate::Accepted(_), _) => metrics.received(*kind),
                        (ItemFate::Rejected, Some(reason)) => {
                            metrics.received(*kind);
                            metrics.webhook_rejected(reason.as_str());
                        }
                        _ => {}
                    }
                }
            }
            metrics.duplicates(outcome.duplicates());
        }
        Ok(())
    }
}

/// Sets the record's counts: what earlier runs committed (`base`) plus this run's.
fn tally(record: &mut ImportedFile, base: (u64, u64, u64), report: &FileReport) {
    record.accepted = base.0 + report.accepted;
    record.duplicates = base.1 + report.duplicates;
    record.rejected = base.2 + report.rejected;
}

/// The data file kinds a job covers (for the `failed` count).
fn job_kinds(job: &Job) -> Vec<FileKind> {
    match job {
        Job::File { kind, .. } => vec![*kind],
        Job::Delivery { header } => read_manifest(header)
            .map(|manifest| {
                manifest
                    .file_header
                    .files
                    .iter()
                    .filter_map(|file| match classify(&file.name) {
                        Some(Named::Data(kind)) => Some(kind),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_else(|_| vec![FileKind::Notification]),
    }
}

async fn hash(path: &Path) -> anyhow::Result<String> {
    let path: PathBuf = path.to_path_buf();
    tokio::task::spawn_blocking(move || read::sha256_file(&path)).await?
}

/// A run of lines, parsed.
struct Chunk {
    first_line: u64,
    last_line: u64,
    records: u64,
    position: u64,
    size: u64,
    body: Body,
}

enum Body {
    Items(Vec<IncomingItem>),
    Exceptions {
        exceptions: Vec<DnbException>,
        malformed: u64,
    },
}

impl Body {
    fn new(kind: FileKind, capacity: usize) -> Self {
        match kind {
            FileKind::Exceptions => Self::Exceptions {
                exceptions: Vec::new(),
                malformed: 0,
            },
            _ => Self::Items(Vec::with_capacity(capacity)),
        }
    }
}

/// Streams the file after line `resume_after`, sending a chunk at every multiple of
/// `chunk_lines` (so chunks start at the same lines in every run) and one for the rest.
/// Returns the number of the last line.
fn read_chunks(
    path: &Path,
    name: &str,
    kind: FileKind,
    seed_time: Option<&str>,
    resume_after: u64,
    chunk_lines: u64,
    sender: &mpsc::Sender<Chunk>,
) -> anyhow::Result<u64> {
    with_text(path, |mut text| {
        let size = text.size;
        let capacity = chunk_lines.min(10_000) as usize;
        let mut chunk = Chunk {
            first_line: resume_after + 1,
            last_line: resume_after,
            records: 0,
            position: 0,
            size,
            body: Body::new(kind, capacity),
        };
        let mut last = 0;
        let mut closed = false;
        let seed = (kind == FileKind::Seed).then_some(SeedDefaults {
            delivered_at: seed_time,
        });
        for_each_line(text.reader.as_mut(), |number, line, position| {
            last = number;
            if number <= resume_after {
                return Ok(true);
            }
            chunk.last_line = number;
            chunk.position = position;
            if !is_blank(line) {
                match &mut chunk.body {
                    Body::Items(items) => {
                        let mut item = parse_line(line, seed);
                        if let IncomingItem::Rejected(rejected) = &mut item {
                            rejected.rejection.detail =
                                format!("{name} line {number}: {}", rejected.rejection.detail);
                        }
                        items.push(item);
                        chunk.records += 1;
                    }
                    Body::Exceptions {
                        exceptions,
                        malformed,
                    } => {
                        let text = String::from_utf8_lossy(line);
                        let header = number == 1
                            && text
                                .get(..4)
                                .is_some_and(|start| start.eq_ignore_ascii_case("DUNS"));
                        if !header {
                            chunk.records += 1;
                            match parse_exception(&text) {
                                Some((duns, code, information)) => exceptions.push(DnbException {
                                    id: 0,
                                    file_name: name.to_string(),
                                    line: number,
                                    duns,
                                    code,
                                    information,
                                    recorded_at_ms: 0,
                                }),
                                None => {
                                    tracing::warn!(
                                        file = name,
                                        line = number,
                                        "malformed EXCEPTIONS line"
                                    );
                                    *malformed += 1;
                                }
                            }
                        }
                    }
                }
            }
            if number % chunk_lines == 0 {
                let next = Chunk {
                    first_line: number + 1,
                    last_line: number,
                    records: 0,
                    position,
                    size,
                    body: Body::new(kind, capacity),
                };
                let full = std::mem::replace(&mut chunk, next);
                if sender.blocking_send(full).is_err() {
                    closed = true;
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        if !closed && chunk.last_line >= chunk.first_line {
            let _ = sender.blocking_send(chunk);
        }
        Ok(last)
    })
}

/// `DUNS\tCode\tInformation`; the DUNS must be there, the rest may be empty.
fn parse_exception(line: &str) -> Option<(String, String, String)> {
    let mut fields = line.splitn(3, '\t');
    let duns = fields.next()?.trim();
    if duns.is_empty() || !duns.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let code = fields.next()?.trim().to_string();
    let information = fields.next().unwrap_or_default().trim().to_string();
    Some((duns.to_string(), code, information))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_lines() {
        assert_eq!(
            parse_exception("081466849\t10001\tDUNS not found"),
            Some((
                "081466849".to_string(),
                "10001".to_string(),
                "DUNS not found".to_string()
            ))
        );
        assert_eq!(parse_exception("not a line"), None);
        assert_eq!(parse_exception("081466849"), None);
    }
}
