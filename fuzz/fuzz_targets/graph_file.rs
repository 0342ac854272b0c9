//! Arbitrary bytes as one file of a graph directory (the registry, an op log or a
//! snapshot), checked and opened. The harness is shared with `tests/fuzz_corpus.rs`,
//! which replays the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| feedcore::fuzzing::graph_file(data));
