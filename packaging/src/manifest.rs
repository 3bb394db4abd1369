//! `packaging/package.toml` plus the module's `Cargo.toml` `[package]` section.

use std::path::Path;

use toml::{Table, Value};

use crate::tree::Tree;

/// Where one ecosystem puts the installed files, relative to its prefix, in its own notation.
#[derive(Debug, Clone)]
pub struct Layout {
    pub module_dir: String,
    pub dtrace_dir: String,
    pub examples_dir: String,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub homepage: String,
    pub summary: String,
    pub description: String,
    pub maintainer: String,
    pub copyright: String,
    pub release_url: String,
    pub release_epoch: u64,
    /// `[dist].include`: what the release tarball holds.
    pub dist_include: Vec<String>,

    pub license_spdx: String,
    pub license_file: String,
    pub license_pkgsrc: String,
    pub license_freebsd: String,

    pub module_artifact: String,
    pub module_file: String,
    pub module_symbol: String,
    pub module_name: String,

    pub dtrace_library: String,
    pub examples: Vec<String>,
    pub message_example: String,

    pub pkgsrc_category: String,
    pub pkgsrc_directory: String,
    pub pkgsrc_package: String,
    pub pkgsrc_maintainer: String,
    pub pkgsrc_default_prefix: String,
    /// PKG_SYSCONFSUBDIR: where the LoadModule snippet is copied (Apache's own directory).
    pub pkgsrc_sysconf_subdir: String,
    /// Where the installed README.pkgsrc goes.
    pub pkgsrc_doc_dir: String,
    pub pkgsrc: Layout,

    pub freebsd_category: String,
    pub freebsd_portname: String,
    pub freebsd_package: String,
    pub freebsd_maintainer: String,
    pub freebsd_modules_d_order: String,
    pub freebsd_only_for_archs: Vec<String>,
    pub freebsd_default_prefix: String,
    pub freebsd: Layout,

    pub homebrew_tap: String,
    pub homebrew_formula: String,
    /// Where the LoadModule snippet goes, under Homebrew's etc (kept across upgrades).
    pub homebrew_conf_dir: String,
    pub homebrew: Layout,

    pub debian_package: String,
    pub debian_section: String,
    pub debian_priority: String,
    pub debian_depends: String,
    pub debian: Layout,
}

fn get<'a>(t: &'a Table, key: &str, file: &str) -> Result<&'a Value, String> {
    let mut cur = t;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let v = cur
            .get(*p)
            .ok_or_else(|| format!("{file}: missing key `{key}`"))?;
        if i + 1 == parts.len() {
            return Ok(v);
        }
        cur = v
            .as_table()
            .ok_or_else(|| format!("{file}: `{}` is not a table", parts[..=i].join(".")))?;
    }
    unreachable!()
}

fn s(t: &Table, key: &str, file: &str) -> Result<String, String> {
    get(t, key, file)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{file}: `{key}` must be a string"))
}

fn list(t: &Table, key: &str, file: &str) -> Result<Vec<String>, String> {
    get(t, key, file)?
        .as_array()
        .ok_or_else(|| format!("{file}: `{key}` must be an array"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{file}: `{key}` must hold strings"))
        })
        .collect()
}

fn layout(t: &Table, eco: &str, file: &str) -> Result<Layout, String> {
    Ok(Layout {
        module_dir: s(t, &format!("{eco}.module-dir"), file)?,
        dtrace_dir: s(t, &format!("{eco}.dtrace-dir"), file)?,
        examples_dir: s(t, &format!("{eco}.examples-dir"), file)?,
    })
}

pub const MANIFEST: &str = "packaging/package.toml";

impl Manifest {
    /// Reads `packaging/package.toml` and the root `Cargo.toml` under `root`.
    pub fn load(root: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(root.join(MANIFEST))
            .map_err(|e| format!("cannot read {MANIFEST}: {e}"))?;
        let cargo = std::fs::read_to_string(root.join("Cargo.toml"))
            .map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
        Self::parse(&text, &cargo)
    }

    /// The manifest as it is in `tree` (for a commit: as it was committed).
    pub fn load_tree(tree: &Tree) -> Result<Manifest, String> {
        match tree {
            Tree::WorkTree(root) => Self::load(root),
            Tree::Commit { .. } => {
                Self::parse(&tree.read_text(MANIFEST)?, &tree.read_text("Cargo.toml")?)
                    .map_err(|e| format!("{e} (in {})", tree.describe()))
            }
        }
    }

