//! `cargo +nightly fuzz run select_patterns`: patterns and excludes from the input, matched by the
//! real selection code against a fixed tree; see `src/lib.rs` for the input format and invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fastcp_fuzz::check(data));
