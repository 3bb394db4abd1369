//! Process, CPU-time and HTTP helpers of the benchmark, over the project's test harness
//! (testkit/: the private Apache, bpftrace, polling). Everything runs on 127.0.0.1 with
//! private directories and ports; every process started here is stopped by its pid.

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

pub use testkit::{
    Daemon, How, Mpm, Site, SiteConf, Tracer, bt_count, chmod, is_root, mkdir, run, stop_child,
    write,
};

pub type R<T> = Result<T, String>;

/// First line of a command's output (stdout, else stderr), or "unknown".
pub fn version_of(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Waits until `f` is true, polling every 50 ms; an error after `secs`.
pub fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) -> R<()> {
    testkit::poll_until(
        Duration::from_secs(secs),
        Duration::from_millis(50),
        || format!("timed out after {secs} s waiting for {what}"),
        f,
    )
}

// ---------------------------------------------------------------------------------------
// Apache

/// A private ServerRoot (testkit's template) with `extra` config lines (LoadModule lines,
/// CustomLog, ...), the benchmark's timeouts (valgrind slows Apache down many times) and,
/// under prefork, its smaller pool.
pub fn site(dir: &Path, mpm: Mpm, extra: &[String]) -> R<Site> {
    let mut lines = vec!["KeepAliveTimeout 60".to_string(), "Timeout 60".into()];
    if mpm == Mpm::Prefork {
        lines.push("MaxSpareServers 4\nMaxRequestWorkers 32".into());
    }
    lines.extend(extra.iter().cloned());
    Site::write(
        dir,
        &SiteConf {
            mpm,
            ipv6: false,
            extra: lines,
        },
    )
}

/// Starts a daemonized Apache (`-k start`) on `site`, it and every process and thread it
/// starts confined to the CPUs `cpus` (a `taskset` list such as `0` or `0-2`) when given.
pub fn start(site: &Site, cpus: Option<&str>) -> R<Daemon> {
    match cpus {
        Some(c) => site.start(&["taskset", "-c", c], &[]),
        None => site.start(&[], &[]),
    }
}

/// bpftrace on `script` (its files in `dir`), attached once it printed `ready`, on the CPUs
/// `cpus` when given.
pub fn tracer(script: &str, dir: &Path, ready: &str, cpus: Option<&str>) -> R<Tracer> {
    let how = How {
        marker: ready,
        cpus,
        ..How::default()
    };
    Tracer::launch(script, dir, &how)
}

// ---------------------------------------------------------------------------------------
// CPUs and CPU time

/// Confines the calling thread to the CPUs `cpus` (a `taskset` list).
pub fn pin_this_thread(cpus: &str) -> R<()> {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    let link = fs::read_link("/proc/thread-self").map_err(|e| format!("/proc/thread-self: {e}"))?;
    let tid = link
        .file_name()
        .map(|t| t.to_string_lossy().into_owned())
        .ok_or("no thread id in /proc/thread-self")?;
    run(Command::new("taskset").args(["-p", "-c", cpus, &tid])).map(|_| ())
}

/// CPU time used so far by a set of processes (every thread of each), from /proc.
#[derive(Clone, Copy, Default, Debug)]
pub struct CpuTime {
    /// User + system time in ns, summed over every thread's first `/proc/PID/task/TID/schedstat`
    /// field (the time it spent on a CPU, exact to the ns; `/proc/PID/stat`'s utime and stime
    /// are the same total, split, in clock ticks).
    pub ns: u64,
    /// utime and stime from `/proc/PID/stat`, in clock ticks (10 ms): the split of `ns`.
    pub user_ticks: u64,
    pub system_ticks: u64,
    /// Threads that were read.
    pub threads: usize,
}

impl CpuTime {
    /// What `self` (read later) used beyond `before`.
    pub fn since(&self, before: &CpuTime) -> CpuTime {
        CpuTime {
            ns: self.ns.saturating_sub(before.ns),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
            threads: self.threads,
        }
    }
}

