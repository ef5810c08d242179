//! `quality_train` (one task): builds each configured model's training and held-out sets,
//! trains fastText, evaluates it on the held-out sources, quantizes it, and writes its
//! model card. Committed as a whole: files under temporary names, renamed into
//! `quality/_model/`, cards, then the marker; a killed run redoes every model, and with
//! `fasttext.thread = 1` produces the same bytes.
//!
//! The training set is streamed through an external sort keyed by a seeded hash of each
//! example, so positives and negatives interleave in a random, reproducible order
//! (fastText reads its file in order) and memory stays within `memory_limit_mb`.
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use loam_quality::classifier::metrics::{at_threshold, best_f1, roc_auc, AtThreshold};
use loam_quality::classifier::{
    quantize, train_supervised, FastTextArgs, Normalizer, QualityModel, QuantizeArgs, LABEL_CC, LABEL_HQ,
};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::sources::{file_sha256, for_each_doc, SourceTally};
use super::{Balance, ModelConfig, PoolConfig, QualityConfig, QualityPaths, SourceConfig};
use crate::error::{PipelineError, Result};
use crate::schema::{scan_columns, DocumentReader};
use crate::sort::ExternalSorter;
use crate::stage::{committed_outputs, fingerprint, write_atomic, DONE_DIR, DROPPED_DIR, STATS_DIR};

/// What the classifier is, in the words every card carries.
pub const WHAT: &str = "reference-likeness classifier: P(__label__hq) is how much a document resembles \
the positive sources below rather than the negatives; it is not a judgement of truth, safety or \
usefulness, and it inherits every bias of the sources it was trained on";

/// Rule families of the filter stage whose drops count as "rule-dropped" pool documents.
const RULE_PREFIXES: [&str; 3] = ["gopher_", "c4_", "fineweb_"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelCounts {
    pub hq: u64,
    pub cc: u64,
}

/// One source as the card reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCard {
    pub name: String,
    /// `hq` or `cc`.
    pub label: String,
    /// `train` or `heldout`.
    pub split: String,
    pub format: String,
    pub inputs: Vec<String>,
    pub files: u64,
    pub docs: u64,
    pub bytes: u64,
    /// Documents with no text after extraction or normalisation (skipped).
    pub empty: u64,
    pub sha256: String,
    /// Held-out sources: mean and median P(hq) of their documents.
    pub mean_score: Option<f64>,
    pub median_score: Option<f64>,
}

/// The pool negatives as drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolCard {
    pub stage: String,
    pub language: String,
    /// Eligible documents: kept by the filter / dropped by its rules.
    pub eligible_kept: u64,
    pub eligible_rule_dropped: u64,
    pub drawn_kept: u64,
    pub drawn_rule_dropped: u64,
    pub train: u64,
    pub heldout: u64,
    pub heldout_mean_score: Option<f64>,
}

/// Held-out evaluation of the model used for scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heldout {
    pub roc_auc: f64,
    pub at_half: AtThreshold,
    /// The threshold that maximises F1 on the held-out set, with its precision/recall.
    pub best_f1: AtThreshold,
}

/// A model file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFileCard {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub heldout_roc_auc: Option<f64>,
}

/// The model card, `quality/_model/<lang>.card.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub schema: String,
    pub what: String,
    pub language: String,
    /// The file `quality_score` uses (in `quality/_model/`).
    pub model: String,
    pub bin: Option<ModelFileCard>,
    pub ftz: Option<ModelFileCard>,
    /// Why the `.ftz` is or is not used.
    pub quantized: String,
    pub from_file: Option<String>,
    pub positive_label: String,
    pub negative_label: String,
    pub normalize: Normalizer,
    pub fasttext: Option<FastTextArgs>,
    pub quantize: Option<QuantizeArgs>,
    /// Training is deterministic only with `fasttext.thread = 1`.
    pub deterministic: bool,
    pub seed: u64,
    pub sources: Vec<SourceCard>,
    pub pool: Option<PoolCard>,
    pub train_examples: LabelCounts,
    /// Lines of fastText's training file (more than the examples when classes are
    /// balanced by repeating the smaller one).
    pub train_lines: u64,
    pub balance: Balance,
    pub heldout_examples: LabelCounts,
    pub heldout: Option<Heldout>,
    /// The threshold the held-out data implies (best F1).
    pub threshold: Option<f64>,
}

