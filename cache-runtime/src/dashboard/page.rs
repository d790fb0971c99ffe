//! The dashboard's HTML: the page (styles, the invalidate form, a dozen lines of our own
//! script that reload the live panel) and the live panel (numbers, tables, SVG charts).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::svg::{self, escape};
use crate::Stats;
use crate::admin::Usage;
use crate::events::{Incident, Invalidation};

/// `HH:MM:SS` UTC.
pub(crate) fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn latency(d: Option<Duration>) -> String {
    match d {
        None => "–".into(),
        Some(d) if d < Duration::from_millis(1) => format!("{}µs", d.as_micros()),
        Some(d) if d < Duration::from_secs(1) => format!("{:.1}ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.2}s", d.as_secs_f64()),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
}

/// One name's line in the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    /// `query`, `view`, or `?` when no value of it was written by this process yet.
    pub(crate) kind: &'static str,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) fills: u64,
    pub(crate) stale: u64,
    pub(crate) errors: u64,
    pub(crate) waits: u64,
    pub(crate) ratio: Option<f64>,
    pub(crate) ratios: Vec<Option<f64>>,
    pub(crate) hit_p50: Option<Duration>,
    pub(crate) hit_p99: Option<Duration>,
    pub(crate) fill_p50: Option<Duration>,
    pub(crate) fill_p99: Option<Duration>,
    /// What is stored for it, from the last scan.
    pub(crate) stored: Option<Usage>,
}

impl Row {
    fn reads(&self) -> u64 {
        self.hits + self.misses
    }
}

/// Everything the live panel shows.
pub(crate) struct Panel {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) backend: &'static str,
    pub(crate) prefix: String,
    pub(crate) minutes: usize,
    pub(crate) stats: Stats,
    pub(crate) labels: Vec<String>,
    pub(crate) hits: Vec<u64>,
    pub(crate) misses: Vec<u64>,
    /// By name.
    pub(crate) rows: Vec<Row>,
    /// Waits on another caller's fill, per name and slot start (newest first).
    pub(crate) stampedes: Vec<(SystemTime, &'static str, u64)>,
    pub(crate) invalidations: Vec<Invalidation>,
    pub(crate) incidents: Vec<Incident>,
    /// When the stored sizes were counted, and whether every key was; or why not.
    pub(crate) scanned: Result<(SystemTime, bool), String>,
}

/// The invalidate button of one name: a form posting to `{base}/invalidate`.
fn invalidate_button(out: &mut String, base: &str, token: &str, kind: &str, name: &str) {
    let _ = write!(
        out,
        r#"<form method="post" action="{base}/invalidate" class="inline"><input type="hidden" name="csrf" value="{token}"><input type="hidden" name="kind" value="{kind}"><input type="hidden" name="name" value="{n}"><button type="submit" data-invalidate="{n}" title="invalidate every entry of {n}">invalidate</button></form>"#,
        base = escape(base),
        n = escape(name),
    );
}

fn tile(out: &mut String, label: &str, value: &str, id: &str) {
    let _ = write!(
        out,
        r#"<div class="tile"><div class="value" id="{id}">{}</div><div class="label">{}</div></div>"#,
        escape(value),
        escape(label)
    );
}

