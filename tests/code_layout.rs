//! The code layout table matches the tree (for the project's maintainers; rootless, no Apache
//! needed).
//!
//! The table under the "Code layout" heading of docs/development.md lists the module's source files by
//! layer. This test fails when a file it names (in backticks, in its file column) does not
//! exist, or when a source file of the module (`.rs`, `.h` or `.d` under `src/` or
//! `dtprovider-sys/`) is missing from it, so that the table cannot drift from the code.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The document that holds the table, and its heading (at any level).
const DOCUMENT: &str = "docs/development.md";
const HEADING: &str = "Code layout";

/// The directories whose source files the table must list.
const SOURCE_DIRS: &[&str] = &["src", "dtprovider-sys"];
const SOURCE_EXTENSIONS: &[&str] = &["rs", "h", "d"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The backticked names in the file column (the second) of the first table after the
/// heading, or an error saying what is missing.
fn table_files(doc: &str) -> Result<Vec<String>, String> {
    let mut lines = doc.lines().skip_while(|l| {
        let t = l.trim_start();
        !(t.starts_with('#') && t.trim_start_matches('#').trim() == HEADING)
    });
    lines
        .next()
        .ok_or_else(|| format!("no heading {HEADING:?}"))?;
    let rows: Vec<&str> = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header row and its separator
        .collect();
    if rows.is_empty() {
        return Err(format!("no table under the heading {HEADING:?}"));
    }
    let mut files = Vec::new();
    for row in rows {
        let column = row.split('|').nth(2).unwrap_or("");
        files.extend(column.split('`').skip(1).step_by(2).map(str::to_string));
    }
    Ok(files)
}

/// Every source file under `dir` (relative to `root`), skipping build output.
fn source_files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(rd) = fs::read_dir(root.join(dir)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let path = dir.join(&name);
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if name != "target" {
                source_files(root, &path, out);
            }
        } else if path
            .extension()
            .is_some_and(|x| SOURCE_EXTENSIONS.iter().any(|s| x == *s))
        {
            out.insert(path.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// What is wrong with `listed` against the tree at `root`: named files that do not exist,
/// and source files under `dirs` that are not named.
fn problems(root: &Path, dirs: &[&str], listed: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in listed {
        if !root.join(f).exists() {
            out.push(format!("the table names `{f}`, which does not exist"));
        }
    }
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let mut sources = BTreeSet::new();
    for d in dirs {
        source_files(root, Path::new(d), &mut sources);
    }
    for s in &sources {
        if !listed.contains(s.as_str()) {
            out.push(format!("`{s}` is not in the table"));
        }
    }
    out
}

#[test]
fn the_code_layout_table_lists_exactly_the_source_files() {
    let doc = fs::read_to_string(root().join(DOCUMENT)).expect(DOCUMENT);
    let listed = table_files(&doc).unwrap_or_else(|e| panic!("{DOCUMENT}: {e}"));
    assert!(
        listed.iter().any(|f| f == "src/hooks.rs"),
        "{DOCUMENT}'s table was not read: {listed:?}"
    );
    let wrong = problems(&root(), SOURCE_DIRS, &listed);
    assert!(
        wrong.is_empty(),
        "{DOCUMENT} (\"{HEADING}\") does not match the tree:\n{}",
        wrong.join("\n")
    );
}

/// The check itself can fail: a scratch tree (its sources under `code/`) with a file the
/// table misses and a table entry the tree misses.
#[test]
fn the_check_catches_a_missing_and_an_unlisted_file() {
    let dir = std::env::temp_dir().join(format!("dtprovider-layout-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("code/probes")).unwrap();
    fs::create_dir_all(dir.join("code/target")).unwrap();
    for f in [
        "code/lib.rs",
        "code/probes/mod.rs",
        "code/target/ignored.rs",
    ] {
        fs::write(dir.join(f), "").unwrap();
    }
    let doc = format!(
        "# x\n\n## {HEADING}\n\ntext\n\n| layer | file | what |\n| --- | --- | --- |\n\
         | 1 | `code/lib.rs`, `code/gone.rs` | `not/a/file` in another column |\n\nafter\n"
    );
    let listed = table_files(&doc).unwrap();
    assert_eq!(listed, ["code/lib.rs", "code/gone.rs"]);
    assert_eq!(
        problems(&dir, &["code"], &listed),
        [
            "the table names `code/gone.rs`, which does not exist",
            "`code/probes/mod.rs` is not in the table",
        ]
    );
    assert!(table_files("## Other\n\n| a | b |\n").is_err());
    let _ = fs::remove_dir_all(&dir);
}
