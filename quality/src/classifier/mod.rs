//! The quality classifier: a fastText supervised model that tells text like a curated
//! reference (`__label__hq`) from text like the crawl pool (`__label__cc`), as DCLM's
//! filter does. It is a *reference-likeness* classifier: it scores how much a document
//! resembles the positives it was trained on, nothing more.
//!
//! 1. [`Normalizer`] — the one text normalisation used for training lines and for scoring.
//! 2. [`train`] — fastText `supervised` training and quantization through the C++ library
//!    the `fasttext` crate 0.7.8 builds (DCLM's recipe as the defaults of [`FastTextArgs`]).
//! 3. [`QualityModel`] — a loaded `.bin`/`.ftz`, checked to have exactly the labels
//!    `hq` and `cc`, scoring P(hq).
//! 4. [`metrics`] — held-out ROC-AUC, precision/recall/F1, the F1-optimal threshold.
pub mod fast;
pub mod metrics;
pub mod model_file;
pub mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use train::{quantize, train_supervised, FastTextArgs, Loss, QuantizeArgs};

/// The label of reference-like (positive) examples.
pub const LABEL_HQ: &str = "__label__hq";
/// The label of pool-like (negative) examples.
pub const LABEL_CC: &str = "__label__cc";

/// Errors of the classifier; each names the model file or the setting and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("quality model {path}: {why}")]
    Model { path: PathBuf, why: String },
    #[error("fastText training on {input}: {why}")]
    Train { input: PathBuf, why: String },
    #[error("invalid quality setting: {0}")]
    Config(String),
}

/// Text as the classifier sees it, in training and in scoring alike: every run of
/// whitespace (Unicode White_Space, and NUL) becomes one space, the substring `__label__`
/// is removed (so text cannot inject labels), case is kept, and the result is cut to at
/// most `max_chars` characters (0: no limit) at a character boundary. With `split_cjk`,
/// each Han, Kana and Hangul character and each CJK punctuation mark becomes a word of
/// its own: fastText splits words at spaces only, and Chinese and Japanese have none, so
/// without it a sentence is one unseen "word" and the model learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalizer {
    pub max_chars: usize,
    pub split_cjk: bool,
}

impl Default for Normalizer {
    /// 10,000 characters: a few pages of prose, beyond which the verdict rarely changes
    /// and fastText's cost keeps growing.
    fn default() -> Self {
        Self {
            max_chars: 10_000,
            split_cjk: true,
        }
    }
}

/// A character that is a word by itself in scripts written without spaces.
fn cjk_token(c: char) -> bool {
    crate::words::is_cjk(c) || matches!(c as u32, 0x3000..=0x303F | 0xFF00..=0xFFEF)
}

impl Normalizer {
    /// Appends the normalised `text` to `out` (cleared first); trims both ends.
    pub fn normalize_into(&self, text: &str, out: &mut String) {
        out.clear();
        let limit = if self.max_chars == 0 {
            usize::MAX
        } else {
            self.max_chars
        };
        let mut chars = 0usize;
        let mut space = false;
        let b = text.as_bytes();
        let mut i = 0;
        'text: while i < b.len() {
            if b[i] < 0x80 {
                // ASCII: a whole run of word bytes at once.
                if matches!(b[i], b' ' | b'\t'..=b'\r' | 0) {
                    space = !out.is_empty();
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b.len() && b[i] < 0x80 && !matches!(b[i], b' ' | b'\t'..=b'\r' | 0) {
                    i += 1;
                }
                if chars + usize::from(space) >= limit {
                    break;
                }
                if space {
                    out.push(' ');
                    chars += 1;
                }
                let take = (i - start).min(limit - chars);
                out.push_str(&text[start..start + take]);
                chars += take;
                space = false;
                if take < i - start {
                    break;
                }
                continue;
            }
            for c in text[i..].chars() {
                if c.is_ascii() {
                    continue 'text;
                }
                i += c.len_utf8();
                if c.is_whitespace() {
                    space = !out.is_empty();
                    continue;
                }
                let solo = self.split_cjk && cjk_token(c);
                if solo && !out.is_empty() {
                    space = true;
                }
                if chars + usize::from(space) + 1 > limit {
                    break 'text;
                }
                if space {
                    out.push(' ');
                    chars += 1;
                }
                out.push(c);
                chars += 1;
                // A character that is a word of its own ends the word.
                space = solo;
            }
        }
        // `__label__` can also form across a removed occurrence ("__la__label__bel__").
        while let Some(i) = out.find("__label__") {
            out.replace_range(i..i + "__label__".len(), "");
        }
    }

