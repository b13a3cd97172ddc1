//! The cluster config: per cluster a master (restored from a named snapshot when absent) and
//! the ordered list of replicas elasticrds may create. Accepts the old tool's JSON (with `//`
//! comments) and the same model in YAML, and validates it with located errors. Pure.

use super::domain::{InstanceClass, InstanceId};
use super::input::{locate, parse_document, InputError, InputErrors, Problems, Syntax};
use super::notify::{validate as validate_notifications, Notifications, RawNotifications};
use super::target::{self, RawTarget, Target};
use super::template::check::{self as template_check, RawTemplate};
use super::template::{ReplicaRules, ReplicaTemplate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Default config path, and the old tool's path tried when it is absent.
pub const DEFAULT_CONFIG_PATH: &str = "elasticrds.yaml";
pub const LEGACY_CONFIG_PATH: &str = "conf/rds_cluster_conf.json";

// ---- raw, as written ----

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a cluster (a mapping of its settings)"
)]
struct RawCluster {
    master_node: RawMaster,
    #[serde(default)]
    replica_nodes: Vec<RawReplica>,
    #[serde(default)]
    haproxy: Option<RawHaproxy>,
    #[serde(default)]
    replica_template: Option<RawTemplate>,
    /// Where the cluster lives (`core::target`): its region and the role to assume.
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    session_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a master_node section (a mapping)")]
struct RawMaster {
    /// Name of the DB snapshot the master is restored from when absent.
    identifier: String,
    instance_id: String,
    instance_class: String,
    #[serde(default)]
    multi_az: bool,
    #[serde(default)]
    db_subnet_group_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a replica (a mapping of its fields)")]
struct RawReplica {
    id: String,
    instance_class: String,
    /// This replica's settings over the cluster's `replica_template`.
    #[serde(default)]
    template: Option<RawTemplate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a haproxy section (a mapping)")]
struct RawHaproxy {
    /// HAProxy runtime API: a unix socket path, or `host:port` for a TCP stats socket.
    socket: String,
    backend: String,
    #[serde(default)]
    drain_timeout: Option<String>,
    #[serde(default)]
    config_file: Option<String>,
    #[serde(default)]
    check_user: Option<String>,
    #[serde(default)]
    on_unreachable: Option<String>,
    #[serde(default)]
    max_lag: Option<String>,
}

// ---- validated ----

/// The whole config: clusters by name (sorted), and where notifications go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub clusters: BTreeMap<String, ClusterSpec>,
    /// The top-level `notifications` section (YAML or JSON); no sinks when absent.
    pub notifications: Notifications,
}

/// The key of the notifications section: not a cluster name.
pub const NOTIFICATIONS_KEY: &str = "notifications";

/// The document as written: clusters by name, plus the optional `notifications` section
/// (each key once).
struct RawDocument {
    clusters: BTreeMap<String, RawCluster>,
    notifications: Option<RawNotifications>,
}

impl<'de> Deserialize<'de> for RawDocument {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawDocument;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of cluster names (and `notifications`)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<RawDocument, A::Error> {
                let mut doc = RawDocument {
                    clusters: BTreeMap::new(),
                    notifications: None,
                };
                while let Some(k) = m.next_key::<String>()? {
                    let seen = if k == NOTIFICATIONS_KEY {
                        doc.notifications.replace(m.next_value()?).is_some()
                    } else if doc.clusters.contains_key(&k) {
                        true
                    } else {
                        doc.clusters.insert(k.clone(), m.next_value()?);
                        false
                    };
                    if seen {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate key `{k}`"
                        )));
                    }
                }
                Ok(doc)
            }
        }
        d.deserialize_map(Visit)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSpec {
    /// Shared: every tick's decision, plan and report carry it, a copy only counts.
    pub name: Arc<str>,
    pub master: MasterSpec,
    /// Ordered: replica i is created before replica i+1 and deleted after it.
    pub replicas: Vec<ReplicaSpec>,
    pub haproxy: Option<HaproxySpec>,
    /// `replica_template`: what every replica is created with (each replica's own, merged
    /// over it, is in its [`ReplicaSpec`]).
    #[serde(skip_serializing_if = "is_default")]
    pub template: ReplicaTemplate,
    /// `replica_template`'s `repair_drift` and `fallback_classes`.
    #[serde(skip_serializing_if = "is_default")]
    pub rules: ReplicaRules,
    /// The cluster's region and the role to assume (default: the service's own).
    #[serde(skip_serializing_if = "Target::is_default")]
    pub target: Target,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterSpec {
    pub snapshot: String,
    pub id: InstanceId,
    pub class: InstanceClass,
    pub multi_az: bool,
    pub subnet_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaSpec {
    pub id: InstanceId,
    pub class: InstanceClass,
    /// The cluster's template with this replica's own `template` merged over it.
    #[serde(skip_serializing_if = "is_default")]
    pub template: ReplicaTemplate,
}

/// What to do when HAProxy cannot be reached before a scale-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnreachable {
    Wait,
    Proceed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaproxySpec {
    pub socket: String,
    pub backend: String,
    #[serde(with = "humantime_serde_secs")]
    pub drain_timeout: Duration,
    pub config_file: Option<String>,
    pub check_user: Option<String>,
    pub on_unreachable: OnUnreachable,
    #[serde(with = "humantime_serde_secs")]
    pub max_lag: Duration,
}

mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl ClusterSpec {
    /// Every instance id this cluster may act on: the master, then the replicas in order.
    pub fn all_ids(&self) -> impl Iterator<Item = &InstanceId> {
        std::iter::once(&self.master.id).chain(self.replicas.iter().map(|r| &r.id))
    }
    pub fn replica(&self, id: &InstanceId) -> Option<&ReplicaSpec> {
        self.replicas.iter().find(|r| r.id == *id)
    }
    pub fn replica_index(&self, id: &InstanceId) -> Option<usize> {
        self.replicas.iter().position(|r| r.id == *id)
    }
    pub fn is_master(&self, id: &InstanceId) -> bool {
        self.master.id == *id
    }
    pub fn contains(&self, id: &InstanceId) -> bool {
        self.is_master(id) || self.replica_index(id).is_some()
    }
}

impl Config {
    pub fn cluster(&self, name: &str) -> Option<&ClusterSpec> {
        self.clusters.get(name)
    }

    /// The cluster an instance id belongs to.
    pub fn cluster_of(&self, id: &InstanceId) -> Option<&ClusterSpec> {
        self.clusters.values().find(|c| c.contains(id))
    }

    /// Parse and validate a config document. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, InputErrors> {
        let syntax = Syntax::detect(file, text);
        let doc: RawDocument = parse_document(file, text, syntax)?;
        let raw = doc.clusters;
        let mut ck = Checker {
            file,
            text,
            syntax,
            errors: Problems::default(),
            seen: HashMap::new(),
        };
        if raw.is_empty() {
            ck.errors
                .push(|| InputError::new(file, "", "no cluster is defined"));
        }
        let raw_names: Vec<String> = raw.keys().cloned().collect();
        let mut clusters = BTreeMap::new();
        for (name, rc) in raw {
            if let Some(spec) = ck.cluster(&name, &rc) {
                clusters.insert(name, spec);
            }
        }
        let notifications = match &doc.notifications {
            None => Notifications::default(),
            Some(n) => {
                let known = |c: &str| raw_names.iter().any(|k| k == c);
                let mut err = |f: String, msg: String, v: Option<&str>| ck.err(f, msg, v);
                validate_notifications(n, &known, &mut err)
            }
        };
        if ck.errors.is_empty() {
            Ok(Config {
                clusters,
                notifications,
            })
        } else {
            Err(ck.errors.into_errors(file))
        }
    }
}

/// What is wrong with a cluster name, if anything: names are config keys and appear in tags,
/// metric labels and lease keys, so 1 to 63 letters, digits, `-`, `_` or `.`.
pub fn cluster_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && (name.chars()).all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    (!ok).then(|| "a cluster name is 1 to 63 letters, digits, '-', '_' or '.'".to_string())
}

