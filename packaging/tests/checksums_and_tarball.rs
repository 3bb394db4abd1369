//! Crate lists against Cargo.lock, every distinfo checksum against the real file, and the
//! release tarball (reproducible, clean, complete).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Command;

use common::*;
use packaging::crates::{self, digests};
use packaging::{dist, render};

fn lock_ids() -> Vec<String> {
    crates::parse_lock(&read("Cargo.lock"))
        .unwrap()
        .iter()
        .map(|c| c.id())
        .collect()
}

fn pkgsrc_crates() -> Vec<String> {
    read(&format!(
        "{}/cargo-depends.mk",
        render::pkgsrc_dir(&manifest())
    ))
    .lines()
    .filter_map(|l| {
        l.strip_prefix("CARGO_CRATE_DEPENDS+=\t")
            .map(str::to_string)
    })
    .collect()
}

fn freebsd_crates() -> Vec<String> {
    let v = make_vars(&read(&format!(
        "{}/Makefile.crates",
        render::freebsd_dir(&manifest())
    )));
    v["CARGO_CRATES"].split(' ').map(str::to_string).collect()
}

#[test]
fn every_registry_crate_of_cargo_lock_is_listed_and_nothing_else() {
    let mut lock = lock_ids();
    lock.sort();
    assert!(!lock.is_empty());
    for (what, mut list) in [
        ("CARGO_CRATE_DEPENDS", pkgsrc_crates()),
        ("CARGO_CRATES", freebsd_crates()),
    ] {
        let n = list.len();
        list.sort();
        list.dedup();
        assert_eq!(n, list.len(), "{what} lists a crate twice");
        let missing: Vec<_> = lock.iter().filter(|c| !list.contains(c)).collect();
        let extra: Vec<_> = list.iter().filter(|c| !lock.contains(c)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what}: missing {missing:?}, not in Cargo.lock {extra:?}"
        );
    }
    // Workspace members have no source and are never fetched.
    assert!(
        !lock
            .iter()
            .any(|c| c.starts_with("mod_dtprovider-") || c.starts_with("packaging-"))
    );
}

/// `name-version` of every registry crate `cargo build --release` of the module compiles, on
/// any target: `cargo tree -e normal,build -p mod_dtprovider --target all`.
fn module_build_crates() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(
        Command::new(cargo)
            .args([
                "tree",
                "--locked",
                "-e",
                "normal,build",
                "-p",
                "mod_dtprovider",
            ])
            .args(["--target", "all", "--prefix", "none", "--manifest-path"])
            .arg(root().join("Cargo.toml")),
        "cargo tree",
    );
    stdout(&out)
        .lines()
        .filter(|l| !l.contains(" (/")) // path packages: the module itself
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, v) = (w.next()?, w.next()?.strip_prefix('v')?);
            Some(format!("{name}-{v}"))
        })
        .collect()
}

/// The `[dependencies]` of a crate's own Cargo.toml (read from its `.crate`) that are optional.
fn optional_deps_of(c: &crates::LockedCrate) -> BTreeSet<String> {
    let file = crates::find_cached(c)
        .unwrap()
        .expect("the .crate is in cargo's cache");
    let gz = std::fs::read(file).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    let want = format!("{}/Cargo.toml", c.id());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == want {
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            let t: toml::Table = text.parse().unwrap();
            let Some(deps) = t.get("dependencies").and_then(|d| d.as_table()) else {
                return BTreeSet::new();
            };
            return deps
                .iter()
                .filter(|(_, v)| v.get("optional").and_then(|o| o.as_bool()) == Some(true))
                .map(|(k, v)| {
                    v.get("package")
                        .and_then(|p| p.as_str())
                        .unwrap_or(k)
                        .to_string()
                })
                .collect();
        }
    }
    panic!("{} has no Cargo.toml", c.file_name());
}

