//! The "is it installed" probes of `scripts/deps.sh`, run against made-up
//! file trees (REHEARSE_DEPS_ROOT): each must ask for a package exactly when
//! what the build or the run later uses is missing. A green CI on a machine
//! that already had a package proves nothing about a fresh one.

use std::path::Path;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The packages `deps.sh --print-missing` would install with `files` (paths
/// under a fake root; a trailing `*` makes the file executable) in place of the machine's.
fn missing_with(files: &[&str]) -> Vec<String> {
    let root = tempfile::tempdir().unwrap();
    for file in files {
        let (path, executable) = match file.strip_suffix('*') {
            Some(p) => (p, true),
            None => (*file, false),
        };
        let full = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, b"").unwrap();
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let out = Command::new(Path::new(REPO).join("scripts/deps.sh"))
        .arg("--print-missing")
        .env("REHEARSE_DEPS_ROOT", root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "deps.sh --print-missing failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

const PG15: [&str; 7] = [
    "/usr/lib/postgresql/15/bin/initdb*",
    "/usr/lib/postgresql/15/bin/pg_ctl*",
    "/usr/lib/postgresql/15/bin/pg_restore*",
    "/usr/lib/postgresql/15/bin/psql*",
    "/usr/lib/postgresql/15/bin/pg_dump*",
    "/usr/lib/postgresql/15/bin/pg_basebackup*",
    "/usr/lib/postgresql/15/lib/pg_stat_statements.so",
];

/// Debian 12's libclang-dev: libclang1-14's library, libclang-common-14-dev's headers.
const LIBCLANG_DEV: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/libclang-14.so.14",
    "/usr/lib/llvm-14/lib/libclang-14.so.1",
    "/usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h",
];

fn with(parts: &[&[&str]]) -> Vec<String> {
    missing_with(&parts.concat())
}

#[test]
fn libclang_cpp_alone_is_not_libclang() {
    // What libclang-cpp14 installs (llvm-14-dev pulls it in): the C++ library, not libclang.
    let cpp_only = ["/usr/lib/llvm-14/lib/libclang-cpp.so.14", "/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14"];
    assert!(with(&[&PG15, &cpp_only]).contains(&"libclang-dev".to_string()));
}

#[test]
fn libclang_without_clangs_headers_is_not_enough() {
    let library_only = ["/usr/lib/llvm-14/lib/libclang.so.1"];
    assert!(with(&[&PG15, &library_only]).contains(&"libclang-dev".to_string()));
}

#[test]
fn libclang_dev_as_debian_installs_it_is_found() {
    assert!(!with(&[&PG15, &LIBCLANG_DEV]).contains(&"libclang-dev".to_string()));
    // Other layouts bindgen loads from: an unversioned library, libclang-N.so.
    for library in ["/usr/lib/libclang.so", "/usr/local/lib/libclang-18.so"] {
        let found = with(&[&PG15, &[library, "/usr/lib/clang/18/include/stddef.h"]]);
        assert!(!found.contains(&"libclang-dev".to_string()), "{library}: {found:?}");
    }
}

#[test]
fn postgres_needs_every_tool_and_pg_stat_statements() {
    assert!(!with(&[&PG15, &LIBCLANG_DEV]).iter().any(|p| p.starts_with("postgresql")));
    // The client package alone (psql, pg_dump, pg_restore): no server.
    let client = ["/usr/lib/postgresql/15/bin/psql*", "/usr/lib/postgresql/15/bin/pg_dump*"];
    assert!(with(&[&client, &LIBCLANG_DEV]).iter().any(|p| p.starts_with("postgresql")));
    // A server without the module every rehearsal preloads.
    let without = |left_out: &str| PG15.iter().copied().filter(|p| !p.contains(left_out)).collect::<Vec<_>>();
    assert!(with(&[&without("pg_stat_statements"), &LIBCLANG_DEV]).iter().any(|p| p.starts_with("postgresql")));
    // Without pg_basebackup, which starts the standby (observe.standby).
    assert!(with(&[&without("pg_basebackup"), &LIBCLANG_DEV]).iter().any(|p| p.starts_with("postgresql")));
}

#[test]
fn pgbackrest_is_asked_for_until_its_binary_is_there() {
    assert!(with(&[&PG15, &LIBCLANG_DEV]).contains(&"pgbackrest".to_string()));
    assert!(!with(&[&PG15, &LIBCLANG_DEV, &["/usr/bin/pgbackrest*"]]).contains(&"pgbackrest".to_string()));
}
