//! Sections 2 and 3, traced cost and allocations: `bench/c/harness.c` drives the module's hooks and a
//! floor library's hooks (one bare empty USDT probe each) over a realistic request, in
//! alternating rounds, first with nobody tracing, then with bpftrace counting all probes. The
//! floor's probe sites are 5-byte NOPs like the module's; traced, the module is also timed
//! against the floor as `<sys/sdt.h>` builds it (1-byte NOP sites).
//! The whole sequence runs in several passes, each in fresh harness processes (and a fresh
//! bpftrace), because a shared VM drifts between slower and faster phases over tens of
//! seconds: one pass's ratio is a sample of one phase, and the spread of the passes' ratios
//! shows how far apart phases land.

use crate::notes::Probes;
use crate::util::{self, R};
use std::path::Path;
use std::process::Command;

pub struct Sizes {
    /// Passes of (not traced, enabled without tracer, traced), each in new processes.
    pub passes: usize,
    pub rounds: usize,
    pub iters: usize,
}

#[derive(Default)]
pub struct HarnessRun {
    pub module_ns: Vec<f64>,
    pub floor_ns: Vec<f64>,
    pub calls_module: u64,
    pub calls_floor: u64,
    pub allocs_module: u64,
    pub allocs_floor: u64,
    pub logged: u64,
    /// ns per `apr_time_now()` on this machine.
    pub clock_ns: f64,
}

impl HarnessRun {
    /// Adds another pass's rounds and counts to this one (`clock_ns` is left to the caller).
    fn absorb(&mut self, other: HarnessRun) {
        self.module_ns.extend(other.module_ns);
        self.floor_ns.extend(other.floor_ns);
        self.calls_module += other.calls_module;
        self.calls_floor += other.calls_floor;
        self.allocs_module += other.allocs_module;
        self.allocs_floor += other.allocs_floor;
        self.logged += other.logged;
    }

    /// Per-round module/floor ratios.
    pub fn ratios(&self) -> Vec<f64> {
        self.module_ns
            .iter()
            .zip(&self.floor_ns)
            .map(|(m, f)| m / f)
            .collect()
    }
}

pub struct TracedResult {
    pub idle: HarnessRun,
    /// Semaphores raised by the harness, no tracer: each side's own work without the trap.
    pub raised: HarnessRun,
    pub traced: HarnessRun,
    /// Traced, under the same bpftrace, against the `<sys/sdt.h>` floor (1-byte NOP sites).
    pub traced_classic: HarnessRun,
    /// (module start, module done, floor start, floor done) events bpftrace counted (both
    /// floors' together).
    pub events: (u64, u64, u64, u64),
    /// Each pass's traced ratio (the median of its rounds), in pass order.
    pub pass_ratios: Vec<f64>,
}

