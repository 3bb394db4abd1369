//! The format rules of pkglint, portlint and `brew audit --strict` that the reference
//! (the packaging conventions reference, §1.4, §2.4, §3.3, §6) lists, checked on the committed recipes.
//! None of those linters runs on Debian, so each rule is a test named after it.

mod common;

use std::process::Command;

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

// ------------------------------------------------------------------------------ pkgsrc

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
    let pos: Vec<usize> = want
        .iter()
        .map(|w| {
            order
                .iter()
                .position(|o| o == w)
                .unwrap_or_else(|| panic!("Makefile lacks {w}"))
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "header variables out of order: {order:?}"
    );
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

// ------------------------------------------------------------------------------ FreeBSD

#[test]
fn portlint_no_freebsd_rcs_id() {
    for f in [
        "Makefile",
        "pkg-plist",
        "pkg-descr",
        "distinfo",
        "Makefile.crates",
    ] {
        assert!(
            !port(f).contains("$FreeBSD$"),
            "{f}: modern ports have no $FreeBSD$ line"
        );
    }
}

#[test]
fn portlint_header_variable_order() {
    let order = make_var_order(&port("Makefile"));
    let want = [
        "PORTNAME",
        "DISTVERSION",
        "CATEGORIES",
        "MASTER_SITES",
        "PKGNAMEPREFIX",
        "DISTFILES",
        "MAINTAINER",
        "COMMENT",
        "WWW",
        "LICENSE",
        "LICENSE_FILE",
    ];
    let pos: Vec<usize> = want
        .iter()
        .map(|w| {
            order
                .iter()
                .position(|o| o == w)
                .unwrap_or_else(|| panic!("Makefile lacks {w}"))
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "header variables out of order: {order:?}"
    );
    assert_eq!(order[0], "PORTNAME");
    // USES comes after the license block.
    assert!(order.iter().position(|o| o == "USES").unwrap() > pos[9]);
}

#[test]
fn portlint_tab_after_assignment() {
    for f in ["Makefile", "Makefile.crates"] {
        for l in port(f).lines() {
            if l.starts_with('#') || l.starts_with('\t') || l.starts_with('.') || l.is_empty() {
                continue;
            }
            if let Some(eq) = l.find('=') {
                assert!(
                    l[eq + 1..].starts_with('\t'),
                    "{f}: `{l}`: use a tab after `=`"
                );
            }
        }
    }
}

#[test]
fn portlint_comment_rules() {
    let v = make_vars(&port("Makefile"));
    let p = summary_problems(&v["COMMENT"], 70, &["mod_dtprovider"]);
    assert!(p.is_empty(), "COMMENT: {p:?}");
}

#[test]
fn portlint_www_in_makefile_not_in_pkg_descr() {
    let v = make_vars(&port("Makefile"));
    assert!(v["WWW"].starts_with("https://"));
    assert!(
        !port("pkg-descr").lines().any(|l| l.starts_with("WWW:")),
        "WWW: in pkg-descr is deprecated"
    );
}

#[test]
fn portlint_pkg_descr_length() {
    let d = port("pkg-descr");
    assert!(d.lines().count() <= 24, "pkg-descr over 24 lines");
    assert!(
        d.lines().all(|l| l.len() <= 80),
        "pkg-descr line over 80 characters"
    );
}

#[test]
fn portlint_license_known() {
    let known = [
        "MIT",
        "APACHE20",
        "BSD2CLAUSE",
        "BSD3CLAUSE",
        "ISCL",
        "GPLv2",
        "GPLv3",
        "MPL20",
    ];
    let v = make_vars(&port("Makefile"));
    for l in v["LICENSE"].split(' ') {
        assert!(
            known.contains(&l),
            "LICENSE {l} unknown to Mk/bsd.licenses.db.mk"
        );
    }
    assert_eq!(
        v["LICENSE_FILE"],
        format!("${{WRKSRC}}/{}", manifest().license_file)
    );
    if v["LICENSE"].contains(' ') {
        assert_eq!(v.get("LICENSE_COMB").map(String::as_str), Some("dual"));
    }
}

#[test]
fn portlint_apache_and_cargo_framework() {
    let v = make_vars(&port("Makefile"));
    assert_eq!(v["USES"], "apache:2.4+ cargo");
    assert_eq!(v["PKGNAMEPREFIX"], "${APACHE_PKGNAMEPREFIX}");
    assert_eq!(
        v["CARGO_INSTALL"], "no",
        "cargo install cannot install a cdylib"
    );
    assert!(
        !v.contains_key("AP_FAST_BUILD") && !v.contains_key("AP_GENPLIST"),
        "AP_* helpers are for C modules"
    );
    assert_eq!(v["SUB_FILES"], "${APMOD_FILE} pkg-message");
    assert!(v["PLIST_SUB"].contains("APMOD_FILE=${APMOD_FILE}"));
    let apmod = &v["APMOD_FILE"];
    let (num, rest) = apmod.split_at(3);
    assert!(
        num.chars().all(|c| c.is_ascii_digit())
            && rest.starts_with('_')
            && rest.ends_with(".conf.sample"),
        "modules.d files are NNN_name.conf (README_modules.d): {apmod}"
    );
    assert!(
        root()
            .join(render::freebsd_dir(&manifest()))
            .join("files")
            .join(format!("{apmod}.in"))
            .is_file()
    );
    assert!(
        root()
            .join(render::freebsd_dir(&manifest()))
            .join("files/pkg-message.in")
            .is_file(),
        "pkg-message is in SUB_FILES, so its source is files/pkg-message.in"
    );
}

#[test]
fn portlint_distinfo_timestamp_sha256_size() {
    for (state, di) in both_states(&format!("{}/distinfo", render::freebsd_dir(&manifest()))) {
        freebsd_distinfo_layout(state, &di);
    }
}

fn freebsd_distinfo_layout(state: &str, di: &str) {
    let lines: Vec<&str> = di.lines().collect();
    let ts = lines[0]
        .strip_prefix("TIMESTAMP = ")
        .expect("TIMESTAMP first");
    assert!(ts.parse::<u64>().is_ok());
    let body = &lines[1..];
    assert_eq!(body.len() % 2, 0);
    for chunk in body.chunks(2) {
        let name = chunk[0]
            .strip_prefix("SHA256 (")
            .and_then(|r| r.split_once(") = "))
            .expect("SHA256 line")
            .0;
        let h = chunk[0].rsplit(" = ").next().unwrap();
        assert!(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        let size = chunk[1]
            .strip_prefix(&format!("SIZE ({name}) = "))
            .expect("SIZE after SHA256");
        assert!(
            size.parse::<u64>().is_ok(),
            "SIZE has no `bytes` suffix: {size}"
        );
        if name.ends_with(".crate") {
            assert!(
                name.starts_with("rust/crates/"),
                "{name}: crates live in CARGO_DIST_SUBDIR rust/crates"
            );
        }
    }
    let released = state == "as released" || generated().release.is_some();
    assert_eq!(
        body[0].starts_with(&format!("SHA256 ({}) = ", manifest().tarball_name())),
        released,
        "{state}: the release tarball comes first, exactly when the version is released"
    );
    assert_eq!(
        body.iter()
            .filter(|l| l.starts_with("SHA256 (rust/crates/"))
            .count(),
        generated().crates.len(),
        "{state}: every crate"
    );
}

/// With USES=cargo the framework appends the crates to DISTFILES, so bsd.port.mk's default
/// `DISTFILES?= ${DISTNAME}${EXTRACT_SUFX}` never applies: a port with its own tarball on a
/// plain MASTER_SITES must name it in DISTFILES itself, or it is neither fetched nor extracted
/// (found by evaluating the port with the real bsd.port.mk). Evaluated here with bmake and the
/// framework stub, which models exactly that; and every file the framework fetches must have
/// its checksums in distinfo (portlint's checkdistinfo) once the version is released.
#[test]
fn portlint_main_distfile_is_fetched_with_uses_cargo() {
    if !require(
        which("bmake").is_some(),
        "bmake is not installed (apt-get install bmake)",
        "portlint_main_distfile_is_fetched_with_uses_cargo",
    ) {
        return;
    }
    let m = manifest();
    let tarball = m.tarball_name();
    let crates: Vec<String> = generated()
        .crates
        .iter()
        .map(|(c, _, _)| format!("rust/crates/{}", c.file_name()))
        .collect();
    for state in ["committed", "as released"] {
        let tmp = TempDir::new("allfiles");
        let dir = write_port(tmp.path(), state);
        let mk = support("freebsd").display().to_string();
        let all = bmake_out(&["-m", &mk, "-v", "ALLFILES"], &dir, &[]);
        let all: Vec<&str> = all.split_whitespace().collect();
        assert!(
            all.contains(&tarball.as_str()),
            "{state}: the framework would not fetch {tarball}: ALLFILES is {all:?} (set \
             DISTFILES= ${{DISTNAME}}${{EXTRACT_SUFX}} in the Makefile)"
        );
        for c in &crates {
            assert!(all.contains(&c.as_str()), "{state}: ALLFILES lacks {c}");
        }
        assert_eq!(all.len(), crates.len() + 1, "{state}: {all:?}");
        let di = std::fs::read_to_string(dir.join("distinfo")).unwrap();
        let listed: Vec<&str> = di
            .lines()
            .filter_map(|l| l.strip_prefix("SHA256 ("))
            .filter_map(|l| l.split_once(')').map(|x| x.0))
            .collect();
        let want: Vec<&str> = all
            .iter()
            .copied()
            .filter(|f| state == "as released" || generated().release.is_some() || *f != tarball)
            .collect();
        assert_eq!(
            listed, want,
            "{state}: distinfo vs what the framework fetches"
        );
    }
}

#[test]
fn portlint_plist_uses_plist_sub_and_no_pkg_message() {
    let pl = port("pkg-plist");
    for l in pl.lines().filter(|l| !l.starts_with("@comment")) {
        assert!(
            !l.starts_with('/'),
            "{l}: plist paths are relative to PREFIX"
        );
        for bad in [
            "libexec/apache24",
            "etc/apache24",
            "/usr/local",
            "share/examples/mod_dtprovider",
        ] {
            assert!(
                !l.contains(bad),
                "{l}: use %%PLIST_SUB%% variables instead of {bad}"
            );
        }
        assert!(
            !l.contains("pkg-message"),
            "pkg-message is not listed in the plist"
        );
    }
    assert!(pl.contains("@sample %%APACHEETCDIR%%/modules.d/%%APMOD_FILE%%\n"));
    assert!(pl.contains("%%APACHEMODDIR%%/mod_dtprovider.so\n"));
    assert!(
        pl.lines()
            .filter(|l| l.contains("%%EXAMPLESDIR%%"))
            .all(|l| l.starts_with("%%PORTEXAMPLES%%"))
    );
}

#[test]
fn portlint_pkg_message_is_ucl() {
    let pm = port("files/pkg-message.in");
    assert!(pm.starts_with('['), "UCL pkg-message starts with [");
    assert!(pm.trim_end().ends_with(']'));
    assert!(pm.contains("{ type: install\n  message: <<EOM\n"));
    assert_eq!(pm.matches("\nEOM\n").count(), 1);
    assert!(
        !pm.contains("====="),
        "no decorative lines (Porter's Handbook)"
    );
    assert!(pm.contains("dtrace -L %%PREFIX%%/lib/dtrace -s %%EXAMPLESDIR%%/"));
}

#[test]
fn portlint_no_hardcoded_prefix() {
    for f in ["Makefile", "pkg-plist", "files/pkg-message.in"] {
        let t = port(f);
        assert!(
            !t.contains("/usr/local"),
            "{f} hard-codes /usr/local; use ${{PREFIX}} / %%PREFIX%%"
        );
    }
    let conf = port(&format!("files/{}.in", render::apmod_file(&manifest())));
    assert!(conf.contains("## PROVIDE: mod_dtprovider"));
    assert!(conf.contains("#LoadModule dtprovider_module %%APACHEMODDIR%%/mod_dtprovider.so"));
}

#[test]
fn portlint_makefile_crates_format() {
    let mc = port("Makefile.crates");
    let body: Vec<&str> = mc
        .lines()
        .skip_while(|l| l.starts_with('#') || l.is_empty())
        .collect();
    assert!(body[0].starts_with("CARGO_CRATES=\t"));
    for (i, l) in body.iter().enumerate() {
        if i > 0 {
            assert!(
                l.starts_with("\t\t"),
                "continuation lines are indented with two tabs: {l:?}"
            );
        }
        assert_eq!(l.ends_with(" \\"), i + 1 < body.len(), "line {l:?}");
    }
}

// ------------------------------------------------------------------------------ Homebrew

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

// ------------------------------------------------------------------------------ Debian

fn deb_meta() -> toml::Table {
    let c: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    c["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

#[test]
fn debian_metadata_policy_fields() {
    let d = deb_meta();
    assert_eq!(
        d["name"].as_str(),
        Some("libapache2-mod-dtprovider"),
        "libapache2-mod-<name>"
    );
    assert_eq!(d["section"].as_str(), Some("httpd"));
    assert_eq!(
        d["depends"].as_str(),
        Some("$auto, apache2-api-20120211, apache2-bin (>= 2.4.16)")
    );
    let deps = d["depends"].as_str().unwrap();
    assert!(
        !deps.split(',').any(|x| x.trim() == "apache2"),
        "a module must not depend on apache2"
    );
    assert_eq!(
        d["maintainer-scripts"].as_str(),
        Some("debian/maintscripts/")
    );
    assert!(
        d.get("multiarch").is_none(),
        "multiarch would move the module out of usr/lib/apache2/modules"
    );
    let m = d["maintainer"].as_str().unwrap();
    assert!(
        m.contains('<') && m.ends_with('>'),
        "Maintainer is `Name <email>`"
    );
    let assets = d["assets"].as_array().unwrap();
    let find = |dest: &str| {
        assets
            .iter()
            .find(|a| a[1].as_str() == Some(dest))
            .unwrap_or_else(|| panic!("no asset {dest}"))
    };
    let module = find("usr/lib/apache2/modules/mod_dtprovider.so");
    assert_eq!(
        module[0].as_str(),
        Some("target/release/libmod_dtprovider.so"),
        "literal target/release/ prefix"
    );
    assert_eq!(module[2].as_str(), Some("644"), "stock modules are 0644");
    find("etc/apache2/mods-available/dtprovider.load");
    find("usr/lib/dtrace/httpd.d");
}

#[test]
fn debian_load_file_is_only_the_loadmodule_line() {
    assert_eq!(
        read("debian/dtprovider.load"),
        "LoadModule dtprovider_module /usr/lib/apache2/modules/mod_dtprovider.so\n"
    );
}

#[test]
fn debian_maintscripts_use_the_helper() {
    for (script, verb, guard) in [
        ("postinst", "enmod", None),
        (
            "prerm",
            "dismod",
            Some("[ \"$1\" = \"remove\" ] || [ \"$1\" = \"deconfigure\" ]"),
        ),
        ("postrm", "dismod", Some("[ \"$1\" = \"purge\" ]")),
    ] {
        let path = root().join("debian/maintscripts").join(script);
        let t = read(&format!("debian/maintscripts/{script}"));
        assert!(t.starts_with("#!/bin/sh\n"), "{script}: #!/bin/sh");
        assert!(t.contains("\nset -e\n"), "{script}: set -e");
        assert!(
            t.contains("if [ -e /usr/share/apache2/apache2-maintscript-helper ]; then\n"),
            "{script}: source the helper only if it exists"
        );
        assert!(
            t.contains(&format!("apache2_invoke {verb} dtprovider")),
            "{script}: apache2_invoke {verb}"
        );
        let code: String = t
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !code.contains("a2enmod") && !code.contains("a2dismod"),
            "{script}: never call a2enmod/a2dismod directly"
        );
        assert!(
            !code.contains("#DEBHELPER#"),
            "{script}: cargo-deb does not substitute #DEBHELPER#"
        );
        if let Some(g) = guard {
            assert!(t.contains(g), "{script}: runs only for {g}");
        }
        use std::os::unix::fs::PermissionsExt;
        assert!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o111 != 0,
            "{script} is executable"
        );
        run(Command::new("sh").arg("-n").arg(&path), "sh -n");
    }
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
