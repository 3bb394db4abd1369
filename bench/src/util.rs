//! Process, file, Apache and bpftrace helpers of the benchmark. Everything runs on 127.0.0.1
//! with private directories and ports; every process started here is stopped by its pid.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub type R<T> = Result<T, String>;

pub const MODULES: &str = "/usr/lib/apache2/modules";

/// Runs a command to completion; its stdout on success, a readable error otherwise.
pub fn run(cmd: &mut Command) -> R<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

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

pub fn chmod(p: &Path, mode: u32) -> R<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

pub fn write(p: &Path, text: &str) -> R<()> {
    fs::write(p, text).map_err(|e| format!("write {}: {e}", p.display()))
}

pub fn mkdir(p: &Path) -> R<()> {
    fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    chmod(p, 0o755)
}

pub fn free_port() -> R<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Waits until `f` is true, polling; an error after `secs`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> R<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {secs} s waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Stops a child we started: `sig` first, SIGKILL after `secs`.
pub fn stop_child(child: &mut Child, sig: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        signal(child.id(), sig);
        thread::sleep(Duration::from_millis(300));
    }
}

// ---------------------------------------------------------------------------------------
// Apache

/// The static page every benchmark Apache serves (the integration tests' page).
pub const PAGE: &str = "<html><body>dtprovider test page</body></html>\n";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Prefork,
}

/// A private ServerRoot with its own config, pid file, logs and port.
pub struct Site {
    pub dir: PathBuf,
    pub port: u16,
}

impl Site {
    /// Writes the site; `extra` are config lines (LoadModule lines, CustomLog, ...).
    pub fn new(dir: &Path, mpm: Mpm, extra: &[String]) -> R<Site> {
        let _ = fs::remove_dir_all(dir);
        mkdir(&dir.join("htdocs"))?;
        write(&dir.join("htdocs/index.html"), PAGE)?;
        write(&dir.join("htdocs/page.html"), PAGE)?;
        let port = free_port()?;
        let d = dir.display();
        let mut c = vec![
            format!("ServerRoot {d}"),
            "ServerName localhost".into(),
            format!("Listen 127.0.0.1:{port}"),
            format!("PidFile {d}/httpd.pid"),
            format!("DefaultRuntimeDir {d}"),
            format!("Mutex file:{d} default"),
            format!("ErrorLog {d}/error.log"),
            "LogLevel warn".into(),
        ];
        if is_root() {
            c.push("User www-data".into());
            c.push("Group www-data".into());
        }
        match mpm {
            Mpm::Prefork => {
                c.push(format!(
                    "LoadModule mpm_prefork_module {MODULES}/mod_mpm_prefork.so"
                ));
                c.push("StartServers 2\nMinSpareServers 2\nMaxSpareServers 4".into());
                c.push("MaxRequestWorkers 32".into());
            }
            Mpm::Event => {
                c.push(format!(
                    "LoadModule mpm_event_module {MODULES}/mod_mpm_event.so"
                ));
                c.push("StartServers 2\nThreadsPerChild 25\nMaxRequestWorkers 100".into());
            }
        }
        for m in ["authz_core", "dir", "mime"] {
            c.push(format!("LoadModule {m}_module {MODULES}/mod_{m}.so"));
        }
        c.extend(extra.iter().cloned());
        c.push("TypesConfig /etc/mime.types".into());
        c.push(format!("DocumentRoot {d}/htdocs"));
        c.push(format!(
            "<Directory {d}/htdocs>\n  Require all granted\n</Directory>"
        ));
        c.push("DirectoryIndex index.html".into());
        c.push("KeepAlive On\nMaxKeepAliveRequests 0\nKeepAliveTimeout 60\nTimeout 60".into());
        write(&dir.join("httpd.conf"), &(c.join("\n") + "\n"))?;
        Ok(Site {
            dir: dir.to_path_buf(),
            port,
        })
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("httpd.conf")
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    pub fn accepts(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Starts a daemonized Apache (`-k start`); returns the parent's pid.
    pub fn start(&self) -> R<Daemon> {
        self.start_on(None)
    }

    /// [`Site::start`], with Apache and every process and thread it starts confined to the
    /// CPUs `cpus` (a `taskset` list such as `0` or `0-2`) when given.
    pub fn start_on(&self, cpus: Option<&str>) -> R<Daemon> {
        let conf = self.conf().to_string_lossy().into_owned();
        let mut cmd = match cpus {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c, "apache2"]);
                t
            }
            None => Command::new("apache2"),
        };
        run(cmd.args(["-f", &conf, "-k", "start"]))
            .map_err(|e| format!("{e}\nerror.log:\n{}", self.error_log()))?;
        let pidfile = self.dir.join("httpd.pid");
        let mut pid = 0;
        wait_for("Apache to listen", 30, || {
            pid = fs::read_to_string(&pidfile)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            pid != 0 && self.accepts()
        })
        .map_err(|e| format!("{e}\nerror.log:\n{}", self.error_log()))?;
        Ok(Daemon { pid })
    }
}

