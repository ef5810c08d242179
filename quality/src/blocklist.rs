//! URL/domain blocklist: a document is blocked when its URL's host or any parent domain
//! of it is listed (`ads.example.com` blocks `x.ads.example.com`, not `example.com`), or
//! its URL (without scheme) is listed exactly. Read from a text file (one domain per
//! line, `#` comments) or from a UT1-style `.tar.gz` as datatrove ships it for FineWeb's
//! URL filter: members ending in `domains` hold domains, members ending in `urls` URLs.
//!
//! Entries are kept as 64-bit hashes: the UT1 list has 4.6 M domains, ~45 MB this way
//! instead of ~300 MB of strings (a false match needs a 64-bit collision: ~10⁻⁶ over the
//! whole list).
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use crate::QualityError;

#[derive(Debug, Default)]
pub struct Blocklist {
    domains: HashSet<u64>,
    urls: HashSet<u64>,
}

fn h(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

fn clean(line: &str) -> Option<String> {
    let l = line.split('#').next().unwrap_or("").trim().trim_end_matches('.');
    (!l.is_empty()).then(|| l.to_ascii_lowercase())
}

/// A URL as the list writes it: no scheme, no `www.`, no trailing slash, lowercase host.
fn url_key(url: &url::Url) -> Option<String> {
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    let mut k = host;
    k.push_str(url.path().trim_end_matches('/'));
    if let Some(q) = url.query() {
        k.push('?');
        k.push_str(q);
    }
    Some(k)
}

impl Blocklist {
    /// A text file of domains, or a `.tar.gz` / `.tgz` / `.tar` of `domains` and `urls`
    /// members.
    pub fn load(path: &Path) -> Result<Self, QualityError> {
        let err = |why: String| QualityError::Blocklist {
            path: path.to_owned(),
            why,
        };
        let name = path.to_string_lossy().to_ascii_lowercase();
        let is_tar = name.ends_with(".tar.gz") || name.ends_with(".tgz") || name.ends_with(".tar");
        if !is_tar {
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            return Ok(Self::parse(&text));
        }
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let reader: Box<dyn Read> = if name.ends_with(".tar") {
            Box::new(std::io::BufReader::new(file))
        } else {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)))
        };
        let mut list = Self::default();
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| err(format!("not a tar archive: {e}")))?;
        let mut members = 0;
        for entry in entries {
            let mut entry = entry.map_err(|e| err(format!("corrupt tar archive: {e}")))?;
            let member = entry
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let urls = member.ends_with("urls");
            if !(urls || member.ends_with("domains")) {
                continue;
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| err(format!("member {member}: {e} (must be UTF-8 text)")))?;
            members += 1;
            for l in text.lines().filter_map(clean) {
                if urls {
                    let l = l.strip_prefix("www.").unwrap_or(&l);
                    list.urls.insert(h(l.trim_end_matches('/')));
                } else {
                    list.domains.insert(h(&l));
                }
            }
        }
        if members == 0 {
            return Err(err(
                "the archive has no `domains` or `urls` member; give a UT1-style blocklist or a text file of domains"
                    .into(),
            ));
        }
        Ok(list)
    }

    pub fn parse(text: &str) -> Self {
        Self {
            domains: text.lines().filter_map(clean).map(|l| h(&l)).collect(),
            urls: HashSet::new(),
        }
    }

    /// Listed domains and URLs.
    pub fn len(&self) -> usize {
        self.domains.len() + self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.urls.is_empty()
    }

    /// The listed domain (or URL) that blocks `url`, if any.
    pub fn blocks(&self, url: &str) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let parsed = url::Url::parse(url).ok()?;
        let host = parsed.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        let mut s = host.as_str();
        if !self.domains.is_empty() {
            loop {
                if self.domains.contains(&h(s)) {
                    return Some(s.to_owned());
                }
                match s.split_once('.') {
                    Some((_, rest)) => s = rest,
                    None => break,
                }
            }
        }
        if !self.urls.is_empty() {
            let k = url_key(&parsed)?;
            if self.urls.contains(&h(&k)) {
                return Some(k);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_parent_domains_are_blocked() {
        let b = Blocklist::parse("# spam\nads.example.com\nbad.test  # trailing comment\n");
        assert_eq!(b.len(), 2);
        assert_eq!(
            b.blocks("http://x.ads.example.com/p").as_deref(),
            Some("ads.example.com")
        );
        assert_eq!(b.blocks("https://BAD.test./").as_deref(), Some("bad.test"));
        assert_eq!(b.blocks("http://example.com/"), None);
        assert_eq!(b.blocks("not a url"), None);
    }

    /// The real UT1 list as datatrove ships it (../shared/data/blocklist).
    #[test]
    fn ut1_tarball_is_read_directly() -> Result<(), QualityError> {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/blocklist/url_filterblacklistsv0_3_0.tar.gz");
        if !p.exists() {
            panic!("{} missing: the shared data must sit beside the checkout", p.display());
        }
        let b = Blocklist::load(&p)?;
        // 4,558,939 domain lines and 19,586 URL lines, a few of them repeated.
        assert!(
            b.domains.len() > 4_500_000 && b.urls.len() > 19_000,
            "{} {}",
            b.domains.len(),
            b.urls.len()
        );
        let text = {
            let mut s = String::new();
            let f = std::fs::File::open(&p).map_err(|e| QualityError::Blocklist {
                path: p.clone(),
                why: e.to_string(),
            })?;
            let mut a = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
            for e in a.entries().map_err(|e| QualityError::Blocklist {
                path: p.clone(),
                why: e.to_string(),
            })? {
                let mut e = e.map_err(|e| QualityError::Blocklist {
                    path: p.clone(),
                    why: e.to_string(),
                })?;
                if e.path().is_ok_and(|x| x.ends_with("domains")) {
                    let _ = e.read_to_string(&mut s);
                }
            }
            s
        };
        let listed = text.lines().next().unwrap_or_default().trim().to_owned();
        assert!(!listed.is_empty());
        assert_eq!(
            b.blocks(&format!("https://www.{listed}/x")).as_deref(),
            Some(listed.as_str())
        );
        assert_eq!(b.blocks("https://www.gutenberg.org/ebooks/2701"), None);
        let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml.tar.gz");
        assert!(Blocklist::load(&bad).is_err());
        Ok(())
    }
}