pub const CARD_SCHEMA: &str = "loam.quality.card/1";

/// How the train step ended.
#[derive(Debug)]
pub enum TrainOutcome {
    Done(Vec<ModelCard>),
    AlreadyDone(Vec<ModelCard>),
}

impl TrainOutcome {
    pub fn cards(&self) -> &[ModelCard] {
        match self {
            Self::Done(c) | Self::AlreadyDone(c) => c,
        }
    }
}

fn cfg_err(m: String) -> PipelineError {
    PipelineError::Config(m)
}

/// The pool stage's committed kept files and their side outputs, with its fingerprint.
fn pool_files(run_dir: &Path, pool: &PoolConfig) -> Result<(Vec<PathBuf>, Vec<PathBuf>, String)> {
    let dir = run_dir.join(&pool.stage);
    let (kept, fp) = committed_outputs(&dir, "quality train (its pool negatives)")?;
    let dropped = kept
        .iter()
        .map(|k| dir.join(DROPPED_DIR).join(k.file_name().unwrap_or_default()))
        .collect();
    Ok((kept, dropped, fp))
}

/// How a source file is identified in a fingerprint.
#[derive(Clone, Copy, PartialEq)]
enum Identity {
    /// Its bytes (SHA-256): what decides the output.
    Content,
    /// Its size and modification time: a cheap check that the file is the one whose
    /// bytes were hashed, recorded beside the marker.
    Stat,
}

fn file_identity(path: &Path, how: Identity) -> Result<String> {
    match how {
        Identity::Content => file_sha256(path),
        Identity::Stat => {
            let m = fs::metadata(path).map_err(|e| PipelineError::io(path, e))?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Ok(format!("{} {mtime}", m.len()))
        }
    }
}

/// What decides the step's output: settings, seed, every source file, the pool.
fn train_key(run_dir: &Path, cfg: &QualityConfig, seed: u64, how: Identity) -> Result<String> {
    let mut models = Vec::new();
    for m in &cfg.models {
        let mut files = Vec::new();
        for s in m.positives.iter().chain(&m.negatives) {
            for f in &s.files {
                files.push(serde_json::json!([s.name, f.name, file_identity(&f.path, how)?]));
            }
        }
        let from = match &m.from_file {
            Some(p) => Some(file_identity(p, how)?),
            None => None,
        };
        let pool = if m.pool.enabled && m.from_file.is_none() {
            Some(pool_files(run_dir, &m.pool)?.2)
        } else {
            None
        };
        let mut mc = m.clone();
        for s in mc.positives.iter_mut().chain(mc.negatives.iter_mut()) {
            s.files.clear();
        }
        mc.from_file = None;
        models.push(serde_json::json!({"model": mc, "files": files, "from_file": from, "pool": pool}));
    }
    Ok(fingerprint(&serde_json::json!({
        "stage": "quality-train/1", "normalize": cfg.normalize, "fasttext": cfg.fasttext,
        "quantize": cfg.quantize, "balance": cfg.balance, "seed": seed, "models": models, "keep_files": cfg.keep_training_files,
        "identity": if how == Identity::Stat { "stat" } else { "content" },
    })))
}

/// Whether the committed models were trained from exactly this config and these files:
/// by size and modification time when they match what the train step recorded, else by
/// hashing every file again (a copied file has a new mtime but the same bytes).
pub(super) fn committed_matches(run_dir: &Path, cfg: &QualityConfig, seed: u64) -> Result<bool> {
    let paths = QualityPaths::new(run_dir);
    let Some(marker) = committed(&paths) else {
        return Ok(false);
    };
    let stat = fs::read_to_string(stat_path(&paths)).unwrap_or_default();
    if stat.split_once(' ').is_some_and(|(q, full)| {
        full == marker && q == train_key(run_dir, cfg, seed, Identity::Stat).unwrap_or_default()
    }) {
        return Ok(true);
    }
    Ok(train_key(run_dir, cfg, seed, Identity::Content)? == marker)
}

fn stat_path(paths: &QualityPaths) -> PathBuf {
    paths.model.join(DONE_DIR).join(".train.stat")
}

