//! D&B delivery files: NOTIFICATION and SEEDFILE files (`.zip` holding one `.txt` of the same
//! base name, or that `.txt`/NDJSON itself), their `..._HEADER.json` manifest, and EXCEPTIONS
//! files (DUNS that D&B could not monitor).
//!
//! [`import`] journals them through the same path as a webhook delivery: each chunk of lines
//! is one [`crate::journal::Delivery`] with a stable `webhook-id`, so a chunk imported twice is
//! a redelivery and every notification is deduplicated by its content. The journal records
//! each file by name and SHA-256 with its committed lines, so a finished file is skipped and an
//! interrupted one resumes after its last committed chunk.

pub mod import;
pub mod inbox;

pub mod read;
pub mod sftp;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDateTime;
use serde::Deserialize;

pub use import::{FileOutcome, FileReport, Importer, Progress, Silent};

/// What a delivery file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// NDJSON notifications, each with its `type`.
    Notification,
    /// NDJSON full records without `type`: SEED notifications.
    Seed,
    /// Tab-separated `DUNS\tCode\tInformation` lines with a header row.
    Exceptions,
}

impl FileKind {
    /// The `kind` label and the word the journal records.
    pub fn label(self) -> &'static str {
        match self {
            Self::Notification => "notification",
            Self::Seed => "seed",
            Self::Exceptions => "exceptions",
        }
    }
}

/// What a file name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A data file of this kind.
    Data(FileKind),
    /// A `..._HEADER.json` manifest.
    Header,
}

/// Reads a file name: `..._HEADER.json` is a manifest; `.zip`, `.txt`, `.ndjson` and `.jsonl`
/// files are EXCEPTIONS or SEEDFILE when their name says so, else NOTIFICATION; anything else
/// (and `.part` files still being written) is not a delivery file.
pub fn classify(name: &str) -> Option<Named> {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with('.') || upper.ends_with(".PART") {
        return None;
    }
    if upper.ends_with("_HEADER.JSON") {
        return Some(Named::Header);
    }
    let stem = [".ZIP", ".TXT", ".NDJSON", ".JSONL"]
        .iter()
        .find_map(|extension| upper.strip_suffix(extension))?;
    Some(Named::Data(if stem.contains("_EXCEPTIONS") {
        FileKind::Exceptions
    } else if stem.contains("_SEEDFILE") || stem.contains("_SEED_") || stem.ends_with("_SEED") {
        FileKind::Seed
    } else {
        FileKind::Notification
    }))
}

/// The time in a D&B file name (`REF_YYYYMMDDHHMMSS_...`), as RFC 3339.
pub fn name_time(name: &str) -> Option<String> {
    name.split(['_', '.'])
        .filter(|part| part.len() == 14 && part.bytes().all(|byte| byte.is_ascii_digit()))
        .find_map(|part| NaiveDateTime::parse_from_str(part, "%Y%m%d%H%M%S").ok())
        .map(|time| time.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The name of a path (its last component).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A `..._HEADER.json` manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// The header proper.
    #[serde(rename = "fileHeader")]
    pub file_header: FileHeader,
}

/// `fileHeader` of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileHeader {
    /// D&B's header type.
    #[serde(default)]
    pub header_type: Option<String>,
    /// The registration reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// Records in all the listed files together.
    pub total_record_count: u64,
    /// When D&B wrote the delivery.
    #[serde(default)]
    pub file_time_stamp: Option<String>,
    /// The delivery's files.
    pub files: Vec<ManifestFile>,
}

/// One file a manifest lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ManifestFile {
    /// Its name, beside the manifest.
    pub name: String,
    /// Hex SHA-256 of the file.
    pub hash: String,
}

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a D&B manifest ({{\"fileHeader\": {{\"totalRecordCount\", \"files\": [{{\"name\", \"hash\"}}]}}}})",
            path.display()
        )
    })
}

