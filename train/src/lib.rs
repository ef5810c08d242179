//! Training for loam: a LLaMA-style decoder in Burn, the token-shard data loader, AdamW
//! with warmup + multi-step schedule, checkpoints, scaling-law accounting (M, 6N1, 6N2)
//! and IsoFLOP sweeps. Reads the token-shard format that `loam-tokenize` defines.
//!
//! Empty until the `train` stage lands (issue 6).
