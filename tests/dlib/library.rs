//! httpd.d as a provider library: its translators fill every member from fields that exist,
//! call no D string function, keep mod_usdt's members, and it carries the pragmas a library
//! needs.

use super::*;

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
    let proto = member_expr(&l.ci_xlate, "ci_protocol");
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
    let path = member_expr(&l.rq_xlate, "rq_path =");
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

/// What a translator assigns to a member: the text after `member` up to the next `;`.
fn member_expr<'a>(xlate: &'a str, member: &str) -> &'a str {
    let after = xlate
        .split(member)
        .nth(1)
        .unwrap_or_else(|| panic!("no {member} in {xlate}"));
    after.split(';').next().unwrap()
}
