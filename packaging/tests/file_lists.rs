//! Every recipe lists the same set of files, and each recipe's own install steps, run with its
//! variables set against a staging directory, put exactly its listed files there.
//!
//! pkgsrc and FreeBSD Makefiles run under bmake with a stub framework (the few variables and
//! targets the real mk/bsd.pkg.mk and Mk/bsd.port.mk provide); the formula's `install` runs
//! under a stub of Homebrew's Formula DSL (tests/support/brew_stub.rb).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use packaging::render;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Module,
    DLibrary,
    Example,
    Extra(String),
}

/// The set every recipe must install: the module, httpd.d and exactly the example scripts git
/// tracks under examples/.
fn expected() -> BTreeSet<(Kind, String)> {
    let mut s = BTreeSet::new();
    s.insert((Kind::Module, "mod_dtprovider.so".to_string()));
    s.insert((Kind::DLibrary, "httpd.d".to_string()));
    for e in tracked_examples() {
        s.insert((Kind::Example, e));
    }
    s
}

/// Classifies `path` by the directory each ecosystem's conventions put things in
/// (the packaging conventions reference, §6), not by the manifest.
fn classify(path: &str, dirs: [&str; 3]) -> (Kind, String) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let kind = if name.ends_with(".conf") {
        Kind::Extra(path.to_string()) // a LoadModule snippet
    } else if dir == dirs[0] {
        Kind::Module
    } else if dir == dirs[1] {
        Kind::DLibrary
    } else if dir == dirs[2] {
        Kind::Example
    } else {
        Kind::Extra(path.to_string())
    };
    (kind, name.to_string())
}

const PKGSRC_DIRS: [&str; 3] = ["lib/httpd", "lib/dtrace", "share/examples/${PKGBASE}"];
const FREEBSD_DIRS: [&str; 3] = ["%%APACHEMODDIR%%", "lib/dtrace", "%%EXAMPLESDIR%%"];
const BREW_DIRS: [&str; 3] = [
    "lib/httpd/modules",
    "lib/dtrace",
    "share/mod_dtprovider/examples",
];
const DEB_DIRS: [&str; 3] = [
    "usr/lib/apache2/modules",
    "usr/lib/dtrace",
    "usr/share/doc/libapache2-mod-dtprovider/examples",
];

fn split(entries: Vec<(Kind, String)>) -> (BTreeSet<(Kind, String)>, BTreeSet<String>) {
    let mut common = BTreeSet::new();
    let mut extra = BTreeSet::new();
    for (k, n) in entries {
        match k {
            Kind::Extra(p) => {
                extra.insert(p);
            }
            k => assert!(common.insert((k, n.clone())), "{n} listed twice"),
        }
    }
    (common, extra)
}

fn pkgsrc_list() -> Vec<String> {
    read(&format!("{}/PLIST", render::pkgsrc_dir(&manifest())))
        .lines()
        .filter(|l| !l.starts_with('@'))
        .map(str::to_string)
        .collect()
}

fn freebsd_list() -> Vec<String> {
    read(&format!("{}/pkg-plist", render::freebsd_dir(&manifest())))
        .lines()
        .filter(|l| !l.starts_with("@comment"))
        .map(|l| {
            l.trim_start_matches("@sample ")
                .trim_start_matches("%%PORTEXAMPLES%%")
                .to_string()
        })
        .collect()
}

/// The formula's install block, read statically: `(dir).install "src" [=> "name"]` and
/// `(dir).install %w[...]`.
fn formula_list() -> Vec<String> {
    let f = read(&render::formula_path(&manifest()));
    let body = &f[f.find("  def install").unwrap()..];
    let body = &body[..body.find("\n  end\n").unwrap()];
    let keg_dir = |expr: &str| -> String {
        let e = expr.trim().trim_start_matches('(').trim_end_matches(')');
        let (base, sub) = e
            .split_once('/')
            .map(|(b, s)| (b, s.trim_matches('"')))
            .unwrap_or((e, ""));
        let base = match base {
            "pkgshare" => "share/mod_dtprovider".to_string(),
            b => b.to_string(),
        };
        if sub.is_empty() {
            base
        } else {
            format!("{base}/{sub}")
        }
    };
    let mut out = Vec::new();
    let mut in_words: Option<String> = None;
    for l in body.lines() {
        if let Some(dir) = &in_words {
            if l.trim() == "]" {
                in_words = None;
            } else {
                out.push(format!("{dir}/{}", l.trim().rsplit('/').next().unwrap()));
            }
            continue;
        }
        let Some((target, args)) = l.split_once(".install ") else {
            continue;
        };
        let dir = keg_dir(target);
        if args.trim() == "%w[" {
            in_words = Some(dir);
        } else if let Some((_, name)) = args.split_once("=> ") {
            out.push(format!("{dir}/{}", name.trim().trim_matches('"')));
        } else {
            out.push(format!(
                "{dir}/{}",
                args.trim().trim_matches('"').rsplit('/').next().unwrap()
            ));
        }
    }
    out
}

