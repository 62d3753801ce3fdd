//! The machine's own limits, measured in the same run so every figure can be read as a
//! fraction of what the hardware allows: SHA-256 on one core, sequential write + fsync,
//! small-file create + write + fsync from 1 and 4 threads, and loopback TCP (bulk MB/s, and
//! small request/response round trips per second with TCP_NODELAY).

use crate::prng::SplitMix64;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// How much each measurement does.
#[derive(Debug, Clone, Copy)]
pub struct MachineSizes {
    pub sha_mb: usize,
    pub write_mb: usize,
    pub files: usize,
    pub file_kb: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineLimits {
    pub nproc: usize,
    pub sha256_one_core_mb_per_s: f64,
    pub sha256_mb: usize,
    pub seq_write_fsync_mb_per_s: f64,
    pub seq_write_mb: usize,
    pub small_files_1_thread_per_s: f64,
    pub small_files_4_threads_per_s: f64,
    pub small_files: usize,
    pub small_file_kb: usize,
    pub loopback_tcp_mb_per_s: f64,
    pub loopback_round_trips_per_s: f64,
    pub dir: String,
}

impl MachineLimits {
    pub fn table(&self) -> String {
        format!(
            "machine ({} cores, files in {}):\n  sha256 one core      {:>9.0} MB/s  ({} MB)\n  seq write + fsync    {:>9.0} MB/s  ({} MB in 1 MB chunks)\n  small files 1 thread {:>9.0} files/s ({} × {} KB, create+write+fsync)\n  small files 4 threads{:>9.0} files/s\n  loopback TCP         {:>9.0} MB/s  (one connection)\n  loopback round trips {:>9.0} /s    (64-byte request and reply, TCP_NODELAY)\n",
            self.nproc,
            self.dir,
            self.sha256_one_core_mb_per_s,
            self.sha256_mb,
            self.seq_write_fsync_mb_per_s,
            self.seq_write_mb,
            self.small_files_1_thread_per_s,
            self.small_files,
            self.small_file_kb,
            self.small_files_4_threads_per_s,
            self.loopback_tcp_mb_per_s,
            self.loopback_round_trips_per_s,
        )
    }
}

/// Runs every measurement in `dir` (which must exist), cleaning up its files. Blocking.
pub fn measure(dir: &Path, sizes: MachineSizes) -> anyhow::Result<MachineLimits> {
    let scratch = tempfile::Builder::new().prefix("machine-").tempdir_in(dir)?;
    let sha = sha256_rate(sizes.sha_mb);
    let write = sequential_write_rate(scratch.path(), sizes.write_mb)?;
    let one = small_file_rate(scratch.path(), sizes.files, sizes.file_kb * 1024, 1)?;
    let four = small_file_rate(scratch.path(), sizes.files, sizes.file_kb * 1024, 4)?;
    let (tcp, trips) = loopback_rates(sizes.sha_mb, 2000)?;
    Ok(MachineLimits {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sha256_one_core_mb_per_s: sha,
        sha256_mb: sizes.sha_mb,
        seq_write_fsync_mb_per_s: write,
        seq_write_mb: sizes.write_mb,
        small_files_1_thread_per_s: one,
        small_files_4_threads_per_s: four,
        small_files: sizes.files,
        small_file_kb: sizes.file_kb,
        loopback_tcp_mb_per_s: tcp,
        loopback_round_trips_per_s: trips,
        dir: dir.display().to_string(),
    })
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    SplitMix64::new(0x5eed).fill(&mut buf);
    buf
}

/// MB/s of SHA-256 over an in-memory buffer on this thread.
fn sha256_rate(mb: usize) -> f64 {
    let buf = random_bytes(mb.max(1) << 20);
    let t = Instant::now();
    let mut h = Sha256::new();
    for chunk in buf.chunks(1 << 20) {
        h.update(chunk);
    }
    std::hint::black_box(h.finalize());
    buf.len() as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// MB/s of writing `mb` MB in 1 MB chunks and fsyncing once at the end.
fn sequential_write_rate(dir: &Path, mb: usize) -> anyhow::Result<f64> {
    let chunk = random_bytes(1 << 20);
    let path = dir.join("sequential");
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..mb.max(1) {
        f.write_all(&chunk)?;
    }
    f.sync_all()?;
    let rate = (mb.max(1) << 20) as f64 / 1e6 / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// Files/s of create + write + fsync of `count` files of `size` bytes from `threads` threads.
fn small_file_rate(dir: &Path, count: usize, size: usize, threads: usize) -> anyhow::Result<f64> {
    let body = random_bytes(size);
    let sub = dir.join(format!("small-{threads}"));
    std::fs::create_dir_all(&sub)?;
    let t = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let (sub, body) = (&sub, &body);
                scope.spawn(move || -> std::io::Result<()> {
                    for i in (w..count).step_by(threads) {
                        let mut f = std::fs::File::create(sub.join(format!("f{i}")))?;
                        f.write_all(body)?;
                        f.sync_all()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a file-writing thread panicked"))??;
        }
        Ok(())
    })?;
    let rate = count as f64 / t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&sub)?;
    Ok(rate)
}

/// Loopback TCP: MB/s of `mb` MB sent over one connection to a reader thread, and round trips
/// per second of `trips` 64-byte request/reply exchanges with TCP_NODELAY on both ends.
fn loopback_rates(mb: usize, trips: usize) -> anyhow::Result<(f64, f64)> {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        // First connection: drain. Second: echo 64-byte messages.
        let (mut bulk, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        while bulk.read(&mut buf)? > 0 {}
        let (mut echo, _) = listener.accept()?;
        echo.set_nodelay(true)?;
        let mut msg = [0u8; 64];
        while echo.read_exact(&mut msg).is_ok() {
            echo.write_all(&msg)?;
        }
        Ok(())
    });
    let chunk = random_bytes(1 << 20);
    let t = Instant::now();
    let mut bulk = TcpStream::connect(addr)?;
    for _ in 0..mb.max(1) {
        bulk.write_all(&chunk)?;
    }
    drop(bulk);
    let tcp = (mb.max(1) << 20) as f64 / 1e6 / t.elapsed().as_secs_f64();
    let mut echo = TcpStream::connect(addr)?;
    echo.set_nodelay(true)?;
    let mut msg = [7u8; 64];
    let t = Instant::now();
    for _ in 0..trips.max(1) {
        echo.write_all(&msg)?;
        echo.read_exact(&mut msg)?;
    }
    let rate = trips.max(1) as f64 / t.elapsed().as_secs_f64();
    drop(echo);
    server.join().map_err(|_| anyhow::anyhow!("the loopback reader panicked"))??;
    Ok((tcp, rate))
}
