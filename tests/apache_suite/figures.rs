//! The figures a pass prints, and the RELIABILITY.md section `DTPROVIDER_REPORT=1` writes.

use super::*;

pub(crate) struct Figures<'a> {
    pub(crate) mpm: Mpm,
    pub(crate) source: String,
    pub(crate) passes: &'a [Pass],
    pub(crate) trace: &'a Trace,
}

pub(crate) fn statuses(m: &BTreeMap<i32, u64>) -> String {
    m.iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Figures<'_> {
    pub(crate) fn files(&self) -> String {
        let base = &self.passes[0];
        let count = |v: &str| base.files.values().filter(|r| r.verdict() == v).count();
        let failing: Vec<&str> = base
            .files
            .iter()
            .filter(|(_, r)| r.verdict() == "failed")
            .map(|(f, _)| f.as_str())
            .collect();
        format!(
            "{} test files ({} ok, {} skipped, {} failing in every pass{}), {} subtests",
            base.files.len(),
            count("ok"),
            count("skipped"),
            failing.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!(": {}", failing.join(", "))
            },
            base.subtests()
        )
    }
    pub(crate) fn requests(&self) -> String {
        let t = self.trace;
        let dones: u64 = t.dones.values().sum();
        let no_start: u64 = t.no_start.values().map(|x| x.0).sum();
        format!(
            "{} access-log lines = {} request-done events ({}); {} request-start, each with its \
             request-done; {} request-done without a start, all flagged ({})",
            self.passes[2].requests(),
            dones,
            statuses(&t.dones),
            t.starts,
            no_start,
            t.no_start
                .iter()
                .map(|(s, (n, seen))| {
                    let ex: Vec<&str> = seen.iter().take(3).map(String::as_str).collect();
                    let more = seen.len().saturating_sub(ex.len());
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    format!("{s}: {n}, carrying {}{more}", ex.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
    pub(crate) fn minutes(&self) -> String {
        self.passes
            .iter()
            .map(|p| format!("{:.1}", p.seconds / 60.0))
            .collect::<Vec<_>>()
            .join(" / ")
    }
    pub(crate) fn summary(&self) -> String {
        format!(
            "{}, identical file by file in all three passes; traced: {}; no Apache process died \
             by a signal, the module logged nothing; minutes per pass (baseline / loaded / \
             traced): {}",
            self.files(),
            self.requests(),
            self.minutes()
        )
    }
}

pub(crate) const BEGIN: &str = "<!-- apache-suite:begin -->";
pub(crate) const END: &str = "<!-- apache-suite:end -->";

/// Replaces this MPM's row of RELIABILITY.md's Apache-suite table (other MPMs' rows stay).
pub(crate) fn write_report(fig: &Figures) {
    let path = repo_file("RELIABILITY.md");
    let text = fs::read_to_string(&path).unwrap_or_default();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("{} has no {BEGIN} ... {END} section", path.display());
    };
    let section = &text[b + BEGIN.len()..e];
    let mut rows: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| {
            let mpm = l.strip_prefix("| ")?.split(' ').next()?;
            Mpm::ALL
                .iter()
                .any(|m| m.name() == mpm)
                .then(|| (mpm.to_string(), l.to_string()))
        })
        .collect();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cells = [
        fig.mpm.name().to_string(),
        today(),
        format!(
            "{}, framework from Debian's apache2 source {}, kernel {}",
            apache_version(),
            fig.source,
            kernel.trim()
        ),
        fig.files(),
        fig.requests(),
        fig.minutes(),
    ];
    // A URI among the examples may hold a `|`.
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    rows.insert(fig.mpm.name().into(), format!("| {} |", cells.join(" | ")));
    let mut body = String::from(
        "\n| MPM | measured | against | test files (same result in all three passes) | \
         traced pass | minutes (baseline / loaded / traced) |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows.values() {
        body.push_str(r);
        body.push('\n');
    }
    let new = format!("{}{BEGIN}{body}{}", &text[..b], &text[e..]);
    fs::write(&path, new).unwrap();
}

pub(crate) fn today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
