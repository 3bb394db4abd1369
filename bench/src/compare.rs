//! The real-Apache comparison, BENCHMARKS.md's first table: what it costs in CPU per request
//! to watch every request with the module, against what an operator would otherwise do (an
//! access log with `%D`; raw uprobes on Apache's own functions), in a real Apache.
//!
//! Four event-MPM Apache instances run side by side: without the module, with it, and with
//! an access log written plain and with `BufferedLogs On`. Each round drives every
//! configuration once with the same fixed number of keep-alive requests of the fixed mix
//! (each request sent once the previous response is in), in an order that rotates from round
//! to round, with the baseline driven again before the first, between any two and after the
//! last. A configuration's figure for a round is the CPU time all its Apache processes used
//! (user + system, from /proc) divided by the requests served, and it is compared with the
//! mean of the two baseline figures measured just before and just after it, so that the
//! machine's drift cancels; the spread over rounds is the noise. Apache runs on its own CPUs,
//! the client and the tracers on another, where the machine has more than one.

use crate::notes::Probes;
use crate::util::{self, CpuTime, Daemon, R, Site};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

mod report;
pub use report::render;

pub struct Sizes {
    pub rounds: usize,
    /// Requests per configuration per round, over `conns` connections.
    pub requests: usize,
    pub conns: usize,
}

/// Apache's own binary, which the raw uprobes attach to.
const APACHE_BIN: &str = "/usr/sbin/apache2";
/// The two Apache functions the raw uprobes count: one call per request read, one per
/// request logged.
pub const UPROBE_START: &str = "ap_read_request";
pub const UPROBE_DONE: &str = "ap_run_log_transaction";
/// The example script run as the realistic consumer, and the line it prints once attached.
const EXAMPLE: &str = "examples/http-requests.bt";
const EXAMPLE_READY: &str = "Tracing Apache requests";
/// Where the example expects the module (the Debian package's path).
const EXAMPLE_MODULE: &str = "/usr/lib/apache2/modules/mod_dtprovider.so";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Config {
    Baseline,
    Loaded,
    Counted,
    Printed,
    AccessLog,
    Buffered,
    Uprobes,
}

pub const CONFIGS: [Config; 7] = [
    Config::Baseline,
    Config::Loaded,
    Config::Counted,
    Config::Printed,
    Config::AccessLog,
    Config::Buffered,
    Config::Uprobes,
];

impl Config {
    pub fn label(self) -> &'static str {
        match self {
            Config::Baseline => "Apache without the module (baseline)",
            Config::Loaded => "module loaded, not traced",
            Config::Counted => "module traced: bpftrace `count()` on both probes",
            Config::Printed => "module traced: `examples/http-requests.bt` printing every request",
            Config::AccessLog => "no module; access log with `%D` (mod_log_config)",
            Config::Buffered => "no module; access log with `%D`, `BufferedLogs On`",
            Config::Uprobes => "no module; bpftrace uprobes on Apache's functions, `count()`",
        }
    }

    fn index(self) -> usize {
        CONFIGS.iter().position(|&c| c == self).unwrap()
    }

    /// Which of the four Apache instances serves this configuration.
    fn instance(self) -> usize {
        match self {
            Config::Baseline | Config::Uprobes => 0,
            Config::Loaded | Config::Counted | Config::Printed => 1,
            Config::AccessLog => 2,
            Config::Buffered => 3,
        }
    }
}

/// One configuration in one round.
pub struct Sample {
    pub requests: u64,
    pub apache: CpuTime,
    /// The tracer's own process (bpftrace in user space and the system calls it makes).
    pub tracer: Option<CpuTime>,
    /// What the tracer saw: (request starts, request ends) counted, or, for the printing
    /// script, (0, lines printed).
    pub seen: Option<(u64, u64)>,
    /// Events bpftrace reported lost.
    pub lost: u64,
    /// The baseline's CPU per request (ns) around this sample: the mean of the baseline
    /// samples just before and just after it (a baseline sample: its own).
    pub baseline_ns: f64,
}

impl Sample {
    /// CPU per request, ns.
    pub fn ns(&self) -> f64 {
        self.apache.ns as f64 / self.requests as f64
    }

    /// CPU per request above the baseline around it, ns.
    pub fn extra_ns(&self) -> f64 {
        self.ns() - self.baseline_ns
    }

