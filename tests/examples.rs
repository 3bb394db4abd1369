//! The bpftrace examples (examples/*.bt) and the demo (demo/run.sh), run for real: a private
//! Apache with the built module, each example pointed at it the way its header tells users
//! to, known requests sent, and the example's output parsed and compared with what was sent
//! (and with Apache's access log).
//!
//! This file holds the examples' tests; the demo's are in tests/examples/demo.rs.

#[path = "examples/demo.rs"]
mod demo;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use testkit::*;

const TRACING: &str = "Tracing Apache";

fn start_example(a: &Apache, name: &str, args: &[&str]) -> Tracer {
    Tracer::start_until(&example_for(name, &a.module), args, TRACING)
}

fn v6(a: &Apache) -> SocketAddr {
    format!("[::1]:{}", a.port).parse().unwrap()
}

fn get(a: &Apache, path: &str) -> (u16, i32) {
    let (port, st, _) = request(a.addr(), "GET", path, &[]);
    (port, st)
}

/// "127.0.0.1:8080" or "::1:8080" -> ("::1", 8080)
fn addr_port(s: &str) -> (String, u16) {
    let (a, p) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {s:?}"));
    (
        a.to_string(),
        p.parse().unwrap_or_else(|_| panic!("bad port in {s:?}")),
    )
}

