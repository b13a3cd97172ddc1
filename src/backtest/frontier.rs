//! The cost/breach frontier: `backtest --sweep KEY=V1,V2,...`. One policy setting is one point;
//! this runs every given policy at each value of one knob and, for `target`, each reactive
//! baseline at the same target (their own knob), all on the same trace and fleet model, and
//! gives the replica-hours / breach-minutes points per run family, with the oracle as the floor.
//! Text and JSON are made by the CLI; the SVG here (plotters).

use super::score::{RunKind, Score};
use super::trace::Trace;
use super::{backtest, Case, Options};
use crate::core::domain::MetricKind;
use crate::core::policy::{ForecasterKind, Predictive, RuleKind};
use plotters::prelude::*;
use serde::Serialize;

/// Most values one sweep takes.
pub const MAX_VALUES: usize = 20;

/// The knob a frontier varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    /// The first target-tracking rule's target, percent (and the baselines' target; a
    /// `predictive` section's sizing target keeps its ratio to the rule's).
    Target,
    /// That rule's tolerance, a fraction.
    Tolerance,
    /// Scale-in cooldown, minutes.
    ScaleInCooldown,
    /// Scale-out cooldown, minutes.
    ScaleOutCooldown,
    /// The seasonal forecast's quantile of the past days (`predictive.seasonal.quantile`).
    Quantile,
    /// How far back the seasonal forecast measures today's level, minutes
    /// (`predictive.seasonal.level`; 0: off).
    Level,
}

impl Key {
    pub fn as_str(self) -> &'static str {
        match self {
            Key::Target => "target",
            Key::Tolerance => "tolerance",
            Key::ScaleInCooldown => "scale_in_cooldown",
            Key::ScaleOutCooldown => "scale_out_cooldown",
            Key::Quantile => "quantile",
            Key::Level => "level",
        }
    }

    /// Values accepted for this key.
    fn range(self) -> (f64, f64, &'static str) {
        match self {
            Key::Target => (1.0, 100.0, "a CPU percentage from 1 to 100"),
            Key::Tolerance => (0.0, 0.5, "a fraction from 0 to 0.5"),
            Key::ScaleInCooldown | Key::ScaleOutCooldown => {
                (0.0, 1440.0, "whole minutes from 0 to 1440")
            }
            Key::Quantile => (0.0, 1.0, "a quantile from 0 to 1"),
            Key::Level => (0.0, 720.0, "whole minutes from 0 to 720"),
        }
    }
}

/// A parsed `--sweep KEY=V1,V2,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: Key,
    pub values: Vec<f64>,
}

impl Axis {
    /// Parse `KEY=V1,V2,...`; the error names the key or the value at fault.
    pub fn parse(s: &str) -> Result<Axis, String> {
        let (k, vs) = s
            .split_once('=')
            .ok_or_else(|| format!("--sweep {s:?}: give KEY=V1,V2,... (e.g. target=55,60,66)"))?;
        let key = match k.trim() {
            "target" => Key::Target,
            "tolerance" => Key::Tolerance,
            "scale_in_cooldown" => Key::ScaleInCooldown,
            "scale_out_cooldown" => Key::ScaleOutCooldown,
            "quantile" => Key::Quantile,
            "level" => Key::Level,
            other => {
                return Err(format!(
                    "--sweep: unknown key {other:?} (target, tolerance, scale_in_cooldown, scale_out_cooldown, quantile, level)"
                ))
            }
        };
        let (lo, hi, what) = key.range();
        let mut values = Vec::new();
        let minutes = matches!(
            key,
            Key::ScaleInCooldown | Key::ScaleOutCooldown | Key::Level
        );
        for v in vs.split(',') {
            let v = v.trim();
            // Minutes may be written `15m` (one `m`, for the keys in minutes only).
            let number = if minutes {
                v.strip_suffix('m').unwrap_or(v)
            } else {
                v
            };
            match number.parse::<f64>() {
                Ok(x)
                    if x.is_finite()
                        && (lo..=hi).contains(&x)
                        && (!minutes || x.fract() == 0.0) =>
                {
                    values.push(x)
                }
                _ => return Err(format!("--sweep {}: {v:?} is not {what}", key.as_str())),
            }
        }
        values.sort_by(|a, b| a.total_cmp(b));
        values.dedup();
        if values.len() > MAX_VALUES {
            return Err(format!("--sweep: at most {MAX_VALUES} values"));
        }
        Ok(Axis { key, values })
    }

