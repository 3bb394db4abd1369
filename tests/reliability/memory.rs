//! Memory: each Apache child's RSS over 500,000 traced requests, and a leaking test build the
//! same measurement must flag.
//!
//! The bound: over 500,000 traced requests, the resident size (VmRSS) of each Apache
//! child grows by less than 1 %.
//!
//! Where the noise came from (measured by sampling /proc/PID/smaps every 100 ms): Debian's APR
//! allocator takes its pool memory straight from mmap, 8 kB at a time (strace; adjacent blocks
//! merge into 8-88 kB mappings), and glibc's heap stays at 72 kB. While wrk runs, the in-flight connections' and requests' pools hold 300-600 kB more
//! than when the child is idle, so a reading taken during or right after a burst lands anywhere
//! in that range (the CI failure: 5292..5760 kB, +1.35 % with no trend). Once the child is
//! idle, that transient memory is gone, but with `MaxMemFree 64` every allocator (one per
//! worker thread and per recycled connection pool) still keeps up to 64 kB of freed blocks,
//! and how much each kept depends on what it served last: idle readings still wandered over
//! 44 kB (0.85 %), again with no trend.
//!
//! So the check (1) samples only when the child has gone idle after each load burst (no CPU
//! time used and RSS unchanged for a second), (2) runs Apache with `MaxMemFree 1`, so that an
//! allocator returns freed blocks to the kernel instead of caching them (a leak still shows:
//! leaked memory is never freed, whether it came from malloc or from a pool), and keeps one
//! malloc arena (`MALLOC_ARENA_MAX=1`: a lazily created arena would appear or not by timing),
//! and (3) uses two estimators that must both stay under the bound: the floor (minimum) of the
//! first samples against the floor of the last ones, at least 500,000 requests apart (noise
//! only ever adds memory, so the floor is its robust level), and the least-squares slope over
//! all samples, extrapolated to 500,000 requests. Idle readings then repeat exactly, except
//! for one step of 4-8 kB (0.16 %) within the first samples after the warm-up. glibc's dynamic
//! mmap and trim thresholds are left alone: malloc's heap does not move, and APR maps its
//! blocks itself. The `leak-test` build (32 bytes every 128th request-done, about 3.6 % of the child
//! over 500,000 requests) proves the same measurement flags a leak a few times the bound.

use super::*;

/// The figures: requests traced, and the bound on each child's RSS growth (%).
const MEMORY_REQUESTS: u64 = 500_000;
const MEMORY_BOUND_PCT: f64 = 1.0;
/// Samples in each of the first and last windows whose floors are compared.
const FLOOR_WINDOW: usize = 3;
/// Length of one wrk burst; a sample is taken after each, once the children are idle.
const BURST_SECS: u64 = 2;
/// The whole measurement must end within this (it fails rather than run on forever).
const MEMORY_DEADLINE: Duration = Duration::from_secs(600);

fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            Some(f.iter().sum())
        })
        .unwrap_or(0)
}

fn threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Runs wrk for `secs` and returns the number of requests it completed.
fn wrk_requests(url: &str, secs: u64, conns: usize) -> u64 {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read wrk's output: {text}"))
}

/// Waits until `kids` are idle (no CPU time used and the same RSS over ten polls 100 ms
/// apart, i.e. one second) and returns their RSS in kB.
fn quiescent_rss(kids: &[u32]) -> Vec<u64> {
    let state = || {
        let rss: Vec<u64> = kids.iter().map(|&p| rss_kb(p)).collect();
        let cpu: u64 = kids.iter().map(|&p| cpu_ticks(p)).sum();
        (rss, cpu)
    };
    let mut last = state();
    let mut stable = 0;
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(100),
        || format!("Apache's children {kids:?} did not go idle within 60 s after a burst"),
        || {
            let now = state();
            assert!(
                now.0.iter().all(|&r| r > 0),
                "an Apache child exited during the memory check: {kids:?}"
            );
            stable = if now == last { stable + 1 } else { 0 };
            last = now;
            stable >= 10
        },
    );
    last.0
}

/// One child's quiescent RSS samples, as (requests traced since the baseline, kB).
struct ChildMemory {
    pid: u32,
    /// What the child is: "worker child (10 threads)", "mod_cgid daemon", "prefork child".
    role: String,
    samples: Vec<(u64, u64)>,
}

impl ChildMemory {
    /// The floors (minimum RSS) of the first and of the last `FLOOR_WINDOW` samples.
    fn floors(&self) -> (u64, u64) {
        let rss = |s: &[(u64, u64)]| s.iter().map(|x| x.1).min().unwrap();
        let n = self.samples.len();
        (
            rss(&self.samples[..FLOOR_WINDOW]),
            rss(&self.samples[n - FLOOR_WINDOW..]),
        )
    }

