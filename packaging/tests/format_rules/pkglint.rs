//! The pkglint rules (the packaging conventions reference, §1.4, §6.1) on the committed pkgsrc
//! package: its Makefile, cargo-depends.mk, PLIST, distinfo, DESCR and files/.

use super::{pkgsrc, summary_problems};
use crate::common::*;
use packaging::render;

#[test]
fn pkglint_makefile_starts_with_rcs_id() {
    for f in ["Makefile", "cargo-depends.mk"] {
        assert_eq!(
            pkgsrc(f).lines().next(),
            Some("# $NetBSD$"),
            "{f}: first line must be `# $NetBSD$`"
        );
    }
    assert_eq!(pkgsrc("PLIST").lines().next(), Some("@comment $NetBSD$"));
    assert_eq!(pkgsrc("distinfo").lines().next(), Some("$NetBSD$"));
}

#[test]
fn pkglint_header_variable_order() {
    let order = make_var_order(&pkgsrc("Makefile"));
    let want = [
        "DISTNAME",
        "PKGNAME",
        "CATEGORIES",
        "MASTER_SITES",
        "MAINTAINER",
        "HOMEPAGE",
        "COMMENT",
        "LICENSE",
    ];
    header_positions(&order, &want);
    assert_eq!(
        &order[..2],
        ["DISTNAME", "PKGNAME"],
        "DISTNAME and PKGNAME come first"
    );
    // The header block (DISTNAME..MASTER_SITES+GITHUB_*) is separated from MAINTAINER.. by one
    // blank line, as pkglint wants the "distname" and "maintainer" paragraphs.
    let mk = pkgsrc("Makefile");
    assert!(
        mk.contains("\n\nMAINTAINER="),
        "MAINTAINER starts a new paragraph"
    );
    assert!(
        mk.contains("\n\nDISTNAME="),
        "DISTNAME starts a paragraph after the header comment"
    );
}

#[test]
fn pkglint_variable_assignments_aligned_with_tabs() {
    for f in ["Makefile", "cargo-depends.mk"] {
        for l in pkgsrc(f).lines() {
            if l.starts_with('#') || l.starts_with('\t') || l.starts_with('.') || l.is_empty() {
                continue;
            }
            if let Some(eq) = l.find('=') {
                let after = &l[eq + 1..];
                assert!(
                    after.is_empty() || after.starts_with('\t'),
                    "{f}: `{l}`: the value must be separated from `=` by tabs, not spaces"
                );
                assert!(!l[..eq].contains(' '), "{f}: `{l}`: no space before `=`");
            }
        }
    }
}

#[test]
fn pkglint_comment_is_short_one_line_without_package_name() {
    let v = make_vars(&pkgsrc("Makefile"));
    let c = &v["COMMENT"];
    let p = summary_problems(c, 70, &["dtprovider", "ap24-", "ap-dtprovider"]);
    assert!(p.is_empty(), "COMMENT {c:?}: {p:?}");
}

#[test]
fn pkglint_license_uses_pkgsrc_license_names() {
    // Names from pkgsrc/licenses/ (lower case, hyphenated).
    let known = [
        "mit",
        "apache-2.0",
        "modified-bsd",
        "2-clause-bsd",
        "isc",
        "gnu-gpl-v2",
        "gnu-gpl-v3",
        "mpl-2.0",
    ];
    let v = make_vars(&pkgsrc("Makefile"));
    for lic in v["LICENSE"].split(" OR ").flat_map(|s| s.split(" AND ")) {
        assert!(
            known.contains(&lic.trim()),
            "LICENSE {lic:?} is not a pkgsrc license name"
        );
    }
    assert_eq!(v["LICENSE"], manifest().license_pkgsrc);
}

#[test]
fn pkglint_apache_module_framework() {
    let v = make_vars(&pkgsrc("Makefile"));
    assert_eq!(v["APACHE_MODULE"], "yes");
    assert_eq!(v["PKG_APACHE_ACCEPTED"], "apache24");
    assert!(
        v["PKGNAME"].starts_with("${APACHE_PKG_PREFIX}-"),
        "PKGNAME must use APACHE_PKG_PREFIX"
    );
    assert_eq!(v["CATEGORIES"], "www");
}

