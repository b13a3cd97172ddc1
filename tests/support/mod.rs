//! Shared helpers for the integration tests. Use from a test file with `mod support;`.
//!
//! Emulators and real servers run on 127.0.0.1 at random free ports, as child processes that
//! are stopped when their handle drops. When one cannot be started the test FAILS (panics) with
//! a message pointing at `scripts/test.sh`, which installs them; nothing here skips.
//!
//! - [`repo_root`], [`venv_bin`]: paths of the repository and of `.venv/bin/<name>`.
//! - [`free_port`], [`wait_for_port`], [`listener_owned_by`] (`ports.rs`): a free loopback port,
//!   waiting until it answers, and whether our child (not a neighbour) holds it.
//! - [`Moto::start`]: moto's standalone server (RDS); `.endpoint()`, `.reset()`, `.state()`.
//! - [`Ministack::start`]: ministack with only CloudWatch (rpcv2Cbor); `.endpoint()`.
//! - [`Server::spawn`]: any child process bound to a port, killed on drop (used by the two above;
//!   handy for haproxy/prometheus), with its output in `.log()`.
//! - [`haproxy_bin`], [`prometheus_bin`], [`promtool_bin`]: locate the Debian binaries.
//! - [`aws_env`]: set the AWS test environment (fake credentials, us-east-1, endpoint overrides,
//!   no profile/IMDS) on a `std::process::Command`.
//! - [`rds_client`], [`cloudwatch_client`]: SDK clients pointed at an emulator, for test set-up;
//!   [`create_db_instance`], [`create_snapshot`]: RDS set-up on moto.
//! - [`block_on`]: run a future on a fresh current-thread tokio runtime.
//! - [`run_for`]: run a `Daemon`'s loop for a while (tokio time), then stop it.
//! - [`Tripwire`]: a listener that counts connections, to prove a command made no AWS call.
//! - [`RecordingProxy`]: an HTTP proxy in front of an emulator that records every AWS query
//!   call (`Action` and parameters), to assert exactly which calls a command made.
//! - [`Moto::ec2_query`], [`Moto::default_subnet_ids`], [`create_subnet_group`]: EC2 set-up
//!   without an EC2 SDK (moto's default VPC subnets for a DB subnet group).
//! - [`elasticrds`]: a `Command` for the built binary with [`aws_env`] applied.
//!
//! The test kit (one of each; don't write another in a test file):
//! - [`instance`] (`instances.rs`): an [`InstanceBuilder`] for observed `Instance`s, e.g.
//!   `instance("c1-s01").of("c1-m01").status(InstanceStatus::Creating).build()`.
//! - [`HookedFleet`] (`fleet.rs`): any `Fleet` with `before`/`after` hooks per [`Op`] that
//!   delay, fail with a `PortError` or record a witness of the moment of the call.
//! - [`FakeMetrics`] (`metrics.rs`): constant metrics (CPU settable per cluster), a sample in
//!   every period, an optional delay and the record of its fetches ([`FetchCall`]).
//! - [`get`], [`request`] (`http.rs`): one bounded HTTP/1.1 client giving a [`Response`]
//!   (status, head, body); [`http`], [`http_request`]: the body, an error unless 2xx;
//!   [`send_raw`], [`read_until_closed`], [`status_code`]: raw bytes for the hardening tests.
//! - [`url_decode`], [`parse_form`] (`http.rs`): the one form/percent decoder.
//! - [`Hook`] (`hook.rs`): a webhook's receiver on 127.0.0.1 recording each request ([`Got`]),
//!   answering 200, a status or slowly ([`HookMode`]).
#![allow(dead_code)]

mod fleet;
mod hook;
mod http;
mod instances;
mod metrics;
mod ports;