/// The live panel (reloaded every few seconds by the page's script).
pub(crate) fn panel(p: &Panel) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let s = &p.stats;
    let total_ratio = (s.hits + s.misses > 0).then(|| s.hits as f64 / (s.hits + s.misses) as f64);
    let window_hits: u64 = p.hits.iter().sum();
    let window_misses: u64 = p.misses.iter().sum();
    let window_ratio = (window_hits + window_misses > 0)
        .then(|| window_hits as f64 / (window_hits + window_misses) as f64);

    out.push_str(r#"<section class="tiles">"#);
    tile(
        &mut out,
        &format!("hit ratio, last {} min", p.minutes),
        &percent(window_ratio),
        "window-ratio",
    );
    tile(
        &mut out,
        "hit ratio since start",
        &percent(total_ratio),
        "total-ratio",
    );
    tile(&mut out, "hits", &s.hits.to_string(), "total-hits");
    tile(&mut out, "misses", &s.misses.to_string(), "total-misses");
    tile(&mut out, "fills", &s.fills.to_string(), "total-fills");
    tile(
        &mut out,
        "stale (invalidated)",
        &s.invalidated.to_string(),
        "total-stale",
    );
    tile(
        &mut out,
        "errors (decode, backend, skipped)",
        &(s.decode_errors + s.backend_errors + s.skipped).to_string(),
        "total-errors",
    );
    tile(
        &mut out,
        "bytes written",
        &bytes(s.bytes_written),
        "total-written",
    );
    out.push_str("</section>");

    // Charts: hit ratio per name (the busiest eight), reads per slot.
    let mut busiest: Vec<&Row> = p.rows.iter().filter(|r| r.reads() > 0).collect();
    busiest.sort_by(|a, b| b.reads().cmp(&a.reads()).then(a.name.cmp(b.name)));
    busiest.truncate(svg::PALETTE.len());
    let series: Vec<Vec<Option<f64>>> = busiest.iter().map(|r| r.ratios.clone()).collect();
    out.push_str(r#"<section class="charts"><figure>"#);
    out.push_str(&svg::ratio_lines(
        "hit ratio per name, per 10 s",
        &p.labels,
        &series,
    ));
    out.push_str("<figcaption>Hit ratio per 10 s");
    for (i, row) in busiest.iter().enumerate() {
        let _ = write!(
            out,
            r#" <span class="key" style="border-color:{}">{}</span>"#,
            svg::PALETTE[i],
            escape(row.name)
        );
    }
    out.push_str("</figcaption></figure><figure>");
    out.push_str(&svg::read_bars(
        "reads per 10 s: hits and misses",
        &p.labels,
        &p.hits,
        &p.misses,
    ));
    out.push_str(r#"<figcaption>Reads per 10 s: <span class="key hit">hits</span> <span class="key miss">misses</span></figcaption></figure></section>"#);

    // The table.
    let _ = write!(
        out,
        r#"<section><h2>Queries and views, last {} min</h2><table id="names"><thead><tr><th>name</th><th>kind</th><th>reads</th><th>hit ratio</th><th>hits</th><th>misses</th><th>fills</th><th>hit p50</th><th>hit p99</th><th>fill p50</th><th>fill p99</th><th>stored</th><th>waits</th><th>stale</th><th>errors</th><th></th></tr></thead><tbody>"#,
        p.minutes
    );
    for row in &p.rows {
        let stored = match &row.stored {
            Some(u) => format!("{} in {}", bytes(u.bytes), u.entries),
            None => "–".into(),
        };
        let _ = write!(
            out,
            r#"<tr data-name="{n}"><td class="name">{n}</td><td>{kind}</td><td class="num">{reads}</td><td class="num" data-ratio>{ratio}</td><td class="num" data-hits>{hits}</td><td class="num" data-misses>{misses}</td><td class="num">{fills}</td><td class="num">{hp50}</td><td class="num">{hp99}</td><td class="num">{fp50}</td><td class="num">{fp99}</td><td class="num" data-stored>{stored}</td><td class="num">{waits}</td><td class="num">{stale}</td><td class="num">{errors}</td><td>"#,
            n = escape(row.name),
            kind = row.kind,
            reads = row.reads(),
            ratio = percent(row.ratio),
            hits = row.hits,
            misses = row.misses,
            fills = row.fills,
            hp50 = latency(row.hit_p50),
            hp99 = latency(row.hit_p99),
            fp50 = latency(row.fill_p50),
            fp99 = latency(row.fill_p99),
            stored = escape(&stored),
            waits = row.waits,
            stale = row.stale,
            errors = row.errors,
        );
        let kind = if row.kind == "?" { "name" } else { row.kind };
        invalidate_button(&mut out, &p.base, &p.token, kind, row.name);
        out.push_str("</td></tr>");
    }
    if p.rows.is_empty() {
        out.push_str(
            r#"<tr><td colspan="16" class="empty">No cached calls in this window yet.</td></tr>"#,
        );
    }
    out.push_str("</tbody></table>");
    match &p.scanned {
        Ok((at, complete)) => {
            let _ = write!(
                out,
                r#"<p class="note">Stored sizes counted by a scan of the prefix `{}` at {} UTC{}.</p>"#,
                escape(&p.prefix),
                clock(*at),
                if *complete {
                    ""
                } else {
                    " (the first 100,000 keys only)"
                }
            );
        }
        Err(why) => {
            let _ = write!(
                out,
                r#"<p class="note">Stored sizes unknown: {}</p>"#,
                escape(why)
            );
        }
    }
    out.push_str("</section>");

    // Hottest and most missed.
    let mut hottest: Vec<&Row> = p.rows.iter().filter(|r| r.reads() > 0).collect();
    hottest.sort_by(|a, b| b.reads().cmp(&a.reads()).then(a.name.cmp(b.name)));
    let mut missed: Vec<&Row> = p.rows.iter().filter(|r| r.misses > 0).collect();
    missed.sort_by(|a, b| b.misses.cmp(&a.misses).then(a.name.cmp(b.name)));
    out.push_str(r#"<section class="pair"><div><h2>Hottest</h2><ol id="hottest">"#);
    for row in hottest.iter().take(5) {
        let _ = write!(
            out,
            "<li><span class=\"name\">{}</span> — {} reads</li>",
            escape(row.name),
            row.reads()
        );
    }
    out.push_str(r#"</ol></div><div><h2>Most missed</h2><ol id="missed">"#);
    for row in missed.iter().take(5) {
        let _ = write!(
            out,
            "<li><span class=\"name\">{}</span> — {} misses ({} hit ratio)</li>",
            escape(row.name),
            row.misses,
            percent(row.ratio)
        );
    }
    out.push_str("</ol></div></section>");

    // Recent invalidations.
    out.push_str(r#"<section><h2>Recent invalidations</h2><table id="invalidations"><thead><tr><th>when (UTC)</th><th>kind</th><th>what</th><th>call site</th><th>took</th><th>result</th></tr></thead><tbody>"#);
    for inv in &p.invalidations {
        let what = inv
            .generation
            .split_once(':')
            .map_or(inv.generation.as_str(), |(_, w)| w);
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="name">{}</td><td class="site">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            clock(inv.at),
            inv.kind,
            escape(what),
            escape(&inv.site),
            latency(Some(inv.took)),
            escape(inv.error.as_deref().unwrap_or("ok"))
        );
    }
    if p.invalidations.is_empty() {
        out.push_str(
            r#"<tr><td colspan="6" class="empty">None since the dashboard was mounted.</td></tr>"#,
        );
    }
    out.push_str("</tbody></table></section>");

    // Breaker and stampede events.
    out.push_str(r#"<section><h2>Circuit breaker and stampedes</h2><ul id="incidents">"#);
    for incident in &p.incidents {
        let _ = write!(
            out,
            "<li>{} UTC — {}</li>",
            clock(incident.at),
            escape(&incident.what)
        );
    }
    for (at, name, waits) in p.stampedes.iter().take(20) {
        let _ = write!(
            out,
            "<li>{} UTC — {waits} callers of <span class=\"name\">{}</span> waited on another caller's fill instead of running it</li>",
            clock(*at),
            escape(name)
        );
    }
    if p.incidents.is_empty() && p.stampedes.is_empty() {
        out.push_str(r#"<li class="empty">None in this window.</li>"#);
    }
    out.push_str("</ul></section>");
    out
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d232b}
header{background:#1d232b;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}header .meta{color:#b8c0cc}header a{color:#9cc3ff}
main{padding:16px 24px;max-width:1400px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px 16px;margin-bottom:16px;overflow-x:auto}
h2{font-size:15px;margin:0 0 8px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.tile .value{font-size:24px;font-weight:600}.tile .label{color:#5b6470;font-size:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
figure{margin:0}svg.chart{width:100%;height:auto}figcaption{color:#5b6470;font-size:12px}
.key{border-left:10px solid;padding-left:4px;margin-left:8px}.key.hit{border-color:#2a9d8f}.key.miss{border-color:#d1495b}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:left;white-space:nowrap}
th{font-size:12px;color:#5b6470;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.name,.site{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.empty,.note{color:#5b6470}.inline{display:inline;margin:0}
button{font:inherit;font-size:12px;padding:2px 10px;border:1px solid #d1495b;color:#d1495b;background:#fff;border-radius:4px;cursor:pointer}
button:hover{background:#d1495b;color:#fff}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:16px}
form.manual{display:flex;gap:8px;flex-wrap:wrap;align-items:center}
form.manual input[type=text]{font:inherit;padding:2px 6px;min-width:260px}
"#;

/// Reloads the live panel every five seconds; keeps the last panel when a reload fails.
const SCRIPT: &str = r#"
const live = document.getElementById('live');
async function reload() {
  try {
    const response = await fetch(live.dataset.src, {cache: 'no-store', credentials: 'same-origin'});
    if (response.ok) { live.innerHTML = await response.text(); live.dataset.reloaded = Date.now(); }
  } catch (e) { /* keep the last panel */ }
}
setInterval(reload, 5000);
"#;

/// The whole page, with `panel` as the live panel's first content.
pub(crate) fn page(p: &Panel, panel: &str) -> String {
    let base = escape(&p.base);
    let mut out = String::with_capacity(panel.len() + 8 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>cache dashboard</title><style>{STYLE}</style></head><body><header><h1>cache dashboard</h1><span class="meta">backend <b>{backend}</b> · prefix <b>{prefix}</b> · window {minutes} min (<a href="{base}?minutes=1">1</a> · <a href="{base}?minutes=5">5</a> · <a href="{base}?minutes=10">10</a>) · reloads every 5 s</span></header><main>"#,
        backend = p.backend,
        prefix = escape(&p.prefix),
        minutes = p.minutes,
    );
    let _ = write!(
        out,
        r#"<section><h2>Invalidate now</h2><form method="post" action="{base}/invalidate" class="manual"><input type="hidden" name="csrf" value="{token}"><select name="kind" aria-label="what to invalidate"><option value="tag">tag</option><option value="query">query (function path)</option><option value="view">view (function path)</option><option value="path">path of a view</option></select><input type="text" name="name" placeholder="users · app::users::active · app::views::page" aria-label="tag, query or view" required><input type="text" name="path" placeholder="/users?page=2 (path only)" aria-label="path"><button type="submit" id="invalidate-manual">invalidate</button></form></section>"#,
        token = escape(&p.token),
    );
    let _ = write!(
        out,
        r#"<div id="live" data-src="{base}/panel?minutes={minutes}">{panel}</div></main><script>{SCRIPT}</script></body></html>"#,
        minutes = p.minutes,
    );
    out
}