    pub fn normalize(&self, text: &str) -> String {
        let mut s = String::new();
        self.normalize_into(text, &mut s);
        s
    }
}

/// How a model is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// [`fast::FastClassifier`] when the model allows it (softmax, no character
    /// n-grams), else fastText's C++.
    Auto,
    /// Always fastText's C++ `predict` (through the `fasttext` crate).
    Cpp,
}

enum Inner {
    Fast(Box<fast::FastClassifier>),
    Cpp(fasttext::FastText),
}

/// A loaded quality model (`.bin`, or quantized `.ftz`); safe to share between threads.
pub struct QualityModel {
    inner: Inner,
    path: PathBuf,
    info: model_file::ModelInfo,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<fast::Scratch> = Default::default();
}

impl QualityModel {
    /// Loads `path` and checks it is a supervised fastText model whose labels are exactly
    /// `__label__hq` and `__label__cc`.
    pub fn load(path: &Path) -> Result<Self, ClassifierError> {
        Self::load_with(path, Engine::Auto)
    }

    pub fn load_with(path: &Path, engine: Engine) -> Result<Self, ClassifierError> {
        let bad = |why: String| ClassifierError::Model {
            path: path.to_owned(),
            why,
        };
        if !path.is_file() {
            return Err(bad(
                "no such file; train it with `loam quality train`, or fix the path".into()
            ));
        }
        // fastText trusts every size in the file: a damaged one must not reach it.
        let file = model_file::read(path).map_err(|why| {
            bad(format!(
                "{why}; not a usable fastText model — retrain it with `loam quality train` or point at the right file"
            ))
        })?;
        let info = file.info.clone();
        if info.model != 3 {
            return Err(bad("a word-vector model, not a supervised classifier".into()));
        }
        let mut sorted = info.labels.clone();
        sorted.sort();
        if sorted != [LABEL_CC, LABEL_HQ] {
            return Err(bad(format!(
                "its labels are {:?}; a quality model has exactly {LABEL_HQ} and {LABEL_CC} — train one with `loam quality train`",
                info.labels
            )));
        }
        let hq = info.labels.iter().position(|l| l == LABEL_HQ).unwrap_or(0);
        let fast = match engine {
            Engine::Auto => fast::FastClassifier::load(path, &file, hq).map_err(bad)?,
            Engine::Cpp => None,
        };
        let inner = match fast {
            Some(f) => Inner::Fast(Box::new(f)),
            None => {
                let p = path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
                let mut model = fasttext::FastText::new();
                model.load_model(p).map_err(|e| {
                    bad(format!(
                        "fastText cannot read it ({e}); retrain it with `loam quality train`"
                    ))
                })?;
                Inner::Cpp(model)
            }
        };
        Ok(Self {
            inner,
            path: path.to_owned(),
            info,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the model file says about itself (dimension, labels, quantized, …).
    pub fn info(&self) -> &model_file::ModelInfo {
        &self.info
    }

    /// Whether scoring takes the projected fast path (else fastText's C++).
    pub fn is_fast(&self) -> bool {
        matches!(self.inner, Inner::Fast(_))
    }

    /// P(hq) of an already-normalised line (see [`Normalizer`]), as Python fastText's
    /// `predict(line, k=-1)` reports it: `predict` appends `\n`, so fastText counts the
    /// end-of-line token `</s>`, as it did for every training line. 0 when fastText would
    /// predict nothing (no known word).
    pub fn score_normalized(&self, line: &str) -> f32 {
        match &self.inner {
            Inner::Fast(f) => SCRATCH.with(|s| f.predict(line, &mut s.borrow_mut()).map_or(0.0, |p| p.clamp(0.0, 1.0))),
            Inner::Cpp(model) => {
                let mut text = String::with_capacity(line.len() + 1);
                text.push_str(line);
                text.push('\n');
                match model.predict(&text, -1, 0.0) {
                    Ok(preds) => preds
                        .iter()
                        .find(|p| p.label == LABEL_HQ)
                        .map_or(0.0, |p| p.prob.clamp(0.0, 1.0)),
                    Err(_) => 0.0,
                }
            }
        }
    }
}

/// A loaded multi-label fastText classifier (remix's topic model): the most likely label
/// of a line and its probability, through fastText's C++ `predict`.
pub struct TopicModel {
    model: fasttext::FastText,
    labels: Vec<String>,
}

impl TopicModel {
    /// Loads `path` and checks it is a supervised fastText model with at least two labels.
    pub fn load(path: &Path) -> Result<Self, ClassifierError> {
        let bad = |why: String| ClassifierError::Model {
            path: path.to_owned(),
            why,
        };
        let file = model_file::read(path)
            .map_err(|why| bad(format!("{why}; retrain it with `loam remix --phase train --force`")))?;
        if file.info.model != 3 || file.info.labels.len() < 2 {
            return Err(bad(
                "not a supervised fastText classifier with two or more labels".into()
            ));
        }
        let p = path.to_str().ok_or_else(|| bad("path is not UTF-8".into()))?;
        let mut model = fasttext::FastText::new();
        model
            .load_model(p)
            .map_err(|e| bad(format!("fastText cannot read it ({e})")))?;
        let labels = file
            .info
            .labels
            .iter()
            .map(|l| l.trim_start_matches("__label__").to_owned())
            .collect();
        Ok(Self { model, labels })
    }

    /// Labels without the `__label__` prefix, in the model's order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The most likely label of an already-normalised line (with `</s>` counted, as in
    /// training) and its probability; `None` when fastText predicts nothing.
    pub fn predict_normalized(&self, line: &str) -> Option<(String, f32)> {
        let mut text = String::with_capacity(line.len() + 1);
        text.push_str(line);
        text.push('\n');
        let preds = self.model.predict(&text, 1, 0.0).ok()?;
        preds.into_iter().next().map(|p| {
            (
                p.label.trim_start_matches("__label__").to_owned(),
                p.prob.clamp(0.0, 1.0),
            )
        })
    }
}

impl std::fmt::Debug for TopicModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicModel").field("labels", &self.labels).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer_collapses_whitespace_removes_labels_keeps_case() {
        let n = Normalizer {
            max_chars: 0,
            split_cjk: false,
        };
        assert_eq!(
            n.normalize("  The\tCat\n\n sat\u{3000}on\0the __label__hq mat  "),
            "The Cat sat on the hq mat"
        );
        assert_eq!(n.normalize("a__la__label__bel__b"), "ab");
        assert_eq!(n.normalize("\n\n"), "");
    }

    #[test]
    fn normalizer_truncates_at_a_character_boundary() {
        let n = Normalizer {
            max_chars: 5,
            split_cjk: false,
        };
        assert_eq!(n.normalize("你好 世界 再见"), "你好 世界");
        assert_eq!(n.normalize("ab   cd ef"), "ab cd");
        assert_eq!(n.normalize("abcdefgh"), "abcde");
    }

    /// The normaliser's definition, one character at a time (the real one takes ASCII
    /// runs at once).
    fn reference(n: &Normalizer, text: &str) -> String {
        let mut out = String::new();
        let (mut chars, mut space) = (0usize, false);
        for c in text.chars() {
            if c.is_whitespace() || c == '\0' {
                space = !out.is_empty();
                continue;
            }
            let solo = n.split_cjk && cjk_token(c);
            if solo && !out.is_empty() {
                space = true;
            }
            if n.max_chars > 0 && chars + usize::from(space) + 1 > n.max_chars {
                break;
            }
            if space {
                out.push(' ');
                chars += 1;
            }
            out.push(c);
            chars += 1;
            space = solo;
        }
        while let Some(i) = out.find("__label__") {
            out.replace_range(i..i + 9, "");
        }
        out
    }

    #[test]
    fn normalizer_equals_its_definition_on_mixed_text() {
        let pieces = [
            "word",
            " ",
            "  ",
            "\t",
            "\n\n",
            "\0",
            "\u{a0}",
            "\u{3000}",
            "中文",
            "。",
            "ｆｕｌｌ",
            "é",
            "__label__",
            "__la",
            "bel__",
            "x",
            "\r\n",
            "\u{2028}",
            "한국어",
            "ﾊﾟ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..4000 {
            let mut text = String::new();
            for _ in 0..(state % 17) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            for max_chars in [0, 1, 3, 7, 20] {
                for split_cjk in [false, true] {
                    let n = Normalizer { max_chars, split_cjk };
                    assert_eq!(
                        n.normalize(&text),
                        reference(&n, &text),
                        "{text:?} {max_chars} {split_cjk}"
                    );
                }
            }
        }
    }

    #[test]
    fn normalizer_makes_cjk_characters_words() {
        let n = Normalizer {
            max_chars: 0,
            split_cjk: true,
        };
        assert_eq!(
            n.normalize("床前明月光，疑是地上霜。"),
            "床 前 明 月 光 ， 疑 是 地 上 霜 。"
        );
        assert_eq!(n.normalize("用 apt-get 安装软件"), "用 apt-get 安 装 软 件");
        assert_eq!(n.normalize("ひらがなとEnglish"), "ひ ら が な と English");
        let short = Normalizer {
            max_chars: 5,
            split_cjk: true,
        };
        assert_eq!(short.normalize("你好世界"), "你 好 世");
    }
}
