//! Section 1, idle cost in instructions per request: callgrind over `apache2 -X` (prefork), counting
//! only inside `ap_process_connection`, with a dump after every connection. Each pair of
//! keep-alive connections of N and 2N pipelined requests of the fixed mix gives one figure,
//! (I(2N) - I(N)) / N, which cancels connection setup and teardown. Each configuration runs in
//! several Apache instances with different heap layouts (see [`measure`]); its figure is the
//! mean over layouts and its noise the standard error of that mean.

use crate::util::{self, R, Site};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Sizes {
    pub warmup: usize,
    pub n: usize,
    /// Pairs of connections per layout.
    pub pairs: usize,
    /// Heap layouts (Apache instances) per configuration.
    pub layouts: usize,
}

pub struct Variant {
    pub name: &'static str,
    pub what: &'static str,
    pub extra: Vec<String>,
    /// The shared object whose own instructions are attributed separately (the hooks).
    pub object: Option<PathBuf>,
}

pub struct IdleResult {
    pub name: &'static str,
    pub what: &'static str,
    /// Instructions per request, one figure per pair, all layouts in order.
    pub per_pair: Vec<f64>,
    /// Instructions per request, the mean of each layout's pairs.
    pub per_layout: Vec<f64>,
    /// Instructions per request executed inside `object` itself (its hook functions), per pair.
    pub own_per_pair: Vec<f64>,
}

impl IdleResult {
    /// The figure: the mean over layouts.
    pub fn mean(&self) -> f64 {
        util::mean(&self.per_layout)
    }
    /// The figure's noise: its standard error over layouts (the spread a rerun would show).
    pub fn noise(&self) -> f64 {
        util::stddev(&self.per_layout) / (self.per_layout.len() as f64).sqrt()
    }
    /// How far one layout can be from another (standard deviation across layouts).
    pub fn layout_sd(&self) -> f64 {
        util::stddev(&self.per_layout)
    }
    /// The largest standard deviation between pairs inside one layout (one Apache instance).
    pub fn within_sd(&self, pairs: usize) -> f64 {
        self.per_pair
            .chunks(pairs.max(1))
            .map(util::stddev)
            .fold(0.0, f64::max)
    }
}

/// The five configurations. The floor module and both builds of mod_dtprovider are loaded from
/// paths of the same length (`so-1/module.so`, `so-2/module.so`, `so-3/module.so`) under symbols
/// and module names of the same length: Apache copies these strings into its configuration
/// pool, so a byte more or less in them shifts the alignment of everything allocated after them
/// (the document root among others), which moves `strcmp` inside `ap_directory_walk` by tens of
/// instructions per request, in either direction, without any work by the module.
///
/// `module_so` is the module as this machine's build has it (the `sdt` probe backend on x86-64
/// Linux), `usdt_so` the same module built with `DTPROVIDER_BACKEND=usdt`: the hook code of the
/// DTrace systems' builds, which on Linux tests the `usdt` crate's semaphores instead.
pub fn variants(work: &Path, floor_so: &Path, module_so: &Path, usdt_so: &Path) -> R<Vec<Variant>> {
    let place = |slot: usize, from: &Path| -> R<PathBuf> {
        let d = work.join(format!("so-{slot}"));
        util::mkdir(&d)?;
        let p = d.join("module.so");
        fs::copy(from, &p).map_err(|e| format!("copy {}: {e}", from.display()))?;
        util::chmod(&p, 0o755)?;
        Ok(p)
    };
    let floor_so = place(1, floor_so)?;
    let module_so = place(2, module_so)?;
    let usdt_so = place(3, usdt_so)?;
    let log = work.join("idle-access.log");
    Ok(vec![
        Variant {
            name: "none",
            what: "Apache without the module",
            extra: vec![],
            object: None,
        },
        Variant {
            name: "floor",
            what: "C floor module (2 hooks, 16-bit flag each)",
            extra: vec![format!(
                "LoadModule floor_hook_module {}",
                floor_so.display()
            )],
            object: Some(floor_so),
        },
        Variant {
            name: "module",
            what: "mod_dtprovider loaded, not traced",
            extra: vec![format!(
                "LoadModule dtprovider_module {}",
                module_so.display()
            )],
            object: Some(module_so),
        },
        Variant {
            name: "module-usdt",
            what: "mod_dtprovider, usdt backend, not traced",
            extra: vec![format!(
                "LoadModule dtprovider_module {}",
                usdt_so.display()
            )],
            object: Some(usdt_so),
        },
        Variant {
            name: "accesslog",
            what: "mod_log_config access log with %D",
            extra: vec![
                "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{User-Agent}i\\\" %D\" timed"
                    .into(),
                format!("CustomLog {} timed", log.display()),
            ],
            object: None,
        },
    ])
}

/// The padding (bytes) of each heap layout, see [`measure`]: spread over a 4 KiB page in
/// steps that are not multiples of a cache line.
const PADS: [usize; 10] = [0, 613, 1226, 1839, 2452, 3065, 3678, 195, 808, 1421];

