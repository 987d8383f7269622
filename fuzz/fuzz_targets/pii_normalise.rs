#![no_main]
//! Fuzz target `pii_normalise`: see `pasopati_common::fuzzing::pii_normalise`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::pii_normalise(data);
});
