//! The real `vna` binary: where it is, running its subcommands, and a `vna serve` child
//! process that is ready once it prints its readiness line and is killed when dropped.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Instant;

/// `$VNA_BIN`, else `vna` next to the test executable's `deps/` directory
/// (`target/debug/deps/cli-… → target/debug/vna`).
pub fn vna_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VNA_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "VNA_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("locating the test executable");
    let mut dir = exe.parent().expect("test executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("vna{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the vna binary is not at {}: run `cargo build --bins` first (scripts/test.sh does), or set VNA_BIN",
        bin.display()
    );
    bin
}

/// A `vna` command with a clean environment as far as vna is concerned: no inherited
/// `VNA_CONFIG` or `VNA__…` overrides, quiet logs.
pub fn vna() -> Command {
    let mut cmd = Command::new(vna_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("VNA_") && k != "VNA_BIN" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `vna ARGS…` with extra environment variables and returns its output.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = vna();
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("running vna {args:?}: {e}"))
}

/// Output as text, for assertions and failure messages.
pub fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A running `vna serve`.
pub struct Server {
    child: Option<Child>,
    /// DICOMweb root URL.
    pub base: String,
    /// Scheme and authority, e.g. `http://127.0.0.1:41234`.
    pub origin: String,
    /// The DIMSE listener, e.g. `127.0.0.1:41235` (AE title `VNA`).
    pub dimse: String,
    /// The server's stderr (its log).
    pub log: PathBuf,
}

impl Server {
    /// Starts `vna serve --data-dir DATA --http-listen 127.0.0.1:0 --dimse-listen 127.0.0.1:0`
    /// and waits for its
    /// readiness line. The log goes to `DATA/../serve-<n>.log`.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let log = data_dir.with_extension(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("creating the server log");
        let mut cmd = vna();
        cmd.args(["serve", "--http-listen", "127.0.0.1:0", "--dimse-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd.spawn().expect("starting vna serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Reads every line (so the pipe never fills) and forwards them.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + crate::DEADLINE;
        let mut server = Server { child: Some(child), base: String::new(), origin: String::new(), dimse: String::new(), log };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("vna ready: http=") {
                        let mut fields = rest.split_whitespace();
                        server.origin = fields.next().unwrap_or_default().to_owned();
                        server.dimse = fields.find_map(|f| f.strip_prefix("dimse=")).unwrap_or_default().to_owned();
                        server.base = format!("{}/dicom-web", server.origin);
                        // Keep draining stdout in the background.
                        std::thread::spawn(move || while rx.recv().is_ok() {});
                        return server;
                    }
                }
                Err(_) => panic!("vna serve did not become ready; its log:\n{}", server.log_text()),
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server child");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + crate::DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for vna serve") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vna serve did not exit within {:?} of SIGTERM; its log:\n{}", crate::DEADLINE, self.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
