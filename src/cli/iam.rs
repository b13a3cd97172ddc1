//! `elasticrds iam-policy`: the least-privilege IAM policy for the current config — exactly the
//! DB instance, snapshot, subnet-group, parameter- and option-group ARNs it names, the
//! CloudWatch read, the monitoring role its replica templates pass to RDS, and the event buses
//! its notifications use. tests/iam.rs checks the document against every AWS call the code
//! makes (and nothing more); docs/iam-policy.json is its output for
//! docs/examples/notify/elasticrds.yaml with `--lease-table elasticrds-leases`.

use super::cluster::find_cluster;
use super::{load_config, CliResult};
use crate::core::config::{ClusterSpec, Config};
use crate::core::domain::TAG_MANAGED_BY;
use crate::core::domain::TAG_MANAGED_BY_VALUE;
use crate::core::notify::SinkKind;
use crate::core::template::Placement;
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::Path;

#[derive(Debug, Args)]
pub struct IamArgs {
    /// Only this cluster (repeatable) [default: every cluster of the config].
    #[arg(long)]
    pub cluster: Vec<String>,
    /// The AWS region of the ARNs [default: any, `*`].
    #[arg(long, default_value = "*")]
    pub region: String,
    /// The AWS account id of the ARNs [default: any, `*`].
    #[arg(long, default_value = "*")]
    pub account: String,
    /// The policy for this role (a cluster's `role_arn`), to attach to it in its account: the
    /// permissions on the clusters reached through it [default: the service's own policy: the
    /// clusters without a role, and sts:AssumeRole on the roles].
    #[arg(long)]
    pub role: Option<String>,
    /// The lease table of `run --lease-table`: the service may read it and write its items.
    #[arg(long, value_name = "TABLE")]
    pub lease_table: Option<String>,
    /// With --role: print instead the role's trust policy, letting this principal (the
    /// service's own role or user ARN) assume it, with the cluster's external id.
    #[arg(long, requires = "role")]
    pub trusting: Option<String>,
}

pub async fn run(config: Option<&Path>, a: IamArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let clusters: Vec<&ClusterSpec> = if a.cluster.is_empty() {
        config.clusters.values().collect()
    } else {
        (a.cluster.iter())
            .map(|c| find_cluster(&config, c))
            .collect::<Result<_, _>>()?
    };
    let mut scope = Scope {
        region: a.region,
        account: a.account,
        lease_table: a.lease_table,
    };
    check_scope(&scope)?;
    let Some(role) = a.role else {
        let own: Vec<&ClusterSpec> = (clusters.iter().copied())
            .filter(|c| c.target.role.is_none())
            .collect();
        let mut doc = policy_document(&config, &own, &scope);
        doc.statement.extend(assume_roles(&clusters));
        doc.statement.extend(lease_statement(&scope));
        return super::print_json(&doc);
    };
    let through: Vec<&ClusterSpec> = (clusters.iter().copied())
        .filter(|c| c.target.role.as_ref().is_some_and(|r| r.arn == role))
        .collect();
    let Some(first) = through.first() else {
        return Err(super::CliError::input(format!(
            "--role {role:?}: no cluster of the config has this role_arn"
        )));
    };
    if let Some(principal) = a.trusting {
        let external = first
            .target
            .role
            .as_ref()
            .and_then(|r| r.external_id.clone());
        return super::print_json(&trust_policy(&principal, external.as_deref()));
    }
    if scope.account == "*" {
        scope.account = first.target.account().unwrap_or("*").to_string();
    }
    super::print_json(&policy_document(&config, &through, &scope))
}

/// Reading the lease table and writing its items (every write is conditional).
pub fn lease_statement(scope: &Scope) -> Option<Statement> {
    let table = scope.lease_table.as_ref()?;
    let arn = format!(
        "arn:aws:dynamodb:{}:{}:table/{table}",
        scope.region, scope.account
    );
    Some(allow(
        "ShareTheClustersThroughTheLeaseTable",
        json!(["dynamodb:Scan", "dynamodb:PutItem"]),
        json!(arn),
    ))
}

