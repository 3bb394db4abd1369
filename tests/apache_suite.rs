//! Apache's own test suite, run against Debian's apache2 with the module loaded and traced.
//!
//! The httpd project's perl framework (about 145 test files and 7,000 subtests: core,
//! mod_rewrite, proxies, TLS, filters, limits, malformed input; the one corpus of requests that
//! nobody on this project wrote) runs three times under one MPM, each time in its own ServerRoot
//! on 127.0.0.1 only:
//!
//! 1. without the module (the baseline);
//! 2. with the module loaded (`LoadModule` through the framework's `-httpd_conf_extra`);
//! 3. with the module loaded and bpftrace attached to both probes by the module's path.
//!
//! Passes 2 and 3 must give every test file the baseline's result (ok, failed subtests,
//! skipped); the baseline's own failures on Debian's build are printed. In pass 3 the
//! request-done events equal the access-log lines over the whole run, status by status; every
//! request-start has its request-done (by id), and every request-done without a start carries
//! the no-start flag (requests Apache rejected while reading them). In every pass no Apache
//! process died by a signal and the module logged nothing.
//!
//! The event MPM runs by default (5-7 minutes a pass on a 2-core machine);
//! `DTPROVIDER_SOAK=1` adds prefork and worker. The figures are printed;
//! `DTPROVIDER_REPORT=1` also writes them into RELIABILITY.md.
//!
//! The framework comes from Debian's apache2 source package, unpacked under
//! `target/apache2-source/` (CI fetches it with a `deb-src` line and `apt-get source apache2`,
//! and installs the Debian packages of the perl modules it needs, `PERL_MODULES` below;
//! `DTPROVIDER_APACHE_SOURCE` names another unpacked source tree). It refuses to run as root,
//! so each pass runs it as `nobody` on a private copy, with bpftrace as root. Without root,
//! bpftrace or the source the test skips loudly, and fails when `CI` is set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use testkit::*;

/// Pass 3's tracer: a line per request-start (`S id`) and per request-done
/// (`D id flags status method uri`), and the request-done count per status. Reads `dt_rqid`
/// (offset 0) and `dt_flags` (offset 15) of `dthttpd_t` (docs/probes.md's table), and arg1, arg2, arg4.
const TRACE_SCRIPT: &str = r#"BEGIN { printf("READY\n"); }
usdt:@MODULE@:httpd:request__start { printf("S\t%llu\n", *(uint64 *)arg0); }
usdt:@MODULE@:httpd:request__done {
	@status[arg4] = count();
	printf("D\t%llu\t%d\t%d\t%s\t%s\n", *(uint64 *)arg0, *(uint8 *)(arg0 + 15), arg4,
	    str(arg1), str(arg2));
}
"#;

/// The framework refuses to run as root: each pass runs it as this user, on a copy it owns.
const RUN_AS: &str = "nobody";

/// A pass takes about 5 minutes on an idle 2-core machine; this bound keeps a hung one from
/// eating CI's 90 minutes.
const PASS_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The passes use most of the machine; one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn soak() -> bool {
    std::env::var("DTPROVIDER_SOAK").is_ok_and(|v| v == "1")
}

#[test]
fn apache_suite_event() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    suite(Mpm::Event);
}

