#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imc_shared::fuzzing::cover_code(data));
