//! The page's escaping, hooks and self-containment, on a report with hostile values.

use std::collections::BTreeMap;

use super::*;
use crate::daemon::observe::status::HourCalls;

const NOW: i64 = 1_704_124_800_000;
const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'&";

fn report() -> StatusReport {
    let stream = StreamView {
        stream: "orders",
        ran: true,
        checkpoint_ms: Some(NOW - 90_000),
        lag_ms: Some(90_000),
        rows: Some(1_234),
        last_success_ms: Some(NOW - 1_000),
        last_error: Some(format!("boom {HOSTILE}")),
        last_error_at_ms: Some(NOW),
        failures_in_row: 3,
        paused_until_ms: None,
        stalled_behind_ms: Some(3 * DAY_MS),
        quarantined: 2,
    };
    let shop = ShopView {
        shop_id: HOSTILE.into(),
        name: Some(HOSTILE.into()),
        status: "needs_reauth",
        status_reason: Some(HOSTILE.into()),
        access_expires_at_ms: Some(NOW - 1),
        refresh_expires_at_ms: Some(NOW + DAY_MS),
        calls_today: Some(1_900),
        quota_paused_until_ms: None,
        rows: BTreeMap::from([("orders", 1_234), ("skus", 5)]),
        streams: vec![stream],
    };
    let method = MethodCalls {
        method: HOSTILE.into(),
        calls: 3,
        ok: 2,
        failed: 1,
        failures: BTreeMap::from([(HOSTILE.to_string(), 1)]),
        success_rate: Some(2.0 / 3.0),
    };
    let run = RunView {
        id: 7,
        shop_id: HOSTILE.into(),
        stream: "orders",
        kind: HOSTILE.into(),
        started_at_ms: NOW - 5_000,
        duration_ms: Some(1_500),
        outcome: Some("failed".into()),
        pages: 1,
        rows: 50,
        calls: 2,
        error: Some(HOSTILE.into()),
    };
    StatusReport {
        service: "kwaishop-sync",
        version: "0.1.0",
        generated_at_ms: NOW,
        daily_quota: Some(2_000),
        shops: vec![shop],
        rows_counted_at_ms: Some(NOW),
        runs: Some(vec![run]),
        queue: None,
        api_calls: Some(ApiCallsView {
            since_ms: NOW - 23 * 3_600_000,
            methods: vec![method.clone()],
            total: method,
            hours: vec![HourCalls {
                hour_ms: NOW,
                ok: 2,
                failed: 1,
            }],
        }),
        failed_reads: 1,
    }
}

#[test]
fn every_value_from_the_database_is_escaped() {
    let page = render_page(&report());
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("onerror=alert(1)>"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    assert!(
        page.contains("data-k=\"rows.&lt;img"),
        "hooks are escaped too"
    );
}

#[test]
fn the_page_refreshes_itself_and_loads_nothing() {
    let page = render_page(&report());
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
    for external in [
        "http:", "https:", "//", "<script", "<link", "src=\"", "url(",
    ] {
        let outside_data = page.replace(&escape(HOSTILE), "");
        assert!(!outside_data.contains(external), "{external} in {page}");
    }
}

#[test]
fn figures_show_with_their_hooks() {
    let page = render_page(&report());
    let shop = escape(HOSTILE);
    for needle in [
        format!("data-k=\"rows.{shop}.orders\">1,234<"),
        format!("data-k=\"quota.{shop}\">1,900<"),
        format!("data-k=\"lag.{shop}.orders\" data-ms=\"90000\">1 min<"),
        "data-k=\"run.7.rows\">50<".to_string(),
        "needs authorization".to_string(),
        "expired 1 ms ago".to_string(),
        "1 database read(s) failed".to_string(),
        "The queue could not be read.".to_string(),
    ] {
        assert!(page.contains(&needle), "no {needle} in {page}");
    }
}

/// Rows counted at the view show plainly; rows counted earlier (a large mirror is counted
/// between views) say how old the count is.
#[test]
fn rows_counted_before_the_view_say_when() {
    let fresh = render_page(&report());
    assert!(fresh.contains("<th class=\"n\">Rows</th>"), "{fresh}");
    let older = render_page(&StatusReport {
        rows_counted_at_ms: Some(NOW - 4_000),
        ..report()
    });
    assert!(
        older.contains("Rows <span class=\"sub\">4 s ago</span>"),
        "{older}"
    );
}
