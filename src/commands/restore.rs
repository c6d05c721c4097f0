//! `snapwarden restore`: restore the newest good own snapshot of a target
//! (or a given one) with the cloud's restore call, follow it to the end and
//! print what was created. In-place restores (rollback) need `--yes`;
//! without it the command says what would happen and exits 1.

use std::path::Path;

use super::{load_config_and_log, open_engine, select_policies, Access, Exit, Outcome};
use crate::engine::EngineError;
use crate::providers::RestoreMode;

pub async fn run(
    path: &Path,
    policy: &str,
    target: &str,
    snapshot: Option<&str>,
    new_name: Option<&str>,
    yes: bool,
) -> Outcome {
    let config = load_config_and_log(path, "info")?;
    let policy = select_policies(&config, Some(policy))?[0].clone();
    if !policy.targets.named.iter().any(|t| t == target) {
        return Err(Exit::config(format!(
            "policy {} has no target {target:?} (targets: {})",
            policy.name,
            policy.targets.named.join(", ")
        )));
    }
    let engine = open_engine(&config, Access::Write).await?;
    // A snapshot the cloud finished after the daemon stopped is restorable.
    if let Err(e) = engine.settle(Some(&[&policy])).await {
        return Err(Exit::failure(format!(
            "cannot settle the operations in flight: {e}"
        )));
    }
    match engine
        .restore(&policy, target, snapshot, new_name, yes)
        .await
    {
        Ok(r) => {
            match (r.mode, &r.resource_id) {
                (RestoreMode::NewResource, Some(id)) => {
                    say!(
                        "restored snapshot {} of {target} into new resource {id}",
                        r.snapshot_id
                    )
                }
                (RestoreMode::NewResource, None) => {
                    say!(
                        "restored snapshot {} of {target} into a new resource",
                        r.snapshot_id
                    )
                }
                (RestoreMode::InPlace, _) => {
                    say!(
                        "rolled {target} back to snapshot {} in place",
                        r.snapshot_id
                    )
                }
            }
            Ok(())
        }
        Err(EngineError::NeedsConfirmation(what)) => {
            say!("{what}");
            Err(Exit::failure("in-place restore not confirmed (--yes)"))
        }
        Err(e) => Err(Exit::failure(format!("restore failed: {e}"))),
    }
}
