//! [`ViewMemo`]: [`observe_one`](super::observe_one) tick after tick of one cluster, keeping
//! the last view. A speed measure for long replays (the year benchmark, benches/backtest.rs),
//! used by the backtest replay only; the daemon observes afresh every tick.
//!
//! A view is a function of the spec and the instances alone, so:
//! - a fleet that counts its changes ([`Fleet::generation`]: the simulated one) is not described
//!   again while the count stays the same (most ticks of a replay; the describe and the
//!   comparison were about a thirtieth of a simulated tick's instructions);
//! - a fleet that answers with the very instances it gave last time gets the view built from
//!   them then (building the view was about a fourteenth of a simulated tick);
//! - when only the master's tags changed (the scale state written on it, one tick in five of
//!   a replay), the view keeps its layout and reads the master again
//!   ([`ClusterView::read_master`]): the layout does not look at tags.
//!
//! RDS counts nothing and describes new instances every time: it always gets a view built
//! afresh. The spec's ids are listed once (not copied for every describe).

use super::{configured_ids, describe_ids};
use crate::core::config::ClusterSpec;
use crate::core::domain::{Instance, InstanceId};
use crate::core::plan::ClusterView;
use crate::ports::{Fleet, PortError};
use std::sync::Arc;

/// The last view of one cluster, and what it was built from.
#[derive(Debug, Default)]
pub struct ViewMemo {
    ids: Vec<InstanceId>,
    last: Option<(Vec<Arc<Instance>>, ClusterView)>,
    /// The fleet's change count when `last` was described.
    generation: Option<u64>,
}

impl ViewMemo {
    /// [`observe_one`](super::observe_one) of `spec` (always the same spec for one memo).
    pub async fn observe(
        &mut self,
        fleet: &dyn Fleet,
        spec: &ClusterSpec,
    ) -> Result<&ClusterView, PortError> {
        if self.ids.is_empty() {
            self.ids = configured_ids(&[spec]);
        }
        let generation = fleet.generation();
        let unchanged = generation.is_some() && generation == self.generation;
        if !unchanged || self.last.is_none() {
            // Forgotten until this describe succeeds.
            self.generation = None;
            let instances = describe_ids(fleet, &[spec], &self.ids).await?;
            let kept = match &mut self.last {
                Some((seen, view)) => keep_view(spec, seen, &instances, view),
                None => false,
            };
            if kept {
                self.last.as_mut().expect("kept").0 = instances;
            } else {
                let view = ClusterView::build_shared(spec, &instances);
                self.last = Some((instances, view));
            }
            self.generation = generation;
        }
        Ok(&self.last.as_ref().expect("kept above").1)
    }
}

/// Whether `view` (built from `seen`) holds for `now` as well, updated in place: the same
/// instances, or the same but for the master's tags (then the master is replaced and read
/// again). `false`: build it afresh.
fn keep_view(
    spec: &ClusterSpec,
    seen: &[Arc<Instance>],
    now: &[Arc<Instance>],
    view: &mut ClusterView,
) -> bool {
    if seen.len() != now.len() {
        return false;
    }
    let mut master = None;
    for (a, b) in seen.iter().zip(now) {
        if Arc::ptr_eq(a, b) {
            continue;
        }
        let is_master = a.id == spec.master.id && master.is_none();
        if !is_master || !same_but_tags(a, b) {
            return false;
        }
        master = Some((a, b));
    }
    let Some((old, new)) = master else {
        return true;
    };
    // The view's master must be that instance, and it must be nowhere else in the view.
    let in_view = |i: &Arc<Instance>| Arc::ptr_eq(i, old);
    let elsewhere = view.conflicts.iter().any(|c| in_view(&c.instance))
        || view
            .foreign
            .iter()
            .any(|f| f.instance.as_ref().is_some_and(in_view))
        || view.replicas.iter().flatten().any(in_view);
    if !view.master.as_ref().is_some_and(in_view) || elsewhere {
        return false;
    }
    view.master = Some(new.clone());
    view.read_master(spec);
    true
}

