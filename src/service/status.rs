//! The status page (`GET /` on the service's HTTP listener): what an operator without Grafana
//! wants to see, kept in memory by the daemon after every tick — per cluster the replicas
//! (serving, creating, draining, paid for) against min/desired/max, the observed metrics against
//! their targets, the last decisions that changed something with their reasons, cooldowns,
//! pauses, observe-only, and a small chart of load and capacity over the last hours. Rendered
//! as one small HTML page: no script, nothing fetched from elsewhere, a refresh every 5 s, and
//! every text from config or AWS escaped.

use crate::control::TickReport;
use crate::core::domain::MetricKind;
use crate::reconcile::Outcome;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;

/// Points kept per cluster for the chart (one per tick: 6 h at the default 60 s interval).
pub const HISTORY_POINTS: usize = 360;
/// Decision lines kept per cluster.
pub const DECISIONS: usize = 8;

/// One point of the chart: the load in replicas' worth (CPU summed over serving replicas /
/// 100) and the serving capacity.
#[derive(Debug, Clone, Copy)]
struct Point {
    load: Option<f64>,
    capacity: f64,
}

#[derive(Debug, Clone, Default)]
struct ClusterStatus {
    name: String,
    seen: bool,
    serving: usize,
    creating: usize,
    draining: usize,
    /// Every replica of ours, whatever its state (what the bill counts).
    paid: usize,
    min: usize,
    desired: usize,
    max: usize,
    observe_only: bool,
    /// Observed value and target per metric.
    metrics: Vec<(MetricKind, Option<f64>, Option<f64>)>,
    cooldown_out: u64,
    cooldown_in: u64,
    paused: Vec<String>,
    /// (time, key, line), newest last.
    decisions: VecDeque<(DateTime<Utc>, String, String)>,
    history: VecDeque<Point>,
    error: Option<String>,
}

/// What the status page shows; updated by the daemon, read by the HTTP server.
#[derive(Debug, Default)]
pub struct StatusBoard {
    inner: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    clusters: Vec<ClusterStatus>,
    last_tick: Option<DateTime<Utc>>,
}

