//! The secrets ledger: when `KWAISHOP_TEST_LOGS` names a directory, the simulator appends every
//! secret it makes up (the app's three secrets, every access and refresh token it issues) to
//! `secrets.ledger` there, so a check can prove that no log captured during the test suite
//! contains any of them (I8). Off by default; only tests set the variable.

use std::io::Write;

/// The variable naming the test-log directory.
pub const LOGS_VAR: &str = "KWAISHOP_TEST_LOGS";

/// Records secrets in the ledger, if one is configured.
pub fn record<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let Some(dir) = std::env::var_os(LOGS_VAR) else {
        return;
    };
    let path = std::path::Path::new(&dir).join("secrets.ledger");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let mut text = String::new();
        for s in secrets {
            text.push_str(s);
            text.push('\n');
        }
        let _ = file.write_all(text.as_bytes());
    }
}
