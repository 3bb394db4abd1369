//! The FreeBSD port: Makefile, Makefile.crates, distinfo, pkg-descr, pkg-plist, files/*.in.

use std::fmt::Write as _;

use super::{
    Inputs, Install, apmod_file, common_installs, freebsd_dir, header, snippet_header,
    wrap_paragraphs,
};

/// A pkg-plist path (`%%APACHEMODDIR%%/x`, `%%EXAMPLESDIR%%/x`, `lib/dtrace/x`) as the
/// Makefile's staged destination.
pub fn freebsd_stage_path(plist_dir: &str, name: &str) -> String {
    if let Some(rest) = plist_dir.strip_prefix("%%EXAMPLESDIR%%") {
        return format!("${{STAGEDIR}}${{EXAMPLESDIR}}{rest}/{name}");
    }
    let mut d = plist_dir.to_string();
    while let Some(start) = d.find("%%") {
        let Some(len) = d[start + 2..].find("%%") else {
            break;
        };
        let var = d[start + 2..start + 2 + len].to_string();
        d.replace_range(start..start + 4 + len, &format!("${{{var}}}"));
    }
    format!("${{STAGEDIR}}${{PREFIX}}/{d}/{name}")
}

pub fn freebsd(i: &Inputs) -> Vec<(String, String)> {
    let m = i.m;
    let dir = freebsd_dir(m);
    let l = &m.freebsd;
    let installs = common_installs(m, l);
    let apmod = apmod_file(m);
    let mut files = Vec::new();

    let mut mk = String::new();
    write!(mk, "{}", header("# ")).unwrap();
    writeln!(
        mk,
        "# The same holds for Makefile.crates, distinfo, pkg-descr, pkg-plist and files/*.in.\n\
         # distinfo has the release tarball once its version is released (packaging/release.toml).\n"
    )
    .unwrap();
    writeln!(mk, "PORTNAME=\t{}", m.freebsd_portname).unwrap();
    writeln!(mk, "DISTVERSION=\t{}", m.version).unwrap();
    writeln!(mk, "CATEGORIES=\t{}", m.freebsd_category).unwrap();
    writeln!(
        mk,
        "MASTER_SITES=\t{}",
        m.release_url.replace("{version}", "${DISTVERSION}")
    )
    .unwrap();
    writeln!(mk, "PKGNAMEPREFIX=\t${{APACHE_PKGNAMEPREFIX}}").unwrap();
    if m.name != m.freebsd_portname {
        writeln!(mk, "DISTNAME=\t{}-${{DISTVERSION}}", m.name).unwrap();
    }
    // USES=cargo appends the crates to DISTFILES, so the default (the distfile alone) never
    // applies: the release tarball must be named here or it is never fetched.
    writeln!(mk, "DISTFILES=\t${{DISTNAME}}${{EXTRACT_SUFX}}").unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "MAINTAINER=\t{}", m.freebsd_maintainer).unwrap();
    writeln!(mk, "COMMENT=\t{}", m.summary).unwrap();
    writeln!(mk, "WWW=\t\t{}", m.homepage).unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "LICENSE=\t{}", m.license_freebsd).unwrap();
    writeln!(mk, "LICENSE_FILE=\t${{WRKSRC}}/{}", m.license_file).unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "ONLY_FOR_ARCHS=\t\t{}",
        m.freebsd_only_for_archs.join(" ")
    )
    .unwrap();
    writeln!(
        mk,
        "ONLY_FOR_ARCHS_REASON=\tthe module and httpd.d are 64-bit only"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "BUILD_DEPENDS=\tllvm${{LLVM_DEFAULT}}>0:devel/llvm${{LLVM_DEFAULT}}"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "USES=\t\tapache:2.4+ cargo").unwrap();
    writeln!(mk).unwrap();
    writeln!(
        mk,
        "# bindgen needs libclang; dtprovider-sys/build.rs asks apxs for Apache's headers."
    )
    .unwrap();
    writeln!(mk, "MAKE_ENV+=\tAPXS=${{APXS}} \\").unwrap();
    writeln!(
        mk,
        "\t\tLIBCLANG_PATH=${{LOCALBASE}}/llvm${{LLVM_DEFAULT}}/lib"
    )
    .unwrap();
    writeln!(
        mk,
        "# cargo install cannot install a cdylib; the tests need a running Apache."
    )
    .unwrap();
    writeln!(mk, "CARGO_INSTALL=\tno").unwrap();
    writeln!(mk, "CARGO_TEST=\tno").unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "SUB_FILES=\t${{APMOD_FILE}} pkg-message").unwrap();
    writeln!(mk, "APMOD_FILE=\t{apmod}").unwrap();
    writeln!(mk, "PLIST_SUB+=\tAPMOD_FILE=${{APMOD_FILE}}").unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "OPTIONS_DEFINE=\tEXAMPLES").unwrap();
    writeln!(mk).unwrap();

    let (examples, rest): (Vec<&Install>, Vec<&Install>) =
        installs.iter().partition(|i| i.dir == l.examples_dir);
    let mut mkdirs: Vec<String> = Vec::new();
    for inst in &rest {
        let p = freebsd_stage_path(&inst.dir, "");
        let p = p.trim_end_matches('/').to_string();
        if !mkdirs.contains(&p) {
            mkdirs.push(p);
        }
    }
    mkdirs.push("${STAGEDIR}${PREFIX}/${APACHEETCDIR}/modules.d".into());
    writeln!(mk, "do-install:").unwrap();
    writeln!(mk, "\t@${{MKDIR}} {}", mkdirs.join(" \\\n\t    ")).unwrap();
    for inst in &rest {
        let dest = freebsd_stage_path(&inst.dir, &inst.name);
        match &inst.source {
            None => writeln!(
                mk,
                "\t${{INSTALL_LIB}} ${{CARGO_TARGET_DIR}}/${{CARGO_BUILD_TARGET}}/release/{}.so \\\n\t    {dest}",
                m.module_artifact
            )
            .unwrap(),
            Some(src) => writeln!(mk, "\t${{INSTALL_DATA}} ${{WRKSRC}}/{src} \\\n\t    {dest}").unwrap(),
        }
    }
    writeln!(
        mk,
        "\t${{INSTALL_DATA}} ${{WRKDIR}}/${{APMOD_FILE}} \\\n\t    ${{STAGEDIR}}${{PREFIX}}/${{APACHEETCDIR}}/modules.d/${{APMOD_FILE}}"
    )
    .unwrap();
    writeln!(mk).unwrap();
    writeln!(mk, "do-install-EXAMPLES-on:").unwrap();
    writeln!(
        mk,
        "\t@${{MKDIR}} {}",
        freebsd_stage_path(&l.examples_dir, "").trim_end_matches('/')
    )
    .unwrap();
    for inst in &examples {
        let src = inst.source.as_deref().unwrap_or_default();
        writeln!(
            mk,
            "\t${{INSTALL_DATA}} ${{WRKSRC}}/{src} \\\n\t    {}",
            freebsd_stage_path(&inst.dir, &inst.name)
        )
        .unwrap();
    }
    writeln!(mk).unwrap();
    writeln!(mk, ".include <bsd.port.mk>").unwrap();
    files.push((format!("{dir}/Makefile"), mk));

    // Makefile.crates, as `make cargo-crates` writes it
    let mut mc = format!("{}\n", header("# "));
    let n = i.crates.len();
    for (k, (c, _)) in i.crates.iter().enumerate() {
        let lead = if k == 0 { "CARGO_CRATES=\t" } else { "\t\t" };
        let tail = if k + 1 < n { " \\" } else { "" };
        writeln!(mc, "{lead}{}{tail}", c.id()).unwrap();
    }
    files.push((format!("{dir}/Makefile.crates"), mc));

    // distinfo: TIMESTAMP, then SHA256/SIZE for the distfile and each crate (DISTFILES order)
    let mut di = format!("TIMESTAMP = {}\n", m.release_epoch);
    let t = m.tarball_name();
    if let Some(d) = i.tarball {
        writeln!(di, "SHA256 ({t}) = {}", d.sha256).unwrap();
        writeln!(di, "SIZE ({t}) = {}", d.size).unwrap();
    }
    for (c, d) in i.crates {
        let f = format!("rust/crates/{}", c.file_name());
        writeln!(di, "SHA256 ({f}) = {}", d.sha256).unwrap();
        writeln!(di, "SIZE ({f}) = {}", d.size).unwrap();
    }
    files.push((format!("{dir}/distinfo"), di));

    files.push((format!("{dir}/pkg-descr"), wrap_paragraphs(&m.description)));

    // pkg-plist
    let mut pl = header("@comment ");
    writeln!(pl, "@sample %%APACHEETCDIR%%/modules.d/%%APMOD_FILE%%").unwrap();
    for inst in &installs {
        let ex = if inst.dir == l.examples_dir {
            "%%PORTEXAMPLES%%"
        } else {
            ""
        };
        writeln!(pl, "{ex}{}/{}", inst.dir, inst.name).unwrap();
    }
    files.push((format!("{dir}/pkg-plist"), pl));

    // files/pkg-message.in (UCL). It is in SUB_FILES, so it lives in files/ and SUB_LIST
    // substitutes %%PREFIX%%, %%EXAMPLESDIR%% and %%APACHEETCDIR%% into ${WRKDIR}/pkg-message.
    let conf = apmod.trim_end_matches(".sample");
    let mut pm = String::from("[\n");
    write!(pm, "{}", header("# ")).unwrap();
    writeln!(pm, "{{ type: install").unwrap();
    writeln!(pm, "  message: <<EOM").unwrap();
    writeln!(
        pm,
        "To load the httpd DTrace provider, uncomment the LoadModule line in"
    )
    .unwrap();
    writeln!(
        pm,
        "%%PREFIX%%/%%APACHEETCDIR%%/modules.d/{conf} and restart Apache:\n"
    )
    .unwrap();
    writeln!(pm, "  service apache24 restart\n").unwrap();
    writeln!(
        pm,
        "dtrace(1) looks for D libraries only in /usr/lib/dtrace, so tell it where"
    )
    .unwrap();
    writeln!(pm, "httpd.d is with -L, for example:\n").unwrap();
    writeln!(
        pm,
        "  dtrace -L %%PREFIX%%/{} -s %%EXAMPLESDIR%%/{}\n",
        l.dtrace_dir,
        m.message_example_name()
    )
    .unwrap();
    writeln!(
        pm,
        "The D and bpftrace example scripts are in %%EXAMPLESDIR%%"
    )
    .unwrap();
    writeln!(pm, "(with the EXAMPLES option, the default).").unwrap();
    writeln!(pm, "EOM").unwrap();
    writeln!(pm, "}}").unwrap();
    writeln!(pm, "]").unwrap();
    files.push((format!("{dir}/files/pkg-message.in"), pm));

    // files/NNN_mod_dtprovider.conf.sample.in (modules.d snippet, off until uncommented)
    let mut sn = String::new();
    writeln!(sn, "## PROVIDE: {}", m.freebsd_portname).unwrap();
    writeln!(sn, "## REQUIRE:").unwrap();
    writeln!(sn, "#").unwrap();
    write!(sn, "{}", snippet_header("# ")).unwrap();
    writeln!(sn, "#").unwrap();
    writeln!(
        sn,
        "# {}: the httpd DTrace provider (probes request-start, request-done).",
        m.freebsd_portname
    )
    .unwrap();
    writeln!(
        sn,
        "# Uncomment the LoadModule line and restart Apache to load it; trace with"
    )
    .unwrap();
    writeln!(
        sn,
        "#   dtrace -L %%PREFIX%%/{} -s %%EXAMPLESDIR%%/{}",
        l.dtrace_dir,
        m.message_example_name()
    )
    .unwrap();
    writeln!(sn).unwrap();
    writeln!(
        sn,
        "#LoadModule {} %%APACHEMODDIR%%/{}",
        m.module_symbol, m.module_file
    )
    .unwrap();
    files.push((format!("{dir}/files/{apmod}.in"), sn));
    files
}
