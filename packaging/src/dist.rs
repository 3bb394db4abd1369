//! The release tarball: exactly the files `[dist].include` of packaging/package.toml names
//! (a tag's tree for a release, the work tree otherwise), with sorted entries, fixed mtimes,
//! owner 0:0 and fixed modes, so the same tree always gives the same bytes.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

use crate::manifest::{MANIFEST, Manifest};
use crate::tree::{Entry, Kind, Tree};

/// Whether `path` is one of `[dist].include` (a path ending in `/` includes what is under it).
pub fn is_included(m: &Manifest, path: &str) -> bool {
    m.dist_include.iter().any(|i| is_included_by(i, path))
}

/// The tracked files of `tree` the tarball holds, after checking that `[dist].include` names
/// only tracked paths, that everything the recipes install is among them, and that every
/// example script in the tree is packaged on purpose.
pub fn select(tree: &Tree, m: &Manifest) -> Result<Vec<Entry>, String> {
    let chosen: Vec<Entry> = tree
        .entries()?
        .into_iter()
        .filter(|e| is_included(m, &e.path))
        .collect();
    let unmatched: Vec<&str> = m
        .dist_include
        .iter()
        .filter(|i| !chosen.iter().any(|e| is_included_by(i, &e.path)))
        .map(String::as_str)
        .collect();
    if !unmatched.is_empty() {
        return Err(format!(
            "{MANIFEST} [dist].include names what git does not track in {}: {}",
            tree.describe(),
            unmatched.join(", ")
        ));
    }
    let has = |p: &str| chosen.iter().any(|e| e.path == p);
    let mut required: Vec<&str> = vec![m.dtrace_library.as_str(), m.license_file.as_str()];
    required.extend(m.examples.iter().map(String::as_str));
    let missing: Vec<&str> = required.iter().copied().filter(|r| !has(r)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{MANIFEST} names files the recipes install that are not in the tarball \
             ([dist].include) or not tracked by git: {}",
            missing.join(", ")
        ));
    }
    let unlisted: Vec<&str> = chosen
        .iter()
        .map(|e| e.path.as_str())
        .filter(|p| {
            p.starts_with("examples/")
                && !p["examples/".len()..].contains('/')
                && (p.ends_with(".d") || p.ends_with(".bt"))
                && !m.examples.iter().any(|e| e == p)
        })
        .collect();
    if !unlisted.is_empty() {
        return Err(format!(
            "example scripts not listed in {MANIFEST} [files].examples (add them, so every \
             recipe installs them): {}",
            unlisted.join(", ")
        ));
    }
    Ok(chosen)
}

/// The files the tarball holds, with their content.
pub fn tarball_contents(
    tree: &Tree,
    m: &Manifest,
) -> Result<BTreeMap<String, (Kind, Vec<u8>)>, String> {
    let chosen = select(tree, m)?;
    let refs: Vec<&Entry> = chosen.iter().collect();
    let data = tree.read_all(&refs)?;
    Ok(chosen
        .into_iter()
        .zip(data)
        .map(|(e, d)| (e.path, (e.kind, d)))
        .collect())
}

fn is_included_by(include: &str, path: &str) -> bool {
    match include.strip_suffix('/') {
        Some(dir) => path.starts_with(dir) && path[dir.len()..].starts_with('/'),
        None => path == include,
    }
}

/// The release tarball of `tree`, with the manifest `m` (read from that same tree).
pub fn tarball(tree: &Tree, m: &Manifest) -> Result<Vec<u8>, String> {
    build_tarball(m, &tarball_contents(tree, m)?)
}

/// Builds the gzip'd tar: `<distname>/` prefix, directories listed, entries sorted by path,
/// mtime `release_epoch`, uid/gid 0 without names, modes 0644/0755.
pub fn build_tarball(
    m: &Manifest,
    files: &BTreeMap<String, (Kind, Vec<u8>)>,
) -> Result<Vec<u8>, String> {
    let prefix = m.distname();
    let mut entries: BTreeMap<String, Option<&(Kind, Vec<u8>)>> = BTreeMap::new();
    entries.insert(format!("{prefix}/"), None);
    for (path, f) in files {
        let mut acc = prefix.clone();
        let parts: Vec<&str> = path.split('/').collect();
        for dir in &parts[..parts.len() - 1] {
            acc.push('/');
            acc.push_str(dir);
            entries.insert(format!("{acc}/"), None);
        }
        entries.insert(format!("{prefix}/{path}"), Some(f));
    }

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, f) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(m.release_epoch);
        let r = match f {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, path, std::io::empty())
            }
            Some((Kind::File { executable }, data)) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if *executable { 0o755 } else { 0o644 });
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, path, data.as_slice())
            }
            Some((Kind::Symlink, target)) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                let target = String::from_utf8_lossy(target).into_owned();
                tar.append_link(&mut h, path, target)
            }
        };
        r.map_err(|e| format!("tar: {path}: {e}"))?;
    }
    let tar_bytes = tar.into_inner().map_err(|e| format!("tar: {e}"))?;

    // No file name and mtime 0 in the gzip header: the bytes depend on the content only.
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    gz.write_all(&tar_bytes).map_err(|e| format!("gzip: {e}"))?;
    gz.finish().map_err(|e| format!("gzip: {e}"))
}
