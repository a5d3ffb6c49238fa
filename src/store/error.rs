//! What can go wrong in the store, in plain words, and the redaction that keeps a database
//! password out of every message (I8).

/// A failure of the store. Every variant says what was being done; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend this build speaks, or cannot be read.
    #[error("unsupported database URL {url}: {reason}")]
    BadUrl {
        /// The URL with its password replaced by `[redacted]`.
        url: String,
        reason: String,
    },
    /// The SQLite file could not be created or opened.
    #[error("cannot open or create the database at {path}: {reason}")]
    Open { path: String, reason: String },
    /// The server could not be reached or refused the login.
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect {
        /// The URL with its password replaced by `[redacted]`.
        url: String,
        reason: String,
    },
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database went away (connection lost, pool closed or exhausted) during `op`.
    #[error("the database is unreachable while {op}: {source}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed during `op` (constraint, full disk, lock timeout, …); the
    /// transaction it was part of was rolled back.
    #[error("a database query failed while {op}: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored value this version cannot read (an unknown status or stream name, bad JSON).
    #[error("unreadable value in the database: {0}")]
    Corrupt(String),
    /// The caller asked for something that cannot be done (a bug in the caller).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// A claimed event's lease was lost: its fence no longer matches because the lease expired
    /// and another worker claimed it (or it is no longer running). Nothing was written.
    #[error("the lease on a claimed event was lost to another worker; nothing was written")]
    LeaseLost,
    /// A stream write under a (shop, stream) lease found the lease taken by another holder
    /// (its fence moved on): the transaction was rolled back and nothing was written.
    #[error(
        "{shop_id} {stream}: the stream's lease was taken over by another daemon (fence {fence} is stale); nothing was written"
    )]
    Fenced {
        shop_id: String,
        stream: &'static str,
        fence: i64,
    },
    /// The shop has no row in `shops`.
    #[error("unknown shop {0}")]
    UnknownShop(String),
    /// A failure reported through another interface (the token store's or usage counter's
    /// string errors), kept as its message.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// Wraps a sqlx error from `op`, telling a lost database apart from a failed statement.
    pub(crate) fn query(op: &'static str, source: sqlx::Error) -> Self {
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable { op, source },
            source => StoreError::Query { op, source },
        }
    }

    /// Whether the database refused what it was asked to store (a constraint, a value it cannot
    /// hold) rather than failing for a passing reason: trying the same write again cannot help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::Query { .. }) && !self.is_transient()
    }

    /// Whether trying again later may succeed: the database was unreachable, busy or locked, or
    /// Postgres aborted a transaction for a serialization failure or deadlock.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } | StoreError::Connect { .. } => true,
            StoreError::Query { source, .. } => source.as_database_error().is_some_and(|e| {
                let Some(code) = e.code() else {
                    return false;
                };
                if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    // Serialization failure and deadlock. (A SQLSTATE such as 22021 is all
                    // digits: it must not be read as a SQLite code.)
                    code == "40001" || code == "40P01"
                } else {
                    // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (and their extended codes, whose
                    // low byte is the primary code).
                    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                }
            }),
            _ => false,
        }
    }
}

/// `url` with any password (in the userinfo or a `password=` parameter) replaced by
/// `[redacted]`, for messages.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((from, to)) = userinfo_password_range(url) {
        out.replace_range(from..to, "[redacted]");
    }
    redact_query_password(&out)
}

/// Replaces the URL's password, raw and percent-decoded, wherever it occurs in `text` (a driver
/// message may quote it).
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    for secret in url_password(url)
        .into_iter()
        .chain(query_password(url))
        .flat_map(|p| [percent_decode(&p), p])
    {
        if !secret.is_empty() {
            out = out.replace(&secret, "[redacted]");
        }
    }
    out
}

/// The password in the userinfo of `scheme://user:password@host/…`, as written.
fn url_password(url: &str) -> Option<String> {
    userinfo_password_range(url).map(|(from, to)| url[from..to].to_string())
}

/// Where the userinfo's password is in `url` (byte range), if it has one.
fn userinfo_password_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some((start + colon + 1, start + at))
}

/// The value of a `password=` query parameter, as written.
fn query_password(url: &str) -> Option<String> {
    let query = &url[url.find('?')? + 1..];
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("password="))
        .map(str::to_string)
}

fn redact_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = url[q + 1..]
        .split('&')
        .map(|pair| match pair.strip_prefix("password=") {
            Some(_) => "password=[redacted]".to_string(),
            None => pair.to_string(),
        })
        .collect();
    format!("{}?{}", &url[..q], pairs.join("&"))
}

/// Decodes `%XX` escapes (invalid ones are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let url = "postgres://app:s3cr%40t@db.example:5432/kw?sslmode=require";
        assert_eq!(
            redact_url(url),
            "postgres://app:[redacted]@db.example:5432/kw?sslmode=require"
        );
        let q = "postgresql://app@db/kw?password=hunter2&sslmode=disable";
        assert_eq!(
            redact_url(q),
            "postgresql://app@db/kw?password=[redacted]&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/t"),
            "postgres://postgres@127.0.0.1/t"
        );
        let message = format!("login for {url} failed: password s3cr@t rejected, s3cr%40t");
        let clean = scrub(&message, url);
        assert!(!clean.contains("s3cr"), "{clean}");
        assert!(!scrub("hunter2 said no", q).contains("hunter2"));
    }
}
