//! Registry crates of `Cargo.lock`, their `.crate` files in cargo's download cache, and the
//! checksums every distinfo needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use blake2::Blake2s256;
use sha2::{Digest, Sha256, Sha512};
use toml::Table;

/// A crates.io package named by `Cargo.lock` (packages without a `source` are workspace
/// members and are not fetched).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockedCrate {
    pub name: String,
    pub version: String,
    /// The sha256 `Cargo.lock` records.
    pub checksum: String,
}

impl LockedCrate {
    /// `name-version`, the form CARGO_CRATE_DEPENDS and CARGO_CRATES use.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
    pub fn file_name(&self) -> String {
        format!("{}.crate", self.id())
    }
}

pub fn parse_lock(text: &str) -> Result<Vec<LockedCrate>, String> {
    let t: Table = text.parse().map_err(|e| format!("Cargo.lock: {e}"))?;
    let pkgs = t
        .get("package")
        .and_then(|p| p.as_array())
        .ok_or("Cargo.lock: no [[package]] entries")?;
    let mut out = Vec::new();
    for p in pkgs {
        let p = p
            .as_table()
            .ok_or("Cargo.lock: a [[package]] is not a table")?;
        let field = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            return Err("Cargo.lock: a [[package]] has no name or version".into());
        };
        let Some(source) = field("source") else {
            continue;
        };
        if !source.starts_with("registry+") && !source.starts_with("sparse+") {
            // Neither pkgsrc's cargo.mk nor this generator can fetch git sources.
            return Err(format!(
                "Cargo.lock: {name} {version} comes from {source}; only crates.io crates can be packaged"
            ));
        }
        let checksum = field("checksum")
            .ok_or_else(|| format!("Cargo.lock: {name} {version} has no checksum"))?;
        out.push(LockedCrate {
            name,
            version,
            checksum,
        });
    }
    out.sort();
    Ok(out)
}

/// Size and digests of one distfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub sha256: String,
    pub sha512: String,
    pub blake2s: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn digests(data: &[u8]) -> Digests {
    Digests {
        size: data.len() as u64,
        sha256: hex(&Sha256::digest(data)),
        sha512: hex(&Sha512::digest(data)),
        blake2s: hex(&Blake2s256::digest(data)),
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn cargo_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cargo")
}

/// Where cargo keeps the `.crate` of `c`, if it downloaded it (any registry cache directory
/// whose file has the checksum `Cargo.lock` records).
pub fn find_cached(c: &LockedCrate) -> Result<Option<PathBuf>, String> {
    let cache = cargo_home().join("registry").join("cache");
    let Ok(dirs) = std::fs::read_dir(&cache) else {
        return Ok(None);
    };
    let mut dirs: Vec<PathBuf> = dirs.filter_map(|d| d.ok().map(|d| d.path())).collect();
    dirs.sort();
    let mut mismatch = None;
    for d in dirs {
        let p = d.join(c.file_name());
        if let Ok(data) = std::fs::read(&p) {
            if sha256_hex(&data) == c.checksum {
                return Ok(Some(p));
            }
            mismatch = Some(p);
        }
    }
    match mismatch {
        Some(p) => Err(format!(
            "{} does not have the sha256 Cargo.lock records for {} ({})",
            p.display(),
            c.id(),
            c.checksum
        )),
        None => Ok(None),
    }
}

/// The `.crate` files of every crate, downloading the missing ones with `cargo fetch` (which
/// fetches for every target, so crates only some platforms need are there too).
pub fn crate_files(
    root: &Path,
    crates: &[LockedCrate],
) -> Result<Vec<(LockedCrate, PathBuf)>, String> {
    let mut missing = false;
    for c in crates {
        if find_cached(c)?.is_none() {
            missing = true;
            break;
        }
    }
    if missing {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!(
            "packaging: some .crate files are not in cargo's cache; running `cargo fetch --locked`"
        );
        let st = Command::new(&cargo)
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .status()
            .map_err(|e| format!("cannot run {cargo} fetch: {e}"))?;
        if !st.success() {
            return Err(format!("`cargo fetch --locked` failed ({st})"));
        }
    }
    crates
        .iter()
        .map(|c| match find_cached(c)? {
            Some(p) => Ok((c.clone(), p)),
            None => Err(format!(
                "{} is not in cargo's cache even after `cargo fetch`",
                c.file_name()
            )),
        })
        .collect()
}
