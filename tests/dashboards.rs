//! The Grafana dashboards and Prometheus alerting rules under `dashboards/`, checked against
//! real tools:
//! - every dashboard validates against Grafana's JSON schemas in `tests/data/grafana`
//!   (dashboard, each panel, each panel's options, each Prometheus query); the schemas must be
//!   there (copied into the repository from the shared set, Apache-2.0);
//! - dashboard conventions: datasource and cluster template variables, a unit on every panel,
//!   no hard-coded job/instance, only metric names from docs/metrics.md, no overlapping panels;
//! - `promtool check rules` and `promtool test rules`, with a firing and a non-firing unit test
//!   of every alert;
//! - a real Prometheus (Debian 2.42) on 127.0.0.1 scraping every second two services: the
//!   `elasticrds demo` binary (its embedded policy policies/cpu-target.yaml: a CPU rule only)
//!   and, in this process, the same daemon and `/metrics` server on the simulated fleet with
//!   policies/connections-and-lag.yaml (connections and replica-lag rules, no CPU rule).
//!   Every panel query of the overview (all clusters) returns data; on the cluster dashboard,
//!   for each cluster, every query returns data except those dividing by or showing the target
//!   of a metric that cluster's policy has no rule for, which must return NOTHING (no target is
//!   made up; the observed value of every metric is exported whatever the rules). Every
//!   `elasticrds_*` name a panel uses has series (a `vector(0)` fallback hides no typo). The
//!   rules evaluate without error, and `promtool check metrics` has nothing to say about either
//!   `/metrics`.
//!
//! Missing prometheus/promtool, schemas or a demo that does not start FAIL these tests.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_request, promtool_bin, repo_root, Server};

use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::adapters::sim_load::{Demand, LoadOptions, SimLoad};
use elasticrds::backtest::replay::seed_fleet;
use elasticrds::backtest::trace::Trace;
use elasticrds::backtest::{load_policy, oracle, FLOOR_REPLICAS, PEAK_UTILIZATION};
use elasticrds::cli::demo::EMBEDDED_TRACE;
use elasticrds::ports::Clock;
use elasticrds::service::daemon::{ClusterEntry, Daemon, DaemonOptions, TokioClock};
use elasticrds::service::{http, metrics::Metrics};
use std::sync::Arc;

const DASHBOARDS: [&str; 2] = [
    "dashboards/elasticrds-overview.json",
    "dashboards/elasticrds-cluster.json",
];
const RULES: &str = "dashboards/prometheus/elasticrds.rules.yml";
/// The policy of the demo (embedded in the binary) and of the in-process service.
const DEMO_POLICY: &str = "policies/cpu-target.yaml";
const SIM_POLICY: &str = "policies/connections-and-lag.yaml";
/// The policy of a second in-process service: the default policy with a `predictive` section
/// (forecast only, no seasonal margin), driven by a clean daily wave with two days of past.
const PREDICTIVE_POLICY: &str = "tests/data/dashboard-predictive.yaml";
/// Series that exist only where the policy asks for them, and what it must have: a rule on
/// the metric, or (`forecast`) a predictive section.
const TARGET_METRICS: [(&str, &str); 4] = [
    ("elasticrds_cpu_target_ratio", "cpu"),
    ("elasticrds_connections_target", "connections"),
    ("elasticrds_replica_lag_target_seconds", "replica_lag"),
    ("elasticrds_forecast_", "forecast"),
];
const RULE_TESTS: &str = "dashboards/prometheus/elasticrds.rules.test.yml";

/// Values the test gives Grafana's built-in variables (what Grafana would use for a 1s-scraped
/// target over a short range).
const BUILTINS: [(&str, &str); 6] = [
    ("$__rate_interval", "1m"),
    ("${__rate_interval}", "1m"),
    ("$__interval", "15s"),
    ("${__interval}", "15s"),
    ("$__range", "5m"),
    ("${__range}", "5m"),
];

fn datasource_ref() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

fn load_dashboard(rel: &str) -> Value {
    read_json(&repo_root().join(rel))
}

/// `tests/data/grafana` (Grafana's schemas, copied in); a missing directory fails the test.
fn schema_dir() -> PathBuf {
    let dir = repo_root().join("tests/data/grafana");
    assert!(
        dir.join("dashboard.jsonschema.json").is_file(),
        "Grafana JSON schemas not found at {} — they are part of the repository",
        dir.display()
    );
    dir
}

