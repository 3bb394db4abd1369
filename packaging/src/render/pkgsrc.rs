//! pkgsrc: Makefile, DESCR, PLIST, cargo-depends.mk, distinfo, and files/: the LoadModule
//! snippet (installed as an example, copied next to httpd.conf by CONF_FILES) and
//! README.pkgsrc (installed under the package's doc directory: what MESSAGE said before
//! pkglint made MESSAGE files obsolete).

use std::fmt::Write as _;

use super::{
    Inputs, Install, common_installs, header, pkgsrc_dir, snippet_header, wrap_paragraphs,
};
use crate::crates::Digests;

// pkgsrc

pub fn pkgsrc(i: &Inputs) -> Vec<(String, String)> {
    let m = i.m;
    let dir = pkgsrc_dir(m);
    let l = &m.pkgsrc;
    let snippet = m.snippet_name();
    let mut installs = common_installs(m, l);
    // Copied into WRKSRC from files/ by post-extract, paths filled in by SUBST.
    installs.push(Install {
        source: Some(snippet.clone()),
        dir: l.examples_dir.clone(),
        name: snippet.clone(),
    });
    installs.push(Install {
        source: Some(README.into()),
        dir: m.pkgsrc_doc_dir.clone(),
        name: README.into(),
    });
    let mut files = Vec::new();

    // Makefile
    let mut mk = String::new();
    writeln!(mk, "# $NetBSD$").unwrap();
    writeln!(mk, "#").unwrap();
    write!(mk, "{}", header("# ")).unwrap();
    writeln!(
        mk,
        "# The same holds for DESCR, PLIST, distinfo, cargo-depends.mk and files/*.\n\
         # distinfo has the release tarball once its version is released (packaging/release.toml)."
    )
    .unwrap();
    writeln!(mk).unwrap();
    let gh = github_owner_repo(&m.release_url);
    writeln!(mk, "DISTNAME=\t{}", m.distname()).unwrap();
    writeln!(
        mk,
        "PKGNAME=\t${{APACHE_PKG_PREFIX}}-${{DISTNAME:S/mod_//}}"
    )
    .unwrap();
    writeln!(mk, "CATEGORIES=\t{}", m.pkgsrc_category).unwrap();
    match &gh {
        Some((owner, repo)) => {
            writeln!(mk, "MASTER_SITES=\t${{MASTER_SITE_GITHUB:={owner}/}}").unwrap();
            writeln!(mk, "GITHUB_PROJECT=\t{repo}").unwrap();
            writeln!(mk, "GITHUB_RELEASE=\tv${{PKGVERSION_NOREV}}").unwrap();
        }
        None => {
            writeln!(
                mk,
                "MASTER_SITES=\t{}",
                m.release_url.replace("{version}", "${PKGVERSION_NOREV}")
            )
            .unwrap();
        }
    }
    writeln!(mk).unwrap();
    writeln!(mk, "MAINTAINER=\t{}", m.pkgsrc_maintainer).unwrap();
    writeln!(mk, "HOMEPAGE=\t{}", m.homepage).unwrap();
    writeln!(mk, "COMMENT=\t{}", m.summary).unwrap();
    writeln!(mk, "LICENSE=\t{}", m.license_pkgsrc).unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "# The module is written against the Apache 2.4 module API (magic number 20120211)."
    )
    .unwrap();
    writeln!(mk, "PKG_APACHE_ACCEPTED=\tapache24").unwrap();
    writeln!(mk, "APACHE_MODULE=\t\tyes").unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "# bindgen (a build dependency) needs libclang; dtprovider-sys/build.rs asks apxs for the headers."
    )
    .unwrap();
    writeln!(mk, "TOOL_DEPENDS+=\t\tclang-[0-9]*:../../lang/clang").unwrap();
    writeln!(mk, "MAKE_ENV+=\t\tAPXS=${{APXS:Q}}").unwrap();
    writeln!(mk, "MAKE_ENV+=\t\tLIBCLANG_PATH=${{PREFIX}}/lib").unwrap();
    writeln!(mk).unwrap();
    let mut dirs: Vec<&str> = Vec::new();
    for d in [
        &l.module_dir,
        &l.dtrace_dir,
        &l.examples_dir,
        &m.pkgsrc_doc_dir,
    ] {
        if !dirs.contains(&d.as_str()) {
            dirs.push(d);
        }
    }
    writeln!(mk, "INSTALLATION_DIRS+=\t{}", dirs.join(" ")).unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "# The LoadModule snippet is installed as an example and copied next to httpd.conf,"
    )
    .unwrap();
    writeln!(
        mk,
        "# which has no drop-in directory: README.pkgsrc says which Include line to add."
    )
    .unwrap();
    writeln!(mk, "PKG_SYSCONFSUBDIR=\t{}", m.pkgsrc_sysconf_subdir).unwrap();
    writeln!(mk, "EGDIR=\t\t\t${{PREFIX}}/{}", l.examples_dir).unwrap();
    writeln!(
        mk,
        "CONF_FILES=\t\t${{EGDIR}}/{snippet} ${{PKG_SYSCONFDIR}}/{snippet}"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "SUBST_CLASSES+=\t\tpaths").unwrap();
    writeln!(mk, "SUBST_STAGE.paths=\tpre-configure").unwrap();
    writeln!(
        mk,
        "SUBST_MESSAGE.paths=\tFilling in the installation paths."
    )
    .unwrap();
    writeln!(mk, "SUBST_FILES.paths=\t{snippet} {README}").unwrap();
    writeln!(mk, "SUBST_VARS.paths=\tPREFIX PKG_SYSCONFDIR PKGBASE").unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "# cargo names the module {}.dylib on Darwin, {}.so elsewhere.",
        m.module_artifact, m.module_artifact
    )
    .unwrap();
    writeln!(
        mk,
        "MODULE_SUFFIX=\t\t${{\"${{OPSYS}}\" == \"Darwin\":?dylib:so}}"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, ".include \"cargo-depends.mk\"").unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "post-extract:").unwrap();
    writeln!(
        mk,
        "\t${{CP}} ${{FILESDIR}}/{snippet} ${{FILESDIR}}/{README} ${{WRKSRC}}/"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "do-install:").unwrap();
    for inst in &installs {
        let dest = format!("${{DESTDIR}}${{PREFIX}}/{}/{}", inst.dir, inst.name);
        match &inst.source {
            None => writeln!(
                mk,
                "\t${{INSTALL_LIB}} ${{WRKSRC}}/target/release/{}.${{MODULE_SUFFIX}} \\\n\t    {dest}",
                m.module_artifact
            )
            .unwrap(),
            Some(src) => writeln!(mk, "\t${{INSTALL_DATA}} ${{WRKSRC}}/{src} \\\n\t    {dest}").unwrap(),
        }
    }
    writeln!(mk).unwrap();
    writeln!(mk, ".include \"../../lang/rust/cargo.mk\"").unwrap();
    writeln!(mk, ".include \"../../mk/apache.mk\"").unwrap();
    writeln!(mk, ".include \"../../mk/bsd.pkg.mk\"").unwrap();
    files.push((format!("{dir}/Makefile"), mk));

    // DESCR (plain text: no comment syntax, see the Makefile's header)
    files.push((format!("{dir}/DESCR"), wrap_paragraphs(&m.description)));

    // PLIST
    let mut plist = String::from("@comment $NetBSD$\n");
    write!(plist, "{}", header("@comment ")).unwrap();
    let mut entries: Vec<String> = installs
        .iter()
        .map(|i| format!("{}/{}", i.dir, i.name))
        .collect();
    entries.sort();
    for e in entries {
        writeln!(plist, "{e}").unwrap();
    }
    files.push((format!("{dir}/PLIST"), plist));

    // files/: the snippet and README.pkgsrc, with @VAR@ for SUBST_VARS
    let p = "@PREFIX@";
    let ex = format!("{p}/{}", l.examples_dir.replace("${PKGBASE}", "@PKGBASE@"));
    let doc = format!(
        "{p}/{}",
        m.pkgsrc_doc_dir.replace("${PKGBASE}", "@PKGBASE@")
    );
    let load = format!(
        "LoadModule {} {p}/{}/{}",
        m.module_symbol, l.module_dir, m.module_file
    );
    let include = format!("Include @PKG_SYSCONFDIR@/{snippet}");
    let mut sn = snippet_header("# ");
    writeln!(sn, "#").unwrap();
    writeln!(
        sn,
        "# Loads mod_dtprovider, the httpd DTrace provider (probes request-start and"
    )
    .unwrap();
    writeln!(
        sn,
        "# request-done). To use it, add this line to @PKG_SYSCONFDIR@/httpd.conf and"
    )
    .unwrap();
    writeln!(sn, "# restart Apache (see {doc}/{README}):").unwrap();
    writeln!(sn, "#   {include}").unwrap();
    writeln!(sn).unwrap();
    writeln!(sn, "{load}").unwrap();
    files.push((format!("{dir}/files/{snippet}"), sn));

    let title = format!("{} for pkgsrc", m.name);
    let mut rd = format!("{title}\n{}\n\n", "=".repeat(title.len()));
    writeln!(
        rd,
        "To load the httpd DTrace provider, add this line to Apache's configuration,"
    )
    .unwrap();
    writeln!(rd, "@PKG_SYSCONFDIR@/httpd.conf, and restart Apache:\n").unwrap();
    writeln!(rd, "\t{include}\n").unwrap();
    writeln!(rd, "That file was copied from\n\n\t{ex}/{snippet}\n").unwrap();
    writeln!(
        rd,
        "when the package was installed, is kept (with your changes) on updates, and"
    )
    .unwrap();
    writeln!(rd, "holds the LoadModule line:\n").unwrap();
    writeln!(rd, "\t{load}\n").unwrap();
    writeln!(
        rd,
        "dtrace(1) looks for D libraries only in /usr/lib/dtrace, so tell it where"
    )
    .unwrap();
    writeln!(rd, "httpd.d is with -L, for example:\n").unwrap();
    writeln!(
        rd,
        "\tdtrace -L {p}/{} -s {ex}/{}\n",
        l.dtrace_dir,
        m.message_example_name()
    )
    .unwrap();
    writeln!(rd, "The D and bpftrace example scripts are in {ex}.").unwrap();
    files.push((format!("{dir}/files/{README}"), rd));

    // cargo-depends.mk, as `make print-cargo-depends` writes it
    let mut cd = String::from("# $NetBSD$\n");
    writeln!(cd, "{}", header("# ")).unwrap();
    for (c, _) in i.crates {
        writeln!(cd, "CARGO_CRATE_DEPENDS+=\t{}", c.id()).unwrap();
    }
    files.push((format!("{dir}/cargo-depends.mk"), cd));

    // distinfo: BLAKE2s, SHA512, Size for every distfile, sorted by file name
    let mut dist: Vec<(String, &Digests)> = i
        .tarball
        .map(|d| (m.tarball_name(), d))
        .into_iter()
        .collect();
    for (c, d) in i.crates {
        dist.push((c.file_name(), d));
    }
    dist.sort_by(|a, b| a.0.cmp(&b.0));
    let mut di = String::from("$NetBSD$\n\n");
    for (name, d) in dist {
        writeln!(di, "BLAKE2s ({name}) = {}", d.blake2s).unwrap();
        writeln!(di, "SHA512 ({name}) = {}", d.sha512).unwrap();
        writeln!(di, "Size ({name}) = {} bytes", d.size).unwrap();
    }
    files.push((format!("{dir}/distinfo"), di));
    files
}

/// The installed README's name (files/README.pkgsrc -> share/doc/${PKGBASE}/README.pkgsrc).
pub const README: &str = "README.pkgsrc";

/// ("owner", "repo") of a https://github.com/<owner>/<repo>/releases/download/... URL.
pub fn github_owner_repo(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://github.com/")?;
    let mut parts = rest.split('/');
    let owner = parts.next()?.to_string();
    let repo = parts.next()?.to_string();
    (parts.next()? == "releases").then_some((owner, repo))
}