/// Reads the committed cards of every configured model.
pub fn read_cards(paths: &QualityPaths, cfg: &QualityConfig) -> Result<Vec<ModelCard>> {
    cfg.models
        .iter()
        .map(|m| {
            let p = paths.card(m.stem());
            let b = fs::read(&p).map_err(|e| PipelineError::io(&p, e))?;
            serde_json::from_slice(&b).map_err(|e| PipelineError::BadStats {
                path: p.clone(),
                detail: e.to_string(),
            })
        })
        .collect()
}

/// The committed train step's fingerprint, if any.
pub fn committed(paths: &QualityPaths) -> Option<String> {
    fs::read_to_string(paths.train_marker())
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Runs the train step for every model of `cfg`.
pub fn run_train(run_dir: &Path, cfg: &QualityConfig, seed: u64, force: bool) -> Result<TrainOutcome> {
    cfg.validate()?;
    let paths = QualityPaths::new(run_dir);
    let marker = paths.train_marker();
    if !force && committed_matches(run_dir, cfg, seed)? {
        return Ok(TrainOutcome::AlreadyDone(read_cards(&paths, cfg)?));
    }
    let fp = train_key(run_dir, cfg, seed, Identity::Content)?;
    if !force {
        if let Some(found) = committed(&paths) {
            return Err(PipelineError::ConfigChanged {
                dir: paths.model.clone(),
                shard: "train".into(),
                found,
                expected: fp,
            });
        }
    }
    fs::create_dir_all(paths.model.join(DONE_DIR)).map_err(|e| PipelineError::io(&paths.model, e))?;
    if marker.exists() {
        fs::remove_file(&marker).map_err(|e| PipelineError::io(&marker, e))?;
    }
    let started = Instant::now();
    let tmp = paths.model.join(format!("_tmp-{}", std::process::id()));
    remove_dead_tmps(&paths.model)?;
    fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    let mut cards = Vec::new();
    let mut seconds = BTreeMap::new();
    for (i, m) in cfg.models.iter().enumerate() {
        let mut t = Timing::default();
        let job = Job {
            run_dir,
            cfg,
            seed,
            tmp: &tmp,
            paths: &paths,
        };
        let card = train_model(&job, m, i, &mut t)?;
        seconds.insert(m.stem().to_owned(), t);
        cards.push(card);
    }
    let _ = fs::remove_dir_all(&tmp);
    let stats = paths.model.join(STATS_DIR);
    fs::create_dir_all(&stats).map_err(|e| PipelineError::io(&stats, e))?;
    let facts = serde_json::json!({"seconds": started.elapsed().as_secs_f64(), "per_model": seconds});
    write_atomic(&stats.join("train.json"), facts.to_string().as_bytes())?;
    let quick = train_key(run_dir, cfg, seed, Identity::Stat)?;
    write_atomic(&stat_path(&paths), format!("{quick} {fp}").as_bytes())?;
    crate::stage::failpoint("before_quality_train_marker", crate::stage::ShardId::new(0, 1)?);
    write_atomic(&marker, fp.as_bytes())?;
    Ok(TrainOutcome::Done(cards))
}

/// Where one model's training time went (run facts, in `_stats/train.json`).
#[derive(Debug, Default, Serialize)]
struct Timing {
    /// Reading, extracting, normalising and shuffling the examples.
    prepare: f64,
    /// fastText's `train` call.
    fasttext: f64,
    quantize: f64,
    /// Scoring the held-out examples (with each model file).
    evaluate: f64,
}

/// Temporary folders of processes that no longer exist.
fn remove_dead_tmps(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("_tmp-") {
            if !Path::new("/proc").join(pid).exists() || pid == std::process::id().to_string() {
                fs::remove_dir_all(e.path()).map_err(|err| PipelineError::io(e.path(), err))?;
            }
        }
    }
    Ok(())
}

/// Held-out examples, written to a file as `label \t source \t text` lines.
struct Heldouts {
    path: PathBuf,
    w: BufWriter<File>,
    counts: LabelCounts,
}

