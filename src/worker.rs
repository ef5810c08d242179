//! `loam worker`: one worker of the distributed dedup cluster step, and the cluster step's
//! engine switch (`dedup.engine`). Both need the `distributed` cargo feature; without it
//! they say how to get it.
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use loam_pipeline::dedup::cluster::ClusterOutcome;
use loam_pipeline::dedup::{DedupConfig, Engine};

#[derive(Args)]
pub struct WorkerArgs {
    /// Address to serve on; port 0 picks a free one (the address is printed). Loopback
    /// unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Serve on a non-loopback address. The worker runs any plan it is sent and has no
    /// authentication: keep its port on a private network.
    #[arg(long)]
    allow_remote: bool,
    /// The worker's memory pool; operators that can spill do so beyond it, the others fail
    /// with an error naming this flag.
    #[arg(long, default_value_t = 2048)]
    memory_limit_mb: u64,
    /// Where spills go (default: the system's temporary folder).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
}

#[cfg(not(feature = "distributed"))]
pub const NOT_BUILT: &str = "this loam was built without the `distributed` feature: build it with \
                         `cargo build --release --features distributed`";

#[cfg(feature = "distributed")]
pub fn worker_cmd(args: &WorkerArgs) -> Result<String> {
    loam_distributed::serve(
        args.listen,
        args.allow_remote,
        args.memory_limit_mb,
        args.spill_dir.clone(),
        |addr| {
            eprintln!(
                "loam worker listening on http://{addr} (memory pool {} MB)",
                args.memory_limit_mb
            );
            println!(
                "{}",
                serde_json::json!({"ok": true, "worker": format!("http://{addr}")})
            );
            let _ = std::io::stdout().flush();
        },
    )
    .map_err(|e| match e {
        loam_distributed::Error::Config(m) => anyhow::Error::new(crate::config::UsageError(m)),
        e => e.into(),
    })?;
    Ok(String::new())
}

#[cfg(not(feature = "distributed"))]
pub fn worker_cmd(args: &WorkerArgs) -> Result<String> {
    let _ = (args.listen, args.allow_remote, args.memory_limit_mb, &args.spill_dir);
    let _ = std::io::stdout().flush();
    anyhow::bail!(crate::config::UsageError(NOT_BUILT.into()))
}

/// The dedup cluster step on the configured engine.
pub fn run_cluster(
    stage_dir: &Path,
    cfg: &DedupConfig,
    signatures_fp: &str,
    of: usize,
    force: bool,
) -> Result<ClusterOutcome> {
    match cfg.engine {
        Engine::Local => Ok(loam_pipeline::dedup::cluster::run_cluster(
            stage_dir,
            cfg,
            signatures_fp,
            of,
            force,
        )?),
        Engine::Distributed => distributed(stage_dir, cfg, signatures_fp, of, force),
    }
}

#[cfg(feature = "distributed")]
fn distributed(
    stage_dir: &Path,
    cfg: &DedupConfig,
    signatures_fp: &str,
    of: usize,
    force: bool,
) -> Result<ClusterOutcome> {
    Ok(loam_distributed::run_cluster(stage_dir, cfg, signatures_fp, of, force)?)
}

#[cfg(not(feature = "distributed"))]
fn distributed(_: &Path, _: &DedupConfig, _: &str, _: usize, _: bool) -> Result<ClusterOutcome> {
    anyhow::bail!(crate::config::UsageError(format!(
        "dedup.engine = \"distributed\": {NOT_BUILT}, or set dedup.engine = \"local\""
    )))
}