/// The service's permission to assume the roles of the clusters in other accounts.
fn assume_roles(clusters: &[&ClusterSpec]) -> Option<Statement> {
    let mut roles: Vec<String> = Vec::new();
    for r in clusters.iter().filter_map(|c| c.target.role.as_ref()) {
        if !roles.contains(&r.arn) {
            roles.push(r.arn.clone());
        }
    }
    (!roles.is_empty()).then(|| {
        allow(
            "AssumeTheRolesOfClustersInOtherAccounts",
            json!("sts:AssumeRole"),
            json!(roles),
        )
    })
}

/// A role's trust policy: `principal` may assume it, with the external id when there is one.
fn trust_policy(principal: &str, external_id: Option<&str>) -> Value {
    let mut statement = json!({
        "Sid": "ElasticrdsAssumesThisRole",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole"
    });
    if let Some(e) = external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": e}});
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// Where the ARNs point: a region and an account, or `*`.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: String,
    pub account: String,
    /// The lease table copies share (`run --lease-table`), if any.
    pub lease_table: Option<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            region: "*".into(),
            account: "*".into(),
            lease_table: None,
        }
    }
}

fn check_scope(s: &Scope) -> CliResult {
    let region_ok = s.region == "*"
        || (!s.region.is_empty()
            && (s.region.chars())
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    let account_ok = s.account == "*"
        || (s.account.len() == 12 && s.account.chars().all(|c| c.is_ascii_digit()));
    match (region_ok, account_ok) {
        (true, true) => Ok(()),
        (false, _) => Err(super::CliError::input(format!(
            "--region {:?}: a region name such as eu-west-1, or *",
            s.region
        ))),
        _ => Err(super::CliError::input(format!(
            "--account {:?}: a 12-digit account id, or *",
            s.account
        ))),
    }
}

impl Scope {
    fn rds(&self, kind: &str, name: &str) -> String {
        format!("arn:aws:rds:{}:{}:{kind}:{name}", self.region, self.account)
    }
}

/// An IAM policy document (fields in the order IAM's own examples use).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub action: Value,
    pub resource: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

fn allow(sid: &'static str, action: Value, resource: Value) -> Statement {
    Statement {
        sid,
        effect: "Allow",
        action,
        resource,
        condition: None,
    }
}

/// The policy document for `clusters` of `config` (their notifications' buses included).
pub fn policy_document(config: &Config, clusters: &[&ClusterSpec], scope: &Scope) -> Document {
    let db = |id: &str| scope.rds("db", id);
    let masters: Vec<String> = clusters.iter().map(|c| db(c.master.id.as_str())).collect();
    let replicas: Vec<String> = (clusters.iter())
        .flat_map(|c| c.replicas.iter().map(|r| db(r.id.as_str())))
        .collect();
    let all: Vec<String> = masters.iter().chain(&replicas).cloned().collect();
    let mut restore: Vec<String> = masters.clone();
    for c in clusters {
        restore.push(scope.rds("snapshot", &c.master.snapshot));
        if let Some(g) = &c.master.subnet_group {
            restore.push(scope.rds("subgrp", g));
        }
    }
    restore.extend([scope.rds("pg", "*"), scope.rds("og", "*")]);
    let groups = template_groups(clusters, scope);
    let with_groups: Vec<String> = all.iter().chain(&groups).cloned().collect();
    let tags = json!([
        "rds:ListTagsForResource",
        "rds:AddTagsToResource",
        "rds:RemoveTagsFromResource"
    ]);
    let mut delete = allow(
        "DeleteConfiguredReplicasOnly",
        json!("rds:DeleteDBInstance"),
        json!(replicas),
    );
    delete.condition = Some(
        json!({"StringEquals": {format!("rds:db-tag/{TAG_MANAGED_BY}"): TAG_MANAGED_BY_VALUE}}),
    );
    let mut statement = vec![
        allow(
            "ObserveInstances",
            json!("rds:DescribeDBInstances"),
            json!(scope.rds("db", "*")),
        ),
        allow("ReadAndWriteStateAndPauseTags", tags, json!(all)),
        allow(
            "CreateConfiguredReplicas",
            json!("rds:CreateDBInstanceReadReplica"),
            json!(with_groups),
        ),
        delete,
        allow(
            "ChangeClassOrTemplateSettingsOfConfiguredInstances",
            json!("rds:ModifyDBInstance"),
            json!(with_groups),
        ),
        allow(
            "RestoreMasterFromItsSnapshot",
            json!("rds:RestoreDBInstanceFromDBSnapshot"),
            json!(restore),
        ),
        allow(
            "ReadReplicaMetrics",
            json!("cloudwatch:GetMetricData"),
            json!("*"),
        ),
    ];
    statement.extend(template_statements(clusters));
    let buses = event_buses(config, clusters, scope);
    if !buses.is_empty() {
        statement.push(allow(
            "NotifyOnTheConfiguredEventBuses",
            json!("events:PutEvents"),
            json!(buses),
        ));
    }
    Document {
        version: "2012-10-17",
        statement,
    }
}

/// The parameter and option groups the clusters' replica templates name: a create or modify
/// that sets one needs it as a resource.
fn template_groups(clusters: &[&ClusterSpec], scope: &Scope) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in clusters
        .iter()
        .flat_map(|c| c.replicas.iter().map(|r| &r.template))
    {
        let s = &t.settings;
        let named = [("pg", &s.parameter_group), ("og", &s.option_group)];
        for (kind, name) in named {
            if let Some(arn) = name.as_ref().map(|n| scope.rds(kind, n)) {
                if !out.contains(&arn) {
                    out.push(arn);
                }
            }
        }
    }
    out
}

