//! Running the framework as an unprivileged user on a private copy, and stopping what it
//! started.

use super::*;

/// `args` as RUN_AS in the framework copy, with HOME in the pass's directory.
pub(crate) fn as_user(dir: &Path, args: &[String]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", RUN_AS, "--", "env", "LANG=C"])
        .arg(format!("HOME={}", dir.display()))
        .args(args)
        .current_dir(dir.join("perl-framework"))
        .stdin(Stdio::null());
    c
}

pub(crate) fn run_ok(c: &mut Command, what: &str) -> Output {
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

pub(crate) fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

pub(crate) struct SuiteRun {
    /// t/TEST's stdout and stderr.
    pub(crate) output: String,
    /// Whether Apache's parent process mapped `module` while the suite ran.
    pub(crate) module_mapped: bool,
}

/// Runs t/TEST (which starts Apache, runs every test file and stops Apache), keeping each
/// file's TAP in `tap`. Fails after PASS_DEADLINE, stopping everything it started.
pub(crate) fn run_suite(dir: &Path, tap: &Path, module: &Path) -> SuiteRun {
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
pub(crate) struct StopApache(pub(crate) PathBuf);

impl StopApache {
    pub(crate) fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
    pub(crate) fn stop(&self) {
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
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_scratch_unless_failing(&self.0);
    }
}
