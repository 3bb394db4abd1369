//! The comparison's section of BENCHMARKS.md: the table, the two comparisons stated plainly,
//! and how it was measured.

use super::{CONFIGS, CompareResult, Config, UPROBE_DONE, UPROBE_START};
use crate::util;
use std::fmt::Write as _;

/// Median, quartiles and range of per-round values, and how many were above zero (for
/// differences) or one (for ratios).
struct Stat {
    median: f64,
    q1: f64,
    q3: f64,
    lo: f64,
    hi: f64,
    above: usize,
    n: usize,
}

fn stat(v: &[f64], pivot: f64) -> Stat {
    let (q1, q3) = util::quartiles(v);
    let (lo, hi) = util::min_max(v);
    Stat {
        median: util::median(v),
        q1,
        q3,
        lo,
        hi,
        above: v.iter().filter(|&&x| x > pivot).count(),
        n: v.len(),
    }
}

/// Per round: (a's cost above the baseline around it, in ns per request, minus b's; a's ratio
/// to the baseline around it over b's). Against the baseline itself: a's extra and ratio.
fn versus(r: &CompareResult, a: Config, b: Config) -> (Stat, Stat) {
    let a = r.of(a);
    let (d, q): (Vec<f64>, Vec<f64>) = if b == Config::Baseline {
        a.iter().map(|x| (x.extra_ns(), x.ratio())).unzip()
    } else {
        a.iter()
            .zip(r.of(b))
            .map(|(x, y)| (x.extra_ns() - y.extra_ns(), x.ratio() / y.ratio()))
            .unzip()
    };
    (stat(&d, 0.0), stat(&q, 1.0))
}

/// Whether every round agrees on the sign of a difference, in words.
fn agreement(d: &Stat, more: &str, less: &str) -> String {
    if d.above == d.n {
        format!("{more} in every one of the {} rounds", d.n)
    } else if d.above == 0 {
        format!("{less} in every one of the {} rounds", d.n)
    } else {
        format!(
            "{more} in {} of {} rounds, {less} in the others: not resolved by this run",
            d.above, d.n
        )
    }
}

