//! The run of the sections: their sizes (full and `--smoke`), every section for the report
//! or one for `--only`, each announced with what it measures.

use crate::builds::{HarnessBuild, build_floor, build_harness, copy_module};
use crate::environment::environment;
use crate::report::Report;
use crate::util::{self, R};
use crate::{Opts, compare, enabled, footprint, idle, load, step, traced};
use std::path::Path;

pub struct Sizes {
    compare: compare::Sizes,
    idle: idle::Sizes,
    traced: traced::Sizes,
    /// Requests callgrind counts on the enabled path (a multiple of the module's block of
    /// request ids, 4,096).
    enabled_iters: usize,
    load: load::Sizes,
}

pub fn sizes(smoke: bool) -> Sizes {
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

pub fn measure_all(
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
pub fn measure_only(
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