/// A validator for `#/definitions/<def>` of one schema document.
fn validator(doc: &Value, def: &str) -> jsonschema::Validator {
    assert!(
        doc["definitions"][def].is_object(),
        "schema has no definition {def}"
    );
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#/definitions/{def}"));
    jsonschema::draft7::new(&root).unwrap_or_else(|e| panic!("schema {def} does not compile: {e}"))
}

struct Schemas {
    dashboard: jsonschema::Validator,
    panel: jsonschema::Validator,
    row: jsonschema::Validator,
    options: BTreeMap<&'static str, jsonschema::Validator>,
    graph_field_config: jsonschema::Validator,
    query: jsonschema::Validator,
}

impl Schemas {
    fn load() -> Schemas {
        let dir = schema_dir();
        let doc = |name: &str| read_json(&dir.join(format!("{name}.jsonschema.json")));
        let dashboard = doc("dashboard");
        let timeseries = doc("timeseries");
        let stat = doc("stat");
        let prometheus = doc("prometheus");
        let mut options = BTreeMap::new();
        options.insert("timeseries", validator(&timeseries, "Options"));
        options.insert("stat", validator(&stat, "Options"));
        Schemas {
            dashboard: validator(&dashboard, "Dashboard"),
            panel: validator(&dashboard, "Panel"),
            row: validator(&dashboard, "RowPanel"),
            options,
            graph_field_config: validator(&timeseries, "FieldConfig"),
            query: validator(&prometheus, "Dataquery"),
        }
    }

    /// Every schema violation of one dashboard, located; empty when it is valid.
    fn violations(&self, name: &str, dash: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |v: &jsonschema::Validator, inst: &Value, what: String| {
            for e in v.iter_errors(inst) {
                // Errors on a whole panel quote all of it: keep the message readable.
                let mut msg = e.to_string();
                if msg.len() > 300 {
                    let cut = (0..=300)
                        .rev()
                        .find(|i| msg.is_char_boundary(*i))
                        .unwrap_or(0);
                    msg = format!("{}…", &msg[..cut]);
                }
                out.push(format!("{name}: {what} at '{}': {msg}", e.instance_path()));
            }
        };
        let mut unknown = Vec::new();
        check(&self.dashboard, dash, "dashboard".into());
        for p in panels(dash) {
            let title = p["title"].as_str().unwrap_or("?");
            let ty = p["type"].as_str().unwrap_or("");
            if ty == "row" {
                check(&self.row, p, format!("row {title:?}"));
                continue;
            }
            check(&self.panel, p, format!("panel {title:?}"));
            match self.options.get(ty) {
                Some(v) => check(v, &p["options"], format!("panel {title:?} options ({ty})")),
                None => unknown.push(format!(
                    "{name}: panel {title:?}: no schema for panel type {ty:?}"
                )),
            }
            if ty == "timeseries" {
                let custom = &p["fieldConfig"]["defaults"]["custom"];
                if !custom.is_null() {
                    check(
                        &self.graph_field_config,
                        custom,
                        format!("panel {title:?} fieldConfig.defaults.custom"),
                    );
                }
            }
            for (i, t) in p["targets"].as_array().into_iter().flatten().enumerate() {
                check(&self.query, t, format!("panel {title:?} target {i}"));
            }
        }
        out.extend(unknown);
        out
    }
}

/// Every panel of a dashboard, with the panels nested in rows.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// (panel title, refId, expr) of every query of every non-row panel.
fn queries(dash: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        if p["type"] == "row" {
            continue;
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("?").to_string(),
                t["refId"].as_str().unwrap_or("?").to_string(),
                t["expr"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

fn variable<'a>(dash: &'a Value, name: &str) -> &'a Value {
    dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("dashboard {} has no ${name} variable", dash["uid"]))
}

/// Metric names agreed in docs/metrics.md (the first column of its table).
fn agreed_metric_names() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    let names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("elasticrds_"))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() > 10,
        "could not read the metric table of docs/metrics.md"
    );
    names
}

