//! Mixture domains from URLs: a host-suffix table (TSV `suffix<TAB>domain`) and the UT1
//! blocklist, tried in the configured order; a document nothing matches is `other`.
//!
//! Table entries match whole labels from the right of the host (lowercased, `www.` and a
//! trailing dot removed): `example.com` matches `example.com` and `a.example.com`, not
//! `badexample.com`; `.gov` (a leading dot is optional) matches every host under `gov`; a
//! `*` label matches any one label (`ac.*` covers `ox.ac.uk` and `u-tokyo.ac.jp`). The
//! entry matching the most labels wins; at equal length a literal label beats `*`, and
//! among the tables the user's come first, then loam's default.
use std::collections::HashMap;
use std::path::Path;

use loam_quality::classifier::{Normalizer, TopicModel};
use loam_quality::Blocklist;

use super::{DomainSource, RemixConfig};
use crate::error::{PipelineError, Result};

/// loam's default table: the hosts of the bundled corpora and well-known sites.
pub const BUILTIN_TABLE: &str = include_str!("../../../data/remix/domains.tsv");
pub const BUILTIN_NAME: &str = "data/remix/domains.tsv (built in)";

/// The domain of documents nothing matched.
pub const OTHER: &str = "other";
/// The domain of hosts on the blocklist.
pub const BLOCKED: &str = "blocked";

/// A host-suffix table, possibly merged from several files.
#[derive(Debug, Default)]
pub struct HostTable {
    /// Reversed labels joined by '.', e.g. `com.example` → (domain, table order).
    exact: HashMap<String, (String, usize)>,
    /// Entries with a `*` label: reversed labels, domain, table order.
    wild: Vec<(Vec<String>, String, usize)>,
    /// Every domain a table can give, in first-seen order.
    domains: Vec<String>,
    tables: usize,
}

pub(crate) fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl HostTable {
    /// Adds a table's entries (later tables lose to earlier ones at equal length).
    pub fn add(&mut self, text: &str, name: &str) -> Result<()> {
        let order = self.tables;
        self.tables += 1;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |what: String| PipelineError::BadFile {
                path: name.into(),
                offset: 0,
                what: format!("line {}: {what}", i + 1),
                fix: "write `suffix<TAB>domain`, e.g. `.gov\tgovernment` (domains: lowercase a-z, 0-9, _ or -)".into(),
            };
            let mut cols = line.split('\t').map(str::trim).filter(|c| !c.is_empty());
            let (Some(suffix), Some(domain), None) = (cols.next(), cols.next(), cols.next()) else {
                return Err(bad(format!("{line:?} is not two tab-separated columns")));
            };
            if !valid_domain(domain) || domain == BLOCKED {
                return Err(bad(format!(
                    "domain {domain:?} is not a plain lowercase name (or is reserved)"
                )));
            }
            let suffix = suffix
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let labels: Vec<String> = suffix.split('.').rev().map(str::to_owned).collect();
            if suffix.is_empty() || labels.iter().any(String::is_empty) {
                return Err(bad(format!("{suffix:?} is not a host suffix")));
            }
            if !self.domains.iter().any(|d| d == domain) {
                self.domains.push(domain.to_owned());
            }
            if labels.iter().any(|l| l == "*") {
                self.wild.push((labels, domain.to_owned(), order));
            } else {
                self.exact.entry(labels.join(".")).or_insert((domain.to_owned(), order));
            }
        }
        Ok(())
    }

    /// The user's tables, then (when `builtin`) loam's.
    pub fn load(paths: &[std::path::PathBuf], builtin: bool) -> Result<Self> {
        let mut t = Self::default();
        for p in paths {
            let text = std::fs::read_to_string(p)
                .map_err(|e| PipelineError::Config(format!("remix.tables: cannot read {}: {e}", p.display())))?;
            t.add(&text, &p.display().to_string())?;
        }
        if builtin {
            t.add(BUILTIN_TABLE, BUILTIN_NAME)?;
        }
        Ok(t)
    }

    /// Domains the tables can give.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The domain of `host` (already lowercased, `www.`-free), by the longest match.
    pub fn lookup(&self, host: &str) -> Option<&str> {
        let rev: Vec<&str> = host.split('.').rev().collect();
        let mut best: Option<(MatchRank, &str)> = None;
        let mut key = String::new();
        for n in 1..=rev.len() {
            if n > 1 {
                key.push('.');
            }
            key.push_str(rev[n - 1]);
            if let Some((d, order)) = self.exact.get(&key) {
                let rank = (n, true, std::cmp::Reverse(*order));
                if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                    best = Some((rank, d.as_str()));
                }
            }
        }
        for (labels, d, order) in &self.wild {
            if labels.len() <= rev.len() && labels.iter().zip(&rev).all(|(l, h)| l == "*" || l == h) {
                let rank = (labels.len(), false, std::cmp::Reverse(*order));
                if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                    best = Some((rank, d.as_str()));
                }
            }
        }
        best.map(|(_, d)| d)
    }
}

