//! The Linux tracers besides bpftrace (tests/probes.rs) that README.md's "Tracing on Linux"
//! table lists as tested, each against a live Apache with the built module: perf (Debian's
//! `linux-perf`) and bcc's `tplist` (`bpfcc-tools`). Both need the probes' Linux names,
//! `request__start` and `request__done`: perf rejects a note named `request-done`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::*;

/// perf, with a private build-id cache, `cache`, instead of `$HOME/.debug`. perf 6.1 takes it
/// from `--buildid-dir`: it sets `PERF_BUILDID_DIR` only for the commands it runs itself and
/// ignores it on input (measured: with only the variable set, `perf buildid-cache --add`
/// still wrote `$HOME/.debug`). `HOME` points into the test's scratch directory too, so that
/// nothing of perf's lands in the real one.
fn perf(cache: &Path, args: &[&str]) -> Output {
    Command::new("perf")
        .arg("--buildid-dir")
        .arg(cache)
        .args(args)
        .env("PERF_BUILDID_DIR", cache)
        .env("HOME", cache.parent().unwrap())
        .output()
        .expect("run perf")
}

fn ok(what: &str, out: Output) -> String {
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{so}\n{se}",
        out.status
    );
    so + &se
}

/// The lines of uprobe_events that probe `module`.
fn uprobe_events_of(module: &Path) -> Vec<String> {
    let all = fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap();
    let path = format!(" {}:", module.display());
    all.lines()
        .filter(|l| l.contains(&path))
        .map(str::to_string)
        .collect()
}

/// Deletes the perf probes this test added, also when it fails.
struct PerfProbes {
    cache: PathBuf,
    events: Vec<String>,
}

