//! Watching the server process from outside through /proc: resident memory sampled every
//! 100 ms (VmHWM alone is a lifetime peak, so it cannot say what one scenario cost), the
//! lifetime peak, and CPU time (utime + stime) over the run.

use serde::Serialize;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The server's resources over one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// Largest VmRSS seen by sampling during the scenario.
    pub peak_rss_sampled_mb: f64,
    /// VmRSS at the start of the scenario.
    pub rss_start_mb: f64,
    /// VmHWM at the end: the peak over the process's whole life so far.
    pub vm_hwm_mb: f64,
    /// utime + stime consumed during the scenario.
    pub cpu_s: f64,
    pub samples: u64,
}

/// Watches the load generator's own CPU time and, when a PID is given, the server's.
pub struct Monitor {
    client_cpu_start: f64,
    server: Option<ServerMonitor>,
}

impl Monitor {
    pub fn start(server_pid: Option<u32>) -> Monitor {
        Monitor { client_cpu_start: cpu_seconds(std::process::id()).unwrap_or(0.0), server: ServerMonitor::start(server_pid) }
    }

    /// The server's usage (if watched) and the CPU seconds this process spent.
    pub async fn finish(self) -> (Option<ServerUsage>, f64) {
        let server = match self.server {
            Some(m) => Some(m.finish().await),
            None => None,
        };
        let client = cpu_seconds(std::process::id()).map_or(0.0, |c| c - self.client_cpu_start);
        (server, client)
    }
}

/// A running sampler of the server; [`ServerMonitor::finish`] stops it and reports.
struct ServerMonitor {
    pid: u32,
    cpu_start: f64,
    rss_start_kb: u64,
    stop: oneshot::Sender<()>,
    sampler: JoinHandle<(u64, u64)>,
}

impl ServerMonitor {
    /// Starts watching `pid`, or `None` when no PID was given.
    fn start(pid: Option<u32>) -> Option<ServerMonitor> {
        let pid = pid?;
        let (stop, mut stopped) = oneshot::channel();
        let rss_start_kb = status_kb(pid, "VmRSS:").unwrap_or(0);
        let sampler = tokio::spawn(async move {
            let mut peak = rss_start_kb;
            let mut samples = 0u64;
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        // The process may be gone (it crashed): stop sampling, keep the peak.
                        let Some(rss) = status_kb(pid, "VmRSS:") else { break };
                        peak = peak.max(rss);
                        samples += 1;
                    }
                }
            }
            (peak, samples)
        });
        Some(ServerMonitor { pid, cpu_start: cpu_seconds(pid).unwrap_or(0.0), rss_start_kb, stop, sampler })
    }

    async fn finish(self) -> ServerUsage {
        let _ = self.stop.send(());
        let (mut peak, samples) = self.sampler.await.unwrap_or((0, 0));
        if let Some(rss) = status_kb(self.pid, "VmRSS:") {
            peak = peak.max(rss);
        }
        let mb = |kb: u64| kb as f64 / 1024.0;
        ServerUsage {
            pid: self.pid,
            peak_rss_sampled_mb: mb(peak),
            rss_start_mb: mb(self.rss_start_kb),
            vm_hwm_mb: mb(status_kb(self.pid, "VmHWM:").unwrap_or(0)),
            cpu_s: cpu_seconds(self.pid).map(|c| c - self.cpu_start).unwrap_or(0.0),
            samples,
        }
    }
}

/// A `kB` field of /proc/PID/status.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// utime + stime of a process in seconds, from /proc/PID/stat (fields 14 and 15, counted
/// after the parenthesised command name, which may itself hold spaces).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on otherwise).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(status_kb(me, "VmRSS:").unwrap_or(0) > 0);
        assert!(cpu_seconds(me).is_some());
    }
}