/// The module's Cargo.lock, which the tarball ships and the recipes vendor, holds the crates
/// the module's build compiles, and otherwise only optional dependencies of those crates that
/// cargo's resolver keeps in the lockfile (a weak `dep?/feature` reference) and needs to read
/// to load it, but never compiles. No crate of the packaging or benchmark tools, and no
/// dev-dependency of the module that its build does not need.
#[test]
fn module_lockfile_holds_only_what_the_module_build_needs() {
    let built = module_build_crates();
    assert!(built.len() > 10, "cargo tree found {built:?}");
    let locked = crates::parse_lock(&read("Cargo.lock")).unwrap();
    let ids: BTreeSet<String> = locked.iter().map(|c| c.id()).collect();
    let not_locked: Vec<&String> = built.difference(&ids).collect();
    assert!(
        not_locked.is_empty(),
        "built but not in Cargo.lock: {not_locked:?}"
    );
    for extra in ids.difference(&built) {
        let name = extra.rsplit_once('-').unwrap().0;
        let users: Vec<&crates::LockedCrate> = locked
            .iter()
            .filter(|c| built.contains(&c.id()) && optional_deps_of(c).contains(name))
            .collect();
        assert!(
            !users.is_empty(),
            "Cargo.lock holds {extra}, which the module's build never compiles and no crate it \
             compiles names as an optional dependency: a dev-dependency, or a tool crate in the \
             module's workspace? (the tools have workspaces of their own)"
        );
    }
    // The packaging and benchmark tools are not in the module's lockfile at all.
    let lock = read("Cargo.lock");
    for tool in ["packaging", "bench"] {
        assert!(
            !lock.contains(&format!("name = \"{tool}\"\n")),
            "Cargo.lock lists the {tool} crate: it belongs to its own workspace"
        );
    }
    for ws in ["packaging/Cargo.toml", "bench/Cargo.toml"] {
        let t: toml::Table = read(ws).parse().unwrap();
        assert!(
            t.contains_key("workspace"),
            "{ws} is not a workspace of its own"
        );
    }
}

/// (file name in distinfo) -> bytes of the real file: every crate, and the tarball if given.
fn real_distfiles(tarball: Option<&[u8]>) -> BTreeMap<String, Vec<u8>> {
    let g = generated();
    let mut m = BTreeMap::new();
    for (c, path, _) in &g.crates {
        let data = std::fs::read(path).unwrap();
        assert_eq!(
            crates::sha256_hex(&data),
            c.checksum,
            "{}: the .crate cargo downloaded vs Cargo.lock",
            c.id()
        );
        m.insert(c.file_name(), data);
    }
    if let Some(t) = tarball {
        m.insert(manifest().tarball_name(), t.to_vec());
    }
    m
}

fn check_lines(what: &str, lines: &[(String, String, String)], files: &BTreeMap<String, Vec<u8>>) {
    // (algorithm, file, value)
    let mut seen = BTreeSet::new();
    for (alg, file, value) in lines {
        let base = file.strip_prefix("rust/crates/").unwrap_or(file);
        let data = files
            .get(base)
            .unwrap_or_else(|| panic!("{what}: {file} is not a distfile of this version"));
        let d = digests(data);
        let want = match alg.as_str() {
            "BLAKE2s" => d.blake2s,
            "SHA512" => d.sha512,
            "SHA256" => d.sha256,
            "Size" => format!("{} bytes", d.size),
            "SIZE" => d.size.to_string(),
            a => panic!("{what}: unknown algorithm {a}"),
        };
        assert_eq!(
            value, &want,
            "{what}: {alg} ({file}) does not verify against the real file"
        );
        seen.insert(base.to_string());
    }
    let all: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(seen, all, "{what} must list exactly these distfiles");
}

fn parse_distinfo(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let (alg, rest) = l.split_once(" (")?;
            let (file, value) = rest.split_once(") = ")?;
            Some((alg.to_string(), file.to_string(), value.to_string()))
        })
        .collect()
}

/// The tarball each state's distinfo must list: none while unreleased (the committed recipes
/// of an unreleased version), the recorded release's (committed, released), or the work
/// tree's tarball (the "as released" rendering).
fn tarball_of_state(state: &str) -> Option<Vec<u8>> {
    match (state, &generated().release) {
        ("committed", None) => None,
        ("committed", Some(r)) => {
            let t = packaging::tree::Tree::Commit {
                root: root(),
                rev: r.commit.clone(),
            };
            let m = packaging::manifest::Manifest::load_tree(&t).unwrap();
            Some(dist::tarball(&t, &m).unwrap())
        }
        _ => Some(released().1.clone()),
    }
}

#[test]
fn pkgsrc_distinfo_verifies_against_the_real_files() {
    let rel = format!("{}/distinfo", render::pkgsrc_dir(&manifest()));
    for (state, di) in both_states(&rel) {
        let files = real_distfiles(tarball_of_state(state).as_deref());
        let lines = parse_distinfo(&di);
        assert_eq!(lines.len(), files.len() * 3, "{state}");
        check_lines(&format!("pkgsrc distinfo ({state})"), &lines, &files);
    }
}

#[test]
fn freebsd_distinfo_verifies_against_the_real_files() {
    let rel = format!("{}/distinfo", render::freebsd_dir(&manifest()));
    for (state, di) in both_states(&rel) {
        let files = real_distfiles(tarball_of_state(state).as_deref());
        let lines = parse_distinfo(&di);
        assert_eq!(lines.len(), files.len() * 2, "{state}");
        check_lines(&format!("FreeBSD distinfo ({state})"), &lines, &files);
        assert_eq!(
            di.lines().next().unwrap(),
            format!("TIMESTAMP = {}", manifest().release_epoch)
        );
    }
}

