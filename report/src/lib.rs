//! loam's dataset quality report, as pure functions of its data:
//!
//! 1. [`model`] — `report.json`'s schema (`loam.report/1`), the source of truth.
//! 2. [`svg`] — hand-written inline SVG charts (bars, histograms, line charts, log axes).
//! 3. [`html`] — the self-contained `report.html` (strict CSP, no scripts, no network).
//! 4. [`card`] — the `README.md` dataset card (HF front matter + datasheet sections).
//!
//! Gathering the data from a run directory is the `loam` binary's job; this crate
//! reads no files.
pub mod card;
pub mod html;
pub mod model;
pub mod svg;

pub use model::Report;
