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

mod compare;
mod enabled;
mod footprint;
mod idle;
mod load;
mod notes;
mod traced;
mod util;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use util::R;

/// The targets.
const IDLE_ABOVE_FLOOR_MAX: f64 = 5.0;
/// The module's `usdt` backend (the DTrace systems' hook code) above the C floor, at most.
const IDLE_USDT_ABOVE_FLOOR_MAX: f64 = 10.0;
const IDLE_NOISE_MAX: f64 = 5.0;
const TRACED_RATIO_MAX: f64 = 1.10;

struct Opts {
    smoke: bool,
    no_build: bool,
    out: Option<PathBuf>,
    keep: bool,
    only: Option<String>,
}

struct Sizes {
    compare: compare::Sizes,
    idle: idle::Sizes,
    traced: traced::Sizes,
    /// Requests callgrind counts on the enabled path (a multiple of the module's block of
    /// request ids, 4,096).
    enabled_iters: usize,
    load: load::Sizes,
}

fn sizes(smoke: bool) -> Sizes {
    if smoke {
        Sizes {
            compare: compare::Sizes {
                rounds: 2,
                requests: 200,
                conns: 2,
            },
            idle: idle::Sizes {
                warmup: 20,
                n: 40,
                pairs: 2,
                layouts: 2,
            },
            traced: traced::Sizes {
                passes: 2,
                rounds: 4,
                iters: 2_000,
            },
            enabled_iters: 4_096,
            load: load::Sizes {
                pairs: 1,
                secs: 2,
                threads: 1,
                conns: 4,
            },
        }
    } else {
        Sizes {
            compare: compare::Sizes {
                rounds: 12,
                requests: 15_000,
                conns: 4,
            },
            idle: idle::Sizes {
                warmup: 100,
                n: 1_000,
                pairs: 2,
                layouts: 10,
            },
            traced: traced::Sizes {
                passes: 5,
                rounds: 40,
                iters: 20_000,
            },
            enabled_iters: 40_960,
            load: load::Sizes {
                pairs: 3,
                secs: 30,
                threads: 2,
                conns: 16,
            },
        }
    }
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

fn step(what: &str) {
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
    let sz = sizes(o.smoke);
    let root = root_dir();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));

    if !o.no_build {
        step("building the module (cargo build --release -p mod_dtprovider)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        util::run(
            Command::new(cargo)
                .args(["build", "--release", "-p", "mod_dtprovider"])
                .current_dir(&root),
        )?;
    }
    let built = target.join("release/libmod_dtprovider.so");
    if !built.exists() {
        return Err(format!("{} was not built", built.display()));
    }
    let usdt = build_usdt_backend(&root, &target)?;

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
        let r = measure_only(only, &sz, &root, &work, &built, &usdt);
        done(r.is_ok());
        return r;
    }
    let result = measure_all(o, &sz, &root, &work, &built, &usdt);
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

struct Report {
    env: Vec<(String, String)>,
    compare: compare::CompareResult,
    enabled: enabled::EnabledResult,
    idle: Vec<idle::IdleResult>,
    idle_sizes: (usize, usize, usize, usize),
    traced: traced::TracedResult,
    traced_sizes: (usize, usize, usize),
    load: load::LoadResult,
    load_sizes: (usize, u64, usize, usize),
    foot: footprint::FootprintResult,
}

fn measure_all(
    o: &Opts,
    sz: &Sizes,
    root: &Path,
    work: &Path,
    built: &Path,
    usdt: &Path,
) -> R<Report> {
    let copy = |dir: &str| copy_module(built, &work.join(dir));
    let module_compare = copy("mod-compare")?;
    let module_idle = copy("mod-idle")?;
    let usdt_idle = copy_module(usdt, &work.join("mod-idle-usdt"))?;
    let module_harness = copy("mod-harness")?;
    let module_load = copy("mod-load")?;

    let cmp = run_compare(root, work, &module_compare, sz)?;

    let floor_so = build_floor(root, work)?;
    let hb = build_harness(root, work)?;
    let idle_res = run_idle(work, &floor_so, &module_idle, &usdt_idle, sz)?;

    step(&format!(
        "3/6 + 4/6 traced cost and allocations: harness, {} passes of {} rounds of {} requests, idle then traced",
        sz.traced.passes, sz.traced.rounds, sz.traced.iters
    ));
    let tr = traced::measure(
        &hb.harness,
        &module_harness,
        &hb.floor,
        &hb.classic,
        &sz.traced,
    )?;
    let en = run_enabled(&hb, &module_harness, sz)?;

    step(&format!(
        "5/6 fidelity under load: {} untraced/traced pairs of {} s wrk runs",
        sz.load.pairs, sz.load.secs
    ));
    let ld = load::measure(work, &module_load, &sz.load)?;

    step("6/6 footprint");
    let foot = footprint::measure(root, work, built, &module_idle)?;

    let _ = o;
    Ok(Report {
        env: environment(root),
        compare: cmp,
        enabled: en,
        idle: idle_res,
        idle_sizes: (sz.idle.warmup, sz.idle.n, sz.idle.pairs, sz.idle.layouts),
        traced: tr,
        traced_sizes: (sz.traced.passes, sz.traced.rounds, sz.traced.iters),
        load: ld,
        load_sizes: (sz.load.pairs, sz.load.secs, sz.load.threads, sz.load.conns),
        foot,
    })
}

