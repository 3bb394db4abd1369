//! Section 4, event fidelity under load: wrk at saturation against an event-MPM Apache with the module
//! and an access log, alternating untraced and traced runs. In every traced run bpftrace's
//! request-done count must equal the access-log lines written during it; throughput traced vs
//! untraced is reported per pair.

use crate::notes::Probes;
use crate::util::{self, R};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

pub struct Sizes {
    pub pairs: usize,
    pub secs: u64,
    pub threads: usize,
    pub conns: usize,
}

pub struct WrkRun {
    pub rps: f64,
    pub requests: u64,
    pub errors: String,
}

pub struct TracedRun {
    pub wrk: WrkRun,
    pub done_events: u64,
    pub start_events: u64,
    pub log_lines: u64,
}

pub struct LoadResult {
    pub untraced: Vec<WrkRun>,
    pub traced: Vec<TracedRun>,
}

impl LoadResult {
    /// traced/untraced throughput, per pair.
    pub fn ratios(&self) -> Vec<f64> {
        self.traced
            .iter()
            .zip(&self.untraced)
            .map(|(t, u)| t.wrk.rps / u.rps)
            .collect()
    }
}

pub fn measure(work: &Path, module: &Path, sz: &Sizes) -> R<LoadResult> {
    let dir = work.join("load");
    let log = work.join("load-access.log");
    let _ = fs::remove_file(&log);
    let site = util::site(
        &dir,
        util::Mpm::Event,
        &[
            format!("LoadModule dtprovider_module {}", module.display()),
            "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b %D\" timed".into(),
            format!("CustomLog {} timed", log.display()),
        ],
    )?;
    let apache = util::start(&site, None)?;
    let url = format!("http://127.0.0.1:{}/index.html", site.port);
    let lines = || -> u64 {
        fs::read(&log)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .unwrap_or(0)
    };
    // Lines are written after each response; wait until the count stops moving.
    let settle = || -> u64 {
        let mut last = lines();
        loop {
            thread::sleep(Duration::from_millis(700));
            let now = lines();
            if now == last {
                return now;
            }
            last = now;
        }
    };
    wrk(&url, 1, sz)?; // warm-up, untraced
    let probes = Probes::read(module)?;
    let script = format!(
        "BEGIN {{ printf(\"READY\\n\"); }}\n\
         {} {{ @start = count(); }}\n\
         {} {{ @done = count(); }}\n",
        Probes::usdt(module, &probes.start),
        Probes::usdt(module, &probes.done),
    );
    let mut res = LoadResult {
        untraced: vec![],
        traced: vec![],
    };
    for pair in 0..sz.pairs {
        for traced_first in [pair % 2 == 1] {
            for traced in [traced_first, !traced_first] {
                if !traced {
                    res.untraced.push(wrk(&url, sz.secs, sz)?);
                    continue;
                }
                let before = settle();
                let tracer = util::tracer(
                    &script,
                    &work.join(format!("bt-load-{pair}")),
                    "READY",
                    None,
                )?;
                let w = wrk(&url, sz.secs, sz);
                let after = settle();
                let out = tracer.try_stop()?;
                let w = w?;
                let run = TracedRun {
                    wrk: w,
                    done_events: util::bt_count(&out, "done"),
                    start_events: util::bt_count(&out, "start"),
                    log_lines: after - before,
                };
                if run.done_events == 0 || run.log_lines == 0 {
                    return Err(format!(
                        "traced load run saw {} events and {} log lines: the tracer or the \
                         load did not work\n{out}\nerror.log:\n{}",
                        run.done_events,
                        run.log_lines,
                        site.error_log()
                    ));
                }
                res.traced.push(run);
            }
        }
    }
    drop(apache);
    Ok(res)
}

fn wrk(url: &str, secs: u64, sz: &Sizes) -> R<WrkRun> {
    let out = util::run(Command::new("wrk").args([
        "-t",
        &sz.threads.to_string(),
        "-c",
        &sz.conns.to_string(),
        "-d",
        &format!("{secs}s"),
        url,
    ]))?;
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{out}"))?;
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no request count in wrk output:\n{out}"))?;
    let errors = out
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if requests == 0 {
        return Err(format!("wrk completed no requests:\n{out}"));
    }
    Ok(WrkRun {
        rps,
        requests,
        errors,
    })
}
