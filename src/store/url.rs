//! Where the mirror lives, parsed once: a SQLite file or a Postgres server. The config, the
//! store, the instance lock and the command line all read a database URL through this.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::StoreError;
use super::error::redact_url;

/// A database URL: `sqlite://path` or `sqlite:path` (`sqlite:///abs` is `/abs`), or
/// `postgres://…` / `postgresql://…`. Shown (`Display`, `Debug`) with its password redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses a URL, refusing what the store cannot open as a durable mirror.
    pub fn parse(url: &str) -> Result<DatabaseUrl, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact_url(url),
            reason: reason.to_string(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| bad("expected sqlite:, postgres:// or postgresql://"))?;
        if rest.contains('?') {
            return Err(bad(
                "query parameters are not supported; the store sets its own options",
            ));
        }
        if rest.is_empty() || rest.starts_with(':') {
            return Err(bad(
                "give a file path (an in-memory database would lose the mirror)",
            ));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)))
    }

    /// A database named on the command line: a URL, or a bare path to a SQLite file.
    pub fn from_arg(arg: &str) -> Result<DatabaseUrl, StoreError> {
        if arg.contains("://") || arg.starts_with("sqlite:") {
            Self::parse(arg)
        } else {
            Ok(DatabaseUrl::Sqlite(PathBuf::from(arg)))
        }
    }

    /// The SQLite file, or `None` for Postgres.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match self {
            DatabaseUrl::Sqlite(path) => Some(path),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// The same database with a relative SQLite path taken from `base` (a config file's folder).
    pub fn relative_to(self, base: &Path) -> DatabaseUrl {
        match self {
            DatabaseUrl::Sqlite(path) if path.is_relative() => DatabaseUrl::Sqlite(base.join(path)),
            other => other,
        }
    }

    /// The URL in full, password included: only for the driver.
    pub(crate) fn expose(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.expose()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_or_a_server() {
        let path = |u| {
            DatabaseUrl::parse(u)
                .ok()
                .and_then(|d| d.sqlite_file().map(|p| p.display().to_string()))
        };
        assert_eq!(
            path("sqlite:///var/lib/kw/mirror.db").as_deref(),
            Some("/var/lib/kw/mirror.db")
        );
        assert_eq!(path("sqlite://mirror.db").as_deref(), Some("mirror.db"));
        assert_eq!(
            path("sqlite:data/mirror.db").as_deref(),
            Some("data/mirror.db")
        );
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("sqlite://a.db?mode=ro").is_err());
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgresql://u:pw@h/db")
                .ok()
                .map(|d| d.sqlite_file().is_none()),
            Some(true)
        );
    }

    #[test]
    fn shown_without_the_password() {
        let url = DatabaseUrl::parse("postgres://kw:hunter2@db/mirror").expect("url");
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "postgres://kw:hunter2@db/mirror");
    }

    #[test]
    fn a_bare_path_on_the_command_line_is_a_sqlite_file() {
        let db = DatabaseUrl::from_arg("kwaishop-demo.db").expect("path");
        assert_eq!(db.sqlite_file(), Some(Path::new("kwaishop-demo.db")));
        assert_eq!(
            DatabaseUrl::from_arg("sqlite:///tmp/x.db")
                .expect("url")
                .expose(),
            "sqlite:///tmp/x.db"
        );
    }
}
