//! What can be checked of httpd.d and the D examples without DTrace (there is none on
//! Linux): the probes they name exist in the module (its `usdt` backend build, the one DTrace
//! systems run, and under Linux names in the module under test), every rq_/ci_/httpd_ name they use
//! is defined by httpd.d, the translators fill every member from fields that exist, the
//! pragmas a provider library needs are there, printf() argument counts match their formats,
//! and each example has a bpftrace twin printing the same format. (httpd.d's dthttpd_t is
//! compared with the Rust struct by the unit test in src/contract.rs.)

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
        ("rq_reqline", "string"),
        ("rq_tls", "int"),
        ("rq_redirected", "int"),
        ("rq_nostart", "int"),
    ] {
        assert_eq!(ty(n).as_deref(), Some(t), "{n}");
    }
    // rq_path is the module's dt_path, read as it is (the module cuts the query string off).
    let path = l
        .rq_xlate
        .split("rq_path =")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(
        path.contains("dp->dt_path") && !path.contains("dt_uri"),
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
fn every_example_has_a_bpftrace_twin() {
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
    for (name, _) in &examples {
        let btname = name.trim_end_matches(".d").to_string() + ".bt";
        let bt = fs::read_to_string(repo_file(&format!("examples/{btname}"))).unwrap();
        // (That the two print the same lines is checked statement by statement below.)
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

/// Every D file of the repository: httpd.d and the examples, as (name, code without comments).
fn d_code() -> Vec<(String, String)> {
    let mut v = vec![(
        "httpd.d".to_string(),
        strip_comments(&fs::read_to_string(repo_file("httpd.d")).unwrap()),
    )];
    v.extend(
        d_examples()
            .into_iter()
            .map(|(n, t)| (format!("examples/{n}"), strip_comments(&t))),
    );
    v
}

/// D's macro variables: `$0`..`$9...`, `$$0`.., and the named ones. Anything else after a `$`
/// (a shell's `$#`, `$@`, `$*`, `$?`, `${...}`) is not D: a real DTrace rejects the script
/// ("syntax error near "$"").
fn bad_macro_variables(code: &str) -> Vec<String> {
    const NAMED: [&str; 13] = [
        "target", "pid", "ppid", "pgid", "sid", "uid", "gid", "euid", "egid", "projid", "taskid",
        "zoneid", "cwd",
    ];
    let code = without_strings(code);
    let b = code.as_bytes();
    let mut bad = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if j < b.len() && b[j] == b'$' {
            j += 1; // `$$1`: the argument as a string
        }
        let name_end = (j..b.len())
            .find(|&k| !(b[k].is_ascii_alphanumeric() || b[k] == b'_'))
            .unwrap_or(b.len());
        let name = &code[j..name_end];
        let ok = (!name.is_empty() && name.bytes().all(|c| c.is_ascii_digit()))
            || (j == i + 1 && NAMED.contains(&name));
        if !ok {
            bad.push(code[i..(name_end.max(j + 1)).min(b.len())].to_string());
        }
        i = name_end.max(j + 1);
    }
    bad
}

#[test]
fn d_scripts_use_only_d_macro_variables() {
    for (name, code) in d_code() {
        let bad = bad_macro_variables(&code);
        assert!(
            bad.is_empty(),
            "{name} uses {bad:?}, which D does not have (a shell's, or bpftrace's `$#`); \
             with `#pragma D option defaultargs`, test a missing argument with `$$1 == \"\"`"
        );
    }
    // The check itself: what DTrace rejects is caught, what D has is not.
    assert_eq!(bad_macro_variables("BEGIN /$# != 1/ { }"), ["$#"]);
    assert_eq!(bad_macro_variables("x = $@; y = ${1};"), ["$@", "${"]);
    assert!(bad_macro_variables("/$$1 == \"\" && $1 > 0 && pid == $target/ { }").is_empty());
    assert!(bad_macro_variables("printf(\"$# in a string\");").is_empty());
}

/// Whether D code reads the probes' sixth argument.
fn reads_arg5(code: &str) -> bool {
    words_with_prefix(&without_strings(code), "arg").contains("arg5")
}

#[test]
fn no_d_script_or_dtrace_one_liner_reads_arg5() {
    // The usdt crate's macOS backend fires six-argument probes with arg5 = 0: D reads the
    // latency from the struct (rq_latency_us), which every platform delivers.
    for (name, code) in d_code() {
        assert!(
            !reads_arg5(&code),
            "{name} reads arg5: read httpd_rqinfo->rq_latency_us instead"
        );
    }
    let readme = fs::read_to_string(repo_file("README.md")).unwrap();
    let one_liners: Vec<&str> = readme.lines().filter(|l| l.contains("dtrace -n")).collect();
    assert!(one_liners.len() >= 2, "README's DTrace one-liners");
    for l in one_liners {
        let d = l.split("dtrace -n").nth(1).unwrap();
        assert!(!reads_arg5(d), "README's one-liner reads arg5: {l}");
    }
    assert!(reads_arg5("@ = quantize(arg5);") && !reads_arg5("arg50; \"arg5\""));
}

/// The functions a translator member may call: reading user memory, and sizeof.
const TRANSLATOR_CALLS: [&str; 3] = ["copyin", "copyinstr", "sizeof"];

/// The functions called in `expr` (identifiers followed by `(`).
fn called(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut v = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let next = expr[i..].trim_start();
            if next.starts_with('(') {
                v.insert(expr[s..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    v
}

#[test]
fn translator_members_call_no_d_string_function() {
    // String surgery in a translator (index(), substr(), strtok() of a copyinstr()) differs
    // across DTrace implementations: the module hands every member over ready-made.
    let l = lib();
    for (what, xlate) in [("httpd_rqinfo_t", &l.rq_xlate), ("conninfo_t", &l.ci_xlate)] {
        for member in without_strings(xlate).split(';') {
            let Some((lhs, rhs)) = member.split_once('=') else {
                continue;
            };
            let extra: Vec<String> = called(rhs)
                .into_iter()
                .filter(|f| !TRANSLATOR_CALLS.contains(&f.as_str()))
                .collect();
            assert!(
                extra.is_empty(),
                "{what}: {} calls {extra:?}; a translator member may only read the struct \
                 ({TRANSLATOR_CALLS:?})",
                lhs.trim()
            );
        }
    }
    assert_eq!(
        called("rq_path = index(copyinstr(x), \"?\") < 0 ? \"\" : substr(y, 0, 2)"),
        ["copyinstr", "index", "substr"].map(String::from).into()
    );
}

// ---- the twins' output, statement by statement ----------------------------------------

/// The output statements of each kind of clause of a D or bpftrace script, rendered as the
/// text they print: BEGIN and END and the interval clauses in order, the per-request clauses
/// as the set of lines they may print. Both languages render to the same notation:
///
/// * `printf("fmt", ...)`: its format (DTrace's `%Y` of walltimestamp as `<date>`);
/// * bpftrace `time("%Y %b %e %H:%M:%S")`: `<date>` (what DTrace's `%Y` prints, day padded
///   with a space); any other time() format stays as it is, and matches nothing in D;
/// * a printed count/sum map, bpftrace `print(@m)` or D `printa("@m[%.., %..]: %@d\n", @m)`:
///   `<map @m/keys>`; a D printa() format of another shape stays as it is;
/// * a printed histogram, bpftrace `print(@h)` (which prints "@h: \n" and the rows) or D
///   `printa(@h)` (whose quantize() output starts with a newline): `@h: \n<hist @h>` and
///   `\n<hist @h>` respectively, so that D must print the "@h: " title itself.
///
/// The script's own name (in its USAGE line) is written `<script>`.
#[derive(Debug, Default, PartialEq)]
struct Rendered {
    ordered: BTreeMap<String, String>,
    per_request: BTreeMap<String, BTreeSet<String>>,
}

/// The top-level clauses of a script: (probe specs, body).
fn clauses(code: &str) -> Vec<(Vec<String>, String)> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut v = Vec::new();
    let mut rest = code.as_str();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return v;
        }
        let open = rest.find('{').expect("a clause without a body");
        let header = &rest[..open];
        let body = block_after(rest, 0).to_string();
        let end = open + 1 + body.len() + 1;
        rest = &rest[end..];
        if header.trim_start().starts_with("struct ") {
            rest = rest.trim_start().strip_prefix(';').unwrap_or(rest);
            continue;
        }
        let specs = header
            .lines()
            .map(str::trim)
            .filter(|l| !(l.starts_with('/') && l.ends_with('/') && l.len() > 1))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        v.push((specs, body));
    }
}

fn clause_kind(spec: &str) -> String {
    let spec = spec.replace("__", "-");
    match spec.as_str() {
        "BEGIN" | "END" => spec,
        s if s.ends_with(":request-done") => "request-done".into(),
        s if s.ends_with(":request-start") => "request-start".into(),
        s if s.starts_with("tick-") => format!("interval {}", &s[5..]),
        s if s.starts_with("interval:s:") => format!("interval {}s", &s[11..]),
        other => panic!("unknown probe {other:?}"),
    }
}

/// The string a literal argument holds (its escapes kept).
fn literal(arg: &str) -> Option<&str> {
    arg.strip_prefix('"')?.strip_suffix('"')
}

/// The output statements of a body in source order: (function, arguments).
fn output_calls(body: &str) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(usize, String, Vec<String>)> = Vec::new();
    for f in ["printf", "print", "printa", "time"] {
        let at: Vec<usize> = body
            .match_indices(&format!("{f}("))
            .map(|(i, _)| i)
            .filter(|&i| {
                i == 0
                    || !(body.as_bytes()[i - 1].is_ascii_alphanumeric()
                        || body.as_bytes()[i - 1] == b'_')
            })
            .collect();
        for (i, args) in at.into_iter().zip(calls(body, f)) {
            found.push((i, f.to_string(), args));
        }
    }
    found.sort_by_key(|c| c.0);
    found.into_iter().map(|(_, f, a)| (f, a)).collect()
}

/// The maps of a bpftrace script that hold histograms, and the number of keys of each map.
fn bt_maps(code: &str) -> (BTreeSet<String>, BTreeMap<String, usize>) {
    let mut hists = BTreeSet::new();
    let mut keys = BTreeMap::new();
    for w in words_with_prefix(code, "@") {
        let name = w.clone();
        for (i, _) in code.match_indices(&name) {
            let after = &code[i + name.len()..];
            if after.starts_with('[') {
                let inner = &after[1..after.find(']').unwrap()];
                keys.insert(name.clone(), inner.split(',').count());
            }
            let assigned = after.trim_start_matches(|c: char| c != '=' && c != ';' && c != ')');
            if let Some(rhs) = assigned.strip_prefix('=') {
                let rhs = rhs.trim_start();
                if rhs.starts_with("hist(") || rhs.starts_with("lhist(") {
                    hists.insert(name.clone());
                }
            }
        }
    }
    (hists, keys)
}

fn render(code: &str, script: &str, bpftrace: bool) -> Rendered {
    const DATE: &str = "%Y %b %e %H:%M:%S";
    let (hists, keys) = bt_maps(code);
    let mut r = Rendered::default();
    for (specs, body) in clauses(code) {
        let mut out: Vec<String> = Vec::new();
        for (f, args) in output_calls(&body) {
            let first = args.first().map(String::as_str).unwrap_or("");
            let text = match (f.as_str(), literal(first)) {
                ("printf", Some(fmt)) if bpftrace => fmt.to_string(),
                ("printf", Some(fmt)) => fmt.replace("%Y", "<date>"),
                ("time", Some(fmt)) if bpftrace => fmt.replace(DATE, "<date>"),
                ("print", None) if bpftrace && hists.contains(first) => {
                    format!("{first}: \\n<hist {first}>")
                }
                ("print", None) if bpftrace => {
                    format!("<map {first}/{}>", keys.get(first).copied().unwrap_or(0))
                }
                ("printa", None) if !bpftrace => format!("\\n<hist {first}>"),
                ("printa", Some(fmt)) if !bpftrace && args.len() == 2 => {
                    let m = &args[1];
                    let inner = fmt
                        .strip_prefix(&format!("{m}["))
                        .and_then(|r| r.strip_suffix("]: %@d\\n"));
                    match inner {
                        Some(k) if k.split(", ").all(|c| c.starts_with('%')) => {
                            format!("<map {m}/{}>", k.split(", ").count())
                        }
                        _ => format!("<printa {fmt}>"),
                    }
                }
                _ => format!("<{f}({})>", args.join(", ")),
            };
            out.push(text.replace(script, "<script>"));
        }
        for spec in &specs {
            let kind = clause_kind(spec);
            if kind.starts_with("request-") {
                r.per_request
                    .entry(kind)
                    .or_default()
                    .extend(out.iter().cloned());
            } else {
                r.ordered.entry(kind).or_default().push_str(&out.concat());
            }
        }
    }
    r
}

#[test]
fn every_d_example_prints_exactly_what_its_bpftrace_twin_prints() {
    for (name, d) in d_examples() {
        let btname = name.trim_end_matches(".d").to_string() + ".bt";
        let bt = fs::read_to_string(repo_file(&format!("examples/{btname}"))).unwrap();
        let rd = render(&strip_comments(&d), &name, false);
        let rb = render(&strip_comments(&bt), &btname, true);
        assert!(
            rb.ordered.contains_key("BEGIN"),
            "{btname} prints no header: {rb:#?}"
        );
        assert_eq!(
            rd.ordered, rb.ordered,
            "{name} and {btname} print different header, interval or final lines"
        );
        assert_eq!(
            rd.per_request, rb.per_request,
            "{name} and {btname} print different lines per request"
        );
    }
}

#[test]
fn the_twin_renderer_tells_formats_apart() {
    let bt = "BEGIN { printf(\"T\\n\"); }\n\
              usdt:/m.so:httpd:request-done { @u[str(arg2), arg4] = count(); @h = hist(arg5); }\n\
              interval:s:5 { time(\"%Y %b %e %H:%M:%S\\n\"); print(@u); clear(@u); }\n\
              END { printf(\"\\n\"); print(@h); }";
    let d = "BEGIN { printf(\"T\\n\"); }\n\
             httpd*:::request-done { @u[x, y] = count(); @h = quantize(z); }\n\
             tick-5s { printf(\"%Y\\n\", walltimestamp); printa(\"@u[%s, %d]: %@d\\n\", @u); }\n\
             END { printf(\"\\n@h: \"); printa(@h); }";
    let rb = render(bt, "x.bt", true);
    assert_eq!(render(d, "x.d", false), rb);
    assert_eq!(rb.ordered["interval 5s"], "<date>\\n<map @u/2>");
    for (from, to) in [
        ("%e", "%d"),                             // the date D cannot print
        ("END { printf(\"\\n\");", "END {"),      // a blank line only one twin prints
        ("printf(\"T\\n\")", "printf(\"U\\n\")"), // another header
    ] {
        let changed = bt.replacen(from, to, 1);
        assert_ne!(changed, bt, "{from:?}");
        assert_ne!(
            render(&changed, "x.bt", true),
            render(d, "x.d", false),
            "{to:?}"
        );
    }
    let extra_blank = d.replacen("%@d\\n\", @u);", "%@d\\n\", @u); printf(\"\\n\");", 1);
    assert_ne!(render(&extra_blank, "x.d", false), rb);
    let three_keys = d.replacen("@u[%s, %d]", "@u[%s, %d, %d]", 1);
    assert_ne!(render(&three_keys, "x.d", false), rb);
}
