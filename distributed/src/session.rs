//! The cluster itself: the coordinator's DataFusion session (distributed planner, worker
//! addresses, loam's codec and function), a worker's session, the in-process cluster over
//! in-memory channels, and `loam worker`'s gRPC server.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::common::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{
    grpc, ChannelResolver, DistributedExt, SessionStateBuilderExt, Worker, WorkerChannel, WorkerQueryContext,
    WorkerResolver, WorkerSessionBuilder,
};
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Server};
use url::Url;

use crate::codec::LoamCodec;
use crate::{scan, Error};

/// A process's memory pool (`limit_mb`, spilling to `spill_dir` or the OS temp folder).
/// `LOAM_DEDUP_POOL_BYTES` replaces the limit, so tests can make a pool too small.
pub fn runtime(limit_mb: u64, spill_dir: Option<PathBuf>) -> Result<Arc<RuntimeEnv>, Error> {
    let bytes = std::env::var("LOAM_DEDUP_POOL_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or((limit_mb as usize) << 20);
    let mode = match spill_dir {
        Some(d) => DiskManagerMode::Directories(vec![d]),
        None => DiskManagerMode::OsTmpDirectory,
    };
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
        .build_arc()
        .map_err(|e| Error::engine("setting up the memory pool", e))
}

/// What a worker adds to DataFusion: loam's plan nodes; in an
/// in-process cluster also the in-memory channels to the other workers.
#[derive(Clone)]
struct LoamWorkerSession {
    channels: Option<InMemoryChannels>,
}

#[async_trait]
impl WorkerSessionBuilder for LoamWorkerSession {
    async fn build_session_state(&self, ctx: WorkerQueryContext) -> Result<SessionState, DataFusionError> {
        let b = ctx.builder.with_distributed_user_codec(LoamCodec);
        let b = match &self.channels {
            Some(c) => b.with_distributed_channel_resolver(c.clone()),
            None => b,
        };
        Ok(b.build())
    }
}

fn worker(runtime: Arc<RuntimeEnv>, channels: Option<InMemoryChannels>) -> Worker {
    Worker::from_session_builder(LoamWorkerSession { channels }).with_runtime_env(runtime)
}

/// Where the coordinator sends stages.
#[derive(Clone)]
struct Urls(Vec<Url>);

impl WorkerResolver for Urls {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
    }
}

/// Every worker of the in-process cluster behind one in-memory HTTP/2 connection: the
/// same gRPC protocol as over TCP, without sockets.
#[derive(Clone)]
struct InMemoryChannels {
    channel: grpc::BoxCloneSyncChannel,
}

impl InMemoryChannels {
    /// Starts the in-process worker (must run inside a tokio runtime).
    fn start(runtime: Arc<RuntimeEnv>) -> Self {
        let (client, server) = tokio::io::duplex(8 << 20);
        let client = Arc::new(Mutex::new(Some(client)));
        let channel = Endpoint::from_static("http://in-process.loam:1").connect_with_connector_lazy(tower::service_fn(
            move |_| {
                let client = client.lock().ok().and_then(|mut c| c.take());
                async move {
                    client.map(TokioIo::new).ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotConnected, "in-process worker channel closed")
                    })
                }
            },
        ));
        let this = Self {
            channel: grpc::BoxCloneSyncChannel::new(channel),
        };
        let server_worker = worker(runtime, Some(this.clone()));
        tokio::spawn(async move {
            Server::builder()
                .add_service(server_worker.into_worker_server())
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server)))
                .await
        });
        this
    }
}

#[async_trait]
impl ChannelResolver for InMemoryChannels {
    async fn get_worker_client_for_url(&self, _: &Url) -> Result<Box<dyn WorkerChannel>, DataFusionError> {
        Ok(grpc::create_worker_client(self.channel.clone()))
    }
}

/// Bytes per task of an intermediate Parquet relation before the planner adds another task
/// (`LOAM_DEDUP_SCAN_BYTES` lowers it so tests spread small relations over every worker).
fn scan_bytes_per_task() -> usize {
    std::env::var("LOAM_DEDUP_SCAN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 << 20)
}

/// The coordinator's session over `workers` (addresses), or over `in_process` workers
/// inside this process when `workers` is empty. Must run inside a tokio runtime.
pub fn coordinator(
    workers: &[String],
    in_process: usize,
    runtime: Arc<RuntimeEnv>,
) -> Result<(SessionContext, usize), Error> {
    let config = SessionConfig::new().with_information_schema(false);
    let builder = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::clone(&runtime));
    let (builder, count) = if workers.is_empty() {
        let urls = (0..in_process)
            .map(|i| Url::parse(&format!("http://in-process-{i}.loam:1")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("in-process worker address: {e}")))?;
        let channels = InMemoryChannels::start(runtime);
        (
            builder
                .with_distributed_worker_resolver(Urls(urls))
                .with_distributed_channel_resolver(channels),
            in_process,
        )
    } else {
        let urls = workers
            .iter()
            .map(|w| Url::parse(w).map_err(|e| Error::Config(format!("dedup.workers entry {w:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        (builder.with_distributed_worker_resolver(Urls(urls)), workers.len())
    };
    let state = builder
        .with_distributed_planner()
        .with_distributed_user_codec(LoamCodec)
        .with_distributed_desired_task_count_handler(scan::desired_tasks)
        .with_distributed_scale_up_leaf_node_handler(scan::scale_up)
        .with_distributed_file_scan_config_bytes_per_partition(scan_bytes_per_task())
        .map_err(|e| Error::engine("configuring the distributed planner", e))?
        .build();
    Ok((SessionContext::from(state), count))
}

/// `loam worker`: serves stages on `listen` until the process is stopped. A non-loopback
/// address needs `allow_remote` (the protocol has no authentication).
pub fn serve(
    listen: SocketAddr,
    allow_remote: bool,
    memory_limit_mb: u64,
    spill_dir: Option<PathBuf>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(Error::Config(format!(
            "--listen {listen}: a worker runs any plan it is sent and has no authentication, so it \
             binds loopback only unless you add --allow-remote (then keep its port on a private network)"
        )));
    }
    if memory_limit_mb < 64 {
        return Err(Error::Config(format!(
            "--memory-limit-mb {memory_limit_mb}: give at least 64"
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the worker runtime".into(), e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Io(format!("binding {listen}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Io(format!("binding {listen}"), e))?;
        let worker = worker(runtime(memory_limit_mb, spill_dir)?, None);
        on_ready(addr);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        Server::builder()
            .add_service(worker.into_worker_server())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Io(format!("serving on {addr}"), std::io::Error::other(e)))
    })
}
