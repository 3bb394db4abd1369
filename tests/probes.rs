//! End to end: a real Apache (event, worker, prefork) with the built module, bpftrace attached
//! to it by path, and every probe argument and dthttpd_t field checked for a matrix of
//! requests, against what was sent and what Apache's access log says.
//!
//! Every test runs twice: on the module under test (the `sdt` probe backend, probes
//! `request__start`/`request__done`) and on the same module built with the `usdt` backend
//! (`DTPROVIDER_BACKEND=usdt`, built once into target/usdt-backend; probes `request-start`/
//! `request-done`), which is the hook code illumos, FreeBSD and macOS run.
//!
//! This file holds the request matrix and the helpers shared by the files under tests/probes/:
//! `probes/tls.rs` (the TLS flag), `probes/rejected.rs` (requests Apache rejects while reading
//! them) and `probes/lifecycle.rs` (counts under concurrency, graceful restarts, tracer
//! detach/re-attach, and the module without a tracer).

#[path = "probes/lifecycle.rs"]
mod lifecycle;
#[path = "probes/rejected.rs"]
mod rejected;
#[path = "probes/tls.rs"]
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use testkit::*;

const UA: &str = "dtprovider-test/1.0";

struct Sent {
    page_port: u16,
    pipelined_port: u16,
    noua_port: u16,
    v6_port: u16,
    h2: bool,
}

fn drive_matrix(a: &Apache) -> Sent {
    let addr = a.addr();
    let (page_port, st, body) = request(addr, "GET", "/page.html?x=1&y=2", &[("User-Agent", UA)]);
    assert_eq!((st, body.as_slice()), (200, PAGE.as_bytes()));
    let (_, st, body) = request(addr, "HEAD", "/page.html", &[("User-Agent", UA)]);
    assert_eq!((st, body.len()), (200, 0));
    let post = "POST /echo.cgi HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dtprovider-test/1.0\r\n\
                Content-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello=world";
    let (_, buf) = raw_exchange_keep_open(addr, post.as_bytes());
    assert_eq!(
        statuses(&buf),
        vec![200],
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        buf.windows(11).any(|w| w == b"hello=world"),
        "echo.cgi did not echo the body"
    );
    let (_, st, body) = request(addr, "GET", "/missing.html?q=1", &[("User-Agent", UA)]);
    assert_eq!((st, body.as_slice()), (404, ERROR_PAGE.as_bytes()));
    let (_, st, _) = request(addr, "GET", "/dir/", &[("User-Agent", UA)]);
    assert_eq!(st, 200);
    // The path: of an absolute-form URI, with and without a path; of `OPTIONS *`; of
    // percent-encoded and dot-segment paths, which Apache decodes and normalizes in place.
    for (method, uri) in [
        ("GET", "http://localhost/page.html?abs=1"),
        ("GET", "http://localhost"),
        ("OPTIONS", "*"),
        ("GET", "/pa%67e.html?enc=%41"),
        ("GET", "/dir/../page.html?dots"),
    ] {
        let (_, st, _) = request(addr, method, uri, &[("User-Agent", UA)]);
        assert_eq!(st, 200, "{method} {uri}");
    }
    let pipelined = "GET /page.html?p=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dtprovider-test/1.0\r\n\r\n\
                     GET /page.html?p=2 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dtprovider-test/1.0\r\n\r\n\
                     GET /page.html?p=3 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: dtprovider-test/1.0\r\nConnection: close\r\n\r\n";
    let (pipelined_port, buf) = raw_exchange_keep_open(addr, pipelined.as_bytes());
    assert_eq!(statuses(&buf), vec![200, 200, 200]);
    let (noua_port, st, _) = request(addr, "GET", "/page.html?noua", &[]);
    assert_eq!(st, 200);
    let v6: SocketAddr = format!("[::1]:{}", a.port).parse().unwrap();
    let (v6_port, st, _) = request(v6, "GET", "/page.html?v6", &[("User-Agent", UA)]);
    assert_eq!(st, 200);
    let h2 = a.opts.h2c;
    if h2 {
        let out = h2c_request(&a.url("/page.html?h2"), &["-A", UA]);
        assert_eq!(out, "2 200", "h2c request failed");
    }
    // Rejected while being read: never reach post_read_request.
    let (_, buf) = raw_exchange(addr, b"this is not http\r\n\r\n");
    assert_eq!(statuses(&buf), vec![400]);
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(10_000)
    );
    let (_, buf) = raw_exchange(addr, long.as_bytes());
    assert_eq!(statuses(&buf), vec![414]);
    let (_, buf) = raw_exchange(
        addr,
        b"GET /page.html HTTP/1.1\r\nUser-Agent: nohost\r\n\r\n",
    );
    assert_eq!(statuses(&buf), vec![400]);
    Sent {
        page_port,
        pipelined_port,
        noua_port,
        v6_port,
        h2,
    }
}

