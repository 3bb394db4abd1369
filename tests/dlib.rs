//! What can be checked of httpd.d and the D examples without DTrace (there is none on
//! Linux): the probes they name exist in the module (its `usdt` backend build, the one DTrace
//! systems run, and under Linux names in the module under test), every rq_/ci_/httpd_ name they use
//! is defined by httpd.d, the translators fill every member from fields that exist, the
//! pragmas a provider library needs are there, printf() argument counts match their formats,
//! and each example has a bpftrace twin printing the same format. (httpd.d's dthttpd_t is
//! compared with the Rust struct by the unit test in src/contract.rs.)

mod support;

use std::collections::BTreeSet;
use std::fs;
use support::*;

fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(b) = rest.find("/*") {
        out.push_str(&rest[..b]);
        let e = rest[b..].find("*/").expect("unterminated comment") + b + 2;
        rest = &rest[e..];
    }
    out.push_str(rest);
    out
}

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
    let code: String = {
        // Drop string literals, then count.
        let mut out = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        for c in text.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        assert!(!in_str, "{name}: unterminated string");
        out
    };
    for (o, c) in [('{', '}'), ('(', ')'), ('[', ']')] {
        assert_eq!(
            code.matches(o).count(),
            code.matches(c).count(),
            "{name}: unbalanced {o}{c}"
        );
    }
}

#[test]
fn httpd_d_translates_every_member_from_fields_that_exist() {
    let l = lib();
    balanced("httpd.d", &l.text);
    let declared: BTreeSet<String> = l.rqinfo.iter().map(|m| m.0.clone()).collect();
    assert_eq!(
        assigned(&l.rq_xlate),
        declared,
        "httpd_rqinfo_t members vs. its translator"
    );
    let ci: BTreeSet<String> = ["ci_local", "ci_remote", "ci_protocol"]
        .map(String::from)
        .into();
    assert_eq!(assigned(&l.ci_xlate), ci, "conninfo_t translator");
    for x in [&l.rq_xlate, &l.ci_xlate] {
        let used: BTreeSet<String> = words_with_prefix(x, "dt_");
        assert!(!used.is_empty());
        for f in &used {
            assert!(
                l.dthttpd.contains(f),
                "the translator reads {f}, which dthttpd_t lacks"
            );
        }
    }
    // ci_protocol comes from dt_ipver, never a constant "ipv4" (mod_usdt's bug).
    let proto = l
        .ci_xlate
        .split("ci_protocol")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(
        proto.contains("dt_ipver") && proto.contains("\"ipv6\"") && proto.contains("\"ipv4\""),
        "{proto}"
    );
    // Every dthttpd_t field reaches scripts through httpd_rqinfo_t or conninfo_t.
    let all = format!("{}{}", l.rq_xlate, l.ci_xlate);
    for f in &l.dthttpd {
        assert!(
            all.contains(&format!("dp->{f},"))
                || all.contains(&format!("dp->{f}\n"))
                || all.contains(&format!("&dp->{f}")),
            "{f} is not translated"
        );
    }
}

#[test]
fn httpd_rqinfo_t_keeps_mod_usdt_members_and_adds_the_rest() {
    let l = lib();
    let ty = |n: &str| l.rqinfo.iter().find(|m| m.0 == n).map(|m| m.1.clone());
    // mod_usdt's members, names and types unchanged, first and in its order.
    let usdt = [
        ("rq_id", "uint64_t"),
        ("rq_status", "uint16_t"),
        ("rq_lport", "uint16_t"),
        ("rq_rport", "uint16_t"),
        ("rq_method", "string"),
        ("rq_uri", "string"),
        ("rq_agent", "string"),
    ];
    for (i, (n, t)) in usdt.iter().enumerate() {
        assert_eq!(l.rqinfo[i], (n.to_string(), t.to_string()));
    }
    for (n, t) in [
        ("rq_path", "string"),
        ("rq_latency_us", "uint64_t"),
        ("rq_bytes_sent", "uint64_t"),
        ("rq_start_us", "uint64_t"),
        ("rq_connid", "uint64_t"),
        ("rq_host", "string"),
        ("rq_protocol", "string"),
        ("rq_client", "string"),
        ("rq_logid", "string"),
        ("rq_tls", "int"),
        ("rq_redirected", "int"),
        ("rq_nostart", "int"),
    ] {
        assert_eq!(ty(n).as_deref(), Some(t), "{n}");
    }
    // rq_path is rq_uri up to '?': both branches present, and '?' searched in dt_uri.
    let path = l
        .rq_xlate
        .split("rq_path =")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(
        path.contains("dt_uri") && path.contains("index(") && path.contains("substr("),
        "{path}"
    );
}

