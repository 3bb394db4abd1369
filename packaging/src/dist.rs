//! The release tarball: what `git ls-files` lists (so a clean checkout gives the same bytes),
//! minus the recipes whose content depends on the tarball's own checksum, with sorted entries,
//! fixed mtimes, owner 0:0 and fixed modes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::{Compression, GzBuilder};

use crate::manifest::Manifest;

/// Paths (prefixes) that never go into the tarball: the recipes carry the tarball's checksum,
/// so shipping them inside it would be circular.
pub const EXCLUDED: &[&str] = &["pkgsrc/", "freebsd-port/", "packaging/homebrew/"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { executable: bool },
    Symlink,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub kind: Kind,
}

/// Tracked files according to `git ls-files -s` (index modes, so the result doesn't depend on
/// the umask of the checkout).
pub fn tracked_files(root: &Path) -> Result<Vec<SourceFile>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-s", "-z"])
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut files = Vec::new();
    for rec in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rec = String::from_utf8(rec.to_vec()).map_err(|_| "git ls-files: non-UTF-8 path")?;
        // "<mode> <object> <stage>\t<path>"
        let (meta, path) = rec
            .split_once('\t')
            .ok_or("git ls-files: unexpected output")?;
        let mode = meta.split(' ').next().unwrap_or("");
        let kind = match mode {
            "100644" => Kind::File { executable: false },
            "100755" => Kind::File { executable: true },
            "120000" => Kind::Symlink,
            _ => {
                return Err(format!(
                    "{path}: git mode {mode} (submodule?) cannot go into the tarball"
                ));
            }
        };
        if files.last().is_some_and(|f: &SourceFile| f.path == path) {
            continue; // unmerged entries are listed once per stage
        }
        files.push(SourceFile {
            path: path.to_string(),
            kind,
        });
    }
    Ok(files)
}

pub fn is_excluded(path: &str) -> bool {
    EXCLUDED.iter().any(|e| path.starts_with(e)) || path == "target" || path.starts_with("target/")
}

/// The files the tarball holds, with their content: tracked files minus [`EXCLUDED`], with
/// `overlay` (generated files that don't depend on the tarball) taking precedence over, or
/// adding to, what is on disk.
pub fn tarball_contents(
    root: &Path,
    m: &Manifest,
    overlay: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, (Kind, Vec<u8>)>, String> {
    let tracked = tracked_files(root)?;
    let mut out = BTreeMap::new();
    for f in &tracked {
        if is_excluded(&f.path) {
            continue;
        }
        let data = if let Some(o) = overlay.get(&f.path) {
            o.clone().into_bytes()
        } else {
            let p = root.join(&f.path);
            match f.kind {
                Kind::Symlink => std::fs::read_link(&p)
                    .map_err(|e| format!("{}: {e}", f.path))?
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes(),
                Kind::File { .. } => match std::fs::read(&p) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(format!(
                            "{} is tracked by git but missing from the work tree; commit its removal or restore it",
                            f.path
                        ));
                    }
                    Err(e) => return Err(format!("{}: {e}", f.path)),
                },
            }
        };
        out.insert(f.path.clone(), (f.kind.clone(), data));
    }
    for (p, c) in overlay {
        if !is_excluded(p) {
            out.entry(p.clone())
                .or_insert_with(|| (Kind::File { executable: false }, c.clone().into_bytes()));
        }
    }

    // Everything the recipes install must be in the tarball, and every example script in the
    // tree must be packaged on purpose.
    let mut required: Vec<&str> = vec![m.dtrace_library.as_str(), m.license_file.as_str()];
    required.extend(m.examples.iter().map(String::as_str));
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !out.contains_key(*r))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "packaging/package.toml names files that `git ls-files` does not list: {}",
            missing.join(", ")
        ));
    }
    let unlisted: Vec<&String> = out
        .keys()
        .filter(|p| {
            p.starts_with("examples/")
                && !p["examples/".len()..].contains('/')
                && (p.ends_with(".d") || p.ends_with(".bt"))
                && !m.examples.contains(p)
        })
        .collect();
    if !unlisted.is_empty() {
        return Err(format!(
            "example scripts not listed in packaging/package.toml [files].examples (add them, so \
             every recipe installs them): {}",
            unlisted
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
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