/// The module with the `usdt` probe backend (`DTPROVIDER_BACKEND=usdt`: the hook code of the
/// DTrace systems' builds), built into `<target>/usdt-backend` (which the tests build too); cargo
/// finds it fresh when it is, so this is done even with `--no-build`.
fn build_usdt_backend(root: &Path, target: &Path) -> R<PathBuf> {
    step("building the module with the usdt backend (DTPROVIDER_BACKEND=usdt)");
    let dir = target.join("usdt-backend");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--lib",
                "-p",
                "mod_dtprovider",
                "--target-dir",
            ])
            .arg(&dir)
            .env("DTPROVIDER_BACKEND", "usdt")
            .current_dir(root),
    )?;
    Ok(dir.join("release/libmod_dtprovider.so"))
}

/// A copy of the built module as `dir/mod_dtprovider.so` (each section traces or loads its
/// own copy).
fn copy_module(built: &Path, dir: &Path) -> R<PathBuf> {
    util::mkdir(dir)?;
    let p = dir.join("mod_dtprovider.so");
    fs::copy(built, &p).map_err(|e| format!("copy module: {e}"))?;
    util::chmod(&p, 0o755)?;
    Ok(p)
}

fn build_floor(root: &Path, work: &Path) -> R<PathBuf> {
    step("building the C floor module (apxs -c bench/c/floor_module.c)");
    let floor_dir = work.join("floor");
    util::mkdir(&floor_dir)?;
    // Compiled as mod_floor_hook.c, so that its module name (`__FILE__`) is as long as
    // mod_dtprovider's ("mod_dtprovider.c"), as are its symbol (floor_hook_module) and,
    // in the idle section, its path: see `idle::variants`.
    fs::copy(
        root.join("bench/c/floor_module.c"),
        floor_dir.join("mod_floor_hook.c"),
    )
    .map_err(|e| e.to_string())?;
    util::run(
        Command::new("apxs")
            .args(["-c", "mod_floor_hook.c"])
            .current_dir(&floor_dir),
    )?;
    let floor_so = floor_dir.join(".libs/mod_floor_hook.so");
    if !floor_so.exists() {
        return Err("apxs did not produce .libs/mod_floor_hook.so".into());
    }

    Ok(floor_so)
}

/// The harness and the bare-probe floor libraries.
struct HarnessBuild {
    harness: PathBuf,
    /// `floor_probe.c` with its two probe sites widened to 5-byte NOPs, like the module's
    /// (src/probes/sdt.rs): the floor for the module's own work (the same kernel path per probe).
    floor: PathBuf,
    /// `floor_probe.c` as `<sys/sdt.h>` builds it (1-byte NOP sites, an int3 trap per probe):
    /// what a probe costs in any other USDT provider.
    classic: PathBuf,
}

/// The instruction `<sys/sdt.h>` emits at a probe site, as `cc -S` writes it.
const SDT_SITE: &str = "990: nop\n";
/// The same site as a 5-byte NOP (the module's probe sites, see src/probes/sdt.rs).
const NOP5_SITE: &str = "990: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n";

