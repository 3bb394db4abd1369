//! Shared harness of the integration tests: a private Apache with the freshly built module,
//! a bpftrace attached to that module by path, raw HTTP clients, and parsers for what the
//! tracer and the access log say.
//!
//! Every Apache gets its own ServerRoot, config, pid file and a free port on 127.0.0.1 (and
//! ::1), and is stopped by pid. Every Apache loads its *own copy* of the module, so a tracer
//! attached to one copy sees only that Apache: tests can run in parallel.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const MODULES: &str = "/usr/lib/apache2/modules";

/// The module built by this `cargo test` run (target/<profile>/libmod_dtprovider.so).
pub fn built_module() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let so = profile_dir.join("libmod_dtprovider.so");
    assert!(
        so.exists(),
        "{} does not exist: build the module first (`cargo build --release`; the README's test \
         command does this)",
        so.display()
    );
    // A stale module would make every test below test old code.
    let built = fs::metadata(&so).and_then(|m| m.modified()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![
        root.join("build.rs"),
        root.join("dtprovider-sys/build.rs"),
        root.join("dtprovider-sys/wrapper.h"),
    ];
    sources.extend(
        fs::read_dir(root.join("src"))
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    for src in sources {
        let changed = fs::metadata(&src).and_then(|m| m.modified()).unwrap();
        assert!(
            changed <= built,
            "{} is newer than {}: rebuild the module (`cargo build --release`) before testing",
            src.display(),
            so.display()
        );
    }
    so
}

/// The module built with other build settings (a test-only feature, or another probe
/// backend), in its own target directory, target/<name>, so that it never replaces the
/// module under test. cargo builds it the first time and finds it fresh afterwards.
pub fn variant_module(name: &str, features: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join(name);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--lib", "--target-dir"])
        .arg(&target)
        .env_remove("DTPROVIDER_BACKEND")
        .envs(env.iter().copied())
        .current_dir(root);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "building the {name} module failed");
    target.join("release/libmod_dtprovider.so")
}

/// The probe backend of a module build (src/probes/): `Sdt`, the module's own SDT notes
/// (x86-64 Linux's default), or `Usdt`, the `usdt` crate's probes, which DTrace systems
/// ship and a Linux build gets with `DTPROVIDER_BACKEND=usdt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sdt,
    Usdt,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Sdt, Backend::Usdt];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sdt => "sdt",
            Backend::Usdt => "usdt",
        }
    }

    /// This backend's build of the module: the one this `cargo test` run built (sdt), or the
    /// usdt backend built once into target/usdt-backend (by the first test that needs it).
    pub fn module(self) -> PathBuf {
        static USDT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        match self {
            Backend::Sdt => built_module(),
            Backend::Usdt => USDT
                .get_or_init(|| {
                    variant_module("usdt-backend", &[], &[("DTPROVIDER_BACKEND", "usdt")])
                })
                .clone(),
        }
    }

    /// What this backend's notes call a probe of the provider definition (`request__start`):
    /// the same name (sdt), or DTrace's spelling, `__` as `-` (usdt).
    pub fn probe(self, name: &str) -> String {
        match self {
            Backend::Sdt => name.to_string(),
            Backend::Usdt => name.replace("__", "-"),
        }
    }

    /// The backend a module file was built with, told by the probe names in its notes.
    pub fn of(module: &Path) -> Backend {
        let names = note_names(module);
        let with = |b: Backend| ["request__start", "request__done"].map(|p| b.probe(p));
        for b in Backend::ALL {
            let mut want = with(b).to_vec();
            want.sort();
            if names == want {
                return b;
            }
        }
        panic!("{}: unexpected probe notes {names:?}", module.display());
    }

    /// `script` (written with the Linux names, `httpd:request__start`) for this backend.
    pub fn script(self, script: &str) -> String {
        ["request__start", "request__done"]
            .iter()
            .fold(script.to_string(), |s, p| {
                s.replace(&format!(":httpd:{p}"), &format!(":httpd:{}", self.probe(p)))
            })
    }
}