    fn floor_growth_pct(&self) -> f64 {
        let (a, b) = self.floors();
        (b as f64 - a as f64) / a as f64 * 100.0
    }

    /// The least-squares line through all samples: growth over `MEMORY_REQUESTS` requests, in
    /// percent of the line's value at the baseline.
    fn slope_growth_pct(&self) -> f64 {
        let n = self.samples.len() as f64;
        let (mx, my) = self.samples.iter().fold((0.0, 0.0), |(x, y), s| {
            (x + s.0 as f64 / n, y + s.1 as f64 / n)
        });
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for &(x, y) in &self.samples {
            sxy += (x as f64 - mx) * (y as f64 - my);
            sxx += (x as f64 - mx) * (x as f64 - mx);
        }
        let slope = sxy / sxx;
        let intercept = my - slope * mx;
        slope * MEMORY_REQUESTS as f64 / intercept * 100.0
    }

    /// What the check holds against the bound: the larger of the two estimates.
    fn growth_pct(&self) -> f64 {
        self.floor_growth_pct().max(self.slope_growth_pct())
    }

    fn summary(&self) -> String {
        let (a, b) = self.floors();
        let rss: Vec<u64> = self.samples.iter().map(|s| s.1).collect();
        format!(
            "{}: RSS floor {a} kB -> {b} kB ({:+.2} %), slope {:+.2} % per {} requests, \
             {} idle samples {}..{} kB",
            self.role,
            self.floor_growth_pct(),
            self.slope_growth_pct(),
            MEMORY_REQUESTS,
            rss.len(),
            rss.iter().min().unwrap(),
            rss.iter().max().unwrap()
        )
    }
}

struct MemoryRun {
    /// Requests of the warm-up, before the baseline sample.
    warm: u64,
    /// Requests wrk completed after the baseline sample.
    traced: u64,
    /// Requests between the last sample of the first floor window and the first of the last.
    span: u64,
    start_events: u64,
    done_events: u64,
    children: Vec<ChildMemory>,
    seconds: f64,
}

impl MemoryRun {
    fn worst(&self) -> &ChildMemory {
        self.children
            .iter()
            .max_by(|a, b| a.growth_pct().total_cmp(&b.growth_pct()))
            .unwrap()
    }

    fn summary(&self) -> String {
        let kids: Vec<String> = self.children.iter().map(ChildMemory::summary).collect();
        format!(
            "{} traced requests after a {}-request warm-up ({} between the floor windows), {} request-start and {} request-done events; {}; {:.0} s",
            self.traced,
            self.warm,
            self.span,
            self.start_events,
            self.done_events,
            kids.join("; "),
            self.seconds
        )
    }
}

