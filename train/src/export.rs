//! Checkpoints out to the ecosystem: a Hugging Face `LlamaForCausalLM` folder (HF tensor
//! names, `config.json`, `generation_config.json`), and loading a checkpoint back into the
//! Burn model for greedy decoding, the reference the export is checked against.
//!
//! Two layout differences make a plain rename wrong:
//! - Burn's `Linear` stores `[in, out]`; PyTorch's `nn.Linear` stores `[out, in]`.
//! - Burn's RoPE rotates adjacent pairs `(x[2i], x[2i+1])`; HF's rotates halves
//!   `(x[i], x[i + hd/2])` with the same frequency for pair `i`. So the q and k output rows
//!   are permuted per head (HF's Meta→HF `permute`: row `c·hd/2 + i` of a head takes loam's
//!   row `2i + c`), k with the KV head count. v and o rotate nothing and keep their order.
use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::checkpoint::{read_safetensors, Tensors};
use crate::model::{Llama, ModelConfig};
use crate::optim::Load;
use crate::TrainError;

/// A checkpoint folder's model config and weights, as `train` wrote them.
pub struct Checkpoint {
    pub config: ModelConfig,
    pub weights: Tensors,
}

impl Checkpoint {
    /// Reads `<dir>/config.json` and `<dir>/model.safetensors`.
    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| TrainError::io(&cfg_path, e))?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| {
            TrainError::Checkpoint(format!(
                "{}: not a loam model config ({e}); is this a loam checkpoint folder?",
                cfg_path.display()
            ))
        })?;
        config
            .validate()
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", cfg_path.display())))?;
        let (weights, _) = read_safetensors(&dir.join("model.safetensors"))?;
        Ok(Self { config, weights })
    }

    /// The Burn model with these weights; every parameter must be present with its shape.
    pub fn model<B: Backend>(&self, device: &B::Device) -> Result<Llama<B>, TrainError> {
        let mut load = Load::new(&self.weights);
        let model = self.config.init::<B>(device).map(&mut load);
        match load.problem {
            Some(p) => Err(TrainError::Checkpoint(p)),
            None => Ok(model),
        }
    }
}

/// loam's tensor name → HF's, and whether it is a Linear (transposed) and which RoPE
/// permutation its rows need (the head count), if any.
fn hf_name(name: &str, cfg: &ModelConfig) -> Option<(String, bool, Option<usize>)> {
    match name {
        "embed.weight" => return Some(("model.embed_tokens.weight".into(), false, None)),
        "norm.gamma" => return Some(("model.norm.weight".into(), false, None)),
        "head.weight" => return Some(("lm_head.weight".into(), true, None)),
        _ => {}
    }
    let rest = name.strip_prefix("layers.")?;
    let (layer, param) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (hf, linear, heads) = match param {
        "attn_norm.gamma" => ("input_layernorm.weight", false, None),
        "ffn_norm.gamma" => ("post_attention_layernorm.weight", false, None),
        "wq.weight" => ("self_attn.q_proj.weight", true, Some(cfg.n_heads)),
        "wk.weight" => ("self_attn.k_proj.weight", true, Some(cfg.n_kv_heads)),
        "wv.weight" => ("self_attn.v_proj.weight", true, None),
        "wo.weight" => ("self_attn.o_proj.weight", true, None),
        "w1.weight" => ("mlp.gate_proj.weight", true, None),
        "w3.weight" => ("mlp.up_proj.weight", true, None),
        "w2.weight" => ("mlp.down_proj.weight", true, None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}"), linear, heads))
}

/// `[rows, cols]` row-major → `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Reorders the rows of an `[heads·hd, cols]` matrix from adjacent RoPE pairs to halves.
fn permute_rope_rows(values: &[f32], heads: usize, hd: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    let half = hd / 2;
    for h in 0..heads {
        for c in 0..2 {
            for i in 0..half {
                let (to, from) = (h * hd + c * half + i, h * hd + 2 * i + c);
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// The checkpoint's weights under HF Llama names and layouts.
pub fn hf_tensors(ckpt: &Checkpoint) -> Result<Tensors, TrainError> {
    let cfg = &ckpt.config;
    let mut out = Tensors::new();
    for (name, (shape, values)) in &ckpt.weights {
        let (hf, linear, heads) = hf_name(name, cfg).ok_or_else(|| {
            TrainError::Checkpoint(format!(
                "tensor {name} has no Hugging Face Llama counterpart; this loam does not know how to export it"
            ))
        })?;
        let (shape, values) = if linear {
            let &[rows, cols] = shape.as_slice() else {
                return Err(TrainError::Checkpoint(format!(
                    "{name}: a Linear weight of shape {shape:?}"
                )));
            };
            // Burn [in, out] → torch [out, in]; the rows are now output features.
            let t = transpose(values, rows, cols);
            let t = match heads {
                Some(n) => permute_rope_rows(&t, n, cfg.head_dim(), rows),
                None => t,
            };
            (vec![cols, rows], t)
        } else {
            (shape.clone(), values.clone())
        };
        out.insert(hf, (shape, values));
    }
    Ok(out)
}

/// Token ids the exported config names.
#[derive(Debug, Clone, Copy)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: u32,
    pub pad: Option<u32>,
}

/// `config.json` of the HF folder. Both `rope_theta` (transformers 4.x) and
/// `rope_parameters` (5.x) are written so either line reads the same frequencies.
pub fn hf_config(cfg: &ModelConfig, ids: SpecialIds) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden(),
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim(),
        "hidden_act": "silu",
        "rms_norm_eps": cfg.norm_eps,
        "max_position_embeddings": cfg.seq_len,
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "initializer_range": cfg.init_std,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": null,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "torch_dtype": "float32",
        "dtype": "float32",
        "use_cache": true,
    })
}

/// `generation_config.json`: greedy by default, the ids of `config.json`.
pub fn hf_generation_config(cfg: &ModelConfig, ids: SpecialIds) -> serde_json::Value {
    serde_json::json!({
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "do_sample": false,
        "max_length": cfg.seq_len,
    })
}

/// Logits of every position of `ids`: `[ids.len(), vocab]`, row-major.
pub fn logits<B: Backend>(model: &Llama<B>, ids: &[u32], device: &B::Device) -> Vec<f32> {
    let n = ids.len();
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, n]),
        device,
    );
    // [1, n, vocab]
    let out = model.forward(tokens);
    out.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// Greedy continuation of `prompt` by `new` tokens (argmax, lowest id on ties, as torch's
