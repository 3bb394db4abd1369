//! Requests Apache rejects while reading them: request-done alone, with the request line
//! Apache read, also when request-start is not traced.

use super::*;

/// Requests Apache rejects while reading them fire request-done only, with the fields Apache
/// had parsed when it gave up, and in dt_reqline the request line Apache read: exactly what the
/// access log's `%r` shows, also where the method and URI are empty. (docs/probes.md ("Rejected
/// requests") is this table.)
#[test]
fn rejected_requests_carry_the_request_line_apache_read() {
    if !need_tracing("rejected requests") {
        return;
    }
    let mut opts = ApacheOpts::new(Mpm::Event);
    opts.h2c = opts.h2c && module_has_http2();
    // 408s within 2 s; a request line over 100 bytes is a 414.
    opts.extra = "Timeout 2\nLimitRequestLine 100".into();
    let mut a = Apache::start(opts);
    let t = Tracer::start(TRACE_ALL, &a.module);
    let addr = a.addr();
    // Each waits out the Timeout: a partial request line, a request line and part of the
    // headers, and a connection that sends nothing (not a request: no event, no log line).
    let idle: Vec<_> = [
        &b"GET /page.html?partial-line HT"[..],
        &b"GET /page.html?partial-headers HTTP/1.1\r\nHost: localhost\r\n"[..],
        &b""[..],
    ]
    .into_iter()
    .map(|bytes| std::thread::spawn(move || raw_exchange_keep_open(addr, bytes)))
    .collect();
    let (_, st, _) = request(addr, "GET", "/page.html?ok", &[]);
    assert_eq!(st, 200);
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(300)
    );
    let big = format!(
        "GET /page.html?big HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(10_000)
    );
    for (bytes, status) in [
        (&b"this is not http\r\n\r\n"[..], 400),
        (&b"GET /bare-lf HTTP/1.0\n\n"[..], 400),
        (&b"GET  /two-spaces HTTP/1.0\r\n\r\n"[..], 400),
        (
            &b"GET /page.html?nohost HTTP/1.1\r\nUser-Agent: x\r\n\r\n"[..],
            400,
        ),
        (big.as_bytes(), 400),
        (long.as_bytes(), 414),
    ] {
        let (_, buf) = raw_exchange(addr, bytes);
        assert_eq!(
            statuses(&buf),
            vec![status],
            "{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
        );
    }
    if a.opts.h2c {
        let header = format!("X-Big: {}", "b".repeat(10_000));
        let out = h2c_request(&a.url("/page.html?h2big"), &["-H", &header]);
        assert_eq!(out, "2 431", "HTTP/2 with an oversized header field");
    }
    for h in idle {
        let (_, buf) = h.join().unwrap();
        assert!(statuses(&buf).iter().all(|&s| s == 408), "{buf:?}");
    }
    let n = if a.opts.h2c { 10 } else { 9 };
    let log = a.wait_access_lines(n);
    let out = t.stop();
    let events = parse_events(&out);
    a.stop();
    assert_eq!(log.len(), n, "access log: {log:#?}");
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
    let dones: Vec<&Event> = events.iter().filter(|e| !e.start).collect();
    assert_eq!(
        dones.len(),
        n,
        "one request-done per access-log line: {dones:#?}"
    );
    let starts: Vec<&Event> = events.iter().filter(|e| e.start).collect();
    assert_eq!(starts.len(), 1, "only the good request starts: {starts:#?}");
    assert_eq!(starts[0].reqline, "GET /page.html?ok HTTP/1.1");

    // dt_reqline is what %r logs (Apache escapes the LF; "-" when there is no line).
    for d in &dones {
        let line = log
            .iter()
            .find(|l| l.rport == d.rport)
            .unwrap_or_else(|| panic!("no access-log line for {d:#?}"));
        let logged = if d.reqline.is_empty() {
            "-".to_string()
        } else {
            d.reqline.replace('\n', "\\n")
        };
        assert_eq!(logged, line.request, "{d:#?}");
        assert_eq!(d.arg4, line.status, "{d:#?}");
    }

    // (status, method, URI, path, request line, protocol) of each rejected request.
    let mut got: Vec<(i32, &str, &str, &str, &str, &str)> = dones
        .iter()
        .filter(|d| d.flags & FLAG_NO_START != 0)
        .map(|d| {
            assert_eq!(d.host, "", "{d:#?}");
            (
                d.arg4,
                d.method.as_str(),
                d.uri.as_str(),
                d.path.as_str(),
                d.reqline.as_str(),
                d.protocol.as_str(),
            )
        })
        .collect();
    got.sort();
    let too_long = format!("GET /{}", "a".repeat(96));
    let mut want = vec![
        (400, "", "", "", "GET /bare-lf HTTP/1.0\n", "HTTP/1.0"),
        (
            400,
            "GET",
            "/page.html?big",
            "/page.html",
            "GET /page.html?big HTTP/1.1",
            "HTTP/1.1",
        ),
        (
            400,
            "GET",
            "/page.html?nohost",
            "/page.html",
            "GET /page.html?nohost HTTP/1.1",
            "HTTP/1.1",
        ),
        (
            400,
            "GET",
            "/two-spaces",
            "/two-spaces",
            "GET /two-spaces HTTP/1.0",
            "HTTP/1.0",
        ),
        (400, "this", "is", "is", "this is not", "HTTP/1.0"),
        (408, "", "", "", "", "HTTP/1.0"),
        (
            408,
            "GET",
            "/page.html?partial-headers",
            "/page.html",
            "GET /page.html?partial-headers HTTP/1.1",
            "HTTP/1.1",
        ),
        (414, "", "", "", too_long.as_str(), "HTTP/1.0"),
    ];
    if a.opts.h2c {
        want.push((
            431,
            "GET",
            "/page.html?h2big",
            "/page.html",
            "GET /page.html?h2big HTTP/2.0",
            "HTTP/2.0",
        ));
    }
    want.sort();
    assert_eq!(got, want);
}

