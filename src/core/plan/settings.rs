//! The replica template in the plan: where a new replica goes, and what to do about an
//! existing replica whose settings or tags differ from its template (report it; repair it with
//! `repair_drift`; apply what RDS cannot set at creation on the replicas elasticrds created).
//! Only members are looked at (the master and instances outside the membership never).

use super::{Action, Placing, Plan, PlannedAction, TemplateDrift};
use crate::core::config::ClusterSpec;
use crate::core::domain::{Instance, Tags, TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE};
use crate::core::template::{Placement, ReplicaTemplate, SettingDrift, Settings};
use crate::core::view::ClusterView;

/// Where a replica with `template` goes, given the zones of the cluster's replicas and of the
/// creates planned before it (`planned`: their first zone).
pub(super) fn placing(
    template: &ReplicaTemplate,
    view: &ClusterView,
    planned: &[PlannedAction],
) -> Placing {
    let used = || -> Vec<String> {
        let first = |a: &PlannedAction| match &a.action {
            Action::CreateReplica {
                placement: Placing::Zones { zones },
                ..
            } => zones.first().cloned(),
            _ => None,
        };
        (view.replicas.iter().flatten())
            .filter_map(|r| r.zone.clone())
            .chain(planned.iter().filter_map(first))
            .collect()
    };
    match &template.placement {
        Placement::Any => Placing::Any,
        Placement::Spread => Placing::Spread { used: used() },
        Placement::Zones(zones) => {
            let used = used();
            let count = |z: &String| used.iter().filter(|u| *u == z).count();
            let mut zones = zones.clone();
            // Stable: among zones used as often, the template's order.
            zones.sort_by_key(count);
            Placing::Zones { zones }
        }
    }
}

/// Drift of every member replica that is idle, and its repair where allowed.
pub(super) fn plan_settings(
    spec: &ClusterSpec,
    view: &ClusterView,
    within: &[usize],
    p: &mut Plan,
) {
    for (i, inst, apply, tags, drift) in drifted(spec, view) {
        let busy = p.actions.iter().any(|a| a.action.instance() == &inst.id);
        let repair = (!busy && within.contains(&i))
            .then(|| repair(spec.rules.repair_drift, inst, apply, tags))
            .flatten();
        let repaired = repair.is_some();
        if let Some((settings, tags, reason)) = repair {
            p.actions.push(PlannedAction {
                action: Action::ModifySettings {
                    id: inst.id.clone(),
                    settings,
                    tags,
                },
                reason,
            });
        }
        p.template_drift.push(TemplateDrift {
            id: inst.id.clone(),
            settings: drift,
            repaired,
        });
    }
}

/// The idle member replicas that differ from their template: slot, replica, the settings and
/// tags to apply, and the drift entries.
fn drifted<'v>(
    spec: &'v ClusterSpec,
    view: &'v ClusterView,
) -> impl Iterator<Item = (usize, &'v Instance, Settings, Tags, Vec<SettingDrift>)> + 'v {
    (view.replicas.iter().enumerate()).filter_map(|(i, slot)| {
        let inst = slot.as_deref().filter(|r| !r.status.is_busy())?;
        let have = inst.settings.as_deref()?;
        let (apply, tags, drift) = spec.replicas[i].template.drift(have, &inst.tags);
        (!drift.is_empty()).then_some((i, inst, apply, tags, drift))
    })
}

/// Every member replica's drift from its template, nothing planned (observe-only ticks).
pub fn template_drift(spec: &ClusterSpec, view: &ClusterView) -> Vec<TemplateDrift> {
    drifted(spec, view)
        .map(|(_, inst, _, _, settings)| TemplateDrift {
            id: inst.id.clone(),
            settings,
            repaired: false,
        })
        .collect()
}

/// What to apply to `inst`: all of the drift with `repair_drift`; else only what RDS cannot set
/// at creation, on a replica elasticrds created (tagged as its own).
fn repair(
    repair_drift: bool,
    inst: &Instance,
    apply: Settings,
    tags: Tags,
) -> Option<(Settings, Tags, String)> {
    if repair_drift {
        return Some((apply, tags, "repair_drift: bring it to its template".into()));
    }
    let ours = inst.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(TAG_MANAGED_BY_VALUE);
    let after = Settings {
        backup_retention_period: apply.backup_retention_period,
        ..Settings::default()
    };
    (ours && !after.is_empty()).then(|| {
        let why = "template settings RDS cannot set at creation".to_string();
        (after, Tags::new(), why)
    })
}

/// On a create: what of the template is applied only once the replica is available.
pub(super) fn after_create_note(template: &ReplicaTemplate) -> String {
    match template.settings.backup_retention_period {
        Some(days) => format!("; backup_retention_period={days} applied once it is available"),
        None => String::new(),
    }
}
