//! Arbitrary bytes as a segment file, through the recovery scan and the directory
//! check. The harness is shared with `tests/fuzz_corpus.rs`, which replays the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| feedcore::fuzzing::segment(data));
