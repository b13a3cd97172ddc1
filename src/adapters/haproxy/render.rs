//! HAProxy config generation for `elasticrds haproxy render`: a `listen` section in mode tcp
//! with `balance leastconn` (a dynamic algorithm, so servers can be added at runtime), the
//! health check that fits the engine, the available replicas as servers and the master as
//! `backup`, and a `level admin` stats socket for the runtime API. Also the in-place update of
//! the generated server block in an existing file, which keeps the file in step with runtime
//! changes (they are lost when HAProxy reloads otherwise). Pure text functions plus one
//! atomic file rewrite.

use crate::core::config::{ClusterSpec, HaproxySpec, OnUnreachable};
use crate::core::domain::{Endpoint, Instance, InstanceId};
use crate::core::plan::ClusterView;
use std::path::Path;
use std::time::Duration;

/// First and last line of the generated server block. Everything between them is rewritten
/// by elasticrds; everything else in the file is left as it is.
pub const BLOCK_BEGIN: &str =
    "# elasticrds:servers begin (generated; elasticrds rewrites the lines up to the end marker)";
pub const BLOCK_END: &str = "# elasticrds:servers end";

/// The placeholder a `--template` file must contain, on a line of its own.
pub const SERVERS_PLACEHOLDER: &str = "{{servers}}";

/// Health-check options of every server line (static or added at runtime).
pub const CHECK_OPTS: &str = "check inter 10s fall 2";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("template has no {SERVERS_PLACEHOLDER} placeholder line")]
    NoPlaceholder,
    #[error("{0}: no `{BLOCK_BEGIN}` ... `{BLOCK_END}` block to update (render the file with `elasticrds haproxy render` first)")]
    NoBlock(String),
    #[error("{0}")]
    Io(String),
}

fn invalid(field: &str, message: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Everything a render needs besides the cluster and its observed view.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Where clients connect (`host:port`). Default: 127.0.0.1 and the engine's port.
    pub bind: Option<String>,
    /// Template text with a `{{servers}}` line; `None`: the built-in config.
    pub template: Option<String>,
}

/// The runtime settings used when the cluster has no `haproxy` section: backend named after
/// the cluster, Debian's admin socket path.
pub fn effective_spec(spec: &ClusterSpec) -> HaproxySpec {
    spec.haproxy.clone().unwrap_or_else(|| HaproxySpec {
        socket: "/run/haproxy/admin.sock".into(),
        backend: spec.name.to_string(),
        drain_timeout: Duration::from_secs(300),
        config_file: None,
        check_user: None,
        on_unreachable: OnUnreachable::Wait,
        max_lag: Duration::from_secs(30),
    })
}

/// Which health check the engine gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Mysql,
    Postgres,
    /// TCP connect only.
    Tcp,
}

impl CheckKind {
    pub fn for_engine(engine: &str) -> CheckKind {
        let e = engine.to_ascii_lowercase();
        if e == "mysql" || e == "mariadb" || e.starts_with("aurora-mysql") || e == "aurora" {
            CheckKind::Mysql
        } else if e == "postgres" || e.starts_with("aurora-postgresql") {
            CheckKind::Postgres
        } else {
            CheckKind::Tcp
        }
    }
    fn default_port(self) -> u16 {
        match self {
            CheckKind::Postgres => 5432,
            _ => 3306,
        }
    }
}

/// The `option ...` lines of the health check (with a comment when it has to fall back).
pub fn health_check_lines(kind: CheckKind, check_user: Option<&str>) -> Vec<String> {
    match (kind, check_user) {
        (CheckKind::Mysql, Some(u)) => vec![format!("option mysql-check user {u} post-41")],
        (CheckKind::Mysql, None) => vec![
            "# no haproxy.check_user configured: the check only reads the server greeting".into(),
            "option mysql-check".into(),
        ],
        (CheckKind::Postgres, Some(u)) => vec![format!("option pgsql-check user {u}")],
        (CheckKind::Postgres, None) => vec![
            "# pgsql-check needs haproxy.check_user: TCP connect check only".into(),
            "option tcp-check".into(),
        ],
        (CheckKind::Tcp, _) => vec![
            "# engine without a protocol check here: TCP connect check only".into(),
            "option tcp-check".into(),
        ],
    }
}

