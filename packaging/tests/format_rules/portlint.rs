//! The portlint rules (the packaging conventions reference, §2.4, §6.2) on the committed FreeBSD
//! port: its Makefile, Makefile.crates, pkg-plist, pkg-descr, distinfo and files/, and the
//! DISTFILES the framework would fetch, evaluated with bmake and the framework stub.

use super::{port, summary_problems};
use crate::common::*;
use packaging::render;

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
    let pos = header_positions(&order, &want);
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
