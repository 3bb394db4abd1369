//! The configuration the framework's Apache runs with: Debian's modules, dependencies first,
//! loopback listeners only, checked before and after each pass.

use super::*;

/// The configuration the framework inherits (its `-httpd_conf`): the MPM, every module
/// Debian ships, dependencies first (mod_proxy_* need mod_proxy's symbols when they are
/// loaded), the three test-only modules, and mime.conf. Not mod_heartbeat: the suite's
/// extra.conf would make it send multicast.
pub(crate) fn base_config(mpm: Mpm) -> String {
    let avail = Path::new("/etc/apache2/mods-available");
    let mut mods: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for e in fs::read_dir(avail).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(m) = name.strip_suffix(".load") else {
            continue;
        };
        if m.starts_with("mpm_") || m == "heartbeat" {
            continue;
        }
        let text = fs::read_to_string(e.path()).unwrap();
        let mut deps = Vec::new();
        let mut body = Vec::new();
        for l in text.lines() {
            if let Some(d) = l.trim().strip_prefix("# Depends:") {
                deps.extend(d.split_whitespace().map(String::from));
            } else if !l.trim().is_empty() && !l.trim().starts_with('#') {
                body.push(l.to_string());
            }
        }
        mods.insert(m.to_string(), (deps, body));
    }
    fn visit(
        m: &str,
        mods: &BTreeMap<String, (Vec<String>, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        let Some((deps, body)) = mods.get(m) else {
            return;
        };
        if !seen.insert(m.to_string()) {
            return;
        }
        for d in deps {
            visit(d, mods, seen, out);
        }
        out.extend(body.iter().cloned());
    }
    let mpm_load = avail.join(format!("mpm_{}.load", mpm.name()));
    let mut out: Vec<String> = fs::read_to_string(&mpm_load)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().starts_with('#'))
        .map(String::from)
        .collect();
    let mut seen = BTreeSet::new();
    for m in mods.keys() {
        visit(m, &mods, &mut seen, &mut out);
    }
    for m in ["bucketeer", "case_filter", "case_filter_in"] {
        let so = Path::new(MODULES).join(format!("mod_{m}.so"));
        if so.exists() {
            out.push(format!("LoadModule {m}_module {}", so.display()));
        }
    }
    out.push(fs::read_to_string("/etc/apache2/mods-available/mime.conf").unwrap());
    out.push("ServerName localhost".into());
    out.join("\n") + "\n"
}

/// Apache::Test writes `Listen 0.0.0.0:<port>` for the main server and every vhost, and
/// t/TEST may regenerate the configuration right before it starts Apache; only loopback
/// addresses are allowed here. So the private copy's Apache::Test is patched to write
/// 127.0.0.1 (and to probe for free ports there); `check_config` verifies the result.
pub(crate) fn loopback_only(pf: &Path) {
    let lib = pf.join("Apache-Test/lib/Apache");
    for (file, from, to) in [
        ("TestConfig.pm", "'0.0.0.0:'", "'127.0.0.1:'"),
        (
            "TestConfig.pm",
            "Listen     0.0.0.0:@Port@",
            "Listen     127.0.0.1:@Port@",
        ),
        ("TestConfigPerl.pm", "'0.0.0.0:'", "'127.0.0.1:'"),
        (
            "TestServer.pm",
            "Socket::INADDR_ANY()",
            "Socket::INADDR_LOOPBACK()",
        ),
    ] {
        let p = lib.join(file);
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains(from),
            "{} no longer contains {from:?}: the loopback patch needs updating",
            p.display()
        );
        fs::write(&p, text.replace(from, to)).unwrap();
    }
    for p in files_under(&lib) {
        let text = fs::read_to_string(&p).unwrap_or_default();
        assert!(
            !text.contains("0.0.0.0") && !text.contains("INADDR_ANY"),
            "{} still names the wildcard address",
            p.display()
        );
    }
}

/// Every `Listen` of the generated configuration is on 127.0.0.1, the MPM is the one asked
/// for, and the module is loaded exactly when it should be.
pub(crate) fn check_config(pf: &Path, mpm: Mpm, with_module: bool) {
    let mut listens = 0;
    for p in conf_files(pf) {
        for l in fs::read_to_string(&p).unwrap().lines() {
            let mut w = l.split_whitespace();
            if w.next().is_some_and(|d| d.eq_ignore_ascii_case("Listen")) {
                let addr = w.next().unwrap_or("");
                assert!(
                    addr.starts_with("127.0.0.1:"),
                    "{}: {l:?} is not on 127.0.0.1",
                    p.display()
                );
                listens += 1;
            }
        }
    }
    assert!(listens > 0, "no Listen in {}", pf.join("t/conf").display());
    let conf = fs::read_to_string(pf.join("t/conf/httpd.conf")).unwrap();
    let loads = |m: &str| {
        conf.lines()
            .any(|l| l.trim_start().starts_with(&format!("LoadModule {m} ")))
    };
    assert!(
        loads(&format!("mpm_{}_module", mpm.name())),
        "the generated httpd.conf does not load the {} MPM",
        mpm.name()
    );
    assert_eq!(
        loads("dtprovider_module"),
        with_module,
        "whether the generated httpd.conf loads mod_dtprovider"
    );
}

pub(crate) fn conf_files(pf: &Path) -> Vec<PathBuf> {
    files_under(&pf.join("t/conf"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect()
}

pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