/// `@name[k1, k2]: v` lines of a printed bpftrace map (and of the D twins' printa()).
fn map_lines(out: &str, name: &str) -> Vec<(Vec<String>, u64)> {
    let prefix = format!("@{name}[");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (keys, val) = rest
                .rsplit_once("]: ")
                .unwrap_or_else(|| panic!("bad map line {rest:?}"));
            (
                keys.split(", ").map(str::to_string).collect(),
                val.trim().parse().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct RequestLine {
    secs: f64,
    latency_us: u64,
    status: i32,
    local: (String, u16),
    remote: (String, u16),
    method: String,
    uri: String,
}

fn parse_requests(out: &str) -> Vec<RequestLine> {
    let mut v = Vec::new();
    let mut header = false;
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() == Some(&"time") {
            assert_eq!(
                f,
                ["time", "latency", "sta", "local", "remote", "method", "uri"]
            );
            header = true;
            continue;
        }
        if f.len() < 6 || !f[1].ends_with("us") {
            continue;
        }
        v.push(RequestLine {
            secs: f[0].parse().unwrap(),
            latency_us: f[1].trim_end_matches("us").parse().unwrap(),
            status: f[2].parse().unwrap(),
            local: addr_port(f[3]),
            remote: addr_port(f[4]),
            method: f[5].to_string(),
            uri: f.get(6).unwrap_or(&"").to_string(),
        });
    }
    assert!(header, "no header line in:\n{out}");
    v
}

#[test]
fn http_requests_bt_prints_one_line_per_request() {
    if !need_tracing("http-requests.bt") {
        return;
    }
    let a = Apache::start(ApacheOpts::new(Mpm::Event));
    let t = start_example(&a, "http-requests.bt", &[]);
    let (p_page, st) = get(&a, "/page.html?x=1&y=2");
    assert_eq!(st, 200);
    let (p_missing, st) = get(&a, "/missing?q=1");
    assert_eq!(st, 404);
    let (p_slow, st) = get(&a, "/slow.cgi?300");
    assert_eq!(st, 200);
    let (p_head, st, _) = request(a.addr(), "HEAD", "/dir/", &[]);
    assert_eq!(st, 200);
    let (p_v6, st, _) = request(v6(&a), "GET", "/page.html?v6", &[]);
    assert_eq!(st, 200);
    let h2 = a.opts.h2c && h2c_request(&a.url("/page.html?h2"), &[]).starts_with("2 ");
    let n = 5 + usize::from(h2);
    assert_eq!(a.wait_access_lines(n).len(), n);
    let out = t.stop();
    let lines = parse_requests(&out);
    assert_eq!(lines.len(), n, "one line per request:\n{out}");
    let one = |uri: &str| -> &RequestLine {
        let m: Vec<_> = lines.iter().filter(|l| l.uri == uri).collect();
        assert_eq!(m.len(), 1, "{uri}:\n{out}");
        m[0]
    };
    for (uri, method, status, port, v6) in [
        ("/page.html?x=1&y=2", "GET", 200, p_page, false),
        ("/missing?q=1", "GET", 404, p_missing, false),
        ("/slow.cgi?300", "GET", 200, p_slow, false),
        ("/dir/", "HEAD", 200, p_head, false),
        ("/page.html?v6", "GET", 200, p_v6, true),
    ] {
        let l = one(uri);
        assert_eq!((l.method.as_str(), l.status), (method, status), "{l:?}");
        let lo = if v6 { "::1" } else { "127.0.0.1" };
        assert_eq!(l.local, (lo.to_string(), a.port), "{l:?}");
        assert_eq!(l.remote, (lo.to_string(), port), "{l:?}");
    }
    if h2 {
        let l = one("/page.html?h2");
        assert_eq!(
            (l.method.as_str(), l.status, l.local.1),
            ("GET", 200, a.port)
        );
    }
    // Latency from arg5: the CGI slept 300 ms, the static pages took far less.
    let slow = one("/slow.cgi?300").latency_us;
    assert!(
        (300_000..3_000_000).contains(&slow),
        "slow.cgi latency {slow} us"
    );
    for l in lines.iter().filter(|l| l.uri != "/slow.cgi?300") {
        assert!(l.latency_us < 250_000, "{l:?}");
    }
    // Time column: seconds since tracing began, in completion order.
    for w in lines.windows(2) {
        assert!(w[0].secs <= w[1].secs && w[1].secs < 60.0, "{:?}", w);
    }
}

/// `[lo, hi) count |...|` rows of a bpftrace hist(), as (lo, hi, count).
fn hist_rows(out: &str) -> Vec<(u64, u64, u64)> {
    fn num(s: &str) -> u64 {
        let s = s.trim();
        let (n, mul) = match s.chars().last() {
            Some('K') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M') => (&s[..s.len() - 1], 1 << 20),
            Some('G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        n.parse::<u64>().unwrap() * mul
    }
    out.lines()
        .filter_map(|l| {
            let l = l.strip_prefix('[')?;
            let (range, rest) = l.split_once(')')?;
            let (lo, hi) = range.split_once(',')?;
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((num(lo), num(hi), count))
        })
        .collect()
}

#[test]
fn http_requests_bylatency_bt_histogram_counts_every_request_in_its_bucket() {
    if !need_tracing("http-requests-bylatency.bt") {
        return;
    }
    let a = Apache::start(ApacheOpts::new(Mpm::Event));
    let t = start_example(&a, "http-requests-bylatency.bt", &[]);
    assert_eq!(load(a.addr(), "/page.html", 2, 10), 20);
    for ms in ["300", "350", "600"] {
        assert_eq!(get(&a, &format!("/slow.cgi?{ms}")).1, 200);
    }
    assert_eq!(a.wait_access_lines(23).len(), 23);
    let out = t.stop();
    assert!(out.contains("@latency_us:"), "{out}");
    let rows = hist_rows(&out);
    assert!(!rows.is_empty(), "no histogram:\n{out}");
    for r in &rows {
        assert_eq!(r.1, r.0.max(1) * 2, "power-of-two buckets: {r:?}");
    }
    let total: u64 = rows.iter().map(|r| r.2).sum();
    assert_eq!(total, 23, "{out}");
    let in_range = |lo: u64, hi: u64| -> u64 {
        rows.iter()
            .filter(|r| r.0 >= lo && r.1 <= hi)
            .map(|r| r.2)
            .sum()
    };
    // 300 and 350 ms are in [256K, 512K) us, 600 ms in [512K, 1M); the static pages well below.
    assert_eq!(in_range(256 << 10, 512 << 10), 2, "{out}");
    assert_eq!(in_range(512 << 10, 1 << 20), 1, "{out}");
    assert_eq!(in_range(0, 128 << 10), 20, "{out}");
}

#[test]
fn http_urls_bt_counts_by_path_and_status_every_interval() {
    if !need_tracing("http-urls.bt") {
        return;
    }
    let a = Apache::start(ApacheOpts::new(Mpm::Event));
    let t = start_example(&a, "http-urls.bt", &[]);
    for p in ["/page.html?a=1", "/page.html?b=2", "/missing?q=x", "/dir/"] {
        get(&a, p);
    }
    // The first batch is printed by the 5-second interval, not only at the end.
    wait_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || format!("no interval output:\n{}", t.output()),
        || t.output().contains("@urls[/page.html, 200]: 2"),
    );
    // The path at request-done is Apache's decoded and normalized one: every spelling of
    // /page.html counts as /page.html.
    for p in [
        "/page.html",
        "/missing",
        "/missing?z",
        "/pa%67e.html?enc",
        "/dir/../page.html",
    ] {
        get(&a, p);
    }
    assert_eq!(a.wait_access_lines(9).len(), 9);
    let out = t.stop();
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (k, v) in map_lines(&out, "urls") {
        assert_eq!(k.len(), 2, "{k:?}");
        *counts.entry((k[0].clone(), k[1].clone())).or_default() += v;
    }
    let want: BTreeMap<(String, String), u64> = [
        (("/page.html", "200"), 5),
        (("/missing", "404"), 3),
        (("/dir/", "200"), 1),
    ]
    .into_iter()
    .map(|((p, s), n)| ((p.to_string(), s.to_string()), n))
    .collect();
    assert_eq!(counts, want, "{out}");
    // Every dump is headed by the time as DTrace's `%Y` prints it, the day padded with a
    // space: "2026 Nov 26 12:57:30", "2026 Dec  2 09:05:01".
    let is_stamp = |l: &str| {
        let b = l.as_bytes();
        l.len() == 20
            && l[..4].parse::<u32>().is_ok()
            && b[4] == b' '
            && b[5].is_ascii_uppercase()
            && l[6..8].bytes().all(|c| c.is_ascii_lowercase())
            && b[8] == b' '
            && (b[9] == b' ' || (b'1'..=b'3').contains(&b[9]))
            && b[10].is_ascii_digit()
            && b[11] == b' '
            && l[12..].len() == 8
            && l[12..]
                .split(':')
                .all(|n| n.len() == 2 && n.parse::<u8>().is_ok())
    };
    let stamps: Vec<&str> = out.lines().filter(|l| l.starts_with("20")).collect();
    assert!(stamps.len() >= 2, "{out}");
    for l in stamps {
        assert!(is_stamp(l), "{l:?} is not spelt as DTrace's %Y:\n{out}");
    }
}

#[test]
fn http_slow_bt_lists_only_requests_over_the_threshold_with_client_and_log_id() {
    if !need_tracing("http-slow.bt") {
        return;
    }
    let mut o = ApacheOpts::new(Mpm::Event);
    o.extra = format!(
        "LoadModule unique_id_module {MODULES}/mod_unique_id.so\nCustomLog ids.log \"%{{UNIQUE_ID}}e %r\""
    );
    let a = Apache::start(o);
    // Without the threshold it says how to use it and exits.
    let usage = Tracer::start_until(&example_for("http-slow.bt", &a.module), &[], "USAGE");
    assert!(usage.stop().contains("USAGE: http-slow.bt MS"));

    let t = start_example(&a, "http-slow.bt", &["200"]);
    assert!(t.output().contains("slower than 200 ms"), "{}", t.output());
    for p in [
        "/page.html",
        "/slow.cgi?300",
        "/slow.cgi?50",
        "/missing",
        "/slow.cgi?450",
        "/dir/",
    ] {
        assert_ne!(get(&a, p).1, 0);
    }
    assert_eq!(a.wait_access_lines(6).len(), 6);
    let out = t.stop();
    let ids: BTreeMap<String, String> = std::fs::read_to_string(a.dir.join("ids.log"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(2)?.to_string(), f.first()?.to_string()))
        })
        .collect();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 7 && f[0].contains('.') && f[1].contains('.'))
        .collect();
    let uris: Vec<&str> = rows.iter().map(|f| f[6]).collect();
    assert_eq!(uris, ["/slow.cgi?300", "/slow.cgi?450"], "{out}");
    for (f, ms) in rows.iter().zip([300.0, 450.0]) {
        let lat: f64 = f[1].parse().unwrap();
        assert!(lat >= ms && lat < ms + 2000.0, "{f:?}");
        assert_eq!((f[2], f[3], f[5]), ("200", "127.0.0.1", "GET"), "{f:?}");
        let id = &ids[f[6]];
        assert!(id.len() > 10, "UNIQUE_ID {id:?}");
        assert_eq!(f[4], id, "log id of {}", f[6]);
    }
}

