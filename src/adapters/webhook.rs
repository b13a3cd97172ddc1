//! The `EventSink` port on a webhook: HTTP POST of the event's JSON
//! (`Notification::to_json`; its `text` is what a Slack-compatible incoming webhook shows),
//! with an optional `Authorization: Bearer` token read at start from an environment variable
//! or a file (never from the config). 2xx is delivered; 408, 429, 5xx, a timeout or a refused
//! connection are retryable; any other status is not. Errors never carry the URL (a chat
//! webhook's URL is a secret).

use crate::core::notify::TokenSource;
use crate::ports::{ErrorKind, EventSink, Notification, PortError};
use async_trait::async_trait;
use std::time::Duration;

/// Longest token accepted from a file.
const MAX_TOKEN_BYTES: u64 = 8 * 1024;

pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl WebhookSink {
    /// A sink posting to `url`; `token` is the bearer token itself (see [`read_token`]).
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("elasticrds/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(WebhookSink {
            client,
            url: url.to_string(),
            token,
        })
    }
}

/// Read a bearer token from where the config says; an absent variable, an unreadable or empty
/// file is an error (bad input at start).
pub fn read_token(src: &TokenSource) -> Result<String, String> {
    let token = match src {
        TokenSource::Env(var) => std::env::var(var)
            .map_err(|_| format!("bearer_token_env: the environment variable {var} is not set"))?,
        TokenSource::File(path) => {
            let bytes = crate::input_file::read_text(std::path::Path::new(path), MAX_TOKEN_BYTES)
                .map_err(|e| format!("bearer_token_file: {e}"))?;
            bytes
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the bearer token is empty or has spaces or control characters".into());
    }
    Ok(token)
}

#[async_trait]
impl EventSink for WebhookSink {
    async fn deliver(&self, n: &Notification) -> Result<(), PortError> {
        let op = "webhook POST";
        let body = n.to_json().to_string();
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() || e.is_connect() || e.is_request() {
                ErrorKind::Transient
            } else {
                ErrorKind::Fatal
            };
            // A chat webhook's URL is itself a secret: never in an error, so never in a log.
            PortError::new(kind, op, format!("{}", e.without_url()))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let kind = match status.as_u16() {
            429 => ErrorKind::Throttled,
            408 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        };
        Err(PortError::new(kind, op, format!("HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_never_shows_the_webhook_url() {
        // A port nobody listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/services/T000/B000/SECRETPART");
        let sink = WebhookSink::new(&url, None, Duration::from_secs(2)).unwrap();
        let n = Notification {
            kind: crate::core::notify::EventKind::Backoff,
            cluster: None,
            at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            text: "t".into(),
            detail: serde_json::json!({}),
        };
        let e = sink.deliver(&n).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(!e.to_string().contains("SECRETPART"), "{e}");
    }
}
