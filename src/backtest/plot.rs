//! `backtest --plot FILE.svg`: one SVG (plotters) with the demand on top, then per run (each
//! policy and baseline) its replica count and per-replica CPU over time, with the 80 % breach
//! line, and for a policy with `predictive` the replicas its forecast sized for (green). Long series are reduced to at most ~1500 points per line (per bucket: the highest
//! value, so that peaks and breaches stay visible).

use super::score::Timeline;
use crate::adapters::sim_load::Demand;
use plotters::prelude::*;

const WIDTH: u32 = 1400;
const TOP: u32 = 220;
const ROW: u32 = 200;
const MAX_POINTS: usize = 1500;

fn bucket_max<T: Copy>(
    values: &[T],
    b: usize,
    f: impl Fn(T) -> Option<f64>,
) -> Vec<(f64, Option<f64>)> {
    values
        .chunks(b.max(1))
        .enumerate()
        .map(|(i, c)| {
            let m = c.iter().filter_map(|v| f(*v)).reduce(f64::max);
            ((i * b.max(1)) as f64 / 1440.0, m)
        })
        .collect()
}

/// Split a series at missing values into drawable runs.
fn runs(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (x, y) in points {
        match y {
            Some(y) => out.last_mut().map(|r| r.push((*x, *y))).unwrap_or(()),
            None if out.last().is_some_and(|r| !r.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw the plot: {e}")
}

/// One drawing area of the SVG.
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Render the SVG text.
pub fn render(
    title: &str,
    demand: &Demand,
    runs_in: &[(String, Timeline)],
) -> Result<String, String> {
    let n = demand.len().max(1);
    let b = n.div_ceil(MAX_POINTS);
    let days = n as f64 / 1440.0;
    let height = TOP + ROW * runs_in.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(TOP);
        draw_demand(&top, title, demand, b, days)?;
        let rows = rest.split_evenly((runs_in.len().max(1), 1));
        for ((name, t), area) in runs_in.iter().zip(rows.iter()) {
            draw_run(area, name, t, b, days)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The top panel: the demand over the days, `b` minutes to a point.
fn draw_demand(
    top: &Area,
    title: &str,
    demand: &Demand,
    b: usize,
    days: f64,
) -> Result<(), String> {
    let dem = bucket_max(&demand.units, b, |v| v);
    let dmax = demand.peak().unwrap_or(1.0).max(1e-9) * 1.1;
    let mut chart = ChartBuilder::on(top)
        .caption(
            format!("{title}: demand (replica-capacity units)"),
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .right_y_label_area_size(48)
        .build_cartesian_2d(0f64..days, 0f64..dmax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("days")
        .y_desc("demand")
        .draw()
        .map_err(err)?;
    for r in runs(&dem) {
        chart.draw_series(LineSeries::new(r, &BLACK)).map_err(err)?;
    }
    Ok(())
}

/// One run's panel: its replicas (and forecast replicas) on the left axis, the per-replica CPU
/// and the 80 % line on the right.
fn draw_run(area: &Area, name: &str, t: &Timeline, b: usize, days: f64) -> Result<(), String> {
    let rmax = t.replicas.iter().copied().max().unwrap_or(1) as f64 + 1.0;
    let reps = bucket_max(&t.replicas, b, |v| Some(v as f64));
    let cpu = bucket_max(&t.cpu, b, |v| (!v.is_nan()).then_some(v as f64));
    let fc = bucket_max(&t.forecast, b, |v| (!v.is_nan()).then_some(v as f64));
    let has_forecast = fc.iter().any(|(_, v)| v.is_some());
    let rmax = fc
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(rmax, |m, v| m.max(v + 1.0));
    let caption = if has_forecast {
        format!("{name}: replicas (blue), forecast replicas (green), per-replica CPU % (red, right), 80 % line")
    } else {
        format!("{name}: replicas (blue), per-replica CPU % (red, right), 80 % line")
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .right_y_label_area_size(48)
        .build_cartesian_2d(0f64..days, 0f64..rmax)
        .map_err(err)?
        .set_secondary_coord(0f64..days, 0f64..105f64);
    chart
        .configure_mesh()
        .x_desc("days")
        .y_desc("replicas")
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("CPU %")
        .draw()
        .map_err(err)?;
    for r in runs(&cpu) {
        chart
            .draw_secondary_series(LineSeries::new(r, RED.mix(0.6)))
            .map_err(err)?;
    }
    chart
        .draw_secondary_series(LineSeries::new(
            vec![(0.0, 80.0), (days, 80.0)],
            RGBColor(120, 120, 120).mix(0.8),
        ))
        .map_err(err)?;
    for r in runs(&fc) {
        chart
            .draw_series(LineSeries::new(r, RGBColor(0, 150, 60).stroke_width(1)))
            .map_err(err)?;
    }
    for r in runs(&reps) {
        chart
            .draw_series(LineSeries::new(r, BLUE.stroke_width(2)))
            .map_err(err)?;
    }
    Ok(())
}
