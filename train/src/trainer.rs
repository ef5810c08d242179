//! The training loop: step-based (tokens, not epochs), gradient accumulation up to the
//! token batch, the paper's schedule and AdamW, held-out loss and bits per byte, one JSON
//! line of metrics per step, atomic checkpoints and exact resume.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, read_safetensors, write_safetensors, Tensors};
use crate::data::{Permutation, TokenData};
use crate::model::{Llama, ModelConfig};
use crate::optim::{AdamW, Collect, GradSum, Load, Moments, OptimConfig};
use crate::schedule::Schedule;
use crate::{flops, TrainError};

/// The `[train]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Take the model shape, peak LR, batch and tokens from the run's `score/score.json`
    /// (values set here explicitly win).
    pub from_score: bool,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub schedule: Schedule,
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// Micro-batches summed per optimizer step (token batch = micro_batch · accum · seq_len).
    pub grad_accum: usize,
    /// Training tokens D; the schedule's drops are placed by it.
    pub tokens: u64,
    /// Stop after this many optimizer steps (a partial run that `--resume` continues).
    pub stop_after_steps: Option<u64>,
    /// Share of documents held out for validation.
    pub val_fraction: f64,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// Evaluate (and checkpoint) every this many steps; also at the end.
    pub eval_every: u64,
    pub checkpoint_every: u64,
    /// Peak FLOP/s of the device, for MFU (0: not reported).
    pub peak_flops: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            from_score: false,
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            schedule: Schedule {
                peak_lr: 3e-3,
                warmup_steps: 20,
                ..Schedule::default()
            },
            micro_batch: 8,
            grad_accum: 1,
            tokens: 100_000,
            stop_after_steps: None,
            val_fraction: 0.05,
            eval_windows: 16,
            eval_every: 100,
            checkpoint_every: 100,
            peak_flops: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    pub fn tokens_per_step(&self) -> u64 {
        (self.micro_batch * self.grad_accum * self.model.seq_len) as u64
    }
    pub fn total_steps(&self) -> u64 {
        self.tokens / self.tokens_per_step().max(1)
    }
    pub fn validate(&self) -> Result<(), TrainError> {
        let c = |w: String| Err(TrainError::Config(w));
        self.model.validate().map_err(TrainError::Config)?;
        self.schedule.validate().map_err(TrainError::Config)?;
        if self.micro_batch == 0 || self.grad_accum == 0 {
            return c("train.micro_batch and train.grad_accum must be at least 1".into());
        }
        if self.total_steps() == 0 {
            return c(format!(
                "train.tokens = {} is less than one step of {} tokens",
                self.tokens,
                self.tokens_per_step()
            ));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return c("train.val_fraction must be in [0, 1)".into());
        }
        Ok(())
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub tokens: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub mfu: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_bpb: Option<f64>,
}

/// What a run reports at its end (`summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub tokens: u64,
    pub final_loss: f64,
    pub val_loss: Option<f64>,
    pub val_bpb: Option<f64>,
    pub params: u64,
    pub non_embedding_params: u64,
    /// Non-embedding FLOPs per token (PAPER.md's M), 6N1, 6N2 and C = M·D.
    pub m: f64,
    pub six_n1: f64,
    pub six_n2: f64,
    pub compute: f64,
    pub bytes_per_token_val: f64,
    pub resumed_from: Option<u64>,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    step: u64,
    tokens: u64,
    windows_consumed: u64,
    seed: u64,
    tokenizer_sha256: String,
    config: TrainConfig,
}

fn int_batch<B: Backend>(ids: &[u32], rows: usize, cols: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = ids.iter().map(|&x| i64::from(x)).collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// Mean next-token cross-entropy (nats) of `model` on `tokens` laid out as
/// [rows, seq_len + 1].
fn loss_of<B: Backend>(model: &Llama<B>, window: &[u32], rows: usize, seq: usize, device: &B::Device) -> Tensor<B, 1> {
    let mut input = Vec::with_capacity(rows * seq);
    let mut target = Vec::with_capacity(rows * seq);
    for r in 0..rows {
        let w = &window[r * (seq + 1)..(r + 1) * (seq + 1)];
        input.extend_from_slice(&w[..seq]);
        target.extend_from_slice(&w[1..]);
    }
    let logits = model.forward(int_batch::<B>(&input, rows, seq, device));
    let [_, _, v] = logits.dims();
    let targets = int_batch::<B>(&target, rows, seq, device).reshape([rows * seq]);
    CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits.reshape([rows * seq, v]), targets)
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    f64::from(t.into_scalar().elem::<f32>())
}

