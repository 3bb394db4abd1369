//! Counts that must match exactly: requests under concurrency, across graceful restarts and
//! tracer detach/re-attach; and the module without a tracer changes nothing.

use super::*;

/// Fidelity under concurrency: 1,200 requests from 60 clients at once give exactly as many
/// request-done events as access-log lines, and every start's id has its done.
#[test]
fn thousand_concurrent_requests_lose_nothing() {
    concurrent_requests(Backend::Sdt);
}

#[test]
fn thousand_concurrent_requests_lose_nothing_usdt_backend() {
    concurrent_requests(Backend::Usdt);
}

fn concurrent_requests(backend: Backend) {
    if !need_tracing(&format!("fidelity under concurrency ({})", backend.name())) {
        return;
    }
    let mut opts = ApacheOpts::new(Mpm::Event);
    opts.backend = backend;
    let a = Apache::start(opts);
    let t = Tracer::start(COUNT_IDS, &a.module);
    let ok = load(a.addr(), "/page.html", 60, 20);
    assert_eq!(ok, 1200, "every request must eventually be answered");
    let log = a.wait_access_lines(1200);
    let out = t.stop();
    // A request the server answered but whose connection broke before the client read the
    // response is logged (and traced) and then retried: the log may hold a few more lines.
    assert!(log.len() >= 1200);
    check_ids(&out, log.len(), log.len());
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
}

/// Parses count-ids.bt output ("S <id>" / "D <id> <status>") and checks pairing and counts.
fn check_ids(out: &str, log_lines: usize, expected: usize) {
    let mut starts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut dones: BTreeMap<u64, usize> = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.first() {
            Some(&"S") => *starts.entry(f[1].parse().unwrap()).or_default() += 1,
            Some(&"D") => *dones.entry(f[1].parse().unwrap()).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(log_lines, expected, "access log lines");
    assert_eq!(
        dones.values().sum::<usize>(),
        log_lines,
        "request-done events vs access log"
    );
    assert_eq!(
        starts.values().sum::<usize>(),
        expected,
        "request-start events"
    );
    assert!(
        starts.values().all(|&n| n == 1) && dones.values().all(|&n| n == 1),
        "ids are unique"
    );
    for id in starts.keys() {
        assert!(dones.contains_key(id), "start {id} has no done");
    }
}

/// Tracing survives graceful restarts (the module is unloaded and reloaded), a tracer attached
/// before Apache started, and detach/re-attach, under every MPM.
fn tracer_lifecycle(mpm: Mpm, backend: Backend) {
    if !need_tracing(&format!(
        "tracer lifecycle ({}, {})",
        mpm.name(),
        backend.name()
    )) {
        return;
    }
    let mut opts = ApacheOpts::new(mpm);
    opts.backend = backend;
    opts.h2c = false;
    opts.ipv6 = false;
    // Attach first, then start Apache.
    let a = Apache::prepare(opts);
    let t = Tracer::start(COUNT_IDS, &a.module);
    let a = a.launch();
    let mut logged = 0;
    let round = |a: &Apache, n: usize, logged: &mut usize| {
        assert_eq!(load(a.addr(), "/page.html", 4, n / 4), n);
        *logged += n;
        a.wait_access_lines(*logged);
    };
    round(&a, 20, &mut logged);
    a.graceful();
    round(&a, 20, &mut logged);
    a.graceful();
    round(&a, 20, &mut logged);
    let out = t.stop();
    check_ids(&out, a.access_log().len(), 60);
    // Detached: nothing fires; then re-attach.
    round(&a, 8, &mut logged);
    let t = Tracer::start(COUNT_IDS, &a.module);
    let before = a.access_log().len();
    round(&a, 20, &mut logged);
    let out = t.stop();
    check_ids(&out, a.access_log().len() - before, 20);
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
}

#[test]
fn tracer_lifecycle_event() {
    tracer_lifecycle(Mpm::Event, Backend::Sdt);
}

#[test]
fn tracer_lifecycle_worker() {
    tracer_lifecycle(Mpm::Worker, Backend::Sdt);
}

#[test]
fn tracer_lifecycle_prefork() {
    tracer_lifecycle(Mpm::Prefork, Backend::Sdt);
}

#[test]
fn tracer_lifecycle_event_usdt_backend() {
    tracer_lifecycle(Mpm::Event, Backend::Usdt);
}

#[test]
fn tracer_lifecycle_worker_usdt_backend() {
    tracer_lifecycle(Mpm::Worker, Backend::Usdt);
}

#[test]
fn tracer_lifecycle_prefork_usdt_backend() {
    tracer_lifecycle(Mpm::Prefork, Backend::Usdt);
}

/// Without a tracer, the module changes nothing Apache does: same responses, same log.
#[test]
fn untraced_module_is_invisible() {
    if !need_apache("untraced module") {
        return;
    }
    let a = Apache::start(ApacheOpts::new(Mpm::Event));
    let (_, st, body) = request(a.addr(), "GET", "/page.html", &[]);
    assert_eq!((st, body.as_slice()), (200, PAGE.as_bytes()));
    let (_, st, _) = request(a.addr(), "GET", "/missing", &[]);
    assert_eq!(st, 404);
    assert_eq!(a.wait_access_lines(2).len(), 2);
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
}