/// pkglint: "Setting variable PKG_APACHE_ACCEPTED should have a rationale." A restriction to
/// some Apache versions says why, in a comment on the line or directly above it.
#[test]
fn pkglint_pkg_apache_accepted_has_a_rationale() {
    let mk = pkgsrc("Makefile");
    let lines: Vec<&str> = mk.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with("PKG_APACHE_ACCEPTED") {
            continue;
        }
        let trailing = l.contains('#');
        let above = i > 0 && lines[i - 1].starts_with("# ") && lines[i - 1].len() > 10;
        assert!(
            trailing || above,
            "Makefile:{}: `{l}` has no rationale (a comment on the line or directly above)",
            i + 1
        );
    }
}

/// pkglint: "Use PREFIX instead of LOCALBASE." The package's own build finds its tools under
/// PREFIX (where pkgsrc installs the build dependencies too).
#[test]
fn pkglint_prefix_instead_of_localbase() {
    for (i, l) in pkgsrc("Makefile").lines().enumerate() {
        assert!(
            !l.contains("LOCALBASE"),
            "Makefile:{}: `{l}`: use PREFIX instead of LOCALBASE",
            i + 1
        );
    }
}

#[test]
fn pkglint_include_order() {
    let mk = pkgsrc("Makefile");
    let incs: Vec<&str> = mk.lines().filter(|l| l.starts_with(".include")).collect();
    assert_eq!(
        incs,
        [
            ".include \"cargo-depends.mk\"",
            ".include \"../../lang/rust/cargo.mk\"",
            ".include \"../../mk/apache.mk\"",
            ".include \"../../mk/bsd.pkg.mk\""
        ]
    );
    assert_eq!(
        mk.lines().last(),
        Some(".include \"../../mk/bsd.pkg.mk\""),
        "bsd.pkg.mk is included last"
    );
}

#[test]
fn pkglint_own_do_install_for_a_cdylib() {
    let mk = pkgsrc("Makefile");
    assert!(
        mk.contains("\ndo-install:\n"),
        "cargo.mk's cargo install cannot install a cdylib"
    );
    assert!(mk.contains("${INSTALL_LIB} ${WRKSRC}/target/release/libmod_dtprovider."));
    let v = make_vars(&mk);
    for d in ["lib/httpd", "lib/dtrace", "share/examples/${PKGBASE}"] {
        assert!(
            v["INSTALLATION_DIRS"].split(' ').any(|x| x == d),
            "INSTALLATION_DIRS lacks {d}"
        );
    }
}

#[test]
fn pkglint_cargo_depends_format() {
    let cd = pkgsrc("cargo-depends.mk");
    let mut body = cd
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .skip_while(|l| l.is_empty());
    for l in body.by_ref() {
        let id = l
            .strip_prefix("CARGO_CRATE_DEPENDS+=\t")
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        assert!(
            id.rsplit_once('-')
                .is_some_and(|(_, v)| v.chars().next().unwrap().is_ascii_digit()),
            "{id}"
        );
    }
}

#[test]
fn pkglint_plist_sorted_relative_with_pkgbase() {
    let pl = pkgsrc("PLIST");
    let entries: Vec<&str> = pl.lines().filter(|l| !l.starts_with('@')).collect();
    let mut sorted = entries.clone();
    sorted.sort();
    assert_eq!(entries, sorted, "PLIST entries must be sorted");
    for e in &entries {
        assert!(
            !e.starts_with('/'),
            "{e}: PLIST paths are relative to ${{PREFIX}}"
        );
        assert!(
            !e.contains("ap24-") && !e.contains("ap22-"),
            "{e}: use ${{PKGBASE}}, not a hard-coded prefix"
        );
    }
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("share/examples/${PKGBASE}/"))
    );
}

#[test]
fn pkglint_distinfo_layout() {
    for (state, di) in both_states(&format!("{}/distinfo", render::pkgsrc_dir(&manifest()))) {
        pkgsrc_distinfo_layout(state, &di);
    }
}

