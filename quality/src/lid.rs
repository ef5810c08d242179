//! Language identification with fastText's `lid.176.ftz` (176 languages), through the
//! C++ fastText of the `fasttext` crate 0.7.8.
use std::path::{Path, PathBuf};

use crate::QualityError;

/// A loaded language-id model; safe to share between threads.
pub struct LanguageId {
    model: fasttext::FastText,
}

impl LanguageId {
    pub fn load(path: &Path) -> Result<Self, QualityError> {
        let bad = |why: String| QualityError::Model {
            path: path.to_owned(),
            why,
        };
        if !path.is_file() {
            return Err(bad(
                "no such file; point filter.lid_model at fastText's lid.176.ftz".into()
            ));
        }
        let p = path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
        let mut model = fasttext::FastText::new();
        model
            .load_model(p)
            .map_err(|e| bad(format!("not a fastText model: {e}")))?;
        Ok(Self { model })
    }

    /// Top language (`en`, `zh`, …) and its probability. Like datatrove, the text is
    /// classified as one line (fastText reads up to the first newline).
    pub fn predict(&self, text: &str) -> (String, f32) {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\0' { ' ' } else { c })
            .collect();
        match self.model.predict(&line, 1, 0.0) {
            Ok(p) if !p.is_empty() => {
                let label = p[0].label.strip_prefix("__label__").unwrap_or(&p[0].label).to_owned();
                (label, p[0].prob.min(1.0))
            }
            _ => ("unknown".to_owned(), 0.0),
        }
    }
}

/// Where the bundled model would be, for error messages.
pub fn default_model_hint() -> PathBuf {
    PathBuf::from("data/lid/lid.176.ftz")
}
