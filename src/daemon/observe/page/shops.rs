//! The page's shop cards: the shop's facts (quota, tokens) and a row per stream.

use super::*;

pub(super) fn shop_card(out: &mut String, s: &ShopView, r: &StatusReport) {
    let id = escape(&s.shop_id);
    let now = r.generated_at_ms;
    out.push_str(&format!(
        "<article class=\"card\" id=\"shop-{id}\"><div class=\"card-head\"><h3>{id}</h3>"
    ));
    if let Some(name) = &s.name {
        out.push_str(&format!("<span class=\"muted\">{}</span>", escape(name)));
    }
    if s.status == "needs_reauth" {
        let reason = s.status_reason.as_deref().unwrap_or("");
        out.push_str(&format!(
            "<span class=\"badge bad\" title=\"{}\">needs authorization</span>",
            escape(reason)
        ));
    } else {
        out.push_str("<span class=\"badge good\">active</span>");
    }
    if let Some(until) = s.quota_paused_until_ms {
        out.push_str(&format!(
            "<span class=\"badge warn\">quota spent until {}</span>",
            china_time(until)
        ));
    }
    out.push_str("</div><div class=\"shop-body\"><div class=\"facts\">");
    quota_fact(out, s, r.daily_quota);
    let access_key = format!("access-expiry.{}", s.shop_id);
    token_fact(
        out,
        "Access token",
        &access_key,
        s.access_expires_at_ms,
        now,
        0,
    );
    let refresh_key = format!("refresh-expiry.{}", s.shop_id);
    let refresh = s.refresh_expires_at_ms;
    token_fact(
        out,
        "Refresh token",
        &refresh_key,
        refresh,
        now,
        crate::api::oauth::GRANT_WARNING_MS,
    );
    out.push_str("</div>");
    streams_table(out, s, now, r.rows_counted_at_ms);
    out.push_str("</div></article>");
}

fn quota_fact(out: &mut String, s: &ShopView, limit: Option<u64>) {
    let hook = k(&format!("quota.{}", s.shop_id));
    let used = s.calls_today.map_or("–".into(), |n| grouped(n as i64));
    out.push_str("<div class=\"fact\"><div class=\"label\">Quota used today</div>");
    match (limit, s.calls_today) {
        (Some(limit), Some(calls)) if limit > 0 => {
            let share = calls as f64 / limit as f64;
            let class = match share {
                x if x >= 0.95 => "bad",
                x if x >= 0.8 => "warn",
                _ => "",
            };
            out.push_str(&format!(
                "<div class=\"bar {class}\"><span style=\"width:{:.1}%\"></span></div>\
                 <div><b{hook}>{used}</b> of <span{}>{}</span> calls ({})</div>",
                (share * 100.0).min(100.0),
                k(&format!("quota-limit.{}", s.shop_id)),
                grouped(limit as i64),
                percent(share)
            ));
        }
        _ => out.push_str(&format!(
            "<div><b{hook}>{used}</b> calls <span class=\"sub\">(no daily quota set)</span></div>"
        )),
    }
    out.push_str("</div>");
}

fn token_fact(out: &mut String, label: &str, key: &str, at: Option<i64>, now: i64, warn: i64) {
    out.push_str(&format!(
        "<div class=\"fact\"><div class=\"label\">{label}</div>"
    ));
    let Some(at) = at else {
        out.push_str(&format!(
            "<div class=\"muted\"{}>no token</div></div>",
            k(key)
        ));
        return;
    };
    let (class, text) = if at <= now {
        ("bad", format!("expired {}", relative(at, now)))
    } else if at - now < warn {
        ("warn", format!("expires {}", relative(at, now)))
    } else {
        ("", format!("expires {}", relative(at, now)))
    };
    let date = china_time(at);
    out.push_str(&format!(
        "<div title=\"{date}\"><span class=\"big {class}\"{} data-ms=\"{at}\">{text}</span> \
         <span class=\"sub\">{}</span></div></div>",
        k(key),
        date.get(..10).unwrap_or(&date)
    ));
}