fn one<'a>(events: &'a [Event], start: bool, uri: &str) -> &'a Event {
    let m: Vec<&Event> = events
        .iter()
        .filter(|e| e.start == start && e.uri == uri)
        .collect();
    assert_eq!(
        m.len(),
        1,
        "expected one {} for {uri:?}, got {m:#?}",
        if start { "start" } else { "done" }
    );
    m[0]
}

fn check_matrix(mpm: Mpm, backend: Backend) {
    if !need_tracing(&format!(
        "request matrix ({}, {})",
        mpm.name(),
        backend.name()
    )) {
        return;
    }
    let mut opts = ApacheOpts::new(mpm);
    opts.backend = backend;
    opts.h2c = opts.h2c && module_has_http2();
    let mut a = Apache::start(opts);
    let t = Tracer::start(TRACE_ALL, &a.module);
    let sent = drive_matrix(&a);
    let expected_lines = if sent.h2 { 19 } else { 18 };
    let log = a.wait_access_lines(expected_lines);
    let out = t.stop();
    let events = parse_events(&out);
    a.stop();
    assert_eq!(log.len(), expected_lines, "access log: {log:#?}");
    assert!(a.crash_lines().is_empty(), "error log: {}", a.error_log());

    let starts: Vec<&Event> = events.iter().filter(|e| e.start).collect();
    let dones: Vec<&Event> = events.iter().filter(|e| !e.start).collect();

    // Fidelity: one done per access-log line, the same (client port, status, bytes).
    let mut from_log: Vec<(u16, i32, u64)> =
        log.iter().map(|l| (l.rport, l.status, l.bytes)).collect();
    let mut from_probe: Vec<(u16, i32, u64)> =
        dones.iter().map(|e| (e.rport, e.arg4, e.bytes)).collect();
    from_log.sort();
    from_probe.sort();
    assert_eq!(from_probe, from_log, "request-done events vs access log");

    // Every start has exactly one done with its id, in the same process; ids are distinct.
    let mut done_by_id: HashMap<u64, &Event> = HashMap::new();
    for d in &dones {
        assert!(
            done_by_id.insert(d.id, d).is_none(),
            "duplicate done id {}",
            d.id
        );
        assert_eq!(d.id >> 40, u64::from(d.pid), "ids carry the pid");
    }
    for s in &starts {
        let d = done_by_id
            .get(&s.id)
            .unwrap_or_else(|| panic!("start without done: {s:#?}"));
        assert_eq!(d.pid, s.pid);
        assert_eq!(d.start_us, s.start_us);
        assert_eq!(d.connid, s.connid);
        assert_eq!(
            (d.method.as_str(), d.uri.as_str()),
            (s.method.as_str(), s.uri.as_str())
        );
        assert!(
            d.latency >= s.latency,
            "done latency {} < start latency {}",
            d.latency,
            s.latency
        );
        assert_eq!(d.flags & FLAG_NO_START, 0);
    }
    assert_eq!(
        starts.len() + 3,
        dones.len(),
        "three rejected requests have no start"
    );

    // Arguments agree with the struct, for every event.
    for e in &events {
        assert!(
            e.same_ptrs,
            "arg1..arg3 must be the struct's own string pointers: {e:#?}"
        );
        assert_eq!(i32::from(e.status), e.arg4);
        assert_eq!(e.latency, e.arg5);
        if e.start {
            assert_eq!(
                (e.arg4, e.bytes),
                (0, 0),
                "start has no status or bytes: {e:#?}"
            );
        }
        assert_eq!(e.lport, a.port);
        assert_eq!(e.flags & FLAG_TLS, 0);
        assert!(
            e.latency < 30_000_000,
            "latency {} us is not plausible",
            e.latency
        );
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(
            e.start_us > now_us - 600_000_000 && e.start_us <= now_us,
            "start_us {}",
            e.start_us
        );
    }

    // GET with a query string and a User-Agent.
    let s = one(&events, true, "/page.html?x=1&y=2");
    let d = one(&events, false, "/page.html?x=1&y=2");
    for e in [s, d] {
        assert_eq!(e.method, "GET");
        assert_eq!(e.raddr, "127.0.0.1");
        assert_eq!(e.laddr, "127.0.0.1");
        assert_eq!(e.client, "127.0.0.1");
        assert_eq!(e.rport, sent.page_port);
        assert_eq!(e.ipver, 4);
        assert_eq!(e.agent, UA);
        assert_eq!(e.host, "localhost");
        assert_eq!(e.protocol, "HTTP/1.1");
        assert_eq!(e.flags, 0);
    }
    assert_eq!((d.arg4, d.bytes), (200, PAGE.len() as u64));

    // HEAD: 200, no body bytes (as %B).
    let heads: Vec<&Event> = events.iter().filter(|e| e.method == "HEAD").collect();
    assert_eq!(heads.len(), 2);
    let hd = heads.iter().find(|e| !e.start).unwrap();
    assert_eq!((hd.arg4, hd.bytes, hd.uri.as_str()), (200, 0, "/page.html"));

    // POST with a body.
    let pd = one(&events, false, "/echo.cgi");
    assert_eq!((pd.method.as_str(), pd.arg4, pd.bytes), ("POST", 200, 11));
    one(&events, true, "/echo.cgi");

    // 404 through an ErrorDocument internal redirect: one start, one done, final status,
    // the client's URI, the redirect flag.
    let s = one(&events, true, "/missing.html?q=1");
    let d = one(&events, false, "/missing.html?q=1");
    assert_eq!(s.flags, 0);
    assert_eq!(
        (d.arg4, d.bytes, d.flags & FLAG_REDIRECTED),
        (404, ERROR_PAGE.len() as u64, FLAG_REDIRECTED)
    );
    assert!(
        !events.iter().any(|e| e.uri.contains("/errors/")),
        "the redirect must not fire its own events"
    );

    // DirectoryIndex: the URI and path the client sent (mod_dir's redirect to
    // /dir/index.html changes neither).
    let d = one(&events, false, "/dir/");
    let s = one(&events, true, "/dir/");
    assert_eq!((d.arg4, d.bytes), (200, PAGE.len() as u64));
    assert_eq!((s.path.as_str(), d.path.as_str()), ("/dir/", "/dir/"));

    // dt_path: the path without the query string, as Apache parsed it; at request-done as
    // Apache decoded and normalized it (in place).
    for (uri, at_start, at_done) in [
        ("/page.html?x=1&y=2", "/page.html", "/page.html"),
        ("/missing.html?q=1", "/missing.html", "/missing.html"),
        (
            "http://localhost/page.html?abs=1",
            "/page.html",
            "/page.html",
        ),
        ("http://localhost", "/", "/"),
        ("*", "*", "*"),
        ("/pa%67e.html?enc=%41", "/pa%67e.html", "/page.html"),
        ("/dir/../page.html?dots", "/dir/../page.html", "/page.html"),
    ] {
        let s = one(&events, true, uri);
        let d = one(&events, false, uri);
        assert_eq!(
            (s.path.as_str(), d.path.as_str()),
            (at_start, at_done),
            "{uri}: {s:#?} {d:#?}"
        );
    }
    assert_eq!(one(&events, false, "*").method, "OPTIONS");
    // Every other request: the URI up to its query string.
    for e in &events {
        if e.uri.starts_with('/') && !e.uri.contains('%') && !e.uri.contains("/.") {
            let want = e.uri.split('?').next().unwrap();
            assert_eq!(e.path, want, "{e:#?}");
        }
    }
    // dt_reqline: the request line, at start and done alike, for every request Apache
    // parsed (HTTP/2's is the one Apache makes for it).
    for e in events.iter().filter(|e| e.flags & FLAG_NO_START == 0) {
        let want = format!("{} {} {}", e.method, e.uri, e.protocol);
        assert_eq!(e.reqline, want, "{e:#?}");
    }

    // Pipelined keep-alive requests: distinct ids, one connection.
    let p: Vec<&Event> = ["/page.html?p=1", "/page.html?p=2", "/page.html?p=3"]
        .iter()
        .map(|u| one(&events, false, u))
        .collect();
    assert!(
        p.iter()
            .all(|e| e.rport == sent.pipelined_port && e.connid == p[0].connid && e.arg4 == 200)
    );
    let mut ids: Vec<u64> = p.iter().map(|e| e.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "pipelined requests need distinct ids");

    // No User-Agent: an empty string, not NULL.
    let d = one(&events, false, "/page.html?noua");
    assert_eq!((d.agent.as_str(), d.rport), ("", sent.noua_port));
    assert_eq!(one(&events, true, "/page.html?noua").agent, "");

    // IPv6 loopback.
    for e in [
        one(&events, true, "/page.html?v6"),
        one(&events, false, "/page.html?v6"),
    ] {
        assert_eq!(
            (e.ipver, e.raddr.as_str(), e.laddr.as_str(), e.rport),
            (6, "::1", "::1", sent.v6_port)
        );
    }

    // HTTP/2 cleartext.
    if sent.h2 {
        for e in [
            one(&events, true, "/page.html?h2"),
            one(&events, false, "/page.html?h2"),
        ] {
            assert_eq!(e.protocol, "HTTP/2.0");
            assert_eq!(e.agent, UA);
        }
        assert_eq!(one(&events, false, "/page.html?h2").arg4, 200);
    }

    // Rejected requests: done only, no-start flag, and empty or truthful strings.
    let rejected: Vec<&Event> = dones
        .iter()
        .copied()
        .filter(|e| e.flags & FLAG_NO_START != 0)
        .collect();
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    let mut st: Vec<i32> = rejected.iter().map(|e| e.arg4).collect();
    st.sort();
    assert_eq!(st, vec![400, 400, 414]);
    let too_long = rejected.iter().find(|e| e.arg4 == 414).unwrap();
    assert_eq!(
        (
            too_long.method.as_str(),
            too_long.uri.as_str(),
            too_long.path.as_str()
        ),
        ("", "", ""),
        "rejected before Apache parsed the URI"
    );
    // Rejected after the request line was parsed: what Apache parsed ("this is not http" is
    // method "this", URI "is"; the request without Host is GET /page.html).
    let mut parsed: Vec<(&str, &str)> = rejected
        .iter()
        .filter(|e| e.arg4 == 400)
        .map(|e| (e.uri.as_str(), e.path.as_str()))
        .collect();
    parsed.sort();
    assert_eq!(parsed, [("/page.html", "/page.html"), ("is", "is")]);
    for e in &rejected {
        assert!(
            e.uri.is_empty() || e.uri == "/page.html" || "this is not http".contains(&e.uri),
            "rejected request URI is garbage: {e:#?}"
        );
        assert!(
            e.method.is_empty() || e.method == "GET" || e.method == "this",
            "{e:#?}"
        );
        assert_eq!(e.raddr, "127.0.0.1");
    }
    eprintln!(
        "{} ({}): {} starts, {} dones, {} access-log lines: all fields checked",
        mpm.name(),
        backend.name(),
        starts.len(),
        dones.len(),
        log.len()
    );
}

#[test]
fn request_matrix_event() {
    check_matrix(Mpm::Event, Backend::Sdt);
}

#[test]
fn request_matrix_worker() {
    check_matrix(Mpm::Worker, Backend::Sdt);
}

#[test]
fn request_matrix_prefork() {
    check_matrix(Mpm::Prefork, Backend::Sdt);
}

#[test]
fn request_matrix_event_usdt_backend() {
    check_matrix(Mpm::Event, Backend::Usdt);
}

#[test]
fn request_matrix_worker_usdt_backend() {
    check_matrix(Mpm::Worker, Backend::Usdt);
}

#[test]
fn request_matrix_prefork_usdt_backend() {
    check_matrix(Mpm::Prefork, Backend::Usdt);
}