    /// `base` with this axis's knob at `v`; an error naming the policy when it lacks the knob.
    pub fn apply(&self, base: &Case, v: f64) -> Result<Case, String> {
        let mut c = base.clone();
        let p = &mut c.case.policy;
        let lacks = |what: &str| {
            format!(
                "{}: --sweep {} varies {what}, and this policy has none",
                base.case.name,
                self.key.as_str()
            )
        };
        match self.key {
            Key::Target | Key::Tolerance => {
                let found = (p.rules.iter_mut()).find_map(|r| match &mut r.kind {
                    RuleKind::TargetTracking { target, tolerance } => {
                        Some((r.metric, target, tolerance))
                    }
                    _ => None,
                });
                let Some((metric, target, tolerance)) = found else {
                    return Err(lacks("a target-tracking rule"));
                };
                match self.key {
                    Key::Target => {
                        let was = std::mem::replace(target, v);
                        // A forecast of the rule's own metric stays sized as before relative
                        // to the rule (equal when the policy keeps them equal, as
                        // policies/predictive.yaml does); a CPU target stops at 100 %.
                        let same_metric = |pr: &&mut Predictive| pr.metric == metric;
                        if let Some(pr) = p.predictive.as_mut().filter(same_metric) {
                            pr.target *= v / was;
                            if pr.metric == MetricKind::Cpu {
                                pr.target = pr.target.min(100.0);
                            }
                        }
                    }
                    _ => *tolerance = v,
                }
            }
            Key::ScaleInCooldown => p.scale_in.cooldown_secs = (v * 60.0) as u64,
            Key::ScaleOutCooldown => p.scale_out.cooldown_secs = (v * 60.0) as u64,
            Key::Quantile | Key::Level => {
                let Some(pr) =
                    (p.predictive.as_mut()).filter(|pr| pr.forecaster == ForecasterKind::Seasonal)
                else {
                    return Err(lacks("the seasonal forecast of a `predictive` section"));
                };
                match self.key {
                    Key::Quantile => pr.seasonal.quantile = v,
                    _ => pr.seasonal.level_secs = (v * 60.0) as u64,
                }
            }
        }
        Ok(c)
    }
}

/// One run at one value of the knob.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The policy's name, or the baseline's without its target.
    pub family: String,
    pub kind: RunKind,
    /// The knob's value this run had (a baseline outside a `target` sweep: its own target).
    pub value: f64,
    #[serde(flatten)]
    pub score: Score,
    /// Replica-hours over the oracle's.
    pub x_oracle: f64,
}

/// A trace's frontier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frontier {
    pub trace: String,
    pub key: Key,
    pub values: Vec<f64>,
    /// The floor: the oracle's replica-hours (it has no breach-minutes).
    pub oracle_replica_hours: f64,
    /// The reactive baselines' (min, max) replicas: the first policy's bounds
    /// ([`super::baseline_bounds`]).
    pub baseline_replicas: (u32, u32),
    pub points: Vec<Point>,
}

