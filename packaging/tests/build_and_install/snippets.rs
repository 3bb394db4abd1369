//! Each recipe's LoadModule snippet, installed its own way around the module of the offline
//! build, accepted by Apache (Debian's apache2 with a private configuration on 127.0.0.1):
//! the pkgsrc one through CONF_FILES and README.pkgsrc's Include line, the FreeBSD one in
//! modules.d, the Homebrew one by the formula's own `test do` block.

use super::{apache_accepts, built};
use crate::common::*;
use packaging::render;

/// The pkgsrc package installed (its own steps under the stub framework, with the module of
/// the offline build), CONF_FILES applied, and the Include line its README.pkgsrc gives added
/// to an Apache configuration: Apache accepts it and loads the module.
#[test]
fn pkgsrc_snippet_is_accepted_by_apache() {
    let t = "pkgsrc_snippet_is_accepted_by_apache";
    if !require(which("bmake").is_some(), "bmake is not installed", t) {
        return;
    }
    let b = built();
    let tmp = TempDir::new("pkgsrc-apache");
    let (_, src) = dist_and_unpack(tmp.path());
    std::fs::create_dir_all(src.join("target/release")).unwrap();
    std::fs::copy(b.module(), src.join("target/release/libmod_dtprovider.so")).unwrap();
    let prefix = tmp.path().join("pkg");
    let (pkgdir, vars) = pkgsrc_install(tmp.path(), &src, "", &prefix.display().to_string());
    bmake_out(&["stub-conf-files"], &pkgdir, &vars);
    let m = manifest();
    let doc = std::fs::read_to_string(
        prefix.join(format!("share/doc/{}/README.pkgsrc", m.pkgsrc_package)),
    )
    .unwrap();
    let include = doc
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Include "))
        .expect("README.pkgsrc gives the Include line");
    let modules = apache_accepts(t, tmp.path(), &prefix, &format!("{include}\n"));
    if let Some(modules) = modules {
        assert!(modules.contains("dtprovider_module (shared)"), "{modules}");
    }
}

/// The FreeBSD port staged (with the module of the offline build), its modules.d snippet put
/// in place as `@sample` does and included the way FreeBSD's httpd.conf includes modules.d:
/// Apache accepts it, the module is off until its LoadModule line is uncommented (as
/// pkg-message says), and loaded after.
#[test]
fn freebsd_snippet_is_accepted_by_apache() {
    let t = "freebsd_snippet_is_accepted_by_apache";
    if !require(which("bmake").is_some(), "bmake is not installed", t) {
        return;
    }
    let b = built();
    let m = manifest();
    let tmp = TempDir::new("port-apache");
    let (_, src) = dist_and_unpack(tmp.path());
    let wrk = tmp.path().join("wrk");
    let built_at = wrk.join("target/x86_64-unknown-freebsd/release");
    std::fs::create_dir_all(&built_at).unwrap();
    std::fs::copy(b.module(), built_at.join("libmod_dtprovider.so")).unwrap();
    let portdir = write_port(tmp.path(), "committed");
    let stage = tmp.path().join("stage");
    let mk = support("freebsd").display().to_string();
    bmake_out(
        &["-m", &mk, "stub-sub-files", "do-install"],
        &portdir,
        &[
            format!("STAGEDIR={}", stage.display()),
            "PREFIX=/usr/local".into(),
            format!("WRKSRC={}", src.display()),
            format!("WRKDIR={}", wrk.display()),
        ],
    );
    let local = stage.join("usr/local");
    let modules_d = local.join("etc/apache24/modules.d");
    let sample = modules_d.join(render::apmod_file(&m));
    let conf = modules_d.join(render::apmod_file(&m).trim_end_matches(".sample"));
    std::fs::copy(&sample, &conf).unwrap(); // @sample
    let include = "IncludeOptional etc/apache24/modules.d/[0-9][0-9][0-9]_*.conf\n";
    if let Some(off) = apache_accepts(t, tmp.path(), &local, include) {
        assert!(
            !off.contains("dtprovider_module"),
            "loaded while commented out:\n{off}"
        );
    }
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("\n#LoadModule ", "\nLoadModule ")).unwrap();
    if let Some(on) = apache_accepts(t, tmp.path(), &local, include) {
        assert!(on.contains("dtprovider_module (shared)"), "{on}");
    }
}

#[test]
fn homebrew_test_block_has_httpd_accept_the_snippet() {
    let t = "homebrew_test_block_has_httpd_accept_the_snippet";
    if !require(
        which("ruby").is_some(),
        "ruby is not installed (apt-get install ruby)",
        t,
    ) || !require(which("apache2").is_some(), "apache2 is not installed", t)
    {
        return;
    }
    let b = built();
    let tmp = TempDir::new("brewtest");
    // httpd's keg as Homebrew lays it out, made of Debian's Apache.
    let httpd = tmp.path().join("httpd");
    std::fs::create_dir_all(httpd.join("lib/httpd")).unwrap();
    std::fs::create_dir_all(httpd.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/apache2/modules", httpd.join("lib/httpd/modules"))
        .unwrap();
    std::fs::write(
        httpd.join("bin/httpd"),
        "#!/bin/sh\nexec /usr/sbin/apache2 \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        httpd.join("bin/httpd"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let keg = brew_keg(tmp.path());
    // `install` in the built tree (its `cargo build` is already done), then `test do`.
    run(
        brew_stub(tmp.path()).arg("install").arg(&b.src).arg(&keg),
        "formula install",
    );
    let testpath = tmp.path().join("testpath");
    std::fs::create_dir_all(&testpath).unwrap();
    let out = run(
        brew_stub(tmp.path())
            .arg("test")
            .arg(&keg)
            .arg(&httpd)
            .arg(&testpath),
        "formula test block",
    );
    // The block ran `httpd -t` and `httpd -M` on a configuration that includes the installed
    // snippet (etc/httpd/extra/dtprovider.conf), and found the module.
    assert!(stdout(&out).contains("TEST PASSED"));
    assert!(
        tmp.path().join("etc/httpd/extra/dtprovider.conf").is_file(),
        "the install block put the snippet under etc"
    );
}
