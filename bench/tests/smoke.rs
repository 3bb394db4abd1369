//! The benchmark's CI smoke run: `bench --smoke` (a few hundred requests per figure) must
//! complete every measurement. It fails when the measurement machinery breaks, never because
//! a target was missed (the smoke figures mean nothing).
//!
//! Needs root, Apache (apache2, apache2-dev), valgrind, bpftrace, wrk, a C compiler and
//! systemtap-sdt-dev, and the module built first (`cargo build --release`). Without root it is
//! skipped with a loud message, unless `CI` is set, in which case it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn smoke_run_completes_every_measurement() {
    if !testkit::need(
        testkit::is_root(),
        "the benchmark smoke run",
        "root (bpftrace, Apache's User www-data)",
    ) {
        return;
    }
    let out: PathBuf =
        std::env::temp_dir().join(format!("dtprovider-bench-smoke-{}.md", std::process::id()));
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--smoke", "--no-build", "--out"])
        .arg(&out)
        .output()
        .expect("run the bench binary");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench --smoke failed:\n{stderr}");
    let report = std::fs::read_to_string(&out).expect("the smoke report");
    let _ = std::fs::remove_file(&out);
    // The comparison comes first (the table a user reads), then the floor figures.
    let compare = report
        .find("## What watching every request costs in a real Apache")
        .expect("the real-Apache comparison");
    let floors = report.find("# Floor figures").expect("the floor figures");
    assert!(
        compare < floors,
        "the comparison must come first:\n{report}"
    );
    let table = &report[compare..floors];
    for row in [
        "Apache without the module (baseline)",
        "module loaded, not traced",
        "module traced: bpftrace `count()` on both probes",
        "module traced: `examples/http-requests.bt` printing every request",
        "no module; access log with `%D` (mod_log_config)",
        "no module; access log with `%D`, `BufferedLogs On`",
        "no module; bpftrace uprobes on Apache's functions, `count()`",
    ] {
        assert!(
            table.contains(&format!("| {row} |")),
            "no row {row:?} in:\n{table}"
        );
    }
    // Both comparisons are stated, and the tracers saw the requests: the module's counts are
    // exact (the bench fails otherwise), the uprobes' at least the requests (they also see any
    // other Apache on the machine), the printing script printed or lost each one.
    assert!(table.contains("**Traced module against the `%D` access log.**"));
    assert!(table.contains("**Traced module against raw uprobes.**"));
    let requests = 2 * 200; // bench --smoke: 2 rounds of 200 requests per configuration
    assert!(
        table.contains(&format!(
            "| {requests} starts, {requests} ends for {requests} requests |"
        )),
        "{table}"
    );
    assert_eq!(
        table
            .matches(&format!("ends for {requests} requests |"))
            .count(),
        2,
        "{table}"
    );
    assert!(
        table.contains(&format!("events lost, for {requests} requests |")),
        "{table}"
    );
    for section in [
        "## Machine and versions",
        "## Targets",
        "## 1. Idle cost",
        "## 2. Traced cost",
        "### Instructions per traced request on the enabled path",
        "## 3. Allocations",
        "## 4. Event fidelity",
        "## 5. Footprint",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    // Every target row carries a plain verdict (the footprint has none: it is reported).
    let verdicts = report.matches("**MET**").count() + report.matches("**MISSED**").count();
    assert_eq!(verdicts, 6, "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "the smoke run took {:?}, over the 5-minute CI budget",
        started.elapsed()
    );
}