#[test]
fn apache_suite_prefork_and_worker_in_soak() {
    if !soak() {
        eprintln!("Apache's test suite under prefork and worker runs with DTPROVIDER_SOAK=1");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    suite(Mpm::Prefork);
    suite(Mpm::Worker);
}

// ---------------------------------------------------------------------------------------
// the three passes and what they must show

fn suite(mpm: Mpm) {
    let what = format!("Apache's test suite ({})", mpm.name());
    let Some(src) = need_suite(&what) else {
        return;
    };
    eprintln!(
        "{what}: perl framework of Debian's apache2 source {}, against {}",
        src.version,
        apache_version()
    );
    // Before the baseline, so that a stale build fails at once.
    let built = built_module();
    let passes: Vec<Pass> = [Kind::Baseline, Kind::Loaded, Kind::Traced]
        .into_iter()
        .map(|kind| run_pass(&src, &built, mpm, kind))
        .collect();
    let base = &passes[0];
    let failing: Vec<String> = base
        .files
        .iter()
        .filter(|(_, r)| r.verdict() == "failed")
        .map(|(f, r)| format!("  {f}: {r}"))
        .collect();
    if !failing.is_empty() {
        eprintln!(
            "{what}: the baseline's own failures (Debian's build, without the module):\n{}",
            failing.join("\n")
        );
    }
    for p in &passes[1..] {
        let diff = differences(base, p);
        assert!(
            diff.is_empty(),
            "{what}: test files whose result {} differs from the baseline's:\n{}",
            p.kind.name(),
            diff.join("\n")
        );
    }
    let trace = passes[2].trace.as_ref().expect("pass 3 traced");
    let figures = Figures {
        mpm,
        source: src.version.clone(),
        passes: &passes,
        trace,
    };
    eprintln!("[apache suite] {}: {}", mpm.name(), figures.summary());
    if std::env::var("DTPROVIDER_REPORT").is_ok_and(|v| v == "1") {
        write_report(&figures);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Baseline,
    Loaded,
    Traced,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "without the module",
            Kind::Loaded => "with the module loaded",
            Kind::Traced => "with the module loaded and traced",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Loaded => "loaded",
            Kind::Traced => "traced",
        }
    }
}

struct Pass {
    kind: Kind,
    /// Result of each test file, by its path (`t/apache/404.t`).
    files: BTreeMap<String, FileResult>,
    /// Access-log lines by status.
    logged: BTreeMap<i32, u64>,
    /// Size of the error log, bytes.
    error_log_bytes: u64,
    trace: Option<Trace>,
    seconds: f64,
}

impl Pass {
    fn subtests(&self) -> u32 {
        self.files.values().map(|r| r.ran).sum()
    }
    fn requests(&self) -> u64 {
        self.logged.values().sum()
    }
}