/// The problems found in a config so far, each located in the document, and the ids seen (a
/// second use is an error at its place).
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    syntax: Syntax,
    errors: Problems,
    seen: HashMap<String, String>,
}

impl Checker<'_> {
    /// A problem with `field`: a bad value is located at the value, a missing or empty one
    /// at its key (`core::input::locate`).
    fn err(&mut self, field: String, msg: String, value: Option<&str>) {
        let (file, text, syntax) = (self.file, self.text, self.syntax);
        self.errors.push(|| {
            let at = locate(text, syntax, &field);
            let pos = match value {
                Some(v) if !v.is_empty() => at.and_then(|l| l.value),
                _ => None,
            };
            let pos = pos.or(at.map(|l| l.key));
            InputError::new(file, field, msg).at(pos)
        });
    }

    /// One cluster's master, replicas and `haproxy` section.
    fn cluster(&mut self, name: &str, rc: &RawCluster) -> Option<ClusterSpec> {
        if let Some(msg) = cluster_name_problem(name) {
            // Shown escaped (a name may hold control characters), located by its text.
            let (file, text, syntax) = (self.file, self.text, self.syntax);
            self.errors.push(|| {
                let pos = locate(text, syntax, name).map(|l| l.key);
                InputError::new(file, format!("{name:?}"), msg).at(pos)
            });
        }
        let m = &rc.master_node;
        let master = self.master(name, m);
        let (template, rules) = self.cluster_template(name, rc);
        let mut replicas = Vec::new();
        for (i, r) in rc.replica_nodes.iter().enumerate() {
            let mut err = |f, msg, v: Option<&str>| self.err(f, msg, v);
            let id = check_id(&r.id, format!("{name}.replica_nodes[{i}].id"), &mut err);
            let field = format!("{name}.replica_nodes[{i}].instance_class");
            let class = check_class(&r.instance_class, field, &mut err);
            let own = self.replica_template(name, i, r, &template);
            if let (Some(id), Some(class)) = (id, class) {
                replicas.push(ReplicaSpec {
                    id,
                    class,
                    template: own,
                });
            }
        }
        let ids = std::iter::once((&m.instance_id, format!("{name}.master_node.instance_id")))
            .chain(
                (rc.replica_nodes.iter().enumerate())
                    .map(|(i, r)| (&r.id, format!("{name}.replica_nodes[{i}].id"))),
            );
        for (id, field) in ids {
            self.unique(id, field);
        }
        let mut err = |f, msg, v: Option<&str>| self.err(f, msg, v);
        let haproxy = (rc.haproxy.as_ref()).and_then(|h| check_haproxy(h, name, &mut err));
        let (id, class) = master?;
        Some(ClusterSpec {
            name: name.into(),
            master: MasterSpec {
                snapshot: m.identifier.clone(),
                id,
                class,
                multi_az: m.multi_az,
                subnet_group: m.db_subnet_group_name.clone(),
            },
            replicas,
            haproxy,
            template,
            rules,
            target: self.target(name, rc),
        })
    }

    /// The cluster's `region`, `role_arn`, `external_id` and `session_name`.
    fn target(&mut self, name: &str, rc: &RawCluster) -> Target {
        let raw = RawTarget {
            region: rc.region.as_deref(),
            role_arn: rc.role_arn.as_deref(),
            external_id: rc.external_id.as_deref(),
            session_name: rc.session_name.as_deref(),
        };
        let (target, errors) = target::check(&raw);
        for (key, msg, value) in errors {
            self.err(format!("{name}.{key}"), msg, Some(&value));
        }
        target
    }

    /// The cluster's `replica_template`, its combinations checked when a replica uses it as is.
    fn cluster_template(&mut self, name: &str, rc: &RawCluster) -> (ReplicaTemplate, ReplicaRules) {
        let Some(raw) = &rc.replica_template else {
            return Default::default();
        };
        let at = format!("{name}.replica_template");
        let mut err = |f, msg, v: Option<&str>| self.err(f, msg, v);
        let (t, rules) = template_check::cluster_template(raw, &at, &mut err);
        for (key, msg) in template_check::combinations(&t) {
            self.err(format!("{at}.{key}"), msg, None);
        }
        (t, rules)
    }

    /// Replica `i`'s template: its own merged over the cluster's, combinations checked.
    fn replica_template(
        &mut self,
        name: &str,
        i: usize,
        r: &RawReplica,
        cluster: &ReplicaTemplate,
    ) -> ReplicaTemplate {
        let Some(raw) = &r.template else {
            return cluster.clone();
        };
        let at = format!("{name}.replica_nodes[{i}].template");
        let mut err = |f, msg, v: Option<&str>| self.err(f, msg, v);
        let own = template_check::replica_template(raw, &at, &mut err);
        let merged = cluster.merged(&own);
        let cluster_problems = template_check::combinations(cluster);
        for (key, msg) in template_check::combinations(&merged) {
            // Reported once, at the cluster's template, when it has the problem itself.
            if !cluster_problems.iter().any(|(k, m)| *k == key && *m == msg) {
                self.err(format!("{at}.{key}"), msg, None);
            }
        }
        merged
    }

    /// The master's id, class, snapshot and subnet group.
    fn master(&mut self, name: &str, m: &RawMaster) -> Option<(InstanceId, InstanceClass)> {
        let mut err = |f, msg, v: Option<&str>| self.err(f, msg, v);
        let id = check_id(
            &m.instance_id,
            format!("{name}.master_node.instance_id"),
            &mut err,
        );
        let field = format!("{name}.master_node.instance_class");
        let class = check_class(&m.instance_class, field, &mut err);
        if let Err(msg) = check_snapshot(&m.identifier) {
            let field = format!("{name}.master_node.identifier");
            self.err(field, msg, Some(&m.identifier));
        }
        if m.db_subnet_group_name
            .as_ref()
            .is_some_and(|sg| sg.trim().is_empty())
        {
            let field = format!("{name}.master_node.db_subnet_group_name");
            self.err(field, "is empty".into(), None);
        }
        Some((id?, class?))
    }

    /// An identifier is used once in the whole config (RDS ids are case-insensitive).
    fn unique(&mut self, id: &str, field: String) {
        if id.is_empty() {
            return;
        }
        let key = id.to_ascii_lowercase();
        match self.seen.get(&key) {
            Some(first) => {
                let msg = format!("identifier {id:?} is used twice (first at {first})");
                self.err(field, msg, Some(id));
            }
            None => {
                self.seen.insert(key, field);
            }
        }
    }
}