/// One thing to import: a file on its own, or the delivery a manifest describes.
#[derive(Debug, Clone)]
pub enum Job {
    /// A data file no manifest lists.
    File {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: FileKind,
    },
    /// A manifest and the files it lists (resolved beside it), imported all or nothing.
    Delivery {
        /// The manifest.
        header: PathBuf,
    },
}

impl Job {
    /// The path that names the job in reports.
    pub fn path(&self) -> &Path {
        match self {
            Self::File { path, .. } => path,
            Self::Delivery { header } => header,
        }
    }
}

/// Delivery files in a folder, in name order (sub-folders, hidden and `.part` files left out).
pub fn list_folder(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in
        std::fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() && classify(&file_name(&entry.path())).is_some() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Turns the paths given (files and folders) into jobs: every manifest among them or beside
/// a given file takes the files it lists; the other data files are jobs of their own.
pub fn plan(paths: &[PathBuf]) -> anyhow::Result<Vec<Job>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(list_folder(path)?);
        } else if path.is_file() {
            anyhow::ensure!(
                classify(&file_name(path)).is_some(),
                "{}: not a D&B delivery file (expected .zip, .txt, .ndjson or _HEADER.json)",
                path.display()
            );
            files.push(path.clone());
        } else {
            anyhow::bail!("{}: no such file or folder", path.display());
        }
    }
    // Manifests beside the files given, too: a file a manifest lists is imported with its delivery.
    let mut headers: Vec<PathBuf> = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for file in &files {
        let folder = match file.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if folders.contains(&folder) {
            continue;
        }
        let beside = list_folder(&folder)?;
        folders.push(folder);
        for candidate in beside {
            if classify(&file_name(&candidate)) == Some(Named::Header)
                && !headers.iter().any(|known| same_file(known, &candidate))
            {
                headers.push(candidate);
            }
        }
    }
    let mut listed: Vec<PathBuf> = Vec::new();
    let mut jobs = Vec::new();
    for header in &headers {
        let given = files.iter().any(|file| same_file(file, header));
        let manifest = read_manifest(header);
        let names: Vec<PathBuf> = match &manifest {
            Ok(manifest) => manifest
                .file_header
                .files
                .iter()
                .map(|file| header.with_file_name(&file.name))
                .collect(),
            Err(_) => Vec::new(),
        };
        let claims = files
            .iter()
            .any(|file| names.iter().any(|name| same_file(file, name)));
        if given || claims {
            listed.extend(names);
            jobs.push(Job::Delivery {
                header: header.clone(),
            });
        }
    }
    for file in files {
        if listed.iter().any(|name| same_file(name, &file)) {
            continue;
        }
        if let Some(Named::Data(kind)) = classify(&file_name(&file))
            && !jobs.iter().any(|job| same_file(job.path(), &file))
        {
            jobs.push(Job::File { path: file, kind });
        }
    }
    Ok(jobs)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_what_a_file_holds() {
        let data = |kind| Some(Named::Data(kind));
        assert_eq!(
            classify("REF_20240513080000_NOTIFICATION_1.zip"),
            data(FileKind::Notification)
        );
        assert_eq!(
            classify("REF_20240513080000_SEEDFILE_2.txt"),
            data(FileKind::Seed)
        );
        assert_eq!(
            classify("REF_20240513080000_EXCEPTIONS_1.txt"),
            data(FileKind::Exceptions)
        );
        assert_eq!(
            classify("REF_20170208124948_SEED_HEADER.json"),
            Some(Named::Header)
        );
        assert_eq!(classify("sample.ndjson"), data(FileKind::Notification));
        assert_eq!(classify("REF_NOTIFICATION_1.zip.part"), None);
        assert_eq!(classify("notes.md"), None);
    }

    #[test]
    fn the_time_in_a_name() {
        assert_eq!(
            name_time("REF_20240513080000_SEEDFILE_1.zip").as_deref(),
            Some("2024-05-13T08:00:00Z")
        );
        assert_eq!(name_time("seed.txt"), None);
    }
}