#[test]
fn http_errors_bt_counts_4xx_and_5xx_by_status_and_url() {
    if !need_tracing("http-errors.bt") {
        return;
    }
    let mut o = ApacheOpts::new(Mpm::Event);
    o.extra = "Redirect 503 /down\nRedirect gone /gone".to_string();
    let a = Apache::start(o);
    let t = start_example(&a, "http-errors.bt", &[]);
    for (p, want) in [
        ("/missing?x=1", 404),
        ("/page.html", 200),
        ("/missing?x=1", 404),
        ("/gone", 410),
        ("/down?now", 503),
        ("/dir/", 200),
    ] {
        assert_eq!(get(&a, p).1, want, "{p}");
    }
    let (_, buf) = raw_exchange(a.addr(), b"this is not http\r\n\r\n");
    assert_eq!(statuses(&buf), vec![400]);
    assert_eq!(a.wait_access_lines(7).len(), 7);
    let out = t.stop();
    let mut got: Vec<(String, String, u64)> = map_lines(&out, "errors")
        .into_iter()
        .map(|(k, v)| (k[0].clone(), k[1..].join(", "), v))
        .collect();
    got.sort();
    let statuses_seen: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(statuses_seen, ["400", "404", "410", "503"], "{out}");
    assert_eq!(got[1], ("404".into(), "/missing?x=1".into(), 2));
    assert_eq!(got[2], ("410".into(), "/gone".into(), 1));
    assert_eq!(got[3], ("503".into(), "/down?now".into(), 1));
    assert_eq!(got[0].2, 1, "the rejected request: {out}");
}