// Each test file uses a part of the kit: the rest of these re-exports is unused there.
#[allow(unused_imports)]
pub use fleet::{Call, HookedFleet, Op};
#[allow(unused_imports)]
pub use hook::{Got, Hook, HookMode};
#[allow(unused_imports)]
pub use http::{
    get, http, http_request, parse_form, read_until_closed, request, send_raw, status_code,
    url_decode, Response, HTTP_TIMEOUT,
};
#[allow(unused_imports)]
pub use instances::{instance, InstanceBuilder};
#[allow(unused_imports)]
pub use metrics::{FakeMetrics, FetchCall};
#[allow(unused_imports)]
pub use ports::{free_port, listener_owned_by, wait_for_port};

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an emulator may take to start listening (its Python imports are slow on a loaded
/// 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

const INSTALL_HINT: &str = "run scripts/test.sh to install the emulators";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv/bin/<name>` of the repo-local virtualenv made by scripts/test.sh.
pub fn venv_bin(name: &str) -> PathBuf {
    repo_root().join(".venv").join("bin").join(name)
}

/// A child process serving on 127.0.0.1:`port`; stopped (TERM, then KILL) on drop.
pub struct Server {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Spawn `cmd` (stdout and stderr to a log file in a private temp dir, which is also its
    /// TMPDIR) and wait until `port` answers. Panics with the log when it exits or times out.
    pub fn spawn(name: &str, mut cmd: Command, port: u16, timeout: Duration) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("elasticrds-{name}-"))
            .tempdir()
            .expect("temp dir");
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let log2 = log.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .env("TMPDIR", dir.path())
            .current_dir(dir.path());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start {name} ({:?}): {e} — {INSTALL_HINT}",
                cmd.get_program()
            ),
        };
        let mut server = Server {
            name: name.to_string(),
            port,
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{name} exited ({status}) before listening on 127.0.0.1:{port} — {INSTALL_HINT}\n--- {name} log ---\n{}",
                    server.log()
                );
            }
            if wait_for_port(port, Duration::from_millis(300)) {
                let pid = server.child.as_ref().map(Child::id).unwrap_or(0);
                if listener_owned_by(pid, port) {
                    return server;
                }
                // Another process took the port between probing and binding: ours will fail
                // to bind. Give up on this port now so the caller can try another.
                panic!("{name}: 127.0.0.1:{port} answers, but not from the {name} we started (pid {pid}): the port was taken by another process");
            }
            if Instant::now() >= deadline {
                panic!(
                    "{name} did not listen on 127.0.0.1:{port} within {timeout:?} — {INSTALL_HINT}\n--- {name} log ---\n{}",
                    server.log()
                );
            }
        }
    }

    /// [`Server::spawn`] on a fresh free port, made by `command(port)`; up to three ports are
    /// tried, as a probed port can be taken by another test's server before ours binds it.
    pub fn start(name: &str, timeout: Duration, command: impl Fn(u16) -> Command) -> Server {
        let mut last = None;
        for _ in 0..3 {
            let port = free_port();
            let cmd = command(port);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Server::spawn(name, cmd, port, timeout)
            })) {
                Ok(server) => return server,
                Err(e) => last = Some(e),
            }
        }
        std::panic::resume_unwind(last.expect("at least one attempt"))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's private temp dir (its cwd and TMPDIR).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("server.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // Ask politely first so Python servers can clean up, then insist.
            let asked = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let grace = if asked {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

fn require(bin: &Path) {
    if !bin.exists() {
        panic!("{} is missing — {INSTALL_HINT}", bin.display());
    }
}

/// moto's standalone server (RDS and friends), on a random loopback port.
pub struct Moto {
    pub server: Server,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = venv_bin("moto_server");
        require(&bin);
        let server = Server::start("moto", START_TIMEOUT, |port| {
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            cmd
        });
        Moto { server }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Forget every resource (moto's `/moto-api/reset`).
    pub fn reset(&self) {
        http_request(self.port(), "POST", "/moto-api/reset").expect("moto reset");
    }

    /// A raw AWS query call to moto's EC2 (moto does not check signatures); the XML answer.
    pub fn ec2_query(&self, params: &str) -> String {
        http(
            self.port(),
            "POST",
            "/",
            &[
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
                ),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("{params}&Version=2016-11-15"),
        )
        .unwrap_or_else(|e| panic!("moto EC2 {params}: {e}"))
    }

    /// The subnets of moto's default VPC.
    pub fn default_subnet_ids(&self) -> Vec<String> {
        let xml = self.ec2_query("Action=DescribeSubnets");
        xml.split("<subnetId>")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::to_string)
            .collect()
    }

    /// moto's whole state as JSON (`/moto-api/data.json`).
    pub fn state(&self) -> serde_json::Value {
        let body = http_request(self.port(), "GET", "/moto-api/data.json").expect("moto state");
        serde_json::from_str(&body).expect("moto state is JSON")
    }
}

/// ministack with only CloudWatch enabled, on a random loopback port.
pub struct Ministack {
    pub server: Server,
}

impl Ministack {
    pub fn start() -> Ministack {
        let bin = venv_bin("ministack");
        require(&bin);
        let server = Server::start("ministack", START_TIMEOUT, |port| {
            let mut cmd = Command::new(&bin);
            cmd.env("BIND_HOST", "127.0.0.1")
                .env("IOT_MTLS_ENABLED", "0")
                .env("SFTP_ENABLED", "0")
                .env("SERVICES", "cloudwatch")
                .env("GATEWAY_PORT", port.to_string())
                .env("LOG_LEVEL", "WARNING");
            cmd
        });
        Ministack { server }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Forget every resource (`/_ministack/reset`).
    pub fn reset(&self) {
        http_request(self.port(), "POST", "/_ministack/reset").expect("ministack reset");
    }
}

/// Create DB subnet group `name` in moto from the default VPC's subnets (moto checks that a
/// restored instance's subnet group exists).
pub async fn create_subnet_group(moto: &Moto, rds: &aws_sdk_rds::Client, name: &str) {
    let subnets = moto.default_subnet_ids();
    assert!(!subnets.is_empty(), "moto has no default subnets");
    rds.create_db_subnet_group()
        .db_subnet_group_name(name)
        .db_subnet_group_description("test subnet group")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .expect("CreateDBSubnetGroup");
}

/// Find a binary on PATH or in the usual Debian places.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn system_bin(name: &str, package: &str) -> PathBuf {
    find_bin(name).unwrap_or_else(|| {
        panic!("{name} not found (Debian package {package}) — run scripts/test.sh to install it")
    })
}

pub fn haproxy_bin() -> PathBuf {
    system_bin("haproxy", "haproxy")
}

pub fn prometheus_bin() -> PathBuf {
    system_bin("prometheus", "prometheus")
}

pub fn promtool_bin() -> PathBuf {
    system_bin("promtool", "prometheus")
}

/// `promtool check metrics` on a `/metrics` body: fails the test when promtool fails;
/// returns what it printed (trimmed; empty when the exposition is clean).
pub fn promtool_check_metrics(body: &str) -> String {
    let mut child = Command::new(promtool_bin())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed: {printed}");
    printed.trim().to_string()
}

/// Variables that could point the SDK at a real account or another endpoint.
const AWS_VARS_TO_CLEAR: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_RDS",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
];

/// An empty file standing for the shared AWS `config` or `credentials` file: nothing of the
/// caller's ~/.aws is read, and the SDK has no missing file to warn about on every start.
/// One directory shared by every test process (each writes the same empty files).
pub fn empty_aws_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("elasticrds-test-aws");
    let path = dir.join(name);
    if !path.is_file() {
        std::fs::create_dir_all(&dir).expect("dir for the empty AWS files");
        std::fs::write(&path, "").expect("write an empty AWS file");
    }
    path
}

/// Put the AWS test environment on `cmd`: fake credentials, us-east-1, the given endpoint
/// overrides (RDS, CloudWatch), no profile, no shared config files, no instance metadata.
pub fn aws_env<'c>(
    cmd: &'c mut Command,
    rds_endpoint: Option<&str>,
    cloudwatch_endpoint: Option<&str>,
) -> &'c mut Command {
    for v in AWS_VARS_TO_CLEAR {
        cmd.env_remove(v);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", empty_aws_file("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", empty_aws_file("credentials"));
    if let Some(e) = rds_endpoint {
        cmd.env("AWS_ENDPOINT_URL_RDS", e);
    }
    if let Some(e) = cloudwatch_endpoint {
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", e);
    }
    cmd
}

/// The built `elasticrds` binary with the AWS test environment (RDS endpoint only) and no
/// ELASTICRDS_* variables from the caller.
pub fn elasticrds(rds_endpoint: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_elasticrds"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ELASTICRDS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    aws_env(&mut cmd, rds_endpoint, None);
    cmd
}

fn test_credentials() -> aws_sdk_rds::config::Credentials {
    aws_sdk_rds::config::Credentials::new("testing", "testing", None, None, "elasticrds-tests")
}

/// An RDS client pointed at `endpoint` (moto) with the test credentials, for test set-up.
pub fn rds_client(endpoint: &str) -> aws_sdk_rds::Client {
    let conf = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new("us-east-1"))
        .credentials_provider(test_credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_rds::Client::from_conf(conf)
}

/// Create DB instance `id` (db.t3.micro, `engine`) straight on moto, for test set-up; panics
/// with the error when moto refuses.
pub async fn create_db_instance(rds: &aws_sdk_rds::Client, id: &str, engine: &str) {
    if let Err(e) = rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine(engine)
        .master_username("admin")
        .master_user_password("password123")
        .allocated_storage(20)
        .send()
        .await
    {
        panic!("CreateDBInstance {id}: {e:?}");
    }
}

/// Create DB snapshot `snapshot` on moto, for test set-up: from a throwaway instance that is
/// deleted again, so that the fleet starts empty.
pub async fn create_snapshot(rds: &aws_sdk_rds::Client, snapshot: &str) {
    create_db_instance(rds, "seed-source", "mysql").await;
    rds.create_db_snapshot()
        .db_instance_identifier("seed-source")
        .db_snapshot_identifier(snapshot)
        .send()
        .await
        .expect("CreateDBSnapshot");
    rds.delete_db_instance()
        .db_instance_identifier("seed-source")
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("DeleteDBInstance seed-source");
}

/// A CloudWatch client pointed at `endpoint` (ministack) with the test credentials.
pub fn cloudwatch_client(endpoint: &str) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "elasticrds-tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Run the daemon's loop for `d` of tokio time, then stop it; the daemon back.
pub async fn run_for(
    mut daemon: elasticrds::service::daemon::Daemon,
    d: Duration,
) -> elasticrds::service::daemon::Daemon {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move {
        daemon.run(rx).await;
        daemon
    });
    tokio::time::sleep(d).await;
    tx.send(true).expect("the loop listens for the stop");
    h.await.expect("the loop ended")
}

/// A loopback listener that accepts and counts connections (and closes them at once): point an
/// endpoint at it to prove that a command made no call.
pub struct Tripwire {
    pub port: u16,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    pub fn new() -> Tripwire {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
        let port = l.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if s.is_ok() {
                    h.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Tripwire { port, hits }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Default for Tripwire {
    fn default() -> Self {
        Self::new()
    }
}

/// One AWS query-protocol call seen by a [`RecordingProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The `Action` parameter (`DescribeDBInstances`, `CreateDBInstanceReadReplica`, ...).
    pub action: String,
    /// Every form parameter, URL-decoded, in order.
    pub params: Vec<(String, String)>,
    /// When the proxy received it.
    pub at: std::time::Instant,
    /// The SDK's `amz-sdk-invocation-id`: the same on every attempt of one call, so a repeat
    /// with the same id is the SDK retrying (its answer was lost), not a second call.
    pub invocation: Option<String>,
}

