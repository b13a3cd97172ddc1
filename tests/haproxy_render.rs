//! `elasticrds haproxy render`: the generated config passes Debian haproxy 2.6's `haproxy -c`
//! for MySQL and PostgreSQL clusters (and through a user template), carries the engine's
//! health check, the available replicas as servers at their endpoints and the master as
//! backup; bad templates are bad input (exit 2) before any AWS call.
//! haproxy missing makes these tests FAIL.

mod support;

use chrono::Utc;
use elasticrds::adapters::haproxy::render::{BLOCK_BEGIN, BLOCK_END};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::cli::haproxy::{render_on, RenderArgs};
use elasticrds::core::config::{ClusterSpec, Config};
use elasticrds::core::domain::{InstanceId, InstanceStatus};
use elasticrds::ports::{Clock, ManualClock};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn spec(extra: &str) -> ClusterSpec {
    let y = format!(
        "c1:\n  master_node: {{identifier: snap, instance_id: c1m01, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: c1s01, instance_class: db.t3.micro}}\n    - {{id: c1s02, instance_class: db.t3.micro}}\n    - {{id: c1s03, instance_class: db.t3.micro}}\n{extra}"
    );
    Config::parse("c.yaml", &y)
        .unwrap()
        .cluster("c1")
        .unwrap()
        .clone()
}

/// Master and two replicas available, the third still creating.
fn fleet(engine: &str, port: u16) -> SimFleet {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let f = SimFleet::new(
        clock,
        SimOptions {
            engine: engine.into(),
            port,
            ..Default::default()
        },
    );
    f.insert(f.available_instance("c1m01", "db.t3.micro"));
    for (id, st) in [
        ("c1s01", InstanceStatus::Available),
        ("c1s02", InstanceStatus::Available),
        ("c1s03", InstanceStatus::Creating),
    ] {
        let mut r = f.available_instance(id, "db.t3.micro");
        r.status = st;
        r.source = Some(InstanceId::from_aws("c1m01"));
        f.insert(r);
    }
    f
}

fn args(template: Option<PathBuf>) -> RenderArgs {
    RenderArgs {
        cluster: "c1".into(),
        template,
        output: None,
        bind: None,
    }
}

fn haproxy_check(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("haproxy.cfg");
    std::fs::write(&p, text).unwrap();
    check_file(&p, text);
}

fn check_file(p: &Path, text: &str) {
    let out = Command::new(support::haproxy_bin())
        .arg("-c")
        .arg("-f")
        .arg(p)
        .output()
        .expect("run haproxy -c");
    assert!(
        out.status.success(),
        "haproxy -c failed:\n{}{}\n--- config ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn servers(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server "))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn mysql_render_passes_haproxy_check() {
    let spec = spec("  haproxy: {socket: /run/haproxy/admin.sock, backend: mysql_replicas, check_user: haproxy_check}\n");
    let text = render_on(&fleet("mysql", 3306), &spec, &args(None))
        .await
        .unwrap();
    haproxy_check(&text);
    assert!(text.contains("    option mysql-check user haproxy_check post-41\n"));
    assert!(text.contains("    balance leastconn\n"));
    assert!(text.contains("listen mysql_replicas\n"));
    assert!(text.contains("    bind 127.0.0.1:3306\n"));
    assert!(text.contains("stats socket /run/haproxy/admin.sock mode 600 level admin"));
    assert_eq!(
        servers(&text),
        [
            "server c1s01 c1s01.sim.local:3306 check inter 10s fall 2",
            "server c1s02 c1s02.sim.local:3306 check inter 10s fall 2",
            "server c1m01 c1m01.sim.local:3306 check inter 10s fall 2 backup",
        ]
    );
}

#[tokio::test]
async fn postgres_render_passes_haproxy_check() {
    let spec =
        spec("  haproxy: {socket: '127.0.0.1:9999', backend: pg, check_user: haproxy_check}\n");
    let text = render_on(&fleet("postgres", 5432), &spec, &args(None))
        .await
        .unwrap();
    haproxy_check(&text);
    assert!(text.contains("    option pgsql-check user haproxy_check\n"));
    assert!(text.contains("stats socket ipv4@127.0.0.1:9999 level admin"));
    assert!(text.contains("    bind 127.0.0.1:5432\n"));
    assert_eq!(servers(&text).len(), 3);
    assert!(
        !text.contains("c1s03"),
        "a creating replica is not a server"
    );
}

#[tokio::test]
async fn cluster_without_haproxy_section_renders_with_defaults() {
    let text = render_on(&fleet("postgres", 5432), &spec(""), &args(None))
        .await
        .unwrap();
    haproxy_check(&text);
    assert!(text.contains("listen c1\n"));
    // pgsql-check needs a user: without one the check falls back to TCP connect.
    assert!(text.contains("option tcp-check"));
    assert!(!text.contains("option pgsql-check"));
}

