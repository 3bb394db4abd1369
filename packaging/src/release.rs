//! Releases: the tarball of a tagged commit and the record of its digests.
//!
//! `release` builds `<name>-<version>.tar.gz` from the tag `v<version>` (never from the work
//! tree) and writes its digests to `packaging/release.toml`; `generate` writes them into the
//! recipes while the manifest's version is that release's, and `generate --check` rebuilds
//! the tarball from the tag and compares. A version without a record is unreleased: its
//! recipes carry everything but the tarball's digests, so no ordinary commit changes them.

use std::path::Path;

use toml::Table;

use crate::crates::{self, Digests};
use crate::manifest::{MANIFEST, Manifest};
use crate::tree::{self, Tree};
use crate::{dist, render};

pub const RECORD: &str = "packaging/release.toml";

/// What `release` recorded about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub tag: String,
    /// The commit the tag named when the tarball was built.
    pub commit: String,
    pub file: String,
    pub digests: Digests,
}

pub fn tag_name(version: &str) -> String {
    format!("v{version}")
}

/// `packaging/release.toml`, if there is one.
pub fn load(root: &Path) -> Result<Option<Release>, String> {
    let text = match std::fs::read_to_string(root.join(RECORD)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{RECORD}: {e}")),
    };
    parse(&text).map(Some)
}

pub fn parse(text: &str) -> Result<Release, String> {
    let t: Table = text.parse().map_err(|e| format!("{RECORD}: {e}"))?;
    let s = |k: &str| {
        t.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{RECORD}: `{k}` is missing or not a string"))
    };
    let size = t
        .get("size")
        .and_then(|v| v.as_integer())
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{RECORD}: `size` must be a positive integer"))?;
    Ok(Release {
        version: s("version")?,
        tag: s("tag")?,
        commit: s("commit")?,
        file: s("file")?,
        digests: Digests {
            size: size as u64,
            sha256: s("sha256")?,
            sha512: s("sha512")?,
            blake2s: s("blake2s")?,
        },
    })
}

pub fn render(r: &Release) -> String {
    format!(
        "# Written by `{cmd}`; do not edit.\n\
         # The release tarball of version {v}, built from the tag {tag}: while Cargo.toml's version\n\
         # is {v}, `generate` writes these digests into the recipes and `generate --check` rebuilds\n\
         # the tarball from the tag and compares.\n\
         version = \"{v}\"\ntag = \"{tag}\"\ncommit = \"{c}\"\nfile = \"{f}\"\nsize = {size}\n\
         sha256 = \"{sha256}\"\nsha512 = \"{sha512}\"\nblake2s = \"{b2}\"\n",
        cmd = render::RELEASE_COMMAND,
        v = r.version,
        tag = r.tag,
        c = r.commit,
        f = r.file,
        size = r.digests.size,
        sha256 = r.digests.sha256,
        sha512 = r.digests.sha512,
        b2 = r.digests.blake2s,
    )
}

/// The tagged commit's tree and manifest, after the checks every use of a release needs:
/// the tag exists, its Cargo.toml has the tag's version, and its Cargo.lock is the work tree's
/// (the recipes list the work tree's crates, so they must be the released tarball's).
fn tagged(root: &Path, version: &str) -> Result<(String, Tree, Manifest), String> {
    let tag = tag_name(version);
    let commit = tree::resolve(root, &format!("refs/tags/{tag}"))?.ok_or_else(|| {
        format!(
            "there is no tag {tag} in this repository (a release is built from its tag: \
             commit, then `git tag -a {tag}`; in a clone without tags, `git fetch --tags`)"
        )
    })?;
    let t = Tree::Commit {
        root: root.to_path_buf(),
        rev: commit.clone(),
    };
    let m = Manifest::load_tree(&t)?;
    if m.version != version {
        return Err(format!(
            "tag {tag} is on a commit whose Cargo.toml has version {}",
            m.version
        ));
    }
    let lock_tag = t.read_text("Cargo.lock")?;
    let lock_now =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    if lock_tag != lock_now {
        return Err(format!(
            "Cargo.lock differs from the one in {tag}, so the recipes' crate lists would not be \
             the released tarball's: bump the version in Cargo.toml (the recipes then describe \
             an unreleased version until its release)"
        ));
    }
    Ok((commit, t, m))
}

/// `release`: the tarball of the tag `v<version>` (version from the work tree's Cargo.toml)
/// and its record. Refuses while the manifest's maintainer is a placeholder, and when the
/// tagged commit's generated files are not what the generator makes of it.
pub fn cut(root: &Path) -> Result<(Release, Vec<u8>), String> {
    let work = Manifest::load(root)?;
    let (commit, t, m) = tagged(root, &work.version)?;
    let tag = tag_name(&m.version);
    if let Some(why) = m.placeholder_maintainer() {
        return Err(format!(
            "not releasing {tag}: the maintainer in {MANIFEST} is a placeholder ({why}); set a \
             real one, regenerate, commit and move the tag"
        ));
    }
    let cargo_toml = t.read_text("Cargo.toml")?;
    for (path, want) in crate::in_tarball_files(&cargo_toml, &m)? {
        if t.read_text(&path).ok().as_deref() != Some(want.as_str()) {
            return Err(format!(
                "not releasing {tag}: {path} in it is not what `{}` makes of its {MANIFEST}; \
                 regenerate, commit and move the tag",
                render::COMMAND
            ));
        }
    }
    let tarball = dist::tarball(&t, &m)?;
    let r = Release {
        version: m.version.clone(),
        tag,
        commit,
        file: m.tarball_name(),
        digests: crates::digests(&tarball),
    };
    std::fs::write(root.join(RECORD), render(&r)).map_err(|e| format!("{RECORD}: {e}"))?;
    Ok((r, tarball))
}

/// What is wrong with the record `r` of the work tree's version: one message per problem.
/// Rebuilds the tarball from the tag.
pub fn verify(root: &Path, r: &Release) -> Vec<String> {
    let (commit, t, m) = match tagged(root, &r.version) {
        Ok(x) => x,
        Err(e) => return vec![format!("{RECORD}: {e}")],
    };
    let mut problems = Vec::new();
    if r.tag != tag_name(&r.version) || r.file != m.tarball_name() {
        problems.push(format!(
            "{RECORD}: tag {} / file {} are not those of version {}",
            r.tag, r.file, r.version
        ));
    }
    if commit != r.commit {
        problems.push(format!(
            "{RECORD}: tag {} names commit {commit}, but the release was built from {} (was the \
             tag moved after the release?)",
            r.tag, r.commit
        ));
    }
    match dist::tarball(&t, &m) {
        Ok(tarball) => {
            let d = crates::digests(&tarball);
            if d != r.digests {
                problems.push(format!(
                    "{RECORD}: the tarball rebuilt from {} has sha256 {} ({} bytes), the record \
                     says {} ({} bytes)",
                    r.tag, d.sha256, d.size, r.digests.sha256, r.digests.size
                ));
            }
        }
        Err(e) => problems.push(format!("{RECORD}: cannot rebuild the tarball: {e}")),
    }
    problems
}
