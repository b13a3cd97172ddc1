//! `modify-instance`: the operator's class change of one configured instance, refused unless it
//! is a member, exists, is idle and something else keeps serving (or `--force`).

use super::{Action, ClusterView, ConflictKind, PlannedAction};
use crate::core::config::ClusterSpec;
use crate::core::domain::{InstanceClass, InstanceId};

/// Why a class change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModifyRefusal {
    #[error("{0} is not in the cluster config; elasticrds only changes configured instances")]
    NotConfigured(InstanceId),
    #[error("{0} does not exist")]
    Absent(InstanceId),
    #[error("{0} is not a read replica of this cluster's master ({kind}): elasticrds never changes it", kind = .1.label())]
    NotMember(InstanceId, ConflictKind),
    #[error("{0} is {1}; wait until it is available")]
    Busy(InstanceId, String),
    #[error("{0}")]
    Unsafe(String),
}

/// The documented rule: an instance is out of service while its class changes, so the master
/// may change only if it is multi-AZ or a replica is available to serve reads, and a replica
/// only if the master or another replica still serves.
pub fn modify_is_safe(
    spec: &ClusterSpec,
    view: &ClusterView,
    id: &InstanceId,
) -> Result<(), String> {
    let other_replica_available = view
        .existing_replicas()
        .any(|r| r.id != *id && r.status.is_available());
    if spec.is_master(id) {
        let multi_az = view.master.as_ref().is_some_and(|m| m.multi_az);
        if multi_az || other_replica_available {
            Ok(())
        } else {
            Err(format!(
                "master {id} is not multi-AZ and no replica is available: it would be out of service during the change"
            ))
        }
    } else {
        let master_serves = view
            .master
            .as_ref()
            .is_some_and(|m| m.status.is_available());
        if master_serves || other_replica_available {
            Ok(())
        } else {
            Err(format!(
                "no other instance of the cluster is available to serve while {id} changes"
            ))
        }
    }
}

/// Plan `modify-instance ID CLASS`: `Ok(None)` when the class is already right.
pub fn plan_modify(
    spec: &ClusterSpec,
    view: &ClusterView,
    id: &InstanceId,
    class: &InstanceClass,
    force: bool,
) -> Result<Option<PlannedAction>, ModifyRefusal> {
    if !spec.contains(id) {
        return Err(ModifyRefusal::NotConfigured(id.clone()));
    }
    if let Some(c) = view.conflicts.iter().find(|c| c.instance.id == *id) {
        return Err(ModifyRefusal::NotMember(id.clone(), c.kind.clone()));
    }
    let inst = if spec.is_master(id) {
        view.master.as_ref()
    } else {
        spec.replica_index(id)
            .and_then(|i| view.replicas[i].as_ref())
    }
    .ok_or_else(|| ModifyRefusal::Absent(id.clone()))?;
    if inst.status.is_busy() {
        return Err(ModifyRefusal::Busy(id.clone(), inst.status.to_string()));
    }
    if &inst.class == class {
        return Ok(None);
    }
    let mut reason = format!("requested class {class}");
    if let Err(why) = modify_is_safe(spec, view, id) {
        if !force {
            return Err(ModifyRefusal::Unsafe(format!(
                "{why} (use --force to change it anyway)"
            )));
        }
        reason.push_str(&format!("; forced although {why}"));
    }
    Ok(Some(PlannedAction {
        action: Action::ModifyClass {
            id: inst.id.clone(),
            from: inst.class.clone(),
            to: class.clone(),
        },
        reason,
    }))
}