/// `floor` is the bare probe with the module's kind of probe site (the target's floor);
/// `classic` the same probe as `<sys/sdt.h>` builds it, measured traced only, for comparison.
pub fn measure(
    harness: &Path,
    module: &Path,
    floor: &Path,
    classic: &Path,
    sz: &Sizes,
) -> R<TracedResult> {
    let probes = Probes::read(module)?;
    let raise = semaphore_offsets(&probes);
    let script = format!(
        "BEGIN {{ printf(\"READY\\n\"); }}\n\
         {ms} {{ @ms = count(); }}\n\
         {md} {{ @md = count(); }}\n\
         usdt:{f}:dtfloor:start {{ @fs = count(); }}\n\
         usdt:{f}:dtfloor:done {{ @fd = count(); }}\n\
         usdt:{c}:dtfloor:start {{ @fs = count(); }}\n\
         usdt:{c}:dtfloor:done {{ @fd = count(); }}\n",
        ms = Probes::usdt(module, &probes.start),
        md = Probes::usdt(module, &probes.done),
        f = floor.display(),
        c = classic.display()
    );
    let dir = harness.parent().unwrap().join("bt-harness");
    let mut res = TracedResult {
        idle: HarnessRun::default(),
        raised: HarnessRun::default(),
        traced: HarnessRun::default(),
        traced_classic: HarnessRun::default(),
        events: (0, 0, 0, 0),
        pass_ratios: Vec::new(),
    };
    let mut clocks: [Vec<f64>; 4] = Default::default();
    for _ in 0..sz.passes {
        let idle = run_harness(harness, module, floor, sz, None)?;
        let raised = run_harness(harness, module, floor, sz, Some(&raise))?;
        let tracer = util::tracer(&script, &dir, "READY", None)?;
        let traced = run_harness(harness, module, floor, sz, None);
        let classic = run_harness(harness, module, classic, sz, None);
        let out = tracer.try_stop()?;
        let (traced, classic) = (traced?, classic?);
        let events = (
            util::bt_count(&out, "ms"),
            util::bt_count(&out, "md"),
            util::bt_count(&out, "fs"),
            util::bt_count(&out, "fd"),
        );
        // Machinery check: every call was seen, or the figures are not of a traced run.
        let m = traced.calls_module + classic.calls_module;
        let f = traced.calls_floor + classic.calls_floor;
        if events != (m, m, f, f) {
            return Err(format!(
                "bpftrace counted {events:?} events for {m} module and {f} floor requests: \
                 the traced run was not (fully) traced\n{out}"
            ));
        }
        res.events.0 += events.0;
        res.events.1 += events.1;
        res.events.2 += events.2;
        res.events.3 += events.3;
        res.pass_ratios.push(util::median(&traced.ratios()));
        let all = [
            &mut res.idle,
            &mut res.raised,
            &mut res.traced,
            &mut res.traced_classic,
        ];
        let runs = [idle, raised, traced, classic];
        for ((acc, clock), run) in all.into_iter().zip(&mut clocks).zip(runs) {
            clock.push(run.clock_ns);
            acc.absorb(run);
        }
    }
    let all = [
        &mut res.idle,
        &mut res.raised,
        &mut res.traced,
        &mut res.traced_classic,
    ];
    for (run, c) in all.into_iter().zip(&clocks) {
        run.clock_ns = util::median(c);
    }
    Ok(res)
}

/// The module's two semaphores as offsets from its load address, `start,done` in hex (the
/// harness's RAISE argument), from its probe notes.
pub fn semaphore_offsets(p: &Probes) -> String {
    format!("{:x},{:x}", p.start.semaphore, p.done.semaphore)
}

fn run_harness(
    harness: &Path,
    module: &Path,
    floor: &Path,
    sz: &Sizes,
    raise: Option<&str>,
) -> R<HarnessRun> {
    let out = util::run(
        Command::new(harness)
            .arg(module)
            .arg(floor)
            .arg(sz.rounds.to_string())
            .arg(sz.iters.to_string())
            .args(raise),
    )?;
    if raise.is_some() && !out.contains("raised module 2 floor 2") {
        return Err(format!("the harness did not raise the semaphores:\n{out}"));
    }
    let mut h = HarnessRun::default();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> R<f64> {
            f.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad harness line {line:?}"))
        };
        match f.first().copied() {
            Some("round") => {
                h.module_ns.push(num(3)?);
                h.floor_ns.push(num(5)?);
            }
            Some("calls") => {
                h.calls_module = num(2)? as u64;
                h.calls_floor = num(4)? as u64;
            }
            Some("allocs") if f.get(1) == Some(&"module") => {
                h.allocs_module = num(2)? as u64;
                h.allocs_floor = num(4)? as u64;
            }
            Some("interposer") if f.get(1) != Some(&"ok") => {
                return Err(format!(
                    "the harness's allocation counter is broken: {line}"
                ));
            }
            Some("logged") => h.logged = num(1)? as u64,
            Some("clock_ns") => h.clock_ns = num(1)?,
            _ => {}
        }
    }
    if h.module_ns.len() != sz.rounds || h.calls_module == 0 || !out.contains("interposer ok") {
        return Err(format!("incomplete harness output:\n{out}"));
    }
    Ok(h)
}
