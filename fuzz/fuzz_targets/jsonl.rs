//! The JSON-lines reader: capped lines and each line's document or quarantine.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::hint::black_box(loam_pipeline::ingest::fuzz::jsonl(data));
});
