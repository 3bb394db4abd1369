//! bpftrace, run in the background: its stdout collected as bytes (probe strings may hold any
//! byte: a hostile URI must not stop the reader), ready once the script's BEGIN printed its
//! marker, stopped by SIGINT, and lost events reported.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::module::Backend;
use crate::process::{alive, poll_until, remove_scratch_unless_failing, scratch_dir, stop_child};

/// How to run a script (see [`Tracer::launch`]).
#[derive(Clone, Debug, Default)]
pub struct How<'a> {
    /// Positional arguments after the script.
    pub args: &'a [&'a str],
    /// What the script prints once every probe is attached (its BEGIN output).
    pub marker: &'a str,
    /// Feed the script on stdin (`bpftrace -`, as the examples' headers say) instead of
    /// naming the file.
    pub stdin: bool,
    /// BPFTRACE_STRLEN; None: bpftrace's default (what a user gets).
    pub strlen: Option<&'a str>,
    /// BPFTRACE_PERF_RB_PAGES; None: bpftrace's default.
    pub rb_pages: Option<&'a str>,
    /// Run under `taskset -c <cpus>`.
    pub cpus: Option<&'a str>,
}

/// A running bpftrace; its stdout is collected in the background.
pub struct Tracer {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    /// The tracer's directory (script, `stderr`).
    dir: PathBuf,
    /// The directory is a scratch directory of ours, removed on drop.
    scratch: bool,
}

impl Tracer {
    /// Writes `script` to `dir`/script.bt, runs bpftrace on it as `how` says, and waits (up
    /// to 120 s) until stdout contains `how.marker`; an error if bpftrace exits first.
    pub fn launch(script: &str, dir: &Path, how: &How) -> Result<Tracer, String> {
        crate::process::mkdir(dir)?;
        let file = dir.join("script.bt");
        crate::process::write(&file, script)?;
        let mut cmd = match how.cpus {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c, "bpftrace"]);
                t
            }
            None => Command::new("bpftrace"),
        };
        if how.stdin {
            cmd.arg("-")
                .stdin(fs::File::open(&file).map_err(|e| e.to_string())?);
        } else {
            cmd.arg(&file).stdin(Stdio::null());
        }
        cmd.args(how.args);
        match how.strlen {
            Some(n) => cmd.env("BPFTRACE_STRLEN", n),
            None => cmd.env_remove("BPFTRACE_STRLEN"),
        };
        if let Some(p) = how.rb_pages {
            cmd.env("BPFTRACE_PERF_RB_PAGES", p);
        }
        let errfile = dir.join("stderr");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&errfile).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("spawn bpftrace: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        let reader = thread::spawn(move || {
            // Bytes, not UTF-8 lines: one invalid byte would end a line reader.
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
            scratch: false,
        };
        let marker = how.marker;
        let exited = std::cell::Cell::new(false);
        poll_until(
            Duration::from_secs(120),
            Duration::from_millis(100),
            || {
                let why = if exited.get() {
                    "exited before printing"
                } else {
                    "did not print"
                };
                format!("bpftrace {why} {marker:?}:\n{}\n{}", t.output(), t.stderr())
            },
            || {
                exited.set(!t.pid().is_some_and(alive));
                exited.get() || t.output().contains(marker)
            },
        )?;
        if exited.get() && !t.output().contains(marker) {
            return Err(format!(
                "bpftrace exited before printing {marker:?}:\n{}\n{}",
                t.output(),
                t.stderr()
            ));
        }
        Ok(t)
    }

    /// Runs `script` (with `@MODULE@` replaced by `module`, and the probes named as that
    /// module's backend names them, see [`Backend::script`]) and waits until its BEGIN probe
    /// printed `READY`, i.e. every probe is attached.
    pub fn start(script: &str, module: &Path) -> Tracer {
        Self::start_with_args(script, module, &[])
    }

    pub fn start_with_args(script: &str, module: &Path, args: &[&str]) -> Tracer {
        let script = Backend::of(module).script(script);
        let script = script.replace("@MODULE@", module.to_str().unwrap());
        let how = How {
            args,
            marker: "READY",
            strlen: Some("128"),
            rb_pages: Some("4096"),
            ..How::default()
        };
        Self::scratch(&script, &how)
    }

    /// Runs bpftrace on `script` (complete text, fed on stdin as `bpftrace -` the way the
    /// examples' headers say) with positional `args`, in bpftrace's default environment
    /// (no BPFTRACE_STRLEN: what a user gets), and waits until stdout contains `marker`.
    pub fn start_until(script: &str, args: &[&str], marker: &str) -> Tracer {
        let how = How {
            args,
            marker,
            stdin: true,
            rb_pages: Some("4096"),
            ..How::default()
        };
        Self::scratch(script, &how)
    }

    /// [`Tracer::launch`] in a scratch directory removed on drop; a failure fails the test.
    fn scratch(script: &str, how: &How) -> Tracer {
        match Self::launch(script, &scratch_dir("bt"), how) {
            Ok(mut t) => {
                t.scratch = true;
                t
            }
            Err(e) => panic!("{e}"),
        }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// bpftrace's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops bpftrace and returns its stdout and stderr, whatever they say (lost events
    /// included): in-flight events get 500 ms to reach the ring buffer reader, then SIGINT
    /// is repeated (a signal right after attach can be lost), SIGKILL after 30 s.
    pub fn finish(&mut self) -> (String, String) {
        thread::sleep(Duration::from_millis(500));
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, "INT", Duration::from_secs(30));
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (self.output(), self.stderr())
    }

    /// [`Tracer::finish`], and everything bpftrace printed; an error if it lost events.
    pub fn try_stop(mut self) -> Result<String, String> {
        let (out, err) = self.finish();
        if out.contains("Lost ") || err.contains("Lost ") {
            return Err(format!("bpftrace lost events:\n{err}"));
        }
        Ok(out)
    }

    /// [`Tracer::try_stop`] for tests: lost events fail the test.
    pub fn stop(self) -> String {
        match self.try_stop() {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.scratch {
            remove_scratch_unless_failing(&self.dir);
        }
    }
}

/// The value of a bpftrace map line `@name: value` (0 when the map was never written).
pub fn bt_count(out: &str, name: &str) -> u64 {
    let key = format!("@{name}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
