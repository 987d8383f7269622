#![no_main]
//! Fuzz target `attachment`: see `pasopati_common::fuzzing::attachment`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::attachment(data);
});
