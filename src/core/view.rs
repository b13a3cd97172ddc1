//! Membership: which observed instances belong to a configured cluster. Owns [`ClusterView`]
//! (the master, the member replicas index-aligned with the config, conflicts and foreign
//! replicas) and the one ownership rule every part of elasticrds goes by:
//!
//! An instance is a **member** (ours to count, create, modify, drain or delete) only if its id is
//! in the cluster's replica list *and* it is a read replica of the cluster's master, as RDS
//! reports its source (by identifier, or by ARN across regions). Any other instance holding a
//! configured replica id is a [`Conflict`]: reported, never acted on, never counted; its slot is
//! blocked. Replicas of the master that the list does not name are [`Foreign`]: reported only.
//! Pure; observation itself lives in `crate::reconcile`.

use super::config::ClusterSpec;
use super::domain::{Instance, InstanceId, InstanceStatus};
use super::pause::Pauses;
use serde::Serialize;
use std::borrow::Borrow;
use std::sync::Arc;

/// Tag on the master: the replica ids whose slots are parked, space-separated.
pub const TAG_PARKED: &str = "elasticrds:parked";

/// The ids in a [`TAG_PARKED`] value.
pub fn parked_ids(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

/// A cluster as observed: the master, each configured replica that is a member (index-aligned
/// with the config; `None` when absent or held by a conflicting instance), the conflicts and the
/// replicas of the master that are not in the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterView {
    pub master: Option<Arc<Instance>>,
    pub replicas: Vec<Option<Arc<Instance>>>,
    /// Instances holding a configured replica id that are not replicas of the master, by slot.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub conflicts: Vec<Conflict>,
    pub foreign: Vec<Foreign>,
    /// Slots an operator must look at before they are used again (`elasticrds unpark`): their
    /// replica failed repeatedly. From the master's `elasticrds:parked` tag.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parked: Vec<usize>,
    /// Slots whose replica has been in a failed state past the grace period (marked by the
    /// observation step): replaced, make-before-break.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub replacing: Vec<usize>,
    /// The operators' pauses written on the master (its pause tags), in force or not.
    #[serde(skip)]
    pub pauses: Pauses,
    /// What an operator should know about the master ([`MasterIssue`]).
    #[serde(skip)]
    pub master_issues: Vec<MasterIssue>,
}

/// An instance replicating from the master that the config does not list. Reported, never touched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Foreign {
    pub id: InstanceId,
    /// Present when the observer described it.
    pub instance: Option<Arc<Instance>>,
}

/// An instance that holds a configured replica id but is not a read replica of the cluster's
/// master. Never deleted, modified, drained or counted; the slot is blocked (not created).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// Position in the configured replica list, from 0.
    pub slot: usize,
    pub instance: Arc<Instance>,
    pub kind: ConflictKind,
}

/// Why an instance holding a configured id is not a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConflictKind {
    /// It replicates from nothing: a standalone instance or another database's primary.
    Standalone,
    /// A read replica of another instance (the source as RDS reports it: an id or an ARN).
    ReplicaOfOther { source: String },
    /// It names the master's id as its source but the master was not observed (the master does
    /// not exist, or RDS reported the source as an ARN that is not the master's).
    MasterNotObserved { source: String },
    /// It is the configured master itself (a config naming one id twice).
    IsMaster,
}

impl ConflictKind {
    /// Why `inst` is not a replica of `master` (which may not exist).
    pub fn of(inst: &Instance, master: Option<&Instance>, master_id: &InstanceId) -> ConflictKind {
        let source = inst
            .source_arn
            .as_deref()
            .map(str::to_string)
            .or_else(|| inst.source.as_ref().map(|s| s.to_string()));
        match (source, &inst.source) {
            _ if inst.id == *master_id => ConflictKind::IsMaster,
            (None, _) => ConflictKind::Standalone,
            (Some(source), Some(s)) if s == master_id && master.is_none() => {
                ConflictKind::MasterNotObserved { source }
            }
            (Some(source), _) => ConflictKind::ReplicaOfOther { source },
        }
    }

    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ConflictKind::Standalone => "standalone",
            ConflictKind::ReplicaOfOther { .. } => "replica_of_other",
            ConflictKind::MasterNotObserved { .. } => "master_not_observed",
            ConflictKind::IsMaster => "is_master",
        }
    }
}

/// Something about the configured master an operator should know; the master is never deleted
/// whatever this says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "issue", rename_all = "snake_case")]
pub enum MasterIssue {
    /// The instance holding the master's id is itself a read replica.
    IsReplica { source: String },
    /// The snapshot elasticrds restored it from (its tag) is not the configured one.
    SnapshotMismatch {
        configured: String,
        restored_from: String,
    },
}