/// A baseline's family: its name without the target (`aurora-target-60-counting-creating` →
/// `aurora-target-counting-creating`).
fn family(s: &Score) -> String {
    match s.kind {
        RunKind::Policy => s.name.clone(),
        _ => s
            .name
            .split('-')
            .filter(|p| p.parse::<f64>().is_err())
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// Run the frontier of the policies `bases` on `trace`: each policy at every value; the reactive
/// baselines (bounded like the first policy) at every value when the key is `target`, else
/// once at `opts.baseline_target`.
pub async fn run(
    trace: &Trace,
    bases: &[Case],
    axis: &Axis,
    opts: &Options,
) -> Result<Frontier, String> {
    let mut points = Vec::new();
    let mut oracle = None;
    for (i, &v) in axis.values.iter().enumerate() {
        let cases = (bases.iter())
            .map(|b| axis.apply(b, v))
            .collect::<Result<Vec<_>, _>>()?;
        let mut o = opts.clone();
        o.timelines = false;
        if axis.key == Key::Target {
            o.baseline_target = v;
        }
        let r = backtest(trace, &cases, &o).await?;
        let floor = r.oracle().map_or(f64::NAN, |s| s.replica_hours);
        oracle.get_or_insert(floor);
        let baselines_too = axis.key == Key::Target || i == 0;
        for s in &r.scores {
            let take = match s.kind {
                RunKind::Policy => true,
                RunKind::TargetTracking | RunKind::Hpa => baselines_too,
                RunKind::Oracle | RunKind::Static => false,
            };
            if take {
                let value = match (s.kind, axis.key) {
                    (RunKind::Policy, _) | (_, Key::Target) => v,
                    _ => o.baseline_target,
                };
                points.push(Point {
                    family: family(s),
                    kind: s.kind,
                    value,
                    x_oracle: s.replica_hours / floor,
                    score: s.clone(),
                });
            }
        }
    }
    Ok(Frontier {
        trace: trace.name.clone(),
        key: axis.key,
        values: axis.values.clone(),
        oracle_replica_hours: oracle.unwrap_or(f64::NAN),
        baseline_replicas: super::baseline_bounds(bases, opts.peak_replicas),
        points,
    })
}

/// The run families of a frontier, in order of first appearance.
pub fn families(f: &Frontier) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in &f.points {
        if !out.contains(&p.family.as_str()) {
            out.push(&p.family);
        }
    }
    out
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw the frontier: {e}")
}

/// Ten colours; past ten families the markers change shape (circle, triangle, cross) so no two
/// families look alike until thirty.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The SVG: one panel per trace, x = replica-hours, y = breach-minutes, a line with labelled
/// markers per run family, the oracle's replica-hours as a dashed vertical floor.
pub fn render(frontiers: &[Frontier]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let h = 520 * frontiers.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (1000, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (f, area) in frontiers
            .iter()
            .zip(root.split_evenly((frontiers.len().max(1), 1)).iter())
        {
            panel(f, area)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn panel(
    f: &Frontier,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    let xs = f.points.iter().map(|p| p.score.replica_hours);
    let xmax = xs.clone().fold(f.oracle_replica_hours, f64::max) * 1.05;
    let xmin = xs.fold(f.oracle_replica_hours, f64::min) * 0.95;
    let ymax = f
        .points
        .iter()
        .map(|p| p.score.breach_minutes)
        .max()
        .unwrap_or(0) as f64
        * 1.1
        + 1.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: cost/breach frontier ({} varied; each policy and each baseline at each value)",
                f.trace,
                f.key.as_str()
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xmin..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("replica-hours (cost)")
        .y_desc("breach-minutes")
        .draw()
        .map_err(err)?;
    let floor = f.oracle_replica_hours;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(floor, 0.0), (floor, ymax)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!(
            "oracle (the floor: {floor:.1} replica-hours, 0 breach-minutes)"
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    for (i, fam) in families(f).into_iter().enumerate() {
        draw_family(&mut chart, f, fam, i)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The frontier's chart: replica-hours across, breach-minutes up.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One family's points (the `i`th family of `f`), joined in the order of the varied value,
/// each marked and labelled with its value, and its legend entry.
fn draw_family(chart: &mut Chart, f: &Frontier, fam: &str, i: usize) -> Result<(), String> {
    let c = COLORS[i % COLORS.len()];
    let mut pts: Vec<&Point> = f.points.iter().filter(|p| p.family == fam).collect();
    pts.sort_by(|a, b| a.value.total_cmp(&b.value));
    let xy: Vec<(f64, f64)> = pts
        .iter()
        .map(|p| (p.score.replica_hours, p.score.breach_minutes as f64))
        .collect();
    chart
        .draw_series(LineSeries::new(xy.clone(), c.stroke_width(2)))
        .map_err(err)?
        .label(fam.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    let style = c.filled();
    match (i / COLORS.len()) % 3 {
        0 => chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, style))),
        1 => chart.draw_series(xy.iter().map(|&p| TriangleMarker::new(p, 5, style))),
        _ => chart.draw_series(xy.iter().map(|&p| Cross::new(p, 4, c.stroke_width(2)))),
    }
    .map_err(err)?;
    chart
        .draw_series(pts.iter().zip(&xy).map(|(p, &(x, y))| {
            Text::new(
                format!("{}", p.value),
                (x, y),
                ("sans-serif", 11).into_font(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_specs_parse_or_name_what_is_wrong() {
        let a = Axis::parse("target=66,55, 60").unwrap();
        assert_eq!(a.key, Key::Target);
        assert_eq!(a.values, vec![55.0, 60.0, 66.0]);
        let c = Axis::parse("scale_in_cooldown=5m,15m").unwrap();
        assert_eq!(c.values, vec![5.0, 15.0]);
        // `m` only for the keys in minutes, once, and the value shown as written.
        assert!(Axis::parse("target=70m")
            .unwrap_err()
            .contains("\"70m\" is not a CPU percentage"));
        assert!(Axis::parse("scale_in_cooldown=15mm")
            .unwrap_err()
            .contains("\"15mm\""));
        assert!(Axis::parse("scale_in_cooldown=1.5")
            .unwrap_err()
            .contains("whole minutes"));
        assert!(Axis::parse("target").unwrap_err().contains("KEY=V1,V2"));
        assert!(Axis::parse("speed=1")
            .unwrap_err()
            .contains("unknown key \"speed\""));
        assert!(Axis::parse("target=55,abc")
            .unwrap_err()
            .contains("\"abc\""));
        assert!(Axis::parse("target=0").unwrap_err().contains("1 to 100"));
        assert!(Axis::parse("tolerance=0.9")
            .unwrap_err()
            .contains("0 to 0.5"));
        let many = (1..=21)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(Axis::parse(&format!("target={many}"))
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn a_target_sweep_moves_the_forecasts_sizing_target_with_the_rules() {
        let text = include_str!("../../policies/predictive.yaml");
        let base = crate::backtest::load_policy("predictive", "p.yaml", text, None, 4).unwrap();
        let axis = Axis::parse("target=55").unwrap();
        let c = axis.apply(&base, 55.0).unwrap();
        let rule = c.case.policy.rules.iter().find_map(|r| match r.kind {
            RuleKind::TargetTracking { target, .. } => Some(target),
            _ => None,
        });
        assert_eq!(rule, Some(55.0));
        assert_eq!(c.case.policy.predictive.as_ref().unwrap().target, 55.0);
        // A sizing target apart from the rule's keeps its ratio.
        let mut apart = base.clone();
        apart.case.policy.predictive.as_mut().unwrap().target = 77.0;
        let c = axis.apply(&apart, 55.0).unwrap();
        let t = c.case.policy.predictive.as_ref().unwrap().target;
        assert!((t - 60.5).abs() < 1e-9, "{t}");
        // Tolerance sweeps leave it alone.
        let tol = Axis::parse("tolerance=0.2").unwrap();
        let c = tol.apply(&base, 0.2).unwrap();
        assert_eq!(c.case.policy.predictive.as_ref().unwrap().target, 70.0);
        // A CPU sizing target stops at 100 %.
        apart.case.policy.predictive.as_mut().unwrap().target = 90.0;
        let c = Axis::parse("target=80")
            .unwrap()
            .apply(&apart, 80.0)
            .unwrap();
        assert_eq!(c.case.policy.predictive.as_ref().unwrap().target, 100.0);
        // A forecast of another metric than the rule's keeps its own target.
        let mut other = base.clone();
        other.case.policy.rules[0].metric = MetricKind::Connections;
        let c = axis.apply(&other, 55.0).unwrap();
        assert_eq!(c.case.policy.predictive.as_ref().unwrap().target, 70.0);
    }

    #[test]
    fn forecast_keys_set_the_seasonal_forecast_and_need_one() {
        let load = |name: &str, text: &str| {
            crate::backtest::load_policy(name, "p.yaml", text, None, 4).unwrap()
        };
        let predictive = load("predictive", include_str!("../../policies/predictive.yaml"));
        let q = Axis::parse("quantile=1,0.5").unwrap();
        assert_eq!((q.key, q.values.clone()), (Key::Quantile, vec![0.5, 1.0]));
        let c = q.apply(&predictive, 0.5).unwrap();
        assert_eq!(
            c.case.policy.predictive.as_ref().unwrap().seasonal.quantile,
            0.5
        );
        let l = Axis::parse("level=0,60m").unwrap();
        let c = l.apply(&predictive, 60.0).unwrap();
        assert_eq!(
            c.case
                .policy
                .predictive
                .as_ref()
                .unwrap()
                .seasonal
                .level_secs,
            3600
        );
        assert!(Axis::parse("quantile=1.5").unwrap_err().contains("0 to 1"));
        assert!(Axis::parse("level=721").unwrap_err().contains("0 to 720"));
        // A policy without a predictive section, or with another forecaster: named.
        let reactive = load("cpu-target", include_str!("../../policies/cpu-target.yaml"));
        let e = q.apply(&reactive, 0.5).unwrap_err();
        assert!(
            e.starts_with("cpu-target: --sweep quantile varies the seasonal"),
            "{e}"
        );
        let mut hw = predictive.clone();
        hw.case.policy.predictive.as_mut().unwrap().forecaster = ForecasterKind::HoltWinters;
        let e = l.apply(&hw, 60.0).unwrap_err();
        assert!(
            e.starts_with("predictive: --sweep level varies the seasonal forecast of a `predictive` section, and this policy has none"),
            "{e}"
        );
    }

    #[test]
    fn a_baseline_family_drops_its_target() {
        let s = |name: &str, kind| Score {
            name: name.into(),
            kind,
            replica_hours: 0.0,
            breach_minutes: 0,
            actions: 0,
            max_replicas: 0,
            minutes: 0,
            minutes_with_data: 0,
        };
        assert_eq!(
            family(&s(
                "aurora-target-62.5-counting-creating",
                RunKind::TargetTracking
            )),
            "aurora-target-counting-creating"
        );
        assert_eq!(family(&s("hpa-target-60", RunKind::Hpa)), "hpa-target");
        assert_eq!(family(&s("cpu-70", RunKind::Policy)), "cpu-70");
    }
}
