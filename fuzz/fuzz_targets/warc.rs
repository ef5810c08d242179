//! The WARC/WET reader (plain or gzip) with every response block through the HTTP layer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::hint::black_box(loam_pipeline::ingest::fuzz::warc(data));
});
