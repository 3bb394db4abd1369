//! The recipes for real, as far as Debian allows:
//!
//! * the release tarball builds offline, the way pkgsrc and ports build it: unpacked in a
//!   temporary directory, with exactly the crates the recipes list vendored from cargo's
//!   download cache, an empty CARGO_HOME and `cargo build --release --offline`;
//! * the Homebrew formula's `test do` block runs against that build and Debian's httpd;
//! * cargo-deb packages that build, lintian finds no error, dpkg installs it, Apache loads it,
//!   bpftrace sees and traces its probes in an Apache started from the installed configuration
//!   (on 127.0.0.1 only), and `dpkg --purge` leaves nothing behind.
//!
//! The module is built once per run of this file (about two to four minutes).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use packaging::render;

struct Built {
    /// The unpacked source tree, with target/release/libmod_dtprovider.so built in it.
    src: PathBuf,
    /// The CARGO_HOME whose config vendors the crates (for cargo-deb's `cargo metadata`).
    cargo_home: PathBuf,
}

impl Built {
    fn module(&self) -> PathBuf {
        self.src.join("target/release/libmod_dtprovider.so")
    }
}

fn crate_ids_from_recipes() -> Vec<String> {
    let m = manifest();
    let pkgsrc: Vec<String> = read(&format!("{}/cargo-depends.mk", render::pkgsrc_dir(&m)))
        .lines()
        .filter_map(|l| {
            l.strip_prefix("CARGO_CRATE_DEPENDS+=\t")
                .map(str::to_string)
        })
        .collect();
    let freebsd: Vec<String> = make_vars(&read(&format!(
        "{}/Makefile.crates",
        render::freebsd_dir(&m)
    )))["CARGO_CRATES"]
        .split(' ')
        .map(str::to_string)
        .collect();
    assert_eq!(
        pkgsrc, freebsd,
        "pkgsrc and FreeBSD must vendor the same crates"
    );
    pkgsrc
}

/// sha256 of `rust/crates/<id>.crate` as the FreeBSD distinfo records it.
fn distinfo_sha256(id: &str) -> String {
    let di = read(&format!("{}/distinfo", render::freebsd_dir(&manifest())));
    let key = format!("SHA256 (rust/crates/{id}.crate) = ");
    di.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("distinfo lacks {id}"))
        .to_string()
}

fn build_offline() -> Built {
    // Under cargo's per-target scratch directory rather than /tmp: the `Built` static is never
    // dropped, and a release build is too big to leave behind in /tmp after every run.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-offline-build");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let (_, src) = dist_and_unpack(&tmp);
    assert!(
        !src.join("target").exists() && !src.join(".git").exists(),
        "tarball with build output or .git"
    );

    // Vendor exactly the crates the recipes list, from cargo's download cache.
    let vendor = tmp.join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    let locked = packaging::crates::parse_lock(&read("Cargo.lock")).unwrap();
    for id in crate_ids_from_recipes() {
        let c = locked
            .iter()
            .find(|c| c.id() == id)
            .unwrap_or_else(|| panic!("{id} not in Cargo.lock"));
        let file = packaging::crates::find_cached(c)
            .unwrap()
            .unwrap_or_else(|| panic!("{id}.crate is not in cargo's cache (run `cargo fetch`)"));
        let sha = packaging::crates::sha256_hex(&std::fs::read(&file).unwrap());
        assert_eq!(sha, distinfo_sha256(&id), "{id}: cached .crate vs distinfo");
        run(
            Command::new("tar")
                .arg("-xzf")
                .arg(&file)
                .arg("-C")
                .arg(&vendor),
            "unpack crate",
        );
        std::fs::write(
            vendor.join(&id).join(".cargo-checksum.json"),
            format!("{{\"files\":{{}},\"package\":\"{sha}\"}}"),
        )
        .unwrap();
    }
    let cargo_home = tmp.join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n[source.vendored-sources]\ndirectory = \"{}\"\n\n[net]\noffline = true\n",
            vendor.display()
        ),
    )
    .unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t0 = Instant::now();
    let out = Command::new(&cargo)
        .args(["build", "--release", "--offline", "--locked"])
        .current_dir(&src)
        .env("CARGO_HOME", &cargo_home)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");
    eprintln!("offline release build took {:?}", t0.elapsed());
    assert!(
        out.status.success(),
        "offline build from the tarball failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Built { src, cargo_home }
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(build_offline)
}

