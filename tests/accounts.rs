//! Clusters in other accounts and regions, against moto's STS and RDS (moto keeps accounts
//! apart by the credentials an AssumeRole hands out), checked by an independent client
//! (boto3): a cluster with `role_arn` and `region` is observed and scaled in its own account and
//! region with the assumed role's credentials, nothing of one account is touched with the
//! other's, and a role that cannot be assumed fails only its cluster.

mod support;

use std::process::Command;
use support::{elasticrds, Moto};

const ROLE_B: &str = "arn:aws:iam::222222222222:role/elasticrds-target";

const CONFIG: &str = "\
home:
  master_node: {identifier: snap, instance_id: home-m01, instance_class: db.t3.micro}
  replica_nodes:
    - {id: home-r01, instance_class: db.t3.micro}
away:
  master_node: {identifier: snap, instance_id: away-m01, instance_class: db.t3.micro}
  region: eu-west-1
  role_arn: arn:aws:iam::222222222222:role/elasticrds-target
  external_id: ops-42
  replica_nodes:
    - {id: away-r01, instance_class: db.t3.micro}
";

/// boto3 against moto: `script` with `EP` the endpoint, `KW` the home account's client
/// arguments and `away()` an RDS client of account 222222222222 in eu-west-1; its stdout.
fn boto3(moto: &Moto, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\nEP = '{ep}'\nKW = dict(endpoint_url=EP, aws_access_key_id='testing', aws_secret_access_key='testing')\n\
def away():\n    c = boto3.client('sts', region_name='us-east-1', **KW).assume_role(RoleArn='{ROLE_B}', RoleSessionName='test')['Credentials']\n    return boto3.client('rds', region_name='eu-west-1', endpoint_url=EP, aws_access_key_id=c['AccessKeyId'], aws_secret_access_key=c['SecretAccessKey'], aws_session_token=c['SessionToken'])\n\
home = boto3.client('rds', region_name='us-east-1', **KW)\n\
def ids(c):\n    return sorted(d['DBInstanceIdentifier'] for d in c.describe_db_instances()['DBInstances'])\n\
def master(c, i):\n    c.create_db_instance(DBInstanceIdentifier=i, DBInstanceClass='db.t3.micro', Engine='mysql', MasterUsername='admin', MasterUserPassword='password123', AllocatedStorage=20)\n",
        ep = moto.endpoint()
    );
    let out = Command::new(support::venv_bin("python"))
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn run(moto: &Moto, sts: &str, dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = elasticrds(Some(&moto.endpoint()))
        .env("AWS_ENDPOINT_URL_STS", sts)
        .arg("--config")
        .arg(dir.join("elasticrds.yaml"))
        .args(args)
        .output()
        .expect("run elasticrds");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_cluster_in_another_account_and_region_is_managed_with_the_assumed_role() {
    let moto = Moto::start();
    boto3(
        &moto,
        "master(home, 'home-m01')\nmaster(away(), 'away-m01')\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).unwrap();
    let ep = moto.endpoint();
    // Each account sees only its own master.
    let seen = boto3(&moto, "print(ids(home), ids(away()))");
    assert_eq!(seen.trim(), "['home-m01'] ['away-m01']");
    for cluster in ["away", "home"] {
        let (code, out) = run(&moto, &ep, dir.path(), &["create-cluster", cluster]);
        assert_eq!(code, 0, "{cluster}: {out}");
    }
    let seen = boto3(&moto, "print(ids(home), ids(away()))");
    assert_eq!(
        seen.trim(),
        "['home-m01', 'home-r01'] ['away-m01', 'away-r01']",
        "each replica in its own account and region"
    );
    // A replica made by hand in the away account: reported there as foreign (left alone).
    boto3(
        &moto,
        "away().create_db_instance_read_replica(DBInstanceIdentifier='away-adhoc', SourceDBInstanceIdentifier='away-m01', DBInstanceClass='db.t3.micro')\n",
    );
    let (code, out) = run(&moto, &ep, dir.path(), &["status", "away"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("away-r01"), "{out}");
    let foreign = out
        .split_once("foreign")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default();
    assert!(foreign.contains("away-adhoc"), "{out}");
    // A role that cannot be assumed (STS unreachable) fails that cluster only, with the cause.
    let dead = "http://127.0.0.1:9";
    let (code, out) = run(&moto, dead, dir.path(), &["status", "away"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.to_lowercase().contains("credentials") || out.contains("AssumeRole"),
        "{out}"
    );
    let (code, out) = run(&moto, dead, dir.path(), &["status", "home"]);
    assert_eq!(code, 0, "the other cluster goes on: {out}");
}

/// The service with both clusters: one tick observes each in its own account (one describe per
/// account); with STS unreachable the away cluster's tick fails, naming it, and home's does not.
#[test]
fn the_service_ticks_each_account_apart() {
    let moto = Moto::start();
    let ms = support::Ministack::start();
    boto3(
        &moto,
        "master(home, 'home-m01')\nmaster(away(), 'away-m01')\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for c in ["home", "away"] {
        let p = format!("cluster: {c}\nmin_replicas: 1\nmax_replicas: 1\nrules:\n  - metric: cpu\n    target: 60\n");
        std::fs::write(policies.join(format!("{c}.yaml")), p).unwrap();
    }
    let once = |sts: &str| {
        let out = elasticrds(Some(&moto.endpoint()))
            .env("AWS_ENDPOINT_URL_STS", sts)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", ms.endpoint())
            .arg("--config")
            .arg(dir.path().join("elasticrds.yaml"))
            .args(["run", "--once", "--policies"])
            .arg(&policies)
            .output()
            .expect("run --once");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = once(&moto.endpoint());
    assert_eq!(code, Some(0), "{err}");
    let seen = boto3(&moto, "print(ids(home), ids(away()))");
    assert_eq!(
        seen.trim(),
        "['home-m01', 'home-r01'] ['away-m01', 'away-r01']"
    );
    let (code, err) = once("http://127.0.0.1:9");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tick failed for 1 cluster(s): away:"), "{err}");
}