impl StatusBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clusters, in the daemon's order; a cluster kept keeps what it showed, one in
    /// `restarted` (its master changed) starts afresh.
    pub fn set_clusters(&self, names: &[String], restarted: &[String]) {
        let mut b = self.lock();
        let mut old = std::mem::take(&mut b.clusters);
        old.retain(|c| !restarted.contains(&c.name));
        b.clusters = (names.iter())
            .map(|n| match old.iter().position(|c| &c.name == n) {
                Some(i) => old.swap_remove(i),
                None => ClusterStatus {
                    name: n.clone(),
                    ..ClusterStatus::default()
                },
            })
            .collect();
    }

    /// A tick's report of one cluster.
    pub fn record(&self, r: &TickReport, line: Option<String>) {
        let mut b = self.lock();
        b.last_tick = Some(r.decision.at);
        let Some(c) = b.clusters.iter_mut().find(|c| *c.name == *r.cluster) else {
            return;
        };
        let d = &r.decision;
        c.seen = true;
        c.error = None;
        // A replica being drained is still available on RDS, but no longer serving.
        c.draining = (r.actions.iter())
            .filter(|a| matches!(a.outcome, Outcome::Draining(_)))
            .count();
        c.serving = r.available.saturating_sub(c.draining);
        c.creating = r.replicas.saturating_sub(r.available);
        c.paid = r.replicas;
        (c.min, c.desired, c.max) = (d.min, d.desired, d.max);
        c.observe_only = d.observe_only;
        c.metrics = r
            .metrics
            .iter()
            .map(|m| (m.metric, m.value, m.target))
            .collect();
        c.cooldown_out = d.cooldown_remaining_out.as_secs();
        c.cooldown_in = d.cooldown_remaining_in.as_secs();
        c.paused = (d.pauses.all())
            .filter(|p| p.in_force(d.at))
            .map(crate::text::pause_text)
            .collect();
        let cpu = (r.metrics.iter()).find(|m| m.metric == MetricKind::Cpu);
        let load = cpu
            .and_then(|m| m.value)
            .map(|v| v * r.available as f64 / 100.0);
        c.history.push_back(Point {
            load,
            capacity: c.serving as f64,
        });
        while c.history.len() > HISTORY_POINTS {
            c.history.pop_front();
        }
        if let Some(line) = line {
            c.decisions
                .push_back((d.at, crate::service::daemon::decision_key(d), line));
            while c.decisions.len() > DECISIONS {
                c.decisions.pop_front();
            }
        }
    }

    /// Whether `key` differs from the last decision line of `cluster` (a line worth adding).
    pub fn is_new(&self, cluster: &str, key: &str) -> bool {
        let b = self.lock();
        (b.clusters.iter().find(|c| c.name == cluster))
            .and_then(|c| c.decisions.back())
            .is_none_or(|(_, k, _)| k != key)
    }

    /// A cluster whose tick failed.
    pub fn failed(&self, cluster: &str, error: String) {
        let mut b = self.lock();
        if let Some(c) = b.clusters.iter_mut().find(|c| c.name == cluster) {
            c.error = Some(error);
        }
    }

    /// The page.
    pub fn render(&self) -> String {
        let b = self.lock();
        let mut s = String::with_capacity(4096 + 4096 * b.clusters.len());
        s.push_str(HEAD);
        let last = b.last_tick.map_or("no tick yet".to_string(), |t| {
            format!("last tick {}", t.to_rfc3339_opts(SecondsFormat::Secs, true))
        });
        let _ = write!(
            s,
            "<header><h1>elasticrds</h1><p>{} cluster(s) · {} · <a href=\"/metrics\">/metrics</a> · refreshes every 5 s</p></header>\n<main>\n",
            b.clusters.len(),
            escape(&last)
        );
        for c in &b.clusters {
            cluster_section(&mut s, c);
        }
        s.push_str("</main>\n</body>\n</html>\n");
        s
    }
}

const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"refresh\" content=\"5\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>elasticrds status</title>\n<style>\nbody{font:14px/1.4 system-ui,sans-serif;margin:1em;color:#222;background:#fff}\nsection{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:0 0 1em;max-width:60em}\ntable{border-collapse:collapse;margin:.3em 0}td,th{padding:.1em .6em;text-align:right;border-bottom:1px solid #eee}\nth{font-weight:600}.note{color:#a60}.error{color:#b00}\nsvg{width:100%;max-width:40em;height:8em;background:#fafafa;border:1px solid #eee}\n.load{fill:none;stroke:#c33;stroke-width:1.5}.capacity{fill:none;stroke:#36c;stroke-width:1.5}\nol{padding-left:1.2em;margin:.3em 0}time{color:#666;margin-right:.5em}\n</style>\n</head>\n<body>\n";