pub fn render(w: &mut String, r: &CompareResult) {
    let base = r.of(Config::Baseline);
    let base_ns: Vec<f64> = base.iter().map(|s| s.ns()).collect();
    let _ = writeln!(
        w,
        "\n## What watching every request costs in a real Apache\n\n\
         For operators choosing how to see each request Apache serves. Apache CPU time per \
         request (user + system, all Apache processes) in an event-MPM Apache serving a \
         small static site, for each way of seeing every request, against the same Apache \
         with none. {} rounds; in each, every configuration served {} keep-alive requests \
         (over {} connections, each request sent once the previous response was read, \
         cycling through `GET /`, `GET /page.html?q=1&r=2`, `HEAD /page.html`, \
         `GET /missing.html`), in an order that rotates from round to round, with the \
         baseline served again before the first, between any two and after the last; every \
         figure is compared with the mean of the two baseline figures measured just before \
         and just after it, so that the machine's drift cancels, and the spread is over \
         rounds. Comparisons between two configurations compare their costs above their own \
         baselines.\n",
        r.rounds, r.requests, r.conns
    );
    let _ = writeln!(
        w,
        "| configuration | CPU per request, ns (median) | vs baseline, ns (median; IQR) | ratio to baseline (median; IQR; range) | rounds above baseline | system share of Apache's CPU | tracer's own process, ns per request | seen by the tracer |\n|---|---|---|---|---|---|---|---|"
    );
    for c in CONFIGS {
        let s = r.of(c);
        let ns: Vec<f64> = s.iter().map(|x| x.ns()).collect();
        let (user, sys) = s.iter().fold((0, 0), |(u, y), x| {
            (u + x.apache.user_ticks, y + x.apache.system_ticks)
        });
        let share = if user + sys == 0 {
            "-".to_string()
        } else {
            format!("{:.0} %", 100.0 * sys as f64 / (user + sys) as f64)
        };
        let tracer: Vec<f64> = s
            .iter()
            .filter_map(|x| x.tracer.map(|t| t.ns as f64 / x.requests as f64))
            .collect();
        let tracer = if tracer.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}", util::median(&tracer))
        };
        let requests: u64 = s.iter().map(|x| x.requests).sum();
        let lost: u64 = s.iter().map(|x| x.lost).sum();
        let seen = match c {
            Config::Counted | Config::Uprobes => {
                let (a, b) = s.iter().fold((0, 0), |(a, b), x| {
                    let (sa, sb) = x.seen.unwrap_or((0, 0));
                    (a + sa, b + sb)
                });
                format!("{a} starts, {b} ends for {requests} requests")
            }
            Config::Printed => {
                let n: u64 = s.iter().map(|x| x.seen.map_or(0, |v| v.1)).sum();
                format!("{n} lines printed, {lost} events lost, for {requests} requests")
            }
            _ => "-".into(),
        };
        if c == Config::Baseline {
            let _ = writeln!(
                w,
                "| {} | {:.0} | - | - | - | {share} | - | - |",
                c.label(),
                util::median(&ns)
            );
            continue;
        }
        let (d, q) = versus(r, c, Config::Baseline);
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:+.0} ({:+.0} to {:+.0}) | {:.3} ({:.3}-{:.3}; {:.3}-{:.3}) | {} of {} | {share} | {tracer} | {seen} |",
            c.label(),
            util::median(&ns),
            d.median,
            d.q1,
            d.q3,
            q.median,
            q.q1,
            q.q3,
            q.lo,
            q.hi,
            d.above,
            d.n,
        );
    }

    // The two comparisons, plainly.
    let over = |c: Config| versus(r, c, Config::Baseline).0.median;
    let (dl, ql) = versus(r, Config::Counted, Config::AccessLog);
    let (db, qb) = versus(r, Config::Counted, Config::Buffered);
    let (dp, qp) = versus(r, Config::Printed, Config::AccessLog);
    let _ = writeln!(
        w,
        "\n**Traced module against the `%D` access log.** Traced by bpftrace counting both \
         probes, the module added {:+.0} ns of Apache CPU per request to the baseline; the \
         access log with `%D` added {:+.0} ns, or {:+.0} ns with `BufferedLogs On`. Round by \
         round, the traced module's CPU per request was {:.3} times the access log's (IQR \
         {:.3}-{:.3}), {:+.0} ns per request (IQR {:+.0} to {:+.0}): {}; against the buffered \
         log {:.3} times, {:+.0} ns: {}. Printing every request with \
         `examples/http-requests.bt`, the module added {:+.0} ns to Apache ({:.3} times the \
         plain access log's CPU per request: {}), and bpftrace's own process spent the \
         figure in the table on top.",
        over(Config::Counted),
        over(Config::AccessLog),
        over(Config::Buffered),
        ql.median,
        ql.q1,
        ql.q3,
        dl.median,
        dl.q1,
        dl.q3,
        agreement(&dl, "more than the access log", "less than the access log"),
        qb.median,
        db.median,
        agreement(&db, "more", "less"),
        over(Config::Printed),
        qp.median,
        agreement(&dp, "more", "less"),
    );
    let (du, qu) = versus(r, Config::Counted, Config::Uprobes);
    let _ = writeln!(
        w,
        "\n**Traced module against raw uprobes.** Counting the same two moments without the \
         module, with uprobes on Apache's own `{UPROBE_START}` and `{UPROBE_DONE}` in \
         `/usr/sbin/apache2`, added {:+.0} ns per request; the module traced the same way \
         added {:+.0} ns, and hands the tracer the request's method, URI, peers, status, \
         latency and bytes besides. Round by round the traced module's CPU per request was \
         {:.3} times the uprobes' (IQR {:.3}-{:.3}), {:+.0} ns (IQR {:+.0} to {:+.0}): {}.",
        over(Config::Uprobes),
        over(Config::Counted),
        qu.median,
        qu.q1,
        qu.q3,
        du.median,
        du.q1,
        du.q3,
        agreement(&du, "more than the uprobes", "less than the uprobes"),
    );

    // The spread, against the differences.
    let unresolved: Vec<&str> = CONFIGS[1..]
        .iter()
        .filter(|&&c| {
            let d = versus(r, c, Config::Baseline).0;
            d.above != 0 && d.above != d.n
        })
        .map(|c| c.label())
        .collect();
    let widest = CONFIGS[1..]
        .iter()
        .map(|&c| {
            let q = versus(r, c, Config::Baseline).1;
            q.q3 - q.q1
        })
        .fold(0.0, f64::max);
    let (bq1, bq3) = util::quartiles(&base_ns);
    let _ = writeln!(
        w,
        "\nSpread: the baseline itself ranged {bq1:.0}-{bq3:.0} ns per request (IQR) over the \
         rounds, and the widest IQR of a ratio to baseline was {widest:.3}. {}",
        if unresolved.is_empty() {
            "Every configuration was above (or below) the baseline in every round.".to_string()
        } else {
            format!(
                "Not resolved from the baseline (the rounds disagree on the sign): {}. Their \
                 cost is below what this method resolves on this machine; for the untraced \
                 module, section 1 counts it in instructions.",
                unresolved.join("; ")
            )
        }
    );
    let _ = writeln!(
        w,
        "\nHow: four Apache instances (Debian's apache2, event MPM with one child of 25 \
         threads so that no process starts or ends during a round, `mod_authz_core`, \
         `mod_dir`, `mod_mime`, `KeepAlive On`) run side by side: without the module (also \
         the one the uprobes trace), with it, and with the access log (`LogFormat \"%h %l %u \
         %t \\\"%r\\\" %>s %b \\\"%{{User-Agent}}i\\\" %D\"`) plain and buffered. {}. A \
         configuration's figure for a round is the CPU time all of its Apache's processes \
         used while serving the round's requests (each thread's on-CPU ns from \
         `/proc/PID/task/TID/schedstat`, whose total `/proc/PID/stat` splits into user and \
         system time in clock ticks, the split shown above) divided by the requests served. \
         A tracer is started before its configuration's requests and stopped after them; its \
         start-up is not measured, and its CPU while the requests are served goes to the \
         processes that run it: the probe handlers to Apache (as system time), bpftrace's \
         own reading and printing to bpftrace. Every round checks what was seen: bpftrace's \
         counts of the module's probes equal the requests, the example printed a line per \
         request (or bpftrace reported the loss), the uprobes counted at least as many calls \
         (they also see any other Apache on the machine), and the plain access log grew by \
         a line per request; over the whole run the plain log has {} lines for {} requests, \
         the buffered one {} for {}. The machine's 1-minute load average was {:.2} before \
         this section and {:.2} after it.",
        r.placement,
        r.log_lines[0].0,
        r.log_lines[0].1,
        r.log_lines[1].0,
        r.log_lines[1].1,
        r.load.0,
        r.load.1,
    );
}
