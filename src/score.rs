//! The `score` step and subcommand: the corpus quality score q (pipeline's `score`), the
//! exponents it implies (SCALING.md §2: an assumption, or a sweep's calibration), and for
//! each budget the allocation, shape, learning rate, batch and repetition verdict
//! (`loam_train::scaling`), written to `score/score.json` for `train.from_score`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_pipeline::score::{read_json, score_corpus, CorpusScore, ScoreInputs};
use loam_pipeline::tokens::TokenizeSummary;
use loam_train::scaling::{self, CalibrationRecord, Design, ExponentLine, Repetition, Shape, ShapeRules};
use serde::{Deserialize, Serialize};

use crate::config::{self, Resolved, UsageError};
use crate::dag::Ctx;
use crate::ScoreArgs;

pub const SCORE_SCHEMA: &str = "loam.score/1";
const ASSUMPTION: &str = "a(q) = 0.450 + 0.128·q is an assumption (SCALING.md §2): a line through DeepSeek's own measurements (early data a = 0.450 at q = 0, OpenWebText2 a = 0.578 at q = 1); no published work maps a corpus statistic to the exponent; `loam sweep` tests it on this data";

/// Which exponent line was used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalibrationUsed {
    /// `prior: DeepSeek Table 4`, or `calibration: FILE (N records)`.
    pub source: String,
    pub file: Option<PathBuf>,
    pub records_used: usize,
    pub records_skipped: usize,
    pub line: ExponentLine,
}

/// One budget's allocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetPlan {
    /// C (FLOPs), and where it came from (`score.budgets` or `train.tokens`).
    pub compute: f64,
    pub from: String,
    pub a: f64,
    pub b: f64,
    pub m_opt: f64,
    /// M_opt·exp(±σ_a·|ln(C/C_ref)|).
    pub m_band: [f64; 2],
    pub d_opt: f64,
    pub d_band: [f64; 2],
    pub shape: Shape,
    pub non_embedding_params: f64,
    /// What a run of this shape trains to spend C: ⌊C / M / batch⌋ steps of the batch.
    pub train_tokens: u64,
    pub compute_actual: f64,
    pub peak_lr: f64,
    pub batch_tokens: f64,
    pub batch_seqs: usize,
    /// Tokens in the token shards (copies counted) and unique ones, against D_opt.
    pub tokens_available: u64,
    pub unique_tokens: u64,
    pub repetition: Repetition,
}

/// What `train.from_score` takes: the first budget's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainPlan {
    pub budget: f64,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub seq_len: usize,
    pub peak_lr: f64,
    pub batch_seqs: usize,
    pub tokens: u64,
}

/// `score/score.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreFile {
    pub schema: String,
    pub fingerprint: String,
    pub q: f64,
    pub a: f64,
    pub b: f64,
    pub sigma_a: f64,
    pub assumption: String,
    pub calibration: CalibrationUsed,
    pub design: Design,
    pub design_hash: String,
    pub corpus: CorpusScore,
    pub budgets: Vec<BudgetPlan>,
    pub train: TrainPlan,
}

pub fn score_path(run_dir: &Path) -> PathBuf {
    run_dir.join("score").join("score.json")
}

fn usage(m: String) -> anyhow::Error {
    UsageError(m).into()
}

