//! Byte-level BPE for loam: training with the `tokenizers` crate and the DeepSeek LLM
//! pre-tokenizer, loading any HF `tokenizer.json`, and encoding final corpus shards into
//! packed token shards that the trainer memory-maps (their format is defined here).
//!
//! Empty until the `tokenizer`/`tokenize` stages land (issue 5).
