//! `vna-loadtest`: a black-box load generator for the archive. It speaks only the archive's
//! protocols (DICOMweb over HTTP, DIMSE C-STORE) and reports throughput, latency percentiles, errors
//! and, given the server's PID, its memory and CPU — as a table and as JSON.

mod compare;
mod corpus;
mod dimse;
mod http;
mod machine;
mod objects;
mod prng;
mod procmon;
mod report;
mod runner;
mod scenario;
mod server;
mod stats;

use clap::{Args, Parser, Subcommand};
use corpus::CorpusSpec;
use dimse::DimseTarget;
use report::Report;
use scenario::big::BigOpts;
use scenario::big_cstore::BigCstoreOpts;
use scenario::cstore::CstoreOpts;
use scenario::frames::FramesOpts;
use scenario::qido::QidoOpts;
use scenario::stow::StowOpts;
use scenario::Target;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vna-loadtest", version, about = "Load generator and benchmarks for the vna archive (black-box, over DICOMweb and DIMSE)")]
struct Cli {
    /// Also write the figures as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Seed of the synthetic corpus: the same seed gives the same objects and UIDs.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// STOW-RS ingest of a CT-like corpus.
    Stow {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        corpus: CorpusArgs,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Instances per STOW-RS request.
        #[arg(long, default_value_t = 10)]
        batch: usize,
    },
    /// QIDO-RS query mix over a corpus stored by `stow` (same seed and corpus shape).
    Qido {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        corpus: CorpusArgs,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// `limit` on the study-level queries (a viewer's worklist page, e.g. 101); default:
        /// none, the server's own limit applies.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Store a slide-like multi-frame instance, then fetch random frames (WADO-RS /frames).
    Frames {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        slide: SlideArgs,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// Store one encapsulated object over 4 GiB (a slide with an Extended Offset Table, a slide
    /// of split fragments without any table, or a fragmented video) through STOW-RS or
    /// C-STORE, retrieve it whole, then read random tiles (/frames) or seeks (/rendered Range).
    Huge {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        dimse: DimseArgs,
        #[arg(long, value_enum, default_value = "slide")]
        kind: scenario::huge::Kind,
        #[arg(long, value_enum, default_value = "stow")]
        via: scenario::huge::Via,
        /// Payload size in MiB (4608 = 4.5 GiB).
        #[arg(long, default_value_t = 4608)]
        size_mb: u64,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// Store CT-like instances, then fetch WADO-RS /rendered (random window) and /thumbnail.
    Rendered {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        corpus: CorpusArgs,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Only /rendered requests (for archives without the thumbnail resource).
        #[arg(long)]
        no_thumbnails: bool,
    },
    /// Store one big object streamed through STOW-RS, retrieve it and check its SHA-256.
    Big {
        #[command(flatten)]
        target: TargetArgs,
        /// Pixel data size in MiB (below 4096).
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
    },
    /// DIMSE C-STORE of the CT corpus over K parallel associations, then a QIDO-RS count.
    Cstore {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        dimse: DimseArgs,
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Parallel associations, each sending its share of the instances in order.
        #[arg(long, default_value_t = 4)]
        associations: usize,
        /// C-STOREs each association sends before waiting for a response (proposed as an
        /// Asynchronous Operations Window, PS3.7 §D.3.3.3; used as far as the archive agrees).
        #[arg(long, default_value_t = 1)]
        window: u16,
        /// Corpus namespace (1, 2, …): same shape as `stow`'s corpus with its own UIDs and
        /// patients; use another value to store the corpus again into the same archive.
        #[arg(long, default_value_t = 1)]
        namespace: u32,
    },
    /// Store one big object streamed through DIMSE C-STORE, retrieve it (WADO-RS), check it.
    BigCstore {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        dimse: DimseArgs,
        /// Pixel data size in MiB (below 4096).
        #[arg(long, default_value_t = 2048)]
        size_mb: u64,
    },
    /// Start the archive and run machine limits, stow, qido, cstore, frames, big and
    /// big-cstore in sequence.
    All(AllArgs),
    /// Medians and ratios over the rounds of `loadtest/compare.sh`: the JSON reports of
    /// target A and of target B, one table (markdown) on stdout.
    Summarize {
        #[arg(long, default_value = "vna")]
        a_name: String,
        #[arg(long, num_args = 1.., required = true)]
        a: Vec<PathBuf>,
        #[arg(long, default_value = "orthanc")]
        b_name: String,
        #[arg(long, num_args = 1.., required = true)]
        b: Vec<PathBuf>,
    },
    /// Write the corpus as Part 10 files, one folder per study, for an archive's own import
    /// path (`vna import DIR`): the way to fill an archive with a million instances
    /// (`--image-size 16`) and then run `qido` over it with the same seed and shape.
    Populate {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Where to write (created; must be empty or missing).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Measure only the machine's limits (SHA-256, sequential write, small files).
    Machine {
        /// Directory on the filesystem to measure.
        #[arg(long, default_value = "/tmp")]
        dir: PathBuf,
        #[command(flatten)]
        sizes: MachineArgs,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// DICOMweb root of the archive under test.
    #[arg(long, default_value = "http://127.0.0.1:8080/dicom-web")]
    url: String,
    /// The server's process ID, to report its peak memory and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Args)]
struct DimseArgs {
    /// The archive's DIMSE listener (host:port).
    #[arg(long, default_value = "127.0.0.1:11112")]
    dimse: String,
    #[arg(long, default_value = "VNA")]
    called_ae: String,
    #[arg(long, default_value = dimse::CALLING_AE)]
    calling_ae: String,
    /// Speak DICOM TLS to the listener, trusting the CA certificates of this PEM file.
    #[arg(long)]
    dimse_tls_ca: Option<PathBuf>,
}

impl DimseArgs {
    fn target(&self) -> anyhow::Result<DimseTarget> {
        let tls = self.dimse_tls_ca.as_deref().map(dimse::tls_trusting).transpose()?;
        Ok(DimseTarget { addr: self.dimse.clone(), called_ae: self.called_ae.clone(), calling_ae: self.calling_ae.clone(), tls })
    }
}

#[derive(Args, Clone, Copy)]
struct CorpusArgs {
    /// Instances in the CT corpus (512×512×16-bit, ~0.5 MB each).
    #[arg(long, default_value_t = 2000)]
    instances: usize,
    #[arg(long, default_value_t = 3)]
    series_per_study: usize,
    #[arg(long, default_value_t = 20)]
    instances_per_series: usize,
    /// Rows = columns of each image: 512 is the 0.5 MB CT; 16 makes tiny instances (~2 KB)
    /// that measure per-object overhead or fill an archive for queries at scale.
    #[arg(long, default_value_t = corpus::CT_SIDE, value_parser = clap::value_parser!(u16).range(1..=4096))]
    image_size: u16,
}

#[derive(Args, Clone, Copy)]
struct SlideArgs {
    /// Frames (tiles) of the slide.
    #[arg(long, default_value_t = 2000)]
    slide_frames: usize,
    /// Mean tile size in bytes (tiles vary by ±25 %).
    #[arg(long, default_value_t = 16384)]
    frame_bytes: usize,
}

#[derive(Args, Clone, Copy)]
struct MachineArgs {
    /// MB hashed for the SHA-256 figure.
    #[arg(long, default_value_t = 256)]
    machine_sha_mb: usize,
    /// MB written sequentially (1 MB chunks, one fsync).
    #[arg(long, default_value_t = 512)]
    machine_write_mb: usize,
    /// Small files created, written and fsynced (per thread count).
    #[arg(long, default_value_t = 1000)]
    machine_files: usize,
    /// Size of each small file in KB.
    #[arg(long, default_value_t = 512)]
    machine_file_kb: usize,
}

impl MachineArgs {
    fn sizes(self) -> machine::MachineSizes {
        machine::MachineSizes {
            sha_mb: self.machine_sha_mb,
            write_mb: self.machine_write_mb,
            files: self.machine_files,
            file_kb: self.machine_file_kb,
        }
    }
}

#[derive(Args)]
struct AllArgs {
    /// The `vna` binary to start.
    #[arg(long, env = "VNA_BIN")]
    vna_bin: PathBuf,
    /// Where the temporary data directory goes (deleted afterwards unless --keep-data).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work_dir: PathBuf,
    #[arg(long)]
    keep_data: bool,
    /// Clients for stow, qido and frames.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Instances per STOW-RS request.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    #[arg(long, default_value_t = 2000)]
    qido_requests: usize,
    #[command(flatten)]
    slide: SlideArgs,
    #[arg(long, default_value_t = 2000)]
    frame_requests: usize,
    /// Size of the big object in MiB.
    #[arg(long, default_value_t = 1024)]
    big_mb: u64,
    /// Parallel associations of `cstore`; a list (`1,4`) runs it once per value, rows
    /// `cstore_k1`, `cstore_k4`, each storing its own copy of the corpus.
    #[arg(long, value_delimiter = ',', default_value = "4")]
    associations: Vec<usize>,
    /// Size of the big C-STORE object in MiB (default: --big-mb).
    #[arg(long)]
    big_cstore_mb: Option<u64>,
    /// Skip the machine measurements.
    #[arg(long)]
    skip_machine: bool,
    #[command(flatten)]
    machine: MachineArgs,
}

impl CorpusArgs {
    fn spec(self, seed: u64) -> CorpusSpec {
        CorpusSpec {
            seed,
            instances: self.instances,
            series_per_study: self.series_per_study,
            instances_per_series: self.instances_per_series,
            namespace: 0,
            side: self.image_size,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Populate { corpus, dir } = &cli.command {
        return match corpus::populate(corpus.spec(cli.seed), dir) {
            Ok(written) => {
                println!(
                    "populate: {} instances, {} studies, {:.1} MB in {}",
                    written.files,
                    written.studies,
                    written.bytes as f64 / 1e6,
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vna-loadtest: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Summarize { a_name, a, b_name, b } = &cli.command {
        return match compare::summarize(a_name, a, b_name, b) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vna-loadtest: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vna-loadtest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(report) => {
            print!("{}", report.table());
            if let Some(path) = &cli.json {
                if let Err(e) = report.write_json(path) {
                    eprintln!("vna-loadtest: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
            if report.total_errors() > 0 {
                eprintln!("vna-loadtest: {} errors or mismatches", report.total_errors());
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vna-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let seed = cli.seed;
    match &cli.command {
        Command::Stow { target, corpus, concurrency, batch } => {
            let (t, mut report) = connect(target)?;
            report
                .push(scenario::stow::run(&t, StowOpts { corpus: corpus.spec(seed), concurrency: *concurrency, batch: *batch }).await?)?;
            Ok(report)
        }
        Command::Qido { target, corpus, concurrency, requests, limit } => {
            let (t, mut report) = connect(target)?;
            let opts = QidoOpts { corpus: corpus.spec(seed), concurrency: *concurrency, requests: *requests, limit: *limit };
            report.push(scenario::qido::run(&t, opts).await?)?;
            Ok(report)
        }
        Command::Frames { target, slide, concurrency, requests } => {
            let (t, mut report) = connect(target)?;
            let opts = FramesOpts {
                seed,
                slide_frames: slide.slide_frames,
                frame_bytes: slide.frame_bytes,
                concurrency: *concurrency,
                requests: *requests,
            };
            report.push(scenario::frames::run(&t, opts).await?)?;
            Ok(report)
        }
        Command::Huge { target, dimse, kind, via, size_mb, concurrency, requests } => {
            let (t, mut report) = connect(target)?;
            let opts = scenario::huge::HugeOpts {
                seed,
                kind: *kind,
                via: *via,
                size_mb: *size_mb,
                concurrency: *concurrency,
                requests: *requests,
            };
            let d = dimse.target()?;
            for r in scenario::huge::run(&t, Some(&d), opts).await? {
                report.push(r)?;
            }
            Ok(report)
        }
        Command::Rendered { target, corpus, concurrency, requests, no_thumbnails } => {
            let (t, mut report) = connect(target)?;
            let opts = scenario::rendered::RenderedOpts {
                corpus: corpus.spec(seed),
                concurrency: *concurrency,
                requests: *requests,
                thumbnails: !*no_thumbnails,
            };
            report.push(scenario::rendered::run(&t, opts).await?)?;
            Ok(report)
        }
        Command::Big { target, size_mb } => {
            let (t, mut report) = connect(target)?;
            for r in scenario::big::run(&t, BigOpts { seed, size_mb: *size_mb }).await? {
                report.push(r)?;
            }
            Ok(report)
        }
        Command::Cstore { target, dimse, corpus, associations, window, namespace } => {
            let (t, mut report) = connect(target)?;
            let opts = CstoreOpts {
                name: "cstore".into(),
                corpus: corpus.spec(seed).namespaced((*namespace).max(1)),
                associations: *associations,
                window: (*window).max(1),
            };
            report.push(scenario::cstore::run(&t, &dimse.target()?, &opts).await?)?;
            Ok(report)
        }
        Command::BigCstore { target, dimse, size_mb } => {
            let (t, mut report) = connect(target)?;
            report.push(scenario::big_cstore::run(&t, &dimse.target()?, BigCstoreOpts { seed, size_mb: *size_mb }).await?)?;
            Ok(report)
        }
        Command::All(a) => {
            let corpus = a.corpus.spec(seed);
            let opts = runner::AllOpts {
                vna_bin: a.vna_bin.clone(),
                work_dir: a.work_dir.clone(),
                keep_data: a.keep_data,
                machine: (!a.skip_machine).then(|| a.machine.sizes()),
                stow: StowOpts { corpus, concurrency: a.concurrency, batch: a.batch },
                qido: QidoOpts { corpus, concurrency: a.concurrency, requests: a.qido_requests, limit: None },
                frames: FramesOpts {
                    seed,
                    slide_frames: a.slide.slide_frames,
                    frame_bytes: a.slide.frame_bytes,
                    concurrency: a.concurrency,
                    requests: a.frame_requests,
                },
                big: BigOpts { seed, size_mb: a.big_mb },
                cstore: cstore_runs(corpus, &a.associations),
                big_cstore: BigCstoreOpts { seed, size_mb: a.big_cstore_mb.unwrap_or(a.big_mb) },
            };
            runner::run(opts).await
        }
        Command::Summarize { .. } | Command::Populate { .. } => anyhow::bail!("summarize and populate run without the async runtime"),
        Command::Machine { dir, sizes } => {
            let mut report = Report::new("machine");
            let (dir, sizes) = (dir.clone(), sizes.sizes());
            report.machine = Some(tokio::task::spawn_blocking(move || machine::measure(&dir, sizes)).await??);
            Ok(report)
        }
    }
}

/// One `cstore` run per association count, namespaces 1, 2, … so the copies do not collide
/// with each other nor with `stow`'s corpus (namespace 0).
fn cstore_runs(corpus: CorpusSpec, associations: &[usize]) -> Vec<CstoreOpts> {
    let several = associations.len() > 1;
    associations
        .iter()
        .enumerate()
        .map(|(i, k)| CstoreOpts {
            name: match (several, associations[..i].contains(k)) {
                (false, _) => "cstore".into(),
                (true, false) => format!("cstore_k{k}"),
                (true, true) => format!("cstore_k{k}_{}", i + 1),
            },
            corpus: corpus.namespaced(i as u32 + 1),
            associations: (*k).max(1),
            window: 1,
        })
        .collect()
}

fn connect(args: &TargetArgs) -> anyhow::Result<(Target, Report)> {
    Ok((Target::new(&args.url, args.server_pid)?, Report::new(&args.url)))
}
