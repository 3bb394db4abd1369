//! Processes, ports, polling and scratch directories: the plumbing under the Apache and
//! tracer helpers. Every process is found and stopped by its pid, never by name.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `ready` every `step` until it holds; `Err(what())` once `timeout` has passed.
pub fn poll_until(
    timeout: Duration,
    step: Duration,
    what: impl Fn() -> String,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() >= deadline {
            return Err(what());
        }
        thread::sleep(step);
    }
    Ok(())
}

/// [`poll_until`] for tests: after `timeout` the test fails with `what()`.
pub fn wait_until(
    timeout: Duration,
    step: Duration,
    what: impl Fn() -> String,
    ready: impl FnMut() -> bool,
) {
    if let Err(e) = poll_until(timeout, step, what, ready) {
        panic!("{e}");
    }
}

/// A TCP port free on 127.0.0.1 and on ::1 (asked of the kernel).
pub fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.1 and ::1".into())
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
    mkdir(&d).unwrap();
    d
}

/// Removes a test's scratch directory once the test is done with it, unless the test is
/// failing (a panic is unwinding): then its config, logs and tracer output stay for a look.
pub fn remove_scratch_unless_failing(dir: &Path) {
    if !thread::panicking() && dir.starts_with(std::env::temp_dir()) {
        let _ = fs::remove_dir_all(dir);
    }
}

pub fn chmod(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

/// `mkdir -p` and mode 755.
pub fn mkdir(p: &Path) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    chmod(p, 0o755)
}

pub fn write(p: &Path, text: &str) -> Result<(), String> {
    fs::write(p, text).map_err(|e| format!("write {}: {e}", p.display()))
}

/// Runs a command to completion; its stdout on success, a readable error otherwise.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends `sig` (a name: `TERM`, `INT`, `USR1`...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The state letter of `/proc/<pid>/stat`; None when the process has gone.
fn state(pid: u32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// Pids of the current children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            // pid (comm) state ppid ...
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
                    kids.push(pid);
                }
            }
        }
    }
    kids
}

/// Stops a process that is not our child: `sig`, then SIGKILL after `timeout`.
pub fn stop_pid(pid: u32, sig: &str, timeout: Duration) {
    signal(pid, sig);
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            signal(pid, "KILL");
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a child we started: `sig` repeated (a signal right after start-up can be lost),
/// SIGKILL after `timeout`; reaps it.
pub fn stop_child(child: &mut Child, sig: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        signal(child.id(), sig);
        thread::sleep(Duration::from_millis(300));
    }
}
