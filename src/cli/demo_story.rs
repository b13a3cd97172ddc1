//! What `elasticrds demo` prints: the story, not the logs — one compact line per simulated
//! half-hour (time, load, a bar of load against serving capacity, replicas serving / paid
//! for), one line per decision that changed something with its reasons in words, and at the
//! end the same stretch scored side by side with the oracle and the Aurora-style baseline.
//! Plain text: no colour, no escape codes, wrapped to the terminal's width (`COLUMNS`, else 80).

use crate::adapters::sim_load::MinuteState;
use crate::backtest::score::Score;
use crate::control::TickReport;
use crate::core::decide::Direction;

/// Width of the load bar, in characters.
const BAR: usize = 20;

/// The terminal width to wrap to: `COLUMNS` when it is a number from 40 up, else 80.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(80)
}

fn hhmm(minute: i64) -> String {
    crate::adapters::sim_load::minute_time(minute)
        .format("%H:%M")
        .to_string()
}

/// `[####····|·····]`: the load (`#`) against the serving capacity (`|`), on a scale of
/// `scale` replicas.
pub fn bar(load: Option<f64>, serving: u32, scale: usize) -> String {
    let scale = scale.max(1) as f64;
    let cells = |v: f64| ((v / scale * BAR as f64).round() as usize).min(BAR);
    let filled = load.map_or(0, cells);
    let cap = cells(f64::from(serving));
    let mut s = String::with_capacity(BAR + 2);
    s.push('[');
    for i in 0..BAR {
        s.push(if i < filled { '#' } else { '.' });
    }
    s.push(']');
    // The capacity mark replaces the cell at its position (or closes the bar at full).
    if cap < BAR {
        let mut chars: Vec<char> = s.chars().collect();
        chars[cap + 1] = '|';
        s = chars.into_iter().collect();
    }
    s
}

/// `14:30  load  2.31 [#########...|......]  3 serving / 4 paid for` (67 characters; in a
/// terminal narrower than that, `... 3/4 serving/paid`).
pub fn half_hour_line(st: &MinuteState, scale: usize, width: usize) -> String {
    let load = st
        .demand
        .map_or("  -  ".to_string(), |d| format!("{d:5.2}"));
    let head = format!(
        "{}  load {load} {}",
        hhmm(st.minute),
        bar(st.demand, st.serving, scale)
    );
    if width >= 67 {
        format!("{head}  {} serving / {} paid for", st.serving, st.replicas)
    } else {
        // 38 characters: `14:30 2.31 [####...|...] 3/4`.
        let load = st.demand.map_or("  - ".to_string(), |d| format!("{d:4.2}"));
        let bar = bar(st.demand, st.serving, scale);
        format!(
            "{} {load} {bar} {}/{}",
            hhmm(st.minute),
            st.serving,
            st.replicas
        )
    }
}

/// `14:31  scale-out 2 → 4: cpu 100.0% > target 70% → 6; clamped to max 4` for a tick that
/// carried out a scale action, wrapped to `width`; `None` otherwise.
pub fn decision_lines(r: &TickReport, width: usize) -> Option<String> {
    let d = &r.decision;
    if !r.acted || d.direction == Direction::None {
        return None;
    }
    let why: Vec<String> = (d.reasons.iter())
        .filter(|x| !x.is_hold())
        .map(|x| x.to_string())
        .collect();
    let dir = if d.direction == Direction::Out {
        "scale-out"
    } else {
        "scale-in"
    };
    let head = format!(
        "{}  {dir} {} → {}: ",
        d.at.format("%H:%M"),
        d.current,
        d.desired
    );
    Some(wrap(&head, &why.join("; "), width))
}

/// `head` then `text`, wrapped at spaces to `width`, continuation lines indented by 7 (under
/// the text after a `14:31  ` time).
pub fn wrap(head: &str, text: &str, width: usize) -> String {
    wrap_indent(head, text, width, 7)
}

/// [`wrap`] with continuation lines indented by `indent`.
pub fn wrap_indent(head: &str, text: &str, width: usize, indent: usize) -> String {
    let mut out = head.to_string();
    let mut line_len = head.chars().count();
    for word in text.split(' ') {
        let n = word.chars().count();
        let space = usize::from(!out.ends_with(' ') && !out.is_empty());
        if line_len + space + n > width && line_len > indent {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line_len = indent;
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += n;
    }
    out
}

/// The side-by-side score of the stretch: this policy, the oracle, the Aurora-style baseline;
/// each row `(name, short name, score)`, the short names and columns below 63 columns.
pub fn score_table(rows: &[(&str, &str, &Score)], width: usize) -> String {
    let wide = width >= 63;
    let mut s = if wide {
        format!(
            "{:<24}{:>14}{:>16}{:>9}\n",
            "", "replica-hours", "breach-minutes", "actions"
        )
    } else {
        format!(
            "{:<13}{:>9}{:>8}{:>8}\n",
            "", "replica-h", "breach", "actions"
        )
    };
    for (name, short, sc) in rows {
        s.push_str(&if wide {
            format!(
                "{:<24}{:>14.1}{:>16}{:>9}\n",
                name, sc.replica_hours, sc.breach_minutes, sc.actions
            )
        } else {
            format!(
                "{:<13}{:>9.1}{:>8}{:>8}\n",
                short, sc.replica_hours, sc.breach_minutes, sc.actions
            )
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_load_against_capacity() {
        assert_eq!(bar(Some(2.0), 3, 4), "[##########.....|....]");
        assert_eq!(bar(Some(4.0), 4, 4), "[####################]");
        assert_eq!(bar(None, 1, 4), "[.....|..............]");
        assert_eq!(bar(Some(9.0), 0, 4), "[|###################]");
    }

    #[test]
    fn long_reasons_wrap_to_the_width() {
        let w = wrap("03:31  scale-out 2 → 4: ", &"word ".repeat(30), 40);
        assert!(w.lines().all(|l| l.chars().count() <= 40), "{w}");
        assert!(
            w.lines().skip(1).all(|l| l.starts_with("       word")),
            "{w}"
        );
    }

    #[test]
    fn the_score_table_lines_up() {
        let sc = Score {
            name: "x".into(),
            kind: crate::backtest::score::RunKind::Oracle,
            replica_hours: 12.345,
            breach_minutes: 3,
            actions: 4,
            max_replicas: 4,
            minutes: 60,
            minutes_with_data: 60,
        };
        let rows = [
            ("this policy", "policy", &sc),
            ("oracle (clairvoyant)", "oracle", &sc),
        ];
        let t = score_table(&rows, 80);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.chars().count() == 63), "{t}");
        assert!(
            lines[1].starts_with("this policy")
                && lines[1].ends_with("12.3               3        4"),
            "{t}"
        );
        let narrow = score_table(&rows, 40);
        assert!(narrow.lines().all(|l| l.chars().count() <= 40), "{narrow}");
        assert!(
            narrow.lines().nth(2).unwrap().starts_with("oracle "),
            "{narrow}"
        );
    }
}
