//! The chart: p50 (solid) and p99 (dashed) latency against packet loss, one
//! colour per transport, log-scale latency axis.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::samples::Medians;

const SIZE: (u32, u32) = (760, 460);

/// The x axis counts quarters of the step between two loss levels (plotters
/// labels integer axes but not custom f64 ones), so the outer levels sit a
/// quarter step inside the frame.
const STEP: i32 = 4;

/// The colours bench/kcp_loss.sh's own chart used, so old and new charts
/// read alike; a transport not listed here takes one from the palette.
fn colour(transport: &str, i: usize) -> RGBColor {
    match transport {
        "tcp" => RGBColor(0xc0, 0x39, 0x2b),
        "kcp-normal" => RGBColor(0x29, 0x80, 0xb9),
        "kcp-fast" => RGBColor(0x27, 0xae, 0x60),
        _ => {
            let (r, g, b) = Palette99::pick(i).rgb();
            RGBColor(r, g, b)
        }
    }
}

/// Decades from 10^lo to 10^hi (exponents), covering every value; no lower
/// than 0.01 ms, below which a value is drawn on the axis floor.
fn decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (min, max) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = min.max(0.01).log10().floor() as i32;
    let hi = (max.max(0.01).log10().ceil() as i32).max(lo + 1);
    (lo, hi)
}

/// "0.01 ms", "1 ms", "1000 ms": as many decimals as the decade needs.
fn ms_label(v: f64) -> String {
    let decimals = (-v.log10().round()).max(0.0) as usize;
    format!("{v:.decimals$} ms")
}

pub fn draw(m: &Medians, title: &str, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = decades(m.values());
    let decade = |e: i32| 10f64.powi(e);
    let floor = decade(lo);
    // Minor grid lines at 2x and 5x each decade.
    let minor: Vec<f64> = (lo..hi)
        .flat_map(|e| [2.0 * decade(e), 5.0 * decade(e)])
        .collect();
    let y = (floor..decade(hi))
        .log_scale()
        .with_key_points((lo..=hi).map(decade).collect())
        .with_light_points(minor);
    // The loss levels are few and uneven (0, 1, 5, 10 %): on a linear axis
    // 0 and 1 would crowd together, so each level gets an equal step and
    // its label says which it is.
    let levels = m.losses.len() as i32;
    let x = (-1..(levels - 1) * STEP + 1).with_key_points((0..levels).map(|i| i * STEP).collect());

    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x, y)?;
    let loss_label = |v: &i32| match m.losses.get((v / STEP) as usize) {
        Some(loss) if v % STEP == 0 => format!("{loss}%"),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("packet loss (each direction)")
        .y_desc("round-trip latency (log scale)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_label_formatter(&loss_label)
        .y_label_formatter(&|v| ms_label(*v))
        .disable_x_mesh()
        .draw()?;

    for (i, s) in m.series.iter().enumerate() {
        let c = colour(&s.transport, i);
        let style = c.stroke_width(2);
        let at = |pts: &[(usize, f64)]| -> Vec<(i32, f64)> {
            pts.iter()
                .map(|&(i, v)| (i as i32 * STEP, v.max(floor)))
                .collect()
        };
        chart
            .draw_series(LineSeries::new(at(&s.p50_ms), style))?
            .label(format!("{} p50", s.transport))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        chart
            .draw_series(DashedLineSeries::new(at(&s.p99_ms), 6, 4, style))?
            .label(format!("{} p99", s.transport))
            .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 24, y)], 6, 4, style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .border_style(BLACK.mix(0.4))
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_cover_every_value() {
        let cases: &[(&[f64], (i32, i32))] = &[
            (&[0.27, 1356.8], (-1, 4)),
            (&[1.0, 10.0], (0, 1)),
            (&[5.0], (0, 1)),
            (&[0.0, 0.5], (-2, 0)),
        ];
        for (values, want) in cases {
            assert_eq!(decades(values.iter().copied()), *want, "{values:?}");
        }
    }

    #[test]
    fn labels_have_the_decimals_their_decade_needs() {
        assert_eq!(ms_label(0.01), "0.01 ms");
        assert_eq!(ms_label(0.1), "0.1 ms");
        assert_eq!(ms_label(1.0), "1 ms");
        assert_eq!(ms_label(1000.0), "1000 ms");
    }
}
