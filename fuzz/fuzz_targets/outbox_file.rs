//! Arbitrary bytes as a store's outbox file, checked, opened with the engine, and
//! drained. The harness is shared with `tests/fuzz_corpus.rs`, which replays the
//! corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| feedcore::fuzzing::outbox_file(data));