impl RecordedCall {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// `DBInstanceIdentifier`, when the call has one.
    pub fn instance(&self) -> Option<&str> {
        self.param("DBInstanceIdentifier")
    }
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of an upstream loopback server (moto) that records
/// every request's form `Action` and parameters. One request per client connection (the proxy
/// answers with `Connection: close`), which the SDK's client handles transparently.
pub struct RecordingProxy {
    pub port: u16,
    calls: Arc<std::sync::Mutex<Vec<RecordedCall>>>,
}

impl RecordingProxy {
    pub fn new(upstream_port: u16) -> RecordingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("addr").port();
        let calls: Arc<std::sync::Mutex<Vec<RecordedCall>>> = Arc::default();
        let c = calls.clone();
        std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let c = c.clone();
                std::thread::spawn(move || {
                    let _ = proxy_one(stream, upstream_port, &c);
                });
            }
        });
        RecordingProxy { port, calls }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forget the calls recorded so far.
    pub fn clear(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The calls whose action does not start with `Describe` or `List` (i.e. that change state).
    pub fn mutations(&self) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| !c.action.starts_with("Describe") && !c.action.starts_with("List"))
            .collect()
    }
}

fn read_head(r: &mut impl std::io::BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn proxy_one(
    client: TcpStream,
    upstream_port: u16,
    calls: &std::sync::Mutex<Vec<RecordedCall>>,
) -> std::io::Result<()> {
    use std::io::{BufReader, Write};
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let params = parse_form(&String::from_utf8_lossy(&body));
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| head[0].clone());
    calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedCall {
            action,
            params,
            at: std::time::Instant::now(),
            invocation: header(&head, "amz-sdk-invocation-id").map(str::to_string),
        });

    let mut up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = String::new();
    req.push_str(&head[0]);
    req.push_str("\r\n");
    for l in head.iter().skip(1) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name != "connection" && name != "keep-alive" {
            req.push_str(l);
            req.push_str("\r\n");
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    // Make sure the client does not try to reuse this connection.
    let text_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head_text = String::from_utf8_lossy(&resp[..text_end]).into_owned();
    let mut out = String::new();
    for (i, l) in head_text.split("\r\n").enumerate() {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if i > 0 && (name == "connection" || name == "keep-alive") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n");
    let mut client = client;
    client.write_all(out.as_bytes())?;
    client.write_all(resp.get(text_end + 2..).unwrap_or_default())?;
    client.flush()?;
    Ok(())
}
