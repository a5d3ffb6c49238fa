//! `GET /`: the status page, one HTML document rendered here with its CSS and SVG charts inline:
//! no script, no external file, no template engine. It reloads itself every [`REFRESH_SECS`].
//!
//! Every value from the database goes through [`escape`]. Each figure a test or a script may
//! check carries a `data-k` hook (with `data-ms` for instants and spans): `generated-at`,
//! `quota.<shop>`, `quota-limit.<shop>`, `access-expiry.<shop>`, `refresh-expiry.<shop>`,
//! `rows.<shop>.<table>`, `checkpoint.<shop>.<stream>`, `lag.<shop>.<stream>`,
//! `queue.<depth|dead|pending|running|unknown_shop|done>`, `api.<method|total>.<calls|ok|failed>`,
//! `api.total.rate`, `api.since`, `run.<id>.<rows|calls|outcome>`, and `shops.shown` when more
//! shops exist than the page shows ([`PAGE_SHOPS`], those that most need a look). `/status.json`
//! holds the same figures, for every shop.

use super::charts::{hourly_chart, method_chart};
use super::format::{china_time, escape, grouped, percent, relative, span};
use super::status::{
    ApiCallsView, MethodCalls, QueueView, RunView, ShopView, StatusReport, StreamView,
};

/// How often the page reloads itself.
pub const REFRESH_SECS: u32 = 15;

use shops::shop_card;

const STYLE: &str = include_str!("page.css");

/// ` data-k="<key>"`.
fn k(key: &str) -> String {
    format!(" data-k=\"{}\"", escape(key))
}

/// The whole page.
pub fn render_page(r: &StatusReport) -> String {
    let mut out = String::with_capacity(32 * 1024);
    out.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} status</title><style>{STYLE}</style></head>\n<body>",
        escape(r.service)
    ));
    header(&mut out, r);
    out.push_str("<main>");
    if r.failed_reads > 0 {
        out.push_str(&format!(
            "<p class=\"notice\">{} database read(s) failed or took too long: their figures are \
             missing below (the log names the first).</p>",
            r.failed_reads
        ));
    }
    tiles(&mut out, r);
    out.push_str("<h2>Shops</h2>");
    if r.shops.is_empty() {
        out.push_str("<p class=\"card muted\">No shop in the database yet.</p>");
    }
    let shown = shops_to_show(&r.shops);
    if shown.len() < r.shops.len() {
        out.push_str(&format!(
            "<p class=\"sub\"{}>The {} of {} shops that most need a look: reauthorization, \
             errors, stalls and pauses first, then the stream furthest behind. Every shop is in \
             <a href=\"/status.json\">/status.json</a> and <a href=\"/metrics\">/metrics</a>.</p>",
            k("shops.shown"),
            shown.len(),
            grouped(r.shops.len() as i64),
        ));
    }
    for shop in shown {
        shop_card(&mut out, shop, r);
    }
    api_section(&mut out, r.api_calls.as_ref());
    out.push_str("<div class=\"pair\">");
    queue_section(&mut out, r.queue.as_ref(), r.generated_at_ms);
    runs_section(&mut out, r.runs.as_deref(), r.generated_at_ms);
    out.push_str("</div></main>");
    footer(&mut out, r);
    out.push_str("</body></html>\n");
    out
}

/// The most shop cards the page shows: an ISV's thousand shops would make a page of megabytes
/// that no one reads and every refresh renders.
pub const PAGE_SHOPS: usize = 50;

/// Every shop in its order when there are at most [`PAGE_SHOPS`]; otherwise the ones that most
/// need a look, those first.
fn shops_to_show(shops: &[ShopView]) -> Vec<&ShopView> {
    let mut shown: Vec<&ShopView> = shops.iter().collect();
    if shown.len() > PAGE_SHOPS {
        shown.sort_by_key(|s| std::cmp::Reverse(need(s)));
        shown.truncate(PAGE_SHOPS);
    }
    shown
}

/// How much a shop needs a look: trouble (reauthorization, then a failing, stalled, paused or
/// quarantining stream), then its largest lag (a stream that never ran counts as furthest).
fn need(s: &ShopView) -> (u8, i64) {
    let troubled = s.streams.iter().any(|st| {
        st.failures_in_row > 0
            || st.stalled_behind_ms.is_some()
            || st.paused_until_ms.is_some()
            || st.quarantined > 0
    });
    let trouble = if s.status == "needs_reauth" {
        2
    } else {
        u8::from(troubled || s.quota_paused_until_ms.is_some())
    };
    let lag = s
        .streams
        .iter()
        .map(|st| st.lag_ms.filter(|_| st.ran).unwrap_or(i64::MAX))
        .max()
        .unwrap_or(i64::MAX);
    (trouble, lag)
}

