#![no_main]
//! Fuzz target `certificate`: see `pasopati_common::fuzzing::certificate`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::certificate(data);
});
