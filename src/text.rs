//! Text for the core's data that several edges print the same way (the CLI's output, the
//! service's logs, the reconciler's refusals): ownership conflicts and master issues. The core
//! keeps these as data (`core::view`); the words are made here, at the edges.

use crate::core::domain::InstanceId;
use crate::core::view::{ConflictKind, MasterIssue};

/// What a conflicting instance is, e.g. "a read replica of cluster2m01".
pub fn conflict_kind(kind: &ConflictKind) -> String {
    match kind {
        ConflictKind::Standalone => "a standalone instance (no source)".to_string(),
        ConflictKind::ReplicaOfOther { source } => format!("a read replica of {source}"),
        ConflictKind::MasterNotObserved { source } => {
            format!("a read replica of {source}, which was not observed as the master")
        }
        ConflictKind::IsMaster => "the cluster's master".to_string(),
    }
}

/// One line on a conflicting instance, the same in `status`, `plan`, `create-cluster` and the
/// service's log.
pub fn conflict_message(id: &InstanceId, kind: &ConflictKind, master: &InstanceId) -> String {
    format!(
        "{id} holds a configured replica id but is {}, not a read replica of master {master}: never touched or counted, its slot is blocked",
        conflict_kind(kind)
    )
}

/// A master issue as a warning's text.
pub fn master_issue(issue: &MasterIssue) -> String {
    match issue {
        MasterIssue::IsReplica { source } => {
            format!("the configured master is itself a read replica of {source}")
        }
        MasterIssue::SnapshotMismatch {
            configured,
            restored_from,
        } => format!(
            "the master was restored from snapshot {restored_from}, not the configured {configured}"
        ),
    }
}