/// argmax returns the first maximum), stopping after `eos`, with the prompt's logits
/// (`[prompt.len(), vocab]`, the first step's forward pass). The whole window is
/// recomputed per token: no KV cache, fine for checking an export.
pub fn greedy<B: Backend>(
    model: &Llama<B>,
    cfg: &ModelConfig,
    prompt: &[u32],
    new: usize,
    eos: Option<u32>,
    device: &B::Device,
) -> Result<(Vec<u32>, Vec<f32>), TrainError> {
    if prompt.is_empty() {
        return Err(TrainError::Config(
            "the prompt is empty: give at least one token".into(),
        ));
    }
    if prompt.len() + new > cfg.seq_len {
        return Err(TrainError::Config(format!(
            "prompt of {} tokens + {new} new ones exceeds the model's context of {} (train.model.seq_len)",
            prompt.len(),
            cfg.seq_len
        )));
    }
    if let Some(&bad) = prompt.iter().find(|&&i| i as usize >= cfg.vocab_size) {
        return Err(TrainError::Config(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            cfg.vocab_size
        )));
    }
    let v = cfg.vocab_size;
    let argmax = |row: &[f32]| {
        let mut best = 0usize;
        for (i, &x) in row.iter().enumerate() {
            if x > row[best] {
                best = i;
            }
        }
        best as u32
    };
    let prompt_logits = logits(model, prompt, device);
    let mut ids = prompt.to_vec();
    let mut out = Vec::with_capacity(new);
    for step in 0..new {
        let next = if step == 0 {
            argmax(&prompt_logits[(prompt.len() - 1) * v..])
        } else {
            argmax(&logits(model, &ids, device)[(ids.len() - 1) * v..])
        };
        out.push(next);
        ids.push(next);
        if Some(next) == eos {
            break;
        }
    }
    Ok((out, prompt_logits))
}

/// Metadata of the exported `model.safetensors` (`transformers` wants `format: pt`).
pub fn hf_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("format".to_owned(), "pt".to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rows_go_from_pairs_to_halves() {
        // One head of 4 rows (hd 4) × 1 column: loam order (p0c0, p0c1, p1c0, p1c1).
        let rows = [10.0, 11.0, 20.0, 21.0];
        assert_eq!(permute_rope_rows(&rows, 1, 4, 1), vec![10.0, 20.0, 11.0, 21.0]);
        // Two heads keep their blocks.
        let two = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(
            permute_rope_rows(&two, 2, 4, 1),
            vec![1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0]
        );
    }

    #[test]
    fn transpose_swaps_axes() {
        // [[1,2,3],[4,5,6]] → [[1,4],[2,5],[3,6]]
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn every_parameter_has_an_hf_name_and_layout() -> Result<(), TrainError> {
        let cfg = ModelConfig {
            vocab_size: 40,
            ..ModelConfig::default()
        };
        let model = cfg.init::<crate::CpuBackend>(&Default::default());
        let weights = crate::optim::Collect::of::<crate::CpuBackend, _>(&model);
        let ckpt = Checkpoint {
            config: cfg.clone(),
            weights,
        };
        let hf = hf_tensors(&ckpt)?;
        let (d, kv) = (cfg.d_model, cfg.n_kv_heads * cfg.head_dim());
        let shape = |k: &str| hf.get(k).map(|(s, _)| s.clone());
        assert_eq!(shape("model.embed_tokens.weight"), Some(vec![40, d]));
        assert_eq!(shape("model.layers.1.self_attn.k_proj.weight"), Some(vec![kv, d]));
        assert_eq!(
            shape("model.layers.0.mlp.down_proj.weight"),
            Some(vec![d, cfg.ffn_hidden()])
        );
        assert_eq!(shape("lm_head.weight"), Some(vec![40, d]));
        assert_eq!(hf.len(), ckpt.weights.len());
        Ok(())
    }
}