fn deb_list() -> Vec<String> {
    let c: toml::Table = read("Cargo.toml").parse().unwrap();
    c["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let src = a[0].as_str().unwrap();
            let dest = a[1].as_str().unwrap();
            if src != "target/release/libmod_dtprovider.so" {
                assert!(
                    root().join(src).is_file() || generated().files.contains_key(src),
                    "deb asset {src} does not exist"
                );
            }
            if dest.ends_with('/') {
                format!("{dest}{}", src.rsplit('/').next().unwrap())
            } else {
                dest.to_string()
            }
        })
        .collect()
}

#[test]
fn all_recipes_list_the_same_files() {
    let want = expected();
    type Case = (&'static str, Vec<String>, [&'static str; 3], Vec<String>);
    let cases: Vec<Case> = vec![
        (
            "pkgsrc PLIST",
            pkgsrc_list(),
            PKGSRC_DIRS,
            vec![
                "share/doc/${PKGBASE}/README.pkgsrc".into(),
                "share/examples/${PKGBASE}/dtprovider.conf".into(),
            ],
        ),
        (
            "FreeBSD pkg-plist",
            freebsd_list(),
            FREEBSD_DIRS,
            vec!["%%APACHEETCDIR%%/modules.d/%%APMOD_FILE%%".into()],
        ),
        (
            "Homebrew install block",
            formula_list(),
            BREW_DIRS,
            vec!["etc/httpd/extra/dtprovider.conf".into()],
        ),
        (
            "deb assets",
            deb_list(),
            DEB_DIRS,
            vec![
                "etc/apache2/mods-available/dtprovider.load".into(),
                "usr/share/doc/libapache2-mod-dtprovider/README.Debian".into(),
            ],
        ),
    ];
    for (what, list, dirs, extras) in cases {
        let (common, extra) = split(list.iter().map(|p| classify(p, dirs)).collect());
        assert_eq!(
            common, want,
            "{what} does not install exactly the module, httpd.d and the tracked examples"
        );
        let extras: BTreeSet<String> = extras.into_iter().collect();
        assert_eq!(extra, extras, "{what}: unexpected extra files");
    }
}

// ------------------------------------------------------------------------------ staging

