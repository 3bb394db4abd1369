//! The format rules of pkglint, portlint and `brew audit --strict` that the reference
//! (the packaging conventions reference, §1.4, §2.4, §3.3, §6) lists, checked on the committed recipes.
//! None of those linters runs on Debian, so each rule is a test named after it.
//!
//! One module per ecosystem: `pkglint` (pkgsrc), `portlint` (the FreeBSD port), `brew`
//! (the Homebrew formula), `debian` (the cargo-deb metadata and maintainer scripts). This file
//! holds what they share (reading a recipe file, the one-line summary rules) and the rule
//! that spans all recipes.

#[path = "../common/mod.rs"]
mod common;

mod brew;
mod debian;
mod pkglint;
mod portlint;

use common::*;
use packaging::render;

fn pkgsrc(file: &str) -> String {
    read(&format!("{}/{file}", render::pkgsrc_dir(&manifest())))
}
fn port(file: &str) -> String {
    read(&format!("{}/{file}", render::freebsd_dir(&manifest())))
}
fn formula() -> String {
    read(&render::formula_path(&manifest()))
}

/// The shared one-line summary rules (pkglint COMMENT, portlint COMMENT, brew desc).
fn summary_problems(s: &str, max: usize, names: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    if s.len() > max {
        p.push(format!("longer than {max} characters"));
    }
    if s.trim() != s {
        p.push("leading or trailing whitespace".into());
    }
    if s.ends_with('.') {
        p.push("ends with a full stop".into());
    }
    if !s.chars().next().is_some_and(|c| c.is_uppercase()) {
        p.push("does not start with a capital letter".into());
    }
    let first = s
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if ["a", "an", "the"].contains(&first.as_str()) {
        p.push("starts with an article".into());
    }
    for n in names {
        if s.to_ascii_lowercase().contains(&n.to_ascii_lowercase()) {
            p.push(format!("contains the package name {n}"));
        }
    }
    if s.contains('\n') {
        p.push("more than one line".into());
    }
    p
}

// ------------------------------------------------------------------------------ all recipes

#[test]
fn every_install_message_shows_how_to_run_an_example() {
    let m = manifest();
    let ex = m.message_example_name();
    let cases = [
        (
            pkgsrc("files/README.pkgsrc"),
            format!("dtrace -L @PREFIX@/lib/dtrace -s @PREFIX@/share/examples/@PKGBASE@/{ex}"),
        ),
        (
            port("files/pkg-message.in"),
            format!("dtrace -L %%PREFIX%%/lib/dtrace -s %%EXAMPLESDIR%%/{ex}"),
        ),
        (
            formula(),
            format!(
                "sudo dtrace -L #{{HOMEBREW_PREFIX}}/lib/dtrace -s #{{opt_pkgshare}}/examples/{ex}"
            ),
        ),
        (
            read("debian/README.Debian"),
            format!(
                "dtrace -L /usr/lib/dtrace \\\n    -s /usr/share/doc/libapache2-mod-dtprovider/examples/{ex}"
            ),
        ),
    ];
    for (text, want) in cases {
        assert!(text.contains(&want), "message lacks `{want}`:\n{text}");
    }
    assert!(pkgsrc("files/dtprovider.conf").contains("\nLoadModule dtprovider_module "));
    assert!(
        port(&format!("files/{}.in", render::apmod_file(&m)))
            .contains("LoadModule dtprovider_module ")
    );
    assert!(formula().contains("LoadModule dtprovider_module "));
    assert!(read("debian/dtprovider.load").contains("LoadModule dtprovider_module "));
}
