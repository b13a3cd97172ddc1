//! Notifications: which events elasticrds tells people about, and where — the `notifications`
//! section of the cluster config, validated with located errors. Pure: the event kinds and
//! the sink settings. What an event says is made at the edge (`service::notify`), its
//! delivery by the sinks' adapters (`adapters::eventbridge`, `adapters::webhook`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happened. Codes ([`EventKind::code`]) are the `type` field of an event's JSON and the
/// names a sink's `events` filter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Replicas created for the load (or the min).
    ScaleOut,
    /// Replicas deleted.
    ScaleIn,
    /// A reconciler action failed or was refused.
    ActionFailed,
    /// At the max with a metric above its target for `pinned_for`.
    PinnedAtMax,
    /// A cluster's tick failed: it backs off.
    Backoff,
    /// A reload of the config or policy files was refused.
    ReloadFailed,
    /// An instance holds a configured id but is not a read replica of the master.
    OwnershipConflict,
    /// The forecast raised the replica count above what the rules asked for.
    ForecastRaised,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::ScaleOut,
        EventKind::ScaleIn,
        EventKind::ActionFailed,
        EventKind::PinnedAtMax,
        EventKind::Backoff,
        EventKind::ReloadFailed,
        EventKind::OwnershipConflict,
        EventKind::ForecastRaised,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EventKind::ScaleOut => "scale_out",
            EventKind::ScaleIn => "scale_in",
            EventKind::ActionFailed => "action_failed",
            EventKind::PinnedAtMax => "pinned_at_max",
            EventKind::Backoff => "backoff",
            EventKind::ReloadFailed => "reload_failed",
            EventKind::OwnershipConflict => "ownership_conflict",
            EventKind::ForecastRaised => "forecast_raised",
        }
    }

    /// EventBridge's `DetailType` of this kind (documented in docs/notifications.md).
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::ScaleOut => "elasticrds scale-out",
            EventKind::ScaleIn => "elasticrds scale-in",
            EventKind::ActionFailed => "elasticrds action failed",
            EventKind::PinnedAtMax => "elasticrds pinned at max",
            EventKind::Backoff => "elasticrds cluster backoff",
            EventKind::ReloadFailed => "elasticrds config reload failed",
            EventKind::OwnershipConflict => "elasticrds ownership conflict",
            EventKind::ForecastRaised => "elasticrds forecast raised",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.code() == s)
    }
}

/// The validated `notifications` section (empty when the config has none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notifications {
    pub sinks: Vec<Sink>,
    /// How long at the max with a metric above target before `pinned_at_max` is sent.
    pub pinned_for: Duration,
    /// Events each sink's queue holds; more are dropped (and counted), never waited for.
    pub queue: usize,
    /// On SIGTERM, how long the queues may take to drain.
    pub drain_timeout: Duration,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            sinks: Vec::new(),
            pinned_for: Duration::from_secs(30 * 60),
            queue: 256,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// One place events go, with its filters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    /// The kinds it receives (every kind when the config lists none).
    pub events: Vec<EventKind>,
    /// The clusters it hears about (every cluster when empty); events of no cluster (a refused
    /// reload) go to every sink that takes their kind.
    pub clusters: Vec<String>,
}