/// HAProxy's server name for an instance: the identifier in lower case (RDS compares
/// identifiers case-insensitively and reports them in lower case).
pub fn server_name(id: &InstanceId) -> String {
    id.as_str().to_ascii_lowercase()
}

fn check_token(field: &str, v: &str) -> Result<(), RenderError> {
    if v.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(invalid(
            field,
            format!("{v:?} contains spaces, control characters or '#'"),
        ));
    }
    Ok(())
}

/// `address:port` for a server line, refusing anything that is not a host name or IP address.
pub fn endpoint_addr(id: &InstanceId, ep: &Endpoint) -> Result<String, RenderError> {
    let ok = !ep.address.is_empty()
        && ep
            .address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !ok {
        return Err(invalid(
            &format!("{id}.endpoint"),
            format!("{:?} is not a host name or IP address", ep.address),
        ));
    }
    Ok(format!("{}:{}", ep.address, ep.port))
}

/// One `server` line (without indentation).
pub fn server_line(name: &str, addr: &str, backup: bool) -> String {
    let mut s = format!("server {name} {addr} {CHECK_OPTS}");
    if backup {
        s.push_str(" backup");
    }
    s
}

/// The server lines of the view: available configured replicas with an endpoint, in config
/// order, then the master as `backup`.
pub fn server_lines(view: &ClusterView) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::new();
    for r in view.existing_replicas() {
        if let (true, Some(ep)) = (r.status.is_available(), &r.endpoint) {
            out.push(server_line(
                &server_name(&r.id),
                &endpoint_addr(&r.id, ep)?,
                false,
            ));
        }
    }
    if let Some(m) = &view.master {
        if let Some(ep) = &m.endpoint {
            out.push(server_line(
                &server_name(&m.id),
                &endpoint_addr(&m.id, ep)?,
                true,
            ));
        }
    }
    Ok(out)
}

/// The marker-wrapped server block, each line prefixed with `indent`.
pub fn server_block(lines: &[String], indent: &str) -> String {
    let mut s = format!("{indent}{BLOCK_BEGIN}\n");
    for l in lines {
        s.push_str(&format!("{indent}{l}\n"));
    }
    s.push_str(&format!("{indent}{BLOCK_END}\n"));
    s
}

/// The `stats socket` line for the runtime API address of the spec: a unix path, or
/// `host:port` (TCP).
pub fn stats_socket_line(socket: &str) -> Result<String, RenderError> {
    check_token("haproxy.socket", socket)?;
    Ok(match super::RuntimeAddr::parse(socket) {
        super::RuntimeAddr::Unix(p) => {
            format!("stats socket {} mode 600 level admin", p.display())
        }
        super::RuntimeAddr::Tcp(hp) => format!("stats socket ipv4@{hp} level admin"),
    })
}

fn engine_of(view: &ClusterView) -> Option<&str> {
    view.master.as_ref().map(|m| &*m.engine).or_else(|| {
        view.existing_replicas()
            .next()
            .map(|i: &Instance| &*i.engine)
    })
}

/// Render the whole config for `spec` as observed in `view`.
pub fn render(
    spec: &ClusterSpec,
    view: &ClusterView,
    opts: &RenderOptions,
) -> Result<String, RenderError> {
    let h = effective_spec(spec);
    check_token("haproxy.backend", &h.backend)?;
    if let Some(u) = &h.check_user {
        check_token("haproxy.check_user", u)?;
    }
    let kind = CheckKind::for_engine(engine_of(view).unwrap_or(""));
    let bind = match &opts.bind {
        Some(b) => {
            check_token("--bind", b)?;
            b.clone()
        }
        None => format!("127.0.0.1:{}", kind.default_port()),
    };
    let stats = stats_socket_line(&h.socket)?;
    let checks = health_check_lines(kind, h.check_user.as_deref());
    let servers = server_lines(view)?;

    if let Some(t) = &opts.template {
        return render_template(t, &servers, &h.backend, &stats, &bind, &checks);
    }

    let mut s = String::new();
    s.push_str(&format!(
        "# Generated by `elasticrds haproxy render {}`.\n# Servers between the elasticrds markers are kept in step with the runtime API by elasticrds.\n",
        spec.name
    ));
    s.push_str("global\n    maxconn 4000\n");
    s.push_str(&format!("    {stats}\n    stats timeout 30s\n\n"));
    s.push_str(
        "defaults\n    mode tcp\n    retries 3\n    timeout connect 10s\n    timeout client 30m\n    timeout server 30m\n    timeout check 5s\n\n",
    );
    s.push_str(&format!("listen {}\n", h.backend));
    s.push_str(&format!(
        "    bind {bind}\n    mode tcp\n    balance leastconn\n"
    ));
    for c in &checks {
        s.push_str(&format!("    {c}\n"));
    }
    // Static servers given by host name start even when the name does not resolve yet.
    s.push_str("    default-server init-addr last,libc,none\n");
    s.push_str(&server_block(&servers, "    "));
    Ok(s)
}

