//! `loam export` (a trained checkpoint as a Hugging Face Llama folder) and `loam generate`
//! (greedy decoding with loam's own model: the reference an export is checked against).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loam_train::export::{self, Checkpoint, SpecialIds};
use serde_json::Value;

use crate::config::UsageError;

/// Which checkpoint of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// The run directory (its train/checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// The checkpoint's step (default: the newest, train/checkpoints/latest).
    #[arg(long)]
    pub step: Option<u64>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub ckpt: CheckpointArgs,
    /// Only `hf` (a `transformers` LlamaForCausalLM folder).
    #[arg(long, default_value = "hf", value_parser = ["hf"])]
    pub format: String,
    /// The folder to write (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub ckpt: CheckpointArgs,
    /// The prompt as text (encoded with the run's tokenizer, no special tokens added).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    pub prompt: Option<String>,
    /// Or the prompt as token ids, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    /// Tokens to generate (greedy; stops early after EOS).
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    /// Also write the prompt's logits, [prompt tokens, vocab] f32, as safetensors (`logits`).
    #[arg(long)]
    pub logits: Option<PathBuf>,
}

impl CheckpointArgs {
    fn dir(&self) -> Result<PathBuf> {
        let out = self.run.join("train");
        let dir = match self.step {
            Some(s) => loam_train::checkpoint::checkpoints_dir(&out).join(format!("step-{s:06}")),
            None => loam_train::checkpoint::latest(&out)?.ok_or_else(|| {
                UsageError(format!(
                    "{} has no checkpoint: run `loam train` first (train.checkpoint_every > 0 or a finished run)",
                    loam_train::checkpoint::checkpoints_dir(&out).display()
                ))
            })?,
        };
        if !dir.is_dir() {
            anyhow::bail!(UsageError(format!(
                "{} does not exist; `ls {}` lists the steps there are",
                dir.display(),
                loam_train::checkpoint::checkpoints_dir(&out).display()
            )));
        }
        Ok(dir)
    }
}

fn tokenizer_dir(run: &Path) -> PathBuf {
    run.join("tokenizer")
}

/// BOS / EOS / PAD ids: the strings `tokenizer_config.json` names, looked up in the run's
/// tokenizer.
fn special_ids(run: &Path) -> Result<(loam_tokenize::Tokenizer, SpecialIds)> {
    let dir = tokenizer_dir(run);
    let tok = loam_tokenize::Tokenizer::load(&dir.join("tokenizer.json"))?;
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?)
            .with_context(|| format!("{} is not JSON", cfg_path.display()))?;
    let id = |key: &str| cfg.get(key).and_then(Value::as_str).and_then(|t| tok.token_to_id(t));
    let eos = id("eos_token").ok_or_else(|| {
        UsageError(format!(
            "{}: eos_token is missing or not in tokenizer.json; rerun `loam tokenizer train --force`",
            cfg_path.display()
        ))
    })?;
    let ids = SpecialIds {
        bos: id("bos_token"),
        eos,
        pad: id("pad_token"),
    };
    Ok((tok, ids))
}

/// `loam export --run DIR [--step N] --format hf --out DIR`.
pub fn export_cmd(args: &ExportArgs) -> Result<Value> {
    let dir = args.ckpt.dir()?;
    let ckpt = Checkpoint::read(&dir)?;
    let (_, ids) = special_ids(&args.ckpt.run)?;
    let tensors = export::hf_tensors(&ckpt)?;
    let out = &args.out;
    let tok_dir = tokenizer_dir(&args.ckpt.run);
    loam_train::checkpoint::commit_dir(out, |tmp| {
        loam_train::checkpoint::write_safetensors(&tmp.join("model.safetensors"), &tensors, &export::hf_metadata())?;
        let json = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
        let write = |file: &str, bytes: &[u8]| {
            let p = tmp.join(file);
            std::fs::write(&p, bytes).map_err(|e| loam_train::TrainError::Io { path: p, source: e })
        };
        write("config.json", &json(&export::hf_config(&ckpt.config, ids)))?;
        write(
            "generation_config.json",
            &json(&export::hf_generation_config(&ckpt.config, ids)),
        )?;
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            let src = tok_dir.join(file);
            let bytes = std::fs::read(&src).map_err(|e| loam_train::TrainError::Io { path: src, source: e })?;
            write(file, &bytes)?;
        }
        Ok(())
    })
    .with_context(|| format!("writing the export into {}", out.display()))?;
    eprintln!(
        "export: {} → {} ({} tensors, {} layers × {})",
        dir.display(),
        out.display(),
        tensors.len(),
        ckpt.config.n_layer,
        ckpt.config.d_model
    );
    Ok(
        serde_json::json!({"ok": true, "checkpoint": dir, "out": out, "format": args.format,
        "tensors": tensors.len(), "eos_token_id": ids.eos, "bos_token_id": ids.bos}),
    )
}

/// `loam generate --run DIR (--prompt TEXT | --ids 1,2,3) [--max-new-tokens N] [--logits F]`.
/// Runs on the CPU backend: it is a reference, not a server.
pub fn generate_cmd(args: &GenerateArgs) -> Result<Value> {
    type B = loam_train::CpuBackend;
    let dir = args.ckpt.dir()?;
    let ckpt = Checkpoint::read(&dir)?;
    let (tok, ids) = special_ids(&args.ckpt.run)?;
    let prompt = match (&args.prompt, &args.ids) {
        (_, Some(ids)) => ids.clone(),
        (Some(text), None) => tok.encode(text)?,
        (None, None) => anyhow::bail!(UsageError("give --prompt TEXT or --ids 1,2,3".into())),
    };
    let device = Default::default();
    let model = ckpt.model::<B>(&device)?;
    let map = |e: loam_train::TrainError| match e {
        loam_train::TrainError::Config(m) => anyhow::Error::new(UsageError(m)),
        other => anyhow::Error::new(other),
    };
    let (new, prompt_logits) = export::greedy(
        &model,
        &ckpt.config,
        &prompt,
        args.max_new_tokens,
        Some(ids.eos),
        &device,
    )
    .map_err(map)?;
    if let Some(path) = &args.logits {
        let tensors = std::collections::BTreeMap::from([(
            "logits".to_owned(),
            (vec![prompt.len(), ckpt.config.vocab_size], prompt_logits),
        )]);
        loam_train::checkpoint::write_safetensors(path, &tensors, &export::hf_metadata())?;
    }
    let shown: Vec<u32> = new
        .iter()
        .copied()
        .filter(|&i| (i as usize) < tok.vocab_size())
        .collect();
    Ok(
        serde_json::json!({"ok": true, "checkpoint": dir, "prompt_ids": prompt, "new_ids": new,
        "text": tok.decode(&shown)?}),
    )
}