/// The tag elasticrds puts on a master it restores: the snapshot it was restored from.
pub const TAG_SNAPSHOT: &str = "elasticrds:snapshot";

impl ClusterView {
    /// Build the view of `spec` from any set of observed instances (extra ones are ignored).
    pub fn build(spec: &ClusterSpec, instances: &[Instance]) -> ClusterView {
        let mut v = Layout::of(spec, instances).view(|i| instances.get(i).cloned().map(Arc::new));
        v.read_master(spec);
        v
    }

    /// [`ClusterView::build`] from shared instances, as the fleet port describes them: the
    /// view shares them (no instance is copied).
    pub fn build_shared(spec: &ClusterSpec, instances: &[Arc<Instance>]) -> ClusterView {
        let mut v = Layout::of(spec, instances).view(|i| instances.get(i).cloned());
        v.read_master(spec);
        v
    }

    /// Read what the master says of the cluster into the view: the parked slots (its
    /// [`TAG_PARKED`] tag), the pauses and the master's issues. The builds call it; a view
    /// made otherwise whose master changed calls it again.
    pub fn read_master(&mut self, spec: &ClusterSpec) {
        let tags = self.master.as_ref().map(|m| &m.tags);
        let ids = (tags.and_then(|t| t.get(TAG_PARKED)))
            .map(|v| parked_ids(v))
            .unwrap_or_default();
        self.parked = (spec.replicas.iter().enumerate())
            .filter(|(_, r)| ids.iter().any(|p| p.eq_ignore_ascii_case(r.id.as_str())))
            .map(|(i, _)| i)
            .collect();
        self.pauses = tags.map_or_else(Pauses::default, |t| Pauses::from_tags(t));
        self.master_issues = self.issues_of_master(spec);
    }

    /// Configured replicas that exist and are members, in config order.
    pub fn existing_replicas(&self) -> impl Iterator<Item = &Instance> {
        self.replicas.iter().flatten().map(|i| &**i)
    }

    /// Member replicas that exist and are not being deleted: the capacity the cluster has or is
    /// getting.
    pub fn replica_count(&self) -> usize {
        self.existing_replicas()
            .filter(|i| i.status != InstanceStatus::Deleting)
            .count()
    }

    /// The instances whose metrics a tick reads, by their configured ids: every member
    /// replica that exists and is not being deleted, then the master when no replica is
    /// available (it serves the reads then, and its load is what a scale-out from zero needs).
    pub fn metric_instances<'a>(
        &'a self,
        spec: &'a ClusterSpec,
    ) -> impl Iterator<Item = &'a InstanceId> + 'a {
        let replicas = spec
            .replicas
            .iter()
            .zip(&self.replicas)
            .filter(|(_, inst)| {
                inst.as_ref()
                    .is_some_and(|i| i.status != InstanceStatus::Deleting)
            })
            .map(|(rs, _)| &rs.id);
        let master = (self.available_replicas() == 0).then_some(&spec.master.id);
        replicas.chain(master)
    }

    pub fn available_replicas(&self) -> usize {
        self.existing_replicas()
            .filter(|i| i.status.is_available())
            .count()
    }

    /// Whether slot `i` of the replica list is held by a conflicting instance.
    pub fn is_blocked(&self, i: usize) -> bool {
        self.conflicts.iter().any(|c| c.slot == i)
    }

    /// The slots of the replica list elasticrds may use (not blocked), in list order.
    ///
    /// Nor parked (an operator must look first) nor being replaced (its replica failed).
    pub fn usable_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.replicas.len()).filter(|&i| {
            !self.is_blocked(i) && !self.parked.contains(&i) && !self.replacing.contains(&i)
        })
    }

    /// What an operator should know about the master ([`MasterIssue`]).
    fn issues_of_master(&self, spec: &ClusterSpec) -> Vec<MasterIssue> {
        let Some(m) = &self.master else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(source) = m
            .source_arn
            .as_deref()
            .map(str::to_string)
            .or_else(|| m.source.as_ref().map(|s| s.to_string()))
        {
            out.push(MasterIssue::IsReplica { source });
        }
        if let Some(tagged) = m.tags.get(TAG_SNAPSHOT) {
            if tagged != &spec.master.snapshot {
                out.push(MasterIssue::SnapshotMismatch {
                    configured: spec.master.snapshot.clone(),
                    restored_from: tagged.clone(),
                });
            }
        }
        out
    }
}

/// Where each part of a [`ClusterView`] is among the observed instances (indices).
struct Layout {
    master: Option<usize>,
    /// Members, by slot.
    replicas: Vec<Option<usize>>,
    /// (slot, instance index, why), by slot.
    conflicts: Vec<(usize, usize, ConflictKind)>,
    /// Sorted by id.
    foreign: Vec<(InstanceId, Option<usize>)>,
}

