//! The D scripts: they name only probes the module has and names httpd.d defines, printf()
//! argument counts match their formats, each has a bpftrace twin, they use only D's macro
//! variables, and neither they nor README's one-liners read `arg5`.

use super::*;

/// The probe names DTrace systems see (`request-done`): the provider definition's
/// (src/httpd_provider.d, which the `usdt` backend that illumos, FreeBSD and macOS run is built
/// from) with DTrace's rule applied (`__` becomes `-`, [`Backend::probe`]). The definition's names must be the
/// module's Linux notes (`request__done`); tests/elf.rs checks the `usdt` backend build's notes
/// in the full suite, which builds that variant.
fn module_probes() -> BTreeSet<String> {
    let provider = fs::read_to_string(repo_file("src/httpd_provider.d")).unwrap();
    let mut defined: Vec<String> = strip_comments(&provider)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("probe "))
        .filter_map(|l| l.split_once('(').map(|(name, _)| name.trim().to_string()))
        .collect();
    defined.sort();
    assert_eq!(
        note_names(&built_module()),
        defined,
        "Linux notes vs the provider definition"
    );
    defined.iter().map(|n| Backend::Usdt.probe(n)).collect()
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