/// The names of the `httpd` probes in a module's `.note.stapsdt`, sorted (`readelf -n`).
pub fn note_names(module: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(module)
        .output()
        .expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = Vec::new();
    let mut provider = String::new();
    for l in text.lines().map(str::trim) {
        if let Some(p) = l.strip_prefix("Provider: ") {
            provider = p.to_string();
        } else if let Some(n) = l.strip_prefix("Name: ") {
            if provider == "httpd" {
                v.push(n.to_string());
            }
        }
    }
    v.sort();
    v
}

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether this test can trace: root, tracefs mounted (mounted here if needed), bpftrace.
/// Without them the test is skipped with a loud message, except under CI, where it fails.
pub fn need_tracing(test: &str) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        missing.push("root privileges");
    } else if !Path::new("/sys/kernel/tracing/uprobe_events").exists() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
        if !Path::new("/sys/kernel/tracing/uprobe_events").exists() {
            missing.push("tracefs at /sys/kernel/tracing");
        }
    }
    if which("bpftrace").is_none() {
        missing.push("bpftrace (apt-get install bpftrace)");
    }
    if which("apache2").is_none() {
        missing.push("apache2 (apt-get install apache2 apache2-dev)");
    }
    need_all(test, &missing)
}

/// True when nothing is `missing`; otherwise the test is skipped with a loud message naming
/// what is missing, except under CI, where it fails.
pub fn need_all(test: &str, missing: &[&str]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test} needs {}", missing.join(", "));
    if ci() {
        panic!("{msg}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("\n**************** SKIPPED: {msg} (CI is unset) ****************\n");
    false
}

/// Whether Apache can be run at all (for tests that need no tracer).
pub fn need_apache(test: &str) -> bool {
    if which("apache2").is_some() {
        return true;
    }
    let msg = format!("{test} needs apache2 (apt-get install apache2)");
    if ci() {
        panic!("{msg}; CI is set, so this is a failure, not a skip");
    }
    eprintln!("\n**************** SKIPPED: {msg} (CI is unset) ****************\n");
    false
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc_geteuid() == 0 }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// Polls `ready` every `step` until it holds; after `timeout` the test fails with `what()`.
pub fn wait_until(
    timeout: Duration,
    step: Duration,
    what: impl Fn() -> String,
    mut ready: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "{}", what());
        thread::sleep(step);
    }
}