#[test]
fn offline_build_from_the_tarball_is_the_module() {
    let b = built();
    let module = b.module();
    assert!(module.is_file(), "no {}", module.display());
    let nm = stdout(&run(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&module),
        "nm -D",
    ));
    assert!(
        nm.lines()
            .any(|l| l.ends_with(" D dtprovider_module") || l.ends_with(" B dtprovider_module")),
        "the build does not export dtprovider_module:\n{nm}"
    );
    let notes = stdout(&run(
        Command::new("readelf").arg("-n").arg(&module),
        "readelf -n",
    ));
    for probe in ["request__start", "request__done"] {
        assert!(
            notes.contains(&format!("Provider: httpd\n    Name: {probe}\n")),
            "no httpd:{probe} stapsdt note:\n{notes}"
        );
    }
    // And Apache accepts it as a module.
    let tmp = TempDir::new("load");
    let t = "offline_build_from_the_tarball_is_the_module";
    let modules = apache_accepts(
        t,
        tmp.path(),
        tmp.path(),
        &format!("LoadModule dtprovider_module {}\n", module.display()),
    );
    if let Some(modules) = modules {
        assert!(modules.contains("dtprovider_module (shared)"), "{modules}");
    }
}

/// A private Apache configuration on loopback (ServerRoot `server_root`, its files in
/// `dir`) with Debian's prefork MPM and `extra`: `apache2 -t` must accept it, and the modules
/// `apache2 -M` lists are returned. None (a loud skip, a failure under CI) without apache2.
fn apache_accepts(test: &str, dir: &Path, server_root: &Path, extra: &str) -> Option<String> {
    if !require(
        which("apache2").is_some(),
        "apache2 is not installed (apt-get install apache2)",
        test,
    ) {
        return None;
    }
    // testkit's private configuration (the tests' and the demo's template), with the
    // ServerRoot the snippet under test resolves its relative paths against.
    let conf = dir.join("httpd-test.conf");
    std::fs::create_dir_all(dir.join("htdocs")).unwrap();
    let site = testkit::SiteConf {
        mpm: testkit::Mpm::Prefork,
        ipv6: false,
        extra: vec![extra.to_string()],
    };
    let text = testkit::render(dir, testkit::free_port().unwrap(), &site).replacen(
        &format!("ServerRoot {}\n", dir.display()),
        &format!("ServerRoot {}\n", server_root.display()),
        1,
    );
    std::fs::write(&conf, text).unwrap();
    let t = run(
        Command::new("apache2").arg("-t").arg("-f").arg(&conf),
        &format!("{test}: apache2 -t"),
    );
    assert!(
        String::from_utf8_lossy(&t.stderr).contains("Syntax OK"),
        "{test}: apache2 -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let out = run(
        Command::new("apache2").arg("-M").arg("-f").arg(&conf),
        &format!("{test}: apache2 -M"),
    );
    Some(stdout(&out))
}

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
    let m = manifest();
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

    let keg = tmp
        .path()
        .join("Cellar")
        .join(&m.homebrew_formula)
        .join(&m.version);
    let stub = root().join("packaging/tests/support/brew_stub.rb");
    let formula = root().join(render::formula_path(&m));
    // `install` in the built tree (its `cargo build` is already done), then `test do`.
    run(
        Command::new("ruby")
            .arg(&stub)
            .arg(&formula)
            .arg("install")
            .arg(&b.src)
            .arg(&keg)
            .env("HOMEBREW_PREFIX", tmp.path()),
        "formula install",
    );
    let testpath = tmp.path().join("testpath");
    std::fs::create_dir_all(&testpath).unwrap();
    let out = run(
        Command::new("ruby")
            .arg(&stub)
            .arg(&formula)
            .arg("test")
            .arg(&keg)
            .arg(&httpd)
            .arg(&testpath)
            .env("HOMEBREW_PREFIX", tmp.path()),
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

// ------------------------------------------------------------------------------ Debian

const PKG: &str = "libapache2-mod-dtprovider";
const MODULE: &str = "/usr/lib/apache2/modules/mod_dtprovider.so";

/// Listening TCP sockets as (local address hex, port), from /proc/net/tcp{,6}.
fn listeners() -> Vec<(String, u16)> {
    let mut v = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" {
                let (addr, port) = cols[1].split_once(':').unwrap();
                v.push((addr.to_string(), u16::from_str_radix(port, 16).unwrap()));
            }
        }
    }
    v
}

