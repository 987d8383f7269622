#![no_main]
//! Fuzz target `csr`: see `pasopati_common::fuzzing::csr`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::csr(data);
});
