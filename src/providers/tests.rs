//! Helpers the provider unit tests share (test-only code, like each
//! cloud's `tests.rs`): what any provider's answer must show, whichever
//! cloud it comes from, and a loopback server for the fakes.

use super::{
    ErrorKind, OpKind, OperationRef, Provider, RemoteSnapshot, ResourceKind, RestoreRequest,
    RestoreStarted,
};

/// Asks `p` for the resources of a kind it cannot list: a permanent error.
pub(crate) async fn assert_not_selectable(p: &dyn Provider, resource: ResourceKind) {
    let kind = p.list_resources(resource).await.err().map(|e| e.kind);
    assert_eq!(kind, Some(ErrorKind::Permanent), "{resource:?}");
}

/// The (id, name) of every resource of `resource` that `p` lists, in its
/// order; a failed listing fails the test.
pub(crate) async fn selected(p: &dyn Provider, resource: ResourceKind) -> Vec<(String, String)> {
    let got = p
        .list_resources(resource)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        got.iter().all(|r| r.tags.is_empty()),
        "no tags expected: {got:?}"
    );
    got.into_iter().map(|r| (r.id, r.name)).collect()
}

/// The ids retention keeping the newest one keeps of `listed` (all ours and
/// good), sorted: a kept snapshot keeps the chain it needs.
pub(crate) fn kept_by_retain_1(listed: &[RemoteSnapshot]) -> Vec<String> {
    use crate::retention::{decide, Candidate, Condition, Rules, Verdict};
    let candidates: Vec<Candidate> = listed
        .iter()
        .map(|s| Candidate {
            id: s.id.clone(),
            created_at: s.created_at.unwrap_or_default(),
            condition: Condition::Good,
            own: true,
            chain: s.chain.clone(),
            held: None,
        })
        .collect();
    let mut kept: Vec<String> = decide(&candidates, &Rules::count(1))
        .into_iter()
        .filter(|d| d.verdict == Verdict::Keep)
        .map(|d| d.id)
        .collect();
    kept.sort();
    kept
}

/// `(id, name)` pairs as [`selected`] gives them.
pub(crate) fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect()
}

/// A restore of `snapshot_id` of `target`, as a new resource `new_name`
/// where given.
pub(crate) fn restore_request(
    resource: ResourceKind,
    target: &str,
    snapshot_id: &str,
    new_name: Option<&str>,
) -> RestoreRequest {
    RestoreRequest {
        resource,
        target: target.into(),
        snapshot_id: snapshot_id.into(),
        new_name: new_name.map(str::to_string),
    }
}

/// An operation of `kind` as the engine hands it back.
pub(crate) fn op_ref(kind: OpKind, operation: &str, snapshot_id: &str) -> OperationRef {
    OperationRef {
        kind,
        operation: operation.into(),
        snapshot_id: snapshot_id.into(),
    }
}

/// Serves `app` on a free loopback port; its `http://` base URL.
pub(crate) async fn serve_loopback(app: axum::Router) -> String {
    format!(
        "http://{}",
        crate::providers::query_api::fake::listen(app).await
    )
}

/// `p` starts the restore `req`, answering the new resource's id and the
/// operation to follow.
pub(crate) async fn assert_restores(
    p: &dyn Provider,
    req: &RestoreRequest,
    resource_id: Option<&str>,
    operation: &str,
) {
    let started = p.restore(req).await.expect("restore");
    assert_eq!(
        started,
        RestoreStarted {
            resource_id: resource_id.map(str::to_string),
            operation: operation.to_string()
        }
    );
}

/// A listing that changes between the first and the second call that
/// reads it: one id goes and a new one comes, so its count still adds up.
pub(crate) struct ShiftingListing {
    ids: Vec<String>,
    calls: usize,
    deleted: String,
    created: String,
}

impl ShiftingListing {
    pub(crate) fn new(ids: Vec<String>, deleted: &str, created: &str) -> Self {
        ShiftingListing {
            ids,
            calls: 0,
            deleted: deleted.to_string(),
            created: created.to_string(),
        }
    }

    /// The ids as the next call sees them.
    pub(crate) fn next_call(&mut self) -> &[String] {
        self.calls += 1;
        if self.calls == 2 {
            let deleted = &self.deleted;
            self.ids.retain(|id| id != deleted);
            self.ids.push(self.created.clone());
        }
        &self.ids
    }
}

/// The simulator's control view at `path` (e.g. `/_sim/qingcloud/snapshots`)
/// on `addr`, as JSON.
pub(crate) async fn sim_view(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The item of `list` (a JSON array) whose `key` is `id`.
pub(crate) fn item<'a>(list: &'a serde_json::Value, key: &str, id: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|items| items.iter().find(|s| s[key] == id))
        .unwrap_or_else(|| panic!("no {key} {id} in {list}"))
}
