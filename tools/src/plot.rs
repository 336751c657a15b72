//! `tinyssm eval --plot`: one stream's outputs through several models as a PNG (plotters,
//! bitmap backend, with the DejaVu Sans font embedded so no system fonts are needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

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

/// One stream's outputs through several models (`tinyssm eval --plot`): a panel for each of
/// up to four output channels (those with the largest final |value| in the first model),
/// every model's trace overlaid. `traces[m]` is model m's `[steps × d]` outputs.
/// The file is written whole or not at all, and only over a regular file
/// (`tinyssm_host::io::write_via_temp`); errors name the path.
pub fn output_traces(
    path: &Path,
    title: &str,
    names: &[String],
    traces: &[Vec<f32>],
    d: usize,
) -> Result<(), tinyssm_host::HostError> {
    tinyssm_host::io::write_via_temp(path, |tmp| draw_traces(tmp, title, names, traces, d))
}

fn draw_traces(
    path: &Path,
    title: &str,
    names: &[String],
    traces: &[Vec<f32>],
    d: usize,
) -> Result<(), String> {
    register_font();
    let d = d.max(1);
    let steps = traces.first().map_or(0, |t| t.len() / d);
    if steps == 0 || traces.iter().any(|t| t.len() != steps * d) {
        return Err("no outputs to plot (or models of different output sizes)".into());
    }
    let last = &traces[0][(steps - 1) * d..];
    let mut chans: Vec<usize> = (0..d).collect();
    chans.sort_by(|&a, &b| last[b].abs().total_cmp(&last[a].abs()));
    chans.truncate(4);
    let root = BitMapBackend::new(path, (1100, 260 * chans.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((chans.len(), 1));
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (panel, &ch) in panels.iter().zip(&chans) {
        let vals = traces.iter().flat_map(|t| t.iter().skip(ch).step_by(d));
        let (lo, hi) = vals
            .filter(|v| v.is_finite())
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let pad = ((hi - lo) * 0.05).max(1e-3);
        let mut c = ChartBuilder::on(panel)
            .caption(format!("output {ch}"), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..steps as f64, (lo - pad) as f64..(hi + pad) as f64)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("step")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (t, name)) in traces.iter().zip(names).enumerate() {
            let color = colors[i % colors.len()];
            let pts: Vec<(f64, f64)> = t
                .iter()
                .skip(ch)
                .step_by(d)
                .enumerate()
                .map(|(s, &v)| (s as f64, v as f64))
                .collect();
            c.draw_series(LineSeries::new(
                pts,
                color.stroke_width(if i == 0 { 3 } else { 1 }),
            ))
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        c.configure_series_labels()
            .label_font(("sans-serif", 12))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
