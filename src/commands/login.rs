//! `snapwarden login -c FILE --provider NAME`: the interactive device-flow
//! sign-in for providers that need one (IP4G, `kind = "powervs"` with
//! `auth = "refresh_token"`). Shows where to sign in and the code to type,
//! waits for the approval, and stores the first refresh token in the state
//! database, where the daemon picks it up (and keeps the rotated ones).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{load_config, Exit, Outcome};
use crate::config::{PowerVsAuth, ProviderSettings};
use crate::providers::http::{ApiClient, HttpSettings};
use crate::providers::powervs::{self, DevicePoll};

pub async fn run(path: &Path, provider: &str) -> Outcome {
    let config = load_config(path)?;
    let Some(pc) = config.providers.get(provider) else {
        let names: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        return Err(Exit::config(format!(
            "no provider named {provider:?} in {} (defined: {})",
            config.path.display(),
            names.join(", ")
        )));
    };
    let settings = match &pc.settings {
        ProviderSettings::PowerVs(s) => s,
        other => {
            return Err(Exit::config(format!(
                "provider {provider:?} (kind {}) has no device login: `login` is for IP4G \
                 (kind \"powervs\" with auth = \"refresh_token\")",
                other.kind()
            )))
        }
    };
    let PowerVsAuth::RefreshToken { refresh_token } = &settings.auth else {
        return Err(Exit::config(format!(
            "provider {provider:?} does not use the IP4G token service: `login` is for \
             auth = \"refresh_token\" (api_key and bearer_token need no sign-in)"
        )));
    };
    // Open the ledger first: a sign-in whose token cannot be kept is wasted.
    let state = crate::state::open_for_secrets(&config.daemon)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let api = match ApiClient::new(&HttpSettings {
        requests_per_second: pc.requests_per_second,
        request_timeout: pc.request_timeout,
        ca_file: pc.ca_file.clone(),
    }) {
        Ok(a) => a,
        Err(e) => return Err(Exit::failure(format!("provider {provider}: {e}"))),
    };

    let login = powervs::device_code(&api, &settings.endpoint)
        .await
        .map_err(|e| Exit::failure(format!("cannot start the device login: {e}")))?;
    say!(
        "To sign in to IP4G for provider {provider}, open {} and enter the code {}",
        login.verification_url,
        login.user_code
    );
    say!(
        "Waiting for the approval (up to {}s)...",
        login.expires_in.as_secs()
    );
    let _ = std::io::stdout().flush();

    let started = Instant::now();
    let mut interval = login.interval;
    loop {
        if started.elapsed() + interval > login.expires_in {
            return Err(Exit::failure(
                "the device code expired before the sign-in was approved; run `snapwarden login` again",
            ));
        }
        tokio::time::sleep(interval).await;
        match powervs::device_token(&api, &settings.endpoint, &login.device_code).await {
            Ok(DevicePoll::Pending) => {}
            Ok(DevicePoll::SlowDown) => interval += Duration::from_secs(5),
            Ok(DevicePoll::Granted(token)) => {
                let seed = powervs::seed_of(refresh_token.as_ref());
                let secret = crate::providers::StoredSecret { value: token, seed };
                if let Err(e) = state
                    .store_secret(provider, powervs::REFRESH_TOKEN_KEY, &secret, None)
                    .await
                {
                    return Err(Exit::failure(format!(
                        "signed in, but cannot store the token: {e}"
                    )));
                }
                say!(
                    "Signed in. The refresh token is stored in {}; `snapwarden run` uses it \
                     and keeps the rotated ones there.",
                    state.location()
                );
                return Ok(());
            }
            Err(e) if e.kind.is_retryable() => {
                eprintln!("warning: {e}; still waiting");
            }
            Err(e) => return Err(Exit::failure(format!("the device login failed: {e}"))),
        }
    }
}
