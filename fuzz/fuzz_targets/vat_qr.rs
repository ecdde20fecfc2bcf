#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imc_agent::fuzzing::vat_qr(data));