#[test]
fn pkgsrc_install_stages_exactly_the_plist() {
    if !require(
        which("bmake").is_some(),
        "bmake is not installed (apt-get install bmake)",
        "pkgsrc staging",
    ) {
        return;
    }
    let m = manifest();
    let (tmp, src) = unpacked_with_fake_module("pkgsrc");

    let stage = tmp.path().join("stage");
    let prefix = "/opt/local";
    let (pkgdir, vars) = pkgsrc_install(tmp.path(), &src, &stage.display().to_string(), prefix);

    let pkgbase = bmake_out(&["-v", "PKGBASE"], &pkgdir, &vars)
        .trim()
        .to_string();
    assert_eq!(pkgbase, "ap24-dtprovider", "binary package name");
    assert_eq!(pkgbase, m.pkgsrc_package);
    let darwin = bmake_out(&["-v", "MODULE_SUFFIX"], &pkgdir, &["OPSYS=Darwin".into()]);
    assert_eq!(
        darwin.trim(),
        "dylib",
        "cargo's artifact on Darwin is a .dylib"
    );
    assert!(
        bmake_out(&["-v", "CARGO_CRATE_DEPENDS"], &pkgdir, &vars).contains("libc-"),
        "cargo-depends.mk is included"
    );

    let staged = files_under(&stage.join(prefix.trim_start_matches('/')));
    let mut plist: Vec<String> = pkgsrc_list()
        .iter()
        .map(|l| l.replace("${PKGBASE}", &pkgbase))
        .collect();
    plist.sort();
    assert_eq!(staged, plist, "do-install vs PLIST");
    let module = std::fs::read(stage.join("opt/local/lib/httpd/mod_dtprovider.so")).unwrap();
    assert!(
        module.starts_with(b"\x7fELF fake module"),
        "the module comes from target/release"
    );

    // README.pkgsrc with its paths filled in: every path it shows is installed, and the
    // Include line it gives names the file CONF_FILES copies the snippet to.
    let doc =
        std::fs::read_to_string(stage.join(format!("opt/local/share/doc/{pkgbase}/README.pkgsrc")))
            .unwrap();
    assert!(
        !doc.contains('@'),
        "unsubstituted variable in README.pkgsrc:\n{doc}"
    );
    let shown = doc.lines().find(|l| l.contains("dtrace -L")).unwrap();
    let example = shown.split_whitespace().last().unwrap();
    assert!(
        stage.join(example.trim_start_matches('/')).is_file(),
        "README.pkgsrc shows {example}, which is not installed"
    );
    let l = shown.split_whitespace().nth(2).unwrap();
    assert!(
        stage
            .join(l.trim_start_matches('/'))
            .join("httpd.d")
            .is_file(),
        "-L {l} has no httpd.d"
    );
    let include = doc
        .lines()
        .find_map(|l| l.trim().strip_prefix("Include "))
        .expect("README.pkgsrc gives the Include line");
    assert_eq!(include, "/opt/local/etc/httpd/dtprovider.conf");
    let example_conf = stage.join(format!(
        "opt/local/share/examples/{pkgbase}/dtprovider.conf"
    ));
    let snippet = std::fs::read_to_string(&example_conf).unwrap();
    assert!(
        !snippet.contains('@'),
        "unsubstituted variable in the snippet:\n{snippet}"
    );
    assert!(
        snippet
            .lines()
            .any(|l| l == "LoadModule dtprovider_module /opt/local/lib/httpd/mod_dtprovider.so"),
        "{snippet}"
    );
    assert!(
        snippet.contains(&format!("#   Include {include}\n")),
        "{snippet}"
    );

    // CONF_FILES, as pkginstall applies it: copied once, then left as the admin made it.
    bmake_out(&["stub-conf-files"], &pkgdir, &vars);
    let conf = stage.join(include.trim_start_matches('/'));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), snippet);
    std::fs::write(&conf, "# edited by the admin\n").unwrap();
    bmake_out(&["stub-conf-files"], &pkgdir, &vars);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "# edited by the admin\n"
    );
}

#[test]
fn freebsd_install_stages_exactly_the_pkg_plist() {
    if !require(
        which("bmake").is_some(),
        "bmake is not installed (apt-get install bmake)",
        "FreeBSD staging",
    ) {
        return;
    }
    let m = manifest();
    let tmp = TempDir::new("port");
    let (_, src) = dist_and_unpack(tmp.path());
    let wrk = tmp.path().join("wrk");
    fake_module(
        &wrk,
        "target/x86_64-unknown-freebsd/release/libmod_dtprovider.so",
    );

    let mk = support("freebsd");
    let portdir = write_port(tmp.path(), "committed");
    let stage = tmp.path().join("stage");
    let prefix = "/usr/local";
    let vars = vec![
        format!("STAGEDIR={}", stage.display()),
        format!("PREFIX={prefix}"),
        format!("WRKSRC={}", src.display()),
        format!("WRKDIR={}", wrk.display()),
    ];
    let mkdir = mk.display().to_string();
    bmake_out(
        &[
            "-m",
            &mkdir,
            "stub-sub-files",
            "do-install",
            "do-install-EXAMPLES-on",
        ],
        &portdir,
        &vars,
    );

    let pkgname = bmake_out(&["-m", &mkdir, "-v", "PKGNAME"], &portdir, &vars);
    assert_eq!(
        pkgname.trim(),
        format!("ap24-mod_dtprovider-{}", m.version),
        "package name"
    );
    assert!(
        pkgname
            .trim()
            .starts_with(&format!("{}-", m.freebsd_package))
    );
    assert!(bmake_out(&["-m", &mkdir, "-v", "CARGO_INSTALL"], &portdir, &vars).trim() == "no");

    let apmod = render::apmod_file(&m);
    let mut plist: Vec<String> = freebsd_list()
        .iter()
        .map(|l| {
            l.replace("%%APACHEMODDIR%%", "libexec/apache24")
                .replace("%%APACHEETCDIR%%", "etc/apache24")
                .replace("%%APMOD_FILE%%", &apmod)
                .replace(
                    "%%EXAMPLESDIR%%",
                    &format!("share/examples/{}", m.freebsd_portname),
                )
        })
        .collect();
    plist.sort();
    let staged = files_under(&stage.join(prefix.trim_start_matches('/')));
    assert_eq!(
        staged, plist,
        "do-install + do-install-EXAMPLES-on vs pkg-plist"
    );

    // The substituted snippet and message point at installed files.
    let conf = std::fs::read_to_string(stage.join("usr/local/etc/apache24/modules.d").join(&apmod))
        .unwrap();
    assert!(
        conf.contains("\n#LoadModule dtprovider_module libexec/apache24/mod_dtprovider.so\n"),
        "{conf}"
    );
    assert!(
        !conf.contains("%%"),
        "unsubstituted variable in {apmod}:\n{conf}"
    );
    let msg = std::fs::read_to_string(wrk.join("pkg-message")).unwrap();
    assert!(
        !msg.contains("%%"),
        "unsubstituted variable in pkg-message:\n{msg}"
    );
    let shown = msg.lines().find(|l| l.contains("dtrace -L")).unwrap();
    let example = shown.split_whitespace().last().unwrap();
    assert!(
        stage.join(example.trim_start_matches('/')).is_file(),
        "pkg-message shows {example}, not installed"
    );
    let l = shown.split_whitespace().nth(2).unwrap();
    assert_eq!(l, "/usr/local/lib/dtrace");
    assert!(
        stage
            .join(l.trim_start_matches('/'))
            .join("httpd.d")
            .is_file()
    );
    assert!(msg.contains(&format!(
        "/usr/local/etc/apache24/modules.d/{}",
        apmod.trim_end_matches(".sample")
    )));
}

