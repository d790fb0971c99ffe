//! The dashboard's charts, drawn here as SVG text: a line chart (hit ratio per name over
//! time) and a stacked bar chart (hits and misses per slot). No fonts to measure and no
//! dependency: labels are `<text>` the browser lays out.

use std::fmt::Write as _;

/// Escapes text for HTML (and SVG) element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// Line colours, in order (legible on white, told apart by most colour-blind readers).
pub(crate) const PALETTE: [&str; 8] = [
    "#1b6ac9", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#4d908e", "#8c564b", "#7f7f7f",
];
const HIT: &str = "#2a9d8f";
const MISS: &str = "#d1495b";

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// `<svg>` opening, with a title for screen readers.
fn open(out: &mut String, title: &str, class: &str) {
    let _ = write!(
        out,
        r#"<svg class="{class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
}

/// Horizontal grid lines with labels at `ticks` (values from 0 to `max`).
fn grid(out: &mut String, max: f64, ticks: &[f64], label: impl Fn(f64) -> String) {
    for &tick in ticks {
        let y = TOP + plot_height() * (1.0 - tick / max);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{lx}" y="{ty:.1}" text-anchor="end" font-size="10" fill="#5b6470">{l}</text>"##,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 4.0,
            ty = y + 3.5,
            l = escape(&label(tick)),
        );
    }
}

/// Labels under the first and last slot and the middle one.
fn x_labels(out: &mut String, labels: &[String]) {
    let n = labels.len();
    if n == 0 {
        return;
    }
    for (i, anchor) in [(0, "start"), (n / 2, "middle"), (n - 1, "end")] {
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y}" text-anchor="{anchor}" font-size="10" fill="#5b6470">{l}</text>"##,
            x = x_of(i, n),
            y = HEIGHT - 6.0,
            l = escape(&labels[i]),
        );
    }
}

fn x_of(i: usize, n: usize) -> f64 {
    if n <= 1 {
        return LEFT + plot_width() / 2.0;
    }
    LEFT + plot_width() * i as f64 / (n - 1) as f64
}

/// A line per series of values from 0 to 1 (`None`: no data, a gap in the line), one
/// point per slot; `labels` names the slots.
pub(crate) fn ratio_lines(title: &str, labels: &[String], series: &[Vec<Option<f64>>]) -> String {
    let mut out = String::with_capacity(4096);
    open(&mut out, title, "chart ratio");
    grid(&mut out, 1.0, &[0.0, 0.25, 0.5, 0.75, 1.0], |t| {
        format!("{:.0}%", t * 100.0)
    });
    x_labels(&mut out, labels);
    for (line, values) in series.iter().enumerate() {
        let colour = PALETTE[line % PALETTE.len()];
        let n = values.len();
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                        run[0].0, run[0].1
                    );
                }
                _ => {
                    let points: Vec<String> =
                        run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                    let _ = write!(
                        out,
                        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                        points.join(" ")
                    );
                }
            }
            run.clear();
        };
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(v) => run.push((x_of(i, n), TOP + plot_height() * (1.0 - v.clamp(0.0, 1.0)))),
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    out.push_str("</svg>");
    out
}

/// Stacked bars of hits (below) and misses (above) per slot.
pub(crate) fn read_bars(title: &str, labels: &[String], hits: &[u64], misses: &[u64]) -> String {
    let mut out = String::with_capacity(4096);
    open(&mut out, title, "chart reads");
    let top = hits
        .iter()
        .zip(misses)
        .map(|(h, m)| h + m)
        .max()
        .unwrap_or(0)
        .max(1);
    let max = nice_ceiling(top);
    grid(
        &mut out,
        max as f64,
        &[0.0, max as f64 / 2.0, max as f64],
        |t| format!("{t:.0}"),
    );
    x_labels(&mut out, labels);
    let n = hits.len().max(1);
    let slot = plot_width() / n as f64;
    let width = (slot * 0.8).max(1.0);
    for (i, (&h, &m)) in hits.iter().zip(misses).enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let base = TOP + plot_height();
        let hit_h = plot_height() * h as f64 / max as f64;
        let miss_h = plot_height() * m as f64 / max as f64;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{hit_h:.1}" fill="{HIT}"/><rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="{miss_h:.1}" fill="{MISS}"/>"#,
            base - hit_h,
            base - hit_h - miss_h,
        );
    }
    out.push_str("</svg>");
    out
}

/// The smallest of 1, 2, 5 × 10^k at or above `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut scale = 1;
    loop {
        for step in [1, 2, 5] {
            if step * scale >= n {
                return step * scale;
            }
        }
        scale *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_gaps_and_stay_in_the_plot() {
        let labels: Vec<String> = (0..4).map(|i| format!("t{i}")).collect();
        let svg = ratio_lines(
            "hit ratio",
            &labels,
            &[vec![Some(1.0), Some(0.5), None, Some(0.0)]],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1, "two points, a gap");
        assert_eq!(svg.matches("<circle").count(), 1, "then a lone point");
        assert!(
            svg.contains(&format!("{:.1},{:.1}", LEFT, TOP)),
            "100% at the top"
        );
        assert!(svg.contains(">t0<") && svg.contains(">t3<"));
    }

    #[test]
    fn bars_stack_misses_on_hits() {
        let svg = read_bars("reads", &["a".into(), "b".into()], &[3, 0], &[1, 0]);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains(">5<"), "the scale rounds 4 up to 5: {svg}");
    }

    #[test]
    fn titles_are_escaped() {
        assert!(ratio_lines("<b>&", &[], &[]).contains("&lt;b&gt;&amp;"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(
            [0, 1, 3, 7, 10, 11, 4200].map(nice_ceiling),
            [1, 1, 5, 10, 10, 20, 5000]
        );
    }
}
