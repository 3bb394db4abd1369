//! Apache's test suite's verdicts, read from the TAP each test file printed: one file's result,
//! and the file-by-file differences of a pass from the baseline. Used by tests/apache_suite.rs
//! (root-only) and checked without root by tests/apache_suite_tap.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one test file did, from its TAP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FileResult {
    pub(crate) planned: Option<u32>,
    /// `1..0 # skipped: <reason>`
    pub(crate) skip_all: Option<String>,
    pub(crate) ran: u32,
    pub(crate) failed: Vec<u32>,
    /// Subtests that ran as skipped (`ok N # skip`).
    pub(crate) skipped: u32,
    /// Failing subtests the file itself marks TODO (expected to fail).
    pub(crate) todo_failed: Vec<u32>,
    pub(crate) bailed_out: bool,
}

impl FileResult {
    pub(crate) fn verdict(&self) -> &'static str {
        if self.skip_all.is_some() {
            "skipped"
        } else if !self.failed.is_empty() || self.bailed_out || self.planned != Some(self.ran) {
            "failed"
        } else {
            "ok"
        }
    }
}

impl fmt::Display for FileResult {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some(why) = &self.skip_all {
            return write!(f, "skipped ({why})");
        }
        write!(f, "{}, {} subtests", self.verdict(), self.ran)?;
        match self.planned {
            Some(n) if n != self.ran => write!(f, " of {n} planned")?,
            None => write!(f, " (no plan)")?,
            _ => {}
        }
        if !self.failed.is_empty() {
            write!(f, ", failed {:?}", self.failed)?;
        }
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        if !self.todo_failed.is_empty() {
            write!(f, ", TODO failing {:?}", self.todo_failed)?;
        }
        if self.bailed_out {
            write!(f, ", bailed out")?;
        }
        Ok(())
    }
}

pub(crate) fn parse_tap(text: &str) -> FileResult {
    let mut r = FileResult::default();
    let mut todo = BTreeSet::new();
    let mut n = 0;
    for line in text.lines() {
        if let Some(plan) = line.strip_prefix("1..") {
            let digits: String = plan.chars().take_while(char::is_ascii_digit).collect();
            r.planned = digits.parse().ok();
            let rest = plan[digits.len()..].trim();
            if r.planned == Some(0) {
                let why = rest.trim_start_matches('#').trim();
                r.skip_all = Some(why.trim_start_matches("skipped:").trim().to_string());
            } else if let Some(list) = rest.strip_prefix("todo") {
                todo.extend(
                    list.split(|c: char| !c.is_ascii_digit())
                        .filter_map(|x| x.parse::<u32>().ok()),
                );
            }
            continue;
        }
        if line.starts_with("Bail out!") {
            r.bailed_out = true;
            continue;
        }
        let (ok, rest) = if let Some(x) = line.strip_prefix("not ok") {
            (false, x)
        } else if let Some(x) = line.strip_prefix("ok") {
            (true, x)
        } else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(' ')) {
            continue;
        }
        n += 1;
        let rest = rest.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let num = digits.parse().unwrap_or(n);
        let directive = rest
            .split_once('#')
            .map(|x| x.1.trim_start().to_ascii_lowercase())
            .unwrap_or_default();
        r.ran += 1;
        if directive.starts_with("skip") {
            r.skipped += 1;
        }
        if !ok {
            if directive.starts_with("todo") || todo.contains(&num) {
                r.todo_failed.push(num);
            } else {
                r.failed.push(num);
            }
        }
    }
    r
}

/// File-by-file differences of `files` (a pass `name`d so in the lines) from `base`.
pub(crate) fn differences(
    base: &BTreeMap<String, FileResult>,
    files: &BTreeMap<String, FileResult>,
    name: &str,
) -> Vec<String> {
    let names: BTreeSet<&String> = base.keys().chain(files.keys()).collect();
    let mut diff = Vec::new();
    for f in names {
        let (a, b) = (base.get(f), files.get(f));
        if a != b {
            let show = |r: Option<&FileResult>| r.map_or("not run".into(), |r| r.to_string());
            diff.push(format!("  {f}: baseline {}; {name} {}", show(a), show(b)));
        }
    }
    diff
}
