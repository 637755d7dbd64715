//! The figures as an SVG bar chart (`--svg PATH`), written by hand: one
//! group of bars per workload, each with its own scale and unit.

use crate::row::{Cell, Row, COLS};
use std::fmt::Write as _;

/// The figures as a bar chart: per workload one bar per transport, scaled to
/// the row's largest figure, each labelled with its value, and lonet's
/// verdict beside the workload's name.
pub fn chart(rows: &[Row], header: &str) -> String {
    const W: f64 = 1100.0;
    const LABEL: f64 = 150.0;
    const BAR_MAX: f64 = 760.0;
    const BAR: f64 = 16.0;
    const COLORS: [&str; COLS.len()] = ["#d9480f", "#1c7ed6", "#37b24d", "#868e96", "#7048e8"];
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let charted: Vec<&Row> = rows
        .iter()
        .filter(|r| r.cells.iter().any(|c| c.val().is_some()))
        .collect();
    let row_h = COLS.len() as f64 * BAR + 44.0;
    let top = 70.0;
    let h = top + row_h * charted.len() as f64 + 20.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, line) in header.lines().take(2).enumerate() {
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{}\" font-size=\"{}\">{}</text>",
            20.0 + 18.0 * i as f64,
            if i == 0 { 15 } else { 11 },
            esc(line)
        );
    }
    for (k, r) in charted.iter().enumerate() {
        let y0 = top + row_h * k as f64;
        let better = if r.unit.lower_is_better() {
            "lower is better"
        } else {
            "higher is better"
        };
        let _ = writeln!(
            out,
            "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ({better}) · lonet: {}</text>",
            y0 + 14.0,
            esc(&r.name),
            W - 10.0,
            y0 + 14.0,
            r.unit.name(),
            esc(&r.verdict())
        );
        let max = r.cells.iter().filter_map(Cell::val).fold(0.0f64, f64::max);
        for (j, c) in r.cells.iter().enumerate() {
            let y = y0 + 22.0 + BAR * j as f64;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LABEL - 6.0,
                y + BAR - 4.0,
                COLS[j]
            );
            let (len, text) = match c {
                Cell::Val(v) if max > 0.0 => (v / max * BAR_MAX, r.unit.fmt(*v)),
                Cell::Val(v) => (0.0, r.unit.fmt(*v)),
                Cell::NotApplicable(why) => (0.0, why.to_string()),
                Cell::Failed(_) => (0.0, "failed".to_string()),
            };
            let _ = writeln!(
                out,
                "<rect x=\"{LABEL}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                y + 1.0,
                BAR - 2.0,
                COLORS[j],
                LABEL + len + 6.0,
                y + BAR - 4.0,
                esc(&text)
            );
        }
    }
    out += "</svg>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{Target, Unit};

    #[test]
    fn one_bar_per_cell_scaled_to_the_rows_largest() {
        let row = |name: &str, cells| Row {
            name: name.into(),
            unit: Unit::PerSec,
            cells,
            target: Target::None,
            target_text: String::new(),
            informational: false,
        };
        let rows = [
            row(
                "a <b> & c",
                [
                    Cell::Val(2.0),
                    Cell::Val(1.0),
                    Cell::NotApplicable("n/a"),
                    Cell::Failed("x".into()),
                    Cell::NotApplicable("–"),
                ],
            ),
            // No figure at all: not charted.
            row("empty", [0, 1, 2, 3, 4].map(|_| Cell::NotApplicable("n/a"))),
        ];
        let svg = chart(&rows, "title\nmachine\nmore");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains(">a &lt;b&gt; &amp; c</text>"));
        assert!(!svg.contains("empty"));
        assert!(!svg.contains("more"));
        // A background and five bars: the largest full length, the other half.
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(svg.contains("width=\"760.0\""));
        assert!(svg.contains("width=\"380.0\""));
        assert!(svg.contains(">failed</text>"));
    }
}