#[test]
fn homebrew_sha256_verifies_against_the_tarball() {
    for (state, f) in both_states(&render::formula_path(&manifest())) {
        let sha = f
            .lines()
            .find(|l| l.trim_start().starts_with("sha256 \""))
            .map(|l| l.split('"').nth(1).unwrap().to_string());
        match tarball_of_state(state) {
            Some(t) => assert_eq!(sha, Some(crates::sha256_hex(&t)), "{state}"),
            None => {
                assert_eq!(sha, None, "an unreleased formula has no sha256");
                assert!(
                    f.contains(&format!("\n  {}\n", render::UNRELEASED_SHA256)),
                    "the unreleased formula says why it has no sha256:\n{f}"
                );
            }
        }
    }
}

#[test]
fn dist_is_reproducible() {
    let tmp = TempDir::new("dist");
    let (a, _) = dist_and_unpack(tmp.path());
    let first = std::fs::read(&a).unwrap();
    std::fs::remove_file(&a).unwrap();
    let (b, _) = dist_and_unpack(tmp.path());
    let second = std::fs::read(&b).unwrap();
    assert!(first == second, "two `dist` runs gave different bytes");
    assert!(first == released().1, "`dist` and the library disagree");
}

#[test]
fn dist_tarball_is_sorted_fixed_clean_and_exactly_the_include_list() {
    let m = manifest();
    let gz = released().1.clone();
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    // gzip header: no mtime, no file name
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is 0");
    assert_eq!(gz[3] & 0x08, 0, "gzip header carries no file name");

    let mut ar = tar::Archive::new(tar_bytes.as_slice());
    let prefix = format!("{}/", m.distname());
    let mut paths = Vec::new();
    let mut files = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        assert!(p.starts_with(&prefix), "{p} outside {prefix}");
        assert_eq!(h.mtime().unwrap(), m.release_epoch, "{p}: mtime");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{p}: owner");
        let mode = h.mode().unwrap();
        assert!([0o644, 0o755, 0o777].contains(&mode), "{p}: mode {mode:o}");
        let rel = p[prefix.len()..].to_string();
        for bad in [
            "target/",
            ".git/",
            ".ci/",
            "pkgsrc/",
            "freebsd-port/",
            "packaging/",
            "bench/",
            "docs/packaging.md",
        ] {
            assert!(
                !rel.starts_with(bad),
                "{p}: build output, VCS data, a recipe or a tool in the tarball"
            );
        }
        if h.entry_type().is_file() {
            files.push(rel.clone());
        }
        paths.push(p);
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "tarball entries are sorted");

    // Exactly the tracked files that [dist].include names.
    let mut want: Vec<String> = git_ls_files()
        .into_iter()
        .filter(|p| dist::is_included(&m, p))
        .collect();
    want.sort();
    files.sort();
    assert_eq!(files, want, "tarball files vs [dist].include");
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "LICENSE", "httpd.d"] {
        assert!(files.iter().any(|f| f == needed), "tarball lacks {needed}");
    }
    assert!(
        !files
            .iter()
            .any(|f| f == "BENCHMARKS.md" || f == ".gitignore"),
        "only what building, installing and testing the module needs"
    );
}

fn git_ls_files() -> Vec<String> {
    stdout(&run(
        Command::new("git").arg("-C").arg(root()).arg("ls-files"),
        "git ls-files",
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

/// The tarball is complete for the module's build and tests: no file they name (a tracked
/// path written in build.rs, src/, tests/ or demo/) is left out of it.
#[test]
fn files_the_build_and_tests_name_are_in_the_tarball() {
    let m = manifest();
    let tracked = git_ls_files();
    let (inside, outside): (Vec<&String>, Vec<&String>) =
        tracked.iter().partition(|p| dist::is_included(&m, p));
    let code: Vec<&&String> = inside
        .iter()
        .filter(|p| {
            p.as_str() == "build.rs" || ["src/", "tests/", "demo/"].iter().any(|d| p.starts_with(d))
        })
        .collect();
    assert!(code.len() > 5, "{code:?}");
    let mut missing = Vec::new();
    for f in &code {
        let Ok(text) = std::fs::read_to_string(root().join(f)) else {
            continue;
        };
        for o in &outside {
            if text.contains(o.as_str()) {
                missing.push(format!("{f} names {o}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the module's build or tests name files that the tarball ([dist].include of \
         packaging/package.toml) leaves out: {missing:?}"
    );
}
