//! Tracer churn: bpftrace attached and detached over and over while requests run and Apache
//! restarts; no event lost or invented inside a window, no uprobe error.

use super::*;

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
