//! One HTTP response block: headers, chunked transfer coding, gzip/deflate, charset.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::hint::black_box(loam_pipeline::ingest::fuzz::http(data));
});
