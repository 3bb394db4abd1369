//! Hostile traffic, tracer churn, restarts, memory, panics and idle silence: Apache never falls
//! over, and no event is lost or invented.
//!
//! The memory check (over 500,000 traced requests each Apache child's RSS grows by less
//! than 1 %) runs in the default run under the event MPM, together with its proof that
//! it can fail: the same measurement over a test-only build that leaks 32 bytes every 128th
//! traced request must report growth above the bound. How it measures, and why, is described
//! at the "memory" section below.
//!
//! The default run is bounded: about 5 minutes on a 2-core machine, 2.5 of them for the two
//! memory tests, plus about a minute each the first time the `panic-test` and `leak-test`
//! modules are built; `DTPROVIDER_SOAK=1` runs the churn and memory checks longer and under
//! every MPM. Each test prints its figures; `DTPROVIDER_REPORT=1` also writes them into
//! RELIABILITY.md ("The reliability suite"), between its `reliability` markers. Tests that
//! need root, tracefs, bpftrace, wrk or strace skip loudly without them, and fail when `CI`
//! is set.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::*;

/// The reliability tests measure (RSS, windows, system calls) and load the machine; they run
/// one at a time so that one's load is not another's noise.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn soak() -> bool {
    std::env::var("DTPROVIDER_SOAK").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------------------------------
// report

static REPORT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn report(key: &str, line: String) {
    eprintln!("[reliability] {key}: {line}");
    let mut r = REPORT.lock().unwrap();
    r.push((key.to_string(), line));
    if std::env::var("DTPROVIDER_REPORT").is_ok_and(|v| v == "1") {
        write_report(&r);
    }
}

/// Replaces the table between RELIABILITY.md's `reliability` markers with the figures gathered
/// so far (sorted); the rest of the file, the Apache-suite section included, stays as it is.
fn write_report(rows: &[(String, String)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("RELIABILITY.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- reliability:begin -->", "<!-- reliability:end -->");
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        panic!("{} has no {begin} ... {end} section", path.display());
    };
    let mut rows = rows.to_vec();
    rows.sort();
    let mut body = format!(
        "\n_Produced by `DTPROVIDER_REPORT=1 cargo test --release --test reliability` on {} \
         (kernel {}, {})._\n\n| check | figures |\n| --- | --- |\n",
        today(),
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        String::from_utf8_lossy(&Command::new("apache2").arg("-v").output().unwrap().stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("Server version: ")
    );
    for (k, v) in rows {
        body.push_str(&format!("| {k} | {v} |\n"));
    }
    let new = format!("{}{begin}{body}{}", &text[..b], &text[e..]);
    fs::write(&path, new).unwrap();
}

fn today() -> String {
    let out = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------
// hostile requests

/// A request as raw bytes, what it is, and the request-target it carries (to check that the
/// URI the probe reports is what the client sent, not garbage).
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    target: Vec<u8>,
    /// Whether the client half-closes after sending (else it waits for the server to close).
    half_close: bool,
}

fn case(name: &'static str, bytes: &[u8], target: &[u8]) -> Case {
    Case {
        name,
        bytes: bytes.to_vec(),
        target: target.to_vec(),
        half_close: true,
    }
}

fn hostile_cases() -> Vec<Case> {
    let mut v = vec![
        case("malformed request line", b"GARBAGE\r\n\r\n", b""),
        case("request line of spaces", b"   \r\n\r\n", b""),
        case("NUL in the URI", b"GET /page\0.html HTTP/1.1\r\nHost: localhost\r\n\r\n", b"/page"),
        case("control bytes in the URI", b"GET /\x01\x02\x7f HTTP/1.1\r\nHost: localhost\r\n\r\n", b"/\x01\x02\x7f"),
        case(
            "control bytes in a header",
            b"GET /page.html?ctl HTTP/1.1\r\nHost: localhost\r\nX-A: \x07\x08\x1b[2J\r\n\r\n",
            b"/page.html?ctl",
        ),
        case(
            "non-UTF-8 URI",
            b"GET /%ff%fe/\xff\xfe?q=\xc3\x28 HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"/%ff%fe/\xff\xfe?q=\xc3\x28",
        ),
        case(
            "non-UTF-8 User-Agent",
            b"GET /page.html?ua HTTP/1.1\r\nHost: localhost\r\nUser-Agent: \xff\xfe\xfd\xc0\x80\r\n\r\n",
            b"/page.html?ua",
        ),
        case("absolute-form URI", b"GET http://localhost/page.html?abs HTTP/1.1\r\nHost: localhost\r\n\r\n", b"http://localhost/page.html?abs"),
        case("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n", b"*"),
        case("CONNECT", b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", b"localhost:443"),
        case("HTTP/0.9", b"GET /page.html?09\r\n", b"/page.html?09"),
        case("HTTP/1.0 without Host", b"GET /page.html?10 HTTP/1.0\r\n\r\n", b"/page.html?10"),
        case("HTTP/1.1 without Host", b"GET /page.html?11 HTTP/1.1\r\n\r\n", b"/page.html?11"),
        case("unknown protocol version", b"GET /page.html?99 HTTP/9.9\r\nHost: localhost\r\n\r\n", b"/page.html?99"),
        case("unknown method", b"BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n", b"/pot"),
    ];
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(10_000)
    );
    v.push(case(
        "URI longer than LimitRequestLine",
        long.as_bytes(),
        b"",
    ));
    let mut many = b"GET /page.html?many HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    v.push(case(
        "more headers than LimitRequestFields",
        &many,
        b"/page.html?many",
    ));
    let big = format!(
        "GET /page.html?big HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(10_000)
    );
    v.push(case(
        "header larger than LimitRequestFieldSize",
        big.as_bytes(),
        b"/page.html?big",
    ));
    let mut pipelined = Vec::new();
    for i in 0..100 {
        let close = if i == 99 { "Connection: close\r\n" } else { "" };
        pipelined.extend_from_slice(
            format!("GET /page.html?pipe={i} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n")
                .as_bytes(),
        );
    }
    v.push(Case {
        name: "100 pipelined requests",
        bytes: pipelined,
        target: b"/page.html?pipe=".to_vec(),
        half_close: false,
    });
    v
}