/// One pass in a private copy of the framework: configure, (trace,) run, check.
fn run_pass(src: &Source, built: &Path, mpm: Mpm, kind: Kind) -> Pass {
    let began = Instant::now();
    let what = format!("Apache's test suite ({}, {})", mpm.name(), kind.name());
    eprintln!("{what}: starting");
    let scratch = Scratch(scratch_dir(&format!("suite-{}-{}", mpm.name(), kind.tag())));
    let dir = &scratch.0;
    let pf = dir.join("perl-framework");
    run_ok(
        Command::new("cp").arg("-a").arg(&src.framework).arg(&pf),
        "copying the framework",
    );
    loopback_only(&pf);
    let base_conf = dir.join("base.conf");
    fs::write(&base_conf, base_config(mpm)).unwrap();
    let module = dir.join("mod_dtprovider.so");
    let mut configure: Vec<String> = ["perl", "Makefile.PL", "-apxs"].map(String::from).into();
    configure.push(which("apxs").unwrap().display().to_string());
    configure.extend(["-httpd_conf".into(), base_conf.display().to_string()]);
    configure.extend(["-port".into(), "select".into()]);
    if kind != Kind::Baseline {
        fs::copy(built, &module).unwrap();
        chmod(&module, 0o755).unwrap();
        let extra = dir.join("dtprovider.conf");
        fs::write(
            &extra,
            format!("LoadModule dtprovider_module {}\n", module.display()),
        )
        .unwrap();
        configure.extend(["-httpd_conf_extra".into(), extra.display().to_string()]);
    }
    let tap = dir.join("tap");
    fs::create_dir(&tap).unwrap();
    run_ok(
        Command::new("chown")
            .args(["-R", &format!("{RUN_AS}:")])
            .arg(dir),
        "chown",
    );
    // Options go to Makefile.PL: the ones it saves override any given to t/TEST later.
    run_ok(&mut as_user(dir, &configure), "perl Makefile.PL");
    run_ok(
        &mut as_user(dir, &["t/TEST".into(), "-configure".into()]),
        "t/TEST -configure",
    );
    let conf = pf.join("t/conf/httpd.conf");
    check_config(&pf, mpm, kind != Kind::Baseline);
    let tracer = (kind == Kind::Traced).then(|| {
        // Tracer::start names the probes as the module's backend does.
        Tracer::start(TRACE_SCRIPT, &module)
    });
    let run = run_suite(dir, &tap, &module);
    // t/TEST may have regenerated the configuration: check what Apache really ran with.
    check_config(&pf, mpm, kind != Kind::Baseline);
    let out = tracer.map(Tracer::stop);
    assert_eq!(
        run.module_mapped,
        kind != Kind::Baseline,
        "{what}: whether Apache mapped {} (from {})",
        module.display(),
        conf.display()
    );
    let summary = run
        .output
        .lines()
        .find(|l| l.starts_with("Files="))
        .unwrap_or_else(|| panic!("{what}: no harness summary in:\n{}", tail(&run.output)))
        .to_string();
    assert!(
        !run.output.contains("server dumped core"),
        "{what}: Apache dumped core:\n{}",
        tail(&run.output)
    );
    let files = read_tap(&tap);
    let declared: usize = summary
        .trim_start_matches("Files=")
        .split(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        files.len(),
        declared,
        "{what}: TAP files kept vs the harness's {summary:?}"
    );
    let logged = access_log_by_status(&pf);
    let (error_log_bytes, problems) = scan_error_logs(&pf);
    assert!(
        problems.is_empty(),
        "{what}: the error log says an Apache process died by a signal or the module logged:\n{}",
        problems.join("\n")
    );
    let trace = out.map(|o| check_trace(&what, &o, &logged));
    let pass = Pass {
        kind,
        files,
        logged,
        error_log_bytes,
        trace,
        seconds: began.elapsed().as_secs_f64(),
    };
    eprintln!(
        "{what}: {summary}; {} test files, {} subtests, {} requests logged, error log {} MB, \
         {:.1} min",
        pass.files.len(),
        pass.subtests(),
        pass.requests(),
        pass.error_log_bytes >> 20,
        pass.seconds / 60.0
    );
    pass
}

/// File-by-file differences of `p` from `base`.
fn differences(base: &Pass, p: &Pass) -> Vec<String> {
    let names: BTreeSet<&String> = base.files.keys().chain(p.files.keys()).collect();
    let mut diff = Vec::new();
    for f in names {
        let (a, b) = (base.files.get(f), p.files.get(f));
        if a != b {
            let show = |r: Option<&FileResult>| r.map_or("not run".into(), |r| r.to_string());
            diff.push(format!(
                "  {f}: baseline {}; {} {}",
                show(a),
                p.kind.name(),
                show(b)
            ));
        }
    }
    diff
}

// ---------------------------------------------------------------------------------------
// prerequisites and the source package

struct Source {
    /// `debian/perl-framework` of the unpacked source package.
    framework: PathBuf,
    /// The source package's version (debian/changelog).
    version: String,
}

const PERL_MODULES: &str = "-MLWP::UserAgent -MHTTP::DAV -MProtocol::HTTP2 -MDateTime \
                            -MAnyEvent -MFCGI -MNet::SSLeay -MCrypt::SSLeay -MHTML::Parser";

fn need_suite(what: &str) -> Option<Source> {
    if !need_tracing(what) {
        return None;
    }
    let src = source();
    let no_source = format!(
        "Debian's apache2 source package unpacked in {} (add a deb-src line for the machine's \
         suites and run apt-get source apache2 in target/apache2-source; \
         DTPROVIDER_APACHE_SOURCE names another place)",
        source_root().display()
    );
    let mut missing = Vec::new();
    if src.is_none() {
        missing.push(no_source.as_str());
    }
    if which("apxs").is_none() {
        missing.push("apxs (apt-get install apache2-dev)");
    }
    if which("runuser").is_none() {
        missing.push("runuser (util-linux)");
    }
    let perl_ok = Command::new("perl")
        .args(PERL_MODULES.split_whitespace())
        .arg("-e1")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !perl_ok {
        missing.push("the perl modules the framework uses (perl -e1 with PERL_MODULES fails)");
    }
    need_all(what, &missing).then(|| src.unwrap())
}