#[test]
fn http_clients_bt_sums_requests_and_bytes_per_client() {
    if !need_tracing("http-clients.bt") {
        return;
    }
    let a = Apache::start(ApacheOpts::new(Mpm::Event));
    let t = start_example(&a, "http-clients.bt", &[]);
    for _ in 0..3 {
        assert_eq!(get(&a, "/page.html").1, 200);
    }
    assert_eq!(request(a.addr(), "HEAD", "/page.html", &[]).1, 200);
    assert_eq!(get(&a, "/missing").1, 404);
    for _ in 0..2 {
        assert_eq!(request(v6(&a), "GET", "/page.html", &[]).1, 200);
    }
    let log = a.wait_access_lines(7);
    assert_eq!(log.len(), 7);
    let out = t.stop();
    let req: BTreeMap<String, u64> = map_lines(&out, "requests")
        .into_iter()
        .map(|(k, v)| (k.join(","), v))
        .collect();
    let bytes: BTreeMap<String, u64> = map_lines(&out, "bytes")
        .into_iter()
        .map(|(k, v)| (k.join(","), v))
        .collect();
    let mut want_req: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_bytes: BTreeMap<String, u64> = BTreeMap::new();
    for l in &log {
        *want_req.entry(l.client.clone()).or_default() += 1;
        *want_bytes.entry(l.client.clone()).or_default() += l.bytes;
    }
    assert_eq!(req, want_req, "{out}");
    assert_eq!(bytes, want_bytes, "{out}");
    // And independently of the log: 3 pages + HEAD (no body) + the 404 page from 127.0.0.1.
    let page = PAGE.len() as u64;
    assert_eq!(req["127.0.0.1"], 5);
    assert_eq!(bytes["127.0.0.1"], 3 * page + ERROR_PAGE.len() as u64);
    assert_eq!((req["::1"], bytes["::1"]), (2, 2 * page));
}