/// Held-out loss over the first `windows` validation windows, on the inner backend (no
/// autodiff graph is built).
fn evaluate<B: Backend>(
    model: &Llama<B>,
    data: &TokenData,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Option<(f64, f64)> {
    let seq = cfg.model.seq_len;
    let n = data.windows(&data.val, seq).min(cfg.eval_windows as u64);
    if n == 0 {
        return None;
    }
    let mut total = 0.0;
    let mut buf = Vec::new();
    let rows = cfg.micro_batch.max(1) as u64;
    let mut done = 0;
    while done < n {
        let r = rows.min(n - done);
        buf.clear();
        for i in 0..r {
            data.read(&data.val, (done + i) * seq as u64, seq as u64 + 1, &mut buf);
        }
        total += scalar(loss_of(model, &buf, r as usize, seq, device)) * r as f64;
        done += r;
    }
    let loss = total / n as f64;
    let bytes_per_token = data.val.text_bytes as f64 / data.val.len().max(1) as f64;
    let bpb = loss / std::f64::consts::LN_2 / bytes_per_token.max(1e-9);
    Some((loss, bpb))
}

/// Trains on the token shards in `data_dir`, writing into `out`. With `resume`, continues
/// from the newest checkpoint there (same configuration required).
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data_dir: &Path,
    out: &Path,
    resume: bool,
    device: &B::Device,
    mut on_step: impl FnMut(&StepMetrics, u64),
) -> Result<TrainSummary, TrainError> {
    let data = TokenData::open(data_dir, cfg.val_fraction, cfg.seed)?;
    let mut cfg = cfg.clone();
    if cfg.model.vocab_size == 0 {
        cfg.model.vocab_size = data.padded_vocab_size;
    }
    if cfg.model.vocab_size < data.vocab_size {
        return Err(TrainError::Config(format!(
            "train.model.vocab_size {} is smaller than the tokenizer's {} ids",
            cfg.model.vocab_size, data.vocab_size
        )));
    }
    cfg.validate()?;
    let seq = cfg.model.seq_len;
    let n_windows = data.windows(&data.train, seq);
    if n_windows < cfg.micro_batch as u64 {
        return Err(TrainError::Data(format!(
            "{}: {} training tokens make {n_windows} windows of {}; need at least micro_batch = {}",
            data_dir.display(),
            data.train.len(),
            seq + 1,
            cfg.micro_batch
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    B::seed(device, cfg.seed);
    let mut model: Llama<B> = cfg.model.init(device);
    let mut opt = AdamW::<B::InnerBackend>::new(cfg.optim.clone());
    let (mut tokens, mut windows_consumed, mut resumed_from) = (0u64, 0u64, None);
    if resume {
        if let Some(dir) = checkpoint::latest(out)? {
            let state: State = serde_json::from_slice(
                &std::fs::read(dir.join("state.json")).map_err(|e| TrainError::io(&dir.join("state.json"), e))?,
            )
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", dir.join("state.json").display())))?;
            let mut same = state.config.clone();
            same.stop_after_steps = cfg.stop_after_steps;
            if same != cfg || state.tokenizer_sha256 != data.tokenizer_sha256 {
                return Err(TrainError::Config(format!(
                    "{}: made with another configuration or tokenizer; resume needs the same (only stop_after_steps may change), or start a new output folder",
                    dir.display()
                )));
            }
            let (weights, _) = read_safetensors(&dir.join("model.safetensors"))?;
            let mut load = Load::new(&weights);
            model = model.map(&mut load);
            if let Some(p) = load.problem {
                return Err(TrainError::Checkpoint(format!("{}: {p}", dir.display())));
            }
            let (moments, _) = read_safetensors(&dir.join("optimizer.safetensors"))?;
            for (name, (_, m)) in moments.iter().filter(|(n, _)| n.starts_with("m.")) {
                let key = &name[2..];
                let Some((_, v)) = moments.get(&format!("v.{key}")) else {
                    return Err(TrainError::Checkpoint(format!(
                        "{}: optimizer has m.{key} but no v.{key}",
                        dir.display()
                    )));
                };
                let t = |x: &Vec<f32>| {
                    Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(x.clone(), [x.len()]), device)
                };
                opt.moments.insert(key.to_owned(), Moments { m: t(m), v: t(v) });
            }
            opt.step = state.step;
            tokens = state.tokens;
            windows_consumed = state.windows_consumed;
            resumed_from = Some(state.step);
        }
    }
    let total_steps = cfg.total_steps();
    let stop = cfg.stop_after_steps.unwrap_or(total_steps).min(total_steps);
    if resumed_from.is_some_and(|s| s >= stop) {
        // Already trained this far: report what the run recorded, change nothing.
        if let Ok(bytes) = std::fs::read(out.join("summary.json")) {
            if let Ok(s) = serde_json::from_slice::<TrainSummary>(&bytes) {
                return Ok(s);
            }
        }
    }
    let metrics_path = out.join("metrics.jsonl");
    // Lines past the checkpoint belong to a run that died after it: drop them.
    let kept: Vec<String> = std::fs::read_to_string(&metrics_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| resumed_from.is_some_and(|s| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step < s)))
        .map(str::to_owned)
        .collect();
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;
    for l in &kept {
        writeln!(metrics, "{l}").map_err(|e| TrainError::io(&metrics_path, e))?;
    }

    let perm = Permutation::new(n_windows, cfg.seed);
    let m = flops::m(cfg.model.n_layer, cfg.model.d_model, seq);
    let (params, non_embedding) = cfg.model.param_counts();
    let mut last_loss = f64::NAN;
    let mut last_val = None;
    let mut buf = Vec::new();
    while opt.step < stop {
        let step = opt.step;
        let started = Instant::now();
        let lr = cfg.schedule.lr(step, tokens, cfg.tokens);
        let mut sums = GradSum::<B::InnerBackend>::default();
        let mut loss_sum = 0.0;
        for _ in 0..cfg.grad_accum {
            buf.clear();
            for _ in 0..cfg.micro_batch {
                let w = perm.get(windows_consumed % n_windows);
                windows_consumed += 1;
                data.read(&data.train, w * seq as u64, seq as u64 + 1, &mut buf);
            }
            let loss = loss_of(&model, &buf, cfg.micro_batch, seq, device);
            let grads = loss.backward();
            loss_sum += f64::from(loss.into_scalar().elem::<f32>());
            sums.add::<B, _>(&model, &grads);
        }
        let (next, grad_norm) = opt.step::<B, _>(model, sums, cfg.grad_accum, lr);
        model = next;
        tokens += cfg.tokens_per_step();
        last_loss = loss_sum / cfg.grad_accum as f64;
        if !last_loss.is_finite() {
            return Err(TrainError::Diverged { step, loss: last_loss });
        }
        let secs = started.elapsed().as_secs_f64();
        let tps = cfg.tokens_per_step() as f64 / secs.max(1e-9);
        let mut sm = StepMetrics {
            step,
            tokens,
            loss: last_loss,
            lr,
            grad_norm,
            tokens_per_s: tps,
            mfu: flops::mfu(m, tps, cfg.peak_flops),
            val_loss: None,
            val_bpb: None,
        };
        let done = opt.step;
        let boundary = done == stop || (cfg.eval_every > 0 && done % cfg.eval_every == 0);
        if boundary {
            if let Some((vl, bpb)) = evaluate(&model.valid(), &data, &cfg, device) {
                sm.val_loss = Some(vl);
                sm.val_bpb = Some(bpb);
                last_val = Some((vl, bpb));
            }
        }
        writeln!(metrics, "{}", serde_json::to_string(&sm).unwrap_or_default())
            .map_err(|e| TrainError::io(&metrics_path, e))?;
        on_step(&sm, stop);
        if done == stop || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) {
            save(
                out,
                &model,
                &opt,
                &State {
                    step: done,
                    tokens,
                    windows_consumed,
                    seed: cfg.seed,
                    tokenizer_sha256: data.tokenizer_sha256.clone(),
                    config: cfg.clone(),
                },
            )?;
        }
    }
    metrics.sync_all().map_err(|e| TrainError::io(&metrics_path, e))?;
    let summary = TrainSummary {
        steps: opt.step,
        tokens,
        final_loss: last_loss,
        val_loss: last_val.map(|v| v.0),
        val_bpb: last_val.map(|v| v.1),
        params,
        non_embedding_params: non_embedding,
        m,
        six_n1: flops::six_n1(cfg.model.n_layer, cfg.model.d_model),
        six_n2: flops::six_n2(cfg.model.n_layer, cfg.model.d_model, cfg.model.vocab_size),
        compute: m * tokens as f64,
        bytes_per_token_val: data.val.text_bytes as f64 / data.val.len().max(1) as f64,
        resumed_from,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    checkpoint::write_atomic(&out.join("summary.json"), &json)?;
    Ok(summary)
}

fn save<B: AutodiffBackend>(
    out: &Path,
    model: &Llama<B>,
    opt: &AdamW<B::InnerBackend>,
    state: &State,
) -> Result<PathBuf, TrainError> {
    let weights = Collect::of::<B, _>(model);
    let mut moments = Tensors::new();
    for (k, mv) in &opt.moments {
        let vals = |t: &Tensor<B::InnerBackend, 1>| {
            t.clone()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap_or_default()
        };
        let (m, v) = (vals(&mv.m), vals(&mv.v));
        moments.insert(format!("m.{k}"), (vec![m.len()], m));
        moments.insert(format!("v.{k}"), (vec![v.len()], v));
    }
    let model_cfg = serde_json::to_string(&state.config.model).unwrap_or_default();
    checkpoint::commit(out, state.step, |dir| {
        let meta = std::collections::BTreeMap::from([
            ("format".to_owned(), "pt".to_owned()),
            ("loam_model_config".to_owned(), model_cfg.clone()),
        ]);
        write_safetensors(&dir.join("model.safetensors"), &weights, &meta)?;
        write_safetensors(&dir.join("optimizer.safetensors"), &moments, &Default::default())?;
        std::fs::write(dir.join("config.json"), &model_cfg).map_err(|e| TrainError::io(&dir.join("config.json"), e))?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        std::fs::write(dir.join("state.json"), json).map_err(|e| TrainError::io(&dir.join("state.json"), e))
    })
}