/// Sends `n` bytes of a large POST body, then closes.
fn aborted_post(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head =
        "POST /echo.cgi?aborted HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n";
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&vec![b'x'; 100_000]);
    thread::sleep(Duration::from_millis(200));
    drop(s);
}

/// Requests a large file, reads a little, then resets the connection (SO_LINGER 0).
fn reset_mid_response(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(b"GET /big.bin?reset HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(s); // RST
}

/// Opens a connection and sends half a request, then waits past the server's Timeout (408).
fn slowloris(addr: SocketAddr, wait: Duration) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(wait + Duration::from_secs(10)))
            .unwrap();
        let _ = s.write_all(b"GET /page.html?slowloris HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
}

/// An HTTP/2 cleartext client (prior knowledge) written frame by frame: opens `streams`
/// concurrent streams and cancels every other one with RST_STREAM right away.
fn h2_streams_and_resets(addr: SocketAddr, streams: u32) -> Vec<u8> {
    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    for i in 0..streams {
        let id = 2 * i + 1;
        let path = format!("/page.html?h2={i}");
        // HPACK: :method GET (idx 2), :scheme http (idx 6), :path literal (name idx 4),
        // :authority literal (name idx 1), all without indexing.
        let mut hb = vec![0x82, 0x86, 0x04, path.len() as u8];
        hb.extend_from_slice(path.as_bytes());
        hb.extend_from_slice(&[0x01, 9]);
        hb.extend_from_slice(b"localhost");
        out.extend(frame(0x1, 0x5, id, &hb)); // HEADERS, END_STREAM | END_HEADERS
        if i % 2 == 1 {
            out.extend(frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
        }
    }
    let _ = s.write_all(&out);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = s.write_all(&frame(0x7, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0])); // GOAWAY
    buf
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hostile(mpm: Mpm, traced: bool) {
    let _serial = serial();
    let what = format!(
        "hostile requests ({}, {})",
        mpm.name(),
        if traced { "traced" } else { "untraced" }
    );
    if traced && !need_tracing(&what) || !traced && !need_apache(&what) {
        return;
    }
    let mut opts = ApacheOpts::new(mpm);
    opts.h2c = opts.h2c && module_has_http2();
    // Short timeouts so that the slowloris case ends in a 408 quickly.
    opts.extra =
        "Timeout 3\nKeepAliveTimeout 2\nLimitRequestFields 100\nH2MaxSessionStreams 200".into();
    if !opts.h2c {
        opts.extra = "Timeout 3\nKeepAliveTimeout 2\nLimitRequestFields 100".into();
    }
    let a = Apache::prepare(opts);
    fs::write(a.dir.join("htdocs/big.bin"), vec![b'z'; 8 << 20]).unwrap();
    chmod(&a.dir.join("htdocs/big.bin"), 0o644).unwrap();
    let mut a = a.launch();
    let tracer = traced.then(|| Tracer::start(TRACE_ALL, &a.module));
    let addr = a.addr();
    let slow = slowloris(addr, Duration::from_secs(3));
    let cases = hostile_cases();
    let mut sent_requests = 0usize;
    for c in &cases {
        let (_, reply) = if c.half_close {
            raw_exchange(addr, &c.bytes)
        } else {
            raw_exchange_keep_open(addr, &c.bytes)
        };
        assert!(
            !reply.is_empty() || c.name.contains("spaces") || c.name.contains("NUL"),
            "{}: no reply at all",
            c.name
        );
        sent_requests += if c.name.starts_with("100 ") { 100 } else { 1 };
    }
    aborted_post(addr);
    reset_mid_response(addr);
    sent_requests += 2;
    let mut h2_streams = 0;
    if a.opts.h2c {
        let reply = h2_streams_and_resets(addr, 100);
        assert!(!reply.is_empty(), "no HTTP/2 reply");
        h2_streams = 100;
    }
    let slow_reply = slow.join().unwrap();
    assert!(
        slow_reply.is_empty() || statuses(&slow_reply) == vec![408],
        "slowloris got {:?}",
        lossy(&slow_reply)
    );
    // Apache must still serve normally.
    let (_, st, _) = request(addr, "GET", "/page.html?after", &[]);
    assert_eq!(st, 200, "Apache stopped serving after the hostile requests");
    thread::sleep(Duration::from_millis(1500));
    let log = a.access_log();
    let out = tracer.map(Tracer::stop);
    a.stop();
    let crashes = a.crash_lines();
    assert!(crashes.is_empty(), "{what}: {crashes:#?}");

    let mut compared = 0;
    if let Some(out) = out {
        let events = parse_events(&out);
        let dones: Vec<&Event> = events.iter().filter(|e| !e.start).collect();
        let starts: Vec<&Event> = events.iter().filter(|e| e.start).collect();
        // Every access-log line has exactly one request-done with the same status (and
        // client port), and nothing is invented.
        let mut from_log: Vec<(u16, i32)> = log.iter().map(|l| (l.rport, l.status)).collect();
        let mut from_probe: Vec<(u16, i32)> = dones.iter().map(|e| (e.rport, e.arg4)).collect();
        from_log.sort();
        from_probe.sort();
        assert_eq!(from_probe, from_log, "{what}: request-done vs access log");
        let done_ids: HashMap<u64, &Event> = dones.iter().map(|e| (e.id, *e)).collect();
        assert_eq!(done_ids.len(), dones.len(), "{what}: duplicate ids");
        for s in &starts {
            let d = done_ids
                .get(&s.id)
                .unwrap_or_else(|| panic!("{what}: start without done {s:#?}"));
            assert_eq!(d.uri, s.uri);
        }
        // Strings are what the client sent (a prefix of a request-target, as far as the
        // tracer reads), Apache's own reconstruction, or empty: never garbage.
        let targets: Vec<String> = cases.iter().map(|c| lossy(&c.target)).collect();
        for e in &events {
            let ok = e.uri.is_empty()
                || targets.iter().any(|t| {
                    !t.is_empty() && (t.starts_with(&e.uri) || e.uri.starts_with(t.as_str()))
                })
                || e.uri.starts_with("/page.html")
                || e.uri.starts_with("/echo.cgi?aborted")
                || e.uri.starts_with("/big.bin?reset")
                || e.uri.starts_with("/errors/");
            assert!(ok, "{what}: unexpected URI {:?} in {e:#?}", e.uri);
            assert!(e.uri.len() <= 128 && e.method.len() <= 128 && e.agent.len() <= 128);
            assert!(
                [
                    "", "GET", "POST", "OPTIONS", "CONNECT", "BREW", "HEAD", "GARBAGE"
                ]
                .contains(&e.method.as_str()),
                "{what}: method {:?}",
                e.method
            );
            assert!(e.raddr == "127.0.0.1", "{what}: raddr {:?}", e.raddr);
        }
        compared = dones.len();
    }
    report(
        &format!(
            "hostile requests, {}, {}",
            mpm.name(),
            if traced { "traced" } else { "untraced" }
        ),
        format!(
            "{} cases (+aborted POST, reset mid-response, slowloris 408{}), {} requests sent, {} logged, {} request-done events compared, 0 crashes",
            cases.len(),
            if h2_streams > 0 {
                format!(", h2c {h2_streams} streams with 50 resets")
            } else {
                String::new()
            },
            sent_requests + h2_streams + 1,
            log.len(),
            compared
        ),
    );
}

#[test]
fn hostile_event_traced() {
    hostile(Mpm::Event, true);
}
#[test]
fn hostile_event_untraced() {
    hostile(Mpm::Event, false);
}
#[test]
fn hostile_worker_traced() {
    hostile(Mpm::Worker, true);
}
#[test]
fn hostile_worker_untraced() {
    hostile(Mpm::Worker, false);
}
#[test]
fn hostile_prefork_traced() {
    hostile(Mpm::Prefork, true);
}
#[test]
fn hostile_prefork_untraced() {
    hostile(Mpm::Prefork, false);
}

// ---------------------------------------------------------------------------------------
// tracer churn

/// bpftrace script for churn windows: every request-done's key fields.
const CHURN_BT: &str = r#"
BEGIN { printf("READY\n"); }
usdt:@MODULE@:httpd:request__done {
	printf("D %d %llu %d %d\n", pid, *(uint64 *)(arg0 + 32), *(uint16 *)(arg0 + 12), arg4);
}
"#;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn dmesg_uprobe_errors() -> Vec<String> {
    let out = Command::new("dmesg").output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("uprobe") || l.contains("ref_ctr"))
        .map(str::to_string)
        .collect()
}

