//! The SFTP fetch `serve` runs when `dnb.sftp.host` is set: every `dnb.sftp.interval_secs` it
//! lists `dnb.sftp.remote_dir` on D&B's server and downloads each delivery file it has not
//! fetched yet into the inbox (`dnb.files.inbox`), which imports it.
//!
//! - A download is written as `NAME.part` (which the inbox never reads), flushed to disk,
//!   checked against the size the server listed, then renamed to `NAME`.
//! - What was fetched is what the inbox holds: a remote file is not downloaded again while its
//!   name is in the inbox (waiting), or a file of its name and size is in `imported/` or
//!   `failed/`. Emptying those folders makes the next listing fetch the files still on the
//!   server again; the import skips a file it already journaled (same name and SHA-256), so
//!   nothing is duplicated.
//! - With `dnb.sftp.delete_after_download`, a remote file is deleted once a file of its name
//!   and size is in `imported/`, that is once its import committed; a refused file (in `failed/`) stays on
//!   the server.
//! - The server's host key must be listed for `host` (or `[host]:port`) in
//!   `dnb.sftp.known_hosts_path`; an unknown or different key is refused, never trusted.
//!   Login is by the private key at `dnb.sftp.private_key_path`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::inbox::{FAILED, IMPORTED};
use crate::config::DnbSftpSettings;

/// How long connecting, the key exchange and the login may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A session with no traffic for this long is dropped.
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(120);
/// Read buffer of a download.
const READ_BUFFER: usize = 256 * 1024;

/// Starts fetching from the server `settings` name into `inbox` until `shutdown`; a download
/// cut short leaves a `.part` file that the next one overwrites.
pub fn start(
    settings: DnbSftpSettings,
    inbox: PathBuf,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_secs(settings.interval_secs.max(1));
        tracing::info!(
            host = %settings.host,
            port = settings.port,
            remote_dir = %settings.remote_dir,
            "fetching delivery files over SFTP"
        );
        let fetcher = Fetcher { settings, inbox };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                outcome = fetcher.fetch() => {
                    if let Err(error) = outcome {
                        tracing::error!(host = %fetcher.settings.host, error = %format!("{error:#}"), "SFTP fetch failed; will try again");
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("SFTP fetch stopped");
    })
}

/// What one pass over the remote folder did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Files downloaded into the inbox.
    pub downloaded: Vec<String>,
    /// Remote files deleted after their import committed.
    pub deleted: Vec<String>,
}

/// One server and the inbox its files go to.
pub struct Fetcher {
    /// `dnb.sftp.*`.
    pub settings: DnbSftpSettings,
    /// `dnb.files.inbox`.
    pub inbox: PathBuf,
}

impl Fetcher {
    /// Connects, lists the remote folder, downloads what is new and deletes what was imported
    /// (when so configured).
    pub async fn fetch(&self) -> anyhow::Result<Pass> {
        let session = self.connect().await?;
        let outcome = self.pass(&session.sftp).await;
        let _ = session.sftp.close().await;
        let _ = session
            .ssh
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        outcome
    }

    async fn pass(&self, sftp: &SftpSession) -> anyhow::Result<Pass> {
        let remote_dir = self.settings.remote_dir.trim_end_matches('/');
        let entries = sftp
            .read_dir(self.settings.remote_dir.clone())
            .await
            .with_context(|| format!("cannot list {}", self.settings.remote_dir))?;
        let mut pass = Pass::default();
        for entry in entries {
            let name = entry.file_name();
            if !entry.file_type().is_file() || !is_plain_name(&name) {
                continue;
            }
            if super::classify(&name).is_none() {
                continue;
            }
            let remote = format!("{remote_dir}/{name}");
            let size = entry.metadata().size;
            if holds(&self.inbox.join(IMPORTED), &name, size) {
                if self.settings.delete_after_download {
                    sftp.remove_file(remote.clone())
                        .await
                        .with_context(|| format!("cannot delete {remote} on the server"))?;
                    tracing::info!(file = %name, "imported delivery file deleted on the SFTP server");
                    pass.deleted.push(name);
                }
                continue;
            }
            if self.inbox.join(&name).exists() || holds(&self.inbox.join(FAILED), &name, size) {
                continue;
            }
            let bytes = self.download(sftp, &remote, &name, size).await?;
            tracing::info!(file = %name, bytes, "delivery file fetched over SFTP");
            pass.downloaded.push(name);
        }
        Ok(pass)
    }

