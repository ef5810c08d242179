//! The LLaMA-style decoder of the paper: token embedding, `n_layer` pre-norm blocks
//! (RMSNorm → grouped-query causal attention with RoPE → residual; RMSNorm → SwiGLU →
//! residual), a final RMSNorm and an output head (tied to the embedding or not). Linear
//! layers have no bias; every weight is drawn from N(0, 0.006²).
use burn::module::{Initializer, Module};
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::{
    Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig, RotaryEncoding, RotaryEncodingConfig,
};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Model shape (the `[train.model]` table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub n_layer: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention); equal to `n_heads` for plain MHA.
    pub n_kv_heads: usize,
    /// Context length `l_seq`.
    pub seq_len: usize,
    /// Embedding rows: the tokenizer's padded vocabulary (set from the token shards).
    pub vocab_size: usize,
    /// SwiGLU hidden size is 8/3·d_model rounded up to a multiple of this.
    pub ffn_multiple: usize,
    pub tie_embeddings: bool,
    pub init_std: f64,
    pub rope_theta: f32,
    pub norm_eps: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            n_layer: 2,
            d_model: 64,
            n_heads: 4,
            n_kv_heads: 2,
            seq_len: 64,
            vocab_size: 0,
            ffn_multiple: 32,
            tie_embeddings: false,
            init_std: 0.006,
            rope_theta: 10_000.0,
            norm_eps: 1e-6,
        }
    }
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// SwiGLU hidden size: 8/3·d_model rounded up to `ffn_multiple`.
    pub fn ffn_hidden(&self) -> usize {
        let h = (8 * self.d_model).div_ceil(3);
        h.div_ceil(self.ffn_multiple.max(1)) * self.ffn_multiple.max(1)
    }

    pub fn validate(&self) -> Result<(), String> {
        let bad = |w: String| Err(format!("train.model: {w}"));
        if self.n_layer == 0 || self.d_model == 0 || self.n_heads == 0 || self.seq_len == 0 {
            return bad("n_layer, d_model, n_heads and seq_len must be positive".into());
        }
        if !self.d_model.is_multiple_of(self.n_heads) || !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "d_model {} must split into n_heads {} heads of even size (RoPE rotates pairs)",
                self.d_model, self.n_heads
            ));
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "n_heads {} must be a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.vocab_size == 0 {
            return bad("vocab_size is 0 (it comes from the token shards' padded vocabulary)".into());
        }
        Ok(())
    }

    /// Parameters: (all, non-embedding). The non-embedding count excludes the embedding and
    /// an untied head, as the paper's N1 does.
    pub fn param_counts(&self) -> (u64, u64) {
        let (d, f, v) = (self.d_model as u64, self.ffn_hidden() as u64, self.vocab_size as u64);
        let kv = (self.n_kv_heads * self.head_dim()) as u64;
        let block = d * d * 2 + d * kv * 2 + 3 * d * f + 2 * d;
        let non_embedding = self.n_layer as u64 * block + d;
        let embedding = v * d * if self.tie_embeddings { 1 } else { 2 };
        (non_embedding + embedding, non_embedding)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Llama<B> {
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.init_std,
        };
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_bias(false)
                .with_initializer(init.clone())
                .init(device)
        };
        let hd = self.head_dim();
        let layers = (0..self.n_layer)
            .map(|_| Block {
                attn_norm: RmsNormConfig::new(self.d_model)
                    .with_epsilon(self.norm_eps)
                    .init(device),
                wq: linear(self.d_model, self.n_heads * hd),
                wk: linear(self.d_model, self.n_kv_heads * hd),
                wv: linear(self.d_model, self.n_kv_heads * hd),
                wo: linear(self.n_heads * hd, self.d_model),
                ffn_norm: RmsNormConfig::new(self.d_model)
                    .with_epsilon(self.norm_eps)
                    .init(device),
                w1: linear(self.d_model, self.ffn_hidden()),
                w2: linear(self.ffn_hidden(), self.d_model),
                w3: linear(self.d_model, self.ffn_hidden()),
                n_heads: self.n_heads,
                n_kv_heads: self.n_kv_heads,
            })
            .collect();
        Llama {
            embed: EmbeddingConfig::new(self.vocab_size, self.d_model)
                .with_initializer(init.clone())
                .init(device),
            layers,
            norm: RmsNormConfig::new(self.d_model)
                .with_epsilon(self.norm_eps)
                .init(device),
            head: (!self.tie_embeddings).then(|| linear(self.d_model, self.vocab_size)),
            rope: RotaryEncodingConfig::new(self.seq_len, hd)
                .with_theta(self.rope_theta)
                .init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    attn_norm: RmsNorm<B>,
    wq: Linear<B>,
    wk: Linear<B>,
    wv: Linear<B>,
    wo: Linear<B>,
    ffn_norm: RmsNorm<B>,
    w1: Linear<B>,
    w2: Linear<B>,
    w3: Linear<B>,
    n_heads: usize,
    n_kv_heads: usize,
}

impl<B: Backend> Block<B> {
    /// `x`: [batch, seq, d_model] → same shape.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryEncoding<B>,
        mask: Tensor<B, 4, burn::tensor::Bool>,
    ) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let (h, kvh) = (self.n_heads, self.n_kv_heads);
        let hd = d / h;
        let n = self.attn_norm.forward(x.clone());
        // [b, s, h·hd] → [b, h, s, hd]
        let heads = |t: Tensor<B, 3>, count: usize| t.reshape([b, s, count, hd]).swap_dims(1, 2);
        let q = rope.forward(heads(self.wq.forward(n.clone()), h));
        let k = rope.forward(heads(self.wk.forward(n.clone()), kvh));
        let v = heads(self.wv.forward(n), kvh);
        // Grouped-query attention: each K/V head serves h/kvh query heads.
        let repeat = |t: Tensor<B, 4>| {
            if kvh == h {
                t
            } else {
                t.unsqueeze_dim::<5>(2)
                    .expand([b, kvh, h / kvh, s, hd])
                    .reshape([b, h, s, hd])
            }
        };
        let (k, v) = (repeat(k), repeat(v));
        // [b, h, s, s] scores; the causal mask hides later positions.
        let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt();
        let probs = softmax(scores.mask_fill(mask.expand([b, h, s, s]), f32::NEG_INFINITY), 3);
        let attn = probs.matmul(v).swap_dims(1, 2).reshape([b, s, h * hd]);
        let x = x + self.wo.forward(attn);
        let n = self.ffn_norm.forward(x.clone());
        x.clone() + self.w2.forward(silu(self.w1.forward(n.clone())) * self.w3.forward(n))
    }
}

#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    embed: Embedding<B>,
    layers: Vec<Block<B>>,
    norm: RmsNorm<B>,
    head: Option<Linear<B>>,
    rope: RotaryEncoding<B>,
}

impl<B: Backend> Llama<B> {
    /// `tokens`: [batch, seq] → logits [batch, seq, vocab].
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, s] = tokens.dims();
        let device = tokens.device();
        let mask = generate_autoregressive_mask::<B>(b, s, &device).unsqueeze_dim::<4>(1);
        let mut x = self.embed.forward(tokens);
        for layer in &self.layers {
            x = layer.forward(x, &self.rope, mask.clone());
        }
        let x = self.norm.forward(x);
        match &self.head {
            Some(head) => head.forward(x),
            // Tied: logits against the embedding matrix [vocab, d] transposed.
            None => x.matmul(self.embed.weight.val().transpose().unsqueeze_dim::<3>(0)),
        }
    }
}