#[test]
fn httpd_d_is_a_proper_provider_library() {
    let raw = fs::read_to_string(repo_file("httpd.d")).unwrap();
    let l = lib();
    let t = &l.text;
    assert!(t.contains("#pragma D depends_on library net.d"));
    assert!(
        !t.contains("pr_dmodel"),
        "64-bit only; no data-model test (fails in non-global zones)"
    );
    // Every translator carries a binding pragma right before it.
    let n_xl = t.matches("\ntranslator ").count();
    assert_eq!(n_xl, 2);
    assert_eq!(
        t.matches("#pragma D binding \"1.6.1\" translator\ntranslator ")
            .count(),
        n_xl
    );
    // The inline helpers, with stability and binding.
    for (name, ty) in [
        ("httpd_conninfo", "conninfo_t"),
        ("httpd_rqinfo", "httpd_rqinfo_t"),
    ] {
        assert!(
            t.contains(&format!(
                "inline {ty} *{name} = xlate <{ty} *> ((dthttpd_t *)arg0);"
            )),
            "inline {name}"
        );
        assert!(
            t.contains(&format!("#pragma D binding \"1.6.1\" {name}\n")),
            "binding of {name}"
        );
        assert!(
            t.contains(&format!(
                "#pragma D attributes Evolving/Evolving/ISA {name}\n"
            )),
            "attributes of {name}"
        );
    }
    // A library has no probe clauses and does not name the provider as a dependency
    // (USDT providers are httpd<pid>; a missing dependency would disable the library).
    assert!(!t.contains("httpd*:::") && !t.contains("depends_on provider"));
    // The header tells how to install it and warns about other .d files next to it.
    for must in [
        "-L",
        "/usr/lib/dtrace",
        "every .d file",
        "httpd_rqinfo->",
        "xlate <httpd_rqinfo_t *>((dthttpd_t *)arg0)->rq_uri",
    ] {
        assert!(
            raw.to_lowercase().contains(&must.to_lowercase()),
            "httpd.d header lacks {must:?}"
        );
    }
}

