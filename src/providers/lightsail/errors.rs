//! Lightsail errors in the engine's words. The error name (`__type`, read
//! by the SDK into `code()`) decides, never the HTTP status alone; the
//! status only classifies answers that carry no name (a load balancer's
//! 503 page, an empty body).

use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_lightsail::config::http::HttpResponse;
use aws_sdk_lightsail::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::providers::{ErrorKind, ProviderError};

/// One SDK failure as a [`ProviderError`]. Nothing here can carry a secret:
/// the SDK never puts keys or signatures into its errors.
pub(super) fn from_sdk<E>(call: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let raw = ctx.raw();
            let retry_after = raw
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            classify(
                call,
                ctx.err().code(),
                ctx.err().message(),
                raw.status().as_u16(),
                retry_after,
            )
        }
        SdkError::TimeoutError(_) => {
            ProviderError::new(ErrorKind::Transient, call, "request timed out")
        }
        _ if mentions_credentials(&err) => ProviderError::new(
            ErrorKind::Auth,
            call,
            format!(
                "no usable AWS credentials (static keys, or the credential chain: environment, \
                 profile, web identity, container, instance role): {}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::DispatchFailure(_) => ProviderError::new(
            ErrorKind::Transient,
            call,
            format!("cannot reach Lightsail: {}", DisplayErrorContext(&err)),
        ),
        SdkError::ResponseError(_) => ProviderError::new(
            ErrorKind::Transient,
            call,
            format!(
                "the answer could not be read as Lightsail's JSON: {}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => ProviderError::new(
            ErrorKind::Permanent,
            call,
            format!(
                "the request could not be built: {}",
                DisplayErrorContext(&err)
            ),
        ),
        _ => ProviderError::new(
            ErrorKind::Transient,
            call,
            format!("request failed: {}", DisplayErrorContext(&err)),
        ),
    }
}

/// Whether a credentials failure is somewhere in the error's sources (the
/// SDK reports identity resolution failures as dispatch failures).
fn mentions_credentials(err: &(dyn StdError + 'static)) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The `__type` name (already cut at `:` and after `#` by the SDK) and the
/// HTTP status of an error answer.
pub(super) fn classify(
    call: &str,
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
    retry_after: Option<Duration>,
) -> ProviderError {
    let message = message.unwrap_or("").trim().to_string();
    let lower = message.to_ascii_lowercase();
    let kind = match code {
        Some(code) => match code {
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown" => ErrorKind::Throttled,
            "ServiceException"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "RequestTimeout"
            | "RequestTimeoutException" => ErrorKind::Transient,
            "UnauthenticatedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "RequestExpired" => ErrorKind::Auth,
            "NotFoundException" => ErrorKind::NotFound,
            // "Some names are already in use" (error name unconfirmed; the
            // message is what identifies a collision).
            _ if is_collision_message(&lower) => ErrorKind::Conflict,
            "OperationFailureException"
            | "AccountSetupInProgressException"
            | "RegionSetupInProgressException" => ErrorKind::Busy,
            "InvalidInputException" if is_quota_message(&lower) => ErrorKind::Quota,
            "ServiceQuotaExceededException" | "LimitExceededException" => ErrorKind::Quota,
            _ => ErrorKind::Permanent,
        },
        None => match status {
            429 => ErrorKind::Throttled,
            401 => ErrorKind::Auth,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        },
    };
    let hint = match code {
        Some("AccessDeniedException") => {
            " (the IAM identity lacks a lightsail:* permission; see the README)"
        }
        Some("AccountSetupInProgressException" | "RegionSetupInProgressException") => {
            " (the account or region is still being set up; retrying later)"
        }
        _ => "",
    };
    let text = if message.is_empty() {
        format!("HTTP {status}{hint}")
    } else {
        format!("{message}{hint}")
    };
    let mut e = ProviderError::new(kind, call, text);
    e.code = Some(code.map_or_else(|| format!("HTTP {status}"), str::to_string));
    e.retry_after = retry_after;
    e
}

fn is_collision_message(lower: &str) -> bool {
    lower.contains("already in use") || lower.contains("already exist")
}

fn is_quota_message(lower: &str) -> bool {
    lower.contains("maximum number") || lower.contains("quota")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decide_and_status_only_without_a_name() {
        // (error name, message, HTTP status, expected kind)
        let cases: &[(Option<&str>, &str, u16, ErrorKind)] = &[
            (
                Some("ThrottlingException"),
                "Rate exceeded",
                400,
                ErrorKind::Throttled,
            ),
            (Some("ServiceException"), "", 500, ErrorKind::Transient),
            // AWS's API reference lists NotFoundException as HTTP 400, its
            // Smithy model as 404: the name decides either way.
            (Some("NotFoundException"), "gone", 400, ErrorKind::NotFound),
            (Some("NotFoundException"), "gone", 404, ErrorKind::NotFound),
            (Some("UnauthenticatedException"), "", 401, ErrorKind::Auth),
            (Some("InvalidSignatureException"), "", 400, ErrorKind::Auth),
            (Some("AccessDeniedException"), "", 403, ErrorKind::Permanent),
            (
                Some("OperationFailureException"),
                "busy",
                400,
                ErrorKind::Busy,
            ),
            (
                Some("AccountSetupInProgressException"),
                "",
                428,
                ErrorKind::Busy,
            ),
            (
                Some("InvalidInputException"),
                "Some names are already in use: a-b",
                400,
                ErrorKind::Conflict,
            ),
            (
                Some("InvalidInputException"),
                "bad name",
                400,
                ErrorKind::Permanent,
            ),
            (
                Some("InvalidInputException"),
                "You have reached the maximum number of snapshots",
                400,
                ErrorKind::Quota,
            ),
            (None, "", 503, ErrorKind::Transient),
            (None, "", 429, ErrorKind::Throttled),
            (None, "", 400, ErrorKind::Permanent),
        ];
        for (code, msg, status, want) in cases {
            let got = classify("X", *code, Some(msg), *status, None).kind;
            assert_eq!(got, *want, "{code:?} {msg:?} {status}");
        }
        let e = classify(
            "X",
            Some("ThrottlingException"),
            None,
            400,
            Some(Duration::from_secs(3)),
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
    }
}
