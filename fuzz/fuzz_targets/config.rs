//! The config loader on arbitrary text: errors are fine, panics are not.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A fixed, empty environment: `*_env` lookups find nothing, so
        // runs do not depend on the machine.
        let _ = snapwarden::config::load_with_env(
            text,
            Path::new("/etc/snapwarden/fuzz.toml"),
            &|_| None,
        );
    }
});