fn source_root() -> PathBuf {
    std::env::var_os("DTPROVIDER_APACHE_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_file("target/apache2-source"))
}

fn source() -> Option<Source> {
    let root = source_root();
    // The unpacked tree itself, or the directory `apt-get source` ran in.
    let mut trees = vec![root.clone()];
    if let Ok(rd) = fs::read_dir(&root) {
        let mut subs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        subs.sort();
        trees.extend(subs);
    }
    let tree = trees.into_iter().find(|t| {
        t.join("debian/perl-framework/Apache-Test/lib/Apache/TestConfig.pm")
            .is_file()
    })?;
    let changelog = fs::read_to_string(tree.join("debian/changelog")).ok()?;
    let version = changelog
        .lines()
        .next()
        .and_then(|l| l.split_once('(')?.1.split_once(')'))
        .map(|v| v.0.to_string())?;
    Some(Source {
        framework: tree.join("debian/perl-framework"),
        version,
    })
}

fn apache_version() -> String {
    let out = Command::new("apache2").arg("-v").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Server version: ")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// configuration

/// The configuration the framework inherits (its `-httpd_conf`): the MPM, every module
/// Debian ships, dependencies first (mod_proxy_* need mod_proxy's symbols when they are
/// loaded), the three test-only modules, and mime.conf. Not mod_heartbeat: the suite's
/// extra.conf would make it send multicast.
fn base_config(mpm: Mpm) -> String {
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
fn loopback_only(pf: &Path) {
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
fn check_config(pf: &Path, mpm: Mpm, with_module: bool) {
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

fn conf_files(pf: &Path) -> Vec<PathBuf> {
    files_under(&pf.join("t/conf"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
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

// ---------------------------------------------------------------------------------------
// running

/// `args` as RUN_AS in the framework copy, with HOME in the pass's directory.
fn as_user(dir: &Path, args: &[String]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", RUN_AS, "--", "env", "LANG=C"])
        .arg(format!("HOME={}", dir.display()))
        .args(args)
        .current_dir(dir.join("perl-framework"))
        .stdin(Stdio::null());
    c
}

fn run_ok(c: &mut Command, what: &str) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout)),
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    out
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

struct SuiteRun {
    /// t/TEST's stdout and stderr.
    output: String,
    /// Whether Apache's parent process mapped `module` while the suite ran.
    module_mapped: bool,
}

/// Runs t/TEST (which starts Apache, runs every test file and stops Apache), keeping each
/// file's TAP in `tap`. Fails after PASS_DEADLINE, stopping everything it started.
fn run_suite(dir: &Path, tap: &Path, module: &Path) -> SuiteRun {
    let out_file = dir.join("suite.out");
    let out = fs::File::create(&out_file).unwrap();
    let mut child = as_user(
        dir,
        &[
            format!("PERL_TEST_HARNESS_DUMP_TAP={}", tap.display()),
            "t/TEST".into(),
        ],
    )
    .stdout(out.try_clone().unwrap())
    .stderr(out)
    .process_group(0)
    .spawn()
    .expect("run t/TEST");
    let apache = StopApache(dir.join("perl-framework/t/logs/httpd.pid"));
    let deadline = Instant::now() + PASS_DEADLINE;
    let mut module_mapped = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group this test started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            apache.stop();
            let _ = child.wait();
            panic!(
                "Apache's test suite did not finish within {PASS_DEADLINE:?}:\n{}",
                tail(&fs::read_to_string(&out_file).unwrap_or_default())
            );
        }
        if !module_mapped {
            module_mapped = apache.pid().is_some_and(|pid| {
                fs::read_to_string(format!("/proc/{pid}/maps"))
                    .is_ok_and(|m| m.contains(module.to_str().unwrap()))
            });
        }
        thread::sleep(Duration::from_secs(1));
    }
    SuiteRun {
        output: fs::read_to_string(&out_file).unwrap(),
        module_mapped,
    }
}

/// The Apache that t/TEST started, by its pid file: stopped if still running when dropped.
struct StopApache(PathBuf);

impl StopApache {
    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
    fn stop(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "TERM");
            thread::sleep(Duration::from_secs(3));
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for StopApache {
    fn drop(&mut self) {
        if self
            .pid()
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            self.stop();
        }
    }
}

/// A pass's directory, removed when the pass is done unless the test is failing.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_scratch_unless_failing(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// results

/// What one test file did, from its TAP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FileResult {
    planned: Option<u32>,
    /// `1..0 # skipped: <reason>`
    skip_all: Option<String>,
    ran: u32,
    failed: Vec<u32>,
    /// Subtests that ran as skipped (`ok N # skip`).
    skipped: u32,
    /// Failing subtests the file itself marks TODO (expected to fail).
    todo_failed: Vec<u32>,
    bailed_out: bool,
}

impl FileResult {
    fn verdict(&self) -> &'static str {
        if self.skip_all.is_some() {
            "skipped"
        } else if !self.failed.is_empty() || self.bailed_out || self.planned != Some(self.ran) {
            "failed"
        } else {
            "ok"
        }
    }
}

impl fmt::Display for FileResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(why) = &self.skip_all {
            return write!(f, "skipped ({why})");
        }
        write!(f, "{}, {} subtests", self.verdict(), self.ran)?;
        match self.planned {
            Some(n) if n != self.ran => write!(f, " of {n} planned")?,
            None => write!(f, " (no plan)")?,
            _ => {}
        }
        if !self.failed.is_empty() {
            write!(f, ", failed {:?}", self.failed)?;
        }
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        if !self.todo_failed.is_empty() {
            write!(f, ", TODO failing {:?}", self.todo_failed)?;
        }
        if self.bailed_out {
            write!(f, ", bailed out")?;
        }
        Ok(())
    }
}

