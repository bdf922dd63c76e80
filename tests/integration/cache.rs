//! The snapshot cache: a hit on the same dump, a miss when the dump changes,
//! a damaged entry rebuilt, prune removing what it says, and a warm run
//! reporting what a cold run reports; for the local backend (a data dir
//! copy) and the docker backend (a committed image).

use std::process::Command;

use rehearse::report::MigrationReport;

use crate::support::{
    assert_no_containers, docker_lock, docker_out, dumps, kept_container, pg_bin_dir, test_image, tiny_demo_dump,
    Sandbox,
};

fn comparable(m: &MigrationReport) -> (String, String, Vec<(String, String)>, usize) {
    let mut locks: Vec<(String, String)> =
        m.locks.iter().map(|l| (l.relation.clone(), l.mode.as_str().to_string())).collect();
    locks.sort();
    (m.id.clone(), format!("{:?}", m.status), locks, m.rewrites.len())
}

/// Every directory and file under `dir` with its permission bits, the dir itself first.
fn modes(dir: &std::path::Path) -> Vec<(String, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mut out = vec![(dir.display().to_string(), meta.is_dir(), meta.permissions().mode() & 0o7777)];
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            out.extend(modes(&entry.unwrap().path()));
        }
    }
    out
}

#[test]
fn the_cache_holding_production_data_is_private_all_the_way_down() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;\n")]);
    let scenario = sandbox.scenario(tiny_demo_dump(), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    out.assert_code(0);
    assert_eq!(out.report().restore.cache.map(|c| c.as_str()), Some("saved"));
    let all = modes(&sandbox.path().join("cache"));
    let files = all.iter().filter(|(_, dir, _)| !dir).count();
    assert!(files > 100, "a data dir was cached: {files} files");
    let exposed: Vec<String> = all
        .iter()
        .filter(|(_, dir, mode)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(path, dir, mode)| format!("{path} ({} {mode:o})", if *dir { "dir" } else { "file" }))
        .collect();
    assert!(exposed.is_empty(), "dirs 0700 and files 0600 only; not:\n{}", exposed.join("\n"));
    sandbox.assert_no_leaks();
}