/// A daemonized Apache parent, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub pid: u32,
}

impl Daemon {
    /// The parent and its children.
    pub fn processes(&self) -> Vec<u32> {
        let mut all = vec![self.pid];
        all.extend(self.children());
        all
    }

    pub fn children(&self) -> Vec<u32> {
        let mut kids = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(self.pid) {
                        kids.push(pid);
                    }
                }
            }
        }
        kids
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(self.pid) {
            if Instant::now() > deadline {
                signal(self.pid, "KILL");
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
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
        if let Err(e) = read_response(&mut r, body) {
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
        read_response(&mut r, body).map_err(|e| format!("response {i} ({method} {path}): {e}"))?;
    }
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok(())
}

fn read_response(r: &mut impl BufRead, has_body: bool) -> R<u16> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Err("connection closed".into());
    }
    let status: u16 = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed in headers".into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| format!("bad length {v:?}"))?;
            }
        }
    }
    if has_body {
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(status)
}

// ---------------------------------------------------------------------------------------
// bpftrace

/// A running bpftrace whose stdout is collected; ready once its BEGIN printed READY.
pub struct Tracer {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    errfile: PathBuf,
}

impl Tracer {
    pub fn start(script: &str, dir: &Path) -> R<Tracer> {
        Self::start_with(script, dir, "READY", None)
    }

    /// [`Tracer::start`] for a script that signals it is attached by printing `ready`
    /// (an example script's own banner), run on the CPUs `cpus` (a `taskset` list) when given.
    pub fn start_with(script: &str, dir: &Path, ready: &str, cpus: Option<&str>) -> R<Tracer> {
        mkdir(dir)?;
        let file = dir.join("script.bt");
        write(&file, script)?;
        let errfile = dir.join("stderr");
        let mut cmd = match cpus {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c, "bpftrace"]);
                t
            }
            None => Command::new("bpftrace"),
        };
        let mut child = cmd
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&errfile).map_err(|e| e.to_string())?)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn bpftrace: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut t = Tracer {
            child: Some(child),
            out,
            reader: Some(reader),
            errfile,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if t.output().contains(ready) {
                return Ok(t);
            }
            let exited = t
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                return Err(format!(
                    "bpftrace did not attach:\n{}\n{}",
                    t.output(),
                    fs::read_to_string(&t.errfile).unwrap_or_default()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// bpftrace's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops bpftrace with repeated SIGINT and returns everything it printed; an error if it
    /// reported lost events.
    pub fn stop(self) -> R<String> {
        let (out, err) = self.finish();
        if out.contains("Lost ") || err.contains("Lost ") {
            return Err(format!("bpftrace lost events:\n{err}"));
        }
        Ok(out)
    }

    /// Stops bpftrace as [`Tracer::stop`] does and returns its stdout and stderr, whatever
    /// they say (lost events included).
    pub fn finish(mut self) -> (String, String) {
        thread::sleep(Duration::from_millis(300));
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, "INT", 30);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let err = fs::read_to_string(&self.errfile).unwrap_or_default();
        (self.output(), err)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of a bpftrace map line `@name: value` (0 when the map was never written).
pub fn bt_count(out: &str, name: &str) -> u64 {
    let key = format!("@{name}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