/// What the replica templates need besides: the zones RDS offers (`availability_zones:
/// spread`; an action without resource types) and passing the enhanced monitoring role to RDS.
fn template_statements(clusters: &[&ClusterSpec]) -> Vec<Statement> {
    let templates = || {
        clusters
            .iter()
            .flat_map(|c| c.replicas.iter().map(|r| &r.template))
    };
    let mut out = Vec::new();
    if templates().any(|t| t.placement == Placement::Spread) {
        out.push(allow(
            "FindZonesToSpreadReplicasOver",
            json!("rds:DescribeOrderableDBInstanceOptions"),
            json!("*"),
        ));
    }
    let mut roles: Vec<String> = Vec::new();
    for r in templates().filter_map(|t| t.settings.monitoring_role_arn.clone()) {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    if !roles.is_empty() {
        let mut pass = allow(
            "PassTheMonitoringRoleToRds",
            json!("iam:PassRole"),
            json!(roles),
        );
        pass.condition =
            Some(json!({"StringEquals": {"iam:PassedToService": "monitoring.rds.amazonaws.com"}}));
        out.push(pass);
    }
    out
}

/// The ARNs of the buses of the EventBridge sinks that hear about any of `clusters`.
fn event_buses(config: &Config, clusters: &[&ClusterSpec], scope: &Scope) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &config.notifications.sinks {
        let hears = s.clusters.is_empty()
            || (s.clusters.iter()).any(|c| clusters.iter().any(|x| *x.name == **c));
        let SinkKind::EventBridge { bus, region } = &s.kind else {
            continue;
        };
        if !hears {
            continue;
        }
        let arn = if bus.starts_with("arn:") {
            bus.clone()
        } else {
            let r = region.as_deref().unwrap_or(&scope.region);
            format!("arn:aws:events:{r}:{}:event-bus/{bus}", scope.account)
        };
        if !out.contains(&arn) {
            out.push(arn);
        }
    }
    out
}
