//! [`InstanceBuilder`]: observed [`Instance`]s for tests without writing every field.
//!
//! ```ignore
//! let r = instance("c1-s01").of("c1-m01").status(InstanceStatus::Creating).build();
//! ```
//!
//! Defaults: available, `db.t3.micro`, `mysql`, single-AZ, no source, no replicas, no
//! endpoint, no ARN, no times, no tags.

use elasticrds::core::domain::{Instance, InstanceClass, InstanceId, InstanceStatus};

/// An identifier as an observer reports it (not validated: tests may use any spelling).
pub trait AsId {
    fn as_id(&self) -> InstanceId;
}

impl AsId for str {
    fn as_id(&self) -> InstanceId {
        InstanceId::from_aws(self)
    }
}

impl AsId for String {
    fn as_id(&self) -> InstanceId {
        InstanceId::from_aws(self)
    }
}

impl AsId for InstanceId {
    fn as_id(&self) -> InstanceId {
        self.clone()
    }
}

/// An instance under construction; [`InstanceBuilder::build`] gives it.
#[derive(Debug, Clone)]
pub struct InstanceBuilder(Instance);

/// An available `db.t3.micro` MySQL instance `id`, to refine with the builder's methods.
pub fn instance(id: &(impl AsId + ?Sized)) -> InstanceBuilder {
    InstanceBuilder(Instance::new(
        id.as_id(),
        InstanceClass::from_aws("db.t3.micro"),
        InstanceStatus::Available,
        "mysql",
    ))
}

impl InstanceBuilder {
    /// A read replica of `source`.
    pub fn of(mut self, source: &(impl AsId + ?Sized)) -> Self {
        self.0.source = Some(source.as_id());
        self
    }
    pub fn class(mut self, class: &str) -> Self {
        self.0.class = InstanceClass::from_aws(class);
        self
    }
    pub fn status(mut self, status: InstanceStatus) -> Self {
        self.0.status = status;
        self
    }
    pub fn multi_az(mut self, multi_az: bool) -> Self {
        self.0.multi_az = multi_az;
        self
    }
    pub fn build(self) -> Instance {
        self.0
    }
}
