//! A loopback HTTP fault-injecting proxy between the AWS SDK and an emulator (moto for RDS,
//! ministack for CloudWatch). It forwards each request to its upstream and, per a rule set the
//! test changes at run time, answers instead with a throttling error, a 500/503, a connection
//! reset, a stall past the SDK's timeouts, or a truncated response; or holds a request until the
//! test kills the caller (the crash tests).
//!
//! It also keeps the ledger the fault tests judge by: every request with its operation, the
//! instance identifiers it names, the SDK invocation id, what was injected, whether it reached
//! the upstream and whether its answer reached the caller. A `CreateDBInstanceReadReplica` for an
//! identifier that already exists is answered `DBInstanceAlreadyExists` (as RDS does; moto would
//! silently overwrite the replica) and counted as a duplicate unless it is the SDK's own retry of
//! the very invocation that created it (same `amz-sdk-invocation-id`, whose answer was lost).
//!
//! One request per connection: the proxy answers with `Connection: close`.

use crate::support::parse_form;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Which kind of upstream the proxy stands in front of (decides the error body format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rds,
    CloudWatch,
}

impl Service {
    pub fn label(self) -> &'static str {
        match self {
            Service::Rds => "rds",
            Service::CloudWatch => "cloudwatch",
        }
    }
}

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 `Throttling` (query XML) / `ThrottlingException` (CBOR, JSON); not forwarded.
    Throttle,
    /// HTTP 500 `InternalFailure`; not forwarded.
    Http500,
    /// HTTP 503 `ServiceUnavailable`; not forwarded.
    Http503,
    /// The connection is reset (RST) after the request was read; not forwarded.
    Reset,
    /// Nothing is answered for this long, then the connection is closed; not forwarded (the
    /// caller's attempt timeout fires first when the stall is longer than it).
    Stall(Duration),
    /// Forwarded (the upstream acts), then only half of the response body is sent before the
    /// connection is closed: the action happened but the caller never learns it.
    Truncate,
    /// Held before forwarding until the caller goes away or [`FaultProxy::release`]; a request
    /// whose caller died is never forwarded ("killed before the AWS call").
    HoldBefore,
    /// Forwarded, then the response is held until the caller goes away or release ("killed
    /// right after the AWS call").
    HoldAfter,
    /// An error RDS answers with this code (HTTP 400, e.g. `InsufficientDBInstanceCapacity`,
    /// `InstanceQuotaExceeded`); not forwarded.
    Error(&'static str),
    /// Forwarded; in the answer, the instance `id` reports `status` instead (a state no
    /// emulator reaches: `incompatible-parameters`, `storage-full`...).
    Status {
        id: &'static str,
        status: &'static str,
    },
}

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Http500 => "http500",
            Fault::Http503 => "http503",
            Fault::Reset => "reset",
            Fault::Stall(_) => "stall",
            Fault::Truncate => "truncate",
            Fault::HoldBefore => "hold_before",
            Fault::HoldAfter => "hold_after",
            Fault::Error(_) => "error",
            Fault::Status { .. } => "status",
        }
    }
    fn forwards_first(self) -> bool {
        matches!(
            self,
            Fault::Truncate | Fault::HoldAfter | Fault::Status { .. }
        )
    }
}

/// When a rule applies and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Operation name (`CreateDBInstanceReadReplica`, `GetMetricData`, ...) or `*`.
    pub operation: String,
    /// Only requests naming an identifier that starts with this (e.g. one cluster's prefix).
    pub id_prefix: Option<String>,
    pub fault: Fault,
    /// Let this many matching requests through first.
    pub skip: usize,
    /// Inject on this many matching requests (a burst), then the rule is spent.
    pub count: usize,
}

