//! Section 2's deterministic figure: instructions per traced request on the module's enabled
//! path. callgrind runs the harness in its counting mode (`harness --count`): both semaphores
//! raised by the harness and no tracer, so each probe site is the NOP it was compiled as and
//! every instruction counted is the hooks' own work or a function they call. Unlike the ns
//! figures beside it, the count does not move with the machine's phase: the same build counts
//! the same on every run. The floor library is counted the same way.

use crate::notes::Probes;
use crate::traced;
use crate::util::{self, R};
use std::path::Path;
use std::process::Command;

/// Where an instruction was executed, as the rows of the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The hooks' own code: the module's (or the floor library's) shared object.
    Own,
    /// Reading the clock: `apr_time_now` and the libc clock it calls.
    Clock,
    /// Apache's own functions the module calls, which the harness provides.
    Apache,
    /// APR, libc and the dynamic loader (thread-local storage), other than the clock.
    Library,
    /// The harness's loop: the two indirect calls and the reset of the module's slot.
    Loop,
}

pub const KINDS: [Kind; 5] = [
    Kind::Own,
    Kind::Clock,
    Kind::Apache,
    Kind::Library,
    Kind::Loop,
];

/// The instructions per request of one [`Kind`], with the functions behind them (largest
/// first).
pub struct Group {
    pub kind: Kind,
    pub per_request: f64,
    pub functions: Vec<(String, f64)>,
}

/// One side's count: instructions per request, in total and by [`Kind`].
pub struct Side {
    pub requests: u64,
    pub total: f64,
    pub groups: Vec<Group>,
}

impl Side {
    pub fn kind(&self, k: Kind) -> f64 {
        self.groups
            .iter()
            .find(|g| g.kind == k)
            .map_or(0.0, |g| g.per_request)
    }

    pub fn functions(&self, k: Kind) -> &[(String, f64)] {
        self.groups
            .iter()
            .find(|g| g.kind == k)
            .map_or(&[], |g| &g.functions[..])
    }
}

pub struct EnabledResult {
    pub module: Side,
    pub floor: Side,
}

pub fn measure(harness: &Path, module: &Path, floor: &Path, iters: usize) -> R<EnabledResult> {
    let raise = traced::semaphore_offsets(&Probes::read(module)?);
    let count = |side: &str, own: &Path| -> R<Side> {
        let dir = harness.parent().unwrap();
        let out = dir.join(format!("callgrind.{side}"));
        let log = dir.join(format!("callgrind.{side}.log"));
        let stdout = util::run(
            Command::new("valgrind")
                .args(["--tool=callgrind", "--toggle-collect=counted"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(format!("--log-file={}", log.display()))
                .arg(harness)
                .args(["--count", side])
                .arg(module)
                .arg(floor)
                .arg(iters.to_string())
                .arg(&raise),
        )?;
        if !stdout.contains("raised module 2 floor 2") {
            return Err(format!(
                "the harness did not raise the semaphores:\n{stdout}"
            ));
        }
        let requests: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("counted {side} ")))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no `counted` line from the harness:\n{stdout}"))?;
        let annotated = util::run(
            Command::new("callgrind_annotate")
                .args(["--inclusive=no", "--threshold=100"])
                .arg(&out),
        )?;
        classify(&annotated, requests, own, harness)
    };
    Ok(EnabledResult {
        module: count("module", module)?,
        floor: count("floor", floor)?,
    })
}