impl Sink {
    pub fn wants(&self, kind: EventKind, cluster: Option<&str>) -> bool {
        self.events.contains(&kind)
            && match cluster {
                Some(c) => self.clusters.is_empty() || self.clusters.iter().any(|x| x == c),
                None => true,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkKind {
    /// `PutEvents` on an event bus (source `elasticrds`).
    EventBridge { bus: String, region: Option<String> },
    /// HTTP POST of the event's JSON (with a Slack-compatible `text`).
    Webhook {
        url: String,
        token: Option<TokenSource>,
        timeout: Duration,
    },
}

/// Where a webhook's bearer token is read from: never the config itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Env(String),
    File(String),
}

// ---- raw, as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a notifications section (a mapping)")]
pub(crate) struct RawNotifications {
    #[serde(default)]
    sinks: Vec<RawSink>,
    #[serde(default)]
    pinned_for: Option<String>,
    #[serde(default)]
    queue: Option<usize>,
    #[serde(default)]
    drain_timeout: Option<String>,
    /// Read only to say that a cluster cannot be named `notifications`.
    #[serde(default)]
    master: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a notification sink (a mapping)")]
struct RawSink {
    name: String,
    #[serde(default)]
    eventbridge: Option<RawEventBridge>,
    #[serde(default)]
    webhook: Option<RawWebhook>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    clusters: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an eventbridge sink (a mapping)")]
struct RawEventBridge {
    bus: String,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a webhook sink (a mapping)")]
struct RawWebhook {
    url: String,
    #[serde(default)]
    bearer_token_env: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
}

/// Largest queue a sink may have.
pub const MAX_QUEUE: usize = 100_000;

/// Validate the raw section; `err(field, message, value)` records a located problem and
/// `known(cluster)` says whether the config has a cluster of that name.
pub(crate) fn validate(
    raw: &RawNotifications,
    known: &dyn Fn(&str) -> bool,
    err: &mut dyn FnMut(String, String, Option<&str>),
) -> Notifications {
    if raw.master.is_some() {
        err(
            "notifications.master".into(),
            "`notifications` is the notifications section, so no cluster can have that name".into(),
            None,
        );
    }
    let d = Notifications::default();
    let mut dur = |v: &Option<String>, name: &str, default: Duration| match v {
        None => default,
        Some(s) => humantime::parse_duration(s).unwrap_or_else(|e| {
            err(
                format!("notifications.{name}"),
                format!("{s:?} is not a duration: {e}"),
                Some(s),
            );
            default
        }),
    };
    let pinned_for = dur(&raw.pinned_for, "pinned_for", d.pinned_for);
    let drain_timeout = dur(&raw.drain_timeout, "drain_timeout", d.drain_timeout);
    // Shutdown waits for it: an hour at most.
    if drain_timeout > Duration::from_secs(3600) {
        let given = raw.drain_timeout.as_deref();
        err(
            "notifications.drain_timeout".into(),
            format!(
                "{:?} is longer than an hour (shutdown waits for it)",
                given.unwrap_or("")
            ),
            given,
        );
    }
    let queue = raw.queue.unwrap_or(d.queue);
    if queue == 0 || queue > MAX_QUEUE {
        err(
            "notifications.queue".into(),
            format!("{queue}: must be from 1 to {MAX_QUEUE}"),
            Some(&queue.to_string()),
        );
    }
    let mut sinks: Vec<Sink> = Vec::new();
    for (i, s) in raw.sinks.iter().enumerate() {
        let at = format!("notifications.sinks[{i}]");
        if let Some(sink) = sink(s, &at, known, err) {
            if sinks.iter().any(|o| o.name == sink.name) {
                err(
                    format!("{at}.name"),
                    format!("sink name {:?} is used twice", sink.name),
                    Some(&s.name),
                );
            }
            sinks.push(sink);
        }
    }
    Notifications {
        sinks,
        pinned_for,
        queue,
        drain_timeout,
    }
}

fn sink(
    s: &RawSink,
    at: &str,
    known: &dyn Fn(&str) -> bool,
    err: &mut dyn FnMut(String, String, Option<&str>),
) -> Option<Sink> {
    let mut ok = true;
    if s.name.trim().is_empty() {
        err(format!("{at}.name"), "sink name is empty".into(), None);
        ok = false;
    }
    let mut events = Vec::new();
    for (j, e) in s.events.iter().enumerate() {
        match (e.as_str(), EventKind::parse(e)) {
            ("all", _) => events.extend(EventKind::ALL),
            (_, Some(k)) => events.push(k),
            (_, None) => {
                let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.code()).collect();
                err(
                    format!("{at}.events[{j}]"),
                    format!("unknown event {e:?}: one of all, {}", all.join(", ")),
                    Some(e),
                );
                ok = false;
            }
        }
    }
    if s.events.is_empty() {
        events.extend(EventKind::ALL);
    }
    events.sort();
    events.dedup();
    for (j, c) in s.clusters.iter().enumerate() {
        if !known(c) {
            err(
                format!("{at}.clusters[{j}]"),
                format!("no cluster {c:?} in this config"),
                Some(c),
            );
            ok = false;
        }
    }
    let kind = match (&s.eventbridge, &s.webhook) {
        (Some(eb), None) => eventbridge(eb, at, err),
        (None, Some(w)) => webhook(w, at, err),
        _ => {
            err(
                at.to_string(),
                "give exactly one of `eventbridge` and `webhook`".into(),
                None,
            );
            None
        }
    };
    Some(Sink {
        name: s.name.clone(),
        kind: kind?,
        events,
        clusters: s.clusters.clone(),
    })
    .filter(|_| ok)
}

fn eventbridge(
    eb: &RawEventBridge,
    at: &str,
    err: &mut dyn FnMut(String, String, Option<&str>),
) -> Option<SinkKind> {
    // A bus name or ARN: 1-256 characters of letters, digits and `._-/:` (EventBridge's rule).
    let ok = !eb.bus.is_empty()
        && eb.bus.len() <= 256
        && (eb.bus.chars()).all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if !ok {
        err(
            format!("{at}.eventbridge.bus"),
            format!("{:?} is not an event bus name or ARN", eb.bus),
            Some(&eb.bus),
        );
        return None;
    }
    Some(SinkKind::EventBridge {
        bus: eb.bus.clone(),
        region: eb.region.clone(),
    })
}

fn webhook(
    w: &RawWebhook,
    at: &str,
    err: &mut dyn FnMut(String, String, Option<&str>),
) -> Option<SinkKind> {
    let rest = (w.url.strip_prefix("https://")).or_else(|| w.url.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !host_ok {
        err(
            format!("{at}.webhook.url"),
            // The URL itself is not repeated: a chat webhook's URL is a secret, and this
            // message reaches the logs when a reload is refused.
            "not an http:// or https:// URL with a host (the value is not shown)".into(),
            Some(&w.url),
        );
        return None;
    }
    let has_token = w.bearer_token_env.is_some() || w.bearer_token_file.is_some();
    if has_token && !w.url.starts_with("https://") {
        err(
            format!("{at}.webhook.url"),
            "a bearer token is only sent over https://".into(),
            Some(&w.url),
        );
        return None;
    }
    let token = match (&w.bearer_token_env, &w.bearer_token_file) {
        (None, None) => None,
        (Some(v), None) => Some(TokenSource::Env(v.clone())),
        (None, Some(f)) => Some(TokenSource::File(f.clone())),
        (Some(_), Some(_)) => {
            err(
                format!("{at}.webhook"),
                "give one of bearer_token_env and bearer_token_file, not both".into(),
                None,
            );
            return None;
        }
    };
    let timeout = match &w.timeout {
        None => Duration::from_secs(5),
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(60) => d,
            _ => {
                err(
                    format!("{at}.webhook.timeout"),
                    format!("{s:?}: a duration from 1ms to 60s"),
                    Some(s),
                );
                return None;
            }
        },
    };
    Some(SinkKind::Webhook {
        url: w.url.clone(),
        token,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;

    const CLUSTER: &str =
        "c1:\n  master_node: {identifier: s, instance_id: c1m, instance_class: db.t3.micro}\n";

    #[test]
    fn a_notifications_section_sits_beside_the_clusters() {
        let y = format!(
            "{CLUSTER}notifications:\n  pinned_for: 10m\n  queue: 50\n  sinks:\n    - name: bus\n      eventbridge: {{bus: ops, region: eu-west-1}}\n      events: [scale_out, scale_in]\n    - name: chat\n      webhook: {{url: 'https://hooks.example.com/x', bearer_token_env: CHAT_TOKEN, timeout: 2s}}\n      clusters: [c1]\n"
        );
        let c = Config::parse("c.yaml", &y).unwrap();
        assert_eq!(c.clusters.len(), 1, "notifications is not a cluster");
        let n = &c.notifications;
        assert_eq!(n.pinned_for, Duration::from_secs(600));
        assert_eq!(n.queue, 50);
        assert_eq!(
            n.sinks[0].events,
            vec![EventKind::ScaleOut, EventKind::ScaleIn]
        );
        assert_eq!(
            n.sinks[1].events,
            EventKind::ALL.to_vec(),
            "every kind by default"
        );
        assert!(n.sinks[1].wants(EventKind::Backoff, Some("c1")));
        assert!(!n.sinks[1].wants(EventKind::Backoff, Some("c2")));
        assert!(n.sinks[1].wants(EventKind::ReloadFailed, None));
        assert_eq!(
            n.sinks[1].kind,
            SinkKind::Webhook {
                url: "https://hooks.example.com/x".into(),
                token: Some(TokenSource::Env("CHAT_TOKEN".into())),
                timeout: Duration::from_secs(2),
            }
        );
        // The old JSON format takes it too.
        let j = r#"{"c1": {"master_node": {"identifier": "s", "instance_id": "c1m", "instance_class": "db.t3.micro"}},
 "notifications": {"sinks": [{"name": "bus", "eventbridge": {"bus": "default"}}]}}"#;
        let c = Config::parse("c.json", j).unwrap();
        assert_eq!(c.notifications.sinks.len(), 1);
        // Without the section: no sinks.
        assert!(Config::parse("c.yaml", CLUSTER)
            .unwrap()
            .notifications
            .sinks
            .is_empty());
    }

    #[test]
    fn every_mistake_in_the_section_is_located() {
        let y = format!(
            "{CLUSTER}notifications:\n  queue: 0\n  sinks:\n    - name: a\n      webhook: {{url: 'ftp://x', bearer_token_env: A}}\n    - name: b\n      eventbridge: {{bus: 'bad bus'}}\n      events: [scale_out, explode]\n      clusters: [c9]\n    - name: c\n      webhook: {{url: 'https://x', bearer_token_env: A, bearer_token_file: /t}}\n    - name: d\n"
        );
        let e = Config::parse("c.yaml", &y).unwrap_err().to_string();
        for want in [
            "c.yaml:4:10: notifications.queue: 0: must be from 1 to 100000",
            "notifications.sinks[0].webhook.url: not an http:// or https:// URL with a host (the value is not shown)",
            "notifications.sinks[1].eventbridge.bus: \"bad bus\" is not an event bus name",
            "notifications.sinks[1].events[1]: unknown event \"explode\"",
            "notifications.sinks[1].clusters[0]: no cluster \"c9\"",
            "notifications.sinks[2].webhook: give one of bearer_token_env and bearer_token_file",
            "notifications.sinks[3]: give exactly one of `eventbridge` and `webhook`",
        ] {
            assert!(e.contains(want), "want {want:?} in:\n{e}");
        }
        let plain = format!(
            "{CLUSTER}notifications:\n  sinks:\n    - name: a\n      webhook: {{url: 'http://h/x?k=secret', bearer_token_env: A}}\n"
        );
        let e = Config::parse("c.yaml", &plain).unwrap_err().to_string();
        assert!(
            e.contains("webhook.url: a bearer token is only sent over https://"),
            "{e}"
        );
        let bad = plain.replace("http://h/x?k=secret", "h x?k=secret");
        let e = Config::parse("c.yaml", &bad).unwrap_err().to_string();
        assert!(!e.contains("secret"), "the URL is not repeated: {e}");
        let cluster = format!("{CLUSTER}notifications:\n  master: {{id: m1}}\n");
        let e = Config::parse("c.yaml", &cluster).unwrap_err().to_string();
        assert!(e.contains("c.yaml:4:3: notifications.master: `notifications` is the notifications section, so no cluster"), "{e}");
        let twice = format!("{CLUSTER}notifications: {{}}\nnotifications: {{}}\n");
        let e = Config::parse("c.yaml", &twice).unwrap_err().to_string();
        assert!(e.contains("duplicate key `notifications`"), "{e}");
        let unknown = format!("{CLUSTER}notifications:\n  sink: []\n");
        let e = Config::parse("c.yaml", &unknown).unwrap_err().to_string();
        assert!(e.contains("unknown field `sink`"), "{e}");
    }
}
