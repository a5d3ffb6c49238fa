//! Embeds the migrations: `$OUT_DIR/migrations.rs` lists every `migrations/<backend>/*.sql` as
//! (version, description, `include_str!` of the file), named as sqlx names them
//! (`0007_resync_one_pending.sql` is version 7, "resync one pending"). The store builds its
//! migrators from that list at run time. sqlx's `migrate!` macro would do the same, but it pulls
//! a second build of both database drivers (and of SQLite's C source) into the proc-macro, for
//! every build and every clippy run.
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut out = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        writeln!(
            out,
            "pub(crate) const {}: &[(i64, &str, &str)] = &[",
            backend.to_uppercase()
        )
        .expect("write");
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_else(|| panic!("{} is not a UTF-8 name", path.display()));
            let (version, rest) = name
                .split_once('_')
                .unwrap_or_else(|| panic!("{name}: expected <version>_<description>.sql"));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("{name}: the version is not a number"));
            assert!(
                !rest.ends_with(".up.sql") && !rest.ends_with(".down.sql"),
                "{name}: migrations are simple (forward only)"
            );
            let description = rest.trim_end_matches(".sql").replace('_', " ");
            writeln!(
                out,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .expect("write");
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}