/// How good a table match is: labels matched, literal (beats wildcard), earlier table.
type MatchRank = (usize, bool, std::cmp::Reverse<usize>);

/// The host of a URL as the table matches it.
pub fn host_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let h = u.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    Some(h.strip_prefix("www.").map(str::to_owned).unwrap_or(h))
}

/// Assigns domains by the configured precedence.
#[derive(Debug)]
pub struct Assigner {
    table: HostTable,
    blocklist: Option<Blocklist>,
    /// The topic model, its normaliser and the probability it must reach.
    topic: Option<(TopicModel, Normalizer, f64)>,
    order: Vec<DomainSource>,
}

impl Assigner {
    /// `topic_model`: the trained topic classifier, when `assign` names it.
    pub fn new(cfg: &RemixConfig, topic_model: Option<&Path>) -> Result<Self> {
        let table = HostTable::load(&cfg.tables, cfg.builtin_table)?;
        let blocklist = match &cfg.blocklist {
            Some(p) if cfg.assign.iter().any(|a| a == "blocklist") => {
                Some(Blocklist::load(p).map_err(|e| PipelineError::Config(format!("remix.blocklist: {e}")))?)
            }
            _ => None,
        };
        let topic = match (&cfg.classifier, topic_model) {
            (Some(c), Some(p)) if cfg.uses_classifier() => Some((
                TopicModel::load(p).map_err(|e| PipelineError::Config(e.to_string()))?,
                c.normalize,
                c.min_score,
            )),
            _ => None,
        };
        let order = cfg
            .assign
            .iter()
            .map(|a| match a.as_str() {
                "table" => DomainSource::Table,
                "blocklist" => DomainSource::Blocklist,
                _ => DomainSource::Classifier,
            })
            .collect();
        Ok(Self {
            table,
            blocklist,
            topic,
            order,
        })
    }

    /// Every domain this assigner can give, `other` last.
    pub fn domains(&self) -> Vec<String> {
        let mut d: Vec<String> = Vec::new();
        for s in &self.order {
            match s {
                DomainSource::Table => d.extend(self.table.domains().iter().cloned()),
                DomainSource::Blocklist => d.push(BLOCKED.into()),
                DomainSource::Classifier => {
                    if let Some((m, _, _)) = &self.topic {
                        d.extend(m.labels().iter().cloned());
                    }
                }
                DomainSource::Default => {}
            }
        }
        let mut seen: Vec<String> = Vec::new();
        d.retain(|x| {
            let new = x != OTHER && !seen.contains(x);
            seen.push(x.clone());
            new
        });
        d.push(OTHER.into());
        d
    }

    /// The domain of a document with this URL and text, what gave it, and the
    /// classifier's probability when it did (`scratch`: the normaliser's buffer).
    pub fn assign(&self, url: Option<&str>, text: &str, scratch: &mut String) -> (String, DomainSource, Option<f32>) {
        let host = url.and_then(host_of);
        for s in &self.order {
            match s {
                DomainSource::Table => {
                    if let Some(d) = host.as_deref().and_then(|h| self.table.lookup(h)) {
                        return (d.to_owned(), DomainSource::Table, None);
                    }
                }
                DomainSource::Blocklist => {
                    if url.is_some_and(|u| self.blocklist.as_ref().is_some_and(|b| b.blocks(u).is_some())) {
                        return (BLOCKED.into(), DomainSource::Blocklist, None);
                    }
                }
                DomainSource::Classifier => {
                    if let Some((m, norm, min)) = &self.topic {
                        norm.normalize_into(text, scratch);
                        if let Some((label, p)) = m.predict_normalized(scratch) {
                            if f64::from(p) >= *min {
                                return (label, DomainSource::Classifier, Some(p));
                            }
                        }
                    }
                }
                DomainSource::Default => {}
            }
        }
        (OTHER.into(), DomainSource::Default, None)
    }
}

