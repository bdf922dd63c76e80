//! Listing a migrations folder, subfolders included (Flyway keeps callbacks
//! and repeatables in subfolders of a location): what each file is, the
//! files not applied with the reason, and the mistakes that are bad input
//! found before anything starts: a `.sql` file that is no migration, two
//! files with one version, two repeatables with one description, two
//! callbacks with one name, an unknown placeholder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::files::{classify, invalid_name, FileName, Role, SqlFile};
use super::placeholders;
use crate::error::{ErrorKind, Result};
use crate::migrations::SkippedFile;

/// What a folder holds, each list in the order it runs.
#[derive(Debug, Clone, Default)]
pub struct Folder {
    /// In version order.
    pub versioned: Vec<SqlFile>,
    /// In description order, as Flyway orders them.
    pub repeatables: Vec<SqlFile>,
    /// By event, then by description (the one without first), as Flyway orders them.
    pub callbacks: Vec<SqlFile>,
    pub skipped: Vec<SkippedFile>,
}

/// Reads `dir` and every folder under it; `placeholders`: the scenario's values.
pub fn scan(dir: &Path, placeholders: &BTreeMap<String, String>) -> Result<Folder> {
    let invalid = ErrorKind::MigrationsInvalid;
    let mut found = Vec::new();
    let mut folder = Folder::default();
    let mut seen = BTreeSet::new();
    walk(dir, "", &mut found, &mut folder.skipped, &mut seen)?;
    let mut versioned: BTreeMap<Vec<u128>, SqlFile> = BTreeMap::new();
    let mut repeatables: BTreeMap<String, SqlFile> = BTreeMap::new();
    let mut callbacks: BTreeMap<String, SqlFile> = BTreeMap::new();
    for (path, script) in found {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let file = |version, description, role| SqlFile {
            path: path.clone(),
            script: script.clone(),
            version,
            description,
            role,
        };
        let (file, clash) = match classify(&name) {
            FileName::NotApplied(reason) => {
                folder.skipped.push(SkippedFile { file: script.clone(), reason });
                continue;
            }
            FileName::Invalid => return Err(invalid.error(format!("{}: {}", dir.display(), invalid_name(&script)))),
            FileName::Versioned { version, description } => {
                let f = file(version.clone(), description, Role::Versioned);
                (f.clone(), versioned.insert(version, f))
            }
            FileName::Repeatable { description } => {
                let f = file(Vec::new(), description.clone(), Role::Repeatable);
                (f.clone(), repeatables.insert(description, f))
            }
            FileName::Callback { event, description } => {
                let key = name.trim_end_matches(".sql").to_string();
                let f = file(Vec::new(), description.unwrap_or_default(), Role::Callback(event));
                (f.clone(), callbacks.insert(key, f))
            }
        };
        if let Some(other) = clash {
            return Err(invalid.error(format!("{}: {}", dir.display(), clash_message(&other, &file))));
        }
        check_placeholders(dir, &file, placeholders)?;
    }
    folder.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    folder.versioned = versioned.into_values().collect();
    folder.repeatables = repeatables.into_values().collect();
    folder.callbacks = callbacks.into_values().collect();
    folder.callbacks.sort_by(|a, b| {
        let event = |f: &SqlFile| match f.role {
            Role::Callback(e) => Some(e),
            _ => None,
        };
        (event(a), !a.description.is_empty(), &a.description).cmp(&(
            event(b),
            !b.description.is_empty(),
            &b.description,
        ))
    });
    if folder.versioned.is_empty() && folder.repeatables.is_empty() && folder.callbacks.is_empty() {
        return Err(invalid.error(format!(
            "migrations folder {} holds no *.sql migration files (subfolders included): add files such as \
             0001_add_users.sql",
            dir.display()
        )));
    }
    Ok(folder)
}

/// Collects the files under `root.join(rel)`, in name order, as (path,
/// script); hidden folders are listed as skipped, not read.
fn walk(
    root: &Path,
    rel: &str,
    found: &mut Vec<(PathBuf, String)>,
    skipped: &mut Vec<SkippedFile>,
    seen: &mut BTreeSet<PathBuf>,
) -> Result<()> {
    let here = root.join(rel);
    // A symbolic link back up the tree would loop for ever.
    if !seen.insert(here.canonicalize().unwrap_or_else(|_| here.clone())) {
        skipped.push(SkippedFile {
            file: format!("{rel}/"),
            reason: "folder already scanned (a link leads back to it)".into(),
        });
        return Ok(());
    }
    let entries = std::fs::read_dir(&here).map_err(|e| {
        ErrorKind::MigrationsInvalid.because(format!("cannot list migrations folder {}", here.display()), e)
    })?;
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let script = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let path = here.join(&name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() && name.starts_with('.') => {
                skipped.push(SkippedFile { file: format!("{script}/"), reason: "hidden folder: not scanned".into() })
            }
            Ok(m) if m.is_dir() => walk(root, &script, found, skipped, seen)?,
            Ok(_) => found.push((path, script)),
            Err(e) => skipped.push(SkippedFile { file: script, reason: format!("cannot be read: {e}") }),
        }
    }
    Ok(())
}