    /// CPU per request relative to the baseline around it.
    pub fn ratio(&self) -> f64 {
        self.ns() / self.baseline_ns
    }
}

pub struct CompareResult {
    /// `samples[config index][round]`.
    pub samples: Vec<Vec<Sample>>,
    /// Where Apache and the client ran, in words.
    pub placement: String,
    pub rounds: usize,
    pub requests: usize,
    pub conns: usize,
    /// Access-log lines written over the whole run, against requests served (plain, buffered).
    pub log_lines: [(u64, u64); 2],
    /// The machine's 1-minute load average before and after the section.
    pub load: (f64, f64),
}

impl CompareResult {
    pub fn of(&self, c: Config) -> &[Sample] {
        &self.samples[c.index()]
    }
}

/// (Apache's CPUs, the client's) as `taskset` lists, or None on a single CPU.
fn placement() -> Option<(String, String)> {
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    match n {
        0 | 1 => None,
        2 => Some(("0".into(), "1".into())),
        n => Some((format!("0-{}", n - 2), format!("{}", n - 1))),
    }
}

/// The extra configuration every instance gets: one child with a fixed set of threads, so
/// that no process starts or ends while a round is measured (its CPU time would be lost).
fn fixed_processes() -> Vec<String> {
    [
        "StartServers 1",
        "ServerLimit 1",
        "ThreadsPerChild 25",
        "MaxRequestWorkers 25",
        "MinSpareThreads 1",
        "MaxSpareThreads 50",
        "MaxConnectionsPerChild 0",
    ]
    .map(String::from)
    .to_vec()
}

struct Instance {
    site: Site,
    apache: Daemon,
    log: Option<PathBuf>,
}

pub fn measure(root: &Path, work: &Path, module: &Path, sz: &Sizes) -> R<CompareResult> {
    if !Path::new(APACHE_BIN).exists() {
        return Err(format!(
            "{APACHE_BIN} not found (the raw uprobes attach to it)"
        ));
    }
    let probes = Probes::read(module)?;
    let scripts = Scripts::new(root, module, &probes)?;
    let cpus = placement();
    let (apache_cpus, client_cpus) = match &cpus {
        Some((a, c)) => (Some(a.as_str()), Some(c.as_str())),
        None => (None, None),
    };
    let log_format =
        "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{User-Agent}i\\\" %D\" timed".to_string();
    let mut instances = Vec::new();
    for (i, name) in ["plain", "module", "log", "buffered"].iter().enumerate() {
        let mut extra = fixed_processes();
        let mut log = None;
        match i {
            1 => extra.push(format!("LoadModule dtprovider_module {}", module.display())),
            2 | 3 => {
                let l = work.join(format!("compare-{name}-access.log"));
                extra.push(log_format.clone());
                extra.push(format!("CustomLog {} timed", l.display()));
                if i == 3 {
                    extra.push("BufferedLogs On".into());
                }
                log = Some(l);
            }
            _ => {}
        }
        let site = util::site(
            &work.join(format!("compare-{name}")),
            util::Mpm::Event,
            &extra,
        )?;
        let apache = util::start(&site, apache_cpus)?;
        util::wait_for("Apache's single child", 30, || apache.children().len() == 1)?;
        instances.push(Instance { site, apache, log });
    }
    let load_before = load_average();
    // Warm-up: every instance serves a quarter round first.
    let mut served = [0u64; 4];
    for (i, inst) in instances.iter().enumerate() {
        let warm = Sizes {
            rounds: 1,
            requests: (sz.requests / 4).max(sz.conns),
            conns: sz.conns,
        };
        served[i] += burst(&inst.site, &inst.apache, &warm, client_cpus, None)?.0;
    }
    let mut samples: Vec<Vec<Sample>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let others = &CONFIGS[1..];
    for round in 0..sz.rounds {
        let mut take = |c: Config, k: usize| -> R<Sample> {
            let inst = &instances[c.instance()];
            let tdir = work.join(format!("bt-compare-{round}-{k}"));
            let s = sample(c, inst, &scripts, &tdir, sz, client_cpus)
                .map_err(|e| format!("{} (round {}): {e}", c.label(), round + 1))?;
            served[c.instance()] += s.requests;
            let _ = fs::remove_dir_all(&tdir);
            Ok(s)
        };
        let mut before = take(Config::Baseline, 0)?;
        for k in 0..others.len() {
            let c = others[(round + k) % others.len()];
            let mut s = take(c, 2 * k + 1)?;
            let after = take(Config::Baseline, 2 * k + 2)?;
            s.baseline_ns = (before.ns() + after.ns()) / 2.0;
            samples[c.index()].push(s);
            samples[0].push(std::mem::replace(&mut before, after));
        }
        samples[0].push(before);
    }
    // The plain log is written as requests are logged; the buffered one is complete once
    // its Apache has stopped.
    let mut log_lines = [(0, 0); 2];
    for (i, inst) in instances.into_iter().enumerate() {
        let Instance { site, apache, log } = inst;
        drop(apache);
        if let Some(l) = log {
            log_lines[i - 2] = (lines(&l), served[i]);
        }
        let errors = site.error_log();
        let serious = [":error]", ":crit]", ":alert]", ":emerg]"];
        if errors
            .lines()
            .any(|l| serious.iter().any(|s| l.contains(s)))
        {
            return Err(format!("Apache logged errors:\n{errors}"));
        }
    }
    for (lines, requests) in log_lines {
        if lines != requests {
            return Err(format!(
                "an access log has {lines} lines for {requests} requests"
            ));
        }
    }
    Ok(CompareResult {
        samples,
        placement: match &cpus {
            Some((a, c)) => format!(
                "Apache (every instance) on CPU {a}, the client and the tracers on CPU {c} (taskset)"
            ),
            None => "one CPU: Apache, client and tracers not pinned apart".into(),
        },
        rounds: sz.rounds,
        requests: sz.requests / sz.conns * sz.conns,
        conns: sz.conns,
        log_lines,
        load: (load_before, load_average()),
    })
}