fn churn(mpm: Mpm, seconds: u64, cycles: usize, restarts: usize) {
    let _serial = serial();
    let what = format!("tracer churn ({})", mpm.name());
    if !need_tracing(&what) || !need_wrk(&what) {
        return;
    }
    let mut opts = ApacheOpts::new(mpm);
    opts.h2c = false;
    opts.ipv6 = false;
    // begin time, pid, client port, status: the key a request-done event is matched by.
    opts.extra =
        "LogFormat \"%P\\t%>s\\t%B\\t%{remote}p\\t%a\\t%{begin:usec}t %{end:usec}t\" dt".into();
    let mut a = Apache::start(opts);
    let dmesg_before = dmesg_uprobe_errors();
    let mut wrk = Command::new("wrk")
        .args([
            "-t2",
            "-c16",
            &format!("-d{}s", seconds + 30),
            &a.url("/page.html"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut windows: Vec<(u64, u64, String)> = Vec::new();
    let restart_every = cycles.checked_div(restarts).unwrap_or(usize::MAX);
    let mut restarts_done = 0;
    for i in 0..cycles {
        let t = Tracer::start(CHURN_BT, &a.module);
        let begin = now_us();
        let hold = Duration::from_millis(
            (seconds * 1000 / cycles as u64)
                .saturating_sub(1500)
                .max(300),
        );
        thread::sleep(hold);
        let end = now_us();
        let out = t.stop();
        windows.push((begin, end, out));
        if (i + 1) % restart_every == 0 && restarts_done < restarts {
            a.graceful();
            restarts_done += 1;
        }
    }
    while started.elapsed() < Duration::from_secs(seconds) {
        thread::sleep(Duration::from_millis(200));
    }
    let _ = wrk.kill();
    let _ = wrk.wait();
    thread::sleep(Duration::from_millis(500));
    a.stop();
    assert!(a.crash_lines().is_empty(), "{what}: {:#?}", a.crash_lines());
    let after = dmesg_uprobe_errors();
    let new_errors: Vec<&String> = after.iter().filter(|l| !dmesg_before.contains(l)).collect();
    assert!(new_errors.is_empty(), "{what}: kernel log: {new_errors:#?}");

    // Access log: key (pid, begin_us, client port) -> (status, end_us).
    let text = fs::read_to_string(a.dir.join("access.log")).unwrap();
    let mut logged: HashMap<(u32, u64, u16), (i32, u64)> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let times: Vec<u64> = f[5].split(' ').map(|x| x.parse().unwrap()).collect();
        logged.insert(
            (f[0].parse().unwrap(), times[0], f[3].parse().unwrap()),
            (f[1].parse().unwrap(), times[1]),
        );
    }
    let total_logged = logged.len();
    let (mut compared, mut in_windows) = (0usize, 0usize);
    // 150 ms at each edge of a window: a request that completes while bpftrace attaches or
    // detaches may or may not be seen; everything strictly inside must be.
    let margin = 150_000;
    for (begin, end, out) in &windows {
        let mut seen: BTreeMap<(u32, u64, u16), i32> = BTreeMap::new();
        for l in out.lines().filter(|l| l.starts_with("D ")) {
            let f: Vec<&str> = l.split(' ').collect();
            let key = (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            );
            assert!(
                seen.insert(key, f[4].parse().unwrap()).is_none(),
                "{what}: duplicate event {l}"
            );
        }
        // Nothing invented: every event is a logged request with the same status.
        for (k, st) in &seen {
            let (lst, _) = logged
                .get(k)
                .unwrap_or_else(|| panic!("{what}: event {k:?} is not in the access log"));
            assert_eq!(st, lst, "{what}: status of {k:?}");
        }
        // Nothing lost: every request logged well inside the window has its event.
        let inside: Vec<_> = logged
            .iter()
            .filter(|(_, (_, e))| *e > begin + margin && *e + margin < *end)
            .map(|(k, _)| *k)
            .collect();
        for k in &inside {
            assert!(
                seen.contains_key(k),
                "{what}: request {k:?} logged inside a traced window has no event"
            );
        }
        compared += seen.len();
        in_windows += inside.len();
    }
    assert!(
        in_windows > 0,
        "{what}: no traffic inside the traced windows"
    );
    report(
        &format!("tracer churn, {}", mpm.name()),
        format!(
            "{seconds} s of wrk, {cycles} attach/detach cycles, {restarts_done} graceful restarts, {total_logged} requests logged, \
             {compared} request-done events matched to the log, {in_windows} requests inside traced windows all seen, 0 crashes, 0 uprobe kernel errors"
        ),
    );
}

#[test]
fn churn_event() {
    churn(Mpm::Event, if soak() { 180 } else { 60 }, 20, 5);
}

#[test]
fn churn_prefork_and_worker_in_soak() {
    if !soak() {
        eprintln!("churn under prefork and worker runs with DTPROVIDER_SOAK=1");
        return;
    }
    churn(Mpm::Prefork, 120, 20, 5);
    churn(Mpm::Worker, 120, 20, 5);
}

// ---------------------------------------------------------------------------------------
// memory
//
// The issue's bound: over 500,000 traced requests, the resident size (VmRSS) of each Apache
// child grows by less than 1 %.
//
// Where the noise came from (measured by sampling /proc/PID/smaps every 100 ms): Debian's APR
// allocator takes its pool memory straight from mmap, 8 kB at a time (strace; adjacent blocks
// merge into 8-88 kB mappings), and glibc's heap stays at 72 kB. While wrk runs, the in-flight connections' and requests' pools hold 300-600 kB more
// than when the child is idle, so a reading taken during or right after a burst lands anywhere
// in that range (the CI failure: 5292..5760 kB, +1.35 % with no trend). Once the child is
// idle, that transient memory is gone, but with `MaxMemFree 64` every allocator (one per
// worker thread and per recycled connection pool) still keeps up to 64 kB of freed blocks,
// and how much each kept depends on what it served last: idle readings still wandered over
// 44 kB (0.85 %), again with no trend.
//
// So the check (1) samples only when the child has gone idle after each load burst (no CPU
// time used and RSS unchanged for a second), (2) runs Apache with `MaxMemFree 1`, so that an
// allocator returns freed blocks to the kernel instead of caching them (a leak still shows:
// leaked memory is never freed, whether it came from malloc or from a pool), and keeps one
// malloc arena (`MALLOC_ARENA_MAX=1`: a lazily created arena would appear or not by timing),
// and (3) uses two estimators that must both stay under the bound: the floor (minimum) of the
// first samples against the floor of the last ones, at least 500,000 requests apart (noise
// only ever adds memory, so the floor is its robust level), and the least-squares slope over
// all samples, extrapolated to 500,000 requests. Idle readings then repeat exactly, except
// for one step of 4-8 kB (0.16 %) within the first samples after the warm-up. glibc's dynamic
// mmap and trim thresholds are left alone: malloc's heap does not move, and APR maps its
// blocks itself. The `leak-test` build (32 bytes every 128th request-done, about 3.6 % of the child
// over 500,000 requests) proves the same measurement flags a leak a few times the bound.

/// The issue's figures: requests traced, and the bound on each child's RSS growth (%).
const MEMORY_REQUESTS: u64 = 500_000;
const MEMORY_BOUND_PCT: f64 = 1.0;
/// Samples in each of the first and last windows whose floors are compared.
const FLOOR_WINDOW: usize = 3;
/// Length of one wrk burst; a sample is taken after each, once the children are idle.
const BURST_SECS: u64 = 2;
/// The whole measurement must end within this (it fails rather than run on forever).
const MEMORY_DEADLINE: Duration = Duration::from_secs(600);

fn need_wrk(what: &str) -> bool {
    need_tool(what, "wrk", "wrk")
}

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

// ---------------------------------------------------------------------------------------
// panics

/// The module built with a test-only feature (`panic-test`, `leak-test`), in its own target
/// directory (target/<feature>).
fn feature_module(feature: &str) -> PathBuf {
    variant_module(feature, &[feature], &[])
}

#[test]
fn a_panicking_hook_never_reaches_apache() {
    let _serial = serial();
    if !need_tracing("panic containment") {
        return;
    }
    let module = feature_module("panic-test");
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let mut opts = ApacheOpts::new(mpm);
        opts.h2c = false;
        let a = Apache::prepare(opts);
        fs::copy(&module, &a.module).unwrap();
        let mut a = a.launch();
        let kids = a.children();
        let t = Tracer::start(COUNT_IDS, &a.module);
        for _ in 0..5 {
            let (_, st, body) = request(a.addr(), "GET", "/__dtprovider_panic__/x", &[]);
            assert_eq!(
                (st, body.as_slice()),
                (404, ERROR_PAGE.as_bytes()),
                "the request is still served"
            );
            let (_, st, _) = request(a.addr(), "GET", "/page.html", &[]);
            assert_eq!(st, 200);
        }
        a.wait_access_lines(10);
        let out = t.stop();
        a.stop();
        let log = a.error_log();
        assert!(!log.contains("exit signal"), "{log}");
        let ours: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("internal error caught"))
            .collect();
        // One line per child process that hit the panic, never more.
        assert!(!ours.is_empty(), "the panic was not logged: {log}");
        assert!(
            ours.len() <= kids.len().max(2),
            "logged more than once per process: {ours:#?}"
        );
        let mut pids: Vec<&str> = ours
            .iter()
            .filter_map(|l| l.split("[pid ").nth(1)?.split([':', ']']).next())
            .collect();
        let n = pids.len();
        pids.dedup();
        assert_eq!(pids.len(), n, "a process logged twice: {ours:#?}");
        assert!(
            ours[0].contains("deliberate panic") && ours[0].contains("request-start"),
            "{}",
            ours[0]
        );
        // Requests that did not panic were traced normally.
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("D ") && l.ends_with(" 200"))
                .count(),
            5
        );
        report(
            &format!("panic containment, {}", mpm.name()),
            format!(
                "5 panicking requests served (404 page), 5 normal ones traced, {} error-log line(s), no child died",
                ours.len()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------
// idle silence

/// System calls (name -> count) an `apache2 -X` makes while serving `n` requests on one
/// keep-alive connection, traced by strace after start-up.
fn syscalls_per_request(with_module: bool, n: usize) -> BTreeMap<String, usize> {
    let mut opts = ApacheOpts::new(Mpm::Prefork);
    opts.with_module = with_module;
    opts.h2c = false;
    opts.ipv6 = false;
    opts.extra = "CustomLog /dev/null dt".into();
    let a = Apache::prepare(opts);
    let mut child = Command::new("apache2")
        .args(["-X", "-f", a.conf_path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || format!("apache2 -X did not start:\n{}", a.error_log()),
        || TcpStream::connect(a.addr()).is_ok(),
    );
    // One warm-up connection, then strace attaches for the measured one.
    let _ = request(a.addr(), "GET", "/page.html", &[]);
    let trace = a.dir.join("strace.out");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(["-p", &child.id().to_string()])
        .spawn()
        .expect("strace");
    thread::sleep(Duration::from_millis(800));
    let mut reqs = String::new();
    for i in 0..n {
        let close = if i + 1 == n {
            "Connection: close\r\n"
        } else {
            ""
        };
        reqs.push_str(&format!(
            "GET /page.html HTTP/1.1\r\nHost: localhost\r\n{close}\r\n"
        ));
    }
    // All requests in one write: the server's reads do not depend on the client's timing.
    let (_, replies) = raw_exchange_keep_open(a.addr(), reqs.as_bytes());
    assert_eq!(statuses(&replies), vec![200; n]);
    thread::sleep(Duration::from_millis(800));
    signal(strace.id(), "INT");
    let _ = strace.wait();
    signal(child.id(), "TERM");
    let _ = child.wait();
    let text = fs::read_to_string(&trace).unwrap();
    let mut counts = BTreeMap::new();
    for l in text.lines() {
        let l = l.split_once(' ').map_or(l, |x| x.1).trim_start();
        if let Some(name) = l
            .split('(')
            .next()
            .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            if !name.is_empty() {
                *counts.entry(name.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

#[test]
fn idle_module_makes_no_system_calls() {
    let _serial = serial();
    if !need_apache("idle silence") {
        return;
    }
    if which("strace").is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| !v.is_empty()),
            "strace is needed"
        );
        eprintln!(
            "\n**************** SKIPPED: idle silence needs strace (CI is unset) ****************\n"
        );
        return;
    }
    let n = 50;
    let without = syscalls_per_request(false, n);
    let again = syscalls_per_request(false, n);
    assert_eq!(without, again, "the measurement itself is not repeatable");
    let with = syscalls_per_request(true, n);
    assert!(
        without.values().sum::<usize>() >= n,
        "strace saw nothing: {without:?}"
    );
    assert_eq!(
        with, without,
        "system calls serving {n} requests, with the idle module vs without it"
    );
    report(
        "idle silence, prefork -X",
        format!(
            "{n} keep-alive requests: {} system calls with the module, {} without, identical by name and count",
            with.values().sum::<usize>(),
            without.values().sum::<usize>()
        ),
    );
}