fn build_harness(root: &Path, work: &Path) -> R<HarnessBuild> {
    step("building the harness and the bare-probe floor libraries");
    let sdt = util::run(
        Command::new("sh").args(["-c", "echo '#include <sys/sdt.h>' | cc -E - >/dev/null"]),
    );
    if sdt.is_err() {
        return Err("<sys/sdt.h> not found: apt-get install systemtap-sdt-dev".into());
    }
    let hdir = work.join("harness");
    util::mkdir(&hdir)?;
    // `cc -O2 -fPIC <mode> -o <out> <src>`.
    let cc = |mode: &str, out: &Path, src: &Path| {
        util::run(
            Command::new("cc")
                .args(["-O2", "-fPIC", mode, "-o"])
                .arg(out)
                .arg(src),
        )
    };
    let source = root.join("bench/c/floor_probe.c");
    let classic = hdir.join("floor_probe_sdt.so");
    cc("-shared", &classic, &source)?;
    let asm = hdir.join("floor_probe.s");
    cc("-S", &asm, &source)?;
    let text = std::fs::read_to_string(&asm).map_err(|e| format!("{}: {e}", asm.display()))?;
    if text.matches(SDT_SITE).count() != 2 {
        return Err(format!(
            "expected two `{}` probe sites in {}",
            SDT_SITE.trim(),
            asm.display()
        ));
    }
    let wide = hdir.join("floor_probe_nop5.s");
    std::fs::write(&wide, text.replace(SDT_SITE, NOP5_SITE))
        .map_err(|e| format!("{}: {e}", wide.display()))?;
    let floor = hdir.join("floor_probe.so");
    cc("-shared", &floor, &wide)?;
    let apxs_inc = util::run(Command::new("apxs").args(["-q", "INCLUDEDIR"]))?;
    let apr_flags = util::run(Command::new("apr-1-config").args(["--includes", "--cppflags"]))?;
    let harness = hdir.join("harness");
    util::run(
        Command::new("cc")
            .args(["-O2", "-Wall", "-rdynamic", "-o"])
            .arg(&harness)
            .arg(root.join("bench/c/harness.c"))
            .arg(format!("-I{}", apxs_inc.trim()))
            .args(apr_flags.split_whitespace())
            .args(["-lapr-1", "-ldl"]),
    )?;

    Ok(HarnessBuild {
        harness,
        floor,
        classic,
    })
}

fn run_idle(
    work: &Path,
    floor_so: &Path,
    module_idle: &Path,
    usdt_idle: &Path,
    sz: &Sizes,
) -> R<Vec<idle::IdleResult>> {
    step(&format!(
        "2/6 idle cost: callgrind over apache2 -X, {} pairs of {}+{} keep-alive requests per variant",
        sz.idle.pairs,
        sz.idle.n,
        2 * sz.idle.n
    ));
    let mut idle_res = Vec::new();
    for (slot, v) in idle::variants(work, floor_so, module_idle, usdt_idle)?
        .into_iter()
        .enumerate()
    {
        step(&format!("    {}", v.what));
        let r = idle::measure(work, slot, &v, &sz.idle)?;
        step(&format!(
            "    -> {:.1} instructions/request (noise {:.1})",
            r.mean(),
            r.noise()
        ));
        idle_res.push(r);
    }

    Ok(idle_res)
}

fn run_compare(root: &Path, work: &Path, module: &Path, sz: &Sizes) -> R<compare::CompareResult> {
    step(&format!(
        "1/6 real-Apache comparison: {} rounds of {} keep-alive requests per configuration, {} configurations",
        sz.compare.rounds,
        sz.compare.requests,
        compare::CONFIGS.len()
    ));
    compare::measure(root, work, module, &sz.compare)
}

fn run_enabled(hb: &HarnessBuild, module: &Path, sz: &Sizes) -> R<enabled::EnabledResult> {
    step(&format!(
        "    instructions on the enabled path: callgrind over the harness, {} requests",
        sz.enabled_iters
    ));
    let e = enabled::measure(&hb.harness, module, &hb.floor, sz.enabled_iters)?;
    step(&format!(
        "    -> module {:.1}, floor {:.1} instructions/request",
        e.module.total, e.floor.total
    ));
    Ok(e)
}

/// `--only idle|traced|compare`: one section at full size, figures printed, nothing written.
fn measure_only(
    only: &str,
    sz: &Sizes,
    root: &Path,
    work: &Path,
    built: &Path,
    usdt: &Path,
) -> R<()> {
    let module = copy_module(built, &work.join("mod"))?;
    if only == "compare" {
        let r = run_compare(root, work, &module, sz)?;
        let mut text = String::new();
        compare::render(&mut text, &r);
        println!("{text}");
    } else if only == "idle" {
        let usdt = copy_module(usdt, &work.join("mod-usdt"))?;
        let floor_so = build_floor(root, work)?;
        let res = run_idle(work, &floor_so, &module, &usdt, sz)?;
        for r in &res {
            println!(
                "{:<45} {:>9.1} instr/request (se {:.1}, layout sd {:.1}), own code {:.1}, layouts {:?}",
                r.what,
                r.mean(),
                r.noise(),
                r.layout_sd(),
                util::mean(&r.own_per_pair),
                r.per_layout
                    .iter()
                    .map(|x| (x * 10.0).round() / 10.0)
                    .collect::<Vec<_>>()
            );
        }
        let by = |n: &str| res.iter().find(|r| r.name == n).map(|r| r.mean());
        if let (Some(m), Some(u), Some(f)) = (by("module"), by("module-usdt"), by("floor")) {
            println!("module - floor: {:+.1} instructions/request", m - f);
            println!(
                "module (usdt backend) - floor: {:+.1} instructions/request",
                u - f
            );
        }
    } else {
        let hb = build_harness(root, work)?;
        let tr = traced::measure(&hb.harness, &module, &hb.floor, &hb.classic, &sz.traced)?;
        for (what, run) in [
            ("not traced", &tr.idle),
            ("raised", &tr.raised),
            ("traced", &tr.traced),
            ("vs sdt.h", &tr.traced_classic),
        ] {
            println!(
                "{what:<11} module {:.1} ns, floor {:.1} ns, module/floor {:.3} (median of {} rounds), clock {:.1} ns",
                util::median(&run.module_ns),
                util::median(&run.floor_ns),
                util::median(&run.ratios()),
                run.module_ns.len(),
                run.clock_ns
            );
        }
        let (lo, hi) = util::min_max(&tr.pass_ratios);
        println!(
            "traced ratio of each of {} passes: {lo:.3} to {hi:.3}",
            tr.pass_ratios.len()
        );
        let en = run_enabled(&hb, &module, sz)?;
        let mut text = String::new();
        enabled::render(&mut text, &en);
        println!("{text}");
    }
    Ok(())
}

