//! The twins' output, statement by statement: each D example prints exactly the lines its
//! bpftrace twin prints, and the renderer that compares them tells formats apart.

use super::*;

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