fn is_loopback_hex(addr: &str) -> bool {
    // 127.0.0.1 is stored little-endian as 0100007F; ::1 as 0...01000000.
    addr == "0100007F" || addr == "00000000000000000000000001000000"
}

fn dpkg_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PKG])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("install ok installed")
                || String::from_utf8_lossy(&o.stdout).contains("config-files")
        })
        .unwrap_or(false)
}

/// Undoes what the Debian test did to the machine, whatever happened: stops the Apache and
/// bpftrace it started, purges the package, restores policy-rc.d.
struct Cleanup {
    children: Vec<Child>,
    policy_backup: Option<PathBuf>,
    policy_written: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            testkit::stop_child(c, "TERM", Duration::from_secs(10));
        }
        if dpkg_installed() {
            let _ = Command::new("dpkg").args(["--purge", PKG]).status();
        }
        let policy = Path::new("/usr/sbin/policy-rc.d");
        if self.policy_written {
            let _ = std::fs::remove_file(policy);
        }
        if let Some(b) = &self.policy_backup {
            let _ = std::fs::rename(b, policy);
        }
    }
}

/// The maintainer scripts restart Apache through invoke-rc.d. On a test machine that must
/// never start the system service (which would listen on port 80 on every address), so
/// policy-rc.d denies every action for the duration of the test (the standard Debian
/// mechanism; the original, if any, is put back).
fn deny_service_actions(c: &mut Cleanup) {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    if policy.exists() {
        let st = Command::new(policy)
            .args(["apache2", "restart"])
            .status()
            .unwrap();
        if st.code() == Some(101) {
            return;
        }
        let backup = PathBuf::from("/usr/sbin/policy-rc.d.packaging-test-backup");
        std::fs::rename(policy, &backup).unwrap();
        c.policy_backup = Some(backup);
    }
    std::fs::write(
        policy,
        "#!/bin/sh\n# written by mod_dtprovider's packaging test; removed after it\nexit 101\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.policy_written = true;
}

fn mount_tracefs() {
    let mounted = Command::new("mountpoint")
        .args(["-q", "/sys/kernel/tracing"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: packaging-test\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    testkit::wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || format!("apache2 did not listen on 127.0.0.1:{port}:\n{}", log()),
        || {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("apache2 exited ({st}):\n{}", log());
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        },
    );
}

static DEBIAN: Mutex<()> = Mutex::new(());

#[test]
fn debian_package_builds_installs_traces_and_purges() {
    let _serial = DEBIAN.lock().unwrap_or_else(|e| e.into_inner());
    let t = "debian_package_builds_installs_traces_and_purges";
    let tools_ok = is_root();
    if !require(tools_ok, "needs root (dpkg -i, bpftrace)", t) {
        return;
    }
    let mut missing = Vec::new();
    for tool in [
        "dpkg",
        "dpkg-deb",
        "lintian",
        "bpftrace",
        "apache2",
        "apache2ctl",
        "a2query",
    ] {
        if which(tool).is_none() {
            missing.push(tool);
        }
    }
    let cargo_deb = which("cargo-deb");
    if cargo_deb.is_none() {
        missing.push("cargo-deb (cargo install cargo-deb --locked)");
    }
    if !require(
        missing.is_empty(),
        &format!("missing tools: {}", missing.join(", ")),
        t,
    ) {
        return;
    }
    let cargo_deb = cargo_deb.unwrap();
    let b = built();
    let tmp = TempDir::new("deb");

    // --- cargo deb ---------------------------------------------------------------------
    let debdir = tmp.path().join("deb");
    std::fs::create_dir_all(&debdir).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run(
        Command::new(&cargo_deb)
            .args(["--no-build", "--manifest-path"])
            .arg(b.src.join("Cargo.toml"))
            .arg("--output")
            .arg(&debdir)
            .current_dir(&b.src)
            .env("CARGO_HOME", &b.cargo_home)
            .env("CARGO", &cargo)
            .env_remove("CARGO_TARGET_DIR"),
        "cargo deb --no-build",
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let deb = std::fs::read_dir(&debdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb wrote no .deb");
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("{PKG}_{}-1_", manifest().version)),
        "{name}"
    );

    // --- the package's metadata and contents ---------------------------------------------
    let info = stdout(&run(
        Command::new("dpkg-deb").arg("-I").arg(&deb),
        "dpkg-deb -I",
    ));
    for want in [
        "Package: libapache2-mod-dtprovider",
        "Section: httpd",
        "apache2-api-20120211",
        "apache2-bin (>= 2.4.16)",
    ] {
        assert!(info.contains(want), "control lacks {want}:\n{info}");
    }
    assert!(
        !info
            .lines()
            .any(|l| l.starts_with(" Depends:") && l.split([',', ' ']).any(|d| d == "apache2")),
        "must not depend on apache2:\n{info}"
    );
    let ctrl = tmp.path().join("ctrl");
    run(
        Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl),
        "dpkg-deb -e",
    );
    let conf = std::fs::read_to_string(ctrl.join("conffiles")).unwrap_or_default();
    assert!(
        conf.lines()
            .any(|l| l == "/etc/apache2/mods-available/dtprovider.load"),
        "conffiles: {conf:?}"
    );
    for s in ["postinst", "prerm", "postrm"] {
        assert_eq!(
            std::fs::read_to_string(ctrl.join(s)).unwrap(),
            read(&format!("debian/maintscripts/{s}")),
            "{s} in the package differs from debian/maintscripts/{s}"
        );
    }
    let listing = stdout(&run(
        Command::new("dpkg-deb").arg("-c").arg(&deb),
        "dpkg-deb -c",
    ));
    let mut files: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            l.split_whitespace()
                .last()
                .unwrap()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    files.sort();
    let mut want: Vec<String> = render::deb_assets(&manifest())
        .into_iter()
        .map(|(_, d, _)| d)
        .collect();
    want.push(format!("usr/share/doc/{PKG}/copyright"));
    want.push(format!("usr/share/doc/{PKG}/changelog.Debian.gz"));
    want.sort();
    let extra: Vec<&String> = files.iter().filter(|f| !want.contains(f)).collect();
    let missing_files: Vec<&String> = want.iter().filter(|w| !files.contains(w)).collect();
    assert!(
        extra.is_empty() && missing_files.is_empty(),
        "deb contents: extra {extra:?}, missing {missing_files:?}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with(&format!(".{MODULE}"))),
        "module mode 0644:\n{listing}"
    );

    // --- lintian -------------------------------------------------------------------------
    let lin = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .unwrap();
    let lin_out = format!(
        "{}{}",
        String::from_utf8_lossy(&lin.stdout),
        String::from_utf8_lossy(&lin.stderr)
    );
    eprintln!("lintian:\n{lin_out}");
    assert!(
        lin.status.success() && !lin_out.lines().any(|l| l.starts_with("E: ")),
        "lintian reports errors:\n{lin_out}"
    );

    // --- install ---------------------------------------------------------------------------
    let mut cleanup = Cleanup {
        children: Vec::new(),
        policy_backup: None,
        policy_written: false,
    };
    deny_service_actions(&mut cleanup);
    if dpkg_installed() {
        run(
            Command::new("dpkg").args(["--purge", PKG]),
            "purge a leftover install",
        );
    }
    let before_listeners = listeners();
    let dtrace_dir_existed = Path::new("/usr/lib/dtrace").exists();
    let out = run(Command::new("dpkg").arg("-i").arg(&deb), "dpkg -i");
    eprintln!(
        "dpkg -i:\n{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(MODULE).is_file());
    let enabled = Path::new("/etc/apache2/mods-enabled/dtprovider.load");
    assert!(
        enabled.is_symlink(),
        "postinst did not enable the module (a2enmod dtprovider)"
    );
    let q = Command::new("a2query")
        .args(["-m", "dtprovider"])
        .output()
        .unwrap();
    assert!(
        q.status.success(),
        "a2query -m dtprovider: {}",
        String::from_utf8_lossy(&q.stdout)
    );
    let modules = stdout(&run(Command::new("apache2ctl").arg("-M"), "apache2ctl -M"));
    assert!(
        modules.contains("dtprovider_module (shared)"),
        "apache2ctl -M:\n{modules}"
    );
    let installed = stdout(&run(Command::new("dpkg").args(["-L", PKG]), "dpkg -L"));
    let installed_files: Vec<String> = installed
        .lines()
        .filter(|p| Path::new(p).is_file())
        .map(str::to_string)
        .collect();
    assert!(
        installed_files
            .iter()
            .any(|f| f == "/usr/lib/dtrace/httpd.d")
    );

    // --- bpftrace sees both probes ----------------------------------------------------------
    mount_tracefs();
    let l = Command::new("bpftrace")
        .args(["-l", &format!("usdt:{MODULE}:*")])
        .output()
        .unwrap();
    let probes = String::from_utf8_lossy(&l.stdout).into_owned();
    for p in ["httpd:request__start", "httpd:request__done"] {
        assert!(
            probes.contains(p),
            "bpftrace -l does not list {p}:\n{probes}\n{}",
            String::from_utf8_lossy(&l.stderr)
        );
    }

    // --- Apache from the installed configuration, on loopback only ---------------------------
    let adir = tmp.path().join("apache");
    let docroot = adir.join("htdocs");
    let run_dir = adir.join("run");
    std::fs::create_dir_all(&docroot).unwrap();
    std::fs::create_dir_all(&run_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [tmp.path(), adir.as_path(), docroot.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let nonce = format!(
        "pkgtest-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    std::fs::write(
        docroot.join(format!("{nonce}.txt")),
        "hello from the packaging test\n",
    )
    .unwrap();
    let port = testkit::free_port().unwrap();
    let log = adir.join("error.log");
    let conf = adir.join("apache2.conf");
    // Only the module enablement comes from /etc/apache2 (mods-enabled, as the package left
    // it); no ports.conf, no sites: the only Listen is 127.0.0.1:<free port>.
    std::fs::write(
        &conf,
        format!(
            "ServerRoot /etc/apache2\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
             PidFile {a}/httpd.pid\nErrorLog {log}\nDefaultRuntimeDir {r}\nMutex file:{r} default\n\
             User www-data\nGroup www-data\n\
             IncludeOptional /etc/apache2/mods-enabled/*.load\nIncludeOptional /etc/apache2/mods-enabled/*.conf\n\
             DocumentRoot {d}\n<Directory {d}>\n  Require all granted\n</Directory>\n\
             LogFormat \"%h \\\"%r\\\" %>s\" packaging\nCustomLog {a}/access.log packaging\n",
            a = adir.display(),
            log = log.display(),
            r = run_dir.display(),
            d = docroot.display(),
        ),
    )
    .unwrap();
    let listen_lines: Vec<String> = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Listen"))
        .map(str::to_string)
        .collect();
    assert_eq!(listen_lines, [format!("Listen 127.0.0.1:{port}")]);
    let envs = [
        ("APACHE_RUN_USER", "www-data".to_string()),
        ("APACHE_RUN_GROUP", "www-data".to_string()),
        ("APACHE_RUN_DIR", run_dir.display().to_string()),
        (
            "APACHE_PID_FILE",
            adir.join("httpd.pid").display().to_string(),
        ),
        ("APACHE_LOCK_DIR", run_dir.display().to_string()),
        ("APACHE_LOG_DIR", adir.display().to_string()),
    ];
    run(
        Command::new("apache2")
            .arg("-t")
            .arg("-f")
            .arg(&conf)
            .envs(envs.clone()),
        "apache2 -t on the private config",
    );
    // The package's snippet (mods-available/dtprovider.load, enabled) loads the module there.
    let private_modules = stdout(&run(
        Command::new("apache2")
            .arg("-M")
            .arg("-f")
            .arg(&conf)
            .envs(envs.clone()),
        "apache2 -M on the private config",
    ));
    assert!(
        private_modules.contains("dtprovider_module (shared)"),
        "apache2 -M with mods-enabled/*.load:\n{private_modules}"
    );
    let apache = Command::new("apache2")
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .envs(envs.clone())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cleanup.children.push(apache);
    wait_for_port(port, cleanup.children.last_mut().unwrap(), &log);
    let ours: Vec<(String, u16)> = listeners()
        .into_iter()
        .filter(|(_, p)| *p == port)
        .collect();
    assert!(
        !ours.is_empty() && ours.iter().all(|(a, _)| is_loopback_hex(a)),
        "Apache listens beyond loopback: {ours:?}"
    );

    // --- trace one request --------------------------------------------------------------
    let script = format!(
        "BEGIN {{ printf(\"READY\\n\"); }}\n\
         usdt:{MODULE}:httpd:request__start {{ printf(\"START %s\\n\", str(arg2)); }}\n\
         usdt:{MODULE}:httpd:request__done {{ printf(\"DONE %s %d\\n\", str(arg2), arg4); }}\n"
    );
    let how = testkit::How {
        marker: "READY",
        ..testkit::How::default()
    };
    let mut bt = testkit::Tracer::launch(&script, &tmp.path().join("bt"), &how)
        .unwrap_or_else(|e| panic!("bpftrace: {e}"));
    let uri = format!("/{nonce}.txt");
    let resp = http_get(port, &uri);
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "GET {uri}: {resp}"
    );
    let want_done = format!("DONE {uri} 200");
    let _ = testkit::poll_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        String::new,
        || bt.output().lines().any(|l| l == want_done),
    );
    // Stop bpftrace: SIGINT until it exits.
    let (out, bt_err) = bt.finish();
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert!(
        lines.contains(&format!("START {uri}")),
        "no request__start for {uri}: {lines:?}\n{bt_err}"
    );
    assert!(
        lines.contains(&want_done),
        "no request__done for {uri} with 200: {lines:?}\n{bt_err}"
    );

    // Stop Apache by its pid.
    let apache = &mut cleanup.children[0];
    testkit::signal(apache.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while apache.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(apache.try_wait().unwrap().is_some(), "apache2 did not stop");

    // --- purge ---------------------------------------------------------------------------
    let out = run(Command::new("dpkg").args(["--purge", PKG]), "dpkg --purge");
    eprintln!(
        "dpkg --purge:\n{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dpkg_installed(), "still known to dpkg after --purge");
    assert!(
        !enabled.exists() && !enabled.is_symlink(),
        "mods-enabled/dtprovider.load left behind"
    );
    for f in &installed_files {
        assert!(!Path::new(f).exists(), "{f} left behind after purge");
    }
    for p in [
        "/etc/apache2/mods-available/dtprovider.load",
        MODULE,
        "/var/lib/apache2/module/enabled_by_maint/dtprovider",
        "/var/lib/apache2/module/disabled_by_admin/dtprovider",
        "/var/lib/apache2/module/disabled_by_maint/dtprovider",
    ] {
        assert!(!Path::new(p).exists(), "{p} left behind after purge");
    }
    if !dtrace_dir_existed {
        assert!(
            !Path::new("/usr/lib/dtrace").exists(),
            "/usr/lib/dtrace left behind after purge"
        );
    }
    assert!(
        !Path::new(&format!("/usr/share/doc/{PKG}")).exists(),
        "doc directory left behind"
    );
    let modules = stdout(&run(
        Command::new("apache2ctl").arg("-M"),
        "apache2ctl -M after purge",
    ));
    assert!(
        !modules.contains("dtprovider_module"),
        "module still loaded after purge"
    );

    // Nothing started the system service: no new listener on port 80/443 or elsewhere.
    let after: Vec<(String, u16)> = listeners()
        .into_iter()
        .filter(|l| !before_listeners.contains(l) && l.1 != port)
        .collect();
    let web: Vec<&(String, u16)> = after
        .iter()
        .filter(|(_, p)| *p == 80 || *p == 443)
        .collect();
    assert!(
        web.is_empty(),
        "something started listening on port 80/443 during the test: {web:?}"
    );
    drop(cleanup);
}