impl Layout {
    fn of<I: Borrow<Instance>>(spec: &ClusterSpec, instances: &[I]) -> Layout {
        // Each configured id gets the first instance of that id.
        let find = |id: &InstanceId| instances.iter().position(|i| i.borrow().id == *id);
        let master = find(&spec.master.id);
        let m = master.and_then(|j| instances.get(j)).map(Borrow::borrow);
        let mut replicas = Vec::with_capacity(spec.replicas.len());
        let mut conflicts = Vec::new();
        for (slot, r) in spec.replicas.iter().enumerate() {
            let at = find(&r.id);
            let member = |j: usize| {
                Some(j) != master && m.is_some_and(|m| instances[j].borrow().replicates_from(m))
            };
            match at {
                Some(j) if !member(j) => {
                    let kind = ConflictKind::of(instances[j].borrow(), m, &spec.master.id);
                    conflicts.push((slot, j, kind));
                    replicas.push(None);
                }
                _ => replicas.push(at),
            }
        }
        // Instances already placed need no foreign check (an index test, no id comparison).
        let placed = |j: usize| {
            master == Some(j) || replicas.contains(&Some(j)) || conflicts.iter().any(|c| c.1 == j)
        };
        let foreign = Layout::foreign_of(spec, instances, m, placed);
        Layout {
            master,
            replicas,
            conflicts,
            foreign,
        }
    }

    /// The foreign replicas of `master`: listed by it or replicating from it, not configured;
    /// each with the first instance of its id; sorted. Without an observed master, the
    /// instances naming its id as their source (reported, never touched either way).
    /// `placed(j)`: instance `j` already has a place in the view (skipped unchecked).
    fn foreign_of<I: Borrow<Instance>>(
        spec: &ClusterSpec,
        instances: &[I],
        master: Option<&Instance>,
        placed: impl Fn(usize) -> bool,
    ) -> Vec<(InstanceId, Option<usize>)> {
        let names_master = |i: &Instance| match master {
            Some(m) => i.replicates_from(m),
            None => i.source_arn.is_none() && i.source.as_ref().is_some_and(|s| spec.is_master(s)),
        };
        let find = |id: &InstanceId| instances.iter().position(|i| i.borrow().id == *id);
        let mut foreign: Vec<(InstanceId, Option<usize>)> = Vec::new();
        let mut add = |id: &InstanceId| {
            if !spec.contains(id) && !foreign.iter().any(|(f, _)| f == id) {
                foreign.push((id.clone(), find(id)));
            }
        };
        for id in master.iter().flat_map(|m| &m.replicas) {
            add(id);
        }
        for (_, i) in (instances.iter().map(Borrow::borrow).enumerate())
            .filter(|(j, i)| !placed(*j) && names_master(i))
        {
            add(&i.id);
        }
        foreign.sort_by(|a, b| a.0.cmp(&b.0));
        foreign
    }

