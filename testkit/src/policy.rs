//! When a test runs, skips or fails: what it needs (root, tracefs, a tool) is looked up here.
//! Missing prerequisites skip a test with a loud message only while `CI` is unset; under CI
//! the same absence is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `CI` is set (to anything but empty, `0` or `false`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tool on PATH, or in the sbin directories and `~/.cargo/bin` a user's PATH may lack; a
/// name with a `/` is taken as a path.
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).exists().then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
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

/// [`need_all`] for one prerequisite: `ok`, or `what` is missing.
pub fn need(ok: bool, test: &str, what: &str) -> bool {
    need_all(test, if ok { &[] } else { std::slice::from_ref(&what) })
}

/// Whether a tool is installed (`package` says where it comes from).
pub fn need_tool(test: &str, tool: &str, package: &str) -> bool {
    need(
        which(tool).is_some(),
        test,
        &format!("{tool} (apt-get install {package})"),
    )
}

/// Whether Apache can be run at all (for tests that need no tracer).
pub fn need_apache(test: &str) -> bool {
    need_tool(test, "apache2", "apache2")
}

/// Whether this test can trace: root, tracefs mounted (mounted here if needed), bpftrace,
/// Apache.
pub fn need_tracing(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root privileges");
    } else if !tracefs() {
        missing.push("tracefs at /sys/kernel/tracing");
    }
    if which("bpftrace").is_none() {
        missing.push("bpftrace (apt-get install bpftrace)");
    }
    if which("apache2").is_none() {
        missing.push("apache2 (apt-get install apache2 apache2-dev)");
    }
    need_all(test, &missing)
}

/// Whether tracefs (with uprobes) is at /sys/kernel/tracing; mounts it when it is not.
pub fn tracefs() -> bool {
    let events = Path::new("/sys/kernel/tracing/uprobe_events");
    if !events.exists() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    events.exists()
}
