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
    /// The DIMSE listener, e.g. `127.0.0.1:41235` (`None` if the ready line names none).
    pub dimse: Option<String>,
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
                if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                    return Ok::<_, std::io::Error>(Some(parse_ready(rest)));
                }
            }
            Ok(None)
        })
        .await;
        let (url, dimse) = match ready {
            Ok(Ok(Some(addrs))) => addrs,
            Ok(Ok(None)) | Ok(Err(_)) => bail!("the server exited before it was ready; log:\n{}", tail(log)),
            Err(_) => bail!("the server was not ready within {START_TIMEOUT:?}; log:\n{}", tail(log)),
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, pid, url, dimse, log: log.to_owned() })
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

/// The HTTP URL and DIMSE address from what follows `vna ready: http=` (`URL dimse=ADDR`:
/// `http=` first, other listeners after a space).
fn parse_ready(rest: &str) -> (String, Option<String>) {
    let mut words = rest.split_whitespace();
    let url = words.next().unwrap_or_default().to_owned();
    let dimse = words.find_map(|w| w.strip_prefix("dimse=")).map(str::to_owned);
    (url, dimse)
}

/// The last lines of the server's log, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(parse_ready("http://127.0.0.1:1 dimse=127.0.0.1:2"), ("http://127.0.0.1:1".into(), Some("127.0.0.1:2".into())));
        assert_eq!(parse_ready("http://127.0.0.1:1"), ("http://127.0.0.1:1".into(), None));
    }
}
