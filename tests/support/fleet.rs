//! [`HookedFleet`]: any [`Fleet`] with hooks around its operations, to inject a delay, a
//! failure, or to record a witness of what was true at the moment of a call.
//!
//! ```ignore
//! let fleet = HookedFleet::new(sim.clone())
//!     .delay(Op::Describe, Duration::from_secs(30))
//!     .before(Op::DeleteReplica, move |call| {
//!         let seen = seen.clone();
//!         async move { seen.lock().unwrap().push(call.id().clone()); Ok(()) }
//!     });
//! ```
//!
//! A `before` hook runs before the call is passed on; its error is the call's answer and the
//! wrapped fleet is not called. An `after` hook runs once the wrapped fleet answered, with its
//! error if any; an error from the hook replaces the answer (an action done whose answer was
//! lost). Hooks of one operation run in the order they were added.

use async_trait::async_trait;
use elasticrds::core::config::MasterSpec;
use elasticrds::core::domain::{Instance, InstanceClass, InstanceId, Tags};
use elasticrds::core::template::Settings;
use elasticrds::ports::{Fleet, PortError, ReplicaRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A [`Fleet`] operation, named as the simulated fleet's call log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Describe,
    RestoreMaster,
    CreateReplica,
    DeleteReplica,
    ModifyClass,
    ReadTags,
    WriteTags,
    RemoveTags,
    ModifySettings,
    Zones,
}

/// One call through a [`HookedFleet`], as its hooks see it.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: Op,
    /// The instances it names: the identifiers described, the master restored, the replica
    /// created, deleted or modified, or the instance whose tags are read or written.
    pub ids: Vec<InstanceId>,
    /// A create's class and zone.
    pub class: Option<InstanceClass>,
    pub zone: Option<String>,
}

impl Call {
    /// The (first) instance the call names.
    pub fn id(&self) -> &InstanceId {
        self.ids.first().expect("the call names an instance")
    }
}

type HookFuture = Pin<Box<dyn Future<Output = Result<(), PortError>> + Send>>;
type Before = Box<dyn Fn(Call) -> HookFuture + Send + Sync>;
type After = Box<dyn Fn(Call, Option<PortError>) -> HookFuture + Send + Sync>;

/// A fleet passing every call to `inner`, with hooks per operation (see the module doc).
pub struct HookedFleet {
    inner: Arc<dyn Fleet>,
    before: Vec<(Op, Before)>,
    after: Vec<(Op, After)>,
}

impl HookedFleet {
    pub fn new(inner: Arc<dyn Fleet>) -> HookedFleet {
        HookedFleet {
            inner,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Run `hook` before each call of `op`; an `Err` from it is the call's answer.
    pub fn before<F, Fut>(mut self, op: Op, hook: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), PortError>> + Send + 'static,
    {
        self.before.push((op, Box::new(move |c| Box::pin(hook(c)))));
        self
    }

    /// Run `hook` after each call of `op` with the wrapped fleet's error, if any; an `Err`
    /// from it replaces the answer.
    pub fn after<F, Fut>(mut self, op: Op, hook: F) -> Self
    where
        F: Fn(Call, Option<PortError>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), PortError>> + Send + 'static,
    {
        self.after
            .push((op, Box::new(move |c, e| Box::pin(hook(c, e)))));
        self
    }

    /// Make every call of `op` take `delay` more (tokio time) before it is passed on.
    pub fn delay(self, op: Op, delay: Duration) -> Self {
        self.before(op, move |_| async move {
            tokio::time::sleep(delay).await;
            Ok(())
        })
    }

    async fn call<T>(
        &self,
        call: Call,
        inner: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        for (_, hook) in self.before.iter().filter(|(op, _)| *op == call.op) {
            hook(call.clone()).await?;
        }
        let answer = inner.await;
        for (_, hook) in self.after.iter().filter(|(op, _)| *op == call.op) {
            hook(call.clone(), answer.as_ref().err().cloned()).await?;
        }
        answer
    }
}

fn named(op: Op, ids: &[&InstanceId]) -> Call {
    Call {
        op,
        ids: ids.iter().map(|i| (*i).clone()).collect(),
        class: None,
        zone: None,
    }
}

#[async_trait]
impl Fleet for HookedFleet {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        let c = Call {
            op: Op::Describe,
            ids: ids.to_vec(),
            class: None,
            zone: None,
        };
        self.call(c, self.inner.describe(ids)).await
    }
    async fn restore_master(&self, m: &MasterSpec, tags: &Tags) -> Result<(), PortError> {
        let c = named(Op::RestoreMaster, &[&m.id]);
        self.call(c, self.inner.restore_master(m, tags)).await
    }
    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError> {
        let mut c = named(Op::CreateReplica, &[r.id]);
        c.class = Some(r.class.clone());
        c.zone = r.zone.map(str::to_string);
        self.call(c, self.inner.create_replica(r)).await
    }
    async fn modify_settings(&self, id: &InstanceId, s: &Settings) -> Result<(), PortError> {
        let c = named(Op::ModifySettings, &[id]);
        self.call(c, self.inner.modify_settings(id, s)).await
    }
    async fn zones(
        &self,
        near: &InstanceId,
        engine: &str,
        class: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        let c = named(Op::Zones, &[near]);
        self.call(c, self.inner.zones(near, engine, class)).await
    }
    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        let c = named(Op::DeleteReplica, &[id]);
        self.call(c, self.inner.delete_replica(id)).await
    }
    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError> {
        let c = named(Op::ModifyClass, &[id]);
        self.call(c, self.inner.modify_class(id, class)).await
    }
    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        let c = named(Op::ReadTags, &[id]);
        self.call(c, self.inner.read_tags(id)).await
    }
    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError> {
        let c = named(Op::WriteTags, &[id]);
        self.call(c, self.inner.write_tags(id, tags)).await
    }
    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError> {
        let c = named(Op::RemoveTags, &[id]);
        self.call(c, self.inner.remove_tags(id, keys)).await
    }
}