/// The exponent line: the prior, or the prior updated by the calibration file's records
/// of this run's design.
fn calibration(file: Option<&Path>, design: &Design) -> Result<CalibrationUsed> {
    let prior = ExponentLine::PRIOR;
    let Some(file) = file else {
        return Ok(CalibrationUsed {
            source: "prior: DeepSeek Table 4".into(),
            file: None,
            records_used: 0,
            records_skipped: 0,
            line: prior,
        });
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        usage(format!(
            "score.calibration {}: {e}; point it at a file `loam sweep` wrote",
            file.display()
        ))
    })?;
    let (mut used, mut other) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let r: CalibrationRecord = serde_json::from_str(line).map_err(|e| {
            usage(format!(
                "score.calibration {} line {}: not a calibration record ({e}); it must be JSON lines written by `loam sweep`",
                file.display(),
                i + 1
            ))
        })?;
        if r.schema != scaling::CALIBRATION_SCHEMA {
            return Err(usage(format!(
                "score.calibration {} line {}: schema {:?}, this loam reads {:?}",
                file.display(),
                i + 1,
                r.schema,
                scaling::CALIBRATION_SCHEMA
            )));
        }
        if r.design == *design {
            used.push(r);
        } else {
            other.push(r);
        }
    }
    if used.is_empty() {
        let found: Vec<String> = other
            .iter()
            .map(|r| {
                format!(
                    "l_seq {} vocab {} ({})",
                    r.design.seq_len, r.design.vocab_size, r.design_hash
                )
            })
            .collect();
        return Err(usage(format!(
            "score.calibration {}: no record of this run's design (l_seq {}, vocab {}, M = {}, schedule {}; hash {}); it holds {}. Exponents from another design are not comparable: sweep this design, or remove score.calibration to use the prior",
            file.display(),
            design.seq_len,
            design.vocab_size,
            design.m_definition,
            design.schedule,
            design.hash(),
            if found.is_empty() { "no records".to_owned() } else { found.join(", ") }
        )));
    }
    Ok(CalibrationUsed {
        source: format!("calibration: {} ({} records)", file.display(), used.len()),
        file: Some(file.to_owned()),
        records_used: used.len(),
        records_skipped: other.len(),
        line: scaling::calibrate(prior, &used),
    })
}

/// One budget's plan, or a usage error when no allowed shape is near M_opt.
fn plan_budget(
    c: f64,
    from: &str,
    a: f64,
    sigma: f64,
    rules: &ShapeRules,
    cfg: &Resolved,
    corpus: &CorpusScore,
) -> Result<BudgetPlan> {
    let sc = &cfg.score;
    let m_opt = scaling::m_opt(c, a);
    let (lo, hi) = scaling::m_band(c, a, sigma);
    let shape = scaling::search_shape(m_opt, rules);
    let off = shape.as_ref().map(|s| (s.m / m_opt).max(m_opt / s.m));
    let Some(shape) = shape.filter(|_| off.is_some_and(|o| o <= sc.max_shape_error)) else {
        let floor = scaling::smallest_m(rules).unwrap_or(f64::INFINITY);
        let c_min = scaling::c_ref() * (floor / (sc.max_shape_error * scaling::m_ref())).powf(1.0 / a);
        return Err(usage(if m_opt < floor {
            format!(
                "budget C = {c:.3e} FLOPs ({from}) is too small for any model the shape rules allow: M_opt = {m_opt:.3e} FLOPs/token, but the smallest shape (d/n in {}–{}, l_seq {}) has M = {floor:.3e}, more than score.max_shape_error = {}× away; use a budget of at least {c_min:.2e}",
                sc.min_ratio, sc.max_ratio, rules.seq_len, sc.max_shape_error
            )
        } else {
            format!(
                "budget C = {c:.3e} FLOPs ({from}): no shape within score.max_shape_error = {}× of M_opt = {m_opt:.3e} (score.max_d_model = {}); raise max_d_model or lower the budget",
                sc.max_shape_error, sc.max_d_model
            )
        }));
    };
    let batch_tokens = scaling::b_opt(c);
    let batch_seqs = ((batch_tokens / rules.seq_len as f64).round() as usize).max(1);
    let step = (batch_seqs * rules.seq_len) as u64;
    let steps = ((c / shape.m) / step as f64).floor().max(1.0) as u64;
    let train_tokens = steps * step;
    let d_opt = c / m_opt;
    let params = shape.six_n1 / 6.0;
    let repetition = scaling::repetition(d_opt, corpus.diagnostics.unique_tokens as f64, params, a);
    Ok(BudgetPlan {
        compute: c,
        from: from.to_owned(),
        a,
        b: 1.0 - a,
        m_opt,
        m_band: [lo, hi],
        d_opt,
        d_band: [c / hi, c / lo],
        non_embedding_params: params,
        train_tokens,
        compute_actual: shape.m * train_tokens as f64,
        peak_lr: scaling::eta_opt(c),
        batch_tokens,
        batch_seqs,
        tokens_available: corpus.diagnostics.tokens,
        unique_tokens: corpus.diagnostics.unique_tokens,
        repetition,
        shape,
    })
}