/// Reads a blocklist for a stage; the path named in the error.
pub fn load_blocklist(p: &Path) -> Result<Blocklist> {
    Blocklist::load(p).map_err(|e| PipelineError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> HostTable {
        let mut t = HostTable::default();
        t.add(text, "test.tsv").expect("valid table");
        t
    }

    #[test]
    fn longest_label_suffix_wins() {
        let t = table(".gov\tgovernment\nnasa.gov\tscience\n.edu\teducation\nac.*\teducation\nbbc.co.uk\tnews\n");
        assert_eq!(t.lookup("whitehouse.gov"), Some("government"));
        assert_eq!(t.lookup("nasa.gov"), Some("science"));
        assert_eq!(t.lookup("data.nasa.gov"), Some("science"));
        assert_eq!(t.lookup("mit.edu"), Some("education"));
        assert_eq!(t.lookup("ox.ac.uk"), Some("education"));
        assert_eq!(t.lookup("www.bbc.co.uk"), Some("news"), "a subdomain of a listed host");
        assert_eq!(t.lookup("bbc.co.uk"), Some("news"));
        assert_eq!(t.lookup("notbbc.co.uk"), None);
        assert_eq!(t.lookup("gov"), Some("government"));
        assert_eq!(t.lookup("example.com"), None);
    }

    #[test]
    fn literal_beats_wildcard_and_first_table_beats_later() {
        let mut t = table("ac.uk\tuk_academia\n");
        t.add("ac.*\teducation\nac.uk\tother_rule\n", "second.tsv")
            .expect("valid");
        assert_eq!(t.lookup("ox.ac.uk"), Some("uk_academia"));
        assert_eq!(t.lookup("u-tokyo.ac.jp"), Some("education"));
    }

    #[test]
    fn bad_table_lines_name_the_line() {
        let mut t = HostTable::default();
        let e = t.add("# ok\n.gov government\n", "mine.tsv").expect_err("no tab");
        assert!(
            e.to_string().contains("mine.tsv") && e.to_string().contains("line 2"),
            "{e}"
        );
        let e = t.add(".gov\tGov Stuff\n", "mine.tsv").expect_err("bad name");
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(t.add("x.com\tblocked\n", "mine.tsv").is_err(), "reserved");
    }

    #[test]
    fn builtin_table_parses_and_covers_the_bundled_hosts() {
        let t = HostTable::load(&[], true).expect("built-in table");
        for (host, want) in [
            ("addresses-archive.example", "politics"),
            ("books.whaling-library.example", "literature"),
            ("poetry.classics.example", "literature"),
            ("rights.declarations.example", "law"),
            ("whitehouse.gov", "government"),
            ("stanford.edu", "education"),
            ("en.wikipedia.org", "reference"),
            ("debian.org", "software"),
            ("github.com", "software"),
            ("nytimes.com", "news"),
        ] {
            assert_eq!(t.lookup(host), Some(want), "{host}");
        }
    }

    #[test]
    fn assigner_follows_precedence_and_defaults_to_other() -> Result<()> {
        let cfg = RemixConfig::default();
        let a = Assigner::new(&cfg, None)?;
        let mut s = String::new();
        let mut get = |u: Option<&str>| {
            let (d, src, _) = a.assign(u, "text", &mut s);
            (d, src)
        };
        assert_eq!(
            get(Some("https://www.whitehouse.gov/x")),
            ("government".into(), DomainSource::Table)
        );
        assert_eq!(
            get(Some("http://0pointer.de/photos/")),
            (OTHER.into(), DomainSource::Default)
        );
        assert_eq!(get(None), (OTHER.into(), DomainSource::Default));
        assert_eq!(get(Some("not a url")), (OTHER.into(), DomainSource::Default));
        assert_eq!(a.domains().last().map(String::as_str), Some(OTHER));
        Ok(())
    }
}
