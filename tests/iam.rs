//! docs/iam-policy.json is the least privilege the code needs: every AWS operation the code
//! calls (found by scanning src/ for SDK client builder calls) is allowed by it, nothing it
//! allows is unused, no action is a wildcard, and the actions that change instances are scoped
//! to the configured identifiers (never `*`); the master is outside DeleteDBInstance's scope,
//! and DeleteDBInstance needs the `elasticrds:managed-by` tag the created replicas carry (a
//! standalone instance or another master's replica holding a configured id is not deletable
//! even if the code were wrong).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `describe_db_instances` → `describedbinstances` (IAM names compare case-insensitively once
/// the underscores are gone: DescribeDBInstances).
fn norm(op: &str) -> String {
    op.replace('_', "").to_ascii_lowercase()
}

/// Builder calls on an SDK client: `client.<op>()` or `client\n    .<op>()`, in files that use
/// aws_sdk_rds, aws_sdk_cloudwatch or aws_sdk_eventbridge. Returns (iam service prefix, normalized op) → file:line.
fn operations_called() -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut ops = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let sdks: Vec<&str> = [
            ("aws_sdk_rds", "rds"),
            ("aws_sdk_cloudwatch", "cloudwatch"),
            ("aws_sdk_eventbridge", "events"),
            ("aws_sdk_dynamodb", "dynamodb"),
        ]
        .iter()
        .filter(|(krate, _)| text.contains(krate))
        .map(|(_, service)| *service)
        .collect();
        let bytes = text.as_bytes();
        let mut from = 0;
        while let Some(i) = text[from..].find("client") {
            let start = from + i;
            from = start + "client".len();
            // `client` as a whole word (not `cloudwatch_client(`, `client_for`, ...).
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let rest = &text[from..];
            let trimmed = rest.trim_start();
            let Some(after_dot) = trimmed.strip_prefix('.') else {
                continue;
            };
            let name: String = after_dot
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || !after_dot[name.len()..].starts_with("()") {
                continue;
            }
            // Client methods that are not operations.
            if ["config", "clone", "to_owned"].contains(&name.as_str()) {
                continue;
            }
            let service = match sdks.as_slice() {
                [one] => *one,
                [] => continue,
                _ => panic!(
                    "{} uses several SDKs: cannot tell which service `{name}` belongs to; keep one SDK per file",
                    f.display()
                ),
            };
            let line = text[..start].matches('\n').count() + 1;
            ops.entry((service.to_string(), norm(&name)))
                .or_insert_with(|| format!("{}:{line}", f.strip_prefix(root()).unwrap().display()));
        }
    }
    ops
}

struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
}

fn policy() -> Vec<Statement> {
    let text = std::fs::read_to_string(root().join("docs/iam-policy.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("docs/iam-policy.json is JSON");
    assert_eq!(v["Version"], "2012-10-17");
    let list = |x: &serde_json::Value| -> Vec<String> {
        match x {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect(),
            other => panic!("not a string or list: {other}"),
        }
    };
    v["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow", "only Allow statements: {s}");
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
            Statement {
                sid: s["Sid"]
                    .as_str()
                    .expect("every statement has a Sid")
                    .to_string(),
                actions: list(&s["Action"]),
                resources: list(&s["Resource"]),
            }
        })
        .collect()
}

#[test]
fn the_scan_finds_the_known_operations() {
    // Guards the scanner itself: these calls are in src/adapters/rds.rs today.
    let ops = operations_called();
    for op in [
        "describedbinstances",
        "createdbinstancereadreplica",
        "deletedbinstance",
    ] {
        assert!(
            ops.contains_key(&("rds".to_string(), op.to_string())),
            "scanner missed rds {op}: {ops:?}"
        );
    }
    // ... and in src/adapters/eventbridge.rs.
    assert!(
        ops.contains_key(&("events".to_string(), "putevents".to_string())),
        "scanner missed events PutEvents: {ops:?}"
    );
}