/// `a` and `b` alike in everything but their tags (identifiers compared as spelled). Every
/// field is named, so that a field added to [`Instance`] must be added here.
fn same_but_tags(a: &Instance, b: &Instance) -> bool {
    let Instance {
        id,
        class,
        status,
        engine,
        multi_az,
        source,
        source_arn,
        arn,
        replicas,
        endpoint,
        created_at,
        available_since,
        tags: _,
        zone,
        settings,
    } = a;
    id.as_str() == b.id.as_str()
        && class.as_str() == b.class.as_str()
        && *status == b.status
        && *engine == b.engine
        && *multi_az == b.multi_az
        && source.as_ref().map(InstanceId::as_str) == b.source.as_ref().map(InstanceId::as_str)
        && *source_arn == b.source_arn
        && *arn == b.arn
        && replicas.len() == b.replicas.len()
        && (replicas.iter().zip(&b.replicas)).all(|(x, y)| x.as_str() == y.as_str())
        && *endpoint == b.endpoint
        && *created_at == b.created_at
        && *available_since == b.available_since
        && *zone == b.zone
        && *settings == b.settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::domain::{InstanceStatus, Tags};
    use crate::core::view::tests::inst;

    const CONFIG: &str = "c1:\n  master_node: {identifier: snap-c1, instance_id: c1-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1-s01, instance_class: db.t3.micro}\n    - {id: c1-s02, instance_class: db.t3.micro}\n";

    fn world() -> (ClusterSpec, Vec<Arc<Instance>>) {
        let spec = Config::parse("c.yaml", CONFIG)
            .unwrap()
            .cluster("c1")
            .unwrap()
            .clone();
        let instances = vec![
            Arc::new(inst("c1-m01", None, &["c1-s01", "other"])),
            Arc::new(inst("c1-s01", Some("c1-m01"), &[])),
            Arc::new(inst("other", Some("c1-m01"), &[])),
        ];
        (spec, instances)
    }

    /// `instances` with the master replaced by a copy changed by `f`.
    fn with_master(
        instances: &[Arc<Instance>],
        f: impl FnOnce(&mut Instance),
    ) -> Vec<Arc<Instance>> {
        let mut now = instances.to_vec();
        let mut m = Instance::clone(&now[0]);
        f(&mut m);
        now[0] = Arc::new(m);
        now
    }

    #[test]
    fn only_the_masters_tags_changed_keeps_the_layout_and_reads_the_master_again() {
        let (spec, seen) = world();
        let mut view = ClusterView::build_shared(&spec, &seen);
        let now = with_master(&seen, |m| {
            m.tags = Arc::new(Tags::from([
                ("elasticrds:parked".to_string(), "c1-s02".to_string()),
                ("elasticrds:snapshot".to_string(), "elsewhere".to_string()),
            ]));
        });
        assert!(keep_view(&spec, &seen, &now, &mut view));
        assert_eq!(view, ClusterView::build_shared(&spec, &now));
        assert_eq!(view.parked, vec![1]);
        assert!(Arc::ptr_eq(view.master.as_ref().unwrap(), &now[0]));
    }

    #[test]
    fn any_other_change_builds_the_view_afresh() {
        let (spec, seen) = world();
        let view = ClusterView::build_shared(&spec, &seen);
        let changes: Vec<Vec<Arc<Instance>>> = vec![
            with_master(&seen, |m| m.status = InstanceStatus::Modifying),
            with_master(&seen, |m| {
                m.replicas.pop();
            }),
            with_master(&seen, |m| m.id = InstanceId::from_aws("C1-M01")),
            {
                let mut now = seen.clone();
                now[1] = Arc::new(Instance::clone(&now[1]));
                now
            },
            seen[..2].to_vec(),
        ];
        for now in changes {
            let mut v = view.clone();
            assert!(!keep_view(&spec, &seen, &now, &mut v), "{now:?}");
            assert_eq!(v, view, "a view not kept is left as it was");
        }
        let mut v = view.clone();
        assert!(
            keep_view(&spec, &seen, &seen.clone(), &mut v),
            "the same instances"
        );
        assert_eq!(v, view);
    }
}