fn environment(root: &Path) -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let git = |args: &[&str]| {
        util::run(Command::new("git").args(args).current_dir(root))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    let dirty = if git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "build.rs",
        "Cargo.toml",
    ])
    .is_empty()
    {
        ""
    } else {
        " (module sources modified)"
    };
    let profile = fs::read_to_string(root.join("Cargo.toml"))
        .unwrap_or_default()
        .split("[profile.release]")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| !l.starts_with('['))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    vec![
        (
            "date (UTC)".into(),
            util::version_of("date", &["-u", "+%Y-%m-%d %H:%M"]),
        ),
        ("machine".into(), format!("{cpu}, {cores} cores, {mem} RAM")),
        ("OS".into(), os),
        ("kernel".into(), util::version_of("uname", &["-r"])),
        ("Apache".into(), util::version_of("apache2", &["-v"])),
        (
            "bpftrace".into(),
            util::version_of("bpftrace", &["--version"]),
        ),
        (
            "valgrind".into(),
            util::version_of("valgrind", &["--version"]),
        ),
        ("wrk".into(), util::version_of("wrk", &["-v"])),
        ("cc".into(), util::version_of("cc", &["--version"])),
        ("rustc".into(), util::version_of("rustc", &["-V"])),
        (
            "module commit".into(),
            format!("{}{dirty}", git(&["rev-parse", "--short", "HEAD"])),
        ),
        ("[profile.release]".into(), profile),
    ]
}

fn verdict(met: bool) -> &'static str {
    if met { "**MET**" } else { "**MISSED**" }
}

impl Report {
    fn idle(&self, name: &str) -> &idle::IdleResult {
        self.idle.iter().find(|r| r.name == name).unwrap()
    }

    fn render(&self, smoke: bool, secs: u64) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# mod_dtprovider benchmark\n");
        let _ = writeln!(
            w,
            "For two readers. Operators deciding how to watch every request Apache serves: the \
             first table puts tracing with this module beside an access log with `%D` and \
             beside raw uprobes on Apache's own functions, in CPU per request of a real Apache. \
             Developers of the module: the floor figures after it hold its idle and traced \
             paths to what a minimal C module and a bare probe cost, and check its \
             allocations, its events under load and its size.\n"
        );
        if smoke {
            let _ = writeln!(
                w,
                "**SMOKE RUN** (`--smoke`): too few requests for the figures to mean anything; it \
                 only proves the measurement machinery works. Run the full benchmark by hand.\n"
            );
        }
        let _ = writeln!(
            w,
            "Generated by `cargo run --release --manifest-path bench/Cargo.toml{}` in {} min {} s. Every figure below \
             comes from this one run, measured side by side on the same machine (its \
             description and the versions follow the first table).",
            if smoke { " -- --smoke" } else { "" },
            secs / 60,
            secs % 60
        );
        compare::render(w, &self.compare);
        let _ = writeln!(
            w,
            "\n## Machine and versions (every section of this run)\n\n| | |\n|---|---|"
        );
        for (k, v) in &self.env {
            let _ = writeln!(w, "| {k} | {} |", v.replace('|', "\\|"));
        }
        let _ = writeln!(
            w,
            "\n# Floor figures (for developers of the module)\n\n\
             Each figure below is held to a floor measured beside it: the idle hooks to a C \
             module registering the same hooks, the traced hooks to two bare USDT probes."
        );

        // ---- targets
        let none = self.idle("none");
        let floor = self.idle("floor");
        let module = self.idle("module");
        let access = self.idle("accesslog");
        let noise2 = |a: &idle::IdleResult, b: &idle::IdleResult| {
            (a.noise().powi(2) + b.noise().powi(2)).sqrt()
        };
        let above_floor = module.mean() - floor.mean();
        let max_noise = self.idle.iter().map(|r| r.noise()).fold(0.0, f64::max);
        let tr = &self.traced.traced;
        let ratio = util::median(&tr.ratios());
        let (pass_lo, pass_hi) = util::min_max(&self.traced.pass_ratios);
        let allocs = tr.allocs_module;
        let fidelity_ok = self
            .load
            .traced
            .iter()
            .all(|r| r.done_events == r.log_lines);
        let f = &self.foot;

