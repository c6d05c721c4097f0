//! Stage one: the file as serde sees it. Every struct denies unknown fields
//! and wraps each value in `Spanned` so that validation can point at it.
//! Required keys are `Option` here so that validation reports every missing
//! key at once instead of serde stopping at the first.
//!
//! Nothing here checks a value; see `validate/` and `kinds/`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostics::{list, suggest, Diagnostics};

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub state_path: Option<Spanned<String>>,
    pub state_url: Option<Spanned<String>>,
    pub state_password: Option<Spanned<RawSecret>>,
    pub state_password_file: Option<Spanned<String>>,
    pub state_password_env: Option<Spanned<String>>,
    pub node_name: Option<Spanned<String>>,
    pub lease_duration: Option<Spanned<String>>,
    pub lease_renew_every: Option<Spanned<String>>,
    pub takeover_grace: Option<Spanned<String>>,
    pub log_format: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    pub max_deletes_per_run: Option<Spanned<i64>>,
}

/// `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub webhook_url: Option<Spanned<String>>,
    pub webhook_headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawSecret>>>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub on: Option<Spanned<Vec<Spanned<String>>>>,
    pub repeat_after: Option<Spanned<String>>,
}

/// One `[[policy]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: Option<Spanned<String>>,
    pub provider: Option<Spanned<String>>,
    pub resource: Option<Spanned<String>>,
    pub targets: Option<Spanned<Vec<Spanned<String>>>>,
    pub schedule: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub retain: Option<Spanned<i64>>,
    pub poll_interval: Option<Spanned<String>>,
    pub poll_max_interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub catch_up: Option<Spanned<bool>>,
    pub jitter: Option<Spanned<String>>,
    pub full_every: Option<Spanned<i64>>,
    pub stale_after: Option<Spanned<String>>,
    pub critical_after_failures: Option<Spanned<i64>>,
    pub keep_hourly: Option<Spanned<i64>>,
    pub keep_daily: Option<Spanned<i64>>,
    pub keep_weekly: Option<Spanned<i64>>,
    pub keep_monthly: Option<Spanned<i64>>,
    pub keep_yearly: Option<Spanned<i64>>,
    pub keep_within: Option<Spanned<String>>,
    pub min_keep: Option<Spanned<i64>>,
    pub volume_ids: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_deletes_per_run: Option<Spanned<i64>>,
    pub select: Option<Spanned<RawSelect>>,
    pub pre_snapshot: Option<Spanned<Vec<Spanned<String>>>>,
    pub post_snapshot: Option<Spanned<Vec<Spanned<String>>>>,
    pub hook_timeout: Option<Spanned<String>>,
    pub on_pre_failure: Option<Spanned<String>>,
    pub blackout: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A policy's `select = { name = "…", tags = { k = "v" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSelect {
    pub name: Option<Spanned<String>>,
    pub tags: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// A secret written literally in the file. Unlike `String`, a type error on
/// it never quotes the value, and its `Debug` is redacted.
pub(crate) struct RawSecret(pub String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawSecret([redacted])")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'v> Visitor<'v> for SecretVisitor {
            type Value = RawSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecret, E> {
                Ok(RawSecret(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawSecret, E> {
                Ok(RawSecret(v))
            }
            // The default visitors quote the value in their error; a
            // mistyped secret is still a secret.
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("an integer"), &self))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("an integer"), &self))
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("an integer"), &self))
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("an integer"), &self))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("a float"), &self))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawSecret, E> {
                Err(E::invalid_type(de::Unexpected::Other("a boolean"), &self))
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, _: A) -> Result<RawSecret, A::Error> {
                Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
            }
            fn visit_map<A: de::MapAccess<'v>>(self, _: A) -> Result<RawSecret, A::Error> {
                Err(de::Error::invalid_type(
                    de::Unexpected::Other("a table or datetime"),
                    &self,
                ))
            }
        }
        d.deserialize_any(SecretVisitor)
    }
}

/// The field names a derived struct accepts, read from serde itself so that
/// the list can never drift from the struct.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture(Option<&'static [&'static str]>);
    struct FieldsDeserializer<'a>(&'a mut Capture);

    impl<'de> Deserializer<'de> for FieldsDeserializer<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 .0 = Some(fields);
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut capture = Capture(None);
    let _ = T::deserialize(FieldsDeserializer(&mut capture));
    capture
        .0
        .expect("fields_of is only used on #[derive(Deserialize)] structs")
}

/// The value as a table, or a problem saying what `what` should have been.
pub(crate) fn expect_table<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    what: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            diag.error(
                value.span(),
                format!("{what} must be a table, found a {}", other.type_str()),
            );
            None
        }
    }
}

/// Reports each key of `table` that is not in `allowed` (with a suggestion
/// when it looks like a typo) and returns whether all keys were known.
pub(crate) fn check_keys(
    table: &DeTable<'_>,
    allowed: &[&str],
    what: &str,
    diag: &mut Diagnostics<'_>,
) -> bool {
    let mut ok = true;
    for (key, _) in table.iter() {
        let key_str: &str = key.get_ref();
        if allowed.contains(&key_str) {
            continue;
        }
        ok = false;
        let hint = match suggest(key_str, allowed.iter().copied()) {
            Some(s) => format!("; did you mean `{s}`?"),
            None => String::new(),
        };
        diag.error(
            key.span(),
            format!(
                "unknown key `{key_str}` in {what}{hint} (expected one of: {})",
                list(allowed)
            ),
        );
    }
    ok
}

/// Deserializes a table whose keys were already checked with [`check_keys`]
/// (unknown ones are dropped here so that type errors in the rest are still
/// found). A type error becomes a positioned problem.
pub(crate) fn deserialize_table<T: DeserializeOwned>(
    span: Range<usize>,
    table: &DeTable<'_>,
    diag: &mut Diagnostics<'_>,
) -> Option<T> {
    let allowed = fields_of::<T>();
    let known: DeTable<'_> = table
        .iter()
        .filter(|(k, _)| allowed.contains(&k.get_ref().as_ref()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let value = Spanned::new(span, DeValue::Table(known));
    match T::deserialize(toml::de::ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            diag.toml_error(&e, Some(table));
            None
        }
    }
}

/// `expect_table` + `check_keys` + `deserialize_table` for a section whose
/// keys are exactly the fields of `T`.
pub(crate) fn section<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    what: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<T> {
    let table = expect_table(value, what, diag)?;
    check_keys(table, fields_of::<T>(), what, diag);
    deserialize_table(value.span(), table, diag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_serde() {
        assert_eq!(
            fields_of::<RawDaemon>(),
            [
                "state_path",
                "state_url",
                "state_password",
                "state_password_file",
                "state_password_env",
                "node_name",
                "lease_duration",
                "lease_renew_every",
                "takeover_grace",
                "log_format",
                "timezone",
                "metrics_listen",
                "max_deletes_per_run"
            ]
        );
    }

    #[test]
    fn secret_type_errors_do_not_quote_the_value() {
        let err = toml::from_str::<BTreeMap<String, RawSecret>>("s = 98765432")
            .expect_err("an integer is not a secret string");
        // `message()` only: the Display of a toml error quotes the source line.
        assert!(!err.message().contains("98765432"), "{}", err.message());
        let ok = toml::from_str::<BTreeMap<String, RawSecret>>("s = \"hunter2\"").unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }
}
