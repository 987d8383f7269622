#![no_main]
//! Fuzz target `enrollment_token`: see `pasopati_common::fuzzing::enrollment_token`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::enrollment_token(data);
});