fn parse_tap(text: &str) -> FileResult {
    let mut r = FileResult::default();
    let mut todo = BTreeSet::new();
    let mut n = 0;
    for line in text.lines() {
        if let Some(plan) = line.strip_prefix("1..") {
            let digits: String = plan.chars().take_while(char::is_ascii_digit).collect();
            r.planned = digits.parse().ok();
            let rest = plan[digits.len()..].trim();
            if r.planned == Some(0) {
                let why = rest.trim_start_matches('#').trim();
                r.skip_all = Some(why.trim_start_matches("skipped:").trim().to_string());
            } else if let Some(list) = rest.strip_prefix("todo") {
                todo.extend(
                    list.split(|c: char| !c.is_ascii_digit())
                        .filter_map(|x| x.parse::<u32>().ok()),
                );
            }
            continue;
        }
        if line.starts_with("Bail out!") {
            r.bailed_out = true;
            continue;
        }
        let (ok, rest) = if let Some(x) = line.strip_prefix("not ok") {
            (false, x)
        } else if let Some(x) = line.strip_prefix("ok") {
            (true, x)
        } else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        n += 1;
        let rest = rest.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let num = digits.parse().unwrap_or(n);
        let directive = rest
            .split_once('#')
            .map(|x| x.1.trim_start().to_ascii_lowercase())
            .unwrap_or_default();
        r.ran += 1;
        if directive.starts_with("skip") {
            r.skipped += 1;
        }
        if !ok {
            if directive.starts_with("todo") || todo.contains(&num) {
                r.todo_failed.push(num);
            } else {
                r.failed.push(num);
            }
        }
    }
    r
}