fn pkgsrc_distinfo_layout(state: &str, di: &str) {
    let lines: Vec<&str> = di.lines().collect();
    assert_eq!(
        &lines[..2],
        ["$NetBSD$", ""],
        "{state}: distinfo starts with $NetBSD$ and a blank line"
    );
    let body = &lines[2..];
    assert_eq!(body.len() % 3, 0, "{state}: three lines per distfile");
    let mut names = Vec::new();
    for chunk in body.chunks(3) {
        let name = chunk[0]
            .strip_prefix("BLAKE2s (")
            .and_then(|r| r.split_once(") = "))
            .unwrap_or_else(|| panic!("{state}: expected BLAKE2s line, got {:?}", chunk[0]))
            .0;
        let b = chunk[0].rsplit(" = ").next().unwrap();
        assert!(
            b.len() == 64 && b.chars().all(|c| c.is_ascii_hexdigit()),
            "BLAKE2s of {name}"
        );
        let s = chunk[1]
            .strip_prefix(&format!("SHA512 ({name}) = "))
            .expect("SHA512 second");
        assert!(
            s.len() == 128 && s.chars().all(|c| c.is_ascii_hexdigit()),
            "SHA512 of {name}"
        );
        let size = chunk[2]
            .strip_prefix(&format!("Size ({name}) = "))
            .and_then(|r| r.strip_suffix(" bytes"))
            .expect("`Size (f) = N bytes` third");
        assert!(size.parse::<u64>().is_ok());
        assert!(
            !name.contains('/'),
            "{name}: crates have no DIST_SUBDIR in pkgsrc"
        );
        names.push(name.to_string());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        names, sorted,
        "{state}: distinfo entries sorted by file name"
    );
    let tarball = manifest().tarball_name();
    assert_eq!(
        names.contains(&tarball),
        state == "as released" || generated().release.is_some(),
        "{state}: distinfo lists {tarball} exactly when the version is released"
    );
}

/// pkglint 23.16.0 and later: "MESSAGE: MESSAGE files are obsolete." (an ERROR). What the
/// message said (the line to add to httpd.conf, how to run dtrace with -L) is in a README
/// that the package installs under share/doc/${PKGBASE}.
#[test]
fn pkglint_message_files_are_obsolete() {
    let m = manifest();
    let dir = render::pkgsrc_dir(&m);
    assert!(
        !root().join(&dir).join("MESSAGE").exists()
            && !generated().files.contains_key(&format!("{dir}/MESSAGE")),
        "{dir}/MESSAGE: MESSAGE files are obsolete (pkglint 23.16.0)"
    );
    assert!(
        pkgsrc("PLIST")
            .lines()
            .any(|l| l == "share/doc/${PKGBASE}/README.pkgsrc"),
        "the hints are installed as share/doc/${{PKGBASE}}/README.pkgsrc"
    );
    let readme = pkgsrc("files/README.pkgsrc");
    for want in [
        "Include @PKG_SYSCONFDIR@/dtprovider.conf",
        "LoadModule dtprovider_module @PREFIX@/lib/httpd/mod_dtprovider.so",
        "dtrace -L @PREFIX@/lib/dtrace -s @PREFIX@/share/examples/@PKGBASE@/",
    ] {
        assert!(
            readme.contains(want),
            "README.pkgsrc lacks `{want}`:\n{readme}"
        );
    }
}

/// The LoadModule snippet goes the pkginstall way (as www/roundcube's Apache snippet): the
/// package installs it as an example, CONF_FILES copies it next to httpd.conf (Apache's own
/// PKG_SYSCONFSUBDIR) on install and leaves an existing copy alone.
#[test]
fn pkglint_snippet_via_conf_files() {
    let v = make_vars(&pkgsrc("Makefile"));
    assert_eq!(
        v["PKG_SYSCONFSUBDIR"], "httpd",
        "next to Apache's httpd.conf"
    );
    assert_eq!(v["EGDIR"], "${PREFIX}/share/examples/${PKGBASE}");
    assert_eq!(
        v["CONF_FILES"],
        "${EGDIR}/dtprovider.conf ${PKG_SYSCONFDIR}/dtprovider.conf"
    );
    let plist = pkgsrc("PLIST");
    assert!(
        plist
            .lines()
            .any(|l| l == "share/examples/${PKGBASE}/dtprovider.conf")
    );
    assert!(
        !plist.lines().any(|l| l.starts_with("etc/")),
        "the configuration file itself is not in the PLIST (pkginstall owns it)"
    );
    assert_eq!(v["SUBST_FILES.paths"], "dtprovider.conf README.pkgsrc");
}

#[test]
fn pkglint_descr_plain_text_short_lines() {
    let d = pkgsrc("DESCR");
    assert!(d.lines().count() <= 24, "DESCR over 24 lines");
    for l in d.lines() {
        assert!(l.len() <= 80, "DESCR line over 80 characters: {l}");
        assert!(!l.starts_with("WWW:"));
    }
}

#[test]
fn pkglint_no_hardcoded_prefix() {
    for f in [
        "Makefile",
        "PLIST",
        "files/README.pkgsrc",
        "files/dtprovider.conf",
    ] {
        let t = pkgsrc(f);
        for bad in ["/opt/local", "/usr/pkg", "/usr/local", "/opt/pkg"] {
            assert!(!t.contains(bad), "{f} hard-codes {bad}; use ${{PREFIX}}");
        }
    }
}
