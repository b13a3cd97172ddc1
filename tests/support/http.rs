//! The tests' one HTTP/1.1 client and one form decoder.
//!
//! - [`get`], [`request`]: one request per connection (`Connection: close`) to a loopback
//!   server, bounded in time ([`HTTP_TIMEOUT`]) and size ([`MAX_RESPONSE_BYTES`]); a
//!   [`Response`] with the status, the head and the (de-chunked) body, whatever the status.
//! - [`http`], [`http_request`]: the same, but the body only and an error on a non-2xx status.
//! - [`send_raw`], [`read_until_closed`], [`status_code`]: bytes as they are (malformed or
//!   oversized requests) and what came back, for the hardening tests.
//! - [`url_decode`], [`parse_form`]: `application/x-www-form-urlencoded` text (AWS query calls).

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a request may take, connect to last byte.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a response may hold; the rest is not read.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The status code of the response `text` starts with (`HTTP/1.1 200 OK...`).
pub fn status_code(text: &str) -> Option<u16> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// An HTTP response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The status line and headers, without the blank line that ends them.
    pub head: String,
    /// The body, de-chunked when it was sent chunked.
    pub body: String,
}

impl Response {
    /// Parse a complete response (status line, headers, blank line, body).
    pub fn parse(text: &str) -> Result<Response, String> {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("malformed HTTP response: {text:?}"))?;
        let status = status_code(head).ok_or_else(|| format!("no status line: {head:?}"))?;
        let mut r = Response {
            status,
            head: head.to_string(),
            body: body.to_string(),
        };
        if r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            r.body = dechunk(body);
        }
        Ok(r)
    }

    /// The value of header `name` (case-insensitive), the first when repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The whole response, head and body, as it came (for assertion messages).
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\r\n\r\n{}", self.head, self.body)
    }
}

/// Read from `s` until the peer closes the connection (or resets it) or `limit` passes; what
/// was read, and whether it closed. Stops reading at [`MAX_RESPONSE_BYTES`].
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let text = |got: &[u8]| String::from_utf8_lossy(got).into_owned();
    while got.len() < MAX_RESPONSE_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || s.set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .is_err()
        {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => return (text(&got), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return (text(&got), true),
        }
    }
    (text(&got), false)
}

/// Connect to `addr`, write `request` as it is (a write error is ignored: a server may refuse
/// before reading everything), then [`read_until_closed`] within `limit`. `Err` only when the
/// connection cannot be made.
pub fn send_raw(
    addr: impl ToSocketAddrs,
    request: &[u8],
    limit: Duration,
) -> Result<(String, bool), String> {
    let mut s = connect(addr)?;
    let _ = s.write_all(request);
    Ok(read_until_closed(&mut s, limit))
}

fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream, String> {
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| e.to_string())?.collect();
    TcpStream::connect(&addrs[..]).map_err(|e| format!("connect {addrs:?}: {e}"))
}

/// One HTTP/1.1 request with `headers` and `body` to `addr`; the response whatever its status.
/// Errors when the connection fails or no complete response arrives within [`HTTP_TIMEOUT`].
pub fn request(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, String> {
    let mut s = connect(addr)?;
    let host = s.peer_addr().map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let (text, closed) = read_until_closed(&mut s, HTTP_TIMEOUT);
    if !closed {
        return Err(format!(
            "{method} {path}: no complete response within {HTTP_TIMEOUT:?}: {text:?}"
        ));
    }
    Response::parse(&text).map_err(|e| format!("{method} {path}: {e}"))
}

/// GET `path` from `addr` (`("127.0.0.1", port)`, `"host:port"`); see [`request`].
pub fn get(addr: impl ToSocketAddrs, path: &str) -> Result<Response, String> {
    request(addr, "GET", path, &[], "")
}

/// A request to 127.0.0.1:`port` with headers and a body; the response body. Errors on a
/// non-2xx status too.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<String, String> {
    let r = request(("127.0.0.1", port), method, path, headers, body)?;
    if !r.is_success() {
        return Err(format!("{method} {path}: HTTP {}: {}", r.status, r.body));
    }
    Ok(r.body)
}

/// [`http`] without headers or body.
pub fn http_request(port: u16, method: &str, path: &str) -> Result<String, String> {
    http(port, method, path, &[], "")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `key=value` pairs of a form body, decoded, in order.
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

/// Decode `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