fn header(out: &mut String, r: &StatusReport) {
    out.push_str(&format!(
        "<header><h1>{}<span class=\"ver\">{}</span></h1><div class=\"meta\">status at \
         <time{} data-ms=\"{}\">{}</time> China time · refreshes every {REFRESH_SECS} s</div>\
         </header>",
        escape(r.service),
        escape(r.version),
        k("generated-at"),
        r.generated_at_ms,
        china_time(r.generated_at_ms),
    ));
}

fn tile(label: &str, hook: Option<&str>, value: &str, class: &str) -> String {
    format!(
        "<div class=\"tile\"><div class=\"label\">{label}</div>\
         <div class=\"value {class}\"{}>{value}</div></div>",
        hook.map(k).unwrap_or_default()
    )
}

fn tiles(out: &mut String, r: &StatusReport) {
    out.push_str("<section class=\"tiles\">");
    let reauth = r
        .shops
        .iter()
        .filter(|s| s.status == "needs_reauth")
        .count();
    let class = if reauth > 0 { "bad" } else { "" };
    out.push_str(&tile("Shops", None, &r.shops.len().to_string(), class));
    let missing = "–".to_string();
    let (depth, dead) = r
        .queue
        .as_ref()
        .map_or((missing.clone(), missing.clone()), |q| {
            (grouped(q.pending + q.running), grouped(q.dead))
        });
    out.push_str(&tile("Queue depth", Some("queue.depth"), &depth, ""));
    let dead_class = match r.queue.as_ref() {
        Some(q) if q.dead > 0 => "bad",
        _ => "",
    };
    out.push_str(&tile("Dead events", Some("queue.dead"), &dead, dead_class));
    let total = r.api_calls.as_ref().map(|a| &a.total);
    let calls = total.map_or(missing.clone(), |t| grouped(t.calls));
    out.push_str(&tile(
        "API calls · 24 h",
        Some("api.total.calls"),
        &calls,
        "",
    ));
    let rate = total.and_then(|t| t.success_rate);
    let rate_class = match rate {
        Some(x) if x < 0.9 => "bad",
        Some(x) if x < 0.99 => "warn",
        _ => "",
    };
    let rate = rate.map_or(missing, percent);
    out.push_str(&tile(
        "Success · 24 h",
        Some("api.total.rate"),
        &rate,
        rate_class,
    ));
    out.push_str("</section>");
}

fn api_section(out: &mut String, api: Option<&ApiCallsView>) {
    out.push_str("<h2>API calls, last 24 hours</h2><section class=\"card\">");
    let Some(api) = api else {
        out.push_str("<p class=\"muted\">The call counts could not be read.</p></section>");
        return;
    };
    out.push_str(&format!(
        "<p class=\"sub\">All shops together, since <span{} data-ms=\"{}\">{}</span> \
         (China time), as the platform answered: <b>ok</b> or the failure class.</p>",
        k("api.since"),
        api.since_ms,
        china_time(api.since_ms)
    ));
    out.push_str("<div class=\"charts\"><div><h3>Per hour</h3>");
    out.push_str(&hourly_chart(&api.hours));
    out.push_str("</div><div><h3>Per method</h3>");
    out.push_str(&method_chart(&api.methods));
    out.push_str("</div></div>");
    out.push_str(
        "<table><thead><tr><th>Method</th><th class=\"n\">Calls</th><th class=\"n\">Ok</th>\
         <th class=\"n\">Failed</th><th>Failures by class</th><th class=\"n\">Success rate</th>\
         </tr></thead><tbody>",
    );
    for m in &api.methods {
        method_row(out, m, &m.method, "td");
    }
    out.push_str("</tbody><tfoot>");
    method_row(out, &api.total, "total", "th");
    out.push_str("</tfoot></table></section>");
}

