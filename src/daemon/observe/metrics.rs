//! `GET /metrics`: what the database, the client, the worker, the receiver and the liveness
//! board say now, as Prometheus text. A failed or slow database read leaves its samples out and
//! is counted in `kwaishop_metrics_read_errors` (with `kwaishop_metrics_database_up` 0); it
//! never fails the scrape. No token, secret or free-text error ever becomes a label or a value.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use super::ObserveSources;
use super::exposition::{Exposition, Kind, seconds};
use super::snapshot::{ShopFigures, Snapshot, read_database};
use crate::api::Method;
use crate::store::{ShopStatus, Stream, StreamState};
use crate::sync::StallLimits;

/// The metrics text (also used by tests).
pub async fn render_metrics(sources: &ObserveSources) -> String {
    let snapshot = read_database(sources).await;
    let mut text = Exposition::default();
    write_streams(&mut text, &snapshot, &sources.stalls);
    write_shops(&mut text, &snapshot, sources.daily_quota);
    write_api(&mut text, sources);
    write_queue(&mut text, &snapshot);
    write_counters(&mut text, sources);
    write_loops(&mut text, sources);
    text.single(
        "kwaishop_metrics_database_up",
        Kind::Gauge,
        "1 when every database read of this scrape succeeded, else 0.",
        if snapshot.failed_reads == 0 { 1.0 } else { 0.0 },
    );
    text.single(
        "kwaishop_metrics_read_errors",
        Kind::Gauge,
        "Database reads that failed or timed out in this scrape (their samples are left out).",
        snapshot.failed_reads as f64,
    );
    text.finish()
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// One family with a sample per stored stream state that has a value.
fn per_state(
    text: &mut Exposition,
    s: &Snapshot,
    (name, kind, help): (&'static str, Kind, &str),
    value: impl Fn(&StreamState) -> Option<f64>,
) {
    let mut family = text.family(name, kind, help);
    for st in &s.states {
        if let Some(v) = value(st) {
            family.sample(&[("shop", &st.shop_id), ("stream", st.stream.as_str())], v);
        }
    }
}

fn write_streams(text: &mut Exposition, s: &Snapshot, stalls: &StallLimits) {
    let lag = (
        "kwaishop_sync_lag_seconds",
        Kind::Gauge,
        "How far the mirror is behind: now minus the stream's checkpoint.",
    );
    per_state(text, s, lag, |st| {
        st.checkpoint_ms.map(|c| seconds((s.now_ms - c).max(0)))
    });
    let checkpoint = (
        "kwaishop_sync_checkpoint_timestamp_seconds",
        Kind::Gauge,
        "The stream's checkpoint: everything updated before it is mirrored.",
    );
    per_state(text, s, checkpoint, |st| st.checkpoint_ms.map(seconds));
    let success = (
        "kwaishop_sync_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the stream last caught up.",
    );
    per_state(text, s, success, |st| st.last_success_ms.map(seconds));
    let rows = (
        "kwaishop_sync_rows_total",
        Kind::Counter,
        "Rows the stream has written.",
    );
    per_state(text, s, rows, |st| Some(st.rows_total as f64));
    write_stream_flags(text, s, stalls);
    {
        let mut rows = text.family(
            "kwaishop_mirror_rows",
            Kind::Gauge,
            "Rows of the shop in each mirror table, soft-deleted items and SKUs included.",
        );
        for f in &s.figures {
            for (table, n) in &f.rows {
                rows.sample(&[("shop", &f.shop_id), ("table", table)], *n as f64);
            }
        }
    }
    if let Some(at) = s.rows_counted_at_ms {
        text.family(
            "kwaishop_mirror_rows_counted_timestamp_seconds",
            Kind::Gauge,
            "When kwaishop_mirror_rows was counted (a large mirror is counted between scrapes).",
        )
        .sample(&[], seconds(at));
    }
}

/// Pause and error flags for every (shop, stream), so an alert sees 0 before it sees 1; none
/// when the shops or the states could not be read (a missing 1 must not read as 0).
fn write_stream_flags(text: &mut Exposition, s: &Snapshot, stalls: &StallLimits) {
    let figures: &[ShopFigures] = if s.shops_and_states_read {
        &s.figures
    } else {
        &[]
    };
    // Indexed: an ISV may have thousands of shops.
    let states: HashMap<(&str, Stream), &StreamState> = s
        .states
        .iter()
        .map(|st| ((st.shop_id.as_str(), st.stream), st))
        .collect();
    let state = |shop: &str, stream: Stream| states.get(&(shop, stream)).copied();
    let shop_pauses: HashMap<&str, Option<i64>> = s
        .shops
        .iter()
        .map(|r| (r.shop_id.as_str(), r.quota_paused_until))
        .collect();
    let mut paused = text.family(
        "kwaishop_sync_paused",
        Kind::Gauge,
        "1 while the stream waits for the shop's daily quota to reset.",
    );
    for f in figures {
        let shop_pause = shop_pauses.get(f.shop_id.as_str()).copied().flatten();
        for stream in Stream::ALL {
            let stream_pause = state(&f.shop_id, stream).and_then(|st| st.paused_until_ms);
            let until = stream_pause.max(shop_pause);
            let labels = [("shop", f.shop_id.as_str()), ("stream", stream.as_str())];
            paused.sample(&labels, flag(until.is_some_and(|t| t > s.now_ms)));
        }
    }
    let mut failed = text.family(
        "kwaishop_sync_last_error",
        Kind::Gauge,
        "1 when the stream's last run failed (the message is in `kwaishop-sync status`).",
    );
    for f in figures {
        for stream in Stream::ALL {
            let error = state(&f.shop_id, stream).is_some_and(|st| st.last_error.is_some());
            let labels = [("shop", f.shop_id.as_str()), ("stream", stream.as_str())];
            failed.sample(&labels, flag(error));
        }
    }
    let mut stalled = text.family(
        "kwaishop_sync_stalled",
        Kind::Gauge,
        "1 when the stream's runs end caught up while its checkpoint stays further behind than \
         a window, a schedule interval and the settle delay: the mirror does not move.",
    );
    for f in figures {
        for stream in Stream::ALL {
            let behind = state(&f.shop_id, stream).and_then(|st| stalls.stalled_by(st));
            let labels = [("shop", f.shop_id.as_str()), ("stream", stream.as_str())];
            stalled.sample(&labels, flag(behind.is_some()));
        }
    }
    if s.quarantine.is_some() {
        let mut quarantined = text.family(
            "kwaishop_sync_quarantined",
            Kind::Gauge,
            "Records of the stream that could not be read or stored, set aside in quarantine \
             (`kwaishop-sync quarantine ls`).",
        );
        for f in figures {
            for stream in Stream::ALL {
                let labels = [("shop", f.shop_id.as_str()), ("stream", stream.as_str())];
                quarantined.sample(&labels, s.quarantined(&f.shop_id, stream) as f64);
            }
        }
    }
}

fn write_shops(text: &mut Exposition, s: &Snapshot, daily_quota: Option<u64>) {
    let mut reauth = text.family(
        "kwaishop_shop_needs_reauth",
        Kind::Gauge,
        "1 when the merchant must authorize the app again; the shop's streams stop.",
    );
    for shop in &s.shops {
        reauth.sample(
            &[("shop", &shop.shop_id)],
            flag(shop.status == ShopStatus::NeedsReauth),
        );
    }
    let used = (
        "kwaishop_quota_used_today",
        "API calls counted against the shop's daily quota today (China time), all methods \
         together; a busy stream counts up to 32 calls per method ahead of use, given back at \
         a stop.",
    );
    per_shop(text, s, used, |f| f.calls_today.map(|n| n as f64));
    if let Some(limit) = daily_quota {
        text.single(
            "kwaishop_quota_limit",
            Kind::Gauge,
            "The configured daily call quota per shop.",
            limit as f64,
        );
    }
    let access = (
        "kwaishop_token_access_expiry_timestamp_seconds",
        "When the shop's access token expires (it is refreshed before).",
    );
    per_shop(text, s, access, |f| f.token_expiry.map(|e| seconds(e.0)));
    let refresh = (
        "kwaishop_token_refresh_expiry_timestamp_seconds",
        "When the shop's refresh token expires: the merchant must authorize again before.",
    );
    per_shop(text, s, refresh, |f| f.token_expiry.map(|e| seconds(e.1)));
}

/// One gauge family with a sample per shop that has a value.
fn per_shop(
    text: &mut Exposition,
    s: &Snapshot,
    (name, help): (&'static str, &str),
    value: impl Fn(&ShopFigures) -> Option<f64>,
) {
    let mut family = text.family(name, Kind::Gauge, help);
    for f in &s.figures {
        if let Some(v) = value(f) {
            family.sample(&[("shop", &f.shop_id)], v);
        }
    }
}

fn write_api(text: &mut Exposition, sources: &ObserveSources) {
    let counts = sources
        .client
        .as_ref()
        .map(|c| c.call_counts())
        .unwrap_or_default();
    let mut calls = text.family(
        "kwaishop_api_calls_total",
        Kind::Counter,
        "Answers of the platform per shop, method and outcome (ok or the failure class).",
    );
    let mut throttled: BTreeMap<Method, u64> = Method::ALL.iter().map(|m| (*m, 0)).collect();
    for (shop, method, outcome, n) in &counts {
        calls.sample(
            &[
                ("shop", shop),
                ("method", method.name()),
                ("outcome", outcome),
            ],
            *n as f64,
        );
        if *outcome == "throttled" {
            *throttled.entry(*method).or_insert(0) += n;
        }
    }
    let mut family = text.family(
        "kwaishop_api_throttled_total",
        Kind::Counter,
        "Throttled answers per method, all shops together (the app's QPS is shared).",
    );
    for (method, n) in throttled {
        family.sample(&[("method", method.name())], n as f64);
    }
}

fn write_queue(text: &mut Exposition, s: &Snapshot) {
    let Some(q) = s.queue else { return };
    let mut events = text.family(
        "kwaishop_queue_events",
        Kind::Gauge,
        "Push events in the queue per status.",
    );
    for (status, n) in [
        ("pending", q.pending),
        ("running", q.running),
        ("dead", q.dead),
        ("unknown_shop", q.unknown_shop),
        ("done", q.done),
    ] {
        events.sample(&[("status", status)], n as f64);
    }
    let age = q
        .oldest_pending_received_at_ms
        .map_or(0, |t| (s.now_ms - t).max(0));
    text.single(
        "kwaishop_queue_oldest_pending_age_seconds",
        Kind::Gauge,
        "How long the oldest pending push event has waited (0 when none waits).",
        seconds(age),
    );
}

fn write_counters(text: &mut Exposition, sources: &ObserveSources) {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    if let Some(w) = &sources.worker {
        for (name, help, counter) in [
            (
                "kwaishop_worker_events_claimed_total",
                "Push events the worker claimed.",
                &w.claimed,
            ),
            (
                "kwaishop_worker_events_done_total",
                "Push events whose effect is committed.",
                &w.done,
            ),
            (
                "kwaishop_worker_events_retried_total",
                "Push events put back for a later attempt.",
                &w.retried,
            ),
            (
                "kwaishop_worker_events_dead_total",
                "Push events out of attempts.",
                &w.dead,
            ),
            (
                "kwaishop_worker_fetches_total",
                "Records the worker fetched from the platform.",
                &w.fetches,
            ),
        ] {
            text.single(name, Kind::Counter, help, load(counter));
        }
    }
    if let Some(r) = &sources.receiver {
        for (name, help, counter) in [
            (
                "kwaishop_push_accepted_total",
                "Push messages stored and acknowledged.",
                &r.accepted,
            ),
            (
                "kwaishop_push_duplicates_total",
                "Push messages already stored (acknowledged again).",
                &r.duplicates,
            ),
            (
                "kwaishop_push_rejected_total",
                "Push messages refused as undecodable or not ours.",
                &r.rejected,
            ),
            (
                "kwaishop_push_unavailable_total",
                "Push messages answered 503: storage failed, the platform re-sends.",
                &r.unavailable,
            ),
            (
                "kwaishop_push_heartbeats_total",
                "Test (heartbeat) messages acknowledged.",
                &r.heartbeats,
            ),
            (
                "kwaishop_push_unknown_shop_total",
                "Push messages for a shop not known yet (kept).",
                &r.unknown_shop,
            ),
        ] {
            text.single(name, Kind::Counter, help, load(counter));
        }
    }
}

fn write_loops(text: &mut Exposition, sources: &ObserveSources) {
    let silences = sources.liveness.silences();
    let mut family = text.family(
        "kwaishop_loop_silence_seconds",
        Kind::Gauge,
        "Time since the loop last made progress.",
    );
    for l in &silences {
        family.sample(&[("loop", l.name)], l.silent_for.as_secs_f64());
    }
    let mut family = text.family(
        "kwaishop_loop_stalled",
        Kind::Gauge,
        "1 when the loop has been silent for longer than allowed (/healthz fails).",
    );
    for l in &silences {
        family.sample(&[("loop", l.name)], flag(l.is_stalled()));
    }
}