#[test]
fn warm_runs_hit_the_cache_and_report_what_cold_runs_report() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_index.sql", "CREATE INDEX orders_total_idx ON public.orders (total);\n"),
        ("0002_retype.sql", "ALTER TABLE public.customers ALTER COLUMN name TYPE varchar(200);\n"),
    ]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let run = || sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);

    let cold = run();
    cold.assert_code(0);
    let cold = cold.report();
    assert_eq!(cold.restore.cache.map(|c| c.as_str()), Some("saved"));
    let warm = run();
    warm.assert_code(0);
    let warm = warm.report();
    assert_eq!(warm.restore.cache.map(|c| c.as_str()), Some("hit"), "same dump, same server: a hit");
    assert_eq!(warm.restore.cache_key, cold.restore.cache_key);
    assert_eq!(warm.restore.roles_created, cold.restore.roles_created);
    let cold_view: Vec<_> = cold.migrations.iter().map(comparable).collect();
    let warm_view: Vec<_> = warm.migrations.iter().map(comparable).collect();
    assert_eq!(warm_view, cold_view, "a warm run sees the same migrations, locks and rewrites");
    assert_eq!(warm.dump.tables.len(), cold.dump.tables.len());
    // Each stage timed apart; a hit skips the restore's work, the analyze and the save.
    let stages = |r: &rehearse::report::Report| r.stages.iter().map(|s| s.stage.as_str()).collect::<Vec<_>>();
    let pipeline =
        ["provision", "restore", "analyze", "snapshot", "prepare", "discover", "rehearse", "cleanup", "report"];
    assert_eq!(stages(&cold), pipeline);
    let hit: Vec<&str> = pipeline.into_iter().filter(|s| !["analyze", "snapshot"].contains(s)).collect();
    assert_eq!(stages(&warm), hit);
    assert!(cold.stages.iter().find(|s| s.stage.as_str() == "restore").unwrap().duration_ms > 0);
    // The restore ran with wal_level = minimal and fsync off; the rehearsal,
    // cold or warm, with production's defaults, so its WAL figures are real.
    for report in [&cold, &warm] {
        let setting = |name: &str| report.postgres.settings.iter().find(|s| s.name == name).map(|s| s.value.clone());
        assert_eq!(setting("wal_level").as_deref(), Some("replica"));
        assert_eq!(setting("fsync").as_deref(), Some("on"));
    }
    // The cached cluster's password was replaced: the manifest's no longer works,
    // and never appears in the outputs.
    sandbox.assert_no_leaks();

    // A restore option that does not change the restored state is not in the key.
    let fewer_jobs = sandbox.scenario_on("backend: local\n  restore_jobs: 1", &dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", fewer_jobs.to_str().unwrap(), "--use-cache"]);
    out.assert_code(0);
    assert_eq!(
        out.report().restore.cache.map(|c| c.as_str()),
        Some("hit"),
        "restore_jobs does not change what is restored"
    );

    // A different dump (the same data as a directory dump) is another key.
    let other = sandbox.scenario(&dumps().path("directory"), "");
    let out = sandbox.rehearse(&["run", other.to_str().unwrap(), "--use-cache"]);
    out.assert_code(0);
    assert_eq!(out.report().restore.cache.map(|c| c.as_str()), Some("saved"), "a changed dump never reuses an entry");
    assert_ne!(out.report().restore.cache_key, cold.restore.cache_key);

    // A truncated file in the entry is detected: rebuilt, not used.
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let run = || sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    let entry = sandbox.path().join("cache").join(cold.restore.cache_key.as_ref().unwrap());
    let victim = std::fs::read_dir(entry.join("data/global"))
        .unwrap()
        .flatten()
        .find(|e| e.metadata().unwrap().len() > 8192)
        .unwrap()
        .path();
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&victim).unwrap().set_len(len / 2).unwrap();
    let rebuilt = run();
    rebuilt.assert_code(0);
    assert_eq!(rebuilt.report().restore.cache.map(|c| c.as_str()), Some("saved"), "the damaged entry was rebuilt");

    // list shows both entries; prune removes what it says.
    let list = sandbox.rehearse(&["cache", "list"]);
    list.assert_code(0);
    assert!(list.stdout.contains("(2 entries)"), "{}", list.stdout);
    let pruned = sandbox.rehearse(&["cache", "prune", "--max-size", "0"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains("2 entries removed"), "{}", pruned.stdout);
    let list = sandbox.rehearse(&["cache", "list"]);
    assert!(list.stdout.contains("(0 entries)"), "{}", list.stdout);
    sandbox.assert_no_leaks();
}

