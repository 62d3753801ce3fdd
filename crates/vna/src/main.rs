//! The `vna` command: `serve`, `import`, `check-config`, `storage check`, `verify`, `apikey`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vna", version, about = "A vendor-neutral archive for medical images")]
struct Cli {
    /// Configuration file (TOML). Without one, embedded defaults apply.
    #[arg(long, global = true, env = "VNA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL catalog URL (overrides `catalog.url`).
    #[arg(long, global = true)]
    catalog_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the archive (DICOMweb on http.listen).
    Serve {
        /// Listen address (overrides `http.listen`); port 0 picks a free port.
        #[arg(long)]
        http_listen: Option<String>,
        /// DIMSE listen address (overrides `dimse.listen`); port 0 picks a free port.
        #[arg(long)]
        dimse_listen: Option<String>,
    },
    /// Store DICOM files from folders (recursively) through the ingest pipeline.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Files stored at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Validate a configuration file (and the environment overrides) and print the result.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Storage administration.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Manage API keys for machines.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Lifecycle policies (retention, tiering, expiry, holds).
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
    },
    /// The search index of each serving node.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Re-read stored objects and compare size and SHA-256 with the catalog. Exit status 1 when
    /// any object is missing, altered or unreadable.
    Verify {
        /// Only the current instances of this study (default: every current instance).
        #[arg(long)]
        study: Option<String>,
        /// Objects read at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Name each problem's SOP Instance UID too (UIDs can identify a patient: by default
        /// problems are named by tier, opaque key and version only).
        #[arg(long)]
        with_uids: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Make a key for a machine (a scanner, the patient record's back end) and print its token
    /// once: only the SHA-256 of its secret is kept. Send it as `Authorization: Bearer vnak_…`.
    Create {
        /// What the key is for, as administrators will read it in listings (no patient data).
        #[arg(long)]
        name: String,
        /// SMART-style scopes (`system/ImagingStudy.read`, `.write`, `.rs`, `.cruds`…) and
        /// `vna.admin`, `vna.audit`; repeat the option for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Tenants the key sees and stores into (`hug` covers `hug/radiology`); `*` or none:
        /// every tenant. Repeat the option for several.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Days until the key expires; without it, it lasts until revoked.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List every key: id, name, scopes, tenants, state (never a secret).
    List,
    /// Revoke a key by its id (the record stays, for the audit trail).
    Revoke { id: String },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Check that every configured tier (or one) is usable: reachable, credentials accepted,
    /// bucket present, versioning and Object Lock as configured. Exit status 1 on any problem.
    Check {
        /// Only this tier.
        tier: Option<String>,
    },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Have every serving node rebuild its search index from the catalog (after a change of the
    /// concept table, for instance), while it goes on answering from the index it has: a
    /// request in the catalog's change feed, which each node's indexer meets in order.
    Reindex,
}

#[derive(Subcommand)]
enum LifecycleCommand {
    /// Validate the policy files of a folder, report conflicts between their rules, run their
    /// test cases and print the set's hash. Exit status 1 on any error, conflict or failed test.
    Check {
        /// The folder of policy files (`*.toml`).
        #[arg(default_value = "lifecycle-policies")]
        dir: std::path::PathBuf,
    },
    /// What the policies would do to the stored objects, without doing it: per rule, retention,
    /// tier and expiry, counts, bytes and example objects (by opaque id), and the plan's hash.
    Plan {
        /// The folder of policy files (`*.toml`).
        #[arg(long, default_value = "lifecycle-policies")]
        policies: std::path::PathBuf,
        /// Decide as of this date or RFC 3339 instant (default: now).
        #[arg(long)]
        now: Option<String>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// With --json: one entry per object with its decision.
        #[arg(long)]
        objects: bool,
        /// With --objects: name each object's SOP Instance UID too (UIDs can identify a patient).
        #[arg(long)]
        with_uids: bool,
    },
    /// Do what a plan showed: queue a lifecycle job for the same date and policies, refused
    /// when the plan's hash is no longer what the catalog and the policies give, then run it
    /// here to its end (unless --queue-only: then the nodes' job runners do). Today the job
    /// applies expiry: objects whose retention has passed and that no hold protects are
    /// removed (tombstones kept) and their stored objects destroyed. Prints the job's outcome.
    Apply {
        /// The folder of policy files (`*.toml`): the set the servers are configured with.
        #[arg(long, default_value = "lifecycle-policies")]
        policies: std::path::PathBuf,
        /// Decide as of this date or RFC 3339 instant (default: now): the plan's `--now`.
        #[arg(long)]
        now: Option<String>,
        /// The `planHash` of the plan this applies (`vna lifecycle plan`).
        #[arg(long)]
        plan: String,
        /// Objects examined per second, at most (so that patients' images keep priority).
        #[arg(long)]
        max_per_second: Option<u32>,
        /// Megabytes copied per second by tier moves, at most.
        #[arg(long)]
        max_mb_per_second: Option<u32>,
        /// How long the old object of a tier move is kept before it is destroyed (reads that
        /// began before the move finish); default 900.
        #[arg(long)]
        move_grace_seconds: Option<u64>,
        /// Instance keys per job (a large catalog is split into jobs every node may take).
        #[arg(long)]
        instances_per_job: Option<i64>,
        /// Only queue the job; the servers' job runners do it.
        #[arg(long)]
        queue_only: bool,
    },
}

fn load_config(
    cli: &Cli,
    file: Option<&PathBuf>,
    http_listen: Option<&String>,
    dimse_listen: Option<&String>,
) -> anyhow::Result<vna_config::Config> {
    let mut overrides = Vec::new();
    if let Some(d) = &cli.data_dir {
        overrides.push(("data_dir", toml_string(&d.display().to_string())));
    }
    if let Some(u) = &cli.catalog_url {
        overrides.push(("catalog.url", toml_string(u)));
    }
    if let Some(l) = http_listen {
        overrides.push(("http.listen", toml_string(l)));
    }
    if let Some(l) = dimse_listen {
        overrides.push(("dimse.listen", toml_string(l)));
    }
    Ok(vna_config::load(file.or(cli.config.as_ref()).map(PathBuf::as_path), std::env::vars(), &overrides)?)
}

/// Quotes a value so the override is always read as a string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn,jpeg2k=warn".into()),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vna: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vna: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve { http_listen, dimse_listen } => {
            let config = load_config(&cli, None, http_listen.as_ref(), dimse_listen.as_ref())?;
            let http =
                tokio::net::TcpListener::bind(&config.http.listen).await.with_context(|| format!("binding {}", config.http.listen))?;
            let dimse = tokio::net::TcpListener::bind(&config.dimse.listen)
                .await
                .with_context(|| format!("binding {} (dimse.listen)", config.dimse.listen))?;
            vna::run(config, vna::Listeners { http, dimse }, shutdown_signal(), |ready| {
                tracing::info!(http = %ready.http, dimse = %ready.dimse, "listening");
                // Machine-readable readiness line for scripts and tests; `http=` stays first.
                let scheme = if ready.tls { "https" } else { "http" };
                println!("vna ready: http={scheme}://{} dimse={}", ready.http, ready.dimse);
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { paths, parallel, quiet } => {
            let config = load_config(&cli, None, None, None)?;
            let files = vna::import::collect_files(paths)?;
            let archive = vna::build_archive(&config).await?;
            let started = std::time::Instant::now();
            let summary = vna::import::import(archive, files, *parallel, !quiet).await;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "stored {}, duplicates {}, new versions {}, rejected {} ({:.1} MB in {:.1} s)",
                summary.stored,
                summary.duplicates,
                summary.replaced,
                summary.rejected_count(),
                summary.bytes as f64 / 1e6,
                secs
            );
            for (reason, files) in &summary.rejected {
                println!("rejected ({}): {reason}", files.len());
                for f in files.iter().take(20) {
                    println!("  {}", f.display());
                }
                if files.len() > 20 {
                    println!("  … and {} more", files.len() - 20);
                }
            }
            Ok(if summary.rejected_count() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Storage { command: StorageCommand::Check { tier } } => {
            let config = load_config(&cli, None, None, None)?;
            let tiers = vna::build_tiers(&config).await?;
            let mut names: Vec<&String> = tiers.keys().collect();
            names.sort();
            if let Some(t) = tier {
                if !tiers.contains_key(t) {
                    anyhow::bail!(
                        "no storage tier named '{t}' (configured: {})",
                        names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
                names.retain(|n| *n == t);
            }
            let mut failed = 0;
            for name in names {
                let store = &tiers[name];
                let default = if *name == config.storage.default_tier { ", default" } else { "" };
                println!("tier '{name}' (object lock enforced by: {}{default})", store.locking().enforced_by());
                for item in store.check().await {
                    println!("  {} {:<18} {}", if item.ok { "ok  " } else { "FAIL" }, item.what, item.detail);
                    failed += usize::from(!item.ok);
                }
            }
            if failed > 0 {
                println!("{failed} problem(s) found");
                return Ok(ExitCode::from(1));
            }
            println!("storage is usable");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { study, parallel, with_uids } => {
            let config = load_config(&cli, None, None, None)?;
            let archive = vna::build_archive(&config).await?;
            let study = match study {
                Some(s) => Some(vna_dicom::uid::StudyUid::new(s).map_err(|_| anyhow::anyhow!("--study is not a valid UID"))?),
                None => None,
            };
            let report = vna::verify::run(archive, study, (*parallel).max(1), *with_uids).await?;
            println!(
                "verified {} objects ({:.1} MB): {} intact, {} missing, {} altered, {} unreadable; {} series counts off",
                report.checked,
                report.bytes as f64 / 1e6,
                report.intact,
                report.missing,
                report.altered,
                report.unreadable,
                report.count_drift
            );
            Ok(if report.problems() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Apikey { command } => {
            let config = load_config(&cli, None, None, None)?;
            let archive = vna::build_archive(&config).await?;
            vna::apikey::run(&archive, command.into()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Search { command: SearchCommand::Reindex } => {
            let config = load_config(&cli, None, None, None)?;
            let archive = vna::build_archive(&config).await?;
            let seq = archive.request_search_reindex(&vna_archive::Principal::system()).await?;
            println!("reindex requested at change {seq}: each serving node rebuilds its search index when its indexer reaches it");
            println!("(GET /admin/search shows a node's position and whether it is rebuilding)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Lifecycle { command: LifecycleCommand::Plan { policies, now, json, objects, with_uids } } => {
            let set = vna_lifecycle::load_dir(policies).map_err(|e| anyhow::anyhow!("{e}"))?;
            let now = match now {
                Some(t) => vna_lifecycle::parse_instant(t).ok_or_else(|| anyhow::anyhow!("--now is not a date or an RFC 3339 instant"))?,
                None => vna_archive::now_ms(),
            };
            let config = load_config(&cli, None, None, None)?;
            let archive = vna::build_archive(&config).await?;
            let plan = vna::lifecycle::plan(archive, &set, now, *objects, *with_uids).await?;
            if *json {
                println!("{plan:#}");
            } else {
                print!("{}", vna::lifecycle::render(&plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lifecycle {
            command:
                LifecycleCommand::Apply {
                    policies,
                    now,
                    plan,
                    max_per_second,
                    max_mb_per_second,
                    move_grace_seconds,
                    instances_per_job,
                    queue_only,
                },
        } => {
            let now = match now {
                Some(t) => vna_lifecycle::parse_instant(t).ok_or_else(|| anyhow::anyhow!("--now is not a date or an RFC 3339 instant"))?,
                None => vna_archive::now_ms(),
            };
            let mut config = load_config(&cli, None, None, None)?;
            config.lifecycle.policies_dir = policies.display().to_string();
            let archive = vna::build_archive(&config).await?;
            let pace = vna_archive::Pace { objects_per_second: *max_per_second, megabytes_per_second: *max_mb_per_second };
            let outcome =
                vna::lifecycle::apply(archive, &config, now, plan, pace, *move_grace_seconds, *instances_per_job, *queue_only).await?;
            println!("{outcome:#}");
            let failed = outcome["state"].as_str().is_some_and(|s| s != "done" && s != "queued");
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Lifecycle { command: LifecycleCommand::Check { dir } } => {
            let set = match vna_lifecycle::load_dir(dir) {
                Ok(set) => set,
                Err(e) => {
                    println!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let report = set.check();
            let rules = set.rules().count();
            println!("{} policy files, {rules} rules, set hash {}", set.files.len(), set.hash);
            for c in &report.conflicts {
                println!("conflict: {c}");
            }
            for t in &report.tests {
                match t.failures.as_slice() {
                    [] => println!("ok      {}: {}", t.file, t.test),
                    failures => println!("FAILED  {}: {}\n          {}", t.file, t.test, failures.join("\n          ")),
                }
            }
            let failed = report.tests.iter().filter(|t| !t.failures.is_empty()).count();
            println!("{} tests, {failed} failed, {} conflicts", report.tests.len(), report.conflicts.len());
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::CheckConfig { file } => {
            let config = load_config(&cli, file.as_ref(), None, None)?;
            println!("configuration is valid");
            println!("  data_dir: {}", config.data_dir.display());
            println!("  http: {} (DICOMweb at {})", config.http.listen, config.http.dicomweb_root);
            println!(
                "  dimse: {} (AE title {}, {})",
                config.dimse.listen,
                config.dimse.ae_title,
                if config.dimse.allow_any_calling_ae {
                    "any calling AE".to_owned()
                } else {
                    format!("{} known AEs", config.dimse.known_aes.len())
                }
            );
            println!(
                "  catalog: {}",
                if config.catalog.url.is_empty() && config.catalog.url_file.is_empty() { "embedded SQLite" } else { "PostgreSQL" }
            );
            for (name, tier) in &config.storage.tiers {
                println!("  tier {name}: {tier:?}{}", if *name == config.storage.default_tier { " (default)" } else { "" });
            }
            if config.search.enabled {
                let vocab = vna::search_vocabulary(&config)?;
                println!("  search: on, {} concepts", vocab.len());
            } else {
                println!("  search: off");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

impl From<&ApiKeyCommand> for vna::apikey::Action {
    fn from(c: &ApiKeyCommand) -> Self {
        match c {
            ApiKeyCommand::Create { name, scopes, tenants, expires_days } => vna::apikey::Action::Create {
                name: name.clone(),
                scopes: scopes.clone(),
                tenants: tenants.clone(),
                expires_days: *expires_days,
            },
            ApiKeyCommand::List => vna::apikey::Action::List,
            ApiKeyCommand::Revoke { id } => vna::apikey::Action::Revoke { id: id.clone() },
        }
    }
}
