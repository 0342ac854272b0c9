//! Arbitrary bytes as a notice (validation, encoding, archive check) and as a raw
//! archive. The harness is shared with `tests/fuzz_corpus.rs`, which replays the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| feedcore::fuzzing::notice(data));
