//! Arbitrary bytes as every ucloudstack API answer the provider reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    snapwarden::providers::ucloudstack::fuzz_parse_response(data);
});