/// `elasticrds_*` identifiers used in a PromQL expression.
fn metric_names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("elasticrds_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn dashboards_validate_against_grafana_schemas() {
    let schemas = Schemas::load();
    let mut violations = Vec::new();
    let mut checked_panels = 0;
    for rel in DASHBOARDS {
        let dash = load_dashboard(rel);
        checked_panels += panels(&dash).len();
        violations.extend(schemas.violations(rel, &dash));
    }
    assert!(checked_panels >= 20, "only {checked_panels} panels found");
    assert!(
        violations.is_empty(),
        "schema violations:\n{}",
        violations.join("\n")
    );

    // The validators do reject what Grafana's "export for sharing" writes and a panel without
    // its required fields, so the pass above means something.
    let mut shared = load_dashboard(DASHBOARDS[0]);
    shared["__inputs"] = json!([]);
    shared["panels"][0]["datasource"] = json!("$datasource");
    shared["panels"][0]["options"]["graphMode"] = json!("sparkline");
    let found = schemas.violations("mutated", &shared);
    for expected in [
        "'__inputs' was unexpected",
        "\"Clusters\" at '/datasource'",
        "\"Clusters\" options (stat) at '/graphMode'",
    ] {
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "mutation {expected} not reported: {found:#?}"
        );
    }
}