        let _ = writeln!(w, "\n## Targets\n");
        let _ = writeln!(w, "| target | measured | verdict |\n|---|---|---|");
        let _ = writeln!(
            w,
            "| idle: module at most {IDLE_ABOVE_FLOOR_MAX} instructions/request above the C floor module | {above_floor:+.1} (noise ±{:.1}) | {} |",
            noise2(module, floor),
            verdict(above_floor <= IDLE_ABOVE_FLOOR_MAX)
        );
        let usdt = self.idle("module-usdt");
        let usdt_above = usdt.mean() - floor.mean();
        let _ = writeln!(
            w,
            "| idle: the usdt backend (the hooks illumos, FreeBSD and macOS run) at most {IDLE_USDT_ABOVE_FLOOR_MAX} instructions/request above the C floor module | {usdt_above:+.1} (noise ±{:.1}) | {} |",
            noise2(usdt, floor),
            verdict(usdt_above <= IDLE_USDT_ABOVE_FLOOR_MAX)
        );
        let own_above = util::mean(&module.own_per_pair) - util::mean(&floor.own_per_pair);
        let _ = writeln!(
            w,
            "| (attribution, not the target) instructions inside the hooks' own code, module minus floor | {own_above:+.1} ({:.1} vs {:.1}) | - |",
            util::mean(&module.own_per_pair),
            util::mean(&floor.own_per_pair)
        );
        let _ = writeln!(
            w,
            "| idle: run-to-run noise below {IDLE_NOISE_MAX} instructions/request | largest {max_noise:.1} | {} |",
            verdict(max_noise < IDLE_NOISE_MAX)
        );
        let _ = writeln!(
            w,
            "| traced: module/floor at most {TRACED_RATIO_MAX:.2} | {ratio:.3} (median of {} rounds in {} passes; the passes' own medians {pass_lo:.3} to {pass_hi:.3}) | {} |",
            tr.module_ns.len(),
            self.traced.pass_ratios.len(),
            verdict(ratio <= TRACED_RATIO_MAX)
        );
        let classic = &self.traced.traced_classic;
        let _ = writeln!(
            w,
            "| (attribution, not the target) the same traced module against the floor built as `<sys/sdt.h>` builds it (1-byte NOP sites: an int3 trap per probe, as in any other USDT provider) | {:.3}: {:.1} vs {:.1} ns/request | - |",
            util::median(&classic.ratios()),
            util::median(&classic.module_ns),
            util::median(&classic.floor_ns)
        );
        let raised = &self.traced.raised;
        let _ = writeln!(
            w,
            "| (attribution, not the target) own work per request with the probes enabled but no tracer, module vs floor; of it, the module's two clock reads | {:.1} vs {:.1} ns; 2 x {:.1} ns | - |",
            util::median(&raised.module_ns),
            util::median(&raised.floor_ns),
            raised.clock_ns
        );
        let en = &self.enabled;
        let _ = writeln!(
            w,
            "| (deterministic, beside the ratio) instructions per traced request on the module's enabled path, callgrind, no tracer; of them the hooks' own code, the clock reads, the functions of Apache and of the libraries they call | **{:.1}** (floor {:.1}); {:.1}, {:.1}, {:.1}, {:.1} | - |",
            en.module.total,
            en.floor.total,
            en.module.kind(enabled::Kind::Own),
            en.module.kind(enabled::Kind::Clock),
            en.module.kind(enabled::Kind::Apache),
            en.module.kind(enabled::Kind::Library),
        );
        let _ = writeln!(
            w,
            "| traced: zero allocations | {allocs} in {} traced requests | {} |",
            tr.calls_module,
            verdict(allocs == 0)
        );
        let _ = writeln!(
            w,
            "| fidelity: request-done events = access-log lines, every run | {} of {} runs equal | {} |",
            self.load
                .traced
                .iter()
                .filter(|r| r.done_events == r.log_lines)
                .count(),
            self.load.traced.len(),
            verdict(fidelity_ok)
        );
        let _ = writeln!(
            w,
            "| (reported, no target) stripped module; its own share above the smallest Rust cdylib built with the same profile ({} bytes, std's panic runtime) | {} bytes; **+{} bytes** | - |",
            f.reference_stripped_bytes,
            f.stripped_bytes,
            f.stripped_bytes as i64 - f.reference_stripped_bytes as i64,
        );