    /// The view, taking the instance at an index from `get`.
    fn view(self, mut get: impl FnMut(usize) -> Option<Arc<Instance>>) -> ClusterView {
        let master = self.master.and_then(&mut get);
        let replicas = self
            .replicas
            .into_iter()
            .map(|i| i.and_then(&mut get))
            .collect();
        let conflicts = self
            .conflicts
            .into_iter()
            .filter_map(|(slot, j, kind)| {
                get(j).map(|instance| Conflict {
                    slot,
                    instance,
                    kind,
                })
            })
            .collect();
        let foreign = self
            .foreign
            .into_iter()
            .map(|(id, i)| Foreign {
                id,
                instance: i.and_then(&mut get),
            })
            .collect();
        ClusterView {
            master,
            replicas,
            conflicts,
            foreign,
            ..ClusterView::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::domain::InstanceClass;
    use std::sync::Arc;

    /// An available instance `id` (tag `k` = its id), replicating from `source`, listing
    /// `replicas` as its own (also used by `reconcile::memo`'s tests).
    pub(crate) fn inst(id: &str, source: Option<&str>, replicas: &[&str]) -> Instance {
        let mut i = Instance::new(
            InstanceId::from_aws(id),
            InstanceClass::from_aws("db.t3.micro"),
            InstanceStatus::Available,
            "mysql",
        );
        i.source = source.map(InstanceId::from_aws);
        i.replicas = replicas.iter().map(|r| InstanceId::from_aws(r)).collect();
        i.tags = Arc::new([("k".to_string(), id.to_string())].into_iter().collect());
        i
    }

    fn spec() -> ClusterSpec {
        let config = Config::parse(
            "c.yaml",
            "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n",
        )
        .unwrap();
        config.cluster("c1").unwrap().clone()
    }

    #[test]
    fn build_shared_gives_the_view_build_gives_and_shares_the_instances() {
        let spec = spec();
        let cases: Vec<Vec<Instance>> = vec![
            vec![],
            vec![inst("c1m", None, &[])],
            // Ids in another case, a foreign replica on either side, an unrelated instance,
            // a configured replica described twice (the first one wins), out of order, a
            // standalone and another master's replica holding configured ids.
            vec![
                inst("C1S3", Some("c1m"), &[]),
                inst("other", None, &[]),
                inst("c1m", None, &["c1s3", "adhoc", "c1s1"]),
                inst("zz-foreign", Some("C1M"), &[]),
                inst("c1s1", Some("c1m"), &[]),
                inst("c1S1", Some("c1m"), &[]),
                inst("c1s2", Some("c2m"), &[]),
            ],
            vec![inst("c1s1", None, &[]), inst("c1s2", Some("c1m"), &[])],
        ];
        // A spec that names one instance twice (as master and replica, and as two replicas):
        // never from a valid config; the view is still the one `build` gives.
        let mut twice = spec.clone();
        twice.replicas[1].id = InstanceId::from_aws("C1M");
        twice.replicas[2].id = InstanceId::from_aws("c1s1");
        for instances in &cases {
            for spec in [&spec, &twice] {
                let want = ClusterView::build(spec, instances);
                let shared: Vec<Arc<Instance>> = instances.iter().cloned().map(Arc::new).collect();
                let got = ClusterView::build_shared(spec, &shared);
                assert_eq!(got, want);
                let held = (got.master.iter().chain(got.replicas.iter().flatten()))
                    .chain(got.conflicts.iter().map(|c| &c.instance))
                    .chain(got.foreign.iter().filter_map(|f| f.instance.as_ref()));
                for i in held {
                    assert!(shared.iter().any(|s| Arc::ptr_eq(s, i)), "{} copied", i.id);
                }
            }
        }
    }

    #[test]
    fn only_replicas_of_the_master_are_members() {
        let spec = spec();
        let instances = vec![
            inst("c1m", None, &["c1s3"]),
            inst("c1s1", None, &[]),
            inst("c1s2", Some("c2m"), &[]),
            inst("c1s3", Some("C1M"), &[]),
        ];
        let v = ClusterView::build(&spec, &instances);
        assert!(v.replicas[0].is_none() && v.replicas[1].is_none());
        assert_eq!(v.replicas[2].as_ref().unwrap().id.as_str(), "c1s3");
        let kinds: Vec<(usize, &ConflictKind)> =
            v.conflicts.iter().map(|c| (c.slot, &c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, &ConflictKind::Standalone),
                (
                    1,
                    &ConflictKind::ReplicaOfOther {
                        source: "c2m".into()
                    }
                )
            ]
        );
        assert_eq!(v.replica_count(), 1);
        assert_eq!(v.usable_slots().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn without_a_master_nothing_is_a_member() {
        let spec = spec();
        let v = ClusterView::build(&spec, &[inst("c1s1", Some("c1m"), &[])]);
        assert!(v.replicas.iter().all(Option::is_none));
        assert_eq!(
            v.conflicts[0].kind,
            ConflictKind::MasterNotObserved {
                source: "c1m".into()
            }
        );
    }

    #[test]
    fn an_arn_source_matches_only_the_masters_own_arn() {
        let spec = spec();
        let mut master = inst("c1m", None, &[]);
        master.arn = Some("arn:aws:rds:eu-west-1:111111111111:db:c1m".into());
        let mut same = inst("c1s1", Some("c1m"), &[]);
        same.source_arn = master.arn.clone();
        let mut other_region = inst("c1s2", Some("c1m"), &[]);
        other_region.source_arn = Some("arn:aws:rds:us-east-1:111111111111:db:c1m".into());
        let v = ClusterView::build(&spec, &[master, same, other_region]);
        assert!(v.replicas[0].is_some());
        assert!(v.replicas[1].is_none());
        assert_eq!(v.conflicts.len(), 1);
        assert_eq!(v.conflicts[0].kind.label(), "replica_of_other");
        // Neither is it foreign: not a replica of this master.
        assert!(v.foreign.is_empty());
    }

    #[test]
    fn master_issues_are_reported() {
        let spec = spec();
        let mut m = inst("c1m", Some("elsewhere"), &[]);
        Arc::make_mut(&mut m.tags).insert(TAG_SNAPSHOT.into(), "other-snap".into());
        let v = ClusterView::build(&spec, &[m]);
        assert_eq!(
            v.master_issues,
            vec![
                MasterIssue::IsReplica {
                    source: "elsewhere".into()
                },
                MasterIssue::SnapshotMismatch {
                    configured: "snap".into(),
                    restored_from: "other-snap".into()
                }
            ]
        );
    }
}