    /// Why `maintainer` cannot be a release's maintainer, if it cannot: it must be
    /// `Name <address>` with an address that receives mail (Debian's Maintainer field and the
    /// changelog trailer are where users and Debian's tools write to).
    pub fn placeholder_maintainer(&self) -> Option<String> {
        let m = self.maintainer.trim();
        let Some((name, rest)) = m.split_once('<') else {
            return Some("it is not of the form `Name <address>`".into());
        };
        let Some(addr) = rest.strip_suffix('>') else {
            return Some("it is not of the form `Name <address>`".into());
        };
        let addr = addr.to_ascii_lowercase();
        let Some((local, domain)) = addr.split_once('@') else {
            return Some(format!("<{addr}> is not an e-mail address"));
        };
        if name.trim().is_empty() || local.is_empty() || !domain.contains('.') {
            return Some(format!("`{m}` is not `Name <user@domain>`"));
        }
        if addr.contains("noreply") || addr.contains("no-reply") {
            return Some(format!("<{addr}> is a no-reply address"));
        }
        // Reserved for documentation and testing (RFC 2606, RFC 6761): never real mailboxes.
        let reserved_tld = ["example", "invalid", "test", "localhost", "local"];
        let reserved_domain = ["example.com", "example.net", "example.org"];
        let tld = domain.rsplit('.').next().unwrap_or("");
        if reserved_tld.contains(&tld)
            || reserved_domain
                .iter()
                .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
        {
            return Some(format!("<{addr}> is in a domain reserved for examples"));
        }
        None
    }

    pub fn parse(text: &str, cargo_toml: &str) -> Result<Manifest, String> {
        let f = MANIFEST;
        let t: Table = text.parse().map_err(|e| format!("{f}: {e}"))?;
        let c: Table = cargo_toml.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
        let cf = "Cargo.toml";
        let version = s(&c, "package.version", cf)?;
        let homepage = s(&c, "package.homepage", cf)?;
        let cargo_license = s(&c, "package.license", cf)?;

        let m = Manifest {
            name: s(&t, "package.name", f)?,
            version,
            homepage,
            summary: s(&t, "package.summary", f)?,
            description: s(&t, "package.description", f)?,
            maintainer: s(&t, "package.maintainer", f)?,
            copyright: s(&t, "package.copyright", f)?,
            release_url: s(&t, "package.release-url", f)?,
            release_epoch: get(&t, "package.release-epoch", f)?
                .as_integer()
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("{f}: `package.release-epoch` must be a positive integer"))?
                as u64,
            dist_include: list(&t, "dist.include", f)?,
            license_spdx: s(&t, "license.spdx", f)?,
            license_file: s(&t, "license.file", f)?,
            license_pkgsrc: s(&t, "license.pkgsrc", f)?,
            license_freebsd: s(&t, "license.freebsd", f)?,
            module_artifact: s(&t, "module.artifact", f)?,
            module_file: s(&t, "module.file", f)?,
            module_symbol: s(&t, "module.symbol", f)?,
            module_name: s(&t, "module.name", f)?,
            dtrace_library: s(&t, "files.dtrace-library", f)?,
            examples: list(&t, "files.examples", f)?,
            message_example: s(&t, "files.message-example", f)?,
            pkgsrc_category: s(&t, "pkgsrc.category", f)?,
            pkgsrc_directory: s(&t, "pkgsrc.directory", f)?,
            pkgsrc_package: s(&t, "pkgsrc.package", f)?,
            pkgsrc_maintainer: s(&t, "pkgsrc.maintainer", f)?,
            pkgsrc_default_prefix: s(&t, "pkgsrc.default-prefix", f)?,
            pkgsrc_sysconf_subdir: s(&t, "pkgsrc.sysconf-subdir", f)?,
            pkgsrc_doc_dir: s(&t, "pkgsrc.doc-dir", f)?,
            pkgsrc: layout(&t, "pkgsrc", f)?,
            freebsd_category: s(&t, "freebsd.category", f)?,
            freebsd_portname: s(&t, "freebsd.portname", f)?,
            freebsd_package: s(&t, "freebsd.package", f)?,
            freebsd_maintainer: s(&t, "freebsd.maintainer", f)?,
            freebsd_modules_d_order: s(&t, "freebsd.modules-d-order", f)?,
            freebsd_only_for_archs: list(&t, "freebsd.only-for-archs", f)?,
            freebsd_default_prefix: s(&t, "freebsd.default-prefix", f)?,
            freebsd: layout(&t, "freebsd", f)?,
            homebrew_tap: s(&t, "homebrew.tap", f)?,
            homebrew_formula: s(&t, "homebrew.formula", f)?,
            homebrew_conf_dir: s(&t, "homebrew.conf-dir", f)?,
            homebrew: layout(&t, "homebrew", f)?,
            debian_package: s(&t, "debian.package", f)?,
            debian_section: s(&t, "debian.section", f)?,
            debian_priority: s(&t, "debian.priority", f)?,
            debian_depends: s(&t, "debian.depends", f)?,
            debian: layout(&t, "debian", f)?,
        };