impl Heldouts {
    fn push(&mut self, hq: bool, source: usize, text: &str) -> Result<()> {
        writeln!(self.w, "{}\t{source}\t{text}", u8::from(hq)).map_err(|e| PipelineError::io(&self.path, e))?;
        if hq {
            self.counts.hq += 1;
        } else {
            self.counts.cc += 1;
        }
        Ok(())
    }
}

/// The examples of one model: the shuffled training lines and the held-out file.
struct Examples {
    train: ExternalSorter<(u64, String)>,
    counts: LabelCounts,
    heldout: Heldouts,
    norm: Normalizer,
    buf: String,
}

impl Examples {
    fn push(&mut self, hq: bool, heldout: Option<usize>, key: u64, text: &str) -> Result<bool> {
        self.norm.normalize_into(text, &mut self.buf);
        if self.buf.is_empty() {
            return Ok(false);
        }
        match heldout {
            Some(src) => {
                let line = std::mem::take(&mut self.buf);
                self.heldout.push(hq, src, &line)?;
                self.buf = line;
            }
            None => {
                let label = if hq { LABEL_HQ } else { LABEL_CC };
                self.train.push((key, format!("{label} {}", self.buf)))?;
                if hq {
                    self.counts.hq += 1;
                } else {
                    self.counts.cc += 1;
                }
            }
        }
        Ok(true)
    }
}

/// What every model of one train step shares.
struct Job<'a> {
    run_dir: &'a Path,
    cfg: &'a QualityConfig,
    seed: u64,
    tmp: &'a Path,
    paths: &'a QualityPaths,
}

