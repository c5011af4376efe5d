//! The Grafana dashboard (`config/grafana/dashboards/vitalwatch-clinic.json`) for tests: its
//! panels and queries, and a small renderer that lays it out as an HTML page from the JSON
//! (`gridPos` on Grafana's 24-column grid) with data from a real Prometheus.
//!
//! The renderer is not Grafana (Grafana is not packaged in Debian): it draws each panel as a
//! box with its title; stat and table panels as their current values (instant queries, with
//! the panel's units, value mappings and thresholds), time series as SVG polylines (bars,
//! steps) and state timelines as coloured bands of `/api/v1/query_range` results. It fails
//! if any panel's query fails. Enough to show what the dashboard holds, with real data.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use super::prometheus::Prometheus;
use super::repo_root;

/// The uid of the provisioned Prometheus data source every panel uses.
pub const DATASOURCE_UID: &str = "vitalwatch-prometheus";

pub fn load() -> Value {
    let path = repo_root().join("config/grafana/dashboards/vitalwatch-clinic.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, rows included, with the panels of collapsed rows.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// One query of a panel.
pub struct Query<'a> {
    pub panel: &'a Value,
    pub ref_id: &'a str,
    pub expr: &'a str,
}

/// Every panel's every query.
pub fn queries(dashboard: &Value) -> Vec<Query<'_>> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| Query {
                    panel,
                    ref_id: t["refId"].as_str().expect("refId"),
                    expr: t["expr"].as_str().expect("expr"),
                })
        })
        .collect()
}

/// `expr` with Grafana's variables replaced (`$name` and `${name}`, longest names first);
/// panics on a variable left over.
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_string();
    for (name, value) in vars {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unknown variable in {expr}");
    out
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Grafana's named colours (dark theme).
fn color(name: &str) -> &str {
    match name {
        "green" => "#73BF69",
        "red" => "#F2495C",
        "yellow" => "#FADE2A",
        "blue" => "#5794F2",
        "orange" => "#FF9830",
        "purple" => "#B877D9",
        "text" => "#CCCCDC",
        "transparent" => "transparent",
        other => other,
    }
}

/// Grafana's classic palette, for series.
const PALETTE: [&str; 8] = [
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A6", "#705DA0",
];

/// A field's display settings: the panel's defaults, with an override's properties on top.
struct Field {
    unit: String,
    decimals: Option<usize>,
    mappings: Vec<Value>,
    thresholds: Vec<(Option<f64>, String)>,
    background: bool,
}

impl Field {
    fn of(panel: &Value, name: Option<&str>) -> Field {
        let defaults = &panel["fieldConfig"]["defaults"];
        let mut config: serde_json::Map<String, Value> =
            defaults.as_object().cloned().unwrap_or_default();
        let mut background = panel["options"]["colorMode"] == "background";
        for o in panel["fieldConfig"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if o["matcher"]["id"] == "byName"
                && Some(o["matcher"]["options"].as_str().unwrap_or("")) == name
            {
                for p in o["properties"].as_array().into_iter().flatten() {
                    let id = p["id"].as_str().unwrap_or("");
                    if id == "custom.cellOptions" {
                        background = p["value"]["type"] == "color-background";
                    } else {
                        config.insert(id.to_string(), p["value"].clone());
                    }
                }
            }
        }
        let thresholds = config
            .get("thresholds")
            .and_then(|t| t["steps"].as_array())
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["value"].as_f64(),
                    color(s["color"].as_str().unwrap_or("text")).to_string(),
                )
            })
            .collect();
        Field {
            unit: config
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string(),
            decimals: config
                .get("decimals")
                .and_then(Value::as_u64)
                .map(|d| d as usize),
            mappings: config
                .get("mappings")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            thresholds,
            background,
        }
    }

    /// The text and colour of `v`: a value mapping's, or the formatted value in its
    /// threshold's colour.
    fn display(&self, v: f64) -> (String, String) {
        for mapping in &self.mappings {
            for (key, m) in mapping["options"].as_object().into_iter().flatten() {
                if key.parse::<f64>().ok() == Some(v) {
                    let text = m["text"].as_str().unwrap_or(key).to_string();
                    return (
                        text,
                        color(m["color"].as_str().unwrap_or("text")).to_string(),
                    );
                }
            }
        }
        let mut colour = color("text").to_string();
        for (from, c) in &self.thresholds {
            if from.is_none_or(|from| v >= from) {
                colour = c.clone();
            }
        }
        (format_value(v, &self.unit, self.decimals), colour)
    }
}

