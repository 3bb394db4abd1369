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

/// (file name in distinfo) -> bytes of the real file.
fn real_distfiles() -> BTreeMap<String, Vec<u8>> {
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
    m.insert(manifest().tarball_name(), g.tarball.clone());
    m
}

fn check_lines(what: &str, lines: &[(String, String, String)], files: &BTreeMap<String, Vec<u8>>) {
    // (algorithm, file, value)
    let mut seen = std::collections::BTreeSet::new();
    for (alg, file, value) in lines {
        let base = file.strip_prefix("rust/crates/").unwrap_or(file);
        let data = files
            .get(base)
            .unwrap_or_else(|| panic!("{what}: {file} is not a distfile of this release"));
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
    let all: std::collections::BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(
        seen, all,
        "{what} must list exactly the tarball and every crate"
    );
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

#[test]
fn pkgsrc_distinfo_verifies_against_the_real_files() {
    let files = real_distfiles();
    let di = read(&format!("{}/distinfo", render::pkgsrc_dir(&manifest())));
    let lines = parse_distinfo(&di);
    assert_eq!(lines.len(), files.len() * 3);
    check_lines("pkgsrc distinfo", &lines, &files);
}

#[test]
fn freebsd_distinfo_verifies_against_the_real_files() {
    let files = real_distfiles();
    let di = read(&format!("{}/distinfo", render::freebsd_dir(&manifest())));
    let lines = parse_distinfo(&di);
    assert_eq!(lines.len(), files.len() * 2);
    check_lines("FreeBSD distinfo", &lines, &files);
    assert_eq!(
        di.lines().next().unwrap(),
        format!("TIMESTAMP = {}", manifest().release_epoch)
    );
}

#[test]
fn homebrew_sha256_verifies_against_the_tarball() {
    let f = read(&render::formula_path(&manifest()));
    let line = f
        .lines()
        .find(|l| l.trim_start().starts_with("sha256 \""))
        .unwrap();
    let sha = line.split('"').nth(1).unwrap();
    assert_eq!(sha, crates::sha256_hex(&generated().tarball));
}

#[test]
fn dist_is_reproducible_and_matches_the_recipes() {
    let tmp = TempDir::new("dist");
    let (a, _) = dist_and_unpack(tmp.path());
    let first = std::fs::read(&a).unwrap();
    std::fs::remove_file(&a).unwrap();
    let (b, _) = dist_and_unpack(tmp.path());
    let second = std::fs::read(&b).unwrap();
    assert!(first == second, "two `dist` runs gave different bytes");
    assert_eq!(first, generated().tarball, "`dist` and `generate` disagree");
    // And the checksum the recipes carry is this tarball's.
    let di = read(&format!("{}/distinfo", render::freebsd_dir(&manifest())));
    assert!(di.contains(&crates::sha256_hex(&first)));
}

#[test]
fn dist_tarball_is_sorted_fixed_clean_and_complete() {
    let m = manifest();
    let gz = generated().tarball.clone();
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
            "pkgsrc/",
            "freebsd-port/",
            "packaging/homebrew/",
        ] {
            assert!(
                !rel.starts_with(bad),
                "{p}: build output, VCS data or a recipe in the tarball"
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

    // Exactly what git tracks, minus the recipe directories.
    let mut want: Vec<String> = dist::tracked_files(&root())
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .filter(|p| !dist::is_excluded(p))
        .collect();
    for p in generated().files.keys() {
        if !dist::is_excluded(p) && !want.contains(p) {
            want.push(p.clone());
        }
    }
    want.sort();
    files.sort();
    assert_eq!(
        files, want,
        "tarball files vs `git ls-files` minus the recipes"
    );
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "LICENSE", "httpd.d"] {
        assert!(files.iter().any(|f| f == needed), "tarball lacks {needed}");
    }
}
