//! Starting and stopping the archive under test: `vna serve` on a loopback port chosen by the
//! kernel, readiness read from its `vna ready: http=…` line, its log kept in a file.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const READY_PREFIX: &str = "vna ready: http=";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Server {
    child: Child,
    pub pid: u32,
    /// e.g. `http://127.0.0.1:41234`
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    pub async fn start(bin: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<Server> {
        if !bin.is_file() {
            bail!("vna binary not found at {} (build it with `cargo build -p vna`)", bin.display());
        }
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-listen")
            .arg("127.0.0.1:0")
            .arg("--dimse-listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix(READY_PREFIX) {
                    // `http=URL` comes first; other listeners follow after a space.
                    return Ok::<_, std::io::Error>(Some(url.split_whitespace().next().unwrap_or_default().to_owned()));
                }
            }
            Ok(None)
        })
        .await;
        let url = match ready {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) | Ok(Err(_)) => bail!("the server exited before it was ready; log:\n{}", tail(log)),
            Err(_) => bail!("the server was not ready within {START_TIMEOUT:?}; log:\n{}", tail(log)),
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, pid, url, log: log.to_owned() })
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it is still running after a deadline.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status().await;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    eprintln!("vna-loadtest: the server exited with {status}; log in {}", self.log.display());
                }
            }
            Err(_) => {
                eprintln!("vna-loadtest: the server did not stop within {STOP_TIMEOUT:?}; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The last lines of the server's log, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
