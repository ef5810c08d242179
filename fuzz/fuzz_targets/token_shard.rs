//! The token-shard reader: the bytes as a shard file, opened (every check of `open`), then
//! every document read back, as the trainer does.
#![no_main]
use std::io::Write;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A file per process, rewritten each run: shards are memory-mapped from a path.
    thread_local! {
        static PATH: std::path::PathBuf = std::env::temp_dir().join(format!("loam-fuzz-{}.tokens", std::process::id()));
    }
    PATH.with(|path| {
        let Ok(mut f) = std::fs::File::create(path) else { return };
        if f.write_all(data).is_err() {
            return;
        }
        drop(f);
        if let Ok(shard) = loam_tokenize::shards::TokenShard::open(path) {
            let mut ids = Vec::new();
            let mut i = 0;
            while let Some(r) = shard.doc_range(i) {
                ids.clear();
                shard.read_tokens(r, &mut ids);
                std::hint::black_box(&ids);
                i += 1;
            }
        }
    });
});
