//! QingCloud request signatures (signature_version 1), read from the
//! published spec, independent of the provider client.
//!
//! string_to_sign = `METHOD\nPATH\n` + every parameter except `signature`,
//! sorted by name in byte order, name and value percent-encoded (UTF-8; only
//! `A-Za-z0-9-_.~` left as is; upper-case hex; space as `%20`), joined as
//! `k=v` with `&`. The signature is Base64 (standard, padded) of the HMAC of
//! that string keyed with the secret.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the RFC 3986 unreserved characters is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The `signature_method` values QingCloud accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureMethod {
    HmacSha256,
    HmacSha1,
}

impl SignatureMethod {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "HmacSHA256" => Some(SignatureMethod::HmacSha256),
            "HmacSHA1" => Some(SignatureMethod::HmacSha1),
            _ => None,
        }
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// The canonical query: all parameters but `signature`, byte-sorted (the
/// `BTreeMap<String, _>` order is byte order), encoded and joined.
pub(crate) fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "signature")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn string_to_sign(
    method: &str,
    path: &str,
    params: &BTreeMap<String, String>,
) -> String {
    format!("{method}\n{path}\n{}", canonical_query(params))
}

fn mac_bytes(algorithm: SignatureMethod, secret: &str, message: &str) -> Vec<u8> {
    match algorithm {
        SignatureMethod::HmacSha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        SignatureMethod::HmacSha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// The Base64 signature a correct client sends for these parameters (the
/// simulator itself never signs; its tests act as clients).
#[cfg(test)]
pub(crate) fn sign(
    algorithm: SignatureMethod,
    secret: &str,
    method: &str,
    path: &str,
    params: &BTreeMap<String, String>,
) -> String {
    let message = string_to_sign(method, path, params);
    base64::engine::general_purpose::STANDARD.encode(mac_bytes(algorithm, secret, &message))
}

/// Whether `provided` (already URL-decoded) is the right signature. Compares
/// the decoded MAC bytes without an early exit; anything that is not valid
/// Base64 simply does not match.
pub(crate) fn verify(
    algorithm: SignatureMethod,
    secret: &str,
    method: &str,
    path: &str,
    params: &BTreeMap<String, String>,
    provided: &str,
) -> bool {
    let Ok(provided) = base64::engine::general_purpose::STANDARD.decode(provided) else {
        return false;
    };
    let expected = mac_bytes(algorithm, secret, &string_to_sign(method, path, params));
    expected.len() == provided.len()
        && expected
            .iter()
            .zip(&provided)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::form::{params, Params};

    const AK: &str = "QYACCESSKEYIDEXAMPLE";
    const SECRET: &str = "SECRETACCESSKEY";

    /// Whether a GET to `path` with `p` verifies against `sig` under `SECRET`.
    fn verifies(method: SignatureMethod, path: &str, p: &Params, sig: &str) -> bool {
        verify(method, SECRET, "GET", path, p, sig)
    }

    fn run_instances(zone: &str) -> BTreeMap<String, String> {
        params(&[
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

    fn create_snapshots() -> BTreeMap<String, String> {
        params(&[
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

    fn check(method: &str, p: &BTreeMap<String, String>, expected: &str) {
        let sha = SignatureMethod::HmacSha256;
        assert_eq!(sign(sha, SECRET, method, "/iaas/", p), expected);
        assert!(verify(sha, SECRET, method, "/iaas/", p, expected));
        assert!(!verify(sha, "WRONG", method, "/iaas/", p, expected));
    }

    #[test]
    fn run_instances_string_to_sign_matches_the_doc() {
        assert_eq!(
            string_to_sign("GET", "/iaas/", &run_instances("pek3a")),
            "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=RunInstances&count=1\
             &image_id=centos64x86a&instance_name=demo&instance_type=small_b&login_mode=passwd\
             &login_passwd=QingCloud20130712&signature_method=HmacSHA256&signature_version=1\
             &time_stamp=2013-08-27T14%3A30%3A10Z&version=1&vxnets.1=vxnet-0&zone=pek3a"
        );
    }

    #[test]
    fn run_instances_vector_pek3a() {
        check(
            "GET",
            &run_instances("pek3a"),
            "byjccvWIvAftaq+oublemagH3bYAlDWxxLFAzAsyslw=",
        );
    }

    #[test]
    fn run_instances_vector_pek1() {
        check(
            "GET",
            &run_instances("pek1"),
            "32bseYy39DOlatuewpeuW5vpmW51sD1A/JdGynqSpP8=",
        );
    }

    #[test]
    fn create_snapshots_vectors_get_and_post() {
        assert_eq!(
            string_to_sign("GET", "/iaas/", &create_snapshots()),
            "GET\n/iaas/\naccess_key_id=QYACCESSKEYIDEXAMPLE&action=CreateSnapshots&is_full=1\
             &resources.1=vol-abcd1234&signature_method=HmacSHA256&signature_version=1\
             &snapshot_name=snapd%202024-01-01%2000%3A00&time_stamp=2024-01-01T00%3A00%3A00Z\
             &version=1&zone=pek3a"
        );
        check(
            "GET",
            &create_snapshots(),
            "bMo0Lc66whS+b5OFodQyTg1mWt/DcCAR2umJzaM30b4=",
        );
        check(
            "POST",
            &create_snapshots(),
            "KBcXBJ/pfOIcv47LO7MZOLsbXkGr6U7H2ZFPf/3x9Gg=",
        );
    }

    #[test]
    fn describe_jobs_vector() {
        let p = params(&[
            ("action", "DescribeJobs"),
            ("jobs.1", "j-aj3b6pjl"),
            ("zone", "pek3a"),
            ("time_stamp", "2024-01-01T00:00:05Z"),
            ("access_key_id", AK),
            ("signature_method", "HmacSHA256"),
            ("signature_version", "1"),
            ("version", "1"),
        ]);
        check("GET", &p, "vYHd0FvZ4OWVUzsvxFGdSn34MqaMEvXDApJt7qkLpxk=");
    }

    #[test]
    fn signature_param_is_not_signed_and_path_matters() {
        let mut p = create_snapshots();
        let sig = sign(SignatureMethod::HmacSha256, SECRET, "GET", "/iaas/", &p);
        p.insert("signature".into(), sig.clone());
        assert!(verifies(SignatureMethod::HmacSha256, "/iaas/", &p, &sig));
        assert!(!verifies(SignatureMethod::HmacSha256, "/iaas", &p, &sig));
    }

    #[test]
    fn sorting_is_byte_order_and_sha1_round_trips() {
        let p = params(&[("resources.2", "b"), ("resources.10", "a")]);
        assert_eq!(canonical_query(&p), "resources.10=a&resources.2=b");
        let sig = sign(SignatureMethod::HmacSha1, SECRET, "GET", "/iaas/", &p);
        // 20-byte MAC → 28 Base64 characters.
        assert_eq!(sig.len(), 28);
        assert!(verifies(SignatureMethod::HmacSha1, "/iaas/", &p, &sig));
        assert!(!verifies(SignatureMethod::HmacSha256, "/iaas/", &p, &sig));
        assert!(!verifies(SignatureMethod::HmacSha1, "/iaas/", &p, "%%%"));
    }
}