/// Every test file's result, from the TAP the harness kept (`PERL_TEST_HARNESS_DUMP_TAP`).
fn read_tap(tap: &Path) -> BTreeMap<String, FileResult> {
    files_under(tap)
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(tap).unwrap().display().to_string();
            let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
            (name, parse_tap(&text))
        })
        .collect()
}

/// Access-log lines by status. Every log the configuration writes outside a `<VirtualHost>`
/// is read and all must agree (two witnesses of the same requests: the main access log and
/// mod_ssl's request log). No vhost may log on its own or conditionally: such a request
/// would be in neither, and the test would need to count it there.
fn access_log_by_status(pf: &Path) -> BTreeMap<i32, u64> {
    let mut logs = Vec::new();
    for p in conf_files(pf) {
        let mut vhost = 0;
        for l in fs::read_to_string(&p).unwrap().lines() {
            let l = l.trim();
            let low = l.to_ascii_lowercase();
            if low.starts_with("<virtualhost") {
                vhost += 1;
            } else if low.starts_with("</virtualhost") {
                vhost -= 1;
            } else if low.starts_with("customlog ") || low.starts_with("transferlog ") {
                assert!(
                    vhost == 0 && !low.contains("env=") && !low.contains("expr="),
                    "{}: {l:?}: a vhost's own or conditional log, which this test does not count",
                    p.display()
                );
                let target = l.split_whitespace().nth(1).unwrap().trim_matches('"');
                assert!(!target.starts_with('|'), "a piped log: {l:?}");
                logs.push(pf.join("t").join(target));
            }
        }
    }
    assert!(
        !logs.is_empty(),
        "the generated configuration writes no access log"
    );
    let counts: Vec<(PathBuf, BTreeMap<i32, u64>)> = logs
        .into_iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
            let mut by = BTreeMap::new();
            for l in text.lines().filter(|l| !l.is_empty()) {
                // Both formats end with `%>s %b`.
                let st: i32 = l
                    .split_whitespace()
                    .rev()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{}: no status in {l:?}", p.display()));
                *by.entry(st).or_insert(0) += 1;
            }
            (p, by)
        })
        .collect();
    for (p, by) in &counts[1..] {
        assert_eq!(
            by,
            &counts[0].1,
            "{} and {} disagree (by status)",
            p.display(),
            counts[0].0.display()
        );
    }
    counts.into_iter().next().unwrap().1
}

/// Scans every error log (hundreds of MB at the suite's trace log level) for a process that
/// died by a signal or anything the module logged, then deletes it. Returns the bytes
/// scanned and the offending lines.
fn scan_error_logs(pf: &Path) -> (u64, Vec<String>) {
    let mut logs = BTreeSet::new();
    for p in conf_files(pf) {
        for l in fs::read_to_string(&p).unwrap().lines() {
            let mut w = l.split_whitespace();
            if w.next().is_some_and(|d| d.eq_ignore_ascii_case("ErrorLog")) {
                logs.insert(pf.join("t").join(w.next().unwrap().trim_matches('"')));
            }
        }
    }
    assert!(
        !logs.is_empty(),
        "no ErrorLog in the generated configuration"
    );
    let (mut bytes, mut bad) = (0, Vec::new());
    for p in logs {
        let mut r = BufReader::new(fs::File::open(&p).unwrap());
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap() > 0 {
            bytes += line.len() as u64;
            let l = String::from_utf8_lossy(&line);
            if l.contains("exit signal")
                || l.contains("[dtprovider:")
                || l.contains("mod_dtprovider: ")
                || l.contains("panicked at")
            {
                bad.push(l.trim_end().to_string());
            }
            line.clear();
        }
        fs::remove_file(&p).unwrap();
    }
    (bytes, bad)
}

/// What the tracer saw in pass 3.
struct Trace {
    starts: usize,
    dones: BTreeMap<i32, u64>,
    /// request-done events without a request-start (all flagged), by status: how many, and
    /// the distinct method-and-URI pairs they carried.
    no_start: BTreeMap<i32, (u64, BTreeSet<String>)>,
}