    /// Downloads `remote` to `inbox/NAME.part`, flushes it to disk, checks its size and
    /// renames it to `inbox/NAME`.
    async fn download(
        &self,
        sftp: &SftpSession,
        remote: &str,
        name: &str,
        listed: Option<u64>,
    ) -> anyhow::Result<u64> {
        let part = self.inbox.join(format!("{name}.part"));
        let target = self.inbox.join(name);
        let source = sftp
            .open(remote.to_owned())
            .await
            .with_context(|| format!("cannot open {remote} on the server"))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, source);
        tokio::fs::create_dir_all(&self.inbox)
            .await
            .with_context(|| format!("cannot create the inbox {}", self.inbox.display()))?;
        let mut file = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot create {}", part.display()))?;
        let copied = tokio::io::copy_buf(&mut reader, &mut file)
            .await
            .with_context(|| format!("cannot download {remote}"));
        let copied = match copied {
            Ok(copied) => copied,
            Err(error) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(error);
            }
        };
        file.flush()
            .await
            .with_context(|| format!("cannot write {}", part.display()))?;
        file.sync_all()
            .await
            .with_context(|| format!("cannot flush {}", part.display()))?;
        drop(file);
        let _ = reader.into_inner().shutdown().await;
        if let Some(listed) = listed
            && listed != copied
        {
            let _ = tokio::fs::remove_file(&part).await;
            anyhow::bail!(
                "{remote}: downloaded {copied} bytes where the server listed {listed}; it is fetched again at the next listing"
            );
        }
        tokio::fs::rename(&part, &target)
            .await
            .with_context(|| format!("cannot rename {} to {name}", part.display()))?;
        sync_folder(&self.inbox).await;
        Ok(copied)
    }

    async fn connect(&self) -> anyhow::Result<Connected> {
        let settings = &self.settings;
        let key = russh::keys::load_secret_key(&settings.private_key_path, None)
            .map_err(|error| anyhow::anyhow!("{error}"))
            .with_context(|| {
                format!(
                    "cannot read the private key at {} (dnb.sftp.private_key_path)",
                    settings.private_key_path
                )
            })?;
        let refusal = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            host: settings.host.clone(),
            port: settings.port,
            known_hosts: PathBuf::from(&settings.known_hosts_path),
            refusal: refusal.clone(),
        };
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(INACTIVITY_TIMEOUT),
            ..Default::default()
        });
        let address = (settings.host.clone(), settings.port);
        let login = async {
            let mut ssh = russh::client::connect(config, address, handler)
                .await
                .map_err(|error| match refusal.lock().take() {
                    Some(reason) => anyhow::anyhow!(reason),
                    None => anyhow::anyhow!("{error}"),
                })
                .with_context(|| {
                    format!("cannot connect to {}:{}", settings.host, settings.port)
                })?;
            let hash = ssh.best_supported_rsa_hash().await?.flatten();
            let auth = ssh
                .authenticate_publickey(
                    settings.username.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await?;
            anyhow::ensure!(
                auth.success(),
                "the server refused the login of {} with the key at {}",
                settings.username,
                settings.private_key_path
            );
            let channel = ssh.channel_open_session().await?;
            channel.request_subsystem(true, "sftp").await?;
            let sftp = SftpSession::new(channel.into_stream())
                .await
                .context("cannot start the SFTP subsystem")?;
            anyhow::Ok(Connected { ssh, sftp })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, login)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}:{} did not answer within {CONNECT_TIMEOUT:?}",
                    settings.host,
                    settings.port
                )
            })?
    }
}