impl Rule {
    pub fn new(operation: &str, fault: Fault, count: usize) -> Rule {
        Rule {
            operation: operation.to_string(),
            id_prefix: None,
            fault,
            skip: 0,
            count,
        }
    }
    pub fn for_ids(mut self, prefix: &str) -> Rule {
        self.id_prefix = Some(prefix.to_string());
        self
    }
    pub fn after(mut self, skip: usize) -> Rule {
        self.skip = skip;
        self
    }
    fn matches(&self, ex: &Exchange) -> bool {
        (self.operation == "*" || self.operation == ex.operation)
            && self.id_prefix.as_ref().is_none_or(|p| {
                ex.ids
                    .iter()
                    .any(|id| id.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()))
            })
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub seq: usize,
    pub operation: String,
    /// Instance identifiers the request names (DBInstanceIdentifier, SourceDBInstanceIdentifier,
    /// filter values, the id in a ResourceName ARN).
    pub ids: Vec<String>,
    /// `amz-sdk-invocation-id`: the same across the SDK's retries of one call.
    pub invocation: String,
    pub fault: Option<Fault>,
    /// The request reached the upstream.
    pub forwarded: bool,
    /// The upstream's status (when forwarded).
    pub status: Option<u16>,
    /// The complete answer reached the caller.
    pub delivered: bool,
    /// A create for an identifier that already existed (answered DBInstanceAlreadyExists).
    pub existing: bool,
    /// ... and it was not the SDK's retry of the invocation that created it.
    pub duplicate: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, usize)>,
    log: Vec<Exchange>,
    /// identifier (lower case) → invocation id of the create that made it.
    created_by: BTreeMap<String, String>,
    held: usize,
}