/// Measures variant number `slot` (0-9) under `sz.layouts` heap layouts.
///
/// Every variant's site lives in a directory whose path has the same length (`idle-<slot>`):
/// Apache handles the document root's path on every request (`apr_filepath_merge`,
/// `strrchr`, `strlen`), so a directory name one byte longer shows up as instructions per
/// request that have nothing to do with the module.
///
/// Layouts: where Apache's heap blocks land relative to page boundaries depends on every
/// allocation made before them, including the dynamic loader's for the module and its
/// libraries, and glibc's `strcmp` takes a slower path when a string lies near the end of a
/// page. One Apache instance therefore counts the same number of instructions per request
/// every time (low noise within it), but a different instance can differ by tens. So each
/// configuration runs in several instances whose only difference is a `Define` of a
/// different length (shifting everything Apache allocates after it), and its figure is the
/// mean over those layouts, with the spread across layouts as its noise.
pub fn measure(work: &Path, slot: usize, v: &Variant, sz: &Sizes) -> R<IdleResult> {
    assert!(slot < 10, "one digit keeps the paths the same length");
    assert!(sz.layouts >= 1 && sz.layouts <= PADS.len());
    let mut res = IdleResult {
        name: v.name,
        what: v.what,
        per_pair: Vec::new(),
        per_layout: Vec::new(),
        own_per_pair: Vec::new(),
    };
    for &pad in &PADS[..sz.layouts] {
        let (pairs, own) = measure_layout(work, slot, v, sz, pad)?;
        res.per_layout.push(util::mean(&pairs));
        res.per_pair.extend(pairs);
        res.own_per_pair.extend(own);
    }
    Ok(res)
}

/// One Apache instance under callgrind: (instructions per request, own-code instructions per
/// request), one figure per pair.
fn measure_layout(
    work: &Path,
    slot: usize,
    v: &Variant,
    sz: &Sizes,
    pad: usize,
) -> R<(Vec<f64>, Vec<f64>)> {
    let mut extra = v.extra.clone();
    extra.push(
        format!("Define DTPROVIDER_BENCH_PAD {}", "x".repeat(pad))
            .trim_end()
            .to_string(),
    );
    let site = util::site(
        &work.join(format!("idle-{slot}")),
        util::Mpm::Prefork,
        &extra,
    )?;
    let cg = site.dir.join("cg");
    util::mkdir(&cg)?;
    // Under -X Apache drops to www-data before it serves; callgrind writes its dumps then.
    util::chmod(&cg, 0o777)?;
    let log = site.dir.join("valgrind.log");
    let mut child = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--trace-children=no",
            "--toggle-collect=ap_process_connection",
            "--dump-after=ap_process_connection",
        ])
        .arg(format!("--callgrind-out-file={}/out", cg.display()))
        .arg(format!("--log-file={}", log.display()))
        .args(["apache2", "-X", "-f"])
        .arg(site.conf())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn valgrind: {e}"))?;
    let result = drive(&site, &cg, sz, v);
    util::stop_child(&mut child, "TERM", std::time::Duration::from_secs(60));
    result.map_err(|e| {
        format!(
            "idle/{}: {e}\nerror.log:\n{}\nvalgrind log (tail):\n{}",
            v.name,
            site.error_log(),
            tail(&fs::read_to_string(&log).unwrap_or_default(), 15)
        )
    })
}

fn drive(site: &Site, cg: &Path, sz: &Sizes, v: &Variant) -> R<(Vec<f64>, Vec<f64>)> {
    util::wait_for("apache2 -X under callgrind to listen", 180, || {
        site.accepts()
    })?;
    // The probe connection above is dumped too; from here on, one dump per connection.
    util::wait_for("the first callgrind dump", 60, || !dumps(cg).is_empty())?;
    let mut seen = dumps(cg).len();
    let mut connection = |n: usize| -> R<(u64, u64)> {
        util::keepalive_mix(site.port, n)?;
        util::wait_for("a callgrind dump after the connection", 120, || {
            dumps(cg).len() > seen
        })?;
        let all = dumps(cg);
        if all.len() != seen + 1 {
            return Err(format!("expected one new dump, found {}", all.len() - seen));
        }
        seen = all.len();
        let dump = all.last().unwrap();
        let total = read_total(dump)?;
        let own = match &v.object {
            Some(o) => object_total(dump, o)?,
            None => 0,
        };
        Ok((total, own))
    };
    connection(sz.warmup)?;
    let mut per_pair = Vec::new();
    let mut own_per_pair = Vec::new();
    for _ in 0..sz.pairs {
        let (one, own1) = connection(sz.n)?;
        let (two, own2) = connection(2 * sz.n)?;
        if two <= one {
            return Err(format!("2N connection counted {two} <= N connection {one}"));
        }
        per_pair.push((two - one) as f64 / sz.n as f64);
        own_per_pair.push((own2 as f64 - own1 as f64) / sz.n as f64);
    }
    if v.object.is_some() && own_per_pair.iter().all(|&x| x <= 0.0) {
        return Err(format!(
            "callgrind attributed no instructions to {:?}",
            v.object
        ));
    }
    Ok((per_pair, own_per_pair))
}

/// The numbered dump files (`out.1`, `out.2`, ...), in order.
fn dumps(cg: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = fs::read_dir(cg)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("out.")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

fn read_total(p: &Path) -> R<u64> {
    // The file is complete once its `totals:` line is written.
    let mut text = String::new();
    util::wait_for("a complete callgrind dump", 30, || {
        text = fs::read_to_string(p).unwrap_or_default();
        text.lines().any(|l| l.starts_with("totals:"))
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", p.display()))
}

/// Instructions executed inside the shared object `object` (exclusive cost of its functions),
/// as `callgrind_annotate` attributes them.
fn object_total(dump: &Path, object: &Path) -> R<u64> {
    let out = util::run(
        Command::new("callgrind_annotate")
            .args(["--threshold=100", "--inclusive=no"])
            .arg(dump),
    )?;
    let tag = format!("[{}]", object.display());
    Ok(out
        .lines()
        .filter(|l| l.trim_end().ends_with(&tag))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .sum())
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