/// Only request-done traced: request-start's probe is off, yet its hook must still mark the
/// requests that reached it (its check covers request-done's semaphore too), so that
/// request-done flags exactly the requests Apache rejected while reading them.
#[test]
fn request_done_alone_still_tells_rejected_requests_apart() {
    request_done_alone(Backend::Sdt);
}

#[test]
fn request_done_alone_still_tells_rejected_requests_apart_usdt_backend() {
    request_done_alone(Backend::Usdt);
}

fn request_done_alone(backend: Backend) {
    if !need_tracing(&format!("request-done traced alone ({})", backend.name())) {
        return;
    }
    let mut opts = ApacheOpts::new(Mpm::Event);
    opts.backend = backend;
    opts.h2c = false;
    let mut a = Apache::start(opts);
    let t = Tracer::start(
        "BEGIN { printf(\"READY\\n\"); }\n\
         usdt:@MODULE@:httpd:request__done {\n\
         \tprintf(\"D %d %d %s\\n\", arg4, *(uint8 *)(arg0 + 15), str(arg2));\n}\n",
        &a.module,
    );
    for q in ["a", "b", "c"] {
        let (_, st, _) = request(a.addr(), "GET", &format!("/page.html?{q}"), &[]);
        assert_eq!(st, 200);
    }
    let (_, buf) = raw_exchange(a.addr(), b"this is not http\r\n\r\n");
    assert_eq!(statuses(&buf), vec![400]);
    a.wait_access_lines(4);
    let out = t.stop();
    a.stop();
    let mut seen: Vec<(i32, u8, String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("D "))
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            )
        })
        .collect();
    seen.sort();
    let flags: Vec<(i32, u8)> = seen.iter().map(|(st, fl, _)| (*st, *fl)).collect();
    assert_eq!(
        flags,
        vec![(200, 0), (200, 0), (200, 0), (400, FLAG_NO_START)],
        "{out}"
    );
}
