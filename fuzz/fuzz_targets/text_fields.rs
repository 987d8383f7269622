#![no_main]
//! Fuzz target `text_fields`: see `pasopati_common::fuzzing::text_fields`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::text_fields(data);
});
