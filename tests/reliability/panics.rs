//! Panics: a hook that panics (the `panic-test` build) never reaches Apache.

use super::*;

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
