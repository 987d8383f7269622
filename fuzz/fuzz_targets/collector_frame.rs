#![no_main]
//! Fuzz target `collector_frame`: see `pasopati_common::fuzzing::collector_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::collector_frame(data);
});