/// Computes (or reuses, when nothing it reads changed) the run's score.
pub fn run_score(cfg: &Resolved, threads: usize, force: bool) -> Result<(ScoreFile, bool)> {
    // Before reading anything; `[score]` itself was validated with the config.
    loam_pipeline::score::require_quality_model(&cfg.quality)?;
    let inputs = ScoreInputs {
        run_dir: &cfg.run_dir,
        quality: &cfg.quality,
        filter: &cfg.filter,
        minhash: &cfg.dedup.minhash,
        dedup_normalize: &cfg.dedup.normalize,
        final_stage: &cfg.tokenizer.upstream,
        seed: cfg.seed,
        sample_docs: cfg.score.sample_docs,
        threads,
    };
    let tok: TokenizeSummary = read_json(&cfg.run_dir.join("tokenize").join("summary.json"))?.ok_or_else(|| {
        usage(format!(
            "score reads {}, which is missing: run `loam tokenize` first (loam run does it in order)",
            cfg.run_dir.join("tokenize/summary.json").display()
        ))
    })?;
    let design = Design::loam(cfg.train.model.seq_len, tok.padded_vocab_size);
    let fp = loam_pipeline::stage::fingerprint(&serde_json::json!({
        "inputs": inputs.fingerprint()?, "score": cfg.score, "design": design,
        "train_tokens": cfg.train.tokens,
        "calibration": cfg.score.calibration.as_ref().map(|p| std::fs::read(p).map(|b| xxhash_rust::xxh3::xxh3_64(&b)).unwrap_or(0)),
    }));
    let dest = score_path(&cfg.run_dir);
    if !force {
        if let Ok(Some(old)) = read_json::<ScoreFile>(&dest) {
            if old.fingerprint == fp && old.schema == SCORE_SCHEMA {
                return Ok((old, false));
            }
        }
    }
    let corpus = score_corpus(&inputs).context("scoring the corpus")?;
    let cal = calibration(cfg.score.calibration.as_deref(), &design)?;
    let (a, sigma) = (cal.line.a(corpus.q), cal.line.sigma);
    let rules = ShapeRules {
        seq_len: design.seq_len,
        vocab_size: design.vocab_size,
        min_ratio: cfg.score.min_ratio,
        max_ratio: cfg.score.max_ratio,
        max_d_model: cfg.score.max_d_model,
        ..ShapeRules::default()
    };
    let budgets: Vec<(f64, String)> = if cfg.score.budgets.is_empty() {
        vec![(
            scaling::budget_for_tokens(cfg.train.tokens as f64, a),
            format!("D_opt = train.tokens = {}", cfg.train.tokens),
        )]
    } else {
        cfg.score
            .budgets
            .iter()
            .map(|c| (*c, "score.budgets".to_owned()))
            .collect()
    };
    let mut plans = Vec::new();
    for (c, from) in &budgets {
        plans.push(plan_budget(*c, from, a, sigma, &rules, cfg, &corpus)?);
    }
    let first = &plans[0];
    let train = TrainPlan {
        budget: first.compute,
        n_layer: first.shape.n_layer,
        d_model: first.shape.d_model,
        n_heads: first.shape.n_heads,
        n_kv_heads: first.shape.n_kv_heads,
        seq_len: first.shape.seq_len,
        peak_lr: first.peak_lr,
        batch_seqs: first.batch_seqs,
        tokens: first.train_tokens,
    };
    let out = ScoreFile {
        schema: SCORE_SCHEMA.into(),
        fingerprint: fp,
        q: corpus.q,
        a,
        b: 1.0 - a,
        sigma_a: sigma,
        assumption: ASSUMPTION.into(),
        calibration: cal,
        design_hash: design.hash(),
        design,
        corpus,
        budgets: plans,
        train,
    };
    config::write_creating(&dest, &serde_json::to_vec_pretty(&out)?)?;
    Ok((out, true))
}