fn check_trace(what: &str, out: &str, logged: &BTreeMap<i32, u64>) -> Trace {
    let mut starts = HashSet::new();
    let mut dones = HashMap::new();
    let mut counted = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.splitn(6, '\t').collect();
        match (f[0], f.len()) {
            ("S", 2) => {
                let id: u64 = f[1].parse().unwrap();
                assert!(starts.insert(id), "{what}: start id {id} twice");
            }
            ("D", 6) => {
                let id: u64 = f[1].parse().unwrap();
                let flags: u8 = f[2].parse().unwrap();
                let status: i32 = f[3].parse().unwrap();
                let e = (flags, status, f[4].to_string(), f[5].to_string());
                assert!(dones.insert(id, e).is_none(), "{what}: done id {id} twice");
            }
            _ => {
                if let Some(rest) = l.strip_prefix("@status[") {
                    let (st, n) = rest.split_once("]: ").unwrap();
                    counted.insert(st.parse::<i32>().unwrap(), n.parse::<u64>().unwrap());
                }
            }
        }
    }
    let mut by_status = BTreeMap::new();
    let mut no_start: BTreeMap<i32, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (id, (flags, status, method, uri)) in &dones {
        *by_status.entry(*status).or_insert(0u64) += 1;
        let flagged = flags & FLAG_NO_START != 0;
        if starts.contains(id) {
            assert!(
                !flagged,
                "{what}: done {id} has a start but the no-start flag"
            );
        } else {
            assert!(
                flagged,
                "{what}: request-done {id} ({status} {method} {uri}) without a request-start, \
                 and not flagged as such"
            );
            let e = no_start.entry(*status).or_default();
            e.0 += 1;
            e.1.insert(if method.is_empty() && uri.is_empty() {
                "empty method and URI".into()
            } else {
                format!("{:?}", format!("{method} {uri}"))
            });
        }
    }
    let orphans: Vec<&u64> = starts.iter().filter(|id| !dones.contains_key(id)).collect();
    assert!(
        orphans.is_empty(),
        "{what}: {} request-start events without a request-done: {:?}",
        orphans.len(),
        &orphans[..orphans.len().min(10)]
    );
    assert_eq!(
        by_status, counted,
        "{what}: request-done lines vs bpftrace's own count, by status"
    );
    assert_eq!(
        &by_status, logged,
        "{what}: request-done events vs access-log lines, by status"
    );
    Trace {
        starts: starts.len(),
        dones: by_status,
        no_start,
    }
}

// ---------------------------------------------------------------------------------------
// figures

struct Figures<'a> {
    mpm: Mpm,
    source: String,
    passes: &'a [Pass],
    trace: &'a Trace,
}

