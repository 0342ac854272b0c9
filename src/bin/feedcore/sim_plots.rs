//! The report's SVG plots (plotters): throughput by strategy, the read-latency
//! distribution by strategy, and cost against the read:write ratio (the Feeding Frenzy
//! figure).

use std::path::Path;

use plotters::prelude::*;

use crate::sim_report::{Row, SimReport};

type Res = Result<(), String>;

/// A bar of the throughput plot: its label and how to get it from a row.
type Metric = (&'static str, fn(&Row) -> f64);

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The plots' chart: an SVG file, any two axes.
type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// Draws `points` as a labelled line in `colour`, with a dot of `radius` at each.
fn line_with_points<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    label: &str,
    radius: i32,
) -> Res
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, radius, colour.filled())),
        )
        .map_err(err)?;
    Ok(())
}

/// Draws the series' legend at `position`.
fn legend<X: Ranged, Y: Ranged>(chart: &mut Chart<'_, X, Y>, position: SeriesLabelPosition) -> Res {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Writes `throughput.svg`, `read_latency.svg` and `cost_by_ratio.svg` into `dir`.
pub(crate) fn write_all(report: &SimReport, dir: &Path) -> Res {
    let ratio = report.ratios[0];
    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.read_write == ratio)
        .collect();
    throughput(&rows, ratio, &dir.join("throughput.svg"))?;
    latency(&rows, ratio, &dir.join("read_latency.svg"))?;
    cost(report, &dir.join("cost_by_ratio.svg"))
}

/// Grouped bars on a log axis: posts/s, deliveries/s, reads/s per row.
fn throughput(rows: &[&Row], ratio: f64, path: &Path) -> Res {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = rows
        .iter()
        .flat_map(|r| [r.posts_per_s, r.deliveries_per_s, r.reads_per_s])
        .fold(10.0f64, f64::max)
        * 3.0;
    let n = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput by strategy (read:write {ratio})"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(20)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..n - 0.5, (1.0f64..top).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc("operations per second (log)")
        .draw()
        .map_err(err)?;
    let metrics: [Metric; 3] = [
        ("posts/s", |r| r.posts_per_s),
        ("deliveries/s", |r| r.deliveries_per_s),
        ("reads/s", |r| r.reads_per_s),
    ];
    for (m, (label, value)) in metrics.iter().enumerate() {
        let colour = COLOURS[m];
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x0 = i as f64 - 0.4 + 0.27 * m as f64;
                Rectangle::new([(x0, 1.0), (x0 + 0.25, value(r).max(1.0))], colour.filled())
            }))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
    }
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            Text::new(
                r.name.to_string(),
                (i as f64 - 0.35, 1.6),
                ("sans-serif", 15),
            )
        }))
        .map_err(err)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(err)
}

/// Latency against "nines" (-log10(1 - q)), one line per row.
fn latency(rows: &[&Row], ratio: f64, path: &Path) -> Res {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let nines = |q: f64| if q >= 1.0 { 5.0 } else { -(1.0 - q).log10() };
    let hi = rows
        .iter()
        .flat_map(|r| r.quantiles.iter().map(|&(_, ns)| ns as f64 / 1000.0))
        .fold(1.0f64, f64::max)
        * 2.0;
    let lo = rows
        .iter()
        .flat_map(|r| r.quantiles.iter().map(|&(_, ns)| ns as f64 / 1000.0))
        .filter(|&us| us > 0.0)
        .fold(hi, f64::min)
        / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Home-timeline read latency, page of 20 with bodies (read:write {ratio})"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo.max(0.01)..hi).log_scale(), 0.0f64..5.2)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency, microseconds (log)")
        .y_desc("quantile")
        .y_label_formatter(&|y| match y.round() as i64 {
            0 => "0".into(),
            1 => "0.9".into(),
            2 => "0.99".into(),
            3 => "0.999".into(),
            4 => "0.9999".into(),
            5 => "max".into(),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    for (i, r) in rows.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = r
            .quantiles
            .iter()
            .filter(|&&(_, ns)| ns > 0)
            .map(|&(q, ns)| (ns as f64 / 1000.0, nines(q)))
            .collect();
        line_with_points(&mut chart, points, colour, r.name, 3)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)
}

/// Cost per operation against the read:write ratio, one line per strategy.
fn cost(report: &SimReport, path: &Path) -> Res {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x = |r: f64| r.max(0.01);
    let xs: Vec<f64> = report.ratios.iter().map(|&r| x(r)).collect();
    let (x_lo, x_hi) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min) / 2.0,
        xs.iter().copied().fold(0.0f64, f64::max) * 2.0,
    );
    let costs: Vec<f64> = report
        .rows
        .iter()
        .filter_map(|r| r.cost_per_op)
        .filter(|&c| c > 0.0)
        .collect();
    let y_hi = costs.iter().copied().fold(1.0f64, f64::max) * 2.0;
    let y_lo = costs.iter().copied().fold(y_hi, f64::min) / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cost per operation against read:write ratio",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo.max(0.01)..y_hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("reads per post (log)")
        .y_desc("id bytes touched per operation (log)")
        .draw()
        .map_err(err)?;
    let mut names: Vec<&str> = Vec::new();
    for r in report.rows.iter().filter(|r| r.cost_per_op.is_some()) {
        if !names.contains(&r.name) {
            names.push(r.name);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = report
            .ratios
            .iter()
            .filter_map(|&ratio| {
                report
                    .cost(name, ratio)
                    .filter(|&c| c > 0.0)
                    .map(|c| (x(ratio), c))
            })
            .collect();
        line_with_points(&mut chart, points, colour, name, 4)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)
}
