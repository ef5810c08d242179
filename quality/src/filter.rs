//! The document filter as FineWeb orders it: URL blocklist → language id → Gopher
//! repetition → Gopher quality → C4 (line edits) → FineWeb. Built from [`FilterConfig`].
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::blocklist::Blocklist;
use crate::lid::LanguageId;
use crate::rules::{
    C4Config, C4Quality, FineWebConfig, FineWebQuality, GopherQuality, GopherQualityConfig, GopherRepetition,
    GopherRepetitionConfig, Measure, Rule, TextDoc, Verdict,
};
use crate::QualityError;

/// `[filter]` settings. Defaults are datatrove 0.10.1's, FineWeb's C4 setting
/// (no terminal-punctuation rule), and DeepSeek's languages (English and Chinese).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// fastText `lid.176.ftz`.
    pub lid_model: PathBuf,
    /// Languages to keep (fastText codes); empty keeps every language.
    pub languages: Vec<String>,
    /// Minimum language-id probability (FineWeb: 0.65 for English).
    pub min_language_score: f32,
    /// Optional domain blocklist file.
    pub blocklist: Option<PathBuf>,
    pub gopher_repetition: GopherRepetitionConfig,
    pub gopher_quality: GopherQualityConfig,
    pub c4: C4Config,
    pub fineweb: FineWebConfig,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            lid_model: crate::lid::default_model_hint(),
            languages: vec!["en".into(), "zh".into()],
            min_language_score: 0.65,
            blocklist: None,
            gopher_repetition: GopherRepetitionConfig::default(),
            gopher_quality: GopherQualityConfig::default(),
            c4: C4Config::default(),
            fineweb: FineWebConfig::default(),
        }
    }
}

/// What the filter decided about one document.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterOutcome {
    pub language: String,
    pub language_score: f32,
    /// The (possibly edited) text, or the drop reason.
    pub result: Result<String, String>,
    pub lines_removed: u32,
    pub edited: bool,
}

/// The enabled heuristic rules of `cfg`, in the filter's order.
fn rules_of(cfg: &FilterConfig) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    if cfg.gopher_repetition.enabled {
        rules.push(Box::new(GopherRepetition::new(cfg.gopher_repetition.clone())));
    }
    if cfg.gopher_quality.enabled {
        rules.push(Box::new(GopherQuality::new(cfg.gopher_quality.clone())));
    }
    if cfg.c4.enabled {
        rules.push(Box::new(C4Quality::new(cfg.c4.clone())));
    }
    if cfg.fineweb.enabled {
        rules.push(Box::new(FineWebQuality::new(cfg.fineweb.clone())));
    }
    rules
}

/// The heuristic rules alone (no language id, no blocklist), measuring rather than
/// deciding: the report recomputes each rule's quantities on a document sample.
pub struct RuleMeter {
    rules: Vec<Box<dyn Rule>>,
}

impl RuleMeter {
    pub fn new(cfg: &FilterConfig) -> Self {
        Self { rules: rules_of(cfg) }
    }

    /// Every measure of every rule on `text` in language `lang`, each rule seeing the
    /// text as it stands (the measures do not edit it).
    pub fn measure(&self, text: &str, lang: &str) -> Vec<Measure<'_>> {
        let mut doc = TextDoc::new(text.to_owned(), lang);
        self.rules.iter().flat_map(|r| r.measure(&mut doc)).collect()
    }
}

pub struct DocumentFilter {
    cfg: FilterConfig,
    lid: LanguageId,
    blocklist: Blocklist,
    rules: Vec<Box<dyn Rule>>,
}

impl DocumentFilter {
    pub fn new(cfg: FilterConfig) -> Result<Self, QualityError> {
        if !(0.0..=1.0).contains(&cfg.min_language_score) {
            return Err(QualityError::Config(format!(
                "filter.min_language_score = {} must be between 0 and 1",
                cfg.min_language_score
            )));
        }
        let lid = LanguageId::load(&cfg.lid_model)?;
        let blocklist = match &cfg.blocklist {
            Some(p) => Blocklist::load(p)?,
            None => Blocklist::default(),
        };
        let rules = rules_of(&cfg);
        Ok(Self {
            cfg,
            lid,
            blocklist,
            rules,
        })
    }

    /// Runs every check on one document.
    pub fn apply(&self, text: &str, url: Option<&str>) -> FilterOutcome {
        let (language, language_score) = self.lid.predict(text);
        let mut out = FilterOutcome {
            language,
            language_score,
            result: Err(String::new()),
            lines_removed: 0,
            edited: false,
        };
        if url.and_then(|u| self.blocklist.blocks(u)).is_some() {
            out.result = Err("url_blocklist".into());
            return out;
        }
        if !self.cfg.languages.is_empty() && !self.cfg.languages.contains(&out.language) {
            out.result = Err("language_not_kept".into());
            return out;
        }
        if out.language_score < self.cfg.min_language_score {
            out.result = Err("language_score_low".into());
            return out;
        }
        let mut doc = TextDoc::new(text.to_owned(), &out.language);
        for rule in &self.rules {
            if let Verdict::Drop(reason) = rule.check(&mut doc) {
                out.result = Err(reason.to_owned());
                out.lines_removed = doc.lines_removed;
                out.edited = doc.edited;
                return out;
            }
        }
        out.lines_removed = doc.lines_removed;
        out.edited = doc.edited;
        out.result = Ok(doc.into_text());
        out
    }
}