/// The 1-minute load average (/proc/loadavg).
fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The three bpftrace scripts: counting the module's probes, the printing example (made to
/// trace this copy of the module), counting Apache's own functions.
struct Scripts {
    counted: String,
    printed: String,
    uprobes: String,
}

impl Scripts {
    fn new(root: &Path, module: &Path, probes: &Probes) -> R<Scripts> {
        let example = fs::read_to_string(root.join(EXAMPLE))
            .map_err(|e| format!("{EXAMPLE}: {e}"))?
            .replace(EXAMPLE_MODULE, &module.to_string_lossy());
        let done = Probes::usdt(module, &probes.done);
        if !example.contains(&done) {
            return Err(format!(
                "{EXAMPLE} does not attach to {done}: the example and the module's probe \
                 notes disagree"
            ));
        }
        Ok(Scripts {
            counted: format!(
                "BEGIN {{ printf(\"READY\\n\"); }}\n\
                 {} {{ @start = count(); }}\n\
                 {done} {{ @done = count(); }}\n",
                Probes::usdt(module, &probes.start),
            ),
            printed: example,
            uprobes: format!(
                "BEGIN {{ printf(\"READY\\n\"); }}\n\
                 uprobe:{APACHE_BIN}:{UPROBE_START} {{ @start = count(); }}\n\
                 uprobe:{APACHE_BIN}:{UPROBE_DONE} {{ @done = count(); }}\n"
            ),
        })
    }
}