#[test]
fn homebrew_install_block_stages_exactly_its_files() {
    if !require(
        which("ruby").is_some(),
        "ruby is not installed (apt-get install ruby)",
        "Homebrew staging",
    ) {
        return;
    }
    let m = manifest();
    let (tmp, src) = unpacked_with_fake_module("brew");
    let keg = brew_keg(tmp.path());
    let out = run(
        brew_stub(tmp.path()).arg("install").arg(&src).arg(&keg),
        "formula install under the stub",
    );
    let text = stdout(&out);
    let mut staged: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FILE "))
        .map(str::to_string)
        .collect();
    staged.sort();
    let mut want = formula_list();
    want.sort();
    assert_eq!(
        staged, want,
        "the install block installs exactly what it lists"
    );
    let (common, extra) = split(staged.iter().map(|p| classify(p, BREW_DIRS)).collect());
    assert_eq!(common, expected());
    let snippet = format!("etc/{}/{}", m.homebrew_conf_dir, m.snippet_name());
    assert_eq!(
        extra,
        [snippet.clone()].into(),
        "only the LoadModule snippet besides"
    );
    assert!(
        text.contains("SYSTEM cargo build --lib --release --locked"),
        "{text}"
    );
    assert!(
        text.contains("/apxs"),
        "APXS points at httpd's apxs: {text}"
    );
    assert!(
        text.contains("DEP \"httpd\" true")
            && (text.contains("DEP {\"rust\"=>:build} true")
                || text.contains("DEP {\"rust\" => :build} true")),
        "{text}"
    );
    let module = std::fs::read(keg.join("lib/httpd/modules/mod_dtprovider.so")).unwrap();
    assert!(module.starts_with(b"\x7fELF fake module"));
    // The caveats name installed files.
    let cav = &text[text.find("CAVEATS\n").unwrap()..];
    assert!(
        cav.contains(&format!(
            "LoadModule dtprovider_module {}/lib/httpd/modules/mod_dtprovider.so",
            keg.display()
        )),
        "{cav}"
    );
    let shown = cav.lines().find(|l| l.contains("dtrace -L")).unwrap();
    let example = shown.split_whitespace().last().unwrap();
    assert!(
        Path::new(example).is_file(),
        "caveats show {example}, not installed"
    );
    // They name the snippet, which loads the installed module.
    let conf = tmp.path().join(&snippet);
    assert!(
        cav.contains(&format!("Include {}\n", conf.display())),
        "the caveats give the Include line of {}:\n{cav}",
        conf.display()
    );
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.lines().any(|l| l
            == format!(
                "LoadModule dtprovider_module {}/lib/httpd/modules/mod_dtprovider.so",
                keg.display()
            )),
        "{text}"
    );

    // A second install (an upgrade) keeps the snippet the user edited, as Homebrew's etc does.
    std::fs::write(&conf, "# edited\n").unwrap();
    run(
        brew_stub(tmp.path()).arg("install").arg(&src).arg(&keg),
        "formula install again",
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# edited\n");
    assert!(Path::new(&format!("{}.default", conf.display())).is_file());
}
