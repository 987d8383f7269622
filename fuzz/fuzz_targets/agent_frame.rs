#![no_main]
//! Fuzz target `agent_frame`: see `pasopati_common::fuzzing::agent_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pasopati_common::fuzzing::agent_frame(data);
});
