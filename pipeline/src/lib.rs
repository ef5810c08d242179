//! loam's pipeline: the stage contract, the canonical document schema, and the stages
//! that move documents from raw crawl files to the final corpus.
//!
//! 1. [`stage`] — the [`Stage`](stage::Stage) trait and the runner that commits a shard
//!    atomically (Parquet output, dropped side output, stats, completion marker).
//! 2. [`schema`] — the Arrow schema every stage reads and writes.
//! 3. [`ingest`] — WARC/WET/JSONL/Parquet in, canonical documents out.
//! 4. [`filter`] — language id and the heuristic rules of `loam-quality`.
//! 5. [`dedup`] — exact, MinHash-LSH and line-level dedup across all dumps.
//! 6. [`quality`] — the fastText quality classifier: training, scoring, the global keep
//!    rule, and the stage that applies it.
//! 7. [`remix`] — mixture domains, a target mixture, deterministic up/down-sampling.
//! 8. [`tokens`] — the `tokenizer` (BBPE training) and `tokenize` (token shards) stages.
//! 9. [`ledger`] — checks that every document entering a stage left it kept or dropped.
//! 10. [`sort`] — the external sort global steps use to stay within a memory limit.
//! 11. [`sample`] — a bounded, seeded sample of a stage's documents (for the report).
//!
//! The crate knows nothing of the CLI: the `loam` binary builds stages from its config.
pub mod dedup;
pub mod error;
pub mod fields;
pub mod filter;
pub mod ingest;
pub mod ledger;
pub mod quality;
pub mod remix;
pub mod sample;
pub mod schema;
pub mod score;
pub mod sort;
pub mod stage;
pub mod tokens;

pub use error::{PipelineError, Result};
pub use loam_quality::FilterConfig;
