//! The inbox `serve` watches (`dnb.files.inbox`): delivery files that appear there are
//! imported, then moved to `imported/`, or to `failed/` with a `.error` file beside them.
//!
//! A file is read only once it has stopped growing: its size and modification time must be
//! the same at two looks one poll apart, and `.part` names (uploads in progress) are never
//! read. A manifest waits until every file it lists is there and still, for at most
//! [`MANIFEST_WAIT`]; then its delivery is imported (or refused, saying which file is missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::import::{Importer, Silent};
use super::{Job, file_name, list_folder, plan, read_manifest};
use crate::journal::JournalError;

/// Time between two looks at the inbox.
pub const POLL: Duration = Duration::from_secs(1);
/// How long a manifest waits for the files it lists.
pub const MANIFEST_WAIT: Duration = Duration::from_secs(3600);
/// Where imported files go, inside the inbox.
pub const IMPORTED: &str = "imported";
/// Where refused files go, inside the inbox, each with a `.error` file.
pub const FAILED: &str = "failed";

/// Starts watching `folder` until `shutdown`; an import in progress at shutdown stops after
/// its current chunk and resumes at the next start.
pub fn start(folder: PathBuf, importer: Importer, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        for sub in [IMPORTED, FAILED] {
            if let Err(error) = std::fs::create_dir_all(folder.join(sub)) {
                tracing::error!(folder = %folder.display(), error = %error, "cannot prepare the inbox");
            }
        }
        tracing::info!(folder = %folder.display(), "watching the delivery-file inbox");
        let mut inbox = Inbox {
            folder,
            importer,
            seen: HashMap::new(),
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = inbox.look() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::info!("inbox stopped");
    })
}

struct Inbox {
    folder: PathBuf,
    importer: Importer,
    /// Size and modification time of each file at the last look.
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl Inbox {
    async fn look(&mut self) {
        let paths = match list_folder(&self.folder) {
            Ok(paths) => paths,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot list the inbox");
                return;
            }
        };
        let mut still = Vec::new();
        let mut seen = HashMap::new();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let look = (meta.len(), meta.modified().ok());
            if self.seen.get(&path) == Some(&look) {
                still.push(path.clone());
            }
            seen.insert(path, look);
        }
        self.seen = seen;
        if still.is_empty() {
            return;
        }
        let jobs = match plan(&still) {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot plan the inbox's files");
                return;
            }
        };
        for job in jobs {
            let files = match self.ready(&job, &still) {
                Some(files) => files,
                None => continue,
            };
            match self.importer.run(&job, &Silent).await {
                Ok(reports) => {
                    for report in &reports {
                        tracing::info!(summary = %report.summary(), "delivery file imported");
                    }
                    self.move_all(&files, IMPORTED, None);
                }
                Err(error) if is_journal_error(&error) => {
                    // Not the file's fault: it stays for the next look.
                    tracing::error!(file = %job.path().display(), error = %format!("{error:#}"), "import failed; will try again");
                }
                Err(error) => {
                    let message = format!("{error:#}");
                    tracing::error!(file = %job.path().display(), error = %message, "delivery file refused");
                    self.move_all(&files, FAILED, Some(&message));
                }
            }
            for file in &files {
                self.seen.remove(file);
            }
        }
    }

    /// The files a job moves once done, when it may run now: a manifest's delivery waits until
    /// every listed file is here and still (or until [`MANIFEST_WAIT`] has passed).
    fn ready(&self, job: &Job, still: &[PathBuf]) -> Option<Vec<PathBuf>> {
        match job {
            Job::File { path, .. } => Some(vec![path.clone()]),
            Job::Delivery { header } => {
                let listed: Vec<PathBuf> = read_manifest(header)
                    .map(|manifest| {
                        manifest
                            .file_header
                            .files
                            .iter()
                            .map(|file| header.with_file_name(&file.name))
                            .collect()
                    })
                    .unwrap_or_default();
                // A listed file imported on its own before the manifest arrived is in `imported/`.
                let waiting = listed.iter().any(|file| {
                    !still.contains(file)
                        && !self.folder.join(IMPORTED).join(file_name(file)).is_file()
                });
                let age = std::fs::metadata(header)
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .unwrap_or_default();
                if waiting && age < MANIFEST_WAIT {
                    return None;
                }
                let mut files = vec![header.clone()];
                files.extend(listed.into_iter().filter(|file| file.is_file()));
                Some(files)
            }
        }
    }

    fn move_all(&self, files: &[PathBuf], to: &str, error: Option<&str>) {
        for file in files {
            let target = free_name(&self.folder.join(to), &file_name(file));
            if let Err(problem) = std::fs::rename(file, &target) {
                tracing::error!(file = %file.display(), error = %problem, "cannot move a delivery file out of the inbox");
                continue;
            }
            if let Some(error) = error {
                let mut note = target.clone().into_os_string();
                note.push(".error");
                if let Err(problem) = std::fs::write(&note, format!("{error}\n")) {
                    tracing::error!(file = %target.display(), error = %problem, "cannot write the .error file");
                }
            }
        }
    }
}

/// `folder/name`, or `folder/name.N` for the first N free when a file of that name is there.
fn free_name(folder: &Path, name: &str) -> PathBuf {
    let target = folder.join(name);
    if !target.exists() {
        return target;
    }
    (1..)
        .map(|n| folder.join(format!("{name}.{n}")))
        .find(|candidate| !candidate.exists())
        .expect("some name is free")
}

fn is_journal_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<JournalError>().is_some())
}