/// The proxy; cheap to clone (shared state).
#[derive(Clone)]
pub struct FaultProxy {
    pub service: Service,
    pub addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    release: Arc<Notify>,
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

impl FaultProxy {
    /// Listen on 127.0.0.1 (random port) and forward to `upstream`. Needs a tokio runtime.
    pub async fn start(service: Service, upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = FaultProxy {
            service,
            addr: listener.local_addr()?,
            upstream,
            state: Arc::default(),
            release: Arc::new(Notify::new()),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move { p.serve(sock).await });
            }
        });
        Ok(proxy)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_rule(&self, rule: Rule) {
        self.lock().rules.push((rule, 0));
    }
    /// Remove every rule ("the fault stops").
    pub fn clear_rules(&self) {
        self.lock().rules.clear();
    }
    /// Let every held request go on (forward when the caller is still there).
    pub fn release(&self) {
        self.release.notify_waiters();
    }
    /// Requests currently held by a Hold rule.
    pub fn held(&self) -> usize {
        self.lock().held
    }
    pub fn log(&self) -> Vec<Exchange> {
        self.lock().log.clone()
    }
    /// Requests of `operation` seen so far (any outcome).
    pub fn count(&self, operation: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|e| e.operation == operation)
            .count()
    }
    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.lock().log.iter().filter(|e| e.fault.is_some()).count()
    }
    pub fn duplicates(&self) -> usize {
        self.lock().log.iter().filter(|e| e.duplicate).count()
    }
    /// Identifiers named by mutating requests that reached the upstream or were refused as
    /// existing, by operation.
    pub fn mutated_ids(&self) -> BTreeSet<(String, String)> {
        self.lock()
            .log
            .iter()
            .filter(|e| is_mutating(&e.operation))
            .flat_map(|e| e.ids.iter().map(|id| (e.operation.clone(), id.clone())))
            .collect()
    }

    async fn serve(&self, mut sock: TcpStream) {
        let Some((head, body)) = read_request(&mut sock).await else {
            return;
        };
        let mut ex = self.describe_request(&head, &body);
        let fault = {
            let mut st = self.lock();
            ex.seq = st.log.len();
            let mut hit = None;
            for (rule, seen) in st.rules.iter_mut() {
                if rule.matches(&ex) {
                    *seen += 1;
                    if *seen > rule.skip && *seen <= rule.skip + rule.count {
                        hit = Some(rule.fault);
                        break;
                    }
                }
            }
            ex.fault = hit;
            st.log.push(ex.clone());
            hit
        };
        let seq = ex.seq;
        let update = |f: &dyn Fn(&mut Exchange)| {
            let mut st = self.lock();
            if let Some(e) = st.log.get_mut(seq) {
                f(e)
            }
        };

        match fault {
            None => {
                let Some(resp) = self.forward(&head, &body, seq).await else {
                    return;
                };
                let ok = sock.write_all(&resp).await.is_ok() && sock.flush().await.is_ok();
                update(&|e| e.delivered = ok);
            }
            Some(f @ (Fault::Throttle | Fault::Http500 | Fault::Http503)) => {
                let (status, code, kind) = match f {
                    Fault::Throttle => (400, self.throttle_code(&head), "Sender"),
                    Fault::Http500 => (500, "InternalFailure", "Receiver"),
                    _ => (503, "ServiceUnavailable", "Receiver"),
                };
                let resp = error_response(status, &head, code, kind, "injected by faultproxy");
                let ok = sock.write_all(&resp).await.is_ok() && sock.flush().await.is_ok();
                update(&|e| e.delivered = ok);
            }
            Some(Fault::Error(code)) => {
                let resp = error_response(400, &head, code, "Sender", "injected by faultproxy");
                let ok = sock.write_all(&resp).await.is_ok() && sock.flush().await.is_ok();
                update(&|e| e.delivered = ok);
            }
            Some(Fault::Status { id, status }) => {
                let Some(resp) = self.forward(&head, &body, seq).await else {
                    return;
                };
                let resp = with_status(&resp, id, status);
                let ok = sock.write_all(&resp).await.is_ok() && sock.flush().await.is_ok();
                update(&|e| e.delivered = ok);
            }
            Some(Fault::Reset) => reset(sock),
            Some(Fault::Stall(d)) => {
                // Hold the connection open and silent, then hang up; the caller times out.
                let _ = tokio::time::timeout(d, drain(&mut sock)).await;
            }
            Some(Fault::Truncate) => {
                if let Some(resp) = self.forward(&head, &body, seq).await {
                    let cut = truncate_response(&resp);
                    let _ = sock.write_all(&resp[..cut]).await;
                    let _ = sock.flush().await;
                }
                reset(sock);
            }
            Some(Fault::HoldBefore) => {
                self.lock().held += 1;
                let caller_gone = self.hold(&mut sock).await;
                self.lock().held -= 1;
                if caller_gone {
                    return; // never forwarded: the AWS call did not happen
                }
                if let Some(resp) = self.forward(&head, &body, seq).await {
                    let ok = sock.write_all(&resp).await.is_ok();
                    update(&|e| e.delivered = ok);
                }
            }
            Some(Fault::HoldAfter) => {
                let resp = self.forward(&head, &body, seq).await;
                self.lock().held += 1;
                let caller_gone = self.hold(&mut sock).await;
                self.lock().held -= 1;
                if let (false, Some(resp)) = (caller_gone, resp) {
                    let ok = sock.write_all(&resp).await.is_ok();
                    update(&|e| e.delivered = ok);
                }
            }
        }
    }

    /// Wait for release or for the caller to hang up; true when the caller went away.
    async fn hold(&self, sock: &mut TcpStream) -> bool {
        let released = self.release.notified();
        tokio::pin!(released);
        tokio::select! {
            biased;
            _ = drain(sock) => return true,
            _ = &mut released => {}
        }
        // Released: make sure the caller is still there before going on (a caller killed a
        // moment ago may not have been noticed yet).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = [0u8; 1];
        match sock.try_read(&mut probe) {
            Ok(0) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            _ => true,
        }
    }

    fn throttle_code(&self, head: &str) -> &'static str {
        if is_query_protocol(head) {
            "Throttling"
        } else {
            "ThrottlingException"
        }
    }

    /// Forward the request (with `Connection: close`) and read the whole response; record the
    /// status and, for creates and deletes, who made an instance.
    async fn forward(&self, head: &str, body: &[u8], seq: usize) -> Option<Vec<u8>> {
        if let Some(refusal) = self.refuse_existing(head, seq).await {
            return Some(refusal);
        }
        let resp = send_raw(self.upstream, head, body).await?;
        let status = parse_status(&resp);
        let mut st = self.lock();
        let (op, ids, inv) = {
            let e = st.log.get_mut(seq)?;
            e.forwarded = true;
            e.status = status;
            (e.operation.clone(), e.ids.clone(), e.invocation.clone())
        };
        if status == Some(200) {
            if let Some(id) = ids.first() {
                let k = id.to_ascii_lowercase();
                match op.as_str() {
                    "CreateDBInstanceReadReplica" | "RestoreDBInstanceFromDBSnapshot" => {
                        st.created_by.insert(k, inv);
                    }
                    "DeleteDBInstance" => {
                        st.created_by.remove(&k);
                    }
                    _ => {}
                }
            }
        }
        drop(st);
        Some(with_connection_close(&resp))
    }

    /// RDS semantics moto lacks: a create (replica or restore) for an existing identifier is
    /// refused with DBInstanceAlreadyExists, never overwritten. Counted as a duplicate unless it is the SDK's
    /// retry of the invocation that created the instance.
    async fn refuse_existing(&self, head: &str, seq: usize) -> Option<Vec<u8>> {
        if self.service != Service::Rds {
            return None;
        }
        let (op, id, inv) = {
            let st = self.lock();
            let e = st.log.get(seq)?;
            (
                e.operation.clone(),
                e.ids.first()?.clone(),
                e.invocation.clone(),
            )
        };
        let creates = matches!(
            op.as_str(),
            "CreateDBInstanceReadReplica" | "RestoreDBInstanceFromDBSnapshot"
        );
        if !creates || !self.exists_upstream(&id).await {
            return None;
        }
        let mut st = self.lock();
        let creator = st.created_by.get(&id.to_ascii_lowercase()).cloned();
        let duplicate = creator.as_deref() != Some(inv.as_str());
        if let Some(e) = st.log.get_mut(seq) {
            e.existing = true;
            e.duplicate = duplicate;
            e.status = Some(400);
        }
        Some(error_response(
            400,
            head,
            "DBInstanceAlreadyExists",
            "Sender",
            &format!("DB instance already exists: {id}"),
        ))
    }

    async fn exists_upstream(&self, id: &str) -> bool {
        let body = format!(
            "Action=DescribeDBInstances&Version=2014-10-31&DBInstanceIdentifier={}",
            id
        );
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n",
            self.upstream,
            body.len()
        );
        match send_raw(self.upstream, &head, body.as_bytes()).await {
            Some(resp) => parse_status(&resp) == Some(200),
            None => false,
        }
    }

    fn describe_request(&self, head: &str, body: &[u8]) -> Exchange {
        let mut ex = Exchange {
            invocation: header(head, "amz-sdk-invocation-id").unwrap_or_default(),
            ..Default::default()
        };
        let path = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        if let Some(i) = path.find("/operation/") {
            // rpcv2Cbor: /service/<Service>/operation/<Operation>
            ex.operation = path[i + "/operation/".len()..]
                .split(['?', '/'])
                .next()
                .unwrap_or("")
                .to_string();
        } else if let Some(t) = header(head, "x-amz-target") {
            // awsJson: X-Amz-Target: <Service>.<Operation>
            ex.operation = t.rsplit('.').next().unwrap_or("").to_string();
        } else {
            // query protocol: Action=<Operation> in the form body
            let form = parse_form(&String::from_utf8_lossy(body));
            for (k, v) in &form {
                match k.as_str() {
                    "Action" => ex.operation = v.clone(),
                    "DBInstanceIdentifier" | "SourceDBInstanceIdentifier" => ex.ids.push(v.clone()),
                    "ResourceName" => ex.ids.push(v.rsplit(':').next().unwrap_or(v).to_string()),
                    _ if k.starts_with("Filters.") && k.contains(".Values.") => {
                        ex.ids.push(v.clone())
                    }
                    _ => {}
                }
            }
        }
        ex
    }
}