        // ---- 1. idle
        let (warm, n, pairs, layouts) = self.idle_sizes;
        let usdt = self.idle("module-usdt");
        let usdt_above = usdt.mean() - floor.mean();
        let _ = writeln!(w, "\n## 1. Idle cost (instructions per request)\n");
        let _ = writeln!(
            w,
            "callgrind over `apache2 -X` (prefork), counting only inside `ap_process_connection`, \
             one dump per connection. Each configuration runs in {layouts} Apache instances (heap \
             layouts, below). In each, after a {warm}-request warm-up connection, {pairs} pairs of \
             keep-alive connections of {n} and {} pipelined requests cycling through the fixed mix \
             (`GET /` via DirectoryIndex, `GET /page.html?q=1&r=2`, `HEAD /page.html`, \
             `GET /missing.html` 404); each pair gives (I({}) - I({n})) / {n}, which cancels the \
             connection's own cost. A configuration's figure is the mean over its layouts; its \
             noise is the standard error of that mean (the spread a rerun would show); a \
             difference's noise combines both.\n\n\
             Why layouts: glibc's `strcmp` takes a slower path for strings near the end of a page, \
             and where Apache's heap blocks fall relative to page boundaries depends on every \
             allocation made before them, including the dynamic loader's for a module and the \
             libraries it needs. One Apache instance counts nearly the same instructions per \
             request every time (see the largest spread inside a layout, below the table), but \
             two instances of the same \
             configuration can differ by tens, and so can two modules that do the same work (a \
             single-instance run put this module 10 to 20 instructions *below* the floor, the \
             difference sitting in `ap_directory_walk`'s `strcmp`). The instances of a configuration differ only by a \
             `Define` of 0 to 3,678 bytes (over a 4 KiB page), which shifts everything Apache allocates after it; the \
             floor module and mod_dtprovider are also loaded from paths, and under symbol and \
             module names, of the same length, and every instance's document root has the same \
             path length. Requests are pipelined so that Apache, slowed down by valgrind, always \
             finds its next request waiting: sent one by one, whether each read found data \
             depended on timing, which moved its I/O path by tens of instructions per instance.\n",
            2 * n,
            2 * n
        );
        let _ = writeln!(
            w,
            "| configuration | instructions/request | noise (standard error) | spread across layouts (sd) | vs no module | inside the hooks' own code | per layout |\n|---|---|---|---|---|---|---|"
        );
        for r in &self.idle {
            let own = if r.own_per_pair.is_empty() || r.name == "none" || r.name == "accesslog" {
                "-".to_string()
            } else {
                format!("{:.1}", util::mean(&r.own_per_pair))
            };
            let _ = writeln!(
                w,
                "| {} | {:.1} | {:.1} | {:.1} | {:+.1} ± {:.1} | {own} | {} |",
                r.what,
                r.mean(),
                r.noise(),
                r.layout_sd(),
                r.mean() - none.mean(),
                noise2(r, none),
                r.per_layout
                    .iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let within = self
            .idle
            .iter()
            .map(|r| r.within_sd(pairs))
            .fold(0.0, f64::max);
        let _ = writeln!(
            w,
            "\nModule against the C floor: **{above_floor:+.1} ± {:.1} instructions/request**. \
             The access log (what users turn on instead) costs {:+.1} per request over no module. \
             Largest spread between pairs inside one layout: {within:.1}.\n\n\
             \"Inside the hooks' own code\" is what callgrind attributes to the module's (or the \
             floor's) shared object itself: the hook functions' instructions, exactly, the same \
             in every layout. The rest of a configuration's difference from no module is \
             Apache's hook dispatch (`ap_run_post_read_request`, `ap_run_log_transaction`, about \
             30 per registered hook) and per-module bookkeeping such as \
             `ap_merge_per_dir_configs`, the same for both modules.\n\n\
             Not identical work: the module's request-start hook tests two 16-bit semaphores \
             (request-start and request-done, so that request-done can tell requests Apache \
             rejected while reading them) with one 32-bit compare in memory, its request-done \
             hook one with a 16-bit compare, and each branches on the result: four instructions \
             per hook. The C floor reads one 16-bit flag per hook and, its body being empty, \
             compiles to four instructions per hook with no branch.\n\n\
             The usdt backend (`DTPROVIDER_BACKEND=usdt`, the hook code of the builds for \
             illumos, FreeBSD and macOS, where its test is DTrace's is-enabled probe) has no \
             semaphore pair to test first: its request-start hook stores the request's mark \
             (two NULL tests and a store) before its probe's is-enabled test, and on Linux each \
             test reads the `usdt` crate's semaphore through the GOT. Against the C floor: \
             **{usdt_above:+.1} ± {:.1} instructions/request**.",
            noise2(module, floor),
            access.mean() - none.mean(),
            noise2(usdt, floor),
        );

        // ---- 2. traced
        let (passes, rounds, iters) = self.traced_sizes;
        let (pass_lo, pass_hi) = util::min_max(&self.traced.pass_ratios);
        let idle = &self.traced.idle;
        let _ = writeln!(w, "\n## 2. Traced cost (ns per request, both hooks)\n");
        let _ = writeln!(
            w,
            "`bench/c/harness.c` dlopens the module, captures the hooks it registers and calls \
             them on a realistic `request_rec` (APR pool and tables, 6 request headers, IPv4 \
             `conn_rec`); the floor is the same harness calling two hooks in a C library that each \
             fire a bare, empty USDT probe behind a semaphore. The module's probe sites are 5-byte \
             NOPs (src/probes/sdt.rs; `<sys/sdt.h>` emits a 1-byte `nop`): from Linux 6.18 the kernel runs a uprobe \
             on a 5-byte NOP through a call into a trampoline rather than an int3 trap, at about \
             half the cost. The floor is built from `bench/c/floor_probe.c` with its sites widened \
             the same way (`cc -S`, the `990: nop` of `<sys/sdt.h>` replaced), so that both sides \
             pay the same kernel path and the ratio measures the module's own work; the row \
             \"traced, against the `<sys/sdt.h>` floor\" times the module against the same library \
             built as `<sys/sdt.h>` builds it (1-byte NOP sites, an int3 trap per probe: what a \
             probe costs in other USDT providers), under the same bpftrace. {rounds} rounds of {iters} requests, \
             module and floor alternating (ABBA) within each round, make a pass; each row below \
             is {passes} passes, each in new harness processes (and, traced, a new bpftrace), run \
             one after another, and the ratio is the median of all the per-round ratios. Passes, \
             because this shared machine drifts between slower and faster phases over tens of \
             seconds: the traced ratios of the passes on their own ranged from {pass_lo:.3} to \
             {pass_hi:.3} in this run. Traced: bpftrace attached by path with `count()` on all six probes \
             (it counted {} + {} module and {} + {} floor events, both floors, every request). \"Enabled, no \
             tracer\": the harness sets both sides' semaphores itself, so each takes its enabled \
             path and reaches its probe site, which is still a NOP: that row is each side's own \
             work without the kernel's uprobe trap (for the module: the request id, two clock \
             reads for the latency arguments, the User-Agent and log-id lookups, the payload). \
             One clock read (`apr_time_now()`, which is `gettimeofday`) costs {:.1} ns on this \
             machine. \
             Timings are wall-clock on a shared machine: the quartiles show the spread. The \
             \"not traced\" row times the two idle paths, a few instructions each (section 1 \
             counts them exactly), so a difference there of under a nanosecond is the code's \
             placement: on Intel CPUs a branch that crosses or ends on a 32-byte boundary is \
             decoded more slowly (the JCC erratum), and where the module's hooks land moves \
             with every change to the rest of the file (building with LLVM's \
             `-x86-branches-within-32B-boundaries` padding brings this row to 1.000, for 8 KB \
             more code).\n",
            self.traced.events.0,
            self.traced.events.1,
            self.traced.events.2,
            self.traced.events.3,
            self.traced.raised.clock_ns
        );
        let _ = writeln!(
            w,
            "| | module ns/request (median, IQR) | floor ns/request (median, IQR) | module - floor | module/floor (median, IQR) |\n|---|---|---|---|---|"
        );
        for (label, h) in [
            ("not traced", idle),
            ("enabled, no tracer (own work only)", &self.traced.raised),
            ("traced (bpftrace)", tr),
            (
                "traced, against the `<sys/sdt.h>` floor",
                &self.traced.traced_classic,
            ),
        ] {
            let (mq1, mq3) = util::quartiles(&h.module_ns);
            let (fq1, fq3) = util::quartiles(&h.floor_ns);
            let rat = h.ratios();
            let (rq1, rq3) = util::quartiles(&rat);
            let _ = writeln!(
                w,
                "| {label} | {:.1} ({mq1:.1}-{mq3:.1}) | {:.1} ({fq1:.1}-{fq3:.1}) | {:+.1} | {:.3} ({rq1:.3}-{rq3:.3}) |",
                util::median(&h.module_ns),
                util::median(&h.floor_ns),
                util::median(&h.module_ns) - util::median(&h.floor_ns),
                util::median(&rat),
            );
        }
        enabled::render(w, &self.enabled);

        // ---- 3. allocations
        let _ = writeln!(w, "\n## 3. Allocations per traced request\n");
        let _ = writeln!(
            w,
            "The harness interposes `malloc`, `calloc`, `realloc`, `memalign`, `aligned_alloc` and \
             `posix_memalign` for the whole process (self-checked: the global `malloc` the module \
             binds to is the counting one) and counts every call made while the hooks run.\n\n\
             | run | requests | allocations (module) | allocations (floor) |\n|---|---|---|---|\n\
             | not traced | {} | {} | {} |\n| traced | {} | {} | {} |\n\n\
             **{:.3} allocations per traced request.** The module logged {} error-log lines.",
            idle.calls_module,
            idle.allocs_module,
            idle.allocs_floor,
            tr.calls_module,
            tr.allocs_module,
            tr.allocs_floor,
            tr.allocs_module as f64 / tr.calls_module as f64,
            idle.logged + tr.logged,
        );

        // ---- 4. load
        let (lp, lsecs, lt, lc) = self.load_sizes;
        let _ = writeln!(w, "\n## 4. Event fidelity under load\n");
        let _ = writeln!(
            w,
            "Event MPM Apache with the module and an access log (`%D`), `wrk -t{lt} -c{lc} -d{lsecs}s` \
             on `/index.html`, {lp} pairs of untraced and traced runs (order alternating); in each \
             traced run bpftrace (attached by path) counts request-start and request-done, and the \
             access-log lines written during it are counted once the log stops growing.\n"
        );
        let _ = writeln!(
            w,
            "| pair | untraced req/s | traced req/s | traced/untraced | request-done events | access-log lines | request-start events | equal |\n|---|---|---|---|---|---|---|---|"
        );
        for (i, (u, t)) in self.load.untraced.iter().zip(&self.load.traced).enumerate() {
            let errs = [&u.errors, &t.wrk.errors]
                .iter()
                .filter(|e| !e.is_empty())
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                w,
                "| {} | {:.0} | {:.0} ({} requests) | {:.3} | {} | {} | {} | {}{} |",
                i + 1,
                u.rps,
                t.wrk.rps,
                t.wrk.requests,
                t.wrk.rps / u.rps,
                t.done_events,
                t.log_lines,
                t.start_events,
                if t.done_events == t.log_lines {
                    "yes"
                } else {
                    "**NO**"
                },
                if errs.is_empty() {
                    String::new()
                } else {
                    format!(" (wrk: {errs})")
                }
            );
        }
        let ratios = self.load.ratios();
        let (lo, hi) = util::min_max(&ratios);
        let _ = writeln!(
            w,
            "\nThroughput traced/untraced: mean {:.3}, range {lo:.3}-{hi:.3} over {} pairs \
             (wrk on a shared 2-core machine: expect 10-20 % spread run to run).",
            util::mean(&ratios),
            ratios.len()
        );

        // ---- 5. footprint
        let _ = writeln!(w, "\n## 5. Footprint\n");
        let _ = writeln!(
            w,
            "| | |\n|---|---|\n\
             | module as built (`target/release`, `strip = \"debuginfo\"`) | {} bytes |\n\
             | module fully stripped (`strip --strip-all`, probe notes kept) | **{} bytes** |\n\
             | reference: the smallest Rust cdylib (one `extern \"C\"` function, no dependency, this workspace's `[profile.release]`), fully stripped | {} bytes |\n\
             | the same reference with every size setting stable Rust has: `{}`, linked with `{}` | {} bytes |\n\
             | mod_dtprovider built with all of these but `panic = \"abort\"`, fully stripped | {} bytes |\n\
             | resident in a prefork child: the module's own mappings (Rss / Private_Dirty) | {:.0} KiB / {:.0} KiB |\n\
             | child VmRSS with / without the module (median of {} children) | {:.0} KiB / {:.0} KiB ({:+.0} KiB) |",
            f.built_bytes,
            f.stripped_bytes,
            f.reference_stripped_bytes,
            footprint::SMALLEST_PROFILE.replace('\n', ", "),
            footprint::SMALLEST_LINK_ARGS.join(" "),
            f.smallest_stripped_bytes,
            f.module_smallest_stripped_bytes,
            f.mapped_rss_kib,
            f.mapped_private_dirty_kib,
            f.children,
            f.child_rss_with_kib,
            f.child_rss_without_kib,
            f.child_rss_with_kib - f.child_rss_without_kib,
        );
        let _ = writeln!(
            w,
            "\nThere is no size target: the module's own share is its difference from the first \
             reference row, {:+} bytes. That row is what the Rust standard library alone costs \
             a cdylib built with this profile: std's panic runtime (the default panic hook, \
             which can print a symbolized backtrace: gimli, addr2line, rustc-demangle, \
             miniz_oxide) is linked into every Rust cdylib that links std (the unwinding \
             personality routine reaches it). Leaving it out needs `-Z build-std` (nightly \
             only, which the packages cannot use) or `no_std`, which cannot catch a panic, and \
             the module must: every hook body runs under `catch_unwind`, so that a bug never \
             takes Apache down. The second row is a lower bound for any std cdylib: the same \
             one-function library optimized for size, with `panic = \"abort\"` (which the \
             module cannot use), fully stripped, with packed relocations, no code/data segment \
             split and identical code folding.",
            f.stripped_bytes as i64 - f.reference_stripped_bytes as i64
        );
        s
    }
}