fn check_id(
    value: &str,
    field: String,
    err: &mut impl FnMut(String, String, Option<&str>),
) -> Option<InstanceId> {
    match InstanceId::parse(value) {
        Ok(id) => Some(id),
        Err(e) => {
            err(field, e.to_string(), Some(value));
            None
        }
    }
}

fn check_class(
    value: &str,
    field: String,
    err: &mut impl FnMut(String, String, Option<&str>),
) -> Option<InstanceClass> {
    match InstanceClass::parse(value) {
        Ok(c) => Some(c),
        Err(e) => {
            err(field, e, Some(value));
            None
        }
    }
}

/// DB snapshot identifiers: 1–255 letters, digits or hyphens, starting with a letter, no
/// trailing hyphen, no `--`. (Shared-snapshot ARNs are accepted as they are.)
fn check_snapshot(s: &str) -> Result<(), String> {
    if s.starts_with("arn:") {
        return Ok(());
    }
    if s.is_empty() {
        return Err("snapshot identifier is empty".into());
    }
    if s.len() > 255 {
        return Err(format!(
            "snapshot identifier {s:?} is longer than 255 characters"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphabetic())
        || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        || s.ends_with('-')
        || s.contains("--")
    {
        return Err(format!(
            "snapshot identifier {s:?} must be letters, digits and single hyphens, starting with a letter"
        ));
    }
    Ok(())
}

fn check_haproxy(
    h: &RawHaproxy,
    cluster: &str,
    err: &mut impl FnMut(String, String, Option<&str>),
) -> Option<HaproxySpec> {
    let mut ok = true;
    // A day at most: a drain (or a lag bound) longer than that is a mistake, not a wait.
    let mut dur = |v: &Option<String>, name: &str, default: Duration| -> Duration {
        match v {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d > Duration::from_secs(86_400) => {
                    err(
                        format!("{cluster}.haproxy.{name}"),
                        format!("{s:?} is longer than a day"),
                        Some(s),
                    );
                    ok = false;
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    err(
                        format!("{cluster}.haproxy.{name}"),
                        format!("{s:?} is not a duration: {e}"),
                        Some(s),
                    );
                    ok = false;
                    default
                }
            },
        }
    };
    let drain_timeout = dur(&h.drain_timeout, "drain_timeout", Duration::from_secs(300));
    let max_lag = dur(&h.max_lag, "max_lag", Duration::from_secs(30));
    let on_unreachable = match h.on_unreachable.as_deref() {
        None | Some("wait") => OnUnreachable::Wait,
        Some("proceed") => OnUnreachable::Proceed,
        Some(other) => {
            err(
                format!("{cluster}.haproxy.on_unreachable"),
                format!("{other:?} is not one of wait, proceed"),
                Some(other),
            );
            ok = false;
            OnUnreachable::Wait
        }
    };
    if h.socket.trim().is_empty() {
        err(format!("{cluster}.haproxy.socket"), "is empty".into(), None);
        ok = false;
    }
    if h.backend.trim().is_empty() || h.backend.contains(char::is_whitespace) {
        err(
            format!("{cluster}.haproxy.backend"),
            "must be a non-empty name without spaces".into(),
            None,
        );
        ok = false;
    }
    ok.then(|| HaproxySpec {
        socket: h.socket.clone(),
        backend: h.backend.clone(),
        drain_timeout,
        config_file: h.config_file.clone(),
        check_user: h.check_user.clone(),
        on_unreachable,
        max_lag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const OLD_EXAMPLE: &str = r#"{
    "cluster1": {                                    //cluster name(only used in the script)
        "master_node": {
            "identifier": "qiitabase201305111613",   //name of db snapshot
            "instance_id": "cluster1m01",
            "instance_class": "db.t1.micro",
            "multi_az": true,
            "db_subnet_group_name" : "qiita"         //(optional) if you'd like to create in VPC
        },
        "replica_nodes": [
            { "id": "cluster1s01", "instance_class": "db.t1.micro" },
            { "id": "cluster1s02", "instance_class": "db.t1.micro" }
        ]
    }
}"#;

    #[test]
    fn old_json_with_comments_is_accepted() {
        let c = Config::parse("rds_cluster_conf.json", OLD_EXAMPLE).unwrap();
        let cl = c.cluster("cluster1").unwrap();
        assert_eq!(cl.master.id.as_str(), "cluster1m01");
        assert_eq!(cl.master.snapshot, "qiitabase201305111613");
        assert!(cl.master.multi_az);
        assert_eq!(cl.master.subnet_group.as_deref(), Some("qiita"));
        let ids: Vec<_> = cl.replicas.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["cluster1s01", "cluster1s02"]);
    }

    #[test]
    fn yaml_is_the_same_model() {
        let y = "cluster1:\n  master_node:\n    identifier: snap1\n    instance_id: cluster1m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - id: cluster1s01\n      instance_class: db.t3.micro\n";
        let c = Config::parse("c.yaml", y).unwrap();
        assert_eq!(c.cluster("cluster1").unwrap().replicas.len(), 1);
        assert!(!c.cluster("cluster1").unwrap().master.multi_az);
    }

    fn err_of(file: &str, text: &str) -> Vec<InputError> {
        Config::parse(file, text).unwrap_err().0
    }

    #[test]
    fn bad_identifier_is_located() {
        let text = OLD_EXAMPLE.replace("cluster1s02", "bad--id");
        let e = err_of("c.json", &text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "cluster1.replica_nodes[1].id");
        assert_eq!(e[0].line, Some(12));
        assert!(e[0].message.contains("two consecutive hyphens"));
    }

    #[test]
    fn every_identifier_rule_is_enforced() {
        for bad in ["", "1abc", "abc-", "a_b", &"a".repeat(64), "a--b"] {
            let text = OLD_EXAMPLE.replace("cluster1s01", bad);
            let e = err_of("c.json", &text);
            assert!(
                e.iter().any(|e| e.field == "cluster1.replica_nodes[0].id"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn duplicate_ids_anywhere_are_refused() {
        let text = OLD_EXAMPLE.replace("cluster1s02", "cluster1m01");
        let e = err_of("c.json", &text);
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("used twice"), "{}", e[0]);
        assert_eq!(e[0].field, "cluster1.replica_nodes[1].id");
        assert_eq!(e[0].line, Some(12));
    }

    #[test]
    fn unknown_keys_are_refused_with_position() {
        let text = OLD_EXAMPLE.replace("\"multi_az\"", "\"multi_azz\"");
        let e = err_of("c.json", &text);
        assert!(
            e[0].message.contains("unknown field `multi_azz`"),
            "{}",
            e[0]
        );
        assert_eq!(e[0].line, Some(7));
        assert!(
            e[0].field.starts_with("cluster1.master_node"),
            "{}",
            e[0].field
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        let text = OLD_EXAMPLE.replace("\"multi_az\": true", "\"multi_az\": \"yes\"");
        let e = err_of("c.json", &text);
        assert_eq!(e[0].field, "cluster1.master_node.multi_az");
    }

    #[test]
    fn haproxy_section_parses_with_defaults() {
        let y = "c:\n  master_node: {identifier: s, instance_id: cm, instance_class: db.t3.micro}\n  haproxy: {socket: /tmp/h.sock, backend: replicas, drain_timeout: 2m}\n";
        let c = Config::parse("c.yaml", y).unwrap();
        let h = c.cluster("c").unwrap().haproxy.clone().unwrap();
        assert_eq!(h.drain_timeout, Duration::from_secs(120));
        assert_eq!(h.on_unreachable, OnUnreachable::Wait);
        assert_eq!(h.max_lag, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_located_at_the_value_in_both_syntaxes() {
        let y = "c.one:\n  master_node: {identifier: s, instance_id: cm, instance_class: db.t3.micro}\n  replica_nodes:\n    - id: ok1\n      instance_class: db.t3.micro\n    - {id: bad--id, instance_class: db.t3.micro}\n";
        let e = err_of("c.yaml", y);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0].to_string().split(": ").take(2).collect::<Vec<_>>(),
            ["c.yaml:6:12", "c.one.replica_nodes[1].id"]
        );
        let text = OLD_EXAMPLE.replace("\"db.t1.micro\" }\n        ]", "\"nope\" }\n        ]");
        let e = err_of("c.json", &text);
        assert_eq!((e[0].line, e[0].column), (Some(12), Some(54)), "{e:?}");
        assert_eq!(e[0].field, "cluster1.replica_nodes[1].instance_class");
    }
}
