//! Hostile traffic, tracer churn, restarts, memory, panics and idle silence: Apache never falls
//! over, and no event is lost or invented.
//!
//! The memory check (over 500,000 traced requests each Apache child's RSS grows by less
//! than 1 %) runs in the default run under the event MPM, together with its proof that
//! it can fail: the same measurement over a test-only build that leaks 32 bytes every 128th
//! traced request must report growth above the bound. How it measures, and why, is described
//! at the top of reliability/memory.rs.
//!
//! The default run is bounded: about 5 minutes on a 2-core machine, 2.5 of them for the two
//! memory tests, plus about a minute each the first time the `panic-test` and `leak-test`
//! modules are built; `DTPROVIDER_SOAK=1` runs the churn and memory checks longer and under
//! every MPM. Each test prints its figures; `DTPROVIDER_REPORT=1` also writes them into
//! RELIABILITY.md ("The reliability suite"), between its `reliability` markers. Tests that
//! need root, tracefs, bpftrace, wrk or strace skip loudly without them, and fail when `CI`
//! is set.
//!
//! This file holds what the tests share (one-at-a-time running, the soak switch, the figures'
//! report, the test-only module builds); each kind of test has its file under
//! tests/reliability/: `hostile.rs`, `churn.rs`, `memory.rs`, `panics.rs` and `idle.rs`.

#[path = "reliability/churn.rs"]
mod churn;
#[path = "reliability/hostile.rs"]
mod hostile;
#[path = "reliability/idle.rs"]
mod idle;
#[path = "reliability/memory.rs"]
mod memory;
#[path = "reliability/panics.rs"]
mod panics;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::*;

/// The reliability tests measure (RSS, windows, system calls) and load the machine; they run
/// one at a time so that one's load is not another's noise.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn soak() -> bool {
    std::env::var("DTPROVIDER_SOAK").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------
// report

static REPORT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn report(key: &str, line: String) {
    eprintln!("[reliability] {key}: {line}");
    let mut r = REPORT.lock().unwrap();
    r.push((key.to_string(), line));
    if std::env::var("DTPROVIDER_REPORT").is_ok_and(|v| v == "1") {
        write_report(&r);
    }
}

/// Replaces the table between RELIABILITY.md's `reliability` markers with the figures gathered
/// so far (sorted); the rest of the file, the Apache-suite section included, stays as it is.
fn write_report(rows: &[(String, String)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("RELIABILITY.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- reliability:begin -->", "<!-- reliability:end -->");
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        panic!("{} has no {begin} ... {end} section", path.display());
    };
    let mut rows = rows.to_vec();
    rows.sort();
    let mut body = format!(
        "\n_Produced by `DTPROVIDER_REPORT=1 cargo test --release --test reliability` on {} \
         (kernel {}, {})._\n\n| check | figures |\n| --- | --- |\n",
        today(),
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        String::from_utf8_lossy(&Command::new("apache2").arg("-v").output().unwrap().stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("Server version: ")
    );
    for (k, v) in rows {
        body.push_str(&format!("| {k} | {v} |\n"));
    }
    let new = format!("{}{begin}{body}{}", &text[..b], &text[e..]);
    fs::write(&path, new).unwrap();
}

fn today() -> String {
    let out = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn need_wrk(what: &str) -> bool {
    need_tool(what, "wrk", "wrk")
}

/// The module built with a test-only feature (`panic-test`, `leak-test`), in its own target
/// directory (target/<feature>).
fn feature_module(feature: &str) -> PathBuf {
    variant_module(feature, &[feature], &[])
}
