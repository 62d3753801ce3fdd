//! `all`: measures the machine, starts the archive on a throw-away data directory, runs
//! stow → qido → frames → big against it, stops it, and returns one combined report.

use crate::machine::{self, MachineSizes};
use crate::report::Report;
use crate::scenario::big::{self, BigOpts};
use crate::scenario::frames::{self, FramesOpts};
use crate::scenario::qido::{self, QidoOpts};
use crate::scenario::stow::{self, StowOpts};
use crate::scenario::Target;
use crate::server::Server;
use std::path::PathBuf;

pub struct AllOpts {
    pub vna_bin: PathBuf,
    /// Parent of the temporary directory holding the data dir and the server log.
    pub work_dir: PathBuf,
    pub keep_data: bool,
    pub machine: Option<MachineSizes>,
    pub stow: StowOpts,
    pub qido: QidoOpts,
    pub frames: FramesOpts,
    pub big: BigOpts,
}

pub async fn run(opts: AllOpts) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.work_dir)?;
    let work = tempfile::Builder::new().prefix("vna-loadtest-").tempdir_in(&opts.work_dir)?;
    let mut report = Report::new("vna (started by vna-loadtest all)");
    if let Some(sizes) = opts.machine {
        let dir = work.path().to_owned();
        eprintln!("measuring the machine in {}", dir.display());
        report.machine = Some(tokio::task::spawn_blocking(move || machine::measure(&dir, sizes)).await??);
    }
    let data_dir = work.path().join("data");
    let server = Server::start(&opts.vna_bin, &data_dir, &work.path().join("vna.log")).await?;
    eprintln!("vna ready at {} (pid {}), data in {}", server.url, server.pid, data_dir.display());
    report.target = format!("{} (pid {})", server.url, server.pid);
    let target = Target::new(&format!("{}/dicom-web", server.url), Some(server.pid))?;
    let outcome = scenarios(&target, &opts, &mut report).await;
    let log = server.log.clone();
    server.stop().await?;
    if let Err(e) = outcome {
        anyhow::bail!("{e:#}\nserver log tail:\n{}", crate::server::tail(&log));
    }
    if opts.keep_data {
        let kept = work.keep();
        eprintln!("data kept in {}", kept.display());
    }
    Ok(report)
}

async fn scenarios(target: &Target, opts: &AllOpts, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("stow: {} instances, concurrency {}, batch {}", opts.stow.corpus.instances, opts.stow.concurrency, opts.stow.batch);
    report.push(stow::run(target, opts.stow).await?)?;
    eprintln!("qido: {} queries, concurrency {}", opts.qido.requests, opts.qido.concurrency);
    report.push(qido::run(target, opts.qido).await?)?;
    eprintln!("frames: {}-frame slide, {} requests, concurrency {}", opts.frames.slide_frames, opts.frames.requests, opts.frames.concurrency);
    report.push(frames::run(target, opts.frames).await?)?;
    eprintln!("big: {} MB", opts.big.size_mb);
    for r in big::run(target, opts.big).await? {
        report.push(r)?;
    }
    Ok(())
}