fn render_template(
    template: &str,
    servers: &[String],
    backend: &str,
    stats: &str,
    bind: &str,
    checks: &[String],
) -> Result<String, RenderError> {
    let mut out = String::new();
    let mut found = false;
    for line in template.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if body.trim() == SERVERS_PLACEHOLDER {
            let indent = &body[..body.len() - body.trim_start().len()];
            out.push_str(&server_block(servers, indent));
            found = true;
            continue;
        }
        if body.contains(SERVERS_PLACEHOLDER) {
            return Err(invalid(
                "template",
                format!("{SERVERS_PLACEHOLDER} must be alone on its line"),
            ));
        }
        let replaced = if body.trim() == "{{health_check}}" {
            let indent = &body[..body.len() - body.trim_start().len()];
            let mut s = String::new();
            for c in checks {
                s.push_str(&format!("{indent}{c}\n"));
            }
            s
        } else {
            line.replace("{{backend}}", backend)
                .replace("{{stats_socket}}", stats)
                .replace("{{bind}}", bind)
        };
        out.push_str(&replaced);
    }
    if !found {
        return Err(RenderError::NoPlaceholder);
    }
    Ok(out)
}

/// A change to the generated server block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockEdit {
    /// Add (or replace) the server `name` with this line (without indentation).
    Upsert {
        name: String,
        line: String,
    },
    Remove {
        name: String,
    },
}

fn line_server_name(line: &str) -> Option<&str> {
    let mut it = line.split_whitespace();
    (it.next() == Some("server")).then(|| it.next()).flatten()
}

/// Apply `edit` to the block of `text`. `Ok(None)` when nothing changes.
pub fn edit_block(text: &str, edit: &BlockEdit, file: &str) -> Result<Option<String>, RenderError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let begin = lines.iter().position(|l| l.trim() == BLOCK_BEGIN);
    let end = begin.and_then(|b| {
        lines[b..]
            .iter()
            .position(|l| l.trim() == BLOCK_END)
            .map(|e| b + e)
    });
    let (Some(begin), Some(end)) = (begin, end) else {
        return Err(RenderError::NoBlock(file.to_string()));
    };
    let indent = {
        let l = lines[begin].trim_end_matches(['\n', '\r']);
        l[..l.len() - l.trim_start().len()].to_string()
    };
    let mut block: Vec<String> = lines[begin + 1..end]
        .iter()
        .map(|l| l.trim_end_matches(['\n', '\r']).to_string())
        .collect();
    let before = block.clone();
    match edit {
        BlockEdit::Remove { name } => {
            block.retain(|l| line_server_name(l) != Some(name.as_str()));
        }
        BlockEdit::Upsert { name, line } => {
            let new = format!("{indent}{line}");
            if let Some(i) = block
                .iter()
                .position(|l| line_server_name(l) == Some(name.as_str()))
            {
                block[i] = new;
            } else {
                // before the backup server(s), so the block reads replicas first
                let at = block
                    .iter()
                    .position(|l| l.split_whitespace().any(|w| w == "backup"))
                    .unwrap_or(block.len());
                block.insert(at, new);
            }
        }
    }
    if block == before {
        return Ok(None);
    }
    let mut out: String = lines[..=begin].concat();
    for l in &block {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&lines[end..].concat());
    Ok(Some(out))
}

/// Apply `edit` to the server block of the file at `path`, atomically (write a temporary file
/// next to it, then rename). Returns whether the file changed.
pub fn edit_file(path: &Path, edit: &BlockEdit) -> Result<bool, RenderError> {
    let shown = path.display().to_string();
    let text = crate::input_file::read_text(path, crate::input_file::MAX_CONFIG_BYTES)
        .map_err(|e| RenderError::Io(e.to_string()))?;
    let Some(new) = edit_block(&text, edit, &shown)? else {
        return Ok(false);
    };
    write_atomic(path, &new)?;
    Ok(true)
}

