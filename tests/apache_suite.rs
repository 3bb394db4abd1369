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
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use testkit::*;

#[path = "apache_suite/config.rs"]
mod config;
#[path = "apache_suite/figures.rs"]
mod figures;
#[path = "apache_suite/results.rs"]
mod results;
#[path = "apache_suite/running.rs"]
mod running;
#[path = "apache_suite/source.rs"]
mod source;
#[path = "apache_suite/tap.rs"]
mod tap;
use config::*;
use figures::*;
use results::*;
use running::*;
use source::*;
use tap::*;

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
        let diff = differences(&base.files, &p.files, p.kind.name());
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