fn statuses(m: &BTreeMap<i32, u64>) -> String {
    m.iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Figures<'_> {
    fn files(&self) -> String {
        let base = &self.passes[0];
        let count = |v: &str| base.files.values().filter(|r| r.verdict() == v).count();
        let failing: Vec<&str> = base
            .files
            .iter()
            .filter(|(_, r)| r.verdict() == "failed")
            .map(|(f, _)| f.as_str())
            .collect();
        format!(
            "{} test files ({} ok, {} skipped, {} failing in every pass{}), {} subtests",
            base.files.len(),
            count("ok"),
            count("skipped"),
            failing.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!(": {}", failing.join(", "))
            },
            base.subtests()
        )
    }
    fn requests(&self) -> String {
        let t = self.trace;
        let dones: u64 = t.dones.values().sum();
        let no_start: u64 = t.no_start.values().map(|x| x.0).sum();
        format!(
            "{} access-log lines = {} request-done events ({}); {} request-start, each with its \
             request-done; {} request-done without a start, all flagged ({})",
            self.passes[2].requests(),
            dones,
            statuses(&t.dones),
            t.starts,
            no_start,
            t.no_start
                .iter()
                .map(|(s, (n, seen))| {
                    let ex: Vec<&str> = seen.iter().take(3).map(String::as_str).collect();
                    let more = seen.len().saturating_sub(ex.len());
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    format!("{s}: {n}, carrying {}{more}", ex.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
    fn minutes(&self) -> String {
        self.passes
            .iter()
            .map(|p| format!("{:.1}", p.seconds / 60.0))
            .collect::<Vec<_>>()
            .join(" / ")
    }
    fn summary(&self) -> String {
        format!(
            "{}, identical file by file in all three passes; traced: {}; no Apache process died \
             by a signal, the module logged nothing; minutes per pass (baseline / loaded / \
             traced): {}",
            self.files(),
            self.requests(),
            self.minutes()
        )
    }
}

const BEGIN: &str = "<!-- apache-suite:begin -->";
const END: &str = "<!-- apache-suite:end -->";

/// Replaces this MPM's row of RELIABILITY.md's Apache-suite table (other MPMs' rows stay).
fn write_report(fig: &Figures) {
    let path = repo_file("RELIABILITY.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{} has no {BEGIN} ... {END} section", path.display());
    };
    let section = &text[b + BEGIN.len()..e];
    let mut rows: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| {
            let mpm = l.strip_prefix("| ")?.split(' ').next()?;
            Mpm::ALL
                .iter()
                .any(|m| m.name() == mpm)
                .then(|| (mpm.to_string(), l.to_string()))
        })
        .collect();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cells = [
        fig.mpm.name().to_string(),
        today(),
        format!(
            "{}, framework from Debian's apache2 source {}, kernel {}",
            apache_version(),
            fig.source,
            kernel.trim()
        ),
        fig.files(),
        fig.requests(),
        fig.minutes(),
    ];
    // A URI among the examples may hold a `|`.
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    rows.insert(fig.mpm.name().into(), format!("| {} |", cells.join(" | ")));
    let mut body = String::from(
        "\n| MPM | measured | against | test files (same result in all three passes) | \
         traced pass | minutes (baseline / loaded / traced) |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows.values() {
        body.push_str(r);
        body.push('\n');
    }
    let new = format!("{}{BEGIN}{body}{}", &text[..b], &text[e..]);
    fs::write(&path, new).unwrap();
}

fn today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------
// the checks themselves can fail

#[test]
fn tap_results_and_differences_are_read_exactly() {
    let ok = parse_tap("1..3\n# comment\nok 1\nok 2 # skip no TLS 1.3\nok 3 - named\n");
    assert_eq!((ok.verdict(), ok.ran, ok.skipped), ("ok", 3, 1));
    let failed = parse_tap("1..4 todo 3;\nok 1\nnot ok 2\nnot ok 3\n    not ok 1\nok 4\n");
    assert_eq!(failed.verdict(), "failed");
    assert_eq!((failed.failed, failed.todo_failed), (vec![2], vec![3]));
    let short = parse_tap("1..5\nok 1\nok 2\n");
    assert_eq!(short.verdict(), "failed", "a file that stopped early");
    let skipped = parse_tap("1..0 # skipped: cannot find module 'mod_heartbeat'\n");
    assert_eq!(skipped.verdict(), "skipped");
    assert_eq!(
        skipped.to_string(),
        "skipped (cannot find module 'mod_heartbeat')"
    );
    let pass = |files: Vec<(&str, FileResult)>| Pass {
        kind: Kind::Loaded,
        files: files.into_iter().map(|(f, r)| (f.to_string(), r)).collect(),
        logged: BTreeMap::new(),
        error_log_bytes: 0,
        trace: None,
        seconds: 0.0,
    };
    let base = pass(vec![("t/a.t", ok.clone()), ("t/b.t", skipped.clone())]);
    assert!(
        differences(
            &base,
            &pass(vec![("t/a.t", ok.clone()), ("t/b.t", skipped)])
        )
        .is_empty()
    );
    let diff = differences(
        &base,
        &pass(vec![("t/a.t", parse_tap("1..3\nok 1\nnot ok 2\nok 3\n"))]),
    );
    assert_eq!(diff.len(), 2, "{diff:?}");
}