        if m.license_spdx != cargo_license {
            return Err(format!(
                "{f}: license.spdx is {:?} but Cargo.toml says license = {:?}; update [license] \
                 (and the pkgsrc/FreeBSD names) to match",
                m.license_spdx, cargo_license
            ));
        }
        if m.freebsd_modules_d_order.len() != 3
            || !m
                .freebsd_modules_d_order
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(format!("{f}: freebsd.modules-d-order must be three digits"));
        }
        if !m.examples.contains(&m.message_example) {
            return Err(format!(
                "{f}: files.message-example must be one of files.examples"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.examples {
            let base = basename(e);
            if !(base.ends_with(".d") || base.ends_with(".bt")) {
                return Err(format!("{f}: example {e} is neither a .d nor a .bt script"));
            }
            if !seen.insert(base.to_string()) {
                return Err(format!("{f}: two examples are named {base}"));
            }
        }
        for i in &m.dist_include {
            if i.is_empty() || i.starts_with('/') || i.contains("..") || i.contains('*') {
                return Err(format!(
                    "{f}: [dist].include entry {i:?} must be a plain path in the repository \
                     (a directory ends with `/`)"
                ));
            }
        }
        if !m.release_url.starts_with("https://") || !m.homepage.starts_with("https://") {
            return Err("the homepage and release-url must be https URLs".into());
        }
        Ok(m)
    }

    pub fn distname(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    pub fn tarball_name(&self) -> String {
        format!("{}.tar.gz", self.distname())
    }

    pub fn release_site(&self) -> String {
        self.release_url.replace("{version}", &self.version)
    }

    /// Example file names (no directory), in manifest order.
    pub fn example_names(&self) -> Vec<&str> {
        self.examples.iter().map(|e| basename(e)).collect()
    }

    /// Example file names sorted (the order PLISTs want).
    pub fn example_names_sorted(&self) -> Vec<&str> {
        let mut v = self.example_names();
        v.sort();
        v
    }

    pub fn dtrace_library_name(&self) -> &str {
        basename(&self.dtrace_library)
    }

    /// The LoadModule snippet's file name (pkgsrc, Homebrew): `<module name>.conf`.
    pub fn snippet_name(&self) -> String {
        format!("{}.conf", self.module_name)
    }

    pub fn message_example_name(&self) -> &str {
        basename(&self.message_example)
    }
}

pub fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_maintainer(maintainer: &str) -> Manifest {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut m = Manifest::load(root).unwrap();
        m.maintainer = maintainer.to_string();
        m
    }

    #[test]
    fn placeholder_maintainers_are_recognised() {
        for bad in [
            "mod_dtprovider maintainers <mod_dtprovider@users.noreply.github.com>",
            "Someone <no-reply@mod-dtprovider.org>",
            "Someone <someone@example.com>",
            "Someone <someone@mail.example.org>",
            "Someone <someone@mod-dtprovider.invalid>",
            "Someone <someone@host.test>",
            "Someone <someone@localhost>",
            "someone@mod-dtprovider.org",
            "<someone@mod-dtprovider.org>",
            "Someone <someone>",
        ] {
            assert!(
                with_maintainer(bad).placeholder_maintainer().is_some(),
                "{bad} is taken for a real maintainer"
            );
        }
        for good in [
            "Jane Maintainer <jane@mod-dtprovider.org>",
            "J. Doe <jdoe@cs.example-university.edu>",
        ] {
            assert_eq!(
                with_maintainer(good).placeholder_maintainer(),
                None,
                "{good}"
            );
        }
    }
}