#[test]
fn every_operation_the_code_calls_is_allowed_and_nothing_more() {
    let called = operations_called();
    let statements = policy();
    let allowed: BTreeSet<(String, String)> = statements
        .iter()
        .flat_map(|s| s.actions.iter())
        .map(|a| {
            let (svc, op) = a.split_once(':').expect("service:Action");
            assert!(!op.contains('*'), "wildcard action {a}");
            (svc.to_string(), norm(op))
        })
        .collect();
    // The lease table's creation (`lease-table create`) is an operator's one-off, not the
    // service's: its two calls are left out of the service's policy (docs/service.md).
    let called: BTreeMap<(String, String), String> = called
        .into_iter()
        .filter(|((s, o), _)| !(s == "dynamodb" && (o == "createtable" || o == "updatetimetolive")))
        .collect();
    let missing: Vec<String> = called
        .iter()
        .filter(|(k, _)| !allowed.contains(k))
        .map(|((s, o), at)| format!("{s}:{o} (called at {at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations called but not in docs/iam-policy.json: {missing:?}"
    );
    // iam:PassRole is not a call: RDS checks it when a create or modify names the enhanced
    // monitoring role of a replica template.
    let unused: Vec<String> = allowed
        .iter()
        .filter(|k| !called.contains_key(*k) && **k != ("iam".to_string(), "passrole".to_string()))
        .map(|(s, o)| format!("{s}:{o}"))
        .collect();
    assert!(
        unused.is_empty(),
        "docs/iam-policy.json allows operations the code never calls: {unused:?}"
    );
}

#[test]
fn deletes_need_the_tag_only_our_replicas_carry() {
    let text = std::fs::read_to_string(root().join("docs/iam-policy.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let deletes: Vec<&serde_json::Value> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"].to_string().contains("rds:DeleteDBInstance"))
        .collect();
    assert_eq!(deletes.len(), 1, "one statement allows DeleteDBInstance");
    let cond = &deletes[0]["Condition"]["StringEquals"]["rds:db-tag/elasticrds:managed-by"];
    assert_eq!(cond, "elasticrds", "{}", deletes[0]);
    // The tag the condition names is the one every created replica carries.
    let tags = elasticrds::reconcile::managed_tags("cluster1");
    assert_eq!(
        tags.get("elasticrds:managed-by").map(String::as_str),
        Some("elasticrds")
    );
}

#[test]
fn changes_are_scoped_to_configured_identifiers() {
    for s in policy() {
        for a in &s.actions {
            let mutating = [
                "rds:CreateDBInstanceReadReplica",
                "rds:DeleteDBInstance",
                "rds:ModifyDBInstance",
                "rds:RestoreDBInstanceFromDBSnapshot",
                "rds:AddTagsToResource",
                "rds:RemoveTagsFromResource",
            ]
            .contains(&a.as_str());
            // The one RDS action without resource types: the zones RDS offers a class in.
            if a.starts_with("rds:") && a != "rds:DescribeOrderableDBInstanceOptions" {
                for r in &s.resources {
                    assert_ne!(r, "*", "{}: {a} on every resource", s.sid);
                    assert!(r.starts_with("arn:aws:rds:"), "{}: {r}", s.sid);
                    if mutating {
                        let (kind, name) = r
                            .rsplit_once(':')
                            .map(|(k, n)| (k.rsplit(':').next().unwrap(), n))
                            .unwrap();
                        if kind == "db" {
                            assert_ne!(name, "*", "{}: {a} on every DB instance", s.sid);
                        }
                    }
                }
            }
            if a == "rds:DeleteDBInstance" {
                // The example config's master is cluster1m01; replicas are cluster1s01...
                for r in &s.resources {
                    let name = r.rsplit(':').next().unwrap();
                    let pattern = name.trim_end_matches('*');
                    assert!(
                        !"cluster1m01".starts_with(pattern),
                        "{}: DeleteDBInstance scope {r} covers the master",
                        s.sid
                    );
                }
            }
        }
    }
}

#[test]
fn the_policy_in_docs_is_what_iam_policy_generates_for_the_example_config() {
    // docs/iam-policy.json is `elasticrds --config docs/examples/notify/elasticrds.yaml
    // iam-policy`: the example cluster and its notifications' event bus.
    let path = root().join("docs/examples/notify/elasticrds.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = elasticrds::core::config::Config::parse("elasticrds.yaml", &text).unwrap();
    let clusters: Vec<_> = config.clusters.values().collect();
    let scope = elasticrds::cli::iam::Scope {
        lease_table: Some("elasticrds-leases".into()),
        ..elasticrds::cli::iam::Scope::default()
    };
    let mut doc = elasticrds::cli::iam::policy_document(&config, &clusters, &scope);
    doc.statement
        .extend(elasticrds::cli::iam::lease_statement(&scope));
    let generated = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let docs = std::fs::read_to_string(root().join("docs/iam-policy.json")).unwrap();
    assert_eq!(
        docs, generated,
        "docs/iam-policy.json differs from the generator: run `elasticrds --config docs/examples/notify/elasticrds.yaml iam-policy --lease-table elasticrds-leases > docs/iam-policy.json`"
    );
}

#[test]
fn the_generated_policy_names_exactly_the_configured_instances_and_buses() {
    let y = "a:\n  master_node: {identifier: snap-a, instance_id: a-m, instance_class: db.t3.micro, db_subnet_group_name: net}\n  replica_nodes:\n    - {id: a-r1, instance_class: db.t3.micro}\nb:\n  master_node: {identifier: snap-b, instance_id: b-m, instance_class: db.t3.micro}\nnotifications:\n  sinks:\n    - {name: x, eventbridge: {bus: bus-b, region: eu-west-1}, clusters: [b]}\n    - {name: y, webhook: {url: 'https://h.example.com/'}}\n";
    let config = elasticrds::core::config::Config::parse("c.yaml", y).unwrap();
    let scope = elasticrds::cli::iam::Scope {
        region: "us-east-1".into(),
        account: "123456789012".into(),
        lease_table: None,
    };
    let only_a = vec![&config.clusters["a"]];
    let doc = serde_json::to_value(elasticrds::cli::iam::policy_document(
        &config, &only_a, &scope,
    ))
    .unwrap();
    let text = doc.to_string();
    for want in [
        "arn:aws:rds:us-east-1:123456789012:db:a-m",
        "arn:aws:rds:us-east-1:123456789012:db:a-r1",
        "arn:aws:rds:us-east-1:123456789012:snapshot:snap-a",
        "arn:aws:rds:us-east-1:123456789012:subgrp:net",
    ] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
    assert!(
        !text.contains("b-m") && !text.contains("snap-b"),
        "cluster b left out: {text}"
    );
    assert!(
        !text.contains("events:PutEvents"),
        "bus-b only hears about b: {text}"
    );
    let both: Vec<_> = config.clusters.values().collect();
    let doc = serde_json::to_value(elasticrds::cli::iam::policy_document(
        &config, &both, &scope,
    ))
    .unwrap();
    assert!(
        doc.to_string()
            .contains("arn:aws:events:eu-west-1:123456789012:event-bus/bus-b"),
        "{doc}"
    );
}

#[test]
fn clusters_in_other_accounts_get_a_role_policy_and_the_service_may_assume_the_roles() {
    let text =
        std::fs::read_to_string(root().join("docs/examples/accounts/elasticrds.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, text).unwrap();
    let role = "arn:aws:iam::222222222222:role/elasticrds-target";
    let run = |extra: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_elasticrds"))
            .arg("--config")
            .arg(&path)
            .arg("iam-policy")
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let own = run(&[]).to_string();
    assert!(
        own.contains("home-m01") && !own.contains("away-m01"),
        "{own}"
    );
    assert!(
        own.contains("sts:AssumeRole") && own.contains(role),
        "{own}"
    );
    let theirs = run(&["--role", role]).to_string();
    assert!(
        theirs.contains("arn:aws:rds:*:222222222222:db:away-r01"),
        "{theirs}"
    );
    assert!(
        !theirs.contains("home-") && !theirs.contains("sts:"),
        "{theirs}"
    );
    let trust = run(&[
        "--role",
        role,
        "--trusting",
        "arn:aws:iam::111111111111:root",
    ]);
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "ops-42"
    );
}