pub fn free_port() -> u16 {
    // Ask the kernel for a port free on both loopback families.
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 and ::1");
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh world-readable scratch directory (Apache's children run as www-data).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dtprovider-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    chmod(&d, 0o755);
    d
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApacheOpts {
    pub mpm: Mpm,
    /// Load mod_dtprovider (a private copy of the built module).
    pub with_module: bool,
    /// Also listen on [::1].
    pub ipv6: bool,
    /// Load mod_http2 with `Protocols h2c http/1.1` (not with prefork, which mod_http2
    /// does not support).
    pub h2c: bool,
    /// Extra configuration lines appended at the end.
    pub extra: String,
    /// Extra environment variables for the apache2 process.
    pub env: Vec<(String, String)>,
    /// Which build of the module to load.
    pub backend: Backend,
}

impl ApacheOpts {
    pub fn new(mpm: Mpm) -> ApacheOpts {
        ApacheOpts {
            mpm,
            with_module: true,
            ipv6: true,
            h2c: mpm != Mpm::Prefork,
            extra: String::new(),
            env: Vec::new(),
            backend: Backend::Sdt,
        }
    }
}

/// The static pages every test Apache serves.
pub const PAGE: &str = "<html><body>dtprovider test page</body></html>\n";
pub const ERROR_PAGE: &str = "custom 404 page\n";

pub struct Apache {
    pub dir: PathBuf,
    pub port: u16,
    /// The module file this Apache loads (attach tracers to this path).
    pub module: PathBuf,
    pub pid: u32,
    pub opts: ApacheOpts,
    stopped: bool,
}

impl Apache {
    pub fn start(opts: ApacheOpts) -> Apache {
        Self::prepare(opts).launch()
    }

    /// Writes the ServerRoot and config without starting Apache (to attach a tracer first).
    pub fn prepare(opts: ApacheOpts) -> Apache {
        let dir = scratch_dir(opts.mpm.name());
        let port = free_port();
        let htdocs = dir.join("htdocs");
        fs::create_dir_all(htdocs.join("errors")).unwrap();
        fs::create_dir_all(htdocs.join("dir")).unwrap();
        fs::write(htdocs.join("index.html"), PAGE).unwrap();
        fs::write(htdocs.join("dir/index.html"), PAGE).unwrap();
        fs::write(htdocs.join("page.html"), PAGE).unwrap();
        fs::write(htdocs.join("errors/404.html"), ERROR_PAGE).unwrap();
        // A CGI that echoes a POST body back, and one that sleeps a given number of ms.
        let echo = htdocs.join("echo.cgi");
        fs::write(
            &echo,
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec cat\n",
        )
        .unwrap();
        chmod(&echo, 0o755);
        let slow = htdocs.join("slow.cgi");
        fs::write(
            &slow,
            "#!/bin/sh\nms=${QUERY_STRING:-100}\nsleep $(echo \"$ms\" | awk '{printf \"%.3f\", $1/1000}')\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\nslept %s ms\\n' \"$ms\"\n",
        )
        .unwrap();
        chmod(&slow, 0o755);
        for d in [&htdocs, &htdocs.join("errors"), &htdocs.join("dir")] {
            chmod(d, 0o755);
        }
        let module = dir.join("mod_dtprovider.so");
        if opts.with_module {
            fs::copy(opts.backend.module(), &module).unwrap();
            chmod(&module, 0o755);
        }
        let conf = Self::config(&dir, port, &module, &opts);
        fs::write(dir.join("httpd.conf"), conf).unwrap();
        Apache {
            dir,
            port,
            module,
            pid: 0,
            opts,
            stopped: true,
        }
    }

    fn config(dir: &Path, port: u16, module: &Path, o: &ApacheOpts) -> String {
        let d = dir.display();
        let mut c = String::new();
        let mut line = |s: String| {
            c.push_str(&s);
            c.push('\n');
        };
        line(format!("ServerRoot {d}"));
        line("ServerName localhost".into());
        line(format!("Listen 127.0.0.1:{port}"));
        if o.ipv6 {
            line(format!("Listen [::1]:{port}"));
        }
        line(format!("PidFile {d}/httpd.pid"));
        line(format!("DefaultRuntimeDir {d}"));
        line(format!("Mutex file:{d} default"));
        line(format!("ErrorLog {d}/error.log"));
        line("LogLevel warn".into());
        if is_root() {
            line("User www-data".into());
            line("Group www-data".into());
        }
        line(format!(
            "LoadModule mpm_{0}_module {MODULES}/mod_mpm_{0}.so",
            o.mpm.name()
        ));
        match o.mpm {
            Mpm::Prefork => {
                line("StartServers 2".into());
                line("MinSpareServers 2".into());
                line("MaxSpareServers 8".into());
                line("MaxRequestWorkers 64".into());
                line(format!("LoadModule cgi_module {MODULES}/mod_cgi.so"));
            }
            _ => {
                line("StartServers 2".into());
                line("ThreadsPerChild 25".into());
                line("MaxRequestWorkers 100".into());
                line(format!("LoadModule cgid_module {MODULES}/mod_cgid.so"));
                line(format!("ScriptSock {d}/cgid.sock"));
            }
        }
        for m in ["authz_core", "dir", "mime", "alias"] {
            line(format!("LoadModule {m}_module {MODULES}/mod_{m}.so"));
        }
        if o.h2c {
            line(format!("LoadModule http2_module {MODULES}/mod_http2.so"));
            line("Protocols h2c http/1.1".into());
        }
        if o.with_module {
            line(format!("LoadModule dtprovider_module {}", module.display()));
        }
        line("TypesConfig /etc/mime.types".into());
        line(format!("DocumentRoot {d}/htdocs"));
        line(format!(
            "<Directory {d}/htdocs>\n  Require all granted\n  Options +ExecCGI\n  AddHandler cgi-script .cgi\n</Directory>"
        ));
        line("DirectoryIndex index.html".into());
        line("ErrorDocument 404 /errors/404.html".into());
        line("KeepAlive On".into());
        line("MaxKeepAliveRequests 0".into());
        line("KeepAliveTimeout 5".into());
        line("Timeout 10".into());
        // pid, final status, %B, client port, client address, request line (tab-separated)
        line("LogFormat \"%P\\t%>s\\t%B\\t%{remote}p\\t%a\\t%r\" dt".into());
        line(format!("CustomLog {d}/access.log dt"));
        line(o.extra.clone());
        c
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("httpd.conf")
    }

    pub fn launch(mut self) -> Apache {
        let out = Command::new("apache2")
            .args(["-f", self.conf_path().to_str().unwrap(), "-k", "start"])
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run apache2");
        assert!(
            out.status.success(),
            "apache2 failed to start: {}\n{}\nerror.log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.error_log()
        );
        self.stopped = false;
        let (pid_file, port) = (self.dir.join("httpd.pid"), self.port);
        let mut pid = 0;
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || format!("apache2 did not come up:\n{}", self.error_log()),
            || {
                pid = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                pid != 0 && TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        self.pid = pid;
        self.wait_children_ready();
        self
    }

    /// Waits until the parent has children (so a request is served by a child that ran
    /// child_init).
    fn wait_children_ready(&self) {
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || format!("no Apache children:\n{}", self.error_log()),
            || !self.children().is_empty(),
        );
    }

    /// Pids of the parent's current children.
    pub fn children(&self) -> Vec<u32> {
        let mut kids = Vec::new();
        if let Ok(rd) = fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                    // pid (comm) state ppid ...
                    if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                        let f: Vec<&str> = rest.split_whitespace().collect();
                        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(self.pid) {
                            kids.push(pid);
                        }
                    }
                }
            }
        }
        kids
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> Vec<AccessLine> {
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.is_empty())
            .map(AccessLine::parse)
            .collect()
    }

    /// Waits until the access log has at least `n` lines (logging happens after the
    /// response is written).
    pub fn wait_access_lines(&self, n: usize) -> Vec<AccessLine> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines = self.access_log();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `apache2 -k graceful`, by pid: SIGUSR1 to the parent. Waits for a new generation.
    pub fn graceful(&self) {
        let before = self.children();
        signal(self.pid, "USR1");
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || format!("graceful restart did not finish:\n{}", self.error_log()),
            || {
                let now = self.children();
                // Under event/worker, old children may linger while they finish; a new
                // child is enough.
                (!now.is_empty() && now.iter().all(|p| !before.contains(p)))
                    || (now.iter().any(|p| !before.contains(p)) && self.opts.mpm != Mpm::Prefork)
            },
        );
        // The parent reloads its config and modules before it forks the new children; let
        // the listeners settle.
        thread::sleep(Duration::from_millis(300));
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || "no listener after graceful".into(),
            || TcpStream::connect(self.addr()).is_ok(),
        );
    }

    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.pid == 0 {
            return;
        }
        signal(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && !is_zombie(self.pid) {
            if Instant::now() > deadline {
                signal(self.pid, "KILL");
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lines of the error log that say a child died by a signal or the module failed.
    pub fn crash_lines(&self) -> Vec<String> {
        self.error_log()
            .lines()
            .filter(|l| {
                l.contains("exit signal")
                    || l.contains("mod_dtprovider")
                    || l.contains("dtprovider:")
                    || l.contains("panicked")
            })
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        self.stop();
        remove_scratch_unless_failing(&self.dir);
    }
}

/// Removes a test's scratch directory once the test is done with it, unless the test is
/// failing (a panic is unwinding): then its config, logs and tracer output stay for a look.
pub fn remove_scratch_unless_failing(dir: &Path) {
    if !thread::panicking() && dir.starts_with(std::env::temp_dir()) {
        let _ = fs::remove_dir_all(dir);
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// One access-log line in the harness's `dt` format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLine {
    pub pid: u32,
    pub status: i32,
    pub bytes: u64,
    pub rport: u16,
    pub client: String,
    pub request: String,
}

impl AccessLine {
    fn parse(l: &str) -> AccessLine {
        let f: Vec<&str> = l.splitn(6, '\t').collect();
        assert_eq!(f.len(), 6, "bad access log line {l:?}");
        AccessLine {
            pid: f[0].parse().unwrap(),
            status: f[1].parse().unwrap(),
            bytes: f[2].parse().unwrap(),
            rport: f[3].parse().unwrap_or(0),
            client: f[4].to_string(),
            request: f[5].to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// bpftrace

/// A running bpftrace; its stdout is collected in the background.
pub struct Tracer {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    /// The tracer's scratch directory (script, `stderr`).
    dir: PathBuf,
}

impl Tracer {
    /// Runs `script` (with `@MODULE@` replaced by `module`, and the probes named as that
    /// module's backend names them, see [`Backend::script`]) and waits until its BEGIN probe
    /// printed `READY`, i.e. every probe is attached.
    pub fn start(script: &str, module: &Path) -> Tracer {
        Self::start_with_args(script, module, &[])
    }

    pub fn start_with_args(script: &str, module: &Path, args: &[&str]) -> Tracer {
        let dir = scratch_dir("bt");
        let file = dir.join("script.bt");
        let script = Backend::of(module).script(script);
        fs::write(&file, script.replace("@MODULE@", module.to_str().unwrap())).unwrap();
        let mut cmd = Command::new("bpftrace");
        cmd.arg(&file)
            .args(args)
            .env("BPFTRACE_STRLEN", "128")
            .stdin(Stdio::null());
        Self::spawn(cmd, &dir, "READY")
    }

    /// Spawns a prepared bpftrace command, collects its stdout in the background, and waits
    /// until stdout contains `marker` (the script's BEGIN output: every probe is attached).
    fn spawn(mut cmd: Command, dir: &Path, marker: &str) -> Tracer {
        let errfile = dir.join("stderr");
        let mut child = cmd
            .env("BPFTRACE_PERF_RB_PAGES", "4096")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&errfile).unwrap())
            .spawn()
            .expect("spawn bpftrace");
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        let reader = thread::spawn(move || {
            // Probe strings may hold any bytes (hostile URIs): read bytes, not UTF-8 lines.
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let t = Tracer {
            child: Some(child),
            out,
            reader: Some(reader),
            dir: dir.to_path_buf(),
        };
        wait_until(
            Duration::from_secs(90),
            Duration::from_millis(100),
            || {
                format!(
                    "bpftrace did not print {marker:?}:\n{}\n{}",
                    t.output(),
                    t.stderr()
                )
            },
            || {
                let exited = t.child.as_ref().map(|c| c.id()).is_some_and(is_zombie);
                assert!(
                    !exited,
                    "bpftrace exited before printing {marker:?}:\n{}\n{}",
                    t.output(),
                    t.stderr()
                );
                t.output().contains(marker)
            },
        );
        t
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Stops bpftrace with SIGINT (repeated: a signal right after attach can be lost) and
    /// returns everything it printed.
    pub fn stop(mut self) -> String {
        // Give in-flight events time to reach the ring buffer reader.
        thread::sleep(Duration::from_millis(500));
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            signal(child.id(), "INT");
            match child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                _ => thread::sleep(Duration::from_millis(300)),
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let out = self.output();
        let err = self.stderr();
        assert!(
            !out.contains("Lost ") && !err.contains("Lost "),
            "bpftrace lost events:\n{err}"
        );
        out
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_scratch_unless_failing(&self.dir);
    }
}

/// The full-view tracing script (every argument, every field).
pub const TRACE_ALL: &str = include_str!("trace-all.bt");

/// One probe firing, as printed by `trace-all.bt`.
#[derive(Clone, Debug, Default)]
pub struct Event {
    pub start: bool,
    pub pid: u32,
    pub tid: u32,
    pub id: u64,
    pub arg4: i32,
    pub arg5: u64,
    pub status: u16,
    pub lport: u16,
    pub rport: u16,
    pub ipver: u8,
    pub flags: u8,
    pub latency: u64,
    pub bytes: u64,
    pub start_us: u64,
    pub connid: u64,
    /// arg1, arg2, arg3 are the very pointers in dt_method, dt_uri, dt_raddr.
    pub same_ptrs: bool,
    pub method: String,
    pub uri: String,
    pub raddr: String,
    pub laddr: String,
    pub agent: String,
    pub host: String,
    pub protocol: String,
    pub client: String,
    pub logid: String,
    pub path: String,
    pub reqline: String,
}

pub const FLAG_TLS: u8 = 1;
pub const FLAG_REDIRECTED: u8 = 2;
pub const FLAG_NO_START: u8 = 4;

/// Parses trace-all.bt output into events, in output order of their first line.
pub fn parse_events(out: &str) -> Vec<Event> {
    let mut by_key: BTreeMap<(u32, u64), (usize, Event, u8)> = BTreeMap::new();
    let mut order = 0usize;
    let mut lines = out.lines();
    while let Some(first) = lines.next() {
        // An E7 record runs to its "\tE7END" marker, across the newlines the request line holds.
        let mut line = first.to_string();
        if line.starts_with("E7\t") {
            while !line.ends_with("\tE7END") {
                let Some(more) = lines.next() else { break };
                line.push('\n');
                line.push_str(more);
            }
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 || !f[0].starts_with('E') {
            continue;
        }
        let tid: u32 = f[1].parse().unwrap_or(0);
        let key_t: u64 = f[2].parse().unwrap_or(0);
        let entry = by_key.entry((tid, key_t)).or_insert_with(|| {
            order += 1;
            (order, Event::default(), 0)
        });
        let e = &mut entry.1;
        let s = |i: usize| f.get(i).copied().unwrap_or("").to_string();
        let n = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        match f[0] {
            "E1" => {
                e.start = f[3].ends_with(":request__start") || f[3].ends_with(":request-start");
                e.pid = n(4) as u32;
                e.tid = tid;
                e.id = n(5);
                e.arg4 = f[6].parse().unwrap();
                e.arg5 = n(7);
                e.status = n(8) as u16;
                e.lport = n(9) as u16;
                e.rport = n(10) as u16;
                e.ipver = n(11) as u8;
                e.flags = n(12) as u8;
                e.latency = n(13);
                e.bytes = n(14);
                e.start_us = n(15);
                e.connid = n(16);
                e.same_ptrs = s(17) == "1" && s(18) == "1" && s(19) == "1";
            }
            "E2" => {
                e.method = s(3);
                e.uri = s(4);
            }
            "E3" => {
                e.raddr = s(3);
                e.laddr = s(4);
            }
            "E4" => {
                e.agent = s(3);
                e.host = s(4);
            }
            "E5" => {
                e.protocol = s(3);
                e.client = s(4);
            }
            "E6" => {
                e.logid = s(3);
                e.path = s(4);
            }
            "E7" => {
                // Everything between the third tab and the marker (a line may hold tabs).
                let rest = line.splitn(4, '\t').nth(3).unwrap_or("");
                e.reqline = rest.strip_suffix("\tE7END").unwrap_or(rest).to_string();
            }
            _ => continue,
        }
        entry.2 += 1;
    }
    let mut v: Vec<(usize, Event, u8)> = by_key.into_values().collect();
    for (_, e, parts) in &v {
        assert_eq!(*parts, 7, "incomplete event record {e:?}");
    }
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

// ---------------------------------------------------------------------------------------
// clients

/// Sends raw bytes on a new connection, half-closes, and returns all the server sent.
/// Returns the client's local port as well.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let port = s.local_addr().unwrap().port();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (port, buf)
}

/// Sends raw bytes without half-closing, reads until the server closes.
pub fn raw_exchange_keep_open(addr: SocketAddr, bytes: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let port = s.local_addr().unwrap().port();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (port, buf)
}

/// The status codes of every HTTP/1.x response in `buf`.
pub fn statuses(buf: &[u8]) -> Vec<i32> {
    let text = String::from_utf8_lossy(buf);
    let mut v = Vec::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("HTTP/1.") {
        let tail = &rest[i..];
        if let Some(code) = tail.get(9..12).and_then(|c| c.parse().ok()) {
            v.push(code);
        }
        rest = &tail[8..];
    }
    v
}

/// A simple `GET`/`HEAD` with `Connection: close`; returns (client port, status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, i32, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let (port, buf) = raw_exchange_keep_open(addr, req.as_bytes());
    let status = statuses(&buf).first().copied().unwrap_or(0);
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| buf[i + 4..].to_vec())
        .unwrap_or_default();
    (port, status, body)
}

/// Runs GETs of `path` from `conns` threads at once, each sending `per_conn` requests over
/// keep-alive connections. Like any load generator it reconnects when the server closes an
/// idle keep-alive connection (the event MPM does that when all its workers are busy).
/// Returns how many requests got a complete response; failures are reported on stderr.
pub fn load(addr: SocketAddr, path: &str, conns: usize, per_conn: usize) -> usize {
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.to_string();
            thread::spawn(move || {
                let mut ok = 0;
                let mut reconnects = 0;
                'conn: while ok < per_conn && reconnects <= 20 {
                    let Ok(s) = TcpStream::connect(addr) else {
                        reconnects += 1;
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while ok < per_conn {
                        let close = if ok + 1 == per_conn {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n");
                        if w.write_all(req.as_bytes()).is_err()
                            || read_one_response(&mut r).is_none()
                        {
                            reconnects += 1;
                            continue 'conn;
                        }
                        ok += 1;
                    }
                }
                if ok < per_conn {
                    eprintln!("load: gave up after {ok} of {per_conn} responses");
                }
                ok
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
pub fn read_one_response(r: &mut impl BufRead) -> Option<i32> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: i32 = status_line.get(9..12)?.parse().ok()?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(status)
}

/// Runs curl (for HTTP/2 cleartext with prior knowledge); returns stdout.
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn module_has_http2() -> bool {
    Path::new(MODULES).join("mod_http2.so").exists()
}

// =======================================================================================
// Issue 3 (examples/, demo/): helpers for running the example scripts as users run them.
// Kept in this separate section; nothing above is changed.

/// The module path the examples name: the Debian package's.
pub const DEB_MODULE: &str = "/usr/lib/apache2/modules/mod_dtprovider.so";

/// A file of the repository.
pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// examples/<name> pointed at `module`, exactly as each example's header tells users to do
/// for a module outside the Debian path (replace that path).
pub fn example_for(name: &str, module: &Path) -> String {
    let text = fs::read_to_string(repo_file(&format!("examples/{name}"))).unwrap();
    assert!(
        text.contains(DEB_MODULE),
        "examples/{name} does not name {DEB_MODULE}"
    );
    text.replace(DEB_MODULE, module.to_str().unwrap())
}

impl Tracer {
    /// Runs bpftrace on `script` (complete text, fed on stdin as `bpftrace -` the way the
    /// examples' headers say) with positional `args`, in bpftrace's default environment
    /// (no BPFTRACE_STRLEN: what a user gets), and waits until stdout contains `marker`.
    pub fn start_until(script: &str, args: &[&str], marker: &str) -> Tracer {
        let dir = scratch_dir("bt");
        let file = dir.join("script.bt");
        fs::write(&file, script).unwrap();
        let mut cmd = Command::new("bpftrace");
        cmd.arg("-")
            .args(args)
            .env_remove("BPFTRACE_STRLEN")
            .stdin(fs::File::open(&file).unwrap());
        Self::spawn(cmd, &dir, marker)
    }
}