/// The CPU time of processes `pids` (all their threads) so far. A process that has gone is
/// an error: its time would silently be missing.
pub fn cpu_time(pids: &[u32]) -> R<CpuTime> {
    let mut t = CpuTime::default();
    for &pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("process {pid} has gone ({e})"))?;
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        // After the command: state is field 3, utime field 14, stime field 15.
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        t.user_ticks += field(14).ok_or_else(|| format!("bad /proc/{pid}/stat"))?;
        t.system_ticks += field(15).ok_or_else(|| format!("bad /proc/{pid}/stat"))?;
        let tasks = fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|e| format!("/proc/{pid}/task: {e}"))?;
        for task in tasks.flatten() {
            let p = task.path().join("schedstat");
            // A thread can end between the listing and the read; its time is then in the
            // process's (reported when the whole process has gone, above).
            if let Ok(s) = fs::read_to_string(&p) {
                t.ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| format!("bad {}", p.display()))?;
                t.threads += 1;
            }
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// HTTP client for the fixed keep-alive mix

/// One request of the fixed mix: (method, path, response has a body).
pub const MIX: [(&str, &str, bool); 4] = [
    ("GET", "/", true),
    ("GET", "/page.html?q=1&r=2", true),
    ("HEAD", "/page.html", false),
    ("GET", "/missing.html", true),
];

/// Sends `n` requests of the mix, in order, pipelined over one keep-alive connection (the last
/// one with `Connection: close`), reads every response and waits for the server to close.
///
/// Pipelined, so that Apache's reads see the same bytes every time: a writer thread queues
/// all requests at once, and Apache (slowed down many times by valgrind) always finds its
/// next request already waiting. Sent one at a time, whether each read found data or had to
/// wait for it depended on timing, which moved Apache's I/O path (`apr_socket_recv`, the
/// core filters, the bucket brigades) by tens of instructions per request from one Apache
/// instance to the next.
pub fn keepalive_mix(port: u16, n: usize) -> R<()> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let all: String = (0..n).map(|i| mix_request(i, n)).collect();
    let writer = thread::spawn(move || w.write_all(all.as_bytes()).map_err(|e| e.to_string()));
    let mut r = BufReader::new(s);
    let mut result = Ok(());
    for i in 0..n {
        let (method, path, body) = MIX[i % MIX.len()];
        if let Err(e) = testkit::read_response(&mut r, body) {
            result = Err(format!("response {i} ({method} {path}): {e}"));
            break;
        }
    }
    if result.is_ok() {
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
    }
    let _ = r.get_ref().shutdown(std::net::Shutdown::Both);
    let written = writer
        .join()
        .map_err(|_| "the request writer panicked".to_string())?;
    result?;
    written.map_err(|e| format!("writing the requests: {e}"))
}

/// Request `i` of `n` of the mix, as sent (the last one asks the server to close).
fn mix_request(i: usize, n: usize) -> String {
    let (method, path, _) = MIX[i % MIX.len()];
    let close = if i + 1 == n {
        "Connection: close\r\n"
    } else {
        ""
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dtprovider-bench/1.0\r\n\
         Accept: */*\r\n{close}\r\n"
    )
}

/// Sends `n` requests of the mix over one keep-alive connection as a browser or a proxy
/// does: each request written once the previous response has been read (the last one with
/// `Connection: close`); then waits for the server to close.
pub fn keepalive_mix_serial(port: u16, n: usize) -> R<()> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    for i in 0..n {
        let (method, path, body) = MIX[i % MIX.len()];
        w.write_all(mix_request(i, n).as_bytes())
            .map_err(|e| format!("request {i} ({method} {path}): {e}"))?;
        testkit::read_response(&mut r, body)
            .map_err(|e| format!("response {i} ({method} {path}): {e}"))?;
    }
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// statistics

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (0 for fewer than two values).
pub fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

/// The (25 %, 75 %) quantiles, by nearest rank.
pub fn quartiles(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let q = |p: f64| s[((p * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
    (q(0.25), q(0.75))
}
