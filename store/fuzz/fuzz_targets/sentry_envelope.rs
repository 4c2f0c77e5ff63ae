#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| obs_store::fuzzing::sentry_envelope(data));