/// Write `text` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), RenderError> {
    let shown = path.display().to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".elasticrds-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .map_err(|e| RenderError::Io(format!("{}: cannot write: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RenderError::Io(format!("{shown}: cannot replace: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_map_to_checks() {
        assert_eq!(CheckKind::for_engine("mysql"), CheckKind::Mysql);
        assert_eq!(CheckKind::for_engine("aurora-mysql"), CheckKind::Mysql);
        assert_eq!(CheckKind::for_engine("mariadb"), CheckKind::Mysql);
        assert_eq!(CheckKind::for_engine("postgres"), CheckKind::Postgres);
        assert_eq!(
            CheckKind::for_engine("aurora-postgresql"),
            CheckKind::Postgres
        );
        assert_eq!(CheckKind::for_engine("oracle-ee"), CheckKind::Tcp);
        assert_eq!(
            health_check_lines(CheckKind::Postgres, Some("chk")),
            vec!["option pgsql-check user chk".to_string()]
        );
        assert_eq!(
            health_check_lines(CheckKind::Mysql, Some("chk")),
            vec!["option mysql-check user chk post-41".to_string()]
        );
    }

    const FILE: &str = "global\n    stats socket /s level admin\nlisten r\n    balance leastconn\n    # elasticrds:servers begin (generated; elasticrds rewrites the lines up to the end marker)\n    server a 10.0.0.1:3306 check inter 10s fall 2\n    server m 10.0.0.9:3306 check inter 10s fall 2 backup\n    # elasticrds:servers end\n    # user tail\n";

    #[test]
    fn block_upsert_goes_before_backup_and_is_idempotent() {
        let e = BlockEdit::Upsert {
            name: "b".into(),
            line: server_line("b", "10.0.0.2:3306", false),
        };
        let out = edit_block(FILE, &e, "f").unwrap().unwrap();
        let servers: Vec<&str> = out
            .lines()
            .filter_map(|l| line_server_name(l.trim()))
            .collect();
        assert_eq!(servers, ["a", "b", "m"]);
        assert!(out.ends_with("    # elasticrds:servers end\n    # user tail\n"));
        assert!(out.contains("    server b 10.0.0.2:3306 check inter 10s fall 2\n"));
        assert_eq!(edit_block(&out, &e, "f").unwrap(), None);
    }

    #[test]
    fn block_remove_only_touches_the_named_server() {
        let e = BlockEdit::Remove { name: "a".into() };
        let out = edit_block(FILE, &e, "f").unwrap().unwrap();
        assert_eq!(
            out,
            FILE.replace("    server a 10.0.0.1:3306 check inter 10s fall 2\n", "")
        );
        assert_eq!(edit_block(&out, &e, "f").unwrap(), None);
    }

    #[test]
    fn file_without_block_is_refused() {
        let e = BlockEdit::Remove { name: "a".into() };
        assert!(matches!(
            edit_block("global\n", &e, "f"),
            Err(RenderError::NoBlock(_))
        ));
    }

    #[test]
    fn template_placeholder_keeps_indentation() {
        let out = render_template(
            "listen {{backend}}\n  {{health_check}}\n  {{servers}}\n",
            &["server a 1.2.3.4:5 check".into()],
            "be",
            "stats socket /s level admin",
            "127.0.0.1:1",
            &["option tcp-check".into()],
        )
        .unwrap();
        assert_eq!(
            out,
            format!("listen be\n  option tcp-check\n  {BLOCK_BEGIN}\n  server a 1.2.3.4:5 check\n  {BLOCK_END}\n")
        );
        assert_eq!(
            render_template("listen x\n", &[], "", "", "", &[]),
            Err(RenderError::NoPlaceholder)
        );
    }

    #[test]
    fn hostile_endpoints_are_refused() {
        let id = InstanceId::from_aws("r1");
        let ep = Endpoint {
            address: "evil\n    stats socket /x".into(),
            port: 1,
        };
        assert!(endpoint_addr(&id, &ep).is_err());
    }
}