/// The probe names DTrace systems see (`request-done`): those of the module's `usdt` backend
/// build, which is what illumos, FreeBSD and macOS run. They must also be the module's Linux
/// names (`request__done`) with DTrace's rule applied (`__` becomes `-`).
fn module_probes() -> BTreeSet<String> {
    let dtrace: Vec<String> = note_names(&Backend::Usdt.module());
    let linux: Vec<String> = note_names(&built_module());
    let from_linux: Vec<String> = linux.iter().map(|n| n.replace("__", "-")).collect();
    assert_eq!(dtrace, from_linux, "usdt backend vs Linux notes");
    dtrace.into_iter().collect()
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

fn conversions(fmt: &str) -> usize {
    let f = fmt.replace("%%", "");
    f.matches('%').count()
}

#[test]
fn d_examples_use_only_what_httpd_d_and_the_module_define() {
    let l = lib();
    let probes = module_probes();
    assert_eq!(
        probes,
        ["request-done", "request-start"].map(String::from).into(),
        "module notes"
    );
    let provider = fs::read_to_string(repo_file("src/httpd_provider.d")).unwrap();
    let rq: BTreeSet<String> = l.rqinfo.iter().map(|m| m.0.clone()).collect();
    let ci: BTreeSet<String> = ["ci_local", "ci_remote", "ci_protocol"]
        .map(String::from)
        .into();
    // Names httpd.d defines: its inlines and typedefs.
    let mut httpd_names = BTreeSet::new();
    for line in l.text.lines().map(str::trim) {
        if let Some((lhs, _)) = line
            .strip_prefix("inline ")
            .and_then(|r| r.split_once(" = "))
        {
            httpd_names.insert(
                lhs.split_whitespace()
                    .last()
                    .unwrap()
                    .trim_start_matches('*')
                    .to_string(),
            );
        }
        if let Some(r) = line.strip_prefix("} ") {
            httpd_names.insert(r.trim_end_matches(';').to_string());
        }
    }
    for n in [
        "httpd_rqinfo",
        "httpd_conninfo",
        "httpd_rqinfo_t",
        "dthttpd_t",
    ] {
        assert!(httpd_names.contains(n), "{n} not defined: {httpd_names:?}");
    }
    let examples = d_examples();
    assert!(examples.len() >= 6, "{examples:?}");
    for (name, raw) in &examples {
        let code = strip_comments(raw);
        balanced(name, &code);
        // Probes: provider httpd (any pid), names the module really has.
        let mut named = 0;
        for (i, _) in code.match_indices("httpd*:::") {
            let p: String = code[i + 9..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                probes.contains(&p),
                "{name}: probe {p} is not in the module"
            );
            assert!(
                provider.contains(&format!("probe {}(", p.replace('-', "__"))),
                "{name}: {p} not in src/httpd_provider.d"
            );
            named += 1;
        }
        assert!(named >= 1, "{name} names no httpd probe");
        for w in words_with_prefix(&code, "rq_") {
            assert!(
                rq.contains(&w),
                "{name} uses {w}, which httpd_rqinfo_t lacks"
            );
        }
        for w in words_with_prefix(&code, "ci_") {
            assert!(ci.contains(&w), "{name} uses {w}, which conninfo_t lacks");
        }
        for w in words_with_prefix(&code, "httpd_") {
            assert!(
                httpd_names.contains(&w),
                "{name} uses {w}, which httpd.d does not define"
            );
        }
        // No thread-local start/done correlation, no untranslatable args[].
        assert!(
            !code.contains("self->") && !code.contains("args["),
            "{name}"
        );
        for args in calls(&code, "printf") {
            let fmt = &args[0];
            assert!(
                fmt.starts_with('"') && fmt.ends_with('"'),
                "{name}: printf format {fmt}"
            );
            assert_eq!(
                conversions(fmt),
                args.len() - 1,
                "{name}: printf({})",
                args.join(", ")
            );
        }
        for args in calls(&code, "printa") {
            if args.len() == 2 {
                let fmt = &args[0];
                assert!(fmt.contains("%@"), "{name}: printa without %@: {fmt}");
            }
        }
        assert!(
            raw.contains("USAGE:") && raw.contains("Example output"),
            "{name}: header"
        );
        assert!(
            !raw.contains("SAMPLE"),
            "{name}: the sample output placeholder is still there"
        );
    }
}

#[test]
fn every_example_has_a_bpftrace_twin_with_the_same_output_format() {
    let examples = d_examples();
    let bts: BTreeSet<String> = fs::read_dir(repo_file("examples"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bt"))
        .collect();
    let ds: BTreeSet<String> = examples
        .iter()
        .map(|e| e.0.trim_end_matches(".d").to_string() + ".bt")
        .collect();
    assert_eq!(bts, ds, "examples/ must pair every .d with a .bt");
    for want in [
        "http-requests",
        "http-requests-bylatency",
        "http-urls",
        "http-slow",
        "http-errors",
        "http-clients",
    ] {
        assert!(bts.contains(&format!("{want}.bt")), "{want}");
    }
    for (name, d) in &examples {
        let btname = name.trim_end_matches(".d").to_string() + ".bt";
        let bt = fs::read_to_string(repo_file(&format!("examples/{btname}"))).unwrap();
        // The same lines: every printf() format of the bpftrace script is in the D script.
        let d_fmts: BTreeSet<String> = calls(&strip_comments(d), "printf")
            .into_iter()
            .map(|a| a[0].clone())
            .collect();
        // (The usage message names its own script.)
        for args in calls(&strip_comments(&bt), "printf")
            .into_iter()
            .filter(|a| !a[0].starts_with("\"USAGE: "))
        {
            assert!(
                d_fmts.contains(&args[0]),
                "{btname} prints {} but {name} does not",
                args[0]
            );
        }
        // Usable out of the box with the Debian package, and says how to use another module.
        assert!(
            bt.contains(&format!("usdt:{DEB_MODULE}:httpd:")),
            "{btname}"
        );
        assert!(
            bt.contains(&format!("sed 's|{DEB_MODULE}|/path/to/mod_dtprovider.so|'")),
            "{btname}"
        );
        assert!(
            bt.contains("USAGE:") && bt.contains("Example output"),
            "{btname}: header"
        );
        assert!(
            !bt.contains("SAMPLE"),
            "{btname}: the sample output placeholder is still there"
        );
        assert!(
            !bt.contains("@start[tid]") && !bt.contains("[tid]"),
            "{btname}: thread-local correlation"
        );
        assert!(
            bt.contains(btname.as_str()) && bt.contains(name.as_str()),
            "{btname}: header names both twins"
        );
    }
}
