//! URL/domain blocklist: one domain per line (`#` comments); a document is blocked when
//! its URL's host or any parent domain of it is listed (`ads.example.com` blocks
//! `x.ads.example.com`, not `example.com`).
use std::collections::HashSet;
use std::path::Path;

use crate::QualityError;

#[derive(Debug, Default)]
pub struct Blocklist {
    domains: HashSet<String>,
}

impl Blocklist {
    pub fn load(path: &Path) -> Result<Self, QualityError> {
        let text = std::fs::read_to_string(path).map_err(|e| QualityError::Blocklist {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let domains = text
            .lines()
            .map(|l| {
                l.split('#')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_end_matches('.')
                    .to_ascii_lowercase()
            })
            .filter(|l| !l.is_empty())
            .collect();
        Self { domains }
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The listed domain that blocks `url`, if any.
    pub fn blocks(&self, url: &str) -> Option<&str> {
        if self.domains.is_empty() {
            return None;
        }
        let host = url::Url::parse(url)
            .ok()?
            .host_str()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut h = host.as_str();
        loop {
            if let Some(d) = self.domains.get(h) {
                return Some(d);
            }
            h = h.split_once('.')?.1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_parent_domains_are_blocked() {
        let b = Blocklist::parse("# spam\nads.example.com\nbad.test  # trailing comment\n");
        assert_eq!(b.len(), 2);
        assert_eq!(b.blocks("http://x.ads.example.com/p"), Some("ads.example.com"));
        assert_eq!(b.blocks("https://BAD.test./"), Some("bad.test"));
        assert_eq!(b.blocks("http://example.com/"), None);
        assert_eq!(b.blocks("not a url"), None);
    }
}
