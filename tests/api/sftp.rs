//! The SFTP fetch against a real OpenSSH server on loopback: a throwaway `sshd` (Debian's
//! `openssh-server`) runs in the foreground with its own config, host key, user key and
//! `authorized_keys` in a temporary folder, and is killed when the test ends.
//!
//! Without `/usr/sbin/sshd` the tests print a skip notice and pass, except under `CI=true`,
//! where they fail (`.ci/run` installs `openssh-server` when it is missing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnb_hubspot_bridge::config::DnbSftpSettings;
use dnb_hubspot_bridge::files::sftp::Fetcher;

use crate::files::{notification_lines, write_zip};
use crate::helpers::*;

const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd` that serves SFTP for the current user on a free loopback port.
struct SshServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    user: String,
}

impl SshServer {
    /// Starts one, or `None` (with a notice) when sshd is not installed outside CI.
    fn start(test: &str) -> Option<Self> {
        if !Path::new(SSHD).is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {SSHD} is missing (required under CI=true; install Debian's openssh-server)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: {SSHD} is not installed (apt-get install openssh-server)"
            );
            return None;
        }
        let user = run_text(Command::new("id").arg("-un"));
        let root = run_text(Command::new("id").arg("-u")) == "0";
        if root {
            // Run as root, sshd needs its privilege-separation folder, which Debian's service
            // creates at boot (an empty folder under /run).
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        keygen(&path.join("host_key"));
        keygen(&path.join("user_key"));
        std::fs::copy(path.join("user_key.pub"), path.join("authorized_keys")).unwrap();
        std::fs::create_dir(path.join("remote")).unwrap();
        // The free port may be taken before sshd binds it: a server that exits is started
        // again on another port.
        for attempt in 1.. {
            let port = free_port();
            std::fs::write(
                path.join("sshd_config"),
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {dir}/host_key\n\
                     PidFile {dir}/sshd.pid\n\
                     AuthorizedKeysFile {dir}/authorized_keys\n\
                     StrictModes no\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     UsePAM no\n\
                     PermitRootLogin prohibit-password\n\
                     AllowUsers {user}\n\
                     Subsystem sftp internal-sftp\n",
                    dir = path.display()
                ),
            )
            .unwrap();
            let known_host = std::fs::read_to_string(path.join("host_key.pub")).unwrap();
            std::fs::write(
                path.join("known_hosts"),
                format!("[127.0.0.1]:{port} {}", known_host.trim()),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(path.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(path.join("sshd.log")).unwrap())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(20);
            let exited = loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break false;
                }
                if child.try_wait().unwrap().is_some() {
                    break true;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break true;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if !exited {
                return Some(Self {
                    child,
                    dir,
                    port,
                    user,
                });
            }
            let log = std::fs::read_to_string(path.join("sshd.log")).unwrap_or_default();
            assert!(
                attempt < 3,
                "sshd did not listen on 127.0.0.1:{port}: {log}"
            );
        }
        unreachable!("the loop returns or fails")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The folder the bridge lists.
    fn remote(&self) -> PathBuf {
        self.path("remote")
    }

    /// `dnb.sftp.*` for this server, fetching into `inbox`'s server-side folder.
    fn settings(&self, delete_after_download: bool) -> DnbSftpSettings {
        DnbSftpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            username: self.user.clone(),
            private_key_path: self.path("user_key").display().to_string(),
            known_hosts_path: self.path("known_hosts").display().to_string(),
            remote_dir: self.remote().display().to_string(),
            interval_secs: 1,
            delete_after_download,
        }
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_text(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(output.status.success(), "{command:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bridge-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_fetches_a_delivery_file_imports_it_and_deletes_it_on_the_server() {
    let Some(server) = SshServer::start("sftp fetch") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let name = "REF_20240513080000_NOTIFICATION_1.zip";
    write_zip(
        &server.remote(),
        "REF_20240513080000_NOTIFICATION_1",
        notification_lines(0, 50),
    );
    // Not a delivery file: never fetched.
    std::fs::write(server.remote().join("README"), "hello").unwrap();

    let sftp = server.settings(true);
    let inbox_setting = inbox.display().to_string();
    let app = spawn_app_with(
        move |settings| {
            settings.dnb.files.inbox = inbox_setting;
            settings.dnb.sftp = sftp;
        },
        Arc::new(dnb_hubspot_bridge::hubspot::DryRunExecutor),
    )
    .await;

    let imported = inbox.join("imported").join(name);
    wait_until("the fetched file to be imported", || imported.is_file()).await;
    app.wait_for_count("SELECT count(*) FROM notifications", 50)
        .await;
    let remote = server.remote().join(name);
    wait_until("the imported file to be deleted on the server", || {
        !remote.exists()
    })
    .await;
    assert!(server.remote().join("README").is_file());
    assert!(!inbox.join("README").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "imported" && name != "failed")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(app.count("SELECT count(*) FROM notifications"), 50);
}

#[tokio::test]
async fn without_delete_a_fetched_file_stays_on_the_server_and_is_fetched_once() {
    let Some(server) = SshServer::start("sftp fetch without delete") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join("imported")).unwrap();
    write_zip(
        &server.remote(),
        "REF_20240513080000_NOTIFICATION_2",
        notification_lines(0, 5),
    );
    let fetcher = Fetcher {
        settings: server.settings(false),
        inbox: inbox.clone(),
    };
    let name = "REF_20240513080000_NOTIFICATION_2.zip";
    let pass = fetcher.fetch().await.expect("a pass");
    assert_eq!(pass.downloaded, [name]);
    assert_eq!(
        std::fs::read(inbox.join(name)).unwrap(),
        std::fs::read(server.remote().join(name)).unwrap()
    );
    // Still waiting in the inbox, then imported: not fetched again, not deleted.
    assert_eq!(fetcher.fetch().await.unwrap(), Default::default());
    std::fs::rename(inbox.join(name), inbox.join("imported").join(name)).unwrap();
    assert_eq!(fetcher.fetch().await.unwrap(), Default::default());
    assert!(server.remote().join(name).is_file());
    // Delivered again under the same name with other content: fetched again.
    std::fs::remove_file(server.remote().join(name)).unwrap();
    write_zip(
        &server.remote(),
        "REF_20240513080000_NOTIFICATION_2",
        notification_lines(100, 9),
    );
    let pass = fetcher.fetch().await.unwrap();
    assert_eq!(pass.downloaded, [name]);
}

#[tokio::test]
async fn an_unknown_or_changed_host_key_is_refused_and_nothing_is_fetched() {
    let Some(server) = SshServer::start("sftp host key") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    write_zip(
        &server.remote(),
        "REF_20240513080000_NOTIFICATION_3",
        notification_lines(0, 5),
    );
    let other_key = dir.path().join("other_key");
    keygen(&other_key);
    let other = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let cases = [
        ("", "is not in"),
        ("[127.0.0.1]:1 ", "is not in"),
        (&*format!("[127.0.0.1]:{} ", server.port), "differs from"),
    ];
    for (prefix, expected) in cases {
        let known_hosts = dir.path().join("known_hosts");
        let line = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}{}", other.trim())
        };
        std::fs::write(&known_hosts, line).unwrap();
        let mut settings = server.settings(true);
        settings.known_hosts_path = known_hosts.display().to_string();
        let fetcher = Fetcher {
            settings,
            inbox: inbox.clone(),
        };
        let error = format!("{:#}", fetcher.fetch().await.unwrap_err());
        assert!(error.contains("refused"), "{error}");
        assert!(error.contains(expected), "{prefix:?}: {error}");
        assert!(
            error.contains("SHA256:"),
            "names the key's fingerprint: {error}"
        );
    }
    // A known_hosts file that is not there.
    let mut settings = server.settings(true);
    settings.known_hosts_path = dir.path().join("absent").display().to_string();
    let fetcher = Fetcher {
        settings,
        inbox: inbox.clone(),
    };
    let error = format!("{:#}", fetcher.fetch().await.unwrap_err());
    assert!(error.contains("cannot be read"), "{error}");

    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0);
    assert!(
        server
            .remote()
            .join("REF_20240513080000_NOTIFICATION_3.zip")
            .is_file()
    );
    // The right key is accepted.
    let fetcher = Fetcher {
        settings: server.settings(false),
        inbox: inbox.clone(),
    };
    let pass = fetcher.fetch().await.unwrap();
    assert_eq!(pass.downloaded, ["REF_20240513080000_NOTIFICATION_3.zip"]);
}