/// Sorts `callgrind_annotate --inclusive=no` lines (`1,234 (5.6%)  file:function [object]`)
/// into [`Kind`]s; an error when they do not add up to the program's total.
fn classify(annotated: &str, requests: u64, own: &Path, harness: &Path) -> R<Side> {
    let mut total = None;
    let mut rows: Vec<(Kind, String, u64)> = Vec::new();
    for line in annotated.lines() {
        let line = line.trim();
        let Some(first) = line.split_whitespace().next() else {
            continue;
        };
        let Ok(n) = first.replace(',', "").parse::<u64>() else {
            continue;
        };
        if line.ends_with("PROGRAM TOTALS") {
            total = Some(n);
            continue;
        }
        let Some((rest, object)) = line.strip_suffix(']').and_then(|l| l.rsplit_once(" [")) else {
            continue;
        };
        // "file:function": file names hold no ':', Rust paths do.
        let function = rest
            .split_once(':')
            .map_or(rest, |(_, f)| f)
            .trim()
            .to_string();
        let function = function
            .strip_prefix("mod_dtprovider::")
            .unwrap_or(&function)
            .to_string();
        let kind = if Path::new(object) == own {
            Kind::Own
        } else if ["apr_time_now", "gettimeofday", "clock_gettime"]
            .iter()
            .any(|c| function.contains(c))
            || object.contains("vdso")
        {
            Kind::Clock
        } else if Path::new(object) == harness {
            // `counted()` and the loop it runs (`run()`, unless the compiler inlined it).
            if function == "counted" || function == "run" {
                Kind::Loop
            } else {
                Kind::Apache
            }
        } else {
            Kind::Library
        };
        rows.push((kind, function, n));
    }
    let total = total.ok_or_else(|| format!("no PROGRAM TOTALS in:\n{annotated}"))?;
    let sum: u64 = rows.iter().map(|r| r.2).sum();
    if total == 0 || sum != total {
        return Err(format!(
            "callgrind's functions add up to {sum}, its total is {total}:\n{annotated}"
        ));
    }
    if !rows.iter().any(|r| r.0 == Kind::Own) {
        return Err(format!(
            "callgrind counted nothing in {}:\n{annotated}",
            own.display()
        ));
    }
    let per = |n: u64| n as f64 / requests as f64;
    let groups = KINDS
        .iter()
        .map(|&kind| {
            let mut functions: Vec<(String, f64)> = rows
                .iter()
                .filter(|r| r.0 == kind)
                .map(|r| (r.1.clone(), per(r.2)))
                .collect();
            functions.sort_by(|a, b| b.1.total_cmp(&a.1));
            Group {
                kind,
                per_request: functions.iter().fold(0.0, |a, x| a + x.1),
                functions,
            }
        })
        .collect();
    Ok(Side {
        requests,
        total: per(total),
        groups,
    })
}

fn label(k: Kind) -> &'static str {
    match k {
        Kind::Own => "the hooks' own code",
        Kind::Clock => "clock reads (`apr_time_now`, `gettimeofday`)",
        Kind::Apache => "Apache's functions the hooks call (the harness's stand-ins)",
        Kind::Library => "other library functions the hooks call (APR, libc, the dynamic loader)",
        Kind::Loop => "the harness's loop (two indirect calls, the slot reset)",
    }
}

fn names(f: &[(String, f64)]) -> String {
    f.iter()
        .map(|(n, x)| format!("`{n}` {x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subsection of section 2 (markdown).
pub fn render(w: &mut String, e: &EnabledResult) {
    use std::fmt::Write as _;
    let _ = writeln!(
        w,
        "\n### Instructions per traced request on the enabled path\n\n\
         Deterministic, beside the ns ratio above: callgrind over the harness in its counting \
         mode (`harness --count`, {} requests after a warm-up, counted inside its `counted()` \
         loop only), with both semaphores raised by the harness and no tracer attached, so that \
         every probe site is still its NOP and every instruction counted is the hooks' work or \
         a function they call. The same build gives the same count on any machine of this \
         kind, whatever its load, so this is the figure that says whether a change to the \
         enabled path helped. Under valgrind, glibc's `gettimeofday` makes the system call \
         instead of reading the clock in the vDSO, so the clock row counts the user-space \
         instructions around it, not a native clock read (the ns figures above time that); the \
         harness answers the Apache functions the module calls (`ap_ssl_conn_is_ssl` returns \
         0 there, where Apache runs its ssl_conn_is_ssl hooks).\n",
        e.module.requests
    );
    let _ = writeln!(
        w,
        "| instructions per request | module | floor (bare probes) | functions (module) |\n|---|---|---|---|"
    );
    for k in KINDS {
        let _ = writeln!(
            w,
            "| {} | {:.1} | {:.1} | {} |",
            label(k),
            e.module.kind(k),
            e.floor.kind(k),
            names(e.module.functions(k))
        );
    }
    let _ = writeln!(
        w,
        "| **total** | **{:.1}** | {:.1} | module - floor: {:+.1} |",
        e.module.total,
        e.floor.total,
        e.module.total - e.floor.total
    );
}
