//! Reading what a pass did: TAP results per test file (parsed by tap.rs), the access logs by
//! status, the error logs, and the tracer's events.

use super::*;

/// Every test file's result, from the TAP the harness kept (`PERL_TEST_HARNESS_DUMP_TAP`).
pub(crate) fn read_tap(tap: &Path) -> BTreeMap<String, FileResult> {
    files_under(tap)
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(tap).unwrap().display().to_string();
            let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
            (name, parse_tap(&text))
        })
        .collect()
}

/// Access-log lines by status. Every log the configuration writes outside a `<VirtualHost>`
/// is read and all must agree (two witnesses of the same requests: the main access log and
/// mod_ssl's request log). No vhost may log on its own or conditionally: such a request
/// would be in neither, and the test would need to count it there.
pub(crate) fn access_log_by_status(pf: &Path) -> BTreeMap<i32, u64> {
    let mut logs = Vec::new();
    for p in conf_files(pf) {
        let mut vhost = 0;
        for l in fs::read_to_string(&p).unwrap().lines() {
            let l = l.trim();
            let low = l.to_ascii_lowercase();
            if low.starts_with("<virtualhost") {
                vhost += 1;
            } else if low.starts_with("</virtualhost") {
                vhost -= 1;
            } else if low.starts_with("customlog ") || low.starts_with("transferlog ") {
                assert!(
                    vhost == 0 && !low.contains("env=") && !low.contains("expr="),
                    "{}: {l:?}: a vhost's own or conditional log, which this test does not count",
                    p.display()
                );
                let target = l.split_whitespace().nth(1).unwrap().trim_matches('"');
                assert!(!target.starts_with('|'), "a piped log: {l:?}");
                logs.push(pf.join("t").join(target));
            }
        }
    }
    assert!(
        !logs.is_empty(),
        "the generated configuration writes no access log"
    );
    let counts: Vec<(PathBuf, BTreeMap<i32, u64>)> = logs
        .into_iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
            let mut by = BTreeMap::new();
            for l in text.lines().filter(|l| !l.is_empty()) {
                // Both formats end with `%>s %b`.
                let st: i32 = l
                    .split_whitespace()
                    .rev()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{}: no status in {l:?}", p.display()));
                *by.entry(st).or_insert(0) += 1;
            }
            (p, by)
        })
        .collect();
    for (p, by) in &counts[1..] {
        assert_eq!(
            by,
            &counts[0].1,
            "{} and {} disagree (by status)",
            p.display(),
            counts[0].0.display()
        );
    }
    counts.into_iter().next().unwrap().1
}

/// Scans every error log (hundreds of MB at the suite's trace log level) for a process that
/// died by a signal or anything the module logged, then deletes it. Returns the bytes
/// scanned and the offending lines.
pub(crate) fn scan_error_logs(pf: &Path) -> (u64, Vec<String>) {
    let mut logs = BTreeSet::new();
    for p in conf_files(pf) {
        for l in fs::read_to_string(&p).unwrap().lines() {
            let mut w = l.split_whitespace();
            if w.next().is_some_and(|d| d.eq_ignore_ascii_case("ErrorLog")) {
                logs.insert(pf.join("t").join(w.next().unwrap().trim_matches('"')));
            }
        }
    }
    assert!(
        !logs.is_empty(),
        "no ErrorLog in the generated configuration"
    );
    let (mut bytes, mut bad) = (0, Vec::new());
    for p in logs {
        let mut r = BufReader::new(fs::File::open(&p).unwrap());
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap() > 0 {
            bytes += line.len() as u64;
            let l = String::from_utf8_lossy(&line);
            if l.contains("exit signal")
                || l.contains("[dtprovider:")
                || l.contains("mod_dtprovider: ")
                || l.contains("panicked at")
            {
                bad.push(l.trim_end().to_string());
            }
            line.clear();
        }
        fs::remove_file(&p).unwrap();
    }
    (bytes, bad)
}

/// What the tracer saw in pass 3.
pub(crate) struct Trace {
    pub(crate) starts: usize,
    pub(crate) dones: BTreeMap<i32, u64>,
    /// request-done events without a request-start (all flagged), by status: how many, and
    /// the distinct method-and-URI pairs they carried.
    pub(crate) no_start: BTreeMap<i32, (u64, BTreeSet<String>)>,
}

pub(crate) fn check_trace(what: &str, out: &str, logged: &BTreeMap<i32, u64>) -> Trace {
    let mut starts = HashSet::new();
    let mut dones = HashMap::new();
    let mut counted = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.splitn(6, '\t').collect();
        match (f[0], f.len()) {
            ("S", 2) => {
                let id: u64 = f[1].parse().unwrap();
                assert!(starts.insert(id), "{what}: start id {id} twice");
            }
            ("D", 6) => {
                let id: u64 = f[1].parse().unwrap();
                let flags: u8 = f[2].parse().unwrap();
                let status: i32 = f[3].parse().unwrap();
                let e = (flags, status, f[4].to_string(), f[5].to_string());
                assert!(dones.insert(id, e).is_none(), "{what}: done id {id} twice");
            }
            _ => {
                if let Some(rest) = l.strip_prefix("@status[") {
                    let (st, n) = rest.split_once("]: ").unwrap();
                    counted.insert(st.parse::<i32>().unwrap(), n.parse::<u64>().unwrap());
                }
            }
        }
    }
    let mut by_status = BTreeMap::new();
    let mut no_start: BTreeMap<i32, (u64, BTreeSet<String>)> = BTreeMap::new();
    for (id, (flags, status, method, uri)) in &dones {
        *by_status.entry(*status).or_insert(0u64) += 1;
        let flagged = flags & FLAG_NO_START != 0;
        if starts.contains(id) {
            assert!(
                !flagged,
                "{what}: done {id} has a start but the no-start flag"
            );
        } else {
            assert!(
                flagged,
                "{what}: request-done {id} ({status} {method} {uri}) without a request-start, \
                 and not flagged as such"
            );
            let e = no_start.entry(*status).or_default();
            e.0 += 1;
            e.1.insert(if method.is_empty() && uri.is_empty() {
                "empty method and URI".into()
            } else {
                format!("{:?}", format!("{method} {uri}"))
            });
        }
    }
    let orphans: Vec<&u64> = starts.iter().filter(|id| !dones.contains_key(id)).collect();
    assert!(
        orphans.is_empty(),
        "{what}: {} request-start events without a request-done: {:?}",
        orphans.len(),
        &orphans[..orphans.len().min(10)]
    );
    assert_eq!(
        by_status, counted,
        "{what}: request-done lines vs bpftrace's own count, by status"
    );
    assert_eq!(
        &by_status, logged,
        "{what}: request-done events vs access-log lines, by status"
    );
    Trace {
        starts: starts.len(),
        dones: by_status,
        no_start,
    }
}
