//! Hand-written inline SVG charts: horizontal grouped bars, histograms (stacked series
//! and a threshold line) and line/point charts with linear or log axes. Labels are real
//! `<text>` (the page's font stack carries CJK), every mark has a `<title>` tooltip, and
//! the output is a pure function of the data — byte-identical on every run.
use std::fmt::Write as _;

use crate::model::Histogram;

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies, and in print.
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999",
];

const W: f64 = 640.0;
const FONT: f64 = 12.0;

/// XML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Controls are not allowed in XML 1.0 text.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Approximate rendered width of a label: wide (CJK, full-width) characters take one em,
/// others about 0.6 em — enough to size margins so no label is clipped.
pub fn text_width(s: &str, px: f64) -> f64 {
    s.chars().map(|c| if is_wide(c) { px } else { 0.6 * px }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

/// A number for an axis or a tooltip: compact, with SI-like suffixes above 10,000.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e13).contains(&a) {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m - m.round()).abs() < 1e-9 {
            format!("{}e{e}", m.round())
        } else {
            format!("{m:.1}e{e}")
        }
    } else if a >= 1e9 {
        trim(format!("{:.2}", v / 1e9)) + "G"
    } else if a >= 1e6 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// One axis: its range, scale and label.
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub log: bool,
    pub min: f64,
    pub max: f64,
}

impl Axis {
    /// An axis covering `values` (log axes ignore values ≤ 0).
    pub fn fit(label: &str, log: bool, values: impl IntoIterator<Item = f64>, from_zero: bool) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            if v.is_finite() && (!log || v > 0.0) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if !lo.is_finite() {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if from_zero && !log {
            lo = lo.min(0.0);
        }
        if log {
            // Whole decades when the data spans more than one, else a 10% margin.
            if hi / lo > 10.0 {
                lo = 10f64.powf(lo.log10().floor());
                hi = 10f64.powf(hi.log10().ceil());
            } else {
                lo /= 1.1;
                hi *= 1.1;
            }
        } else if hi - lo < 1e-12 {
            hi = lo + 1.0;
        } else {
            let step = nice_step((hi - lo) / 5.0);
            lo = (lo / step).floor() * step;
            hi = (hi / step).ceil() * step;
        }
        Self {
            label: label.to_owned(),
            log,
            min: lo,
            max: hi,
        }
    }

    /// Position of `v` in [0, 1] along the axis.
    pub fn frac(&self, v: f64) -> f64 {
        if self.log {
            let v = v.max(self.min * 1e-3);
            (v.ln() - self.min.ln()) / (self.max.ln() - self.min.ln())
        } else {
            (v - self.min) / (self.max - self.min)
        }
    }