fn cluster_section(s: &mut String, c: &ClusterStatus) {
    let name = escape(&c.name);
    let _ = writeln!(
        s,
        "<section class=\"cluster\" id=\"cluster-{name}\">\n<h2>{name}</h2>"
    );
    if let Some(e) = &c.error {
        let _ = writeln!(s, "<p class=\"error\">last tick failed: {}</p>", escape(e));
    }
    if !c.seen {
        s.push_str("<p>not observed yet</p>\n</section>\n");
        return;
    }
    let _ = writeln!(
        s,
        "<table class=\"replicas\"><tr><th>serving</th><th>creating</th><th>draining</th><th>paid for</th><th>min</th><th>desired</th><th>max</th></tr>\n<tr><td class=\"serving\">{}</td><td class=\"creating\">{}</td><td class=\"draining\">{}</td><td class=\"paid\">{}</td><td class=\"min\">{}</td><td class=\"desired\">{}</td><td class=\"max\">{}</td></tr></table>",
        c.serving,
        c.creating,
        c.draining,
        c.paid,
        c.min,
        c.desired,
        c.max
    );
    s.push_str(
        "<table class=\"metrics\"><tr><th>metric</th><th>observed</th><th>target</th></tr>\n",
    );
    for (m, v, t) in &c.metrics {
        let fmt = |x: &Option<f64>| x.map_or("–".to_string(), |x| format!("{x:.1}"));
        let _ = writeln!(
            s,
            "<tr><td>{m}</td><td class=\"observed\">{}</td><td>{}</td></tr>",
            fmt(v),
            fmt(t)
        );
    }
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p>cooldown left: scale-out {}, scale-in {}</p>",
        crate::text::fmt_secs(c.cooldown_out),
        crate::text::fmt_secs(c.cooldown_in)
    );
    for p in &c.paused {
        let _ = writeln!(s, "<p class=\"note paused\">{}</p>", escape(p));
    }
    if c.observe_only {
        s.push_str("<p class=\"note\">observe-only: decides and reports, changes nothing</p>\n");
    }
    chart(s, &c.history);
    s.push_str("<ol class=\"decisions\">\n");
    for (at, _, line) in c.decisions.iter().rev() {
        let t = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let _ = writeln!(
            s,
            "<li><time datetime=\"{t}\">{t}</time>{}</li>",
            escape(line)
        );
    }
    s.push_str("</ol>\n</section>\n");
}

/// Load (red) and serving capacity (blue), in replicas' worth, over the points kept.
fn chart(s: &mut String, h: &VecDeque<Point>) {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let top = (h.iter())
        .map(|p| p.capacity.max(p.load.unwrap_or(0.0)))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |i: usize| W * i as f64 / (HISTORY_POINTS - 1) as f64;
    let y = |v: f64| H - H * v / top;
    let mut cap = String::new();
    let mut load = String::new();
    for (i, p) in h.iter().enumerate() {
        let _ = write!(cap, "{:.1},{:.1} ", x(i), y(p.capacity));
        if let Some(l) = p.load {
            let _ = write!(load, "{:.1},{:.1} ", x(i), y(l));
        }
    }
    let _ = writeln!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"load and serving capacity, replicas' worth, last {} ticks (top {top:.1})\"><polyline class=\"capacity\" points=\"{}\"/><polyline class=\"load\" points=\"{}\"/></svg>",
        h.len(),
        cap.trim_end(),
        load.trim_end()
    );
}

/// HTML-escape text for element content and attribute values.
pub fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    for ch in t.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_from_config_and_aws_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        let b = StatusBoard::default();
        b.set_clusters(&["<b>evil</b>".to_string()], &[]);
        let page = b.render();
        assert!(!page.contains("<b>evil"), "{page}");
        assert!(page.contains("&lt;b&gt;evil&lt;/b&gt;"), "{page}");
        assert!(page.contains("not observed yet"));
        assert!(!page.contains("<script"), "no script at all");
    }

    #[test]
    fn a_reload_keeps_what_a_kept_cluster_showed() {
        let b = StatusBoard::default();
        b.set_clusters(&["a".into(), "b".into()], &[]);
        b.failed("a", "throttled".into());
        b.set_clusters(&["b".into(), "a".into(), "c".into()], &[]);
        let page = b.render();
        let (ia, ib, ic) = (
            page.find("cluster-a").unwrap(),
            page.find("cluster-b").unwrap(),
            page.find("cluster-c").unwrap(),
        );
        assert!(ib < ia && ia < ic, "in the new order");
        assert!(
            page.contains("last tick failed: throttled"),
            "a cluster never observed shows why: {page}"
        );
        assert_eq!(page.matches("<section").count(), 3);
        // "a" now names another master: what it showed is dropped.
        b.set_clusters(&["b".into(), "a".into()], &["a".into()]);
        assert!(!b.render().contains("throttled"));
    }
}