#[tokio::test]
async fn template_render_passes_haproxy_check() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tmpl.cfg");
    std::fs::write(
        &t,
        "global\n    {{stats_socket}}\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\nfrontend fe\n    bind {{bind}}\n    default_backend {{backend}}\n\nbackend {{backend}}\n    balance roundrobin\n    {{health_check}}\n    default-server init-addr last,libc,none\n    {{servers}}\n",
    )
    .unwrap();
    let spec = spec("  haproxy: {socket: /tmp/x.sock, backend: ro, check_user: chk}\n");
    let text = render_on(&fleet("mysql", 3306), &spec, &args(Some(t)))
        .await
        .unwrap();
    haproxy_check(&text);
    assert!(text.contains("backend ro\n"));
    assert!(text.contains("    option mysql-check user chk post-41\n"));
    assert!(text.contains(&format!("    {BLOCK_BEGIN}\n    server c1s01 ")));
    assert!(text.contains(&format!("backup\n    {BLOCK_END}\n")));
}

#[tokio::test]
async fn template_without_placeholder_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("tmpl.cfg");
    std::fs::write(&t, "global\n").unwrap();
    let e = render_on(&fleet("mysql", 3306), &spec(""), &args(Some(t.clone())))
        .await
        .unwrap_err();
    assert_eq!(e.code, 2);
    assert!(e.message.contains("{{servers}}"), "{}", e.message);
    assert!(
        e.message.contains(&t.display().to_string()),
        "{}",
        e.message
    );
}

#[test]
fn cli_bad_template_exits_2_without_aws_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "c1:\n  master_node: {identifier: snap, instance_id: c1m01, instance_class: db.t3.micro}\n",
    )
    .unwrap();
    let wire = support::Tripwire::new();
    let out = support::elasticrds(Some(&wire.endpoint()))
        .arg("--config")
        .arg(&cfg)
        .args(["haproxy", "render", "c1", "--template"])
        .arg(dir.path().join("missing.tmpl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.tmpl"));
    assert_eq!(wire.hits(), 0);
}

/// `elasticrds haproxy render` end to end against moto (the RDS adapter, the binary, exit
/// code, `--output`): a MySQL and a PostgreSQL cluster, each with its master, one available
/// replica and one configured replica that does not exist. Every server line carries the
/// endpoint address and port DescribeDBInstances reports, and the written file passes
/// `haproxy -c`.
#[test]
fn cli_render_from_moto_passes_haproxy_check() {
    let moto = support::Moto::start();
    let rds = support::rds_client(&moto.endpoint());
    let endpoints = support::block_on(async {
        for (master, replica, engine) in
            [("c1m01", "c1s01", "mysql"), ("c2m01", "c2s01", "postgres")]
        {
            support::create_db_instance(&rds, master, engine).await;
            rds.create_db_instance_read_replica()
                .db_instance_identifier(replica)
                .source_db_instance_identifier(master)
                .db_instance_class("db.t3.micro")
                .send()
                .await
                .expect("CreateDBInstanceReadReplica");
        }
        let out = rds
            .describe_db_instances()
            .send()
            .await
            .expect("DescribeDBInstances");
        out.db_instances()
            .iter()
            .map(|d| {
                let ep = d.endpoint().expect("moto gives an endpoint");
                (
                    d.db_instance_identifier().unwrap().to_string(),
                    format!("{}:{}", ep.address().unwrap(), ep.port().unwrap()),
                )
            })
            .collect::<std::collections::BTreeMap<String, String>>()
    });
    assert_eq!(endpoints.len(), 4, "{endpoints:?}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "c1:\n  master_node: {{identifier: snap, instance_id: c1m01, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: c1s01, instance_class: db.t3.micro}}\n    - {{id: c1s02, instance_class: db.t3.micro}}\n  haproxy: {{socket: {}, backend: mysql_ro, check_user: haproxy_check}}\nc2:\n  master_node: {{identifier: snap, instance_id: c2m01, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: c2s01, instance_class: db.t3.micro}}\n    - {{id: c2s02, instance_class: db.t3.micro}}\n  haproxy: {{socket: {}, backend: pg_ro, check_user: haproxy_check}}\n",
            dir.path().join("c1.sock").display(),
            dir.path().join("c2.sock").display(),
        ),
    )
    .unwrap();
    for (cluster, master, replica, check, port) in [
        (
            "c1",
            "c1m01",
            "c1s01",
            "option mysql-check user haproxy_check post-41",
            3306,
        ),
        (
            "c2",
            "c2m01",
            "c2s01",
            "option pgsql-check user haproxy_check",
            5432,
        ),
    ] {
        let out_file = dir.path().join(format!("{cluster}.cfg"));
        let out = support::elasticrds(Some(&moto.endpoint()))
            .arg("--config")
            .arg(&cfg)
            .args(["haproxy", "render", cluster, "--output"])
            .arg(&out_file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = std::fs::read_to_string(&out_file).unwrap();
        check_file(&out_file, &text);
        assert!(text.contains(&format!("    {check}\n")), "{text}");
        assert!(
            text.contains(&format!("    bind 127.0.0.1:{port}\n")),
            "{text}"
        );
        assert!(text.contains("    balance leastconn\n"), "{text}");
        assert!(text.contains(" mode 600 level admin\n"), "{text}");
        assert_eq!(
            servers(&text),
            [
                format!(
                    "server {replica} {} check inter 10s fall 2",
                    endpoints[replica]
                ),
                format!(
                    "server {master} {} check inter 10s fall 2 backup",
                    endpoints[master]
                ),
            ],
            "{text}"
        );
        assert!(
            endpoints[replica].ends_with(&format!(":{port}")),
            "{endpoints:?}"
        );
    }
}
