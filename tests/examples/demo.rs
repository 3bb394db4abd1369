//! The demo (demo/run.sh) run for real: it traces live requests, prints a histogram, cleans up
//! after itself (also on Ctrl-C) and refuses clearly without root.

use super::*;

struct DemoRun {
    status: Option<i32>,
    out: String,
    secs: f64,
}

/// Runs the demo non-interactively with the module this test run built, killing it after
/// `limit`; with `interrupt_on`, sends it SIGINT once its output contains that text.
fn run_demo(limit: Duration, interrupt_on: Option<&str>, as_user: Option<&str>) -> DemoRun {
    let dir = scratch_dir("demo");
    let outfile = dir.join("out");
    let script = repo_file("demo/run.sh");
    let mut cmd = match as_user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", u, "--regid", u, "--clear-groups", "bash"])
                .arg(&script);
            c
        }
        None => {
            let mut c = Command::new("bash");
            c.arg(&script);
            c
        }
    };
    let start = Instant::now();
    let mut child = cmd
        .arg("--ci")
        .env("DTPROVIDER_MODULE", built_module())
        .stdout(std::fs::File::create(&outfile).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&outfile)
                .unwrap(),
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("run demo/run.sh");
    let mut interrupted = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if let Some(marker) = interrupt_on {
            if !interrupted
                && std::fs::read_to_string(&outfile)
                    .unwrap_or_default()
                    .contains(marker)
            {
                signal(child.id(), "INT");
                interrupted = true;
            }
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "demo/run.sh ran longer than {limit:?}:\n{}",
                std::fs::read_to_string(&outfile).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&outfile).unwrap();
    // The output lives on in the result (and in any failure message); the file need not.
    let _ = std::fs::remove_dir_all(&dir);
    DemoRun {
        status,
        out,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// What the demo started, from its own output: (Apache's pid, its work directory).
fn demo_leftovers(out: &str) -> (u32, String) {
    let pid = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("pid ")
                .and_then(|r| r.split(',').next()?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no Apache pid in the demo output:\n{out}"));
    let conf = out
        .split("(config ")
        .nth(1)
        .and_then(|r| r.split("/httpd.conf").next())
        .unwrap_or_else(|| panic!("no work directory in the demo output:\n{out}"));
    (pid, conf.to_string())
}

fn assert_nothing_left(out: &str) {
    let (pid, work) = demo_leftovers(out);
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || format!("the demo left Apache {pid} running:\n{out}"),
        || !Path::new(&format!("/proc/{pid}")).exists(),
    );
    assert!(!Path::new(&work).exists(), "the demo left {work}");
    // No process still runs from the demo's directory (Apache children, bpftrace, tail).
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(!cmd.contains(&work), "left running: {cmd}");
        }
    }
}

#[test]
fn demo_traces_live_requests_then_a_histogram_and_cleans_up() {
    if !need_tracing("demo/run.sh") {
        return;
    }
    let r = run_demo(Duration::from_secs(120), None, None);
    assert_eq!(r.status, Some(0), "{}", r.out);
    assert!(r.secs < 120.0);
    let out = &r.out;
    // Part 1: live lines of http-requests.bt for the burst.
    let part1 = out
        .split("examples/http-requests-bylatency.bt")
        .next()
        .unwrap();
    let lines = parse_requests(part1);
    let find = |uri: &str| lines.iter().filter(|l| l.uri == uri).collect::<Vec<_>>();
    assert_eq!(find("/missing.html?from=demo")[0].status, 404, "{out}");
    assert_eq!(find("/old-page")[0].status, 301, "{out}");
    assert_eq!(find("/slow.cgi?50")[0].method, "POST", "{out}");
    let slow = find("/slow.cgi?400")[0];
    assert!(
        slow.latency_us >= 400_000 && slow.latency_us < 5_000_000,
        "{slow:?}"
    );
    assert_eq!(
        find("/about.html?h2=1")[0].status,
        200,
        "the HTTP/2 request: {out}"
    );
    // keep-alive: several requests share one client port.
    let mut per_port: BTreeMap<u16, usize> = BTreeMap::new();
    for l in &lines {
        *per_port.entry(l.remote.1).or_default() += 1;
        assert_eq!(l.local.0, "127.0.0.1");
    }
    assert!(
        per_port.values().any(|&n| n >= 3),
        "no keep-alive connection: {per_port:?}"
    );
    // Part 2: the histogram counts the same burst plus 30 more requests.
    let part2 = out
        .split("examples/http-requests-bylatency.bt")
        .nth(1)
        .unwrap();
    assert!(part2.contains("@latency_us:"), "{out}");
    let total: u64 = hist_rows(part2).iter().map(|r| r.2).sum();
    assert_eq!(total, lines.len() as u64 + 30, "{out}");
    assert!(out.contains("stopped the demo's Apache"), "{out}");
    assert_nothing_left(out);
}

#[test]
fn demo_cleans_up_on_ctrl_c() {
    if !need_tracing("demo/run.sh (Ctrl-C)") {
        return;
    }
    let r = run_demo(
        Duration::from_secs(60),
        Some("Tracing Apache requests"),
        None,
    );
    assert_eq!(r.status, Some(130), "{}", r.out);
    assert!(r.out.contains("interrupted"), "{}", r.out);
    assert!(!r.out.contains("@latency_us:"), "{}", r.out);
    assert_nothing_left(&r.out);
}

#[test]
fn demo_refuses_clearly_without_root() {
    if !is_root() || which("setpriv").is_none() {
        eprintln!("SKIPPED: needs root (to drop it) and setpriv");
        return;
    }
    let r = run_demo(Duration::from_secs(30), None, Some("65534"));
    assert_eq!(r.status, Some(1), "{}", r.out);
    assert!(r.out.contains("tracing needs root"), "{}", r.out);
    assert!(!r.out.contains("Starting a private Apache"), "{}", r.out);
}
