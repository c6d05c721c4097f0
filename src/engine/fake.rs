//! A scripted cloud for the engine's own tests: answers are queued per
//! call, and every call is counted. Test-only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::ResourceKind;
use crate::providers::{
    Capabilities, CreateRequest, Created, DeleteStarted, ErrorKind, OpStatus, OperationRef,
    Provider, ProviderError, RemoteSnapshot, Resource, RestoreMode, RestoreRequest, RestoreStarted,
};

/// Queued answers; an empty queue gives the default answer of each call
/// (create: one new snapshot; list: the last listing again; poll:
/// succeeded). A `None` status panics, as a provider bug would.
#[derive(Default)]
pub(crate) struct FakeCloud {
    pub creates: Mutex<VecDeque<Result<Vec<Created>, ProviderError>>>,
    pub lists: Mutex<VecDeque<Vec<RemoteSnapshot>>>,
    pub polls: Mutex<VecDeque<Option<OpStatus>>>,
    last_list: Mutex<Vec<RemoteSnapshot>>,
    calls: Mutex<BTreeMap<&'static str, usize>>,
    /// The snapshot ids `delete` was called with, in order.
    pub deleted: Mutex<Vec<String>>,
    /// The hold mark each snapshot carries (set by `mark_hold`).
    pub marks: Mutex<BTreeMap<String, String>>,
}

impl FakeCloud {
    /// Queue the answer of the next `create`.
    pub fn answer_create(&self, answer: Result<Vec<Created>, ProviderError>) {
        self.creates.lock().expect("creates").push_back(answer);
    }

    /// Queue the answers of the next `list` calls, in order.
    pub fn answer_lists(&self, listings: impl IntoIterator<Item = Vec<RemoteSnapshot>>) {
        self.lists.lock().expect("lists").extend(listings);
    }

    pub fn calls(&self, call: &'static str) -> usize {
        self.calls
            .lock()
            .expect("calls")
            .get(call)
            .copied()
            .unwrap_or(0)
    }

    fn count(&self, call: &'static str) -> usize {
        let mut calls = self.calls.lock().expect("calls");
        let n = calls.entry(call).or_default();
        *n += 1;
        *n
    }
}

/// A transient error: the call may or may not have reached the cloud.
pub(crate) fn lost_answer(call: &str) -> ProviderError {
    ProviderError::new(ErrorKind::Transient, call, "connection reset")
}

#[async_trait]
impl Provider for FakeCloud {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resources: &[ResourceKind::Volume],
            max_status_batch: 10,
            incremental: false,
            restore: RestoreMode::NewResource,
            volume_subset: false,
            create_reconciles: false,
            select: &[],
            hold_mark: Some("description"),
        }
    }

    async fn create(&self, _: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        let n = self.count("create");
        let next = self.creates.lock().expect("creates").pop_front();
        next.unwrap_or_else(|| {
            Ok(vec![Created {
                snapshot_id: format!("snap-{n}"),
                operation: format!("job-{n}"),
            }])
        })
    }

    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        self.count("poll");
        let next = self.polls.lock().expect("polls").pop_front();
        match next {
            Some(Some(s)) => Ok(vec![s; ops.len()]),
            Some(None) => panic!("provider bug"),
            None => Ok(vec![OpStatus::Succeeded; ops.len()]),
        }
    }

    async fn list(
        &self,
        _: ResourceKind,
        _: &str,
        _: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        self.count("list");
        let mut last = self.last_list.lock().expect("last list");
        if let Some(next) = self.lists.lock().expect("lists").pop_front() {
            *last = next;
        }
        Ok(last.clone())
    }

    async fn delete(&self, id: &str) -> Result<DeleteStarted, ProviderError> {
        self.count("delete");
        self.deleted.lock().expect("deleted").push(id.to_string());
        Ok(DeleteStarted::AlreadyGone)
    }

    async fn restore(&self, _: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        unreachable!("no engine test restores")
    }

    async fn list_resources(&self, _: ResourceKind) -> Result<Vec<Resource>, ProviderError> {
        unreachable!("no engine test selects")
    }

    async fn mark_hold(
        &self,
        snapshot_id: &str,
        _name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        self.count("mark_hold");
        let mut marks = self.marks.lock().expect("marks");
        match note {
            Some(note) => marks.insert(snapshot_id.to_string(), note.to_string()),
            None => marks.remove(snapshot_id),
        };
        Ok(())
    }
}