struct Connected {
    ssh: russh::client::Handle<HostKeyCheck>,
    sftp: SftpSession,
}

/// Accepts the server only when its host key is listed in the known_hosts file.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    /// Why the key was refused, for the connection's error.
    refusal: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                let fingerprint = key.fingerprint(HashAlg::Sha256);
                let listed = if self.port == 22 {
                    self.host.clone()
                } else {
                    format!("[{}]:{}", self.host, self.port)
                };
                if !self.known_hosts.is_file() {
                    Err(format!(
                        "host key {fingerprint} of {listed} refused: the known_hosts file {} (dnb.sftp.known_hosts_path) cannot be read",
                        self.known_hosts.display()
                    ))
                } else {
                    match russh::keys::check_known_hosts_path(
                        &self.host,
                        self.port,
                        key,
                        &self.known_hosts,
                    ) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(format!(
                            "host key {fingerprint} of {listed} refused: it is not in {} (add the server's published key there)",
                            self.known_hosts.display()
                        )),
                        Err(russh::keys::Error::KeyChanged { line }) => Err(format!(
                            "host key {fingerprint} of {listed} refused: it differs from the one on line {line} of {}",
                            self.known_hosts.display()
                        )),
                        Err(error) => Err(format!(
                            "host key {fingerprint} of {listed} refused: cannot check {}: {error}",
                            self.known_hosts.display()
                        )),
                    }
                }
            }
            PublicKeyOrCertificate::Certificate(_) => Err(format!(
                "{}:{} offered a host certificate; only keys listed in {} are accepted",
                self.host,
                self.port,
                self.known_hosts.display()
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(reason) => {
                *self.refusal.lock() = Some(reason);
                Ok(false)
            }
        }
    }
}

/// Whether `folder` holds a file `name` (or `name.N`, as the inbox names a second file of
/// the same name) of `size` bytes (of any size when the server did not list one): a file
/// the server delivers again under an old name with other content is fetched again.
fn holds(folder: &Path, name: &str, size: Option<u64>) -> bool {
    let matches = |path: &Path| match std::fs::metadata(path) {
        Ok(meta) => meta.is_file() && size.is_none_or(|size| size == meta.len()),
        Err(_) => false,
    };
    let first = folder.join(name);
    if !first.exists() {
        return false;
    }
    if matches(&first) {
        return true;
    }
    (1..)
        .map(|n| folder.join(format!("{name}.{n}")))
        .take_while(|path| path.exists())
        .any(|path| matches(&path))
}

/// A name that stays inside the folder it is listed in.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Flushes a folder's entries (a rename) to disk; best effort.
async fn sync_folder(folder: &Path) {
    let folder = folder.to_owned();
    let _ = tokio::task::spawn_blocking(move || std::fs::File::open(folder)?.sync_all()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_fetched() {
        assert!(is_plain_name("REF_20260101000000_NOTIFICATION_1.zip"));
        for name in ["", ".", "..", "a/b", "..\\x"] {
            assert!(!is_plain_name(name), "{name}");
        }
    }

    #[test]
    fn a_file_is_held_by_name_and_size_including_renamed_copies() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path();
        assert!(!holds(folder, "A.zip", Some(3)));
        std::fs::write(folder.join("A.zip"), "abc").unwrap();
        assert!(holds(folder, "A.zip", Some(3)));
        assert!(holds(folder, "A.zip", None));
        assert!(!holds(folder, "A.zip", Some(5)));
        std::fs::write(folder.join("A.zip.1"), "abcde").unwrap();
        assert!(holds(folder, "A.zip", Some(5)));
        assert!(!holds(folder, "A.zip", Some(7)));
    }
}