fn is_mutating(op: &str) -> bool {
    matches!(
        op,
        "CreateDBInstanceReadReplica"
            | "DeleteDBInstance"
            | "ModifyDBInstance"
            | "RestoreDBInstanceFromDBSnapshot"
            | "AddTagsToResource"
            | "RemoveTagsFromResource"
            | "RebootDBInstance"
            | "PromoteReadReplica"
    )
}

/// Set SO_LINGER 0 and drop: the peer sees a connection reset.
fn reset(sock: TcpStream) {
    #[allow(deprecated)]
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Read (and discard) until the peer closes.
async fn drain(sock: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn is_query_protocol(head: &str) -> bool {
    header(head, "content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("x-www-form-urlencoded"))
}

/// The error body in the request's protocol: query XML, rpcv2Cbor or awsJson.
fn error_body(head: &str, code: &str, kind: &str, message: &str) -> (String, Vec<u8>) {
    let ct = header(head, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ct.contains("cbor") {
        let mut b = vec![0xa2]; // map of 2
        for s in ["__type", code, "message", message] {
            cbor_text(&mut b, s);
        }
        ("application/cbor".into(), b)
    } else if ct.contains("json") {
        let v = serde_json::json!({"__type": code, "message": message});
        (
            "application/x-amz-json-1.0".into(),
            v.to_string().into_bytes(),
        )
    } else {
        let xml = format!(
            "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>"
        );
        ("text/xml".into(), xml.into_bytes())
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 24 {
        out.push(0x60 | n as u8);
    } else if n < 256 {
        out.extend([0x78, n as u8]);
    } else {
        out.push(0x79);
        out.extend((n as u16).to_be_bytes());
    }
    out.extend(s.as_bytes());
}

/// A complete error response in the request's protocol.
fn error_response(status: u16, head: &str, code: &str, kind: &str, message: &str) -> Vec<u8> {
    let (ctype, body) = error_body(head, code, kind, message);
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let mut extra = String::new();
    if ctype.contains("cbor") {
        extra.push_str("smithy-protocol: rpc-v2-cbor\r\n");
        // awsQueryCompatible services (CloudWatch) carry the query error code in this header.
        let qcode = if code == "ThrottlingException" {
            "Throttling"
        } else {
            code
        };
        extra.push_str(&format!("x-amzn-query-error: {qcode};{kind}\r\n"));
    } else if ctype.contains("json") {
        extra.push_str(&format!("X-Amzn-ErrorType: {code}\r\n"));
    }
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nx-amzn-RequestId: faultproxy\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = resp.into_bytes();
    bytes.extend(body);
    bytes
}

/// Read one request: head (up to 64 KiB) and a Content-Length body.
async fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return None;
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(len);
    Some((head, body))
}

/// Send a request to `upstream` with `Connection: close` and read the response to EOF.
async fn send_raw(upstream: SocketAddr, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = String::new();
    for (i, line) in head.trim_end_matches("\r\n").split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let fut = async {
        let mut up = TcpStream::connect(upstream).await.ok()?;
        up.write_all(out.as_bytes()).await.ok()?;
        up.write_all(body).await.ok()?;
        let mut resp = Vec::new();
        up.read_to_end(&mut resp).await.ok()?;
        Some(resp)
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .ok()
        .flatten()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(resp: &[u8]) -> Option<u16> {
    let line_end = find(resp, b"\r\n")?;
    let line = std::str::from_utf8(&resp[..line_end]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Replace the response's Connection header by `Connection: close` (one request per connection).
fn with_connection_close(resp: &[u8]) -> Vec<u8> {
    let Some(end) = find(resp, b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let head = String::from_utf8_lossy(&resp[..end]);
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut v = out.into_bytes();
    v.extend_from_slice(&resp[end + 4..]);
    v
}

/// Where to cut a response: its head and half of its body.
/// `resp` (an RDS query-XML answer) with instance `id`'s `DBInstanceStatus` set to `status`,
/// its Content-Length fixed.
fn with_status(resp: &[u8], id: &str, status: &str) -> Vec<u8> {
    let Some(end) = find(resp, b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let body = String::from_utf8_lossy(&resp[end + 4..]).to_string();
    let key = format!("<DBInstanceIdentifier>{id}</DBInstanceIdentifier>");
    let body = body
        .split("</DBInstance>")
        .map(|block| {
            if !block.contains(&key) {
                return block.to_string();
            }
            let (Some(a), Some(b)) = (
                block.find("<DBInstanceStatus>"),
                block.find("</DBInstanceStatus>"),
            ) else {
                return block.to_string();
            };
            format!("{}<DBInstanceStatus>{status}{}", &block[..a], &block[b..])
        })
        .collect::<Vec<_>>()
        .join("</DBInstance>");
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut out = format!("{}\r\n\r\n", head.join("\r\n")).into_bytes();
    out.extend(body.into_bytes());
    out
}

fn truncate_response(resp: &[u8]) -> usize {
    match find(resp, b"\r\n\r\n") {
        Some(end) => end + 4 + (resp.len() - end - 4) / 2,
        None => resp.len() / 2,
    }
}
