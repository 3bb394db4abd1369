//! The Debian package for real: cargo-deb packages the offline build, lintian finds no error,
//! dpkg installs it, Apache loads it, bpftrace sees and traces its probes in an Apache started
//! from the installed configuration (on 127.0.0.1 only), and `dpkg --purge` leaves nothing
//! behind. Needs root; whatever happens, the machine is put back as it was (policy-rc.d, the
//! package, the processes the test started).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::built;
use crate::common::*;
use packaging::render;

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
