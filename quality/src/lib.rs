//! Document quality for loam.
//!
//! 1. [`words`] — word and sentence splitting as the reference filters count them
//!    (spaCy-style English; one word per character in Chinese/Japanese).
//! 2. [`rules`] — Gopher repetition, Gopher quality, C4, FineWeb: one type per rule
//!    family, datatrove 0.10.1's definitions and defaults, named drop reasons.
//! 3. [`lid`] — language id with fastText `lid.176.ftz`.
//! 4. [`blocklist`] — URL/domain blocklist.
//! 5. [`filter`] — all of the above composed in FineWeb's order, built from its config.
//! 6. [`classifier`] — the fastText quality (reference-likeness) classifier: training,
//!    the text normaliser, scoring, held-out metrics.
//!
//! The pipeline's `filter` stage wraps [`filter::DocumentFilter`]; this crate knows
//! nothing of shards or Parquet.
pub mod blocklist;
pub mod classifier;
pub mod filter;
pub mod lid;
pub mod rules;
pub mod words;

use std::path::PathBuf;

pub use blocklist::Blocklist;
pub use filter::{DocumentFilter, FilterConfig, FilterOutcome};

/// Errors building the filter; each names the file or setting and the fix.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("language-id model {path}: {why}")]
    Model { path: PathBuf, why: String },
    #[error("blocklist {path}: {why}")]
    Blocklist { path: PathBuf, why: String },
    #[error("invalid filter setting: {0}")]
    Config(String),
}
