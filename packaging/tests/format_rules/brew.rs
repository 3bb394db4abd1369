//! The `brew audit --strict` rules (the packaging conventions reference, §3.3, §6.3) on the
//! committed Homebrew formula, and `ruby -c` on it.

use std::process::Command;

use super::{formula, summary_problems};
use crate::common::*;
use packaging::render;

fn formula_str(key: &str) -> String {
    let f = formula();
    let line = f
        .lines()
        .find(|l| l.starts_with(&format!("  {key} \"")))
        .unwrap_or_else(|| panic!("formula has no `{key}`"));
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn brew_audit_desc_rules() {
    let d = formula_str("desc");
    let p = summary_problems(
        &d,
        80,
        &["mod_dtprovider", "mod-dtprovider", "moddtprovider"],
    );
    assert!(p.is_empty(), "desc {d:?}: {p:?}");
    assert!(!d.contains("command line"), "write command-line");
}

#[test]
fn brew_audit_license_is_spdx() {
    let known = [
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "ISC",
        "MPL-2.0",
        "GPL-2.0-only",
        "GPL-3.0-only",
    ];
    let l = formula_str("license");
    assert!(
        known.contains(&l.as_str()),
        "license {l} is not a (non-deprecated) SPDX id"
    );
    assert_eq!(l, manifest().license_spdx);
}

#[test]
fn brew_audit_checksum_sha256() {
    for (state, f) in both_states(&render::formula_path(&manifest())) {
        let line = f.lines().find(|l| l.starts_with("  sha256 \""));
        if state == "committed" && generated().release.is_none() {
            assert!(line.is_none(), "an unreleased formula has no sha256");
            assert!(f.contains(&format!("\n  {}\n", render::UNRELEASED_SHA256)));
            continue;
        }
        let s = line
            .expect("a released formula has a sha256")
            .split('"')
            .nth(1)
            .unwrap();
        assert!(
            s.len() == 64
                && s.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{state}: sha256 {s}"
        );
        assert!(!f.contains("md5") && !f.contains("sha1 "));
    }
}

#[test]
fn brew_audit_urls_https_and_immutable() {
    let url = formula_str("url");
    assert!(url.starts_with("https://"), "{url}");
    assert!(
        url.ends_with(&manifest().tarball_name()),
        "url must be the versioned release tarball: {url}"
    );
    assert!(formula_str("homepage").starts_with("https://"));
}

#[test]
fn brew_audit_test_present() {
    let f = formula();
    assert!(
        f.contains("\n  test do\n"),
        "A `test do` test block should be added"
    );
    assert!(
        f.contains("httpd -M"),
        "the test makes httpd load the module"
    );
    assert!(f.contains("assert_match \"dtprovider_module (shared)\""));
}

/// The formula installs the LoadModule snippet under etc/httpd/extra (Homebrew keeps files in
/// etc across upgrades), names it in the caveats, and its test has httpd accept it.
#[test]
fn brew_snippet_in_etc_httpd_extra() {
    let f = formula();
    assert!(f.contains("\n    (etc/\"httpd/extra\").install \"dtprovider.conf\"\n"));
    assert!(f.contains(
        "\n      LoadModule dtprovider_module #{opt_lib}/httpd/modules/mod_dtprovider.so\n    EOS\n"
    ));
    let start = f.find("  def caveats").unwrap();
    let cav = &f[start..start + f[start..].find("\n  end\n").unwrap()];
    assert!(cav.contains("\n        Include #{etc}/httpd/extra/dtprovider.conf\n"));
    let test = &f[f.find("\n  test do\n").unwrap()..];
    assert!(test.contains("\n      Include #{etc}/httpd/extra/dtprovider.conf\n"));
    assert!(test.contains("\"-t\", \"-f\", testpath/\"httpd.conf\""));
    assert!(test.contains("httpd -M -f"));
}

#[test]
fn brew_audit_fully_scoped_test_system_calls() {
    let f = formula();
    let test = &f[f.find("\n  test do\n").unwrap()..];
    for l in test
        .lines()
        .filter(|l| l.contains("system ") || l.contains("shell_output("))
    {
        assert!(
            l.contains("#{Formula[") || l.contains("#{bin}") || l.contains("opt_bin"),
            "Fully scope test `system` calls: {l}"
        );
    }
}

#[test]
fn brew_audit_cargo_build_needs_lib() {
    let f = formula();
    for l in f
        .lines()
        .filter(|l| l.contains("system \"cargo\", \"build\""))
    {
        assert!(
            l.contains("\"--lib\""),
            "text cop: use cargo install unless --lib: {l}"
        );
        assert!(
            l.contains("\"--locked\""),
            "dependencies must be locked: {l}"
        );
    }
}

#[test]
fn brew_audit_caveats_without_conditionals() {
    let f = formula();
    let start = f.find("  def caveats").expect("caveats");
    let end = start + f[start..].find("\n  end\n").unwrap();
    let cav = &f[start..end];
    for bad in [" if ", " unless ", " else", "\x1b[", "setuid"] {
        assert!(!cav.contains(bad), "caveats contain {bad:?}");
    }
    assert!(
        cav.contains("LoadModule dtprovider_module #{opt_lib}/httpd/modules/mod_dtprovider.so")
    );
    assert!(cav.contains("dtrace -L #{HOMEBREW_PREFIX}/lib/dtrace -s "));
}

#[test]
fn brew_audit_component_order() {
    for (state, f) in both_states(&render::formula_path(&manifest())) {
        let idx = |s: &str| {
            f.find(s)
                .unwrap_or_else(|| panic!("{state}: formula lacks {s:?}"))
        };
        let sha = if f.contains("\n  sha256 ") {
            "\n  sha256 ".to_string()
        } else {
            format!("\n  {}", render::UNRELEASED_SHA256)
        };
        let order = [
            "\n  desc ",
            "\n  homepage ",
            "\n  url ",
            &sha,
            "\n  license ",
            "\n  depends_on \"rust\" => :build",
            "\n  depends_on \"httpd\"",
            "\n  uses_from_macos ",
            "\n  def install",
            "\n  def caveats",
            "\n  test do",
        ];
        let pos: Vec<usize> = order.iter().map(|s| idx(s)).collect();
        assert!(
            pos.windows(2).all(|w| w[0] < w[1]),
            "{state}: component order: {order:?}"
        );
        assert!(!f.contains("bottle do"), "no bottle block in a new formula");
    }
}

#[test]
fn brew_audit_formula_name_and_class() {
    let m = manifest();
    let name = &m.homebrew_formula;
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    );
    assert!(!name.contains("--") && !name.starts_with('-') && !name.ends_with('-'));
    assert!(formula().contains("\nclass ModDtprovider < Formula\n"));
    assert!(render::formula_path(&m).ends_with(&format!("Formula/{name}.rb")));
}

#[test]
fn brew_module_links_with_undefined_dynamic_lookup() {
    let f = formula();
    assert!(
        f.contains("-undefined") && f.contains("dynamic_lookup"),
        "the macOS link flag a module needs"
    );
    assert!(f.contains("#{shared_library(\"libmod_dtprovider\")}\" => \"mod_dtprovider.so\""));
}

#[test]
fn brew_no_hardcoded_prefix() {
    let f = formula();
    for bad in ["/usr/local", "/opt/homebrew", "/home/linuxbrew", "Cellar"] {
        assert!(!f.contains(bad), "formula hard-codes {bad}");
    }
}

#[test]
fn ruby_c_syntax_check() {
    if !require(
        which("ruby").is_some(),
        "ruby is not installed (apt-get install ruby)",
        "ruby_c_syntax_check",
    ) {
        return;
    }
    let out = run(
        Command::new("ruby")
            .arg("-c")
            .arg(root().join(render::formula_path(&manifest()))),
        "ruby -c",
    );
    assert!(stdout(&out).contains("Syntax OK"));
}