fn train_model(job: &Job<'_>, m: &ModelConfig, index: usize, time: &mut Timing) -> Result<ModelCard> {
    let Job {
        run_dir,
        cfg,
        seed,
        tmp,
        paths,
    } = *job;
    let started = Instant::now();
    let at = format!("quality.models[{index}] ({})", m.language);
    // Files of an earlier run of this model (which may have kept an .ftz this one will not).
    for ext in ["bin", "ftz", "train.txt", "heldout.tsv", "card.json"] {
        let old = paths.model.join(format!("{}.{ext}", m.stem()));
        if old.exists() {
            fs::remove_file(&old).map_err(|e| PipelineError::io(&old, e))?;
        }
    }
    let dir = tmp.join(m.stem());
    fs::create_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    let heldout_path = dir.join("heldout.tsv");
    let hf = File::create(&heldout_path).map_err(|e| PipelineError::io(&heldout_path, e))?;
    let budget = (cfg.memory_limit_mb << 20) as usize;
    let mut ex = Examples {
        train: ExternalSorter::new(&dir, "train", budget),
        counts: LabelCounts::default(),
        heldout: Heldouts {
            path: heldout_path.clone(),
            w: BufWriter::new(hf),
            counts: LabelCounts::default(),
        },
        norm: cfg.normalize,
        buf: String::new(),
    };
    let adopt = m.from_file.is_some();
    // Sources, positives first (the pool's default size is the training positives').
    let sources: Vec<(&SourceConfig, bool)> = m
        .positives
        .iter()
        .map(|s| (s, true))
        .chain(m.negatives.iter().map(|s| (s, false)))
        .collect();
    let mut tallies: Vec<SourceTally> = Vec::new();
    for (si, (s, hq)) in sources.iter().enumerate() {
        if adopt && !s.heldout {
            // An adopted model is only evaluated.
            tallies.push(SourceTally::default());
            continue;
        }
        let mut n = 0u64;
        let mut empty = 0u64;
        let mut tally = for_each_doc(s, |text| {
            let key = xxh3_64_with_seed(format!("{}\0{n}", s.name).as_bytes(), seed);
            n += 1;
            if !ex.push(*hq, s.heldout.then_some(si), key, text)? {
                empty += 1;
            }
            Ok(())
        })?;
        tally.empty += empty;
        tally.docs -= empty;
        if tally.docs == 0 {
            return Err(cfg_err(format!(
                "{at}: source {} ({} files) yielded no documents; check its inputs and format ({:?})",
                s.name, tally.files, s.format
            )));
        }
        tallies.push(tally);
    }
    let pool = if m.pool.enabled && !adopt {
        Some(draw_pool(run_dir, m, seed, &mut ex)?)
    } else {
        None
    };
    ex.heldout.w.flush().map_err(|e| PipelineError::io(&heldout_path, e))?;
    let train_counts = ex.counts.clone();
    let heldout_counts = ex.heldout.counts.clone();
    if !adopt && (train_counts.hq == 0 || train_counts.cc == 0) {
        let which = if train_counts.hq == 0 { "positive" } else { "negative" };
        return Err(cfg_err(format!(
            "{at}: the {which} training set is empty (a single class cannot be learned); add a {which} source \
             with heldout = false{}",
            if which == "negative" {
                ", or enable the pool"
            } else {
                ""
            }
        )));
    }
    if heldout_counts.hq == 0 || heldout_counts.cc == 0 {
        let which = if heldout_counts.hq == 0 { "positive" } else { "negative" };
        return Err(cfg_err(format!(
            "{at}: no held-out {which} documents to evaluate on; mark a {which} source heldout = true \
             (split by source, e.g. later SOTU addresses, another handbook language)"
        )));
    }
    let stem = m.stem();
    let mut lines = 0u64;
    let card_bin;
    let mut card_ftz = None;
    let quantized;
    let (used, scored) = if let Some(file) = &m.from_file {
        // Checked where the config points, so the error names the user's file.
        QualityModel::load(file).map_err(|e| cfg_err(format!("{at}.from_file: {e}")))?;
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("bin");
        let dest_name = format!("{stem}.{ext}");
        let staged = dir.join(&dest_name);
        fs::copy(file, &staged).map_err(|e| PipelineError::io(file, e))?;
        let scored = evaluate(&staged, &heldout_path)?;
        let facts = file_card(&staged, &dest_name, roc_auc(&pairs(&scored)))?;
        fs::rename(&staged, paths.model.join(&dest_name)).map_err(|e| PipelineError::io(&paths.model, e))?;
        card_bin = Some(facts);
        quantized = "adopted from from_file".to_owned();
        (dest_name, scored)
    } else {
        let train_txt = dir.join("train.txt");
        {
            let f = File::create(&train_txt).map_err(|e| PipelineError::io(&train_txt, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let mut sorted = ex.train.finish()?;
            let mut write = |line: &str| {
                w.write_all(line.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(|e| PipelineError::io(&train_txt, e))
            };
            let (minor, ratio) = if train_counts.hq < train_counts.cc {
                (LABEL_HQ, train_counts.cc as f64 / train_counts.hq as f64)
            } else {
                (LABEL_CC, train_counts.hq as f64 / train_counts.cc as f64)
            };
            if cfg.balance == Balance::Upsample && ratio > 1.0 {
                // Copies of the smaller class get keys of their own: a second sort spreads
                // them through the file instead of leaving them side by side.
                let mut spread = ExternalSorter::<(u64, String)>::new(&dir, "balanced", budget);
                for (key, line) in sorted.by_ref() {
                    if line.starts_with(minor) && line.as_bytes().get(minor.len()) == Some(&b' ') {
                        let extra = (key as f64) < ratio.fract() * u64::MAX as f64;
                        let copies = ratio.floor() as u64 + u64::from(extra);
                        for c in 0..copies {
                            spread.push((xxh3_64_with_seed(&key.to_le_bytes(), seed ^ c), line.clone()))?;
                        }
                        lines += copies;
                    } else {
                        spread.push((key, line))?;
                        lines += 1;
                    }
                }
                if let Some(e) = sorted.error.take() {
                    return Err(e);
                }
                let mut spread = spread.finish()?;
                for (_, line) in spread.by_ref() {
                    write(&line)?;
                }
                if let Some(e) = spread.error.take() {
                    return Err(e);
                }
            } else {
                for (_, line) in sorted.by_ref() {
                    write(&line)?;
                    lines += 1;
                }
                if let Some(e) = sorted.error.take() {
                    return Err(e);
                }
            }
            w.flush().map_err(|e| PipelineError::io(&train_txt, e))?;
        }
        let words_guess = train_counts.hq + train_counts.cc;
        let need = cfg.fasttext.input_matrix_bytes(words_guess);
        if need > (64u64 << 30) {
            return Err(cfg_err(format!(
                "{at}: fastText would allocate {} GB for its input matrix; lower quality.fasttext.bucket or dim",
                need >> 30
            )));
        }
        let bin = dir.join(format!("{stem}.bin"));
        time.prepare = started.elapsed().as_secs_f64();
        let t = Instant::now();
        train_supervised(&cfg.fasttext, &train_txt, &bin).map_err(|e| cfg_err(format!("{at}: {e}")))?;
        time.fasttext = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let scored_bin = evaluate(&bin, &heldout_path)?;
        time.evaluate += t.elapsed().as_secs_f64();
        let auc_bin = roc_auc(&pairs(&scored_bin));
        card_bin = Some(file_card(&bin, &format!("{stem}.bin"), auc_bin)?);
        let mut used = (format!("{stem}.bin"), scored_bin);
        if cfg.quantize.enabled {
            let ftz = dir.join(format!("{stem}.ftz"));
            let t = Instant::now();
            quantize(&cfg.fasttext, &cfg.quantize, &bin, &train_txt, &ftz)
                .map_err(|e| cfg_err(format!("{at}: {e}")))?;
            time.quantize = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let scored_ftz = evaluate(&ftz, &heldout_path)?;
            time.evaluate += t.elapsed().as_secs_f64();
            let auc_ftz = roc_auc(&pairs(&scored_ftz));
            let facts = file_card(&ftz, &format!("{stem}.ftz"), auc_ftz)?;
            let smaller = facts.bytes < card_bin.as_ref().map_or(u64::MAX, |b| b.bytes);
            let loss = auc_bin.unwrap_or(0.0) - auc_ftz.unwrap_or(0.0);
            if smaller && loss <= cfg.quantize.max_auc_loss {
                quantized = format!(
                    "the .ftz is used: {} of the .bin's bytes, held-out ROC-AUC {:+.4}",
                    ratio(facts.bytes, card_bin.as_ref().map_or(1, |b| b.bytes)),
                    -loss
                );
                fs::rename(&ftz, paths.model.join(&facts.file)).map_err(|e| PipelineError::io(&paths.model, e))?;
                used = (facts.file.clone(), scored_ftz);
                card_ftz = Some(facts);
            } else {
                quantized = format!(
                    "the .ftz was not kept: {} (ROC-AUC {:+.4}, allowed -{})",
                    if smaller {
                        "it loses accuracy"
                    } else {
                        "it is not smaller"
                    },
                    -loss,
                    cfg.quantize.max_auc_loss
                );
                let _ = fs::remove_file(&ftz);
            }
        } else {
            quantized = "quantization off (quality.quantize.enabled = false)".into();
        }
        fs::rename(&bin, paths.model.join(format!("{stem}.bin"))).map_err(|e| PipelineError::io(&paths.model, e))?;
        if cfg.keep_training_files {
            let dest = paths.model.join(format!("{stem}.train.txt"));
            fs::rename(&train_txt, &dest).map_err(|e| PipelineError::io(&dest, e))?;
        }
        used
    };
    let pairs_used = pairs(&scored);
    let heldout = match (roc_auc(&pairs_used), best_f1(&pairs_used)) {
        (Some(auc), Some(best)) => Some(Heldout {
            roc_auc: auc,
            at_half: at_threshold(&pairs_used, 0.5),
            best_f1: best,
        }),
        _ => None,
    };
    let mut source_cards = Vec::new();
    for (si, ((s, hq), t)) in sources.iter().zip(&tallies).enumerate() {
        let mine: Vec<f64> = scored.iter().filter(|e| e.2 == si).map(|e| f64::from(e.0)).collect();
        let (mean, median) = mean_median(mine);
        source_cards.push(SourceCard {
            name: s.name.clone(),
            label: if *hq { "hq" } else { "cc" }.into(),
            split: if s.heldout { "heldout" } else { "train" }.into(),
            format: format!("{:?}", s.format).to_lowercase(),
            inputs: s.inputs.clone(),
            files: t.files,
            docs: t.docs,
            bytes: t.bytes,
            empty: t.empty,
            sha256: t.sha256.clone(),
            mean_score: mean,
            median_score: median,
        });
    }
    let pool = pool.map(|mut p| {
        let mine: Vec<f64> = scored
            .iter()
            .filter(|e| e.2 == usize::MAX)
            .map(|e| f64::from(e.0))
            .collect();
        p.heldout_mean_score = mean_median(mine).0;
        p
    });
    let card = ModelCard {
        schema: CARD_SCHEMA.into(),
        what: WHAT.into(),
        language: m.language.clone(),
        model: used,
        bin: card_bin,
        ftz: card_ftz,
        quantized,
        from_file: m.from_file.as_ref().map(|p| p.display().to_string()),
        positive_label: LABEL_HQ.into(),
        negative_label: LABEL_CC.into(),
        normalize: cfg.normalize,
        fasttext: (!adopt).then(|| cfg.fasttext.clone()),
        quantize: (!adopt).then(|| cfg.quantize.clone()),
        deterministic: !adopt && cfg.fasttext.thread == 1,
        seed,
        sources: source_cards,
        pool,
        train_examples: train_counts,
        train_lines: lines,
        balance: cfg.balance,
        heldout_examples: heldout_counts,
        threshold: heldout.as_ref().map(|h| h.best_f1.threshold),
        heldout,
    };
    if cfg.keep_training_files {
        keep_heldout(
            &heldout_path,
            &scored,
            &sources,
            &paths.model.join(format!("{stem}.heldout.tsv")),
        )?;
    }
    let json = serde_json::to_vec_pretty(&card).map_err(|e| cfg_err(e.to_string()))?;
    write_atomic(&paths.card(stem), &json)?;
    let _ = fs::remove_dir_all(&dir);
    Ok(card)
}

fn ratio(a: u64, b: u64) -> String {
    format!("{:.1}%", 100.0 * a as f64 / b.max(1) as f64)
}

fn mean_median(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (Some(mean), Some(median))
}

fn file_card(path: &Path, name: &str, auc: Option<f64>) -> Result<ModelFileCard> {
    Ok(ModelFileCard {
        file: name.to_owned(),
        sha256: file_sha256(path)?,
        bytes: fs::metadata(path).map_err(|e| PipelineError::io(path, e))?.len(),
        heldout_roc_auc: auc,
    })
}

fn pairs(scored: &[(f32, bool, usize)]) -> Vec<(f32, bool)> {
    scored.iter().map(|e| (e.0, e.1)).collect()
}

/// Writes the held-out examples with the scores the used model gave them:
/// `label \t source \t score \t normalised text` (label 1 = hq; source `pool`).
fn keep_heldout(
    heldout: &Path,
    scored: &[(f32, bool, usize)],
    sources: &[(&SourceConfig, bool)],
    dest: &Path,
) -> Result<()> {
    let f = File::open(heldout).map_err(|e| PipelineError::io(heldout, e))?;
    let mut out = Vec::new();
    for (line, s) in BufReader::with_capacity(1 << 20, f).lines().zip(scored) {
        let line = line.map_err(|e| PipelineError::io(heldout, e))?;
        let text = line.splitn(3, '\t').nth(2).unwrap_or("");
        let name = sources.get(s.2).map_or("pool", |(c, _)| c.name.as_str());
        writeln!(out, "{}\t{name}\t{:e}\t{text}", u8::from(s.1), s.0).map_err(|e| PipelineError::io(dest, e))?;
    }
    write_atomic(dest, &out)
}

/// Scores every held-out example with the model at `path`: (score, is positive, source;
/// `usize::MAX` for the pool).
fn evaluate(model: &Path, heldout: &Path) -> Result<Vec<(f32, bool, usize)>> {
    let m = QualityModel::load(model).map_err(|e| cfg_err(e.to_string()))?;
    let f = File::open(heldout).map_err(|e| PipelineError::io(heldout, e))?;
    let mut out = Vec::new();
    for line in BufReader::with_capacity(1 << 20, f).lines() {
        let line = line.map_err(|e| PipelineError::io(heldout, e))?;
        let mut parts = line.splitn(3, '\t');
        let (Some(label), Some(src), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let src = src.parse::<usize>().unwrap_or(usize::MAX);
        out.push((m.score_normalized(text), label == "1", src));
    }
    Ok(out)
}

/// A drawn pool document's place: (shuffle key, file index, row).
type Pick = (u64, usize, usize);

/// Draws the pool negatives of model `m`: a bottom-k sample by a seeded hash of the id
/// (exactly k documents, uniformly, in two streaming passes), held out by domain.
fn draw_pool(run_dir: &Path, m: &ModelConfig, seed: u64, ex: &mut Examples) -> Result<PoolCard> {
    let p = &m.pool;
    let (kept, dropped, _) = pool_files(run_dir, p)?;
    let total = if p.docs == 0 { ex.counts.hq } else { p.docs };
    let n_dropped = (total as f64 * p.rule_dropped_share).round() as u64;
    let n_kept = total - n_dropped.min(total);
    let lang = (m.language != "*").then_some(m.language.as_str());
    let fix = "rerun that stage with --force";
    // Pass 1: the k smallest keys among eligible documents, per side.
    let pick = |files: &[PathBuf], k: u64, rule_only: bool| -> Result<(Vec<Pick>, u64)> {
        let mut heap: BinaryHeap<Pick> = BinaryHeap::new();
        let mut eligible = 0u64;
        for (fi, path) in files.iter().enumerate() {
            let mut row = 0usize;
            let cols: &[&str] = if rule_only {
                &["id", "language", "reason"]
            } else {
                &["id", "language"]
            };
            scan_columns(path, cols, fix, |b| {
                let ids = b.column_by_name("id").and_then(|c| c.as_string_opt::<i32>());
                let langs = b.column_by_name("language").and_then(|c| c.as_string_opt::<i32>());
                let reasons = b.column_by_name("reason").and_then(|c| c.as_string_opt::<i32>());
                let Some(ids) = ids else {
                    return Err(cfg_err(format!(
                        "{}: no id column; not a loam stage output",
                        path.display()
                    )));
                };
                for i in 0..b.num_rows() {
                    let r = row;
                    row += 1;
                    if let Some(l) = lang {
                        if langs.is_none_or(|a| !a.is_valid(i) || a.value(i) != l) {
                            continue;
                        }
                    }
                    if rule_only
                        && !reasons.is_some_and(|a| RULE_PREFIXES.iter().any(|pre| a.value(i).starts_with(pre)))
                    {
                        continue;
                    }
                    eligible += 1;
                    let key = xxh3_64_with_seed(ids.value(i).as_bytes(), seed ^ 0x706f_6f6c);
                    if (heap.len() as u64) < k {
                        heap.push((key, fi, r));
                    } else if heap.peek().is_some_and(|top| (key, fi, r) < *top) {
                        heap.pop();
                        heap.push((key, fi, r));
                    }
                }
                Ok(())
            })?;
        }
        let mut v = heap.into_vec();
        v.sort_by_key(|&(_, f, r)| (f, r));
        Ok((v, eligible))
    };
    let (picks_kept, eligible_kept) = pick(&kept, n_kept, false)?;
    let (picks_dropped, eligible_dropped) = pick(&dropped, n_dropped, true)?;
    // Pass 2: the picked documents' texts.
    let mut card = PoolCard {
        stage: p.stage.clone(),
        language: m.language.clone(),
        eligible_kept,
        eligible_rule_dropped: eligible_dropped,
        drawn_kept: picks_kept.len() as u64,
        drawn_rule_dropped: picks_dropped.len() as u64,
        train: 0,
        heldout: 0,
        heldout_mean_score: None,
    };
    for (files, picks) in [(&kept, &picks_kept), (&dropped, &picks_dropped)] {
        let mut next = picks.iter().peekable();
        for (fi, path) in files.iter().enumerate() {
            if next.peek().is_none_or(|p| p.1 != fi) {
                continue;
            }
            let mut row = 0usize;
            for batch in DocumentReader::open(path)? {
                for doc in batch? {
                    let r = row;
                    row += 1;
                    let Some(&&(key, pf, pr)) = next.peek() else { break };
                    if (pf, pr) != (fi, r) {
                        continue;
                    }
                    next.next();
                    let site = doc.domain.as_deref().unwrap_or(&doc.id);
                    let h = xxh3_64_with_seed(site.as_bytes(), seed ^ 0x6865_6c64);
                    let held = (h as f64) < p.heldout_share * u64::MAX as f64;
                    if ex.push(false, held.then_some(usize::MAX), key, &doc.text)? {
                        if held {
                            card.heldout += 1;
                        } else {
                            card.train += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(card)
}
