//! The file as written: TOML sections deserialized one by one (so one bad section does not hide
//! the errors of the others), environment overrides, then validation into [`Config`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::api::{DEFAULT_AUTHORIZE_URL, DEFAULT_BASE_URL};
use crate::store::{DatabaseUrl, Stream};
use sections::*;

/// Environment variables starting with this override the file: `KWAISHOP_SYNC__DATABASE__URL`
/// sets `[database] url`; `KWAISHOP_SYNC__STREAMS__ORDERS__ENABLED=false` a stream's switch.
pub const ENV_PREFIX: &str = "KWAISHOP_SYNC__";

const SECTIONS: [&str; 12] = [
    "platform", "database", "limits", "retry", "sync", "streams", "push", "http", "daemon",
    "queue", "shops", "clock",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    base_url: Option<String>,
    authorize_url: Option<String>,
    redirect_uri: Option<String>,
    app_key: Option<String>,
    app_secret: Option<String>,
    app_secret_file: Option<PathBuf>,
    sign_secret: Option<String>,
    sign_secret_file: Option<PathBuf>,
    msg_secret: Option<String>,
    msg_secret_file: Option<PathBuf>,
    sign_method: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    qps: QpsSetting,
    daily_quota: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<usize>,
    throttled_delay_ms: Option<u64>,
    transient_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    backfill_days: Option<u32>,
    reconcile_days: Option<u32>,
    reconcile_schedule: Option<String>,
    max_pages_per_window: Option<u32>,
    concurrency: Option<u32>,
    runs_at_once: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStream {
    enabled: Option<bool>,
    schedule: Option<String>,
    window_minutes: Option<u64>,
    page_size: Option<u32>,
    lookback_secs: Option<u64>,
    settle_secs: Option<u64>,
    sort: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreams {
    #[serde(default)]
    orders: RawStream,
    #[serde(default)]
    refunds: RawStream,
    #[serde(default)]
    items: RawStream,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    enabled: Option<bool>,
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    grace_secs: Option<u64>,
    state_dir: Option<PathBuf>,
    lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    max_attempts: Option<i64>,
    retention_days: Option<u64>,
    concurrency: Option<usize>,
    lease_secs: Option<u64>,
    retry_base_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    id: Option<String>,
    open_id: Option<String>,
    seller_id: Option<i64>,
    name: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    speed: Option<f64>,
    wall_origin_ms: Option<i64>,
    origin_ms: Option<i64>,
}

struct Ctx<'a> {
    base: &'a Path,
    env: &'a [(String, String)],
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// systemd's `STATE_DIRECTORY` (the first, when the unit names several, `:`-separated):
    /// where the database and the pid file go by default under systemd.
    fn state_directory(&self) -> Option<PathBuf> {
        self.env
            .iter()
            .find(|(k, _)| k == "STATE_DIRECTORY")
            .and_then(|(_, v)| v.split(':').next())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A secret: inline, from `<name>_file`, or from `$CREDENTIALS_DIRECTORY/<name>`.
    fn secret(
        &mut self,
        name: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
        required: bool,
    ) -> Option<Secret> {
        let field = format!("platform.{name}");
        let credentials_dir = self
            .env
            .iter()
            .find(|(k, _)| k == "CREDENTIALS_DIRECTORY")
            .map(|(_, v)| PathBuf::from(v));
        let value = match (inline, file) {
            (Some(_), Some(_)) => {
                self.err(field, format!("set either {name} or {name}_file, not both"));
                return None;
            }
            (Some(v), None) => Some(v),
            (None, Some(f)) => {
                let path = self.path(&f);
                match std::fs::read_to_string(&path) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.err(
                            format!("{field}_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
            (None, None) => {
                credentials_dir.and_then(|dir| std::fs::read_to_string(dir.join(name)).ok())
            }
        };
        let value = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if value.is_none() && required {
            self.err(
                field,
                format!(
                    "missing: set {name}_file (or {name}, or a systemd credential named {name})"
                ),
            );
        }
        value.map(Secret::new)
    }
}

/// Applies `KWAISHOP_SYNC__A__B=value` overrides; values are TOML when they parse as TOML.
fn apply_env(root: &mut toml::Table, env: &[(String, String)], errors: &mut Vec<ConfigError>) {
    for (key, value) in env {
        let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let field = path.join(".");
        let mut table = &mut *root;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                table.insert(part.clone(), parsed.clone());
                break;
            }
            let entry = table
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            match entry {
                toml::Value::Table(t) => table = t,
                _ => {
                    errors.push(ConfigError {
                        field: field.clone(),
                        message: format!("{key}: {part} is not a section"),
                    });
                    break;
                }
            }
        }
    }
}

/// Parses, overrides and validates. Every error found is returned.
pub(super) fn parse(
    text: &str,
    base: &Path,
    env: &[(String, String)],
) -> Result<Config, Vec<ConfigError>> {
    let mut root: toml::Table = toml::from_str(text).map_err(|e| {
        vec![ConfigError {
            field: "(syntax)".into(),
            message: e.to_string().trim().to_string(),
        }]
    })?;
    let mut cx = Ctx {
        base,
        env,
        errors: Vec::new(),
    };
    apply_env(&mut root, env, &mut cx.errors);
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            cx.err(
                key.clone(),
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    let platform: RawPlatform = section(root.get("platform"), "platform", &mut cx.errors);
    let database: RawDatabase = section(root.get("database"), "database", &mut cx.errors);
    let limits: RawLimits = section(root.get("limits"), "limits", &mut cx.errors);
    let retry: RawRetry = section(root.get("retry"), "retry", &mut cx.errors);
    let sync: RawSync = section(root.get("sync"), "sync", &mut cx.errors);
    let streams: RawStreams = section(root.get("streams"), "streams", &mut cx.errors);
    let push: RawPush = section(root.get("push"), "push", &mut cx.errors);
    let queue: RawQueue = section(root.get("queue"), "queue", &mut cx.errors);
    let http: RawHttp = section(root.get("http"), "http", &mut cx.errors);
    let daemon: RawDaemon = section(root.get("daemon"), "daemon", &mut cx.errors);
    let clock: Option<RawClock> = root
        .get("clock")
        .map(|v| section(Some(v), "clock", &mut cx.errors));
    let shops: Vec<RawShop> = match root.get("shops") {
        None => Vec::new(),
        Some(toml::Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| section(Some(v), &format!("shops[{i}]"), &mut cx.errors))
            .collect(),
        Some(_) => {
            cx.err("shops", "must be an array of tables ([[shops]])");
            Vec::new()
        }
    };
    let push = build_push(push);
    let config = Config {
        path: None,
        platform: build_platform(&mut cx, platform, push.enabled),
        database_url: build_database(&mut cx, database),
        limits: build_limits(&mut cx, limits),
        retry: build_retry(&mut cx, retry),
        sync: build_sync(&mut cx, sync),
        orders: build_stream(&mut cx, Stream::Orders, streams.orders),
        refunds: build_stream(&mut cx, Stream::Refunds, streams.refunds),
        items: build_stream(&mut cx, Stream::Items, streams.items),
        push,
        http: build_http(&mut cx, http),
        daemon: build_daemon(&mut cx, daemon),
        queue: build_queue(&mut cx, queue),
        shops: build_shops(&mut cx, shops),
        clock: clock.and_then(|c| build_clock(&mut cx, c)),
    };
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(cx.errors)
    }
}

impl FromStr for Config {
    type Err = ConfigErrors;

    /// Parses a config from text, with paths relative to the working directory and no
    /// environment overrides.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text, Path::new("."), &[]).map_err(|errors| ConfigErrors {
            file: "config".into(),
            errors,
        })
    }
}

mod sections;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod example {
    /// The shipped example must stay valid (its secrets are given inline here).
    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../config/kwaishop-sync.example.toml")
            .replace(
                "app_secret_file = \"secrets/app_secret\"",
                "app_secret = \"x\"",
            )
            .replace(
                "sign_secret_file = \"secrets/sign_secret\"",
                "sign_secret = \"y\"",
            );
        let c: super::Config = text.parse().expect("the example config is valid");
        assert_eq!(c.shops[0].id, "main");
        assert_eq!(
            c.limits.qps.get(&crate::api::Method::OrderCursorList),
            Some(&300.0)
        );
    }
}