fn streams_table(out: &mut String, s: &ShopView, now: i64, counted_at: Option<i64>) {
    // A large mirror's rows are counted between views: say how old the count is.
    let rows = match counted_at {
        Some(at) if now - at >= 1_000 => format!(
            "<th class=\"n\" title=\"counted at {}\">Rows <span class=\"sub\">{}</span></th>",
            china_time(at),
            relative(at, now)
        ),
        _ => "<th class=\"n\">Rows</th>".to_string(),
    };
    out.push_str(&format!(
        "<table><thead><tr><th>Stream</th><th>Checkpoint (China time)</th><th class=\"n\">Lag</th>\
         {rows}<th>Last success</th><th>Last error</th></tr></thead><tbody>",
    ));
    for st in &s.streams {
        stream_row(out, s, st, now);
    }
    out.push_str("</tbody></table>");
}

fn stream_row(out: &mut String, shop: &ShopView, st: &StreamView, now: i64) {
    let key = |what: &str| k(&format!("{what}.{}.{}", shop.shop_id, st.stream));
    let name = stream_name(st, &key);
    let checkpoint = match st.checkpoint_ms {
        Some(ms) => format!(
            "<td{} data-ms=\"{ms}\">{}</td>",
            key("checkpoint"),
            china_time(ms)
        ),
        None if st.ran => format!("<td{} class=\"muted\">none yet</td>", key("checkpoint")),
        None => format!("<td{} class=\"muted\">not run yet</td>", key("checkpoint")),
    };
    let lag = match st.lag_ms {
        Some(ms) => {
            let class = match ms {
                x if x > 6 * 3_600_000 => "bad",
                x if x > 3_600_000 => "warn",
                _ => "",
            };
            format!(
                "<td class=\"n {class}\"{} data-ms=\"{ms}\">{}</td>",
                key("lag"),
                span(ms)
            )
        }
        None => format!("<td class=\"n muted\"{}>–</td>", key("lag")),
    };
    let rows = rows_cell(shop, st);
    let success = st
        .last_success_ms
        .map_or("<span class=\"muted\">–</span>".into(), |ms| {
            format!(
                "<span title=\"{}\">{}</span>",
                china_time(ms),
                relative(ms, now)
            )
        });
    let error = error_cell(st, now);
    out.push_str(&format!(
        "<tr><td><b>{name}</b></td>{checkpoint}{lag}<td class=\"n\">{rows}</td><td>{success}</td>\
         <td>{error}</td></tr>"
    ));
}

/// The stream's name with its badges: paused, stalled, records in quarantine.
fn stream_name(st: &StreamView, key: &dyn Fn(&str) -> String) -> String {
    let mut name = st.stream.to_string();
    if let Some(until) = st.paused_until_ms {
        name.push_str(&format!(
            " <span class=\"badge warn\">paused until {}</span>",
            china_time(until)
        ));
    }
    if let Some(behind) = st.stalled_behind_ms {
        name.push_str(&format!(
            " <span class=\"badge bad\"{} title=\"its runs end caught up while the checkpoint \
             stays {} behind\">stalled</span>",
            key("stalled"),
            span(behind)
        ));
    }
    if st.quarantined > 0 {
        name.push_str(&format!(
            " <span class=\"badge warn\"{} title=\"records that could not be read or stored: \
             kwaishop-sync quarantine ls\">{} quarantined</span>",
            key("quarantined"),
            st.quarantined
        ));
    }
    name
}

/// The stream's rows, with the shop's SKUs under its items.
fn rows_cell(shop: &ShopView, st: &StreamView) -> String {
    let table = k(&format!("rows.{}.{}", shop.shop_id, st.stream));
    let mut rows = format!(
        "<span{table}>{}</span>",
        st.rows.map_or("–".into(), grouped)
    );
    if st.stream == "items"
        && let Some(skus) = shop.rows.get("skus")
    {
        let hook = k(&format!("rows.{}.skus", shop.shop_id));
        rows.push_str(&format!(
            "<div class=\"sub\"><span{hook}>{}</span> SKUs</div>",
            grouped(*skus)
        ));
    }
    rows
}

/// The stream's last error, how many runs in a row ended with it, and when.
fn error_cell(st: &StreamView, now: i64) -> String {
    match (&st.last_error, st.last_error_at_ms) {
        (Some(e), at) => format!(
            "<span class=\"err\">{}{}</span>{}",
            match st.failures_in_row {
                n if n > 1 => format!("{n} runs in a row: "),
                _ => String::new(),
            },
            escape(e),
            at.map(|ms| format!("<div class=\"sub\">{}</div>", relative(ms, now)))
                .unwrap_or_default()
        ),
        (None, _) => "<span class=\"muted\">–</span>".into(),
    }
}
