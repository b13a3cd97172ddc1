//! Creating a replica when AWS may not have one to give: the planned class in the template's
//! zones (best first), then the template's `fallback_classes`, skipping the (class, zone)
//! pairs RDS had no capacity for lately and remembering new ones ([`Offerings`], kept across
//! ticks by the caller); an account quota error stops creation for the cluster for a while
//! instead of retrying into it. Every attempt is a note on the action's result.

use super::{managed_tags, ExecOptions};
use crate::core::config::ClusterSpec;
use crate::core::domain::InstanceClass;
use crate::core::plan::{Action, Placing};
use crate::core::template::{choose_zone, Offerings};
use crate::ports::{ErrorKind, Fleet, PortError, ReplicaRequest};
use std::sync::Mutex;

/// Create the replica of `action` (a [`Action::CreateReplica`]); the result and the notes.
pub(super) async fn create(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    action: &Action,
    opts: &ExecOptions,
) -> (Result<(), PortError>, Vec<String>) {
    let Action::CreateReplica {
        id,
        source,
        class,
        placement,
    } = action
    else {
        return (Err(fatal("not a create")), Vec::new());
    };
    let Some(rs) = spec.replica(id) else {
        let e = fatal(&format!("{id} is not a configured replica"));
        return (Err(e), Vec::new());
    };
    let memory = opts.capacity.as_ref().map(|(o, now)| (&**o, *now));
    if let Some(q) = memory.and_then(|(o, now)| lock(o).quota_stop(now).cloned()) {
        let msg = format!(
            "creation stopped until {} after a quota error: {}",
            q.until, q.error
        );
        let e = PortError::new(ErrorKind::QuotaExceeded, "CreateDBInstanceReadReplica", msg);
        return (Err(e), Vec::new());
    }
    let mut classes = vec![class.clone()];
    let fallback = spec.rules.fallback_classes.iter().filter(|c| *c != class);
    classes.extend(fallback.cloned());
    let mut tags = rs.template.tags.clone();
    tags.extend(managed_tags(&spec.name));
    let mut attempts = Attempts {
        memory,
        notes: Vec::new(),
        last: None,
    };
    for c in &classes {
        let zones = match zones_for(fleet, spec, placement, c).await {
            Ok(z) => z,
            Err(e) => return (Err(e), attempts.notes),
        };
        for zone in zones.iter().map(|z| z.as_deref()) {
            let req = ReplicaRequest {
                id,
                source,
                class: c,
                zone,
                settings: &rs.template.settings,
                tags: &tags,
            };
            match attempts.try_one(fleet, &req, c != class).await {
                Some(r) => return (r, attempts.notes),
                None => continue,
            }
        }
    }
    let e = attempts.last.unwrap_or_else(|| {
        let msg = "every class and zone had no capacity lately; tried again once that expires";
        PortError::new(ErrorKind::NoCapacity, "CreateDBInstanceReadReplica", msg)
    });
    (Err(e), attempts.notes)
}

/// The attempts of one create: the capacity memory and its time, the notes, the last "no
/// capacity" answer.
struct Attempts<'a> {
    memory: Option<(&'a Mutex<Offerings>, chrono::DateTime<chrono::Utc>)>,
    notes: Vec<String>,
    last: Option<PortError>,
}

impl Attempts<'_> {
    /// One (class, zone): `None` to go on with the next one, else the create's result.
    async fn try_one(
        &mut self,
        fleet: &dyn Fleet,
        req: &ReplicaRequest<'_>,
        fallback: bool,
    ) -> Option<Result<(), PortError>> {
        let (c, zone) = (req.class, req.zone);
        if (self.memory).is_some_and(|(o, now)| lock(o).is_unavailable(c, zone, now)) {
            self.notes
                .push(format!("skipped {c}{}: no capacity lately", at(zone)));
            return None;
        }
        match fleet.create_replica(req).await {
            Ok(()) => {
                if fallback || self.last.is_some() {
                    self.notes.push(format!("created as {c}{}", at(zone)));
                }
                Some(Ok(()))
            }
            Err(e) if e.kind == ErrorKind::NoCapacity => {
                let note = format!("no capacity for {c}{}: {}", at(zone), e.message);
                self.notes.push(note);
                if let Some((o, now)) = self.memory {
                    lock(o).mark_unavailable(c, zone, now);
                }
                self.last = Some(e);
                None
            }
            Err(e) => {
                if let (ErrorKind::QuotaExceeded, Some((o, now))) = (e.kind, self.memory) {
                    lock(o).stop_for_quota(now, e.message.clone());
                }
                Some(Err(e))
            }
        }
    }
}

/// The zones to try `class` in, best first; `[None]`: wherever RDS chooses.
async fn zones_for(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    placement: &Placing,
    class: &InstanceClass,
) -> Result<Vec<Option<String>>, PortError> {
    match placement {
        Placing::Any => Ok(vec![None]),
        Placing::Zones { zones } => Ok(zones.iter().cloned().map(Some).collect()),
        Placing::Spread { used } => {
            // The cluster as it is now (a create earlier in this run included), for the
            // master's engine and the zones its replicas use.
            let ids: Vec<_> = spec.all_ids().cloned().collect();
            let now = fleet.describe(&ids).await?;
            let master = now.iter().find(|i| spec.is_master(&i.id));
            let engine = master.map_or("mysql".to_string(), |m| m.engine.to_string());
            let offered = fleet.zones(&spec.master.id, &engine, class).await?;
            let seen: Vec<&str> = (now.iter())
                .filter(|i| !spec.is_master(&i.id) && i.source.as_ref() == Some(&spec.master.id))
                .filter_map(|i| i.zone.as_deref())
                .collect();
            let used: Vec<&str> = if seen.is_empty() {
                used.iter().map(String::as_str).collect()
            } else {
                seen
            };
            let mut out: Vec<Option<String>> = Vec::new();
            // Best first: each time the least used zone not taken yet.
            while let Some(z) =
                choose_zone(&offered, &used, &|z| out.iter().flatten().any(|o| o == z))
            {
                out.push(Some(z.to_string()));
            }
            if out.is_empty() {
                out.push(None);
            }
            Ok(out)
        }
    }
}

fn at(zone: Option<&str>) -> String {
    zone.map_or(String::new(), |z| format!(" in {z}"))
}

fn fatal(msg: &str) -> PortError {
    PortError::new(ErrorKind::Fatal, "CreateDBInstanceReadReplica", msg)
}

fn lock(m: &Mutex<Offerings>) -> std::sync::MutexGuard<'_, Offerings> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
