//! Lenient JSON helpers the provider clients share: clouds send numbers as
//! numbers, numeric strings or null, sometimes in the same field.

use serde::{Deserialize, Deserializer};

/// A number, a numeric string, or null/absent.
#[derive(Deserialize)]
#[serde(untagged)]
enum FlexNumber {
    Int(i64),
    Float(f64),
    Text(String),
}

/// An integer given as a number or a numeric string; null or "" is None.
pub fn flex_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Option::<FlexNumber>::deserialize(d)? {
        None => Ok(None),
        Some(FlexNumber::Int(n)) => Ok(Some(n)),
        Some(FlexNumber::Float(f)) if f.fract() == 0.0 && f.is_finite() => Ok(Some(f as i64)),
        Some(FlexNumber::Float(f)) => Err(D::Error::custom(format!("not an integer: {f}"))),
        Some(FlexNumber::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(FlexNumber::Text(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| D::Error::custom("not an integer string")),
    }
}

/// Like [`flex_i64`], refusing negative values.
pub fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    match flex_i64(d)? {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::custom("negative count")),
    }
}
