//! What every Herald benchmark does with its figures: prints them as a Markdown table (the
//! measure, the figure, the target it is held against), writes them as JSON, and draws them
//! as SVG charts, all under `target/bench/`, so that `scripts/bench` leaves one directory that
//! BENCHMARKS.md is written from.
//!
//! The charts are SVG drawn by plotters without a font library: text is emitted as SVG
//! `<text>` and laid out by the viewer, so nothing depends on the fonts of the machine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Where benchmark results go: `target/bench/` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).expect("creating target/bench");
    dir.canonicalize().unwrap_or(dir)
}

/// The figures of one benchmark run.
pub struct Report {
    name: String,
    title: String,
    rows: Vec<[String; 3]>,
    json: serde_json::Map<String, serde_json::Value>,
    charts: Vec<PathBuf>,
}

impl Report {
    /// A report written to `target/bench/<name>.{json,md}`, headed `title` (what ran, where).
    pub fn new(name: &str, title: &str) -> Self {
        Self {
            name: name.to_owned(),
            title: title.to_owned(),
            rows: Vec::new(),
            json: serde_json::Map::new(),
            charts: Vec::new(),
        }
    }

    /// One line of the table: what was measured, the figure, and the target ("" if none).
    pub fn row(&mut self, measure: impl Into<String>, value: impl Into<String>, target: &str) {
        self.rows
            .push([measure.into(), value.into(), target.to_owned()]);
    }

    /// One field of the JSON record.
    pub fn field(&mut self, key: &str, value: serde_json::Value) {
        self.json.insert(key.to_owned(), value);
    }

    /// A bar chart `target/bench/<name>-<suffix>.svg`, one bar per `(label, value)`.
    pub fn bars(&mut self, suffix: &str, title: &str, unit: &str, bars: &[(String, f64)]) {
        let path = out_dir().join(format!("{}-{suffix}.svg", self.name));
        draw_bars(&path, title, unit, bars).expect("drawing a bar chart");
        self.charts.push(path);
    }

    /// A line chart `target/bench/<name>-<suffix>.svg`, one line per named series of
    /// `(x, y)` points.
    pub fn lines(
        &mut self,
        suffix: &str,
        title: &str,
        (x_unit, y_unit): (&str, &str),
        series: &[(String, Vec<(f64, f64)>)],
    ) {
        let path = out_dir().join(format!("{}-{suffix}.svg", self.name));
        draw_lines(&path, title, (x_unit, y_unit), series).expect("drawing a line chart");
        self.charts.push(path);
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n| measure | value | target |\n|---|---|---|\n",
            self.title
        );
        for [measure, value, target] in &self.rows {
            let _ = writeln!(out, "| {measure} | {value} | {target} |");
        }
        out
    }

    /// Prints the table and writes the JSON record and the Markdown table; returns the JSON
    /// path.
    pub fn finish(mut self) -> PathBuf {
        let dir = out_dir();
        let table = self.markdown();
        println!("\n{table}");
        for chart in &self.charts {
            println!("chart: {}", chart.display());
        }
        self.json.insert(
            "title".to_owned(),
            serde_json::Value::String(self.title.clone()),
        );
        self.json.insert(
            "table".to_owned(),
            serde_json::Value::Array(
                self.rows
                    .iter()
                    .map(|[m, v, t]| serde_json::json!({"measure": m, "value": v, "target": t}))
                    .collect(),
            ),
        );
        let json_path = dir.join(format!("{}.json", self.name));
        std::fs::write(
            &json_path,
            serde_json::to_string_pretty(&serde_json::Value::Object(self.json))
                .expect("a JSON record"),
        )
        .expect("writing the JSON record");
        std::fs::write(dir.join(format!("{}.md", self.name)), table)
            .expect("writing the Markdown table");
        println!("json: {}", json_path.display());
        json_path
    }
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

fn draw_bars(path: &Path, title: &str, unit: &str, bars: &[(String, f64)]) -> ChartResult {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.15;
    let count = bars.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d((0..count - 1).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(unit)
        .y_label_formatter(&|y| format_figure(*y))
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => bars
                .get(*i as usize)
                .map(|(label, _)| label.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
        let i = i as i32;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *value),
            ],
            Palette99::pick(i as usize).filled(),
        );
        bar.set_margin(0, 0, 18, 18);
        bar
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
        Text::new(
            format_figure(*value),
            (SegmentValue::CenterOf(i as i32), *value),
            ("sans-serif", 14)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    root.present()?;
    Ok(())
}

fn draw_lines(
    path: &Path,
    title: &str,
    (x_unit, y_unit): (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
) -> ChartResult {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(0.0_f64, f64::max).max(1e-9) * 1.05;
    let y_max = points().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_unit)
        .y_desc(y_unit)
        .x_label_formatter(&|x| format_figure(*x))
        .y_label_formatter(&|y| format_figure(*y))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new(*p, 3, Palette99::pick(i).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A figure as a person reads it: three significant digits, thousands separated.
pub fn format_figure(value: f64) -> String {
    if value.abs() >= 1000.0 {
        thousands(value.round() as i64)
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// An integer with `,` between thousands: `1,000,000`.
pub fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0 { format!("-{out}") } else { out }
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank; 0 for no values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `VmRSS` and `VmHWM` (its peak) of a process, in MiB; zeros once it has gone.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-12_345), "-12,345");
        assert_eq!(format_figure(36_512.4), "36,512");
        assert_eq!(format_figure(0.4213), "0.42");
        assert_eq!(format_figure(12.34), "12.3");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 1.0), 100);
        assert_eq!(percentile(&[], 0.99), 0);
    }

    #[test]
    fn charts_are_svg_with_their_labels_and_figures() {
        let mut report = Report::new("selftest", "the report's own test");
        report.bars(
            "bars",
            "events/s",
            "events/s",
            &[
                ("passthrough".to_owned(), 90_000.0),
                ("router".to_owned(), 36_000.0),
            ],
        );
        report.lines(
            "lines",
            "latency",
            ("events/s", "ms"),
            &[("p99".to_owned(), vec![(1000.0, 12.0), (5000.0, 30.0)])],
        );
        report.row("ratio", "0.40", ">= 0.7");
        report.field("ratio", serde_json::json!(0.4));
        let bars = std::fs::read_to_string(out_dir().join("selftest-bars.svg")).unwrap();
        assert!(bars.starts_with("<svg"), "{bars:.200}");
        for text in ["passthrough", "router", "90,000", "36,000"] {
            assert!(bars.contains(text), "the bar chart lacks {text}");
        }
        let lines = std::fs::read_to_string(out_dir().join("selftest-lines.svg")).unwrap();
        assert!(
            lines.contains("<polyline") || lines.contains("<path"),
            "no line drawn"
        );
        assert!(lines.contains("p99"), "the legend lacks the series' name");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.finish()).unwrap()).unwrap();
        assert_eq!(json["ratio"], 0.4);
        assert_eq!(json["table"][0]["target"], ">= 0.7");
    }
}
