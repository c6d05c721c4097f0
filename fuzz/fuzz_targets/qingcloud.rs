//! Arbitrary bytes as every qingcloud API answer the provider reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    snapwarden::providers::qingcloud::fuzz_parse_response(data);
});
