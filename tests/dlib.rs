//! What can be checked of httpd.d and the D examples without DTrace (there is none on
//! Linux): the probes they name exist in the module (its `usdt` backend build, the one DTrace
//! systems run, and under Linux names in the module under test), every rq_/ci_/httpd_ name they use
//! is defined by httpd.d, the translators fill every member from fields that exist, the
//! pragmas a provider library needs are there, printf() argument counts match their formats,
//! and each example has a bpftrace twin printing the same format. (httpd.d's dthttpd_t is
//! compared with the Rust struct by the unit test in src/contract.rs.)
//!
//! This file holds the readers the checks share (httpd.d's parts, the D examples, call
//! arguments, code without its strings); the checks are under tests/dlib/: `library.rs`
//! (httpd.d itself), `scripts.rs` (the D scripts and their twins' presence) and `twins.rs`
//! (each D example prints exactly what its bpftrace twin prints).

#[path = "dlib/library.rs"]
mod library;
#[path = "dlib/scripts.rs"]
mod scripts;
#[path = "dlib/twins.rs"]
mod twins;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use testkit::*;

fn words_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find(prefix) {
        let s = i + off;
        let boundary = s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_');
        let mut e = s + prefix.len();
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        if boundary && e > s + prefix.len() {
            v.insert(text[s..e].to_string());
        }
        i = e.max(s + 1);
    }
    v
}

/// The body between the braces of the block whose header starts at `text[at..]`.
fn block_after(text: &str, at: usize) -> &str {
    let open = text[at..].find('{').unwrap() + at;
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces");
}

struct Lib {
    text: String,
    dthttpd: BTreeSet<String>,
    rqinfo: Vec<(String, String)>,
    rq_xlate: String,
    ci_xlate: String,
}

fn lib() -> Lib {
    let raw = fs::read_to_string(repo_file("httpd.d")).unwrap();
    let text = strip_comments(&raw);
    let members = |end: &str| -> Vec<(String, String)> {
        let e = text
            .find(end)
            .unwrap_or_else(|| panic!("httpd.d has no {end}"));
        let s = text[..e].rfind("typedef struct").unwrap();
        let body = block_after(&text, s);
        body.split(';')
            .filter_map(|d| {
                let d = d.split_whitespace().collect::<Vec<_>>();
                (d.len() >= 2).then(|| (d[..d.len() - 1].join(" "), d[d.len() - 1].to_string()))
            })
            .collect()
    };
    let dthttpd = members("} dthttpd_t;").into_iter().map(|m| m.1).collect();
    let rqinfo = members("} httpd_rqinfo_t;")
        .into_iter()
        .map(|(t, n)| (n, t))
        .collect();
    let xl = |head: &str| {
        let at = text
            .find(head)
            .unwrap_or_else(|| panic!("httpd.d has no `{head}`"));
        block_after(&text, at).to_string()
    };
    let rq_xlate = xl("translator httpd_rqinfo_t < dthttpd_t *dp >");
    let ci_xlate = xl("translator conninfo_t < dthttpd_t *dp >");
    Lib {
        text,
        dthttpd,
        rqinfo,
        rq_xlate,
        ci_xlate,
    }
}

fn assigned(xlate: &str) -> BTreeSet<String> {
    xlate
        .split(';')
        .filter_map(|s| s.split_once('=').map(|(l, _)| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .collect()
}

fn balanced(name: &str, text: &str) {
    let code = without_strings(text);
    assert!(
        code.matches('"').count().is_multiple_of(2),
        "{name}: unterminated string"
    );
    for (o, c) in [('{', '}'), ('(', ')'), ('[', ']')] {
        assert_eq!(
            code.matches(o).count(),
            code.matches(c).count(),
            "{name}: unbalanced {o}{c}"
        );
    }
}

fn d_examples() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(repo_file("examples"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "d"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The top-level comma-separated arguments of each `name(...)` call.
fn calls(code: &str, name: &str) -> Vec<Vec<String>> {
    let mut res = Vec::new();
    for (i, _) in code.match_indices(&format!("{name}(")) {
        if i > 0
            && (code.as_bytes()[i - 1].is_ascii_alphanumeric() || code.as_bytes()[i - 1] == b'_')
        {
            continue;
        }
        let mut args = vec![String::new()];
        let (mut depth, mut in_str, mut prev) = (0, false, ' ');
        for c in code[i + name.len() + 1..].chars() {
            if in_str {
                args.last_mut().unwrap().push(c);
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
            } else if c == '"' {
                in_str = true;
                args.last_mut().unwrap().push(c);
            } else if c == '(' {
                depth += 1;
                args.last_mut().unwrap().push(c);
            } else if c == ')' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                args.last_mut().unwrap().push(c);
            } else if c == ',' && depth == 0 {
                args.push(String::new());
            } else {
                args.last_mut().unwrap().push(c);
            }
            prev = c;
        }
        res.push(args.into_iter().map(|a| a.trim().to_string()).collect());
    }
    res
}

/// `text` without its string literals (each replaced by `""`), for scanning code.
fn without_strings(text: &str) -> String {
    let mut out = String::new();
    let (mut in_str, mut prev) = (false, ' ');
    for c in text.chars() {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
                out.push('"');
            }
        } else {
            if c == '"' {
                in_str = true;
            }
            out.push(c);
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    out
}
