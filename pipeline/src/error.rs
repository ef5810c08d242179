//! Typed errors of the pipeline crate. Every variant names the file (and where it
//! helps, the byte offset or record) and says what to do about it.
use std::path::PathBuf;

/// What can go wrong in a stage; the binary adds context and maps these to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A whole input file cannot be used (empty, wrong format, missing column...).
    #[error("{path}: {what} (at byte {offset}). {fix}")]
    BadFile {
        path: PathBuf,
        offset: u64,
        what: String,
        fix: String,
    },
    #[error("{path}: Parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(
        "{dir}: shard {shard} was completed with a different configuration \
         (fingerprint {found}, now {expected}); use a new run directory, or pass --force to redo it"
    )]
    ConfigChanged {
        dir: PathBuf,
        shard: String,
        found: String,
        expected: String,
    },
    #[error(
        "{dir} already holds shards of a {found}-way split, but this step asks for {asked}; \
         rerun with --of {found}, or delete the folder to re-split"
    )]
    SplitChanged { dir: PathBuf, found: usize, asked: usize },
    #[error("{path}: unreadable stats record: {detail}; delete it and its completion marker to redo the shard")]
    BadStats { path: PathBuf, detail: String },
    #[error("invalid setting: {0}")]
    Config(String),
    #[error(transparent)]
    Tokenize(#[from] loam_tokenize::TokenizeError),
}

impl PipelineError {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
