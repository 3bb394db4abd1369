//! The mod_dtprovider benchmark. First, for operators: Apache CPU per request in a real
//! Apache with the module traced, against an access log with `%D` and raw uprobes on Apache's
//! own functions. Then the floor figures, for developers: idle cost in instructions per
//! request, traced cost against the bare-probe floor (in ns, and in instructions on the
//! enabled path), allocations per traced request, event fidelity under load, and footprint.
//! All measured side by side in one run. Prints a table and writes BENCHMARKS.md.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml  # full run, by hand: writes BENCHMARKS.md
//! cargo run --release --manifest-path bench/Cargo.toml -- --smoke  # CI: a few hundred requests per figure
//! ```
//!
//! Options: `--smoke`, `--out PATH` (default BENCHMARKS.md at the workspace root for a full
//! run, target/bench/BENCHMARKS-smoke.md for a smoke run), `--keep` (keep the scratch
//! directory), `--no-build` (use target/release/libmod_dtprovider.so as it is instead of
//! running `cargo build --release -p mod_dtprovider` first; the smoke test uses it),
//! `--only idle|traced|compare` (measure that one section at full size, print its figures,
//! write nothing). Needs root, Debian's apache2 and apache2-dev (apxs), valgrind, bpftrace, wrk,
//! a C compiler and `<sys/sdt.h>` (systemtap-sdt-dev). Exits non-zero when the measurement
//! machinery fails; a missed target is reported in the table, not by the exit status.
//!
//! This file is the command line (options, checks of the tools, the scratch directory, where
//! the report goes); `measure.rs` runs the sections at their sizes, `builds.rs` builds what
//! they measure (the module's variants, the C floor module, the harness), `environment.rs`
//! describes the machine and `report.rs` renders BENCHMARKS.md. Each section's measurement is
//! in its own file (`compare.rs`, `idle.rs`, `traced.rs`, `enabled.rs`, `load.rs`,
//! `footprint.rs`).

mod builds;
mod compare;
mod enabled;
mod environment;
mod footprint;
mod idle;
mod load;
mod measure;
mod notes;
mod report;
mod traced;
mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use util::R;

pub struct Opts {
    smoke: bool,
    no_build: bool,
    out: Option<PathBuf>,
    keep: bool,
    only: Option<String>,
}

fn main() {
    let mut opts = Opts {
        smoke: false,
        no_build: false,
        out: None,
        keep: false,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--smoke" => opts.smoke = true,
            "--keep" => opts.keep = true,
            "--no-build" => opts.no_build = true,
            "--out" => opts.out = args.next().map(PathBuf::from),
            "--only" => match args.next().as_deref() {
                Some(s @ ("idle" | "traced" | "compare")) => opts.only = Some(s.to_string()),
                other => {
                    eprintln!("bench: --only takes idle, traced or compare, not {other:?}");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: bench [--smoke] [--out PATH] [--keep] [--no-build] [--only idle|traced|compare]"
                );
                return;
            }
            other => {
                eprintln!("bench: unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = real_main(&opts) {
        eprintln!("\nbench: MEASUREMENT FAILED: {e}");
        std::process::exit(1);
    }
}

pub fn step(what: &str) {
    eprintln!("bench: {what}");
}

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn real_main(o: &Opts) -> R<()> {
    let t0 = Instant::now();
    if !util::is_root() {
        return Err("run as root (bpftrace, and Apache's User www-data)".into());
    }
    for tool in [
        "apache2",
        "apxs",
        "valgrind",
        "callgrind_annotate",
        "bpftrace",
        "wrk",
        "cc",
        "strip",
        "readelf",
        "taskset",
    ] {
        if util::run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_err() {
            return Err(format!(
                "{tool} not found (Debian: apt-get install apache2 apache2-dev valgrind \
                 bpftrace wrk gcc binutils systemtap-sdt-dev util-linux)"
            ));
        }
    }
    if !Path::new("/sys/kernel/tracing/uprobe_events").exists() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
    let sz = measure::sizes(o.smoke);
    let root = root_dir();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));

    if !o.no_build {
        step("building the module (cargo build --release -p mod_dtprovider)");
        testkit::cargo_build(&target, "release")?;
    }
    let built = target.join("release/libmod_dtprovider.so");
    if !built.exists() {
        return Err(format!("{} was not built", built.display()));
    }
    let usdt = builds::build_usdt_backend(&target)?;

    let work = std::env::temp_dir().join(format!("dtprovider-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    util::mkdir(&work)?;
    // The scratch directory goes unless --keep, or a failure wants it looked at.
    let done = |ok: bool| {
        if !o.keep && ok {
            let _ = fs::remove_dir_all(&work);
        } else {
            eprintln!("bench: scratch directory kept: {}", work.display());
        }
    };
    if let Some(only) = &o.only {
        let r = measure::measure_only(only, &sz, &root, &work, &built, &usdt);
        done(r.is_ok());
        return r;
    }
    let result = measure::measure_all(o, &sz, &root, &work, &built, &usdt);
    done(result.is_ok());
    let report = result?;

    let out = o.out.clone().unwrap_or_else(|| {
        if o.smoke {
            target.join("bench/BENCHMARKS-smoke.md")
        } else {
            root.join("BENCHMARKS.md")
        }
    });
    if let Some(d) = out.parent() {
        let _ = fs::create_dir_all(d);
    }
    let text = report.render(o.smoke, t0.elapsed().as_secs());
    println!("{text}");
    util::write(&out, &text)?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}