fn clash_message(first: &SqlFile, second: &SqlFile) -> String {
    let (a, b) = (&first.script, &second.script);
    match second.role {
        Role::Versioned => {
            format!("{a} and {b} have the same version {}: give one of them a new number", first.normalized_version())
        }
        Role::Repeatable => format!(
            "{a} and {b} are repeatable migrations with the same description `{}`: Flyway refuses that too; \
             rename one of them",
            first.description
        ),
        Role::Callback(_) => format!(
            "{a} and {b} are two callback scripts with the same name: Flyway refuses that too; rename one of them \
             (afterMigrate__refresh.sql: a description after `__`) or remove it"
        ),
    }
}

/// Refuses a `${name}` with no value, naming the file and line.
fn check_placeholders(dir: &Path, file: &SqlFile, values: &BTreeMap<String, String>) -> Result<()> {
    let text = std::fs::read_to_string(&file.path).map_err(|e| {
        ErrorKind::MigrationsInvalid.because(
            format!("cannot read migration file {}: check that it is readable and saved as UTF-8", file.path.display()),
            e,
        )
    })?;
    if let Some((line, name)) = placeholders::first_unknown(&text, values) {
        return Err(ErrorKind::MigrationsInvalid.error(format!(
            "{}/{} line {line}: unknown placeholder ${{{name}}}: known ones are {}; give it a value under \
             migrations.placeholders in the scenario (Flyway replaces placeholders in comments too)",
            dir.display(),
            file.script,
            placeholders::known_list(values)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn scripts(files: &[SqlFile]) -> Vec<&str> {
        files.iter().map(|f| f.script.as_str()).collect()
    }

    #[test]
    fn a_flyway_tree_is_read_recursively_and_nothing_is_dropped_in_silence() {
        let dir = folder(&[
            ("afterMigrate.sql", "SELECT 1;"),
            ("V1__a.sql", "SELECT 1;"),
            ("V2__b.sql", "SELECT '${owner}';"),
            ("U2__b.sql", "SELECT 1;"),
            ("2_b.down.sql", "SELECT 1;"),
            ("README.md", "docs"),
            ("views/R__b_view.sql", "SELECT 1;"),
            ("views/R__a_view.sql", "SELECT 1;"),
            ("callbacks/afterMigrate__z.sql", "SELECT 1;"),
            ("callbacks/beforeMigrate.sql", "SELECT 1;"),
            ("callbacks/afterMigrateError.sql", "SELECT 1;"),
            ("deep/er/V10__c.sql", "SELECT 1;"),
            (".git/config", ""),
        ]);
        let values = BTreeMap::from([("owner".to_string(), "app".to_string())]);
        let f = scan(dir.path(), &values).unwrap();
        assert_eq!(scripts(&f.versioned), ["V1__a.sql", "V2__b.sql", "deep/er/V10__c.sql"]);
        assert_eq!(scripts(&f.repeatables), ["views/R__a_view.sql", "views/R__b_view.sql"]);
        assert_eq!(
            scripts(&f.callbacks),
            ["callbacks/beforeMigrate.sql", "afterMigrate.sql", "callbacks/afterMigrate__z.sql"]
        );
        let skipped: Vec<&str> = f.skipped.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(skipped, [".git/", "2_b.down.sql", "README.md", "U2__b.sql", "callbacks/afterMigrateError.sql"]);
        let reason = |file: &str| f.skipped.iter().find(|s| s.file == file).unwrap().reason.clone();
        assert_eq!(
            reason("callbacks/afterMigrateError.sql"),
            "callback for Flyway's afterMigrateError event: not run by a rehearsal of migrate"
        );
        assert!(reason("U2__b.sql").contains("undo"));
    }

    #[test]
    fn clashes_misnamed_files_and_unknown_placeholders_are_bad_input() {
        let err = |files: &[(&str, &str)]| scan(folder(files).path(), &BTreeMap::new()).unwrap_err().to_string();
        let e = err(&[("V1__a.sql", ""), ("sub/1_b.sql", "")]);
        assert!(e.contains("V1__a.sql and sub/1_b.sql have the same version 1"), "{e}");
        let e = err(&[("R__views.sql", ""), ("sub/R__views.sql", "")]);
        assert!(e.contains("same description `views`"), "{e}");
        let e = err(&[("afterMigrate.sql", ""), ("sub/afterMigrate.sql", "")]);
        assert!(e.contains("two callback scripts with the same name"), "{e}");
        let e = err(&[("V1__a.sql", ""), ("sub/notes.sql", "")]);
        assert!(e.contains("sub/notes.sql has no version prefix"), "{e}");
        let e = err(&[("V1__a.sql", "SELECT 1;\n-- owner: ${owner}\n")]);
        assert!(e.contains("V1__a.sql line 2: unknown placeholder ${owner}"), "{e}");
        assert!(e.contains("${flyway:defaultSchema}"), "{e}");
        let e = err(&[("README.md", ""), ("2_b.down.sql", "")]);
        assert!(e.contains("holds no *.sql migration files"), "{e}");
    }
}