#[test]
fn dashboards_follow_conventions() {
    let agreed = agreed_metric_names();
    let mut problems = Vec::new();
    for rel in DASHBOARDS {
        let dash = load_dashboard(rel);
        let mut p = |m: String| problems.push(format!("{rel}: {m}"));

        let ds = variable(&dash, "datasource");
        if ds["type"] != "datasource" || ds["query"] != "prometheus" {
            p(format!(
                "$datasource must be a datasource variable of Prometheus: {ds}"
            ));
        }
        let cluster = variable(&dash, "cluster");
        if cluster["type"] != "query"
            || cluster["query"] != "label_values(elasticrds_replicas, cluster)"
            || cluster["datasource"] != datasource_ref()
        {
            p(format!("$cluster must be label_values(elasticrds_replicas, cluster) on $datasource: {cluster}"));
        }
        let multi = rel.ends_with("overview.json");
        if cluster["multi"] != json!(multi) || cluster["includeAll"] != json!(multi) {
            p(format!("$cluster multi/includeAll must be {multi}"));
        }

        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
        let all = panels(&dash);
        assert!(!all.is_empty(), "{rel}: no panels");
        for panel in all {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            if !ids.insert(panel["id"].as_i64().unwrap_or(-1)) {
                p(format!("panel {title:?}: duplicate or missing id"));
            }
            let g = &panel["gridPos"];
            let b = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or(-1));
            if b.iter().any(|v| *v < 0) || b[0] + b[2] > 24 {
                p(format!("panel {title:?}: bad gridPos {g}"));
            }
            for (other, o) in &boxes {
                let overlap = b[0] < o[0] + o[2]
                    && o[0] < b[0] + b[2]
                    && b[1] < o[1] + o[3]
                    && o[1] < b[1] + b[3];
                if overlap {
                    p(format!("panels {title:?} and {other:?} overlap"));
                }
            }
            boxes.push((title.clone(), b));
            if panel["type"] == "row" {
                continue;
            }
            match panel["fieldConfig"]["defaults"]["unit"].as_str() {
                Some(u) if !u.is_empty() => {}
                _ => p(format!("panel {title:?}: no unit")),
            }
            if panel["datasource"] != datasource_ref() {
                p(format!(
                    "panel {title:?}: datasource is not ${{datasource}}"
                ));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                p(format!("panel {title:?}: no query"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                let expr = t["expr"].as_str().unwrap_or("");
                if t["datasource"] != datasource_ref() {
                    p(format!(
                        "panel {title:?}: query datasource is not ${{datasource}}"
                    ));
                }
                if !refs.insert(t["refId"].as_str().unwrap_or("").to_string()) {
                    p(format!("panel {title:?}: duplicate refId"));
                }
                if expr.trim().is_empty() {
                    p(format!("panel {title:?}: empty expr"));
                }
                let squeezed: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
                for label in ["job", "instance"] {
                    for op in ["=", "!=", "=~", "!~"] {
                        if squeezed.contains(&format!("{{{label}{op}"))
                            || squeezed.contains(&format!(",{label}{op}"))
                        {
                            p(format!(
                                "panel {title:?}: hard-coded {label} label in {expr}"
                            ));
                        }
                    }
                }
                for name in metric_names_in(expr) {
                    let base = name
                        .strip_suffix("_bucket")
                        .or_else(|| name.strip_suffix("_sum"))
                        .or_else(|| name.strip_suffix("_count"))
                        .unwrap_or(&name);
                    if !agreed.contains(&name) && !agreed.contains(base) {
                        p(format!("panel {title:?}: {name} is not in docs/metrics.md"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn yaml(rel: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo_root().join(rel)).expect(rel);
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_is_unit_tested() {
    let promtool = promtool_bin();
    let root = repo_root();
    let (ok, out) = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(root.join(RULES)));
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool check rules:\n{out}"
    );
    let (ok, out) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(root.join(RULE_TESTS)));
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");

    let rules = yaml(RULES);
    let alerts: BTreeSet<String> = rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    for expected in [
        "ElasticrdsTargetDown",
        "ElasticrdsAbsent",
        "ElasticrdsNotTicking",
        "ElasticrdsPinnedAtMax",
        "ElasticrdsActionFailures",
        "ElasticrdsFlapping",
        "ElasticrdsConfigReloadFailed",
    ] {
        assert!(
            alerts.contains(expected),
            "alert {expected} missing from {RULES}"
        );
    }
    let tests = yaml(RULE_TESTS);
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_sequence().into_iter().flatten() {
        for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = a["alertname"].as_str().unwrap_or("").to_string();
            match a["exp_alerts"].as_sequence() {
                Some(v) if !v.is_empty() => firing.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    for alert in &alerts {
        assert!(firing.contains(alert), "no unit test where {alert} fires");
        assert!(
            quiet.contains(alert),
            "no unit test where {alert} must not fire"
        );
    }
}

/// Percent-encode a query-string value.
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET a Prometheus API path and parse its JSON answer (`status` must be `success`).
fn api(port: u16, path: &str) -> Result<Value, String> {
    let body = http_request(port, "GET", path)?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{path}: {v}"));
    }
    Ok(v)
}

fn instant_query(port: u16, expr: &str) -> Result<Vec<Value>, String> {
    let v = api(port, &format!("/api/v1/query?query={}", urlencode(expr)))?;
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Escape a label value for use inside a PromQL regex in double quotes.
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        } else if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replace the template variables of an expression the way Grafana would.
fn substitute(expr: &str, cluster: &str) -> String {
    let mut e = expr
        .replace("${cluster}", cluster)
        .replace("$cluster", cluster);
    for (k, v) in BUILTINS {
        e = e.replace(k, v);
    }
    assert!(!e.contains('$'), "unsubstituted variable in {e}");
    e
}

/// The elasticrds demo, serving /metrics on 127.0.0.1:`port`.
fn start_demo() -> Server {
    Server::start("elasticrds-demo", Duration::from_secs(30), |port| {
        let mut cmd = support::elasticrds(None);
        cmd.args(["demo", "--listen", &format!("127.0.0.1:{port}")]);
        cmd
    })
}

/// The service as `elasticrds demo` runs it (daemon, shared decision path, `/metrics` server
/// on the simulated fleet driven by the embedded trace, a simulated minute per 100 ms), in
/// this process on its own thread, with the policy file `policy_rel`. Stops when dropped.
struct InProcessService {
    port: u16,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessService {
    fn start(policy_rel: &str) -> InProcessService {
        let trace = Trace::parse("embedded demo trace", EMBEDDED_TRACE).expect("embedded trace");
        let demand = Arc::new(trace.demand(4, PEAK_UTILIZATION));
        let start = demand.start();
        Self::start_on(policy_rel, demand, start, LoadOptions::default())
    }

    /// The same on `demand` from `start` (what the load history holds before it is simulated
    /// on the first read, as far back as `load.history_minutes`).
    fn start_on(
        policy_rel: &str,
        demand: Arc<Demand>,
        start: chrono::DateTime<chrono::Utc>,
        load: LoadOptions,
    ) -> InProcessService {
        let text = std::fs::read_to_string(repo_root().join(policy_rel)).expect(policy_rel);
        let case = load_policy("dashboards", policy_rel, &text, None, 4)
            .unwrap_or_else(|e| panic!("{policy_rel}: {e:?}"));
        let speed = Duration::from_millis(100);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let spec = case.spec.clone();
                let clock: Arc<dyn Clock> =
                    Arc::new(TokioClock::scaled(start, 60.0 / speed.as_secs_f64()));
                let fleet = Arc::new(SimFleet::new(
                    clock.clone(),
                    SimOptions {
                        create_lead: Duration::from_secs(12 * 60),
                        delete_time: Duration::ZERO,
                        ..Default::default()
                    },
                ));
                let initial = oracle::initial_replicas(
                    &demand,
                    FLOOR_REPLICAS,
                    &elasticrds::adapters::sim_model::FleetModel::simple(12),
                ) as usize;
                seed_fleet(
                    &fleet,
                    &spec,
                    initial,
                    demand.start() - chrono::Duration::days(1),
                );
                let load = Arc::new(
                    SimLoad::new(fleet.clone(), clock.clone(), &spec, demand.clone(), load)
                        .expect("simulated load"),
                );
                let metrics = Metrics::new();
                let mut daemon = Daemon::new(
                    fleet,
                    load,
                    elasticrds::ports::Routers::default(),
                    clock,
                    vec![ClusterEntry::new(spec, case.case.policy.clone())],
                    metrics.clone(),
                    DaemonOptions {
                        interval: speed,
                        ..Default::default()
                    },
                );
                let server = http::start(
                    "127.0.0.1:0".parse().expect("address"),
                    metrics,
                    daemon.health(),
                )
                .await
                .expect("start the in-process /metrics server");
                let _ = port_tx.send(server.local_addr.port());
                daemon.run(stop_rx).await;
                server.stop().await;
            });
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("in-process service did not start");
        InProcessService {
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcessService {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The metrics a policy file's rules read (`rules[].metric`), and `forecast` when it has a
/// predictive section.
fn policy_rule_metrics(rel: &str) -> (String, BTreeSet<String>) {
    let p = yaml(rel);
    let cluster = p["cluster"].as_str().expect("policy cluster").to_string();
    let mut metrics: BTreeSet<String> = p["rules"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|r| r["metric"].as_str().map(str::to_string))
        .collect();
    if p.get("predictive").is_some() {
        metrics.insert("forecast".into());
    }
    (cluster, metrics)
}

/// A daily wave of demand (0.6 to 2.4 replicas' worth, the low at 06:00 UTC) over three
/// days from `start`, one value a minute: a rhythm the seasonal forecaster can use.
fn daily_wave(start: chrono::DateTime<chrono::Utc>) -> Demand {
    let units = (0..3 * 1440)
        .map(|m| {
            let phase = (m % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            Some(1.5 - 0.9 * phase.sin())
        })
        .collect();
    Demand::new(start, units)
}

/// The predictive policy's service: two days into the wave, with its past kept as history.
fn start_predictive() -> InProcessService {
    use chrono::TimeZone;
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let load = LoadOptions {
        history_minutes: 3 * 1440,
        ..LoadOptions::default()
    };
    let demand = Arc::new(daily_wave(t0));
    InProcessService::start_on(
        PREDICTIVE_POLICY,
        demand,
        t0 + chrono::Duration::days(2),
        load,
    )
}

/// `promtool check metrics` on one exposition must print nothing.
fn promtool_check_metrics(promtool: &Path, what: &str, exposition: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool check metrics");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool check metrics");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on the {what} /metrics ({}):\n{said}",
        out.status
    );
}

/// Wait for an exposition with per-cluster observed values of all three metrics.
fn wait_exposition(port: u16, log: &dyn Fn() -> String) -> String {
    until(Instant::now() + Duration::from_secs(30), || {
        let body = http_request(port, "GET", "/metrics")?;
        let all = [
            "elasticrds_replicas{",
            "elasticrds_cpu_utilization_ratio{",
            "elasticrds_connections{",
            "elasticrds_replica_lag_seconds{",
        ];
        if all.iter().all(|n| body.contains(n)) {
            Ok(body)
        } else {
            Err(format!("not every observed metric yet:\n{body}"))
        }
    })
    .unwrap_or_else(|e| panic!("/metrics on port {port}: {e}\n--- log ---\n{}", log()))
}

fn start_prometheus(target_ports: &[u16], dir: &Path) -> Server {
    let rules = repo_root().join(RULES);
    let targets: Vec<String> = target_ports
        .iter()
        .map(|p| format!("'127.0.0.1:{p}'"))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules:?}\n\
         scrape_configs:\n  - job_name: elasticrds\n    scrape_interval: 1s\n    \
         static_configs:\n      - targets: [{targets}]\n",
        rules = rules.display().to_string(),
        targets = targets.join(", ")
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    Server::start("prometheus", Duration::from_secs(30), |port| {
        let mut cmd = Command::new(support::prometheus_bin());
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        cmd
    })
}

fn fail_with(prom: &Server, demo: &Server, msg: String) -> ! {
    panic!(
        "{msg}\n--- prometheus log ---\n{}\n--- demo log ---\n{}",
        prom.log(),
        demo.log()
    )
}

/// Poll `f` until it returns `Ok`, at most until `deadline`; the last error otherwise.
fn until<T>(deadline: Instant, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus_scraping_the_demo() {
    let started = Instant::now();
    let promtool = promtool_bin();
    let demo = start_demo();
    let sim = InProcessService::start(SIM_POLICY);
    let predictive = start_predictive();

    // Which metrics each cluster's policy has rules (and so targets) for.
    let policies: BTreeMap<String, BTreeSet<String>> = [DEMO_POLICY, SIM_POLICY, PREDICTIVE_POLICY]
        .into_iter()
        .map(policy_rule_metrics)
        .collect();
    assert_eq!(policies.len(), 3, "two policies govern the same cluster");
    for (_, m) in TARGET_METRICS {
        assert!(
            policies.values().any(|p| p.contains(m)),
            "no policy with a {m} rule: its target series would go untested"
        );
    }

    // `promtool check metrics` on both expositions must print nothing; both export an observed
    // value for every metric, whatever their policy's rules.
    let demo_text = wait_exposition(demo.port, &|| demo.log());
    promtool_check_metrics(&promtool, "demo", &demo_text);
    let sim_text = wait_exposition(sim.port, &String::new);
    promtool_check_metrics(&promtool, "in-process service", &sim_text);
    let predictive_text = wait_exposition(predictive.port, &String::new);
    promtool_check_metrics(&promtool, "predictive service", &predictive_text);

    let dir = tempfile::tempdir().expect("temp dir");
    let prom = start_prometheus(&[demo.port, sim.port, predictive.port], dir.path());
    macro_rules! fail {
        ($msg:expr) => {
            fail_with(&prom, &demo, $msg)
        };
    }

    // The $cluster variable's own query, as Grafana runs it (label values of a series match).
    let clusters: Vec<String> = until(Instant::now() + Duration::from_secs(30), || {
        let v = api(
            prom.port,
            &format!(
                "/api/v1/label/cluster/values?match[]={}",
                urlencode("elasticrds_replicas")
            ),
        )?;
        let values: Vec<String> = v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        if values.len() < policies.len() {
            Err(format!(
                "label_values(elasticrds_replicas, cluster) is {values:?}"
            ))
        } else {
            Ok(values)
        }
    })
    .unwrap_or_else(|e| fail!(e));
    assert_eq!(
        clusters.iter().collect::<BTreeSet<_>>(),
        policies.keys().collect::<BTreeSet<_>>(),
        "clusters seen by Prometheus"
    );

    // Every query of every panel, with the variables substituted: the overview with every
    // cluster selected (a multi-value regex), the cluster dashboard once per cluster. A query
    // about the target of a metric the cluster's policy has no rule for must be empty; every
    // other query must return data.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut must_be_empty: Vec<(String, String)> = Vec::new();
    let mut annotations = Vec::new();
    let mut used_names = BTreeSet::new();
    for rel in DASHBOARDS {
        let dash = load_dashboard(rel);
        let values: Vec<(String, Option<&BTreeSet<String>>)> =
            if variable(&dash, "cluster")["multi"] == true {
                let alts: Vec<String> = clusters.iter().map(|c| regex_escape(c)).collect();
                vec![(format!("({})", alts.join("|")), None)]
            } else {
                clusters
                    .iter()
                    .map(|c| (c.clone(), policies.get(c)))
                    .collect()
            };
        for (value, rules) in &values {
            for (title, ref_id, expr) in queries(&dash) {
                used_names.extend(metric_names_in(&expr));
                let what = format!("{rel} [{value}]: {title:?} {ref_id}");
                let untargeted = rules.is_some_and(|rules| {
                    TARGET_METRICS
                        .iter()
                        .any(|(name, m)| expr.contains(name) && !rules.contains(*m))
                });
                let q = (what, substitute(&expr, value));
                if untargeted {
                    must_be_empty.push(q);
                } else {
                    pending.push(q);
                }
            }
            for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
                if let Some(expr) = a["expr"].as_str() {
                    annotations.push((
                        format!("{rel} [{value}]: annotation {}", a["name"]),
                        substitute(expr, value),
                    ));
                }
            }
        }
    }
    assert!(pending.len() >= 60, "only {} panel queries", pending.len());
    assert!(
        must_be_empty.len() >= 4,
        "only {} target queries without a rule",
        must_be_empty.len()
    );
    let total = pending.len();

    // Rates need a few scrapes: retry the empty ones until a bounded deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut still = Vec::new();
        for (what, expr) in pending {
            match instant_query(prom.port, &expr) {
                // A panel drawing only NaN (e.g. a quantile of zero rates) shows nothing either.
                Ok(result) if result.iter().any(|r| r["value"][1] != "NaN") => {}
                Ok(_) => still.push((what, expr)),
                Err(e) => fail!(format!("{what}: query failed: {e}")),
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if !pending.is_empty() {
        let list: Vec<String> = pending
            .iter()
            .map(|(what, expr)| format!("  {what}: {expr}"))
            .collect();
        fail!(format!(
            "{} of {total} panel queries returned no data after {:?}:\n{}",
            pending.len(),
            started.elapsed(),
            list.join("\n")
        ));
    }
    // By now every series has been scraped many times: a target without a rule is made up.
    for (what, expr) in &must_be_empty {
        match instant_query(prom.port, expr) {
            Ok(result) if result.is_empty() => {}
            Ok(result) => fail!(format!(
                "{what}: a target the policy does not define was exported: {expr} = {result:?}"
            )),
            Err(e) => fail!(format!("{what}: query failed: {e}")),
        }
    }
    // Every metric name a panel uses has series (a `... or on() vector(0)` fallback must not
    // hide a misspelt name).
    for name in &used_names {
        let expr = format!("count({{__name__=\"{name}\"}})");
        match instant_query(prom.port, &expr) {
            Ok(result) if !result.is_empty() => {}
            Ok(_) => fail!(format!("{name}, used by a panel, has no series")),
            Err(e) => fail!(format!("{expr}: {e}")),
        }
    }
    // Annotation queries must at least be valid PromQL (they are empty when nothing happened).
    for (what, expr) in &annotations {
        if let Err(e) = instant_query(prom.port, expr) {
            fail!(format!("{what}: {e}"));
        }
    }

    // The alerting rules load into the real server and evaluate without error on the demo data.
    let rules = until(Instant::now() + Duration::from_secs(20), || {
        let v = api(prom.port, "/api/v1/rules")?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let unevaluated = rules
            .iter()
            .filter(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .unwrap_or("0001")
                    .starts_with("0001")
            })
            .count();
        if rules.is_empty() || unevaluated > 0 {
            Err(format!(
                "{} rules, {unevaluated} not evaluated yet",
                rules.len()
            ))
        } else {
            Ok(rules)
        }
    })
    .unwrap_or_else(|e| fail!(format!("rules: {e}")));
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{} {}: {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(
        rules.len() >= 6 && unhealthy.is_empty(),
        "rules on the live server: {} loaded, unhealthy: {unhealthy:#?}",
        rules.len()
    );
    // The demo is up and ticking: the down/absent alerts must not be pending or firing.
    let alerts = api(prom.port, "/api/v1/alerts").unwrap_or_else(|e| fail!(e));
    for a in alerts["data"]["alerts"].as_array().into_iter().flatten() {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        assert!(
            !matches!(name, "ElasticrdsTargetDown" | "ElasticrdsAbsent"),
            "{name} is active while the demo is being scraped: {a}"
        );
    }
    eprintln!(
        "{total} panel queries answered, {} target queries empty as they must be, {} rules healthy, in {:?}",
        must_be_empty.len(),
        rules.len(),
        started.elapsed()
    );
}
