//! The packaging generator of mod_dtprovider: one manifest (`packaging/package.toml`) plus
//! the module's `Cargo.lock` in, four recipes out (pkgsrc, FreeBSD port, Homebrew formula,
//! cargo-deb metadata); the reproducible release tarball; and the release record
//! (`packaging/release.toml`) whose digests the recipes carry once a version is released.
//!
//! This crate never depends on the module crate (nor on bindgen).

pub mod crates;
pub mod dist;
pub mod manifest;
pub mod release;
pub mod render;
pub mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crates::{Digests, LockedCrate};
use manifest::Manifest;
use release::Release;

/// Everything `generate` produces.
pub struct Generated {
    pub manifest: Manifest,
    /// Repository-relative path -> content, for every generated file.
    pub files: BTreeMap<String, String>,
    /// The directories the generator owns entirely (stale files there are drift too).
    pub owned_dirs: Vec<String>,
    pub crates: Vec<(LockedCrate, PathBuf, Digests)>,
    /// The release of the manifest's version, if it is released.
    pub release: Option<Release>,
}

/// The repository this tool was built from: the parent of this crate's directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("packaging/ has a parent")
        .to_path_buf()
}

/// The generated files that go into the tarball (they depend on the manifest only): the
/// cargo-deb block of `cargo_toml`, debian/README.Debian and debian/changelog.
pub fn in_tarball_files(
    cargo_toml: &str,
    m: &Manifest,
) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    files.insert(
        render::CARGO_TOML.to_string(),
        render::splice_deb_block(cargo_toml, m)?,
    );
    files.insert(render::README_DEBIAN.to_string(), render::readme_debian(m));
    files.insert(
        render::CHANGELOG_DEBIAN.to_string(),
        render::changelog_debian(m),
    );
    Ok(files)
}

/// Computes every generated file for the work tree at `root`, with the release recorded in
/// `packaging/release.toml` if it is the manifest's version.
pub fn generate(root: &Path) -> Result<Generated, String> {
    let version = Manifest::load(root)?.version;
    let release = release::load(root)?.filter(|r| r.version == version);
    generate_with(root, release)
}

/// Computes every generated file for the work tree at `root`, as if `release` (if any) were
/// the release of the manifest's version.
pub fn generate_with(root: &Path, release: Option<Release>) -> Result<Generated, String> {
    let m = Manifest::load(root)?;
    if let Some(r) = &release {
        if r.version != m.version {
            return Err(format!(
                "the release of {} cannot be rendered for version {}",
                r.version, m.version
            ));
        }
    }
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let locked = crates::parse_lock(&lock)?;
    let mut crate_info = Vec::new();
    for (c, path) in crates::crate_files(root, &locked)? {
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let d = crates::digests(&data);
        crate_info.push((c, path, d));
    }

    // The tarball must be buildable from this tree (the recipes install from it).
    dist::select(&tree::Tree::WorkTree(root.to_path_buf()), &m)?;

    let cargo_toml =
        std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    let mut files = in_tarball_files(&cargo_toml, &m)?;
    let pairs: Vec<(LockedCrate, Digests)> = crate_info
        .iter()
        .map(|(c, _, d)| (c.clone(), d.clone()))
        .collect();
    let inputs = render::Inputs {
        m: &m,
        crates: &pairs,
        tarball: release.as_ref().map(|r| &r.digests),
    };
    for (p, c) in render::pkgsrc(&inputs)
        .into_iter()
        .chain(render::freebsd(&inputs))
        .chain(render::homebrew(&inputs))
    {
        files.insert(p, c);
    }
    let owned_dirs = vec![
        render::pkgsrc_dir(&m),
        render::freebsd_dir(&m),
        render::HOMEBREW_DIR.to_string(),
    ];
    Ok(Generated {
        manifest: m,
        files,
        owned_dirs,
        crates: crate_info,
        release,
    })
}

/// Everything `generate --check` finds wrong: drifted files, and for a released version a
/// record that its tag's tarball does not confirm.
pub fn check(root: &Path, g: &Generated) -> Vec<String> {
    let mut problems = drift(root, g);
    if let Some(r) = &g.release {
        problems.extend(release::verify(root, r));
    }
    problems
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let r = format!("{rel}/{name}");
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&e.path(), &r, out);
        } else {
            out.push(r);
        }
    }
}

/// Differences between `g` and the files under `root`: one message per file, naming it.
pub fn drift(root: &Path, g: &Generated) -> Vec<String> {
    let mut problems = Vec::new();
    for (p, want) in &g.files {
        match std::fs::read_to_string(root.join(p)) {
            Ok(have) if have == *want => {}
            Ok(have) => {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .map(|n| n + 1)
                    .unwrap_or_else(|| have.lines().count().min(want.lines().count()) + 1);
                problems.push(format!(
                    "{p}: differs from what would be generated (first at line {line})"
                ));
            }
            Err(_) => problems.push(format!("{p}: missing (it would be generated)")),
        }
    }
    for d in &g.owned_dirs {
        let mut found = Vec::new();
        walk(&root.join(d), d, &mut found);
        for f in found {
            if !g.files.contains_key(&f) {
                problems.push(format!(
                    "{f}: not generated any more (stale file in a generated directory)"
                ));
            }
        }
    }
    problems
}

/// Writes `g` under `root`, removing stale files from the generated directories. Returns the
/// paths that changed.
pub fn write(root: &Path, g: &Generated) -> Result<Vec<String>, String> {
    let mut changed = Vec::new();
    for d in &g.owned_dirs {
        let mut found = Vec::new();
        walk(&root.join(d), d, &mut found);
        for f in found {
            if !g.files.contains_key(&f) {
                std::fs::remove_file(root.join(&f)).map_err(|e| format!("{f}: {e}"))?;
                changed.push(format!("{f} (removed)"));
            }
        }
    }
    for (p, c) in &g.files {
        let path = root.join(p);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(c.as_str()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, c).map_err(|e| format!("{p}: {e}"))?;
        changed.push(p.clone());
    }
    Ok(changed)
}