/// The docker backend's entry is a committed image of the stopped container:
/// a hit starts from it, an image removed behind the cache's back is rebuilt,
/// and prune removes the image with the entry.
#[test]
fn docker_runs_cache_a_committed_image_that_prune_removes() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[
        ("0001_index.sql", "CREATE INDEX orders_total_idx ON public.orders (total);\n"),
        ("0002_retype.sql", "ALTER TABLE public.customers ALTER COLUMN name TYPE varchar(200);\n"),
    ]);
    let backend = format!("backend: docker\n  image: {}", test_image());
    let scenario = sandbox.scenario_on(&backend, &dumps().path("custom"), "");
    let run = || sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache"]);
    let image_of = |key: &str| -> String {
        let manifest = std::fs::read_to_string(sandbox.path().join("cache").join(key).join("manifest.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        manifest["image"].as_str().expect("a docker entry names its image").to_string()
    };
    let inspect = |image: &str, format: &str| {
        let out = Command::new("docker").args(["image", "inspect", "--format", format, image]).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };

    let cold = run();
    cold.assert_code(0);
    let cold = cold.report();
    assert_eq!(cold.restore.cache.map(|c| c.as_str()), Some("saved"));
    let key = cold.restore.cache_key.clone().unwrap();
    let image = image_of(&key);
    assert_eq!(inspect(&image, "{{index .Config.Labels \"rehearse.snapshot\"}}").as_deref(), Some(key.as_str()));
    // The entry counts the snapshot's own layer, not the base image's.
    let manifest = std::fs::read_to_string(sandbox.path().join("cache").join(&key).join("manifest.json")).unwrap();
    let bytes = serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["bytes"].as_u64().unwrap();
    let base: u64 = inspect(&test_image(), "{{.Size}}").unwrap().parse().unwrap();
    let whole: u64 = inspect(&image, "{{.Size}}").unwrap().parse().unwrap();
    assert_eq!(bytes, whole - base, "layer of {bytes} bytes, image {whole}, base {base}");
    assert!(bytes > 1_000_000, "the restored data dir is in the layer");
    let env = inspect(&image, "{{json .Config.Env}}").unwrap();
    assert!(env.contains("\"POSTGRES_PASSWORD=\""), "the image keeps no password: {env}");

    let warm = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache", "--keep"]);
    warm.assert_code(0);
    let kept = kept_container(&warm.stderr);
    let warm = warm.report();
    assert_eq!(warm.restore.cache.map(|c| c.as_str()), Some("hit"), "same dump, same image: a hit");
    let cold_view: Vec<_> = cold.migrations.iter().map(comparable).collect();
    let warm_view: Vec<_> = warm.migrations.iter().map(comparable).collect();
    assert_eq!(warm_view, cold_view, "a warm run sees the same migrations, locks and rewrites");
    // The container from the cache answers to its own POSTGRES_PASSWORD (what
    // --keep points to), no longer to the one written in the cache manifest.
    let manifest = std::fs::read_to_string(sandbox.path().join("cache").join(&key).join("manifest.json")).unwrap();
    let cached: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let env = docker_out(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &kept]);
    let password = env.lines().find_map(|l| l.strip_prefix("POSTGRES_PASSWORD=")).unwrap().to_string();
    let port = docker_out(&["port", &kept, "5432"]).trim().rsplit(':').next().unwrap().to_string();
    let login = |password: &str| {
        Command::new(format!("{}/psql", pg_bin_dir()))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "rehearse", "-d", "rehearse", "-Atc", "SELECT 1"])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(login(&password), "the container's POSTGRES_PASSWORD works");
    assert!(!login(cached["password"].as_str().unwrap()), "the cached password was replaced");
    docker_out(&["rm", "-f", "-v", &kept]);
    assert_no_containers();

    // Another image (here the same files under a new id) is another server: a miss.
    let variant = format!("{}-variant-{}", test_image(), std::process::id());
    let made = Command::new("docker").args(["create", &test_image()]).output().unwrap();
    let made_id = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(Command::new("docker")
        .args(["commit", "--change", "LABEL rehearse.test=variant", &made_id, &variant])
        .output()
        .unwrap()
        .status
        .success());
    assert!(Command::new("docker").args(["rm", &made_id]).output().unwrap().status.success());
    let other = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--use-cache", "--image", &variant]);
    other.assert_code(0);
    let other = other.report();
    assert_eq!(other.restore.cache.map(|c| c.as_str()), Some("saved"), "a changed image never reuses an entry");
    assert_ne!(other.restore.cache_key.as_deref(), Some(key.as_str()));
    let pruned = sandbox.rehearse(&["cache", "prune", "--max-size", "0"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains("2 entries removed"), "{}", pruned.stdout);
    assert!(Command::new("docker").args(["image", "rm", &variant]).output().unwrap().status.success());
    assert_eq!(inspect(&image, "{{.Id}}"), None, "prune removed the snapshot image");
    let warm = run();
    warm.assert_code(0);
    assert_eq!(warm.report().restore.cache.map(|c| c.as_str()), Some("saved"));
    let image = image_of(&key);

    // An entry lost after its image was committed (a run killed before the
    // entry was sealed): the next save replaces the orphaned image, never leaks it.
    std::fs::remove_dir_all(sandbox.path().join("cache").join(&key)).unwrap();
    let resaved = run();
    resaved.assert_code(0);
    assert_eq!(resaved.report().restore.cache.map(|c| c.as_str()), Some("saved"));
    assert_eq!(inspect(&image, "{{.Id}}"), None, "the orphaned image was removed");
    let image = image_of(&key);

    // An image removed behind the cache's back: restored again, never a failed start.
    assert!(Command::new("docker").args(["image", "rm", "--force", &image]).status().unwrap().success());
    let rebuilt = run();
    rebuilt.assert_code(0);
    assert_eq!(rebuilt.report().restore.cache.map(|c| c.as_str()), Some("saved"), "the entry was rebuilt");
    let image = image_of(&key);
    assert!(inspect(&image, "{{.Id}}").is_some());

    let pruned = sandbox.rehearse(&["cache", "prune", "--max-size", "0"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains("1 entries removed") && pruned.stdout.contains("docker image"), "{}", pruned.stdout);
    assert_eq!(inspect(&image, "{{.Id}}"), None, "prune removed the snapshot image");
    assert_no_containers();
    sandbox.assert_no_leaks();
}