fn sample(
    c: Config,
    inst: &Instance,
    scripts: &Scripts,
    tdir: &Path,
    sz: &Sizes,
    client_cpus: Option<&str>,
) -> R<Sample> {
    let (script, ready) = match c {
        Config::Counted => (Some(&scripts.counted), "READY"),
        Config::Printed => (Some(&scripts.printed), EXAMPLE_READY),
        Config::Uprobes => (Some(&scripts.uprobes), "READY"),
        _ => (None, ""),
    };
    let tracer = match script {
        Some(s) => Some(util::tracer(s, tdir, ready, client_cpus)?),
        None => None,
    };
    let lines_before = inst.log.as_deref().map(lines);
    let measured = burst(
        &inst.site,
        &inst.apache,
        sz,
        client_cpus,
        tracer.as_ref().and_then(|t| t.pid()),
    );
    let (out, err) = match tracer {
        Some(mut t) => t.finish(),
        None => (String::new(), String::new()),
    };
    let (requests, apache, tracer_cpu) = measured?;
    let lost = lost_events(&out) + lost_events(&err);
    let seen = match c {
        Config::Counted | Config::Uprobes => {
            Some((util::bt_count(&out, "start"), util::bt_count(&out, "done")))
        }
        Config::Printed => Some((0, printed_requests(&out))),
        _ => None,
    };
    // Machinery checks: a tracer that saw nothing, or fewer requests than were served (the
    // uprobes also see every other Apache on the machine, so they may see more).
    match (c, seen) {
        (Config::Counted, Some(s)) if s != (requests, requests) => {
            return Err(format!(
                "bpftrace counted {s:?} probe events for {requests} requests\n{out}{err}"
            ));
        }
        (Config::Uprobes, Some((a, b))) if a < requests || b < requests => {
            return Err(format!(
                "the uprobes counted {a} and {b} calls for {requests} requests\n{out}{err}"
            ));
        }
        (Config::Printed, Some((_, n))) if n + lost != requests => {
            return Err(format!(
                "the example printed {n} requests and lost {lost} events for {requests} \
                 requests\n{err}"
            ));
        }
        _ => {}
    }
    if let (Some(log), Some(before)) = (inst.log.as_deref(), lines_before) {
        if c == Config::AccessLog {
            let mut now = lines(log);
            let _ = util::wait_for("the access log to catch up", 10, || {
                now = lines(log);
                now >= before + requests
            });
            if now != before + requests {
                return Err(format!(
                    "the access log grew by {} lines for {requests} requests",
                    now - before
                ));
            }
        }
    }
    let own = apache.ns as f64 / requests as f64;
    Ok(Sample {
        requests,
        apache,
        tracer: tracer_cpu,
        seen,
        lost,
        baseline_ns: own,
    })
}

/// Sends one round's requests to `site` from `sz.conns` client threads (pinned to
/// `client_cpus`) and returns the requests served with the CPU time Apache's processes, and
/// the tracer's, used meanwhile.
fn burst(
    site: &Site,
    apache: &Daemon,
    sz: &Sizes,
    client_cpus: Option<&str>,
    tracer: Option<u32>,
) -> R<(u64, CpuTime, Option<CpuTime>)> {
    let per_conn = sz.requests / sz.conns;
    let pinned = Arc::new(Barrier::new(sz.conns + 1));
    let go = Arc::new(Barrier::new(sz.conns + 1));
    let port = site.port;
    let clients: Vec<_> = (0..sz.conns)
        .map(|_| {
            let (pinned, go) = (pinned.clone(), go.clone());
            let cpus = client_cpus.map(str::to_string);
            thread::spawn(move || -> R<()> {
                let pin = cpus.as_deref().map_or(Ok(()), util::pin_this_thread);
                pinned.wait();
                go.wait();
                pin?;
                util::keepalive_mix_serial(port, per_conn)
            })
        })
        .collect();
    pinned.wait();
    let pids = apache.processes();
    let before = util::cpu_time(&pids);
    let tracer_before = tracer.map(|p| util::cpu_time(&[p]));
    go.wait();
    let mut failed = None;
    for c in clients {
        let r = c
            .join()
            .unwrap_or_else(|_| Err("a client thread panicked".into()));
        if let Err(e) = r {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // The last responses' logging and the connections' lingering close.
    thread::sleep(Duration::from_millis(100));
    let after = util::cpu_time(&pids)?;
    let before = before?;
    if apache.processes() != pids {
        return Err(format!(
            "Apache's processes changed during the round ({pids:?} -> {:?})",
            apache.processes()
        ));
    }
    let tracer_cpu = match (tracer, tracer_before) {
        (Some(p), Some(b)) => {
            // The tracer may still be catching up with what it was sent.
            thread::sleep(Duration::from_millis(400));
            Some(util::cpu_time(&[p])?.since(&b?))
        }
        _ => None,
    };
    Ok((
        (per_conn * sz.conns) as u64,
        after.since(&before),
        tracer_cpu,
    ))
}

fn lines(p: &Path) -> u64 {
    fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Request lines the example printed (its method column).
fn printed_requests(out: &str) -> u64 {
    out.lines()
        .filter(|l| l.split_whitespace().any(|w| w == "GET" || w == "HEAD"))
        .count() as u64
}

/// The sum of bpftrace's "Lost N events" reports.
fn lost_events(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.split("Lost ").nth(1)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}
