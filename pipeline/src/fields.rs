//! Derived document fields: registered domain of a URL, timestamps, dump names.

/// Registered domain of `url` (public-suffix aware: `news.bbc.co.uk` → `bbc.co.uk`);
/// the host itself for IP addresses and hosts without a known suffix.
pub fn registered_domain(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    if matches!(parsed.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        return Some(host);
    }
    match psl::domain_str(&host) {
        Some(d) => Some(d.to_owned()),
        None if !host.is_empty() => Some(host),
        None => None,
    }
}

/// Parses RFC 3339 / ISO 8601 timestamps (`2014-08-20T02:13:34Z`, with optional
/// fraction and `±hh:mm` offset) and bare dates (`2014-08-20`) to Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if b.len() == 10 {
        return Some(secs);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    secs += hh * 3600 + mm * 60 + ss;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    match rest {
        "" | "Z" | "z" => Some(secs),
        off if off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) && &off[3..4] == ":" => {
            let h: i64 = off[1..3].parse().ok()?;
            let m: i64 = off[4..6].parse().ok()?;
            let delta = h * 3600 + m * 60;
            Some(if off.starts_with('+') {
                secs - delta
            } else {
                secs + delta
            })
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Common Crawl dump a file belongs to, from a `CC-MAIN-YYYY-WW` in its path.
/// File names of a dump hold only the crawl timestamp (`CC-MAIN-20140820021334-…`), so
/// the dump is looked for in every path component.
pub fn dump_from_path(path: &std::path::Path) -> Option<String> {
    for comp in path.components().rev() {
        // Case-insensitive: mirrors often lower-case the folder (`cc-main-2014-35/`).
        let c = comp.as_os_str().to_string_lossy().to_ascii_uppercase();
        let mut rest: &str = &c;
        while let Some(i) = rest.find("CC-MAIN-") {
            let cand = &rest[i..];
            let b = cand.as_bytes();
            let ok = b.len() >= 15
                && b[8..12].iter().all(u8::is_ascii_digit)
                && b[12] == b'-'
                && b[13..15].iter().all(u8::is_ascii_digit)
                && b.get(15).is_none_or(|c| !c.is_ascii_digit());
            if ok {
                return Some(cand[..15].to_owned());
            }
            rest = &cand[8..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(
            registered_domain("http://news.bbc.co.uk/a").as_deref(),
            Some("bbc.co.uk")
        );
        assert_eq!(
            registered_domain("https://www.Example.COM./x?y").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            registered_domain("http://192.168.0.1:8080/").as_deref(),
            Some("192.168.0.1")
        );
        assert_eq!(registered_domain("not a url"), None);
    }

    #[test]
    fn timestamps_parse_to_unix_seconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2014-08-20T02:13:34Z"), Some(1_408_500_814));
        assert_eq!(parse_timestamp("2014-08-20T04:13:34.250+02:00"), Some(1_408_500_814));
        assert_eq!(parse_timestamp("2014-08-20"), Some(1_408_492_800));
        assert_eq!(parse_timestamp("20/08/2014"), None);
        assert_eq!(parse_timestamp("2014-13-01"), None);
    }

    #[test]
    fn dump_names_come_from_cc_paths() {
        let p = Path::new("crawl/cc-main-2014-35/CC-MAIN-20140820021334-00006.warc.gz");
        assert_eq!(dump_from_path(p).as_deref(), Some("CC-MAIN-2014-35"));
        let p = Path::new("x/CC-MAIN-20140820021334-00006.warc.gz");
        assert_eq!(dump_from_path(p), None, "a crawl timestamp is not a dump name");
        let p = Path::new("s3/CC-MAIN-2024-10/segments/x.warc.gz");
        assert_eq!(dump_from_path(p).as_deref(), Some("CC-MAIN-2024-10"));
    }
}