/// Traces `target` requests (at least) against Apache under `mpm`, loading `module` (the
/// freshly built one if None), and samples every child's RSS after each load burst once the
/// children are idle. Checks that no child was replaced and that the tracer saw every request.
fn measure_memory(mpm: Mpm, module: Option<&Path>, target: u64) -> MemoryRun {
    let began = Instant::now();
    let mut opts = ApacheOpts::new(mpm);
    opts.h2c = false;
    opts.ipv6 = false;
    // Children never recycled or replaced; no access log to grow buffers; allocators give
    // freed blocks back at once (see above).
    let (procs, conns) = match mpm {
        Mpm::Prefork => (
            "StartServers 4\nServerLimit 4\nMinSpareServers 1\nMaxSpareServers 4\nMaxRequestWorkers 4",
            4,
        ),
        _ => (
            "StartServers 1\nServerLimit 1\nMinSpareThreads 1\nMaxSpareThreads 8\nThreadsPerChild 8\n\
             MaxRequestWorkers 8",
            16,
        ),
    };
    opts.extra = format!("{procs}\nMaxConnectionsPerChild 0\nMaxMemFree 1\nCustomLog /dev/null dt");
    opts.env.push(("MALLOC_ARENA_MAX".into(), "1".into()));
    let a = Apache::prepare(opts);
    if let Some(m) = module {
        fs::copy(m, &a.module).unwrap();
    }
    let a = a.launch();
    let t = Tracer::start(
        "BEGIN { printf(\"READY\\n\"); }\nusdt:@MODULE@:httpd:request__start { @s = count(); }\nusdt:@MODULE@:httpd:request__done { @d = count(); }\n",
        &a.module,
    );
    let url = a.url("/page.html");
    // Warm-up in bursts shaped like the measured ones, with more connections than threads, so
    // that every thread has served requests (its stack and pools are touched) and the
    // recycled connection pools are in their steady state before the baseline.
    let mut warm = 0;
    for _ in 0..3 {
        warm += wrk_requests(&url, BURST_SECS, conns);
    }
    let pids = a.children();
    let mut children: Vec<ChildMemory> = pids
        .iter()
        .map(|&pid| ChildMemory {
            pid,
            role: match (threads(pid), mpm) {
                (1, Mpm::Prefork) => "prefork child".into(),
                (1, _) => "mod_cgid daemon".into(),
                (t, _) => format!("worker child ({t} threads)"),
            },
            samples: Vec::new(),
        })
        .collect();
    let push = |children: &mut Vec<ChildMemory>, sent: u64| {
        for (c, rss) in children.iter_mut().zip(quiescent_rss(&pids)) {
            c.samples.push((sent, rss));
        }
    };
    push(&mut children, 0);
    let mut traced = 0;
    let span = loop {
        traced += wrk_requests(&url, BURST_SECS, conns);
        push(&mut children, traced);
        let s = &children[0].samples;
        let n = s.len();
        if n >= 2 * FLOOR_WINDOW && s[n - FLOOR_WINDOW].0 - s[FLOOR_WINDOW - 1].0 >= target {
            break s[n - FLOOR_WINDOW].0 - s[FLOOR_WINDOW - 1].0;
        }
        assert!(
            began.elapsed() < MEMORY_DEADLINE,
            "the memory check did not reach {target} requests in {MEMORY_DEADLINE:?} ({traced} requests): this machine is too slow or too busy for it"
        );
    };
    let mut now = a.children();
    now.sort();
    let mut before = pids.clone();
    before.sort();
    assert_eq!(
        now, before,
        "Apache's children changed during the memory check"
    );
    let out = t.stop();
    let count = |name: &str| -> u64 {
        out.lines()
            .find(|l| l.starts_with(&format!("@{name}:")))
            .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let run = MemoryRun {
        warm,
        traced,
        span,
        start_events: count("s"),
        done_events: count("d"),
        children,
        seconds: began.elapsed().as_secs_f64(),
    };
    for c in &run.children {
        let rss: Vec<u64> = c.samples.iter().map(|s| s.1).collect();
        eprintln!("{}, pid {}, idle RSS samples (kB): {rss:?}", c.role, c.pid);
    }
    eprintln!("{}", run.summary());
    // Every request wrk saw answered went through both probes (a few more may have been
    // answered after wrk stopped counting).
    assert!(
        run.start_events >= warm + traced && run.done_events >= warm + traced,
        "the tracer missed requests: {} request-start and {} request-done events for {} requests",
        run.start_events,
        run.done_events,
        warm + traced
    );
    run
}

fn memory_check(mpm: Mpm) {
    let _serial = serial();
    let what = format!(
        "memory over {MEMORY_REQUESTS} traced requests ({})",
        mpm.name()
    );
    if !need_tracing(&what) || !need_wrk(&what) {
        return;
    }
    let target = if soak() {
        4 * MEMORY_REQUESTS
    } else {
        MEMORY_REQUESTS
    };
    let run = measure_memory(mpm, None, target);
    let worst = run.worst();
    assert!(
        worst.growth_pct() < MEMORY_BOUND_PCT,
        "{what}: a child's RSS grew {:.2} % (bound {MEMORY_BOUND_PCT} %): {}",
        worst.growth_pct(),
        run.summary()
    );
    report(&format!("memory, {}", mpm.name()), run.summary());
}

#[test]
fn memory_is_flat_over_500k_traced_requests() {
    memory_check(Mpm::Event);
}

#[test]
fn memory_under_prefork_and_worker_in_soak() {
    if !soak() {
        eprintln!("the memory check under prefork and worker runs with DTPROVIDER_SOAK=1");
        return;
    }
    memory_check(Mpm::Prefork);
    memory_check(Mpm::Worker);
}

/// The measurement can fail: the same check over a module that leaks 32 bytes every 128th
/// traced request (about 3.6 % of the child over 500,000 requests) reports growth above the
/// bound, by both estimators.
#[test]
fn memory_check_flags_a_small_leak() {
    let _serial = serial();
    let what = "memory check sensitivity (leak-test build)";
    if !need_tracing(what) || !need_wrk(what) {
        return;
    }
    let module = feature_module("leak-test");
    let run = measure_memory(Mpm::Event, Some(&module), MEMORY_REQUESTS);
    let worst = run.worst();
    assert!(
        worst.floor_growth_pct() > MEMORY_BOUND_PCT && worst.slope_growth_pct() > MEMORY_BOUND_PCT,
        "{what}: the leak went unnoticed (floor {:+.2} %, slope {:+.2} %): {}",
        worst.floor_growth_pct(),
        worst.slope_growth_pct(),
        run.summary()
    );
    report(
        "memory, leak-test build (must fail the 1 % bound)",
        format!("flagged: {}", run.summary()),
    );
}
