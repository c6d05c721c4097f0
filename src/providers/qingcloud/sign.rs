//! QingCloud request signing (signature_version 1, HmacSHA256), as pure
//! functions so the published test vectors can pin them down.
//!
//! Owns: the canonical query string (byte-sorted, strictly percent-encoded),
//! the string to sign and the signature. Must not do I/O, read the clock or
//! log anything: the caller supplies the time stamp and never prints the
//! result.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use crate::providers::query_api;

/// Everything except `A-Z a-z 0-9 - _ . ~` is encoded; `percent-encoding`
/// writes upper-case hex and `%20` for a space, as QingCloud requires.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The `signature_method` this signer implements.
pub const SIGNATURE_METHOD: &str = "HmacSHA256";
/// The `signature_version` this signer implements.
pub const SIGNATURE_VERSION: &str = "1";

/// Percent-encode one name or value for the canonical query.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

/// `YYYY-MM-DDThh:mm:ssZ` in UTC, no fractional seconds.
pub fn time_stamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The canonical query: parameters sorted by name in byte order (ties by
/// value, so the result never depends on input order), each name and value
/// strictly encoded, joined with `&`. `signature` itself must not be in
/// `params`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    query_api::sorted_pairs(params)
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD\nPATH\ncanonical_query`.
pub fn string_to_sign(method: &str, path: &str, canonical_query: &str) -> String {
    format!("{method}\n{path}\n{canonical_query}")
}

/// Base64(HMAC-SHA256(secret, string_to_sign)), standard alphabet, padded.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// A signed request: the query to send, and the signature to append.
/// Neither may be logged (the signature authorises the request).
pub struct Signed {
    pub canonical_query: String,
    pub signature: String,
}

impl Signed {
    /// `canonical_query&signature=<form-encoded signature>`: the exact query
    /// string to put after `?`.
    pub fn query_with_signature(&self) -> String {
        format!(
            "{}&signature={}",
            self.canonical_query,
            encode(&self.signature)
        )
    }
}

/// Sign `params` (which must already hold every common parameter,
/// including `time_stamp`) for `method` and `path`.
pub fn sign(method: &str, path: &str, params: &[(String, String)], secret: &str) -> Signed {
    let canonical_query = canonical_query(params);
    let signature = signature(secret, &string_to_sign(method, path, &canonical_query));
    Signed {
        canonical_query,
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::query_api::fake::pairs as p;

    const AK: &str = "QYACCESSKEYIDEXAMPLE";
    const SK: &str = "SECRETACCESSKEY";

    fn run_instances(zone: &str) -> Vec<(String, String)> {
        p(&[
            ("count", "1"),
            ("vxnets.1", "vxnet-0"),
            ("zone", zone),
            ("instance_type", "small_b"),
            ("signature_version", "1"),
            ("signature_method", "HmacSHA256"),
            ("instance_name", "demo"),
            ("image_id", "centos64x86a"),
            ("login_mode", "passwd"),
            ("login_passwd", "QingCloud20130712"),
            ("version", "1"),
            ("access_key_id", AK),
            ("action", "RunInstances"),
            ("time_stamp", "2013-08-27T14:30:10Z"),
        ])
    }

    fn create_snapshots() -> Vec<(String, String)> {
        p(&[
            ("action", "CreateSnapshots"),
            ("resources.1", "vol-abcd1234"),
            ("snapshot_name", "snapd 2024-01-01 00:00"),
            ("is_full", "1"),
            ("zone", "pek3a"),
            ("access_key_id", AK),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
            ("version", "1"),
            ("time_stamp", "2024-01-01T00:00:00Z"),
        ])
    }

    /// `params` signed with SK for `GET /iaas/` give `signature`, and the
    /// signed query ends with it percent-encoded (`encoded`).
    fn assert_get_signature(params: &[(String, String)], signature: &str, encoded: &str) {
        let signed = sign("GET", "/iaas/", params, SK);
        assert_eq!(signed.signature, signature);
        let query = signed.query_with_signature();
        assert!(query.ends_with(&format!("&signature={encoded}")), "{query}");
    }

    #[test]
    fn run_instances_pek3a_string_to_sign_and_signature() {
        let params = run_instances("pek3a");
        let q = canonical_query(&params);
        assert_eq!(
            string_to_sign("GET", "/iaas/", &q),
            "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=RunInstances&count=1&image_id=centos64x86a&instance_name=demo&instance_type=small_b&login_mode=passwd&login_passwd=QingCloud20130712&signature_method=HmacSHA256&signature_version=1&time_stamp=2013-08-27T14%3A30%3A10Z&version=1&vxnets.1=vxnet-0&zone=pek3a"
        );
        assert_get_signature(
            &params,
            "byjccvWIvAftaq+oublemagH3bYAlDWxxLFAzAsyslw=",
            "byjccvWIvAftaq%2BoublemagH3bYAlDWxxLFAzAsyslw%3D",
        );
    }

    #[test]
    fn run_instances_pek1_signature() {
        assert_get_signature(
            &run_instances("pek1"),
            "32bseYy39DOlatuewpeuW5vpmW51sD1A/JdGynqSpP8=",
            "32bseYy39DOlatuewpeuW5vpmW51sD1A%2FJdGynqSpP8%3D",
        );
    }

    #[test]
    fn create_snapshots_get_vector() {
        let params = create_snapshots();
        assert_eq!(
            string_to_sign("GET", "/iaas/", &canonical_query(&params)),
            "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=CreateSnapshots&is_full=1&resources.1=vol-abcd1234&signature_method=HmacSHA256&signature_version=1&snapshot_name=snapd%202024-01-01%2000%3A00&time_stamp=2024-01-01T00%3A00%3A00Z&version=1&zone=pek3a"
        );
        assert_get_signature(
            &params,
            "bMo0Lc66whS+b5OFodQyTg1mWt/DcCAR2umJzaM30b4=",
            "bMo0Lc66whS%2Bb5OFodQyTg1mWt%2FDcCAR2umJzaM30b4%3D",
        );
    }

    #[test]
    fn create_snapshots_post_vector() {
        let signed = sign("POST", "/iaas/", &create_snapshots(), SK);
        assert_eq!(
            signed.signature,
            "KBcXBJ/pfOIcv47LO7MZOLsbXkGr6U7H2ZFPf/3x9Gg="
        );
    }

    #[test]
    fn describe_jobs_vector() {
        let params = p(&[
            ("action", "DescribeJobs"),
            ("jobs.1", "j-aj3b6pjl"),
            ("zone", "pek3a"),
            ("time_stamp", "2024-01-01T00:00:05Z"),
            ("access_key_id", AK),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
            ("version", "1"),
        ]);
        assert_eq!(
            sign("GET", "/iaas/", &params, SK).signature,
            "vYHd0FvZ4OWVUzsvxFGdSn34MqaMEvXDApJt7qkLpxk="
        );
    }

    #[test]
    fn sorting_is_byte_order_not_numeric() {
        let q = canonical_query(&p(&[
            ("resources.2", "b"),
            ("resources.10", "c"),
            ("resources.1", "a"),
        ]));
        assert_eq!(q, "resources.1=a&resources.10=c&resources.2=b");
    }

    #[test]
    fn encoding_is_strict() {
        assert_eq!(
            encode("a b+c/d=e:f~g_h.i-j"),
            "a%20b%2Bc%2Fd%3De%3Af~g_h.i-j"
        );
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("*'()!"), "%2A%27%28%29%21");
    }

    #[test]
    fn time_stamp_format() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:05.987+00:00")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(time_stamp(t), "2024-01-01T00:00:05Z");
    }
}
