//! Reads the raw samples bench/models.sh writes (models.tsv) and draws
//! models.svg: throughput and p99 latency against connections (log x axis),
//! one line per I/O model, each point the median of its rounds.
//!
//! Usage: plot-models [IN.tsv] [OUT.svg]
//! (default: bench/results/models.tsv -> bench/results/models.svg)
//!
//! TSV columns: model, conns, round, rate, msgs, cpu_ticks, wall_secs, p99_us
//! (header line first). Rows with an empty rate are failures and are left
//! out, so a model's line ends where it broke.

use std::collections::BTreeMap;

use plotters::prelude::*;

type Series = BTreeMap<String, BTreeMap<u32, (Vec<f64>, Vec<f64>)>>;

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .unwrap_or_else(|| "bench/results/models.tsv".into());
    let output = args
        .next()
        .unwrap_or_else(|| "bench/results/models.svg".into());
    let text = std::fs::read_to_string(&input).map_err(|e| format!("{input}: {e}"))?;

    // Models in first-seen order, so colours follow the table.
    let mut order: Vec<String> = Vec::new();
    let mut data: Series = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(conns), Ok(rate), Ok(p99)) = (
            f[1].parse::<u32>(),
            f[3].parse::<f64>(),
            f[7].parse::<f64>(),
        ) else {
            continue;
        };
        if !order.iter().any(|m| m == f[0]) {
            order.push(f[0].to_string());
        }
        let e = data
            .entry(f[0].to_string())
            .or_default()
            .entry(conns)
            .or_default();
        e.0.push(rate);
        e.1.push(p99);
    }
    if data.is_empty() {
        return Err(format!("{input}: no samples").into());
    }
    let mut points: Vec<(String, Vec<(f64, f64, f64)>)> = Vec::new();
    for m in &order {
        let mut pts = Vec::new();
        for (&c, (rates, lats)) in data.get_mut(m).unwrap() {
            if let (Some(r), Some(l)) = (median(rates), median(lats)) {
                pts.push((c as f64, r, l));
            }
        }
        points.push((m.clone(), pts));
    }
    let all = points.iter().flat_map(|(_, p)| p.iter());
    let (mut cmin, mut cmax, mut rmax, mut lmin, mut lmax) = (f64::MAX, 1f64, 1f64, f64::MAX, 1f64);
    for &(c, r, l) in all {
        cmin = cmin.min(c);
        cmax = cmax.max(c);
        rmax = rmax.max(r);
        lmin = lmin.min(l.max(1.0));
        lmax = lmax.max(l);
    }

    let root = SVGBackend::new(&output, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let colour = |i: usize| Palette99::pick(i).to_rgba();

    let mut chart = ChartBuilder::on(&left)
        .caption("Throughput (echo, ping-pong)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((cmin * 0.8..cmax * 1.25).log_scale(), 0f64..rmax * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("messages/s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1e3))
        .draw()?;
    for (i, (m, pts)) in points.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))?
            .label(m.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let mut chart = ChartBuilder::on(&right)
        .caption("p99 round-trip latency", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (cmin * 0.8..cmax * 1.25).log_scale(),
            (lmin * 0.8..lmax * 1.25).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc("p99 latency (µs, log)")
        .draw()?;
    for (i, (m, pts)) in points.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.2)),
                c.stroke_width(2),
            ))?
            .label(m.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.2), 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    eprintln!("plot-models: wrote {output}");
    Ok(())
}
