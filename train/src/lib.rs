//! loam's trainer: a LLaMA-style decoder in Burn ([`model`]) trained on the `tokenize`
//! stage's token shards ([`data`]) with the paper's AdamW, clipping and multi-step schedule
//! ([`optim`], [`schedule`]), safetensors checkpoints with exact resume ([`checkpoint`]),
//! and the paper's compute accounting ([`flops`]). Backend-generic: Flex (CPU) in tests,
//! CUDA behind the `cuda` feature.
use std::path::{Path, PathBuf};

pub mod checkpoint;
pub mod data;
pub mod export;
pub mod fit;
pub mod flops;
pub mod model;
pub mod optim;
pub mod scaling;
pub mod schedule;
pub mod trainer;

pub use trainer::{train, StepMetrics, TrainConfig, TrainSummary};

/// CPU backend for tests and the demo.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// The backend `loam train` uses: CUDA when built with `--features cuda`, else Flex.
#[cfg(feature = "cuda")]
pub type DefaultBackend = burn::backend::Autodiff<burn::backend::Cuda>;
#[cfg(not(feature = "cuda"))]
pub type DefaultBackend = CpuBackend;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("training data: {0}")]
    Data(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Shard(#[from] loam_tokenize::TokenizeError),
    #[error("loss is {loss} at step {step}: training diverged; lower train.schedule.peak_lr or check the data")]
    Diverged { step: u64, loss: f64 },
}

impl TrainError {
    /// Wraps an `io::Error` with the path it concerns.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
