//! `all`: measures the machine, starts the archive on a throw-away data directory, runs
//! stow → qido → cstore (once per association count) → frames → big → big-cstore against it,
//! stops it, and returns one combined report. `cstore` comes after `qido` because its corpus
//! copies (same shape, own namespace) would change the answers `qido` expects.

use crate::dimse::{DimseTarget, CALLING_AE};
use crate::machine::{self, MachineSizes};
use crate::report::Report;
use crate::scenario::big::{self, BigOpts};
use crate::scenario::big_cstore::{self, BigCstoreOpts};
use crate::scenario::cstore::{self, CstoreOpts};
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
    /// One `cstore` run per entry (association counts), each in its own corpus namespace.
    pub cstore: Vec<CstoreOpts>,
    pub big_cstore: BigCstoreOpts,
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
    let dimse = server.dimse.clone().map(|addr| DimseTarget { addr, called_ae: "VNA".into(), calling_ae: CALLING_AE.into(), tls: None });
    let outcome = match dimse {
        Some(dimse) => scenarios(&target, &dimse, &opts, &mut report).await,
        None => Err(anyhow::anyhow!("the server's ready line names no DIMSE listener")),
    };
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

async fn scenarios(target: &Target, dimse: &DimseTarget, opts: &AllOpts, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("stow: {} instances, concurrency {}, batch {}", opts.stow.corpus.instances, opts.stow.concurrency, opts.stow.batch);
    report.push(stow::run(target, opts.stow).await?)?;
    eprintln!("qido: {} queries, concurrency {}", opts.qido.requests, opts.qido.concurrency);
    report.push(qido::run(target, opts.qido).await?)?;
    for c in &opts.cstore {
        eprintln!("{}: {} instances over {} association(s) ({})", c.name, c.corpus.instances, c.associations, dimse.addr);
        report.push(cstore::run(target, dimse, c).await?)?;
    }
    eprintln!(
        "frames: {}-frame slide, {} requests, concurrency {}",
        opts.frames.slide_frames, opts.frames.requests, opts.frames.concurrency
    );
    report.push(frames::run(target, opts.frames).await?)?;
    eprintln!("big: {} MB", opts.big.size_mb);
    for r in big::run(target, opts.big).await? {
        report.push(r)?;
    }
    eprintln!("big-cstore: {} MB", opts.big_cstore.size_mb);
    report.push(big_cstore::run(target, dimse, opts.big_cstore).await?)?;
    Ok(())
}