impl PerfProbes {
    /// `perf probe -x module -f -a def...`: adds the probes (`-f`: as `NAME_1` if another perf
    /// session holds `NAME`) and returns the names perf gave them.
    fn add(&mut self, module: &Path, defs: &[&str]) -> Vec<String> {
        let mut args = vec!["probe", "-x", module.to_str().unwrap(), "-f"];
        for d in defs {
            args.extend(["-a", d]);
        }
        let out = ok("perf probe -a", perf(&self.cache, &args));
        // "Added new events:\n  sdt_httpd:request__start (on %request__start in ...)"
        let added: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("  ") && l.contains(" (on "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect();
        assert_eq!(
            added.len(),
            defs.len(),
            "perf probe added {added:?}:\n{out}"
        );
        self.events.extend(added.iter().cloned());
        added
    }

    /// `perf probe -d` of every probe added.
    fn delete(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let mut args = vec!["probe"];
        for e in &self.events {
            args.extend(["-d", e.as_str()]);
        }
        let out = perf(&self.cache, &args);
        self.events.clear();
        ok("perf probe -d", out);
    }
}

impl Drop for PerfProbes {
    fn drop(&mut self) {
        if !self.events.is_empty() {
            let mut args = vec!["probe".to_string()];
            for e in self.events.drain(..) {
                args.extend(["-d".to_string(), e]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = perf(&self.cache, &args);
        }
    }
}

/// The address of a probe's site, as its note gives it (`readelf -n`).
fn note_location(module: &Path, probe: &str) -> u64 {
    let notes = probe_notes(module);
    notes
        .iter()
        .find(|n| n.provider == "httpd" && n.name == probe)
        .unwrap_or_else(|| panic!("no note for {probe}: {notes:?}"))
        .location
}

/// The field `key=` of a uprobe_events line or a perf script line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"));
    let rest = &line[at + key.len() + 2..];
    rest.split(' ').next().unwrap()
}

/// perf end to end: the build-id cache lists both SDT events, `perf probe` adds both (with
/// their semaphores), `perf record` over a known burst of requests records one request__start
/// and one request__done per request, `perf script` shows the status, and a string probe perf
/// places right behind request__done's site (perf 6.1 keeps an SDT event's own arguments
/// only) reads each request's URI. `perf probe -d` leaves nothing in uprobe_events.
#[test]
fn perf_records_every_request_with_its_uri_and_status() {
    if !need_tracing("perf") || !need_tool("perf", "perf", "linux-perf") {
        return;
    }
    let mut opts = ApacheOpts::new(Mpm::Event);
    opts.h2c = false;
    opts.ipv6 = false;
    let mut a = Apache::start(opts);
    let dir = scratch_dir("perf");
    let cache = dir.join("buildid");
    let module = a.module.clone();

    // The build-id cache reads the notes; a note name perf rejects says "Semantic error".
    let out = ok(
        "perf buildid-cache --add",
        perf(
            &cache,
            &["buildid-cache", "--add", module.to_str().unwrap()],
        ),
    );
    assert!(!out.contains("Semantic error"), "{out}");
    let list = ok("perf list sdt", perf(&cache, &["list", "sdt"]));
    for e in ["sdt_httpd:request__start", "sdt_httpd:request__done"] {
        assert!(list.contains(e), "perf list sdt lacks {e}:\n{list}");
    }

    let mut probes = PerfProbes {
        cache: cache.clone(),
        events: Vec::new(),
    };
    let sdt = probes.add(
        &module,
        &["sdt_httpd:request__start", "sdt_httpd:request__done"],
    );
    let (start_ev, done_ev) = (sdt[0].clone(), sdt[1].clone());
    // perf's own definition of request__done: the site (a file offset), the semaphore, and the
    // registers of arg3 (the URI) and arg5 (the status).
    let events = uprobe_events_of(&module);
    let done_name = done_ev.split_once(':').unwrap().1;
    let line = events
        .iter()
        .find(|l| l.starts_with(&format!("p:sdt_httpd/{done_name} ")))
        .unwrap_or_else(|| panic!("no {done_ev} in uprobe_events: {events:#?}"));
    let at = line.split(' ').nth(1).unwrap(); // PATH:0xOFFSET(0xSEMAPHORE)
    let (off, sema) = at.rsplit_once(':').unwrap().1.split_once('(').unwrap();
    assert!(
        sema.starts_with("0x") && sema != "0x0)",
        "no semaphore: {line}"
    );
    let off = u64::from_str_radix(off.trim_start_matches("0x"), 16).unwrap();
    let reg = |arg: &str| field(line, arg).split(':').next().unwrap().to_string();
    let (uri_reg, status_reg) = (reg("arg3"), reg("arg5"));
    // The site is a 5-byte NOP: the next instruction still sees every argument register. (The
    // kernel refuses a second probe at the site itself without its semaphore.) perf's address
    // syntax takes the address as it is, and here the site's file offset is its address.
    assert_eq!(off, note_location(&module, "request__done"), "{line}");
    let uri_def = format!(
        "dtprovider_{}:uri_done={:#x} uri=+0({uri_reg}):string status={status_reg}:s32",
        std::process::id(),
        off + 5
    );
    let uri_ev = probes.add(&module, &[&uri_def]).remove(0);

    // A known burst, sent by perf record's own workload (so recording is on before the first
    // request), and a second for request-done of the last request to be logged.
    let uris: Vec<String> = (0..12)
        .map(|i| format!("/page.html?perf={i}"))
        .chain(["/missing.html?perf=404".to_string()])
        .collect();
    let mut burst = String::from("curl -s");
    for u in &uris {
        burst.push_str(&format!(" -o /dev/null {}", a.url(u)));
    }
    burst.push_str("; sleep 1");
    let data = dir.join("perf.data");
    let mut rec: Vec<String> = vec!["record".into(), "-q".into(), "-a".into()];
    for e in [&start_ev, &done_ev, &uri_ev] {
        rec.extend(["-e".into(), e.clone()]);
    }
    rec.extend(["-o".into(), data.to_str().unwrap().into()]);
    rec.extend(["--".into(), "sh".into(), "-c".into(), burst]);
    let rec: Vec<&str> = rec.iter().map(String::as_str).collect();
    ok("perf record", perf(&cache, &rec));
    let log = a.wait_access_lines(uris.len());
    assert_eq!(log.len(), uris.len(), "access log: {log:#?}");

    let script = ok(
        "perf script",
        perf(&cache, &["script", "-i", data.to_str().unwrap()]),
    );
    let count = |ev: &str| {
        script
            .lines()
            .filter(|l| l.contains(&format!(" {ev}: ")))
            .count()
    };
    assert_eq!(
        (count(&start_ev), count(&done_ev), count(&uri_ev)),
        (uris.len(), uris.len(), uris.len()),
        "one event of each per request:\n{script}"
    );
    // Statuses from request__done's own arg5, in order; URIs and statuses from the string probe.
    let done_statuses: Vec<i32> = script
        .lines()
        .filter(|l| l.contains(&format!(" {done_ev}: ")))
        .map(|l| field(l, "arg5").parse().unwrap())
        .collect();
    let seen: BTreeMap<String, i32> = script
        .lines()
        .filter(|l| l.contains(&format!(" {uri_ev}: ")))
        .map(|l| {
            let uri = field(l, "uri").trim_matches('"').to_string();
            (uri, field(l, "status").parse().unwrap())
        })
        .collect();
    let mut want: BTreeMap<String, i32> = uris.iter().map(|u| (u.clone(), 200)).collect();
    want.insert("/missing.html?perf=404".into(), 404);
    assert_eq!(seen, want, "URIs and statuses read through perf:\n{script}");
    let mut sorted = done_statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [vec![200; 12], vec![404]].concat(), "{script}");

    probes.delete();
    let left = uprobe_events_of(&module);
    assert!(left.is_empty(), "perf probe -d left {left:#?}");
    a.stop();
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
    let _ = fs::remove_dir_all(&dir);
}

/// bcc's tplist lists both probes of the module, each with its semaphore (`tplist -v -l`).
#[test]
fn bcc_tplist_lists_both_probes_with_semaphores() {
    if !need_tracing("bcc tplist") || !need_tool("bcc tplist", "tplist-bpfcc", "bpfcc-tools") {
        return;
    }
    let module = built_module();
    let out = Command::new("tplist-bpfcc")
        .args(["-v", "-l"])
        .arg(&module)
        .output()
        .expect("run tplist-bpfcc");
    let text = ok("tplist-bpfcc -v -l", out);
    for p in ["request__start", "request__done"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("httpd:{p} ")))
            .unwrap_or_else(|| panic!("tplist does not list httpd:{p}:\n{text}"));
        assert!(
            line.contains("[sema 0x") && !line.contains("[sema 0x0]"),
            "httpd:{p} without a semaphore: {line}"
        );
    }
    assert!(text.contains("6 argument(s)"), "{text}");
}