/// The short table `score` prints on stderr.
pub fn table(s: &ScoreFile) -> String {
    use std::fmt::Write as _;
    let c = &s.corpus;
    let d = &c.diagnostics;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "score: q = {:.3}  (p̄ raw {:.3}, final {:.3}, held-out positives {:.3}; final = {})",
        s.q, c.p_raw, c.p_final, c.p_pos, c.final_stage
    );
    for m in &c.models {
        let _ = writeln!(
            t,
            "  model {:<4} q {}  raw {} docs, final {} rows, positives {} docs, {:.0}% of final bytes",
            m.language,
            m.q.map_or("-".into(), |q| format!("{q:.3}")),
            m.raw.docs,
            m.final_.docs,
            m.pos.docs,
            100.0 * m.weight
        );
    }
    let _ = writeln!(
        t,
        "  beside q: near-duplicates left {:.1}%, exact {:.1}%, median gzip ratio {:.3}, heuristic pass rate {:.1}%, kept {:.1}% of documents / {:.1}% of bytes, U = {} unique of {} tokens, copies {:.1}% of rows",
        100.0 * d.near_duplicate_rate,
        100.0 * d.exact_duplicate_rate,
        d.median_gzip_ratio,
        100.0 * d.heuristic_pass_rate,
        100.0 * d.kept_fraction_docs,
        100.0 * d.kept_fraction_bytes,
        d.unique_tokens,
        d.tokens,
        100.0 * d.repeated_row_share
    );
    let _ = writeln!(
        t,
        "  a = {:.4} ± {:.3}, b = {:.4}  ({}; a(q) = {:.3} + {:.3}·q)",
        s.a, s.sigma_a, s.b, s.calibration.source, s.calibration.line.intercept, s.calibration.line.slope
    );
    let _ = writeln!(
        t,
        "  {:>9}  {:>9} {:>21}  {:>9}  {:>14}  {:>9} {:>9}  {:>8}  {:>6}  {:>10}  {:>6}  verdict",
        "C", "M_opt", "band", "D_opt", "shape", "M", "M+head", "peak LR", "batch", "tokens", "epochs"
    );
    for b in &s.budgets {
        let _ = writeln!(
            t,
            "  {:>9.2e}  {:>9.2e} {:>9.2e}–{:<9.2e}  {:>9.2e}  {:>3}×{:<4} {:>2}/{:<2}  {:>9.2e} {:>9.2e}  {:>8.2e}  {:>6}  {:>10}  {:>6.1}  {:?}",
            b.compute,
            b.m_opt,
            b.m_band[0],
            b.m_band[1],
            b.d_opt,
            b.shape.n_layer,
            b.shape.d_model,
            b.shape.n_heads,
            b.shape.n_kv_heads,
            b.shape.m,
            b.shape.total_flops,
            b.peak_lr,
            b.batch_seqs,
            b.train_tokens,
            b.repetition.epochs,
            b.repetition.verdict
        );
        if !matches!(b.repetition.verdict, scaling::Verdict::NoRepetition) {
            let _ = writeln!(t, "    {}", b.repetition.advice);
        }
    }
    t
}

/// The DAG's `score` step (one global task).
pub fn score_step(ctx: &mut Ctx<'_>) -> Result<()> {
    let (s, fresh) = run_score(ctx.cfg, crate::threads(ctx.common), ctx.common.force)?;
    eprint!("{}", table(&s));
    if !fresh {
        eprintln!("(score already committed)");
    }
    ctx.report.set(
        "score",
        serde_json::json!({
            "q": s.q, "a": s.a, "b": s.b, "sigma_a": s.sigma_a, "calibration": s.calibration.source,
            "train": s.train, "file": config::normalize(&score_path(&ctx.cfg.run_dir)),
        }),
    );
    Ok(())
}

pub fn score_cmd(args: ScoreArgs) -> Result<serde_json::Value> {
    let cfg = config::load(&args.config, &args.common.overrides)?;
    config::save(&cfg)?;
    Ctx::new(&cfg, &args.common, &crate::Split::default())?.run(&["score"])
}
