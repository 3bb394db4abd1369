//! Idle silence: the module adds no system call to an untraced Apache's requests.

use super::*;

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
