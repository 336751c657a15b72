//! Loss and accuracy curves of a training run as a PNG (plotters, bitmap backend, with the
//! DejaVu Sans font embedded so no system fonts are needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::train::EpochStats;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // Registration only fails for unparsable font data, which the embedded font is not.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws `history` into `path`: loss (train, test) on the left, the test metric (and the
/// train accuracy when known) on the right. `metric` names the right panel's measure.
pub fn curves(path: &Path, history: &[EpochStats], metric: &str) -> Result<(), String> {
    register_font();
    let root = BitMapBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(550);
    let n = history.last().map_or(1, |h| h.epoch).max(1) as f64;
    let finite = |v: f32| v.is_finite();
    let losses: Vec<f32> = history
        .iter()
        .flat_map(|h| [h.train_loss, h.test_loss])
        .filter(|v| finite(*v))
        .collect();
    let lmax = losses.iter().fold(1e-3f32, |a, &b| a.max(b)) as f64;
    let mut c = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..n, 0f64..lmax * 1.05)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let series = |f: &dyn Fn(&EpochStats) -> f32| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter(|h| finite(f(h)))
            .map(|h| (h.epoch as f64, f(h) as f64))
            .collect()
    };
    for (name, data, color) in [
        ("train", series(&|h| h.train_loss), BLUE),
        ("test", series(&|h| h.test_loss), RED),
    ] {
        if data.is_empty() {
            continue;
        }
        c.draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    c.configure_series_labels()
        .label_font(("sans-serif", 14))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(&right)
        .caption(metric, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..n, 0f64..1.0f64)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, data, color) in [
        ("train", series(&|h| h.train_accuracy), BLUE),
        ("test", series(&|h| h.test_accuracy), RED),
    ] {
        if data.is_empty() {
            continue;
        }
        c.draw_series(data.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
