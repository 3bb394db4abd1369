//! Hostile requests: malformed, oversized, aborted, reset, slow and HTTP/2 abuse, under every
//! MPM, traced and untraced; Apache answers what it should and the probes report what was sent.

use super::*;

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