    /// Tick values: 1-2-5 steps on a linear axis, decades (and 2, 5 within few decades)
    /// on a log axis.
    pub fn ticks(&self) -> Vec<f64> {
        let mut t = Vec::new();
        if self.log {
            let (a, b) = (self.min.log10().floor() as i32, self.max.log10().ceil() as i32);
            let mults: &[f64] = if b - a <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
            let every = ((b - a) / 8 + 1).max(1);
            for e in (a..=b).step_by(every as usize) {
                for m in mults {
                    let v = m * 10f64.powi(e);
                    if v >= self.min * 0.999 && v <= self.max * 1.001 {
                        t.push(v);
                    }
                }
            }
        } else {
            let step = nice_step((self.max - self.min) / 5.0);
            let mut v = (self.min / step).ceil() * step;
            while v <= self.max + step * 1e-9 {
                t.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
                v += step;
            }
        }
        t
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Opens a chart drawn at its natural size (`width` = the viewBox width, so text stays
/// 12 px however few its rows; the page's CSS only shrinks it to fit). A chart with no
/// data says so in `data-empty`, and the page shows "not recorded" instead.
fn open(svg: &mut String, h: f64, title: &str, kind: &str, empty: bool) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{t}"{e}><title>{t}</title>"#,
        t = esc(title),
        e = if empty { r#" data-empty="true""# } else { "" }
    );
}

/// True when `svg` is a chart with nothing to draw.
pub fn is_empty(svg: &str) -> bool {
    svg.get(..300).is_some_and(|head| head.contains(r#"data-empty="true""#))
}

fn legend(svg: &mut String, names: &[&str], x0: f64, y: f64) {
    let mut x = x0;
    for (i, n) in names.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{y:.1}" class="legend">{}</text>"#,
            y - 9.0,
            x + 14.0,
            esc(n)
        );
        x += 24.0 + text_width(n, FONT);
    }
}

/// Horizontal grouped bars: one row per category, one bar per series.
pub fn bars(title: &str, categories: &[String], series: &[(&str, Vec<f64>)], unit: &str, log: bool) -> String {
    let label_w = categories
        .iter()
        .map(|c| text_width(c, FONT))
        .fold(40.0, f64::max)
        .min(W * 0.45)
        + 10.0;
    let per = series.len().max(1) as f64;
    let bar_h = if per > 1.0 { 9.0 } else { 14.0 };
    let row_h = per * bar_h + 6.0;
    let top = 34.0;
    let plot_h = categories.len() as f64 * row_h;
    let h = top + plot_h + 40.0;
    let axis = Axis::fit(unit, log, series.iter().flat_map(|(_, v)| v.iter().copied()), true);
    let (x0, x1) = (label_w, W - 20.0);
    let mut s = String::new();
    let empty = !series.iter().flat_map(|(_, v)| v).any(|v| *v > 0.0 && v.is_finite());
    open(&mut s, h, title, "bars", categories.is_empty() || empty);
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    if names.len() > 1 {
        legend(&mut s, &names, x0, 18.0);
    }
    x_axis(&mut s, &axis, x0, x1, top, top + plot_h);
    for (ci, cat) in categories.iter().enumerate() {
        let y = top + ci as f64 * row_h + 3.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="cat">{}</text>"#,
            x0 - 6.0,
            y + per * bar_h / 2.0 + 4.0,
            esc(cat)
        );
        for (si, (name, vals)) in series.iter().enumerate() {
            let v = vals.get(ci).copied().unwrap_or(0.0);
            let base = if axis.log { axis.min } else { 0f64.max(axis.min) };
            let (a, b) = (axis.frac(base), axis.frac(v.max(base)));
            let w = ((b - a) * (x1 - x0)).max(if v > 0.0 { 1.0 } else { 0.0 });
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {} {}{}</title></rect>"#,
                x0 + a * (x1 - x0),
                y + si as f64 * bar_h,
                bar_h - 1.0,
                PALETTE[si % PALETTE.len()],
                esc(cat),
                esc(&num(v)),
                esc(unit),
                if series.len() > 1 {
                    format!(" ({})", esc(name))
                } else {
                    String::new()
                }
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Ticks, grid lines and the label of a horizontal value axis at the bottom of a plot.
fn x_axis(s: &mut String, axis: &Axis, x0: f64, x1: f64, top: f64, bottom: f64) {
    let _ = write!(
        s,
        r#"<line x1="{x0:.1}" y1="{bottom:.1}" x2="{x1:.1}" y2="{bottom:.1}" class="axis"/>"#
    );
    for t in axis.ticks() {
        let x = x0 + axis.frac(t) * (x1 - x0);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            bottom + 14.0,
            esc(&num(t))
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-label">{}{}</text>"#,
        (x0 + x1) / 2.0,
        bottom + 32.0,
        esc(&axis.label),
        if axis.log { " (log)" } else { "" }
    );
}

fn y_axis(s: &mut String, axis: &Axis, x0: f64, x1: f64, top: f64, bottom: f64) {
    let _ = write!(
        s,
        r#"<line x1="{x0:.1}" y1="{top:.1}" x2="{x0:.1}" y2="{bottom:.1}" class="axis"/>"#
    );
    for t in axis.ticks() {
        let y = bottom - axis.frac(t) * (bottom - top);
        let _ = write!(
            s,
            r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            x0 - 4.0,
            y + 4.0,
            esc(&num(t))
        );
    }
    let _ = write!(
        s,
        r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" class="axis-label">{}{}</text>"#,
        (top + bottom) / 2.0,
        esc(&axis.label),
        if axis.log { " (log)" } else { "" }
    );
}

/// A histogram with its series stacked, and the marker (a threshold) as a dashed line.
pub fn histogram(h: &Histogram) -> String {
    let bins = h.edges.len().saturating_sub(1);
    let totals: Vec<f64> = (0..bins)
        .map(|i| h.series.iter().map(|s| s.counts.get(i).copied().unwrap_or(0.0)).sum())
        .collect();
    let ya = Axis::fit(&h.weight, false, totals.iter().copied(), true);
    let xa = Axis {
        label: h.x_label.clone(),
        log: false,
        min: h.edges.first().copied().unwrap_or(0.0),
        max: h.edges.last().copied().unwrap_or(1.0),
    };
    let (x0, x1, top, bottom) = (58.0, W - 16.0, 34.0, 214.0);
    let mut s = String::new();
    open(&mut s, 260.0, &h.title, "histogram", !totals.iter().any(|t| *t > 0.0));
    let names: Vec<&str> = h.series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut s, &names, x0, 18.0);
    y_axis(&mut s, &ya, x0, x1, top, bottom);
    x_axis(&mut s, &xa, x0, x1, top, bottom);
    for i in 0..bins {
        let (ea, eb) = (h.edges[i], h.edges[i + 1]);
        let xa_px = x0 + xa.frac(ea) * (x1 - x0);
        let w = ((xa.frac(eb) - xa.frac(ea)) * (x1 - x0) - 1.0).max(0.5);
        let mut acc = 0.0;
        for (si, ser) in h.series.iter().enumerate() {
            let v = ser.counts.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let y_hi = bottom - ya.frac(acc + v) * (bottom - top);
            let y_lo = bottom - ya.frac(acc) * (bottom - top);
            acc += v;
            let _ = write!(
                s,
                r#"<rect x="{xa_px:.1}" y="{y_hi:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} in [{}, {}): {} {}</title></rect>"#,
                (y_lo - y_hi).max(0.5),
                PALETTE[si % PALETTE.len()],
                esc(&ser.name),
                esc(&num(ea)),
                esc(&num(eb)),
                esc(&num(v)),
                esc(&h.weight)
            );
        }
    }
    if let Some(m) = &h.marker {
        let x = x0 + xa.frac(m.x).clamp(0.0, 1.0) * (x1 - x0);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" class="marker"><title>{}: {}</title></line><text x="{:.1}" y="{:.1}" class="marker-label">{}</text>"#,
            top - 4.0,
            esc(&m.label),
            esc(&num(m.x)),
            x + 3.0,
            top + 8.0,
            esc(&m.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// How a series of a line chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Style {
    Line,
    Points,
    LinePoints,
    /// A dashed line (a fit or a reference curve).
    Dashed,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
    /// Palette index (series that belong together share a colour).
    pub colour: usize,
}

/// A line/point chart; either axis may be logarithmic.
pub fn lines(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> String {
    let (x0, x1, top, bottom) = (62.0, W - 16.0, 34.0 + 16.0 * legend_rows(series), 250.0);
    let h = bottom + 44.0;
    let mut s = String::new();
    open(&mut s, h, title, "lines", series.iter().all(|x| x.points.is_empty()));
    legend_series(&mut s, series, x0);
    y_axis(&mut s, y, x0, x1, top, bottom);
    x_axis(&mut s, x, x0, x1, top, bottom);
    let px = |(a, b): (f64, f64)| {
        (
            x0 + x.frac(a).clamp(-0.02, 1.02) * (x1 - x0),
            bottom - y.frac(b).clamp(-0.02, 1.02) * (bottom - top),
        )
    };
    for ser in series {
        let c = PALETTE[ser.colour % PALETTE.len()];
        let pts: Vec<(f64, f64)> = ser
            .points
            .iter()
            .copied()
            .filter(|&(a, b)| a.is_finite() && b.is_finite() && (!x.log || a > 0.0) && (!y.log || b > 0.0))
            .collect();
        if matches!(ser.style, Style::Line | Style::LinePoints | Style::Dashed) && pts.len() > 1 {
            let d: Vec<String> = pts
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    let (a, b) = px(p);
                    format!("{}{a:.1},{b:.1}", if i == 0 { "M" } else { "L" })
                })
                .collect();
            let dash = if ser.style == Style::Dashed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<path d="{}" fill="none" stroke="{c}" stroke-width="1.6"{dash}><title>{}</title></path>"#,
                d.join(""),
                esc(&ser.name)
            );
        }
        if matches!(ser.style, Style::Points | Style::LinePoints) {
            for &p in &pts {
                let (a, b) = px(p);
                let _ = write!(
                    s,
                    r#"<circle cx="{a:.1}" cy="{b:.1}" r="3" fill="{c}"><title>{}: {} = {}, {} = {}</title></circle>"#,
                    esc(&ser.name),
                    esc(&x.label),
                    esc(&num(p.0)),
                    esc(&y.label),
                    esc(&num(p.1))
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

fn legend_rows(series: &[Series]) -> f64 {
    let mut rows = 1.0;
    let mut x = 62.0;
    for ser in series {
        let w = 30.0 + text_width(&ser.name, FONT);
        if x + w > W - 10.0 {
            rows += 1.0;
            x = 62.0;
        }
        x += w;
    }
    rows
}

fn legend_series(s: &mut String, series: &[Series], x0: f64) {
    let (mut x, mut y) = (x0, 18.0);
    for ser in series {
        let w = 30.0 + text_width(&ser.name, FONT);
        if x + w > W - 10.0 {
            x = x0;
            y += 16.0;
        }
        let c = PALETTE[ser.colour % PALETTE.len()];
        let mark = match ser.style {
            Style::Points => format!(r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#, x + 7.0, y - 4.0),
            Style::Dashed => format!(
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="2" stroke-dasharray="5 3"/>"#,
                y - 4.0,
                x + 16.0,
                y - 4.0
            ),
            _ => format!(
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="2"/>"#,
                y - 4.0,
                x + 16.0,
                y - 4.0
            ),
        };
        s.push_str(&mark);
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{y:.1}" class="legend">{}</text>"#,
            x + 20.0,
            esc(&ser.name)
        );
        x += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HistSeries, Marker};

    /// A minimal XML well-formedness check: tags balance, attributes are quoted, no raw
    /// `<` or `&` outside markup and entities.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let b = svg.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'<' => {
                    let end = svg[i..].find('>').ok_or("unclosed tag")? + i;
                    let tag = &svg[i + 1..end];
                    if let Some(name) = tag.strip_prefix('/') {
                        let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                        if open != name {
                            return Err(format!("<{open}> closed by </{name}>"));
                        }
                    } else if !tag.ends_with('/') {
                        let name = tag.split_whitespace().next().ok_or("empty tag")?;
                        stack.push(name.to_owned());
                    }
                    if !tag.matches('"').count().is_multiple_of(2) {
                        return Err(format!("unbalanced quotes in <{tag}>"));
                    }
                    i = end + 1;
                }
                b'&' => {
                    let end = svg[i..].find(';').ok_or("bare &")? + i;
                    let ent = &svg[i + 1..end];
                    if !matches!(ent, "amp" | "lt" | "gt" | "quot" | "#39") {
                        return Err(format!("unknown entity &{ent};"));
                    }
                    i = end + 1;
                }
                b'>' => return Err("bare >".into()),
                _ => i += 1,
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn texts(svg: &str, class: &str) -> Vec<String> {
        let pat = format!(r#"class="{class}">"#);
        svg.match_indices(&pat)
            .map(|(i, _)| {
                let rest = &svg[i + pat.len()..];
                rest[..rest.find('<').unwrap_or(0)].to_owned()
            })
            .collect()
    }

    #[test]
    fn bars_are_well_formed_with_escaped_cjk_labels_and_a_tooltip_per_bar() {
        let cats = vec!["gopher_short_doc".to_owned(), "中文 <短> & \"文档\"".to_owned()];
        let svg = bars(
            "drop reasons",
            &cats,
            &[("documents", vec![120.0, 3.0]), ("bytes", vec![5e6, 2e3])],
            "count",
            false,
        );
        assert_eq!(well_formed(&svg), Ok(()));
        assert!(svg.contains("中文 &lt;短&gt; &amp; &quot;文档&quot;"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4 + 2, "4 bars + 2 legend swatches");
        assert_eq!(svg.matches("<title>").count(), 1 + 4);
        // The CJK label is sized as wide characters, so the margin fits it.
        assert!(text_width("中文文档", 12.0) > text_width("abcd", 12.0) * 1.5);
        assert_eq!(texts(&svg, "axis-label"), vec!["count"]);
    }

    #[test]
    fn a_log_axis_has_decade_ticks_and_says_so() {
        let x = Axis::fit("M", true, [4.3e4, 1.2e6], false);
        assert_eq!((x.min, x.max), (1e4, 1e7));
        assert_eq!(x.ticks(), vec![1e4, 1e5, 1e6, 1e7]);
        assert!((x.frac(1e5) - 1.0 / 3.0).abs() < 1e-12);
        let y = Axis::fit("bits per byte", false, [2.18, 3.1], false);
        let svg = lines(
            "IsoFLOP",
            &x,
            &y,
            &[Series {
                name: "2e11".into(),
                points: vec![(4.3e4, 2.4), (1.2e5, 2.3), (1.2e6, 3.0)],
                style: Style::LinePoints,
                colour: 0,
            }],
        );
        assert_eq!(well_formed(&svg), Ok(()));
        // y ticks come first, then the x axis's decades.
        assert!(texts(&svg, "tick").ends_with(&["10k".into(), "100k".into(), "1M".into(), "10M".into()]));
        assert!(texts(&svg, "axis-label").contains(&"M (log)".to_owned()));
        assert_eq!(svg.matches("<circle").count(), 3);
        // Points sit left to right in x order on a log scale.
        let cx: Vec<f64> = svg
            .match_indices("cx=\"")
            .map(|(i, _)| svg[i + 4..].split('"').next().unwrap_or("").parse().unwrap_or(f64::NAN))
            .collect();
        assert!(cx.windows(2).all(|w| w[0] < w[1]), "{cx:?}");
    }

    #[test]
    fn a_histogram_stacks_series_and_draws_the_threshold() {
        let h = Histogram {
            title: "quality score, en".into(),
            x_label: "score".into(),
            edges: (0..=4).map(|i| i as f64 / 4.0).collect(),
            series: vec![
                HistSeries {
                    name: "dropped".into(),
                    counts: vec![5.0, 3.0, 0.0, 0.0],
                },
                HistSeries {
                    name: "kept".into(),
                    counts: vec![0.0, 1.0, 4.0, 6.0],
                },
            ],
            marker: Some(Marker {
                x: 0.4,
                label: "threshold".into(),
            }),
            weight: "documents".into(),
        };
        let svg = histogram(&h);
        assert_eq!(well_formed(&svg), Ok(()));
        // 5 non-empty (bin, series) cells + 2 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 5 + 2);
        assert!(svg.contains(r#"class="marker""#));
        assert!(svg.contains("dropped in [0.25, 0.5): 3 documents"));
        assert_eq!(texts(&svg, "axis-label"), vec!["documents", "score"]);
    }

    #[test]
    fn charts_keep_their_natural_size_and_say_when_they_have_no_data() {
        let cats = vec!["a".to_owned(), "b".to_owned()];
        let drawn = bars("t", &cats, &[("n", vec![1.0, 0.0])], "n", false);
        assert!(drawn.contains(&format!(r#"width="{W}""#)) && !is_empty(&drawn));
        // All zero (a counter old stats never wrote) or no rows at all: nothing to draw.
        assert!(is_empty(&bars("t", &cats, &[("n", vec![0.0, 0.0])], "n", false)));
        assert!(is_empty(&bars("t", &[], &[("n", vec![])], "n", false)));
        let x = Axis::fit("x", false, [0.0, 1.0], true);
        assert!(is_empty(&lines("t", &x, &x, &[])));
        assert_eq!(well_formed(&bars("t", &[], &[("n", vec![])], "n", false)), Ok(()));
    }

    #[test]
    fn numbers_are_compact_and_ticks_are_round() {
        assert_eq!(num(1234.0), "1234");
        assert_eq!(num(12_345.0), "12.3k");
        assert_eq!(num(2.5e6), "2.5M");
        assert_eq!(num(2e11), "200G");
        assert_eq!(num(1e14), "1e14");
        assert_eq!(num(0.25), "0.25");
        let a = Axis::fit("n", false, [0.0, 93.0], true);
        assert_eq!(a.ticks(), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    }
}