fn method_row(out: &mut String, m: &MethodCalls, key: &str, cell: &str) {
    let hook = |what: &str| k(&format!("api.{key}.{what}"));
    // The total's calls are in the tiles; one hook per figure.
    let calls_hook = if key == "total" {
        String::new()
    } else {
        hook("calls")
    };
    let failures: Vec<String> = m
        .failures
        .iter()
        .map(|(class, n)| format!("{} {}", escape(class), grouped(*n)))
        .collect();
    let rate = m.success_rate.map_or("–".into(), percent);
    let name = match key {
        "total" => "All methods".to_string(),
        _ => format!("<code>{}</code>", escape(&m.method)),
    };
    out.push_str(&format!(
        "<tr><{cell}>{name}</{cell}><{cell} class=\"n\"{calls_hook}>{}</{cell}>\
         <{cell} class=\"n\"{}>{}</{cell}><{cell} class=\"n\"{}>{}</{cell}>\
         <{cell} class=\"bad\">{}</{cell}><{cell} class=\"n\">{rate}</{cell}></tr>",
        grouped(m.calls),
        hook("ok"),
        grouped(m.ok),
        hook("failed"),
        grouped(m.failed),
        failures.join(", "),
    ));
}

fn queue_section(out: &mut String, queue: Option<&QueueView>, now: i64) {
    out.push_str("<section><h2>Push queue</h2><div class=\"card\">");
    let Some(q) = queue else {
        out.push_str("<p class=\"muted\">The queue could not be read.</p></div></section>");
        return;
    };
    out.push_str("<table><tbody>");
    for (label, key, n, class) in [
        ("Pending", "pending", q.pending, ""),
        ("Running", "running", q.running, ""),
        ("Unknown shop", "unknown_shop", q.unknown_shop, "warn"),
        ("Done", "done", q.done, ""),
    ] {
        let class = if n > 0 { class } else { "" };
        out.push_str(&format!(
            "<tr><td>{label}</td><td class=\"n {class}\"{}>{}</td></tr>",
            k(&format!("queue.{key}")),
            grouped(n)
        ));
    }
    let oldest = q.oldest_pending_age_ms.map_or("–".into(), |age| {
        format!(
            "<span title=\"{}\">{}</span>",
            china_time(now - age),
            span(age)
        )
    });
    out.push_str(&format!(
        "<tr><td>Oldest pending waits</td><td class=\"n\">{oldest}</td></tr></tbody></table>\
         <p class=\"sub\">Dead events are re-queued with <code>kwaishop-sync queue retry</code>.</p>\
         </div></section>"
    ));
}

fn runs_section(out: &mut String, runs: Option<&[RunView]>, now: i64) {
    out.push_str("<section><h2>Recent runs</h2><div class=\"card\">");
    let Some(runs) = runs else {
        out.push_str("<p class=\"muted\">The run log could not be read.</p></div></section>");
        return;
    };
    if runs.is_empty() {
        out.push_str("<p class=\"muted\">No run yet.</p></div></section>");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Shop</th><th>Stream</th><th>Kind</th><th>Started</th>\
         <th class=\"n\">Took</th><th>Outcome</th><th class=\"n\">Rows</th><th class=\"n\">Calls</th>\
         </tr></thead><tbody>",
    );
    for run in runs {
        run_row(out, run, now);
    }
    out.push_str("</tbody></table></div></section>");
}

fn run_row(out: &mut String, run: &RunView, now: i64) {
    let hook = |what: &str| k(&format!("run.{}.{what}", run.id));
    let (class, outcome) = match run.outcome.as_deref() {
        Some("caught_up") => ("good", "caught up"),
        Some("failed") | Some("needs_reauth") => ("bad", run.outcome.as_deref().unwrap_or("")),
        Some(other) => ("warn", other),
        None => ("muted", "running"),
    };
    let mut outcome = format!(
        "<span class=\"{class}\"{}>{}</span>",
        hook("outcome"),
        escape(outcome)
    );
    if let Some(e) = &run.error {
        outcome.push_str(&format!("<div class=\"err sub\">{}</div>", escape(e)));
    }
    let took = run.duration_ms.map_or("–".into(), span);
    out.push_str(&format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td class=\"n\">{took}</td>\
         <td>{outcome}</td><td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td></tr>",
        escape(&run.shop_id),
        run.stream,
        escape(run.kind),
        china_time(run.started_at_ms),
        relative(run.started_at_ms, now),
        hook("rows"),
        grouped(run.rows),
        hook("calls"),
        grouped(run.calls),
    ));
}

fn footer(out: &mut String, r: &StatusReport) {
    out.push_str(&format!(
        "<footer>{} {} · every figure is read from the database; API calls reach it within \
         {} s · <a href=\"/status.json\">status.json</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/healthz\">healthz</a></footer>",
        escape(r.service),
        escape(r.version),
        crate::daemon::call_counts::FLUSH_EVERY.as_secs(),
    ));
}

mod shops;

#[cfg(test)]
mod tests;