fn format_value(v: f64, unit: &str, decimals: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let fixed = |x: f64| match decimals {
        Some(d) => format!("{x:.d$}"),
        None => {
            let d = if x.abs() >= 100.0 {
                0
            } else if x.abs() >= 10.0 {
                1
            } else {
                2
            };
            let s = format!("{x:.d$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
    };
    match unit {
        "percent" => format!("{}%", fixed(v)),
        "percentunit" => format!("{}%", fixed(v * 100.0)),
        "s" if v != 0.0 && v.abs() < 1e-3 => format!("{} µs", fixed(v * 1e6)),
        "s" if v != 0.0 && v.abs() < 1.0 => format!("{} ms", fixed(v * 1e3)),
        "s" if v.abs() >= 3600.0 => format!("{} h", fixed(v / 3600.0)),
        "s" if v.abs() >= 120.0 => format!("{} min", fixed(v / 60.0)),
        "s" => format!("{} s", fixed(v)),
        u if u.starts_with("suffix:") => format!("{}{}", fixed(v), &u["suffix:".len()..]),
        _ => fixed(v),
    }
}

/// An SVG `<text>` at (`x`, `y`).
fn svg_text(svg: &mut String, (x, y): (f64, f64), size: u32, fill: &str, anchor: &str, text: &str) {
    write!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" fill="{fill}" font-size="{size}" text-anchor="{anchor}">{}</text>"#,
        esc(text)
    )
    .unwrap();
}

/// An SVG `<rect>` from (`x`, `y`), `w` by `h`.
fn svg_rect(svg: &mut String, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str) {
    write!(
        svg,
        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" opacity="0.8"/>"#
    )
    .unwrap();
}

fn number(v: &Value) -> f64 {
    match v.as_str() {
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some(s) => s.parse().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

/// `{{label}}` in a legend format replaced by the series' labels.
fn legend(format: Option<&str>, metric: &Value) -> String {
    let labels = metric.as_object().cloned().unwrap_or_default();
    match format {
        Some(format) => {
            let mut out = format.to_string();
            for (k, v) in &labels {
                out = out.replace(&format!("{{{{{k}}}}}"), v.as_str().unwrap_or(""));
            }
            out
        }
        None => metric.to_string(),
    }
}

/// The layout: Grafana's grid of 24 columns and rows of 30 px with 8 px gaps.
pub const PAGE_WIDTH: f64 = 1600.0;
const HEADER: f64 = 44.0;
const FOOTER: f64 = 30.0;
const UNIT: f64 = 38.0;

/// Grafana's dark theme, roughly.
const STYLE: &str = "
body { margin:0; background:#111217; color:#CCCCDC; position:relative; overflow:hidden;
  font:12px 'Inter','Helvetica Neue',Arial,sans-serif }
.head { position:absolute; left:8px; top:10px; font-size:16px }
.var { background:#22252b; padding:3px 8px; margin-left:16px; color:#9fa7b3; font-size:12px }
.panel { position:absolute; background:#181B1F; border:1px solid #2A2D33; border-radius:2px;
  box-sizing:border-box; overflow:hidden }
.title { font-weight:500; font-size:13px; padding:5px 8px; height:14px; white-space:nowrap }
.row { position:absolute; font-size:15px; font-weight:500; padding-top:10px }
.stat { position:absolute; left:8px; right:8px; top:28px; bottom:8px; display:flex;
  align-items:center; justify-content:center; font-size:34px; font-weight:500; border-radius:2px }
table { width:100%; border-collapse:collapse; font-size:13px }
th { color:#6E9FFF; font-weight:500; text-align:center; padding:4px; border-bottom:1px solid #2A2D33 }
td { text-align:center; padding:5px; border-bottom:1px solid #22252b }
.legend { font-size:11px; padding:0 8px; height:28px; line-height:14px; overflow:hidden }
.legend span { margin-right:12px; white-space:nowrap; display:inline-block }
.legend i { display:inline-block; width:12px; height:3px; margin-right:4px; vertical-align:middle }
.foot { position:absolute; left:8px; bottom:8px; color:#7b8087; font-size:11px }
";

pub fn page_height(dashboard: &Value) -> u32 {
    let rows = panels(dashboard)
        .iter()
        .map(|p| p["gridPos"]["y"].as_f64().unwrap() + p["gridPos"]["h"].as_f64().unwrap())
        .fold(0.0, f64::max);
    (HEADER + rows * UNIT + FOOTER).ceil() as u32
}

/// Renders `dashboard` as an HTML page with `vars` substituted in queries and titles
/// (`display_vars` in titles, for a regex variable's readable value), from `start` to `end`
/// (Unix seconds) of `prometheus`'s data. `note` goes at the bottom.
pub async fn render(
    dashboard: &Value,
    prometheus: &Prometheus,
    vars: &[(&str, &str)],
    display_vars: &[(&str, &str)],
    (start, end): (f64, f64),
    note: &str,
) -> String {
    let col = (PAGE_WIDTH - 8.0) / 24.0;
    let mut body = String::new();
    for panel in panels(dashboard) {
        let g = &panel["gridPos"];
        let [gx, gy, gw, gh] = ["x", "y", "w", "h"].map(|k| g[k].as_f64().unwrap());
        let (x, y) = (8.0 + gx * col, HEADER + gy * UNIT);
        let (w, h) = (gw * col - 8.0, gh * UNIT - 8.0);
        let title = esc(&substitute(
            panel["title"].as_str().unwrap_or(""),
            display_vars,
        ));
        if panel["type"] == "row" {
            write!(
                body,
                r#"<div class="row" style="left:{x}px;top:{y}px;width:{w}px">{title}</div>"#
            )
            .unwrap();
            continue;
        }
        let content = match panel["type"].as_str().unwrap() {
            "stat" => stat(panel, prometheus, vars).await,
            "table" => table(panel, prometheus, vars).await,
            "timeseries" | "state-timeline" => {
                graph(panel, prometheus, vars, w, h - 24.0, start, end).await
            }
            other => panic!("the renderer does not draw {other} panels"),
        };
        write!(
            body,
            r#"<div class="panel" style="left:{x}px;top:{y}px;width:{w}px;height:{h}px">"#
        )
        .unwrap();
        write!(body, r#"<div class="title">{title}</div>{content}</div>"#).unwrap();
    }
    let height = page_height(dashboard);
    let dashboard_title = esc(dashboard["title"].as_str().unwrap_or(""));
    let chosen = display_vars
        .iter()
        .map(|(k, v)| format!("<span class=var>{}</span> {}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><style>{STYLE} \
         body {{ width:{PAGE_WIDTH}px; height:{height}px }}</style></head><body>\
         <div class=\"head\">{dashboard_title}{chosen}</div>{body}\
         <div class=\"foot\">{}</div></body></html>",
        esc(note)
    )
}

async fn stat(panel: &Value, prometheus: &Prometheus, vars: &[(&str, &str)]) -> String {
    let target = &panel["targets"][0];
    let result = prometheus
        .query(&substitute(target["expr"].as_str().unwrap(), vars))
        .await;
    let Some(series) = result.first() else {
        return r#"<div class="stat">No data</div>"#.into();
    };
    let (text, colour) = Field::of(panel, None).display(number(&series["value"][1]));
    format!(
        r#"<div class="stat" style="background:{colour};color:#fff">{}</div>"#,
        esc(&text)
    )
}

async fn table(panel: &Value, prometheus: &Prometheus, vars: &[(&str, &str)]) -> String {
    // Grafana's "merge": one row per label set, a `Value #refId` column per query.
    let mut rows: BTreeMap<Vec<(String, String)>, BTreeMap<String, f64>> = BTreeMap::new();
    let mut columns: Vec<String> = Vec::new();
    for target in panel["targets"].as_array().unwrap() {
        let column = format!("Value #{}", target["refId"].as_str().unwrap());
        for series in prometheus
            .query(&substitute(target["expr"].as_str().unwrap(), vars))
            .await
        {
            let labels: Vec<(String, String)> = series["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            for (k, _) in &labels {
                if !columns.contains(k) {
                    columns.insert(0, k.clone());
                }
            }
            rows.entry(labels)
                .or_default()
                .insert(column.clone(), number(&series["value"][1]));
        }
        columns.push(column);
    }
    // Grafana's "organize": hide, order and rename columns.
    let organize = panel["transformations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == "organize")
        .map(|t| t["options"].clone())
        .unwrap_or_default();
    columns.retain(|c| organize["excludeByName"][c.as_str()] != true);
    columns.sort_by_key(|c| {
        organize["indexByName"][c.as_str()]
            .as_u64()
            .unwrap_or(u64::MAX)
    });
    let name = |c: &str| {
        organize["renameByName"][c]
            .as_str()
            .unwrap_or(c)
            .to_string()
    };
    let mut html = String::from("<table><tr>");
    for c in &columns {
        write!(html, "<th>{}</th>", esc(&name(c))).unwrap();
    }
    html.push_str("</tr>");
    for (labels, values) in &rows {
        html.push_str("<tr>");
        for c in &columns {
            if let Some((_, v)) = labels.iter().find(|(k, _)| k == c) {
                write!(html, "<td>{}</td>", esc(v)).unwrap();
                continue;
            }
            let field = Field::of(panel, Some(&name(c)));
            match values.get(c) {
                Some(v) => {
                    let (text, colour) = field.display(*v);
                    let style =
                        if field.background && colour != "transparent" && colour != color("text") {
                            format!("background:{colour};color:#fff")
                        } else {
                            String::new()
                        };
                    write!(html, r#"<td style="{style}">{}</td>"#, esc(&text)).unwrap();
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// A time series or state timeline over `start`..`end`.
#[allow(clippy::too_many_arguments)]
async fn graph(
    panel: &Value,
    prometheus: &Prometheus,
    vars: &[(&str, &str)],
    w: f64,
    h: f64,
    start: f64,
    end: f64,
) -> String {
    let step = ((end - start) / 240.0).max(1.0);
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for target in panel["targets"].as_array().unwrap() {
        let expr = substitute(target["expr"].as_str().unwrap(), vars);
        for s in prometheus.query_range(&expr, start, end, step).await {
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), number(&p[1])))
                .collect();
            series.push((
                legend(target["legendFormat"].as_str(), &s["metric"]),
                points,
            ));
        }
    }
    if series.is_empty() {
        return format!(
            r#"<div style="text-align:center;padding-top:{}px;color:#7b8087">No data</div>"#,
            h / 2.0 - 10.0
        );
    }
    let custom = &panel["fieldConfig"]["defaults"]["custom"];
    let field = Field::of(panel, None);
    let legend_h = if panel["type"] == "state-timeline" {
        0.0
    } else {
        30.0
    };
    let (left, plot_w, plot_h) = (58.0, w - 70.0, h - 22.0 - legend_h);
    let x_of = |t: f64| left + (t - start) / (end - start) * plot_w;
    let mut svg = format!(
        r#"<svg width="{w}" height="{}" xmlns="http://www.w3.org/2000/svg" style="display:block">"#,
        h - legend_h
    );
    let clock = |t: f64| {
        chrono::DateTime::from_timestamp(t as i64, 0)
            .unwrap()
            .format("%H:%M:%S")
            .to_string()
    };
    for (t, anchor) in [(start, "start"), (end, "end")] {
        svg_text(
            &mut svg,
            (x_of(t), plot_h + 14.0),
            10,
            "#9fa7b3",
            anchor,
            &clock(t),
        );
    }
    if panel["type"] == "state-timeline" {
        let band = plot_h / series.len() as f64;
        for (i, (name, points)) in series.iter().enumerate() {
            let top = 4.0 + i as f64 * band;
            svg_text(
                &mut svg,
                (4.0, top + band / 2.0),
                11,
                "#CCCCDC",
                "start",
                name,
            );
            // Runs of one state: a band each, then its text on top.
            let mut runs: Vec<(String, String, f64, f64)> = Vec::new();
            for (j, (t, v)) in points.iter().enumerate() {
                let next = points.get(j + 1).map_or(end, |p| p.0).min(t + 1.5 * step);
                let (text, colour) = field.display(*v);
                match runs.last_mut() {
                    Some(run) if run.0 == text && run.3 >= *t => run.3 = next,
                    _ => runs.push((text, colour, *t, next)),
                }
            }
            for (_, colour, from, to) in &runs {
                let width = (x_of(*to) - x_of(*from)).max(0.5);
                svg_rect(&mut svg, (x_of(*from), top), (width, band * 0.8), colour);
            }
            for (text, _, from, _) in &runs {
                let at = (x_of(*from) + 4.0, top + band * 0.45);
                svg_text(&mut svg, at, 12, "#111217", "start", text);
            }
        }
        svg.push_str("</svg>");
        return svg;
    }
    // The y axis: the data's range, widened to the soft limits, bounded by the hard ones.
    // Linear only: the renderer draws no other scale.
    assert!(
        custom["scaleDistribution"].is_null() || custom["scaleDistribution"]["type"] == "linear",
        "the renderer draws linear axes only"
    );
    let finite: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .collect();
    let defaults = &panel["fieldConfig"]["defaults"];
    let mut lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if let Some(soft) = custom["axisSoftMin"].as_f64() {
        lo = lo.min(soft)
    }
    if let Some(soft) = custom["axisSoftMax"].as_f64() {
        hi = hi.max(soft)
    }
    if let Some(hard) = defaults["min"].as_f64() {
        lo = hard
    }
    if let Some(hard) = defaults["max"].as_f64() {
        hi = hard
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0)
    }
    if hi <= lo {
        hi = lo + 1.0
    }
    let y_of = |v: f64| 4.0 + plot_h - (v.clamp(lo, hi) - lo) / (hi - lo) * (plot_h - 4.0);
    for i in 0..=2 {
        let v = lo + (hi - lo) * i as f64 / 2.0;
        let y = y_of(v);
        let right = left + plot_w;
        write!(
            svg,
            r##"<line x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke="#2A2D33"/>"##
        )
        .unwrap();
        let tick = format_value(v, &field.unit, None);
        svg_text(&mut svg, (left - 4.0, y + 3.0), 10, "#9fa7b3", "end", &tick);
    }
    let bars = custom["drawStyle"] == "bars";
    let steps = custom["lineInterpolation"] == "stepAfter";
    let mut legend_html = String::from(r#"<div class="legend">"#);
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        write!(
            legend_html,
            r#"<span><i style="background:{colour}"></i>{}</span>"#,
            esc(name)
        )
        .unwrap();
        if bars {
            // Side by side within each step, one slot per series.
            let slot = step / (end - start) * plot_w * 0.8 / series.len() as f64;
            let bar_w = slot.max(1.0);
            let offset = i as f64 * slot - 0.4 * step / (end - start) * plot_w;
            for (t, v) in points.iter().filter(|(_, v)| v.is_finite() && *v != 0.0) {
                let (y0, y1) = (y_of(0f64.max(lo)), y_of(*v));
                let height = (y0 - y1).abs().max(1.0);
                svg_rect(
                    &mut svg,
                    (x_of(*t) + offset, y0.min(y1)),
                    (bar_w, height),
                    colour,
                );
            }
            continue;
        }
        // Polylines, broken at gaps (no sample for a step and a half) and non-finite values.
        let mut line: Vec<(f64, f64)> = Vec::new();
        let flush = |line: &mut Vec<(f64, f64)>, svg: &mut String| {
            if !line.is_empty() {
                let pts: Vec<String> = line.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                    pts.join(" ")
                )
                .unwrap();
                line.clear();
            }
        };
        let mut previous: Option<f64> = None;
        for (t, v) in points {
            if !v.is_finite() || previous.is_some_and(|p| t - p > 1.5 * step) {
                flush(&mut line, &mut svg);
            }
            if v.is_finite() {
                if steps && let Some(&(_, y_prev)) = line.last() {
                    line.push((x_of(*t), y_prev));
                }
                line.push((x_of(*t), y_of(*v)));
            }
            previous = Some(*t);
        }
        flush(&mut line, &mut svg);
    }
    svg.push_str("</svg>");
    legend_html.push_str("</div>");
    svg + &legend_html
}
