//! HAProxy adapter: a client of HAProxy's runtime API (the `stats socket ... level admin`, a unix
//! socket path or `host:port` over TCP) implementing [`TrafficRouter`], and the config
//! generation in [`render`].
//!
//! One command per connection (HAProxy answers and closes in non-interactive mode). Answers
//! are parsed: `show stat <backend> 4 -1` CSV (columns found by header name) for sessions and
//! state, HAProxy's messages for errors. HAProxy unreachable (no socket, refused, timeout) is
//! [`ErrorKind::Transient`]; a backend that does not exist or a socket without `level admin`
//! is [`ErrorKind::Fatal`]; an unknown server is [`ErrorKind::NotFound`].
//!
//! HAProxy 2.6 rules followed here: a server added at runtime starts in maint with checks off
//! (so `add` also sends `enable health` and `set server ... state ready`); dynamic servers get
//! no DNS resolution (so `add` resolves a host name itself and gives HAProxy the address); only
//! servers in maint with no connection attached can be deleted (so `remove` sets maint, and ends
//! remaining sessions with `shutdown sessions server` only when `del server` still refuses).
//! When a config file is set, each runtime change is also written into its generated server
//! block, so a reload keeps the same servers.

pub mod render;

use crate::core::config::HaproxySpec;
use crate::core::domain::{Instance, InstanceId};
use crate::core::input::csv_rows::{for_each_row, CsvRow};
use crate::ports::{ErrorKind, PortError, RouteState, TrafficRouter};
use async_trait::async_trait;
use render::{server_line, server_name, BlockEdit};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeAddr {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl RuntimeAddr {
    /// `/path`, `./path`, `unix@/path` → unix socket; `host:port` or `ipv4@host:port` → TCP.
    pub fn parse(s: &str) -> RuntimeAddr {
        if let Some(p) = s.strip_prefix("unix@") {
            return RuntimeAddr::Unix(PathBuf::from(p));
        }
        let tcp = s.strip_prefix("ipv4@").or_else(|| s.strip_prefix("tcp@"));
        if let Some(hp) = tcp {
            return RuntimeAddr::Tcp(hp.to_string());
        }
        let looks_tcp = !s.contains('/')
            && s.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if looks_tcp {
            RuntimeAddr::Tcp(s.to_string())
        } else {
            RuntimeAddr::Unix(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeAddr::Unix(p) => write!(f, "{}", p.display()),
            RuntimeAddr::Tcp(hp) => f.write_str(hp),
        }
    }
}

/// One server row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStat {
    pub name: String,
    /// HAProxy's status column: `UP`, `UP 1/2`, `DOWN`, `DRAIN`, `MAINT`, `MAINT (resolution)`,
    /// `no check`, ...
    pub status: String,
    /// Current sessions (`scur`).
    pub current_sessions: u64,
    pub addr: String,
    pub backup: bool,
}

impl ServerStat {
    /// Whether HAProxy sends new connections to it now.
    pub fn accepting(&self) -> bool {
        self.status.starts_with("UP") || self.status == "no check"
    }
}

/// Parse `show stat` CSV (read by the `csv` crate): the `# pxname,svname,...` header names the
/// columns; returns the server rows of `backend` (not its FRONTEND/BACKEND summary rows).
pub fn parse_show_stat(text: &str, backend: &str) -> Result<Vec<ServerStat>, String> {
    let mut cols: Option<StatColumns> = None;
    let mut out = Vec::new();
    let mut failed = None;
    for_each_row("show stat", text, None, |row| {
        let step = if let Some(c) = &cols {
            c.server(row, backend).map(|s| out.extend(s))
        } else {
            StatColumns::from_header(row, text).map(|c| cols = Some(c))
        };
        step.map_or_else(
            |e| {
                failed = Some(e);
                ControlFlow::Break(())
            },
            ControlFlow::Continue,
        )
    })
    .map_err(|e| e.to_string())?;
    match (failed, cols) {
        (Some(e), _) => Err(e),
        (None, None) => Err(format!("unexpected answer: {:?}", first_line(text))),
        (None, Some(_)) => Ok(out),
    }
}

/// Where the columns `show stat` is read for are, by header name.
struct StatColumns {
    px: usize,
    sv: usize,
    scur: usize,
    status: usize,
    addr: usize,
    bck: usize,
}

impl StatColumns {
    fn from_header(row: &CsvRow, text: &str) -> Result<StatColumns, String> {
        let first = row.field(0).strip_prefix("# ");
        let first = first.ok_or_else(|| format!("unexpected answer: {:?}", first_line(text)))?;
        let names: Vec<&str> = std::iter::once(first).chain(row.fields().skip(1)).collect();
        let col = |name: &str| {
            names
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| format!("show stat has no {name} column"))
        };
        Ok(StatColumns {
            px: col("pxname")?,
            sv: col("svname")?,
            scur: col("scur")?,
            status: col("status")?,
            addr: col("addr")?,
            bck: col("bck")?,
        })
    }

    /// The server on this row, when it is one of `backend`'s.
    fn server(&self, row: &CsvRow, backend: &str) -> Result<Option<ServerStat>, String> {
        let get = |i: usize| row.field(i);
        if get(self.px) != backend || matches!(get(self.sv), "FRONTEND" | "BACKEND" | "") {
            return Ok(None);
        }
        let (name, sessions) = (get(self.sv), get(self.scur));
        let current_sessions = if sessions.is_empty() {
            0
        } else {
            sessions
                .parse()
                .map_err(|_| format!("scur {sessions:?} of {name} is not a number"))?
        };
        Ok(Some(ServerStat {
            name: name.to_string(),
            status: get(self.status).to_string(),
            current_sessions,
            addr: get(self.addr).to_string(),
            backup: get(self.bck) == "1",
        }))
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Map an error answer of HAProxy to a typed error (`None`: the answer is not an error).
fn answer_error(operation: &str, answer: &str) -> Option<PortError> {
    let msg = first_line(answer);
    let kind = if msg.is_empty()
        || msg.starts_with("New server registered")
        || msg.starts_with("Server deleted")
    {
        return None;
    } else if msg.starts_with("No such server") {
        ErrorKind::NotFound
    } else if msg.starts_with("Already exists a server") {
        ErrorKind::AlreadyExists
    } else if msg.starts_with("Only servers in maintenance")
        || msg.contains("still has connections")
        || msg.contains("connections attached")
    {
        ErrorKind::Transient
    } else {
        // No such proxy/backend, Permission denied (socket not `level admin`), Unknown command,
        // syntax errors: a configuration problem, not worth retrying blindly.
        ErrorKind::Fatal
    };
    Some(PortError::new(kind, operation, msg))
}

/// A client of one backend over HAProxy's runtime API.
#[derive(Debug, Clone)]
pub struct HaproxyRuntime {
    addr: RuntimeAddr,
    backend: String,
    config_file: Option<PathBuf>,
    io_timeout: Duration,
    /// How long `remove` retries `del server` before ending remaining sessions.
    settle: Duration,
}

impl HaproxyRuntime {
    /// `socket`: a unix socket path or `host:port`.
    pub fn new(socket: &str, backend: &str) -> Self {
        HaproxyRuntime {
            addr: RuntimeAddr::parse(socket),
            backend: backend.to_string(),
            config_file: None,
            io_timeout: Duration::from_secs(5),
            settle: Duration::from_secs(2),
        }
    }

    /// From a cluster's `haproxy` section (socket, backend, config file).
    pub fn from_spec(spec: &HaproxySpec) -> Self {
        let mut r = Self::new(&spec.socket, &spec.backend);
        r.config_file = spec.config_file.as_ref().map(PathBuf::from);
        r
    }

    /// The runtime API of every cluster in `specs` that has a `haproxy` section, for the tick
    /// (built at the edge: the CLI and the service call this).
    pub fn routers_for<'a>(
        specs: impl IntoIterator<Item = &'a crate::core::config::ClusterSpec>,
    ) -> crate::ports::Routers {
        let mut routers = crate::ports::Routers::default();
        for spec in specs {
            if let Some(h) = &spec.haproxy {
                routers.insert(&spec.name, std::sync::Arc::new(Self::from_spec(h)));
            }
        }
        routers
    }

    /// Keep this file's generated server block in step with runtime changes.
    pub fn with_config_file(mut self, path: Option<PathBuf>) -> Self {
        self.config_file = path;
        self
    }

    /// Bound on connecting to, writing to and reading from the socket, per command.
    pub fn with_io_timeout(mut self, d: Duration) -> Self {
        self.io_timeout = d;
        self
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    pub fn addr(&self) -> &RuntimeAddr {
        &self.addr
    }

    fn unreachable(&self, operation: &str, e: impl std::fmt::Display) -> PortError {
        PortError::new(
            ErrorKind::Transient,
            operation,
            format!("HAProxy runtime API at {} unreachable: {e}", self.addr),
        )
    }

    /// Send one command on a fresh connection and return HAProxy's whole answer.
    pub async fn command(&self, cmd: &str) -> Result<String, PortError> {
        if cmd.contains(['\n', '\r', ';']) {
            return Err(PortError::new(
                ErrorKind::Fatal,
                cmd,
                "a runtime API command must be one line without ';'",
            ));
        }
        let op = cmd.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let fut = async {
            match &self.addr {
                RuntimeAddr::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    exchange(s, cmd).await
                }
                RuntimeAddr::Tcp(hp) => {
                    let s = tokio::net::TcpStream::connect(hp.as_str()).await?;
                    exchange(s, cmd).await
                }
            }
        };
        match tokio::time::timeout(self.io_timeout, fut).await {
            Err(_) => Err(self.unreachable(&op, format!("no answer within {:?}", self.io_timeout))),
            Ok(Err(e)) => Err(self.unreachable(&op, e)),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Send a command whose answer is either empty/confirmation or an error message.
    async fn action(&self, cmd: &str) -> Result<(), PortError> {
        let answer = self.command(cmd).await?;
        let op = cmd.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        match answer_error(&op, &answer) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every server of the backend (`show stat <backend> 4 -1`).
    pub async fn servers(&self) -> Result<Vec<ServerStat>, PortError> {
        let cmd = format!("show stat {} 4 -1", self.backend);
        let answer = self.command(&cmd).await?;
        if !answer.trim_start().starts_with('#') {
            return Err(answer_error("show stat", &answer).unwrap_or_else(|| {
                PortError::new(
                    ErrorKind::Fatal,
                    "show stat",
                    format!("unexpected answer: {:?}", first_line(&answer)),
                )
            }));
        }
        let servers = parse_show_stat(&answer, &self.backend)
            .map_err(|m| PortError::new(ErrorKind::Fatal, "show stat", m))?;
        Ok(servers)
    }

    /// One server by name.
    pub async fn server(&self, name: &str) -> Result<Option<ServerStat>, PortError> {
        Ok(self.servers().await?.into_iter().find(|s| s.name == name))
    }

    /// End every session still attached to the server.
    pub async fn shutdown_sessions(&self, id: &InstanceId) -> Result<(), PortError> {
        self.action(&format!(
            "shutdown sessions server {}/{}",
            self.backend,
            server_name(id)
        ))
        .await
    }

    fn edit_file(&self, op: &str, edit: &BlockEdit) -> Result<(), PortError> {
        if let Some(path) = &self.config_file {
            render::edit_file(path, edit).map_err(|e| {
                PortError::new(
                    ErrorKind::Fatal,
                    op,
                    format!("runtime change made, but the config file was not updated: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

impl HaproxyRuntime {
    /// The server is out of HAProxy: a config file that cannot be updated must not hold the
    /// replica's delete, so the failure is logged, not returned.
    fn edit_file_after_remove(&self, name: &str) {
        let edit = BlockEdit::Remove {
            name: name.to_string(),
        };
        if let Err(e) = self.edit_file("del server", &edit) {
            tracing::error!(server = name, error = %e, "HAProxy config file not kept in step");
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmd: &str,
) -> std::io::Result<String> {
    s.write_all(format!("{cmd}\n").as_bytes()).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Resolve a host name to one address HAProxy can use (dynamic servers get no DNS).
async fn resolve(host: &str, port: u16) -> Result<String, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
        .ok_or_else(|| format!("{host} resolves to no address"))
}

#[async_trait]
impl TrafficRouter for HaproxyRuntime {
    async fn add(&self, replica: &Instance) -> Result<(), PortError> {
        let op = "add server";
        let ep = replica.endpoint.as_ref().ok_or_else(|| {
            PortError::new(
                ErrorKind::Fatal,
                op,
                format!("{} has no endpoint yet", replica.id),
            )
        })?;
        let file_addr = render::endpoint_addr(&replica.id, ep)
            .map_err(|e| PortError::new(ErrorKind::Fatal, op, e.to_string()))?;
        let ip = resolve(&ep.address, ep.port)
            .await
            .map_err(|m| PortError::new(ErrorKind::Transient, op, m))?;
        let name = server_name(&replica.id);
        let target = format!("{}/{name}", self.backend);
        let runtime_addr = if ip.contains(':') {
            format!("ipv6@{ip}:{}", ep.port)
        } else {
            format!("{ip}:{}", ep.port)
        };
        match self
            .action(&format!(
                "add server {target} {runtime_addr} {}",
                render::CHECK_OPTS
            ))
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.action(&format!("enable health {target}")).await?;
        self.action(&format!("set server {target} state ready"))
            .await?;
        self.edit_file(
            op,
            &BlockEdit::Upsert {
                line: server_line(&name, &file_addr, false),
                name,
            },
        )
    }

    async fn drain(&self, id: &InstanceId) -> Result<(), PortError> {
        self.action(&format!(
            "set server {}/{} state drain",
            self.backend,
            server_name(id)
        ))
        .await
    }

    async fn state(&self, id: &InstanceId) -> Result<Option<RouteState>, PortError> {
        Ok(self.server(&server_name(id)).await?.map(|s| RouteState {
            accepting: s.accepting(),
            current_sessions: s.current_sessions,
        }))
    }

    async fn remove(&self, id: &InstanceId) -> Result<(), PortError> {
        let name = server_name(id);
        let target = format!("{}/{name}", self.backend);
        match self
            .action(&format!("set server {target} state maint"))
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                self.edit_file_after_remove(&name);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        // Sessions end on their own after maint only if none were left; the caller calls
        // `remove` once the sessions reached 0 or the drain timed out, so whatever is still
        // attached after a short settle is ended.
        let step = Duration::from_millis(100);
        let tries = (self.settle.as_millis() / step.as_millis()).max(1) as usize;
        let mut shut = false;
        let mut last = None;
        for i in 0..tries * 2 {
            match self.action(&format!("del server {target}")).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    last = None;
                    break;
                }
                Err(e) if e.kind == ErrorKind::Transient && e.operation == "del server" => {
                    last = Some(e);
                    if i + 1 >= tries && !shut {
                        self.action(&format!("shutdown sessions server {target}"))
                            .await?;
                        shut = true;
                    }
                    tokio::time::sleep(step).await;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        self.edit_file_after_remove(&name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            RuntimeAddr::parse("/run/haproxy/admin.sock"),
            RuntimeAddr::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            RuntimeAddr::parse("127.0.0.1:9999"),
            RuntimeAddr::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            RuntimeAddr::parse("ipv4@127.0.0.1:9999"),
            RuntimeAddr::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            RuntimeAddr::parse("admin.sock"),
            RuntimeAddr::Unix("admin.sock".into())
        );
        assert_eq!(
            RuntimeAddr::parse("unix@/x:1"),
            RuntimeAddr::Unix("/x:1".into())
        );
    }

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo\n\
replicas,r1,0,0,3,3,,3,0,0,,0,,0,0,0,0,DRAIN 1/2,1,1,0,0,1,1,1,,1,2,1,,0,,2,0,,0,,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:4000,,tcp,\n\
replicas,m1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1,0,1,0,0,1,0,,1,2,2,,0,,2,0,,0,INI,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,Initializing,,2,2,2,,,,127.0.0.1:3306,,tcp,\n\
other,x,0,0,9,0,,0,0,0,,0,,0,0,0,0,UP,1,0,1,0,0,1,0,,1,2,2,,0,,2,0,,0,INI,,,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,Initializing,,2,2,2,,,,127.0.0.1:1,,tcp,\n\n";

    #[test]
    fn show_stat_is_parsed_by_column_name() {
        let s = parse_show_stat(STAT, "replicas").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "r1");
        assert_eq!(s[0].current_sessions, 3);
        assert_eq!(s[0].status, "DRAIN 1/2");
        assert!(!s[0].accepting());
        assert!(!s[0].backup);
        assert_eq!(s[1].addr, "127.0.0.1:3306");
        assert!(s[1].accepting());
        assert!(s[1].backup);
        assert!(parse_show_stat("No such proxy.\n", "replicas").is_err());
        assert!(parse_show_stat("# pxname,svname\nreplicas,a\n", "replicas").is_err());
        // A quoted field holding a comma is one field (the columns after it stay in place).
        let quoted = "# pxname,svname,scur,status,check_desc,addr,bck\r\nreplicas,r1,2,UP,\"L4 ok, 1ms\",127.0.0.1:1,0\r\n";
        let s = parse_show_stat(quoted, "replicas").unwrap();
        assert_eq!(
            (s[0].addr.as_str(), s[0].current_sessions),
            ("127.0.0.1:1", 2)
        );
    }

    #[test]
    fn answers_map_to_error_kinds() {
        assert_eq!(answer_error("x", "\n"), None);
        assert_eq!(answer_error("x", "New server registered.\n\n"), None);
        assert_eq!(answer_error("x", "Server deleted.\n"), None);
        let k = |a: &str| answer_error("x", a).map(|e| e.kind);
        assert_eq!(k("No such server.\n"), Some(ErrorKind::NotFound));
        assert_eq!(
            k("Already exists a server with the same name in backend.\n"),
            Some(ErrorKind::AlreadyExists)
        );
        assert_eq!(
            k("Only servers in maintenance mode can be deleted.\n"),
            Some(ErrorKind::Transient)
        );
        assert_eq!(k("No such proxy.\n"), Some(ErrorKind::Fatal));
        assert_eq!(k("Permission denied\n"), Some(ErrorKind::Fatal));
    }

    #[tokio::test]
    async fn missing_socket_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let r = HaproxyRuntime::new(dir.path().join("none.sock").to_str().unwrap(), "b");
        let e = r.state(&InstanceId::from_aws("r1")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    }
}
