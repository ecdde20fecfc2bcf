#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imc_agent::fuzzing::page_extractor(data));
