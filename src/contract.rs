//! Test-only: the `dthttpd_t` declarations outside Rust (httpd.d for DTrace, the
//! `struct dthttpd_t` of every bpftrace script in the repository) against the Rust struct
//! [`crate::payload::DtHttpd`]: the same members, in the same order, with matching types, at
//! the same offsets, with the same size.

use crate::payload::DtHttpd;
use std::any::type_name_of_val;
use std::mem::{offset_of, size_of, size_of_val};
use std::path::{Path, PathBuf};
use testkit::strip_comments;

/// One member of the Rust struct: name, offset, size, Rust type name.
#[derive(Debug)]
pub(crate) struct RustField {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub ty: &'static str,
}

/// Every field of `DtHttpd`, in declaration order. The destructuring pattern has no `..`, so
/// adding a field to the Rust struct without listing it here does not compile.
macro_rules! rust_fields {
    ($($f:ident),* $(,)?) => {{
        // SAFETY: every field is an integer or a raw pointer; all-zero is a valid value.
        let v: DtHttpd = unsafe { std::mem::zeroed() };
        let DtHttpd { $($f),* } = v;
        let mut out = vec![$(RustField {
            name: stringify!($f),
            offset: offset_of!(DtHttpd, $f),
            size: size_of_val(&$f),
            ty: type_name_of_val(&$f),
        }),*];
        out.sort_by_key(|f| f.offset);
        out
    }};
}

pub(crate) fn rust_layout() -> Vec<RustField> {
    rust_fields!(
        dt_rqid,
        dt_status,
        dt_lport,
        dt_rport,
        dt_ipver,
        dt_flags,
        dt_latency_us,
        dt_bytes_sent,
        dt_start_us,
        dt_connid,
        dt_laddr,
        dt_raddr,
        dt_method,
        dt_uri,
        dt_agent,
        dt_host,
        dt_protocol,
        dt_client,
        dt_logid,
        dt_path,
        dt_reqline,
    )
}

/// A member of a C-syntax struct declaration (D or bpftrace), with the offset a C compiler
/// (and DTrace's and bpftrace's struct layout) gives it.
#[derive(Debug, PartialEq)]
struct CField {
    name: String,
    ty: String,
    offset: usize,
    size: usize,
}

/// The scalar C/D types a `dthttpd_t` declaration may use: (size, alignment).
fn c_type_size(ty: &str) -> (usize, usize) {
    match ty {
        "uint64_t" | "int64_t" | "uintptr_t" | "uint64" | "int64" => (8, 8),
        "uint32_t" | "int32_t" | "uint32" | "int32" | "int" => (4, 4),
        "uint16_t" | "int16_t" | "uint16" | "int16" => (2, 2),
        "uint8_t" | "int8_t" | "uint8" | "int8" | "char" => (1, 1),
        t if t.ends_with('*') => (8, 8),
        t => panic!("unexpected type {t:?} in a dthttpd_t declaration"),
    }
}

/// Parses the body (between the braces) of a struct declaration, computing C offsets.
fn parse_c_struct(body: &str) -> (Vec<CField>, usize) {
    let mut fields = Vec::new();
    let mut off = 0usize;
    let mut max_align = 1usize;
    for decl in strip_comments(body).split(';') {
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        if decl.is_empty() {
            continue;
        }
        // "type name", "type *name" or "type name[n]".
        let (ty, name) = decl.rsplit_once(' ').expect("member without a type");
        let (mut ty, mut name) = (ty.trim().to_string(), name.trim().to_string());
        while let Some(n) = name.strip_prefix('*') {
            ty.push_str(" *");
            name = n.to_string();
        }
        let ty = ty.replace(" *", "*").replace('*', " *");
        assert!(
            !name.contains('['),
            "arrays are not part of dthttpd_t: {decl}"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad member name {name:?}"
        );
        let (size, align) = c_type_size(&ty);
        off = off.div_ceil(align) * align;
        fields.push(CField {
            name,
            ty,
            offset: off,
            size,
        });
        off += size;
        max_align = max_align.max(align);
    }
    (fields, off.div_ceil(max_align) * max_align)
}

/// The struct body declared by `typedef struct [tag] { ... } dthttpd_t;` (D) or
/// `struct dthttpd_t { ... };` (bpftrace), comments removed.
fn find_struct(text: &str, d_typedef: bool) -> Option<String> {
    raw_struct(&strip_comments(text), d_typedef)
}

/// The same body with its comments.
fn raw_struct(text: &str, d_typedef: bool) -> Option<String> {
    if d_typedef {
        let end = text.find("} dthttpd_t;")?;
        let start = text[..end].rfind("typedef struct")?;
        let open = text[start..end].find('{')? + start;
        Some(text[open + 1..end].to_string())
    } else {
        let start = text.find("struct dthttpd_t {")?;
        let open = start + "struct dthttpd_t ".len();
        let close = text[open..].find("};")? + open;
        Some(text[open + 1..close].to_string())
    }
}

/// Which declared types stand for which Rust type. Pointers may be declared as a 64-bit
/// integer (D reads user-space pointers with copyin) or as `char *` (bpftrace, for `str()`).
fn type_matches(rust: &str, c: &str) -> bool {
    match rust {
        "u64" => c == "uint64_t" || c == "uint64",
        "u16" => c == "uint16_t" || c == "uint16",
        "u8" => c == "uint8_t" || c == "uint8",
        r if r.starts_with("*const ") => {
            ["uint64_t", "uintptr_t", "uint64", "char *", "const char *"].contains(&c)
        }
        other => panic!("Rust field type {other} has no D/bpftrace counterpart yet"),
    }
}

fn check_against_rust(what: &str, body: &str) {
    let rust = rust_layout();
    let (fields, size) = parse_c_struct(body);
    let names = |v: &[CField]| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let rust_names: Vec<String> = rust.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(
        names(&fields),
        rust_names,
        "{what}: members or their order differ from DtHttpd"
    );
    for (c, r) in fields.iter().zip(&rust) {
        assert_eq!(c.offset, r.offset, "{what}: offset of {}", r.name);
        assert_eq!(c.size, r.size, "{what}: size of {}", r.name);
        assert!(
            type_matches(r.ty, &c.ty),
            "{what}: {} is {} in Rust but {} here",
            r.name,
            r.ty,
            c.ty
        );
    }
    assert_eq!(size, size_of::<DtHttpd>(), "{what}: struct size");
}

/// The offsets written in comments next to members (`uint64_t dt_path; /* 120: ... */`), as
/// (member, offset): documentation users read, so each must be true. Only lines declaring one
/// member may carry one.
fn offset_comments(raw_body: &str) -> Vec<(String, usize)> {
    let mut v = Vec::new();
    for line in raw_body.lines() {
        let Some((decl, comment)) = line.split_once("/*") else {
            continue;
        };
        let Some(off) = comment
            .trim()
            .split([':', ' ', '*'])
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let decls: Vec<&str> = decl.split(';').filter(|d| !d.trim().is_empty()).collect();
        assert_eq!(
            decls.len(),
            1,
            "an offset comment on a line of several members: {line}"
        );
        let name = decls[0]
            .split_whitespace()
            .last()
            .unwrap()
            .trim_start_matches('*');
        v.push((name.to_string(), off));
    }
    v
}

/// Checks every offset comment of a declaration, and that each member from `from` on has one.
fn check_offset_comments(what: &str, raw_body: &str, from: usize) {
    let comments = offset_comments(raw_body);
    for (name, off) in &comments {
        let r = rust_layout().into_iter().find(|f| f.name == name);
        let r = r.unwrap_or_else(|| panic!("{what}: comment on unknown member {name}"));
        assert_eq!(*off, r.offset, "{what}: the offset comment of {name}");
    }
    for f in rust_layout().iter().filter(|f| f.offset >= from) {
        assert!(
            comments.iter().any(|(n, _)| n == f.name),
            "{what}: {} (offset {}) has no offset comment",
            f.name,
            f.offset
        );
    }
}

/// The size of dthttpd_t before fields were first appended to it: from this offset on, every
/// field says its offset in each bpftrace declaration.
const APPENDED: usize = 120;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every bpftrace script of the repository (examples/ and the tests' own).
fn bt_scripts() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["examples", "tests/support", "demo"] {
        let Ok(rd) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "bt") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}

#[test]
fn rust_layout_is_complete_and_ordered() {
    let rust = rust_layout();
    assert_eq!(rust.len(), 21);
    assert_eq!(rust.first().map(|f| f.name), Some("dt_rqid"));
    assert_eq!(
        rust.last().map(|f| (f.name, f.offset + f.size)),
        Some(("dt_reqline", 136))
    );
}

#[test]
fn httpd_d_declares_dthttpd_t_as_the_module_lays_it_out() {
    let text = include_str!("../httpd.d");
    let body = find_struct(text, true).expect("httpd.d declares `typedef struct ... } dthttpd_t;`");
    check_against_rust("httpd.d", &body);
    // Every member of httpd.d's declaration says its offset, truly.
    check_offset_comments("httpd.d", &raw_struct(text, true).unwrap(), 0);
    // 64-bit only: no data-model test, which non-global zones cannot evaluate.
    assert!(!strip_comments(text).contains("pr_dmodel"));
}

#[test]
fn every_bpftrace_struct_matches_the_module() {
    let scripts = bt_scripts();
    let mut checked = 0;
    for p in &scripts {
        let text = std::fs::read_to_string(p).unwrap();
        let uses_fields = strip_comments(&text).contains("->dt_");
        match find_struct(&text, false) {
            Some(body) => {
                check_against_rust(&rel(p), &body);
                // The fields appended after mod_usdt's layout say their offsets.
                check_offset_comments(&rel(p), &raw_struct(&text, false).unwrap(), APPENDED);
                checked += 1;
            }
            None => assert!(
                !uses_fields,
                "{} reads dt_ fields without declaring struct dthttpd_t",
                rel(p)
            ),
        }
    }
    // examples/ has bpftrace scripts that read the struct, and so does the test harness.
    assert!(
        checked >= 4,
        "only {checked} bpftrace struct declarations found in {scripts:?}"
    );
}

#[test]
fn the_parser_catches_a_wrong_declaration() {
    let good = find_struct(include_str!("../httpd.d"), true).unwrap();
    for (from, to) in [
        ("uint16_t\tdt_lport", "uint32_t\tdt_lport"),
        ("uint8_t\t\tdt_flags", "uint16_t\tdt_flags"),
        ("dt_client;", "dt_clnt;"),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{from:?} not found");
        let r = std::panic::catch_unwind(|| check_against_rust("mutated", &bad));
        assert!(r.is_err(), "a declaration with {to:?} passed");
    }
    // Swapping two members is caught too.
    let swapped = good
        .replacen("dt_method;", "dt_tmp;", 1)
        .replacen("dt_uri;", "dt_method;", 1)
        .replacen("dt_tmp;", "dt_uri;", 1);
    assert!(std::panic::catch_unwind(|| check_against_rust("swapped", &swapped)).is_err());
}

#[test]
fn a_wrong_or_missing_offset_comment_is_caught() {
    let text = include_str!("../httpd.d");
    let raw = raw_struct(text, true).unwrap();
    assert_eq!(offset_comments(&raw).len(), rust_layout().len());
    check_offset_comments("httpd.d", &raw, 0);
    let wrong = raw.replacen("/* 120:", "/* 112:", 1);
    assert_ne!(wrong, raw);
    assert!(std::panic::catch_unwind(|| check_offset_comments("wrong", &wrong, 0)).is_err());
    let missing = raw.replacen("/* 120:", "/* ", 1);
    assert!(std::panic::catch_unwind(|| check_offset_comments("missing", &missing, 0)).is_err());
}

#[test]
fn the_harness_flag_bits_are_the_contract_s() {
    // testkit keeps the one copy of the dt_flags bits that the integration tests, the
    // benchmark and the packaging tests read; it must say what the module writes.
    use crate::payload::{FLAG_NO_START, FLAG_REDIRECTED, FLAG_TLS};
    assert_eq!(testkit::FLAG_TLS, FLAG_TLS);
    assert_eq!(testkit::FLAG_REDIRECTED, FLAG_REDIRECTED);
    assert_eq!(testkit::FLAG_NO_START, FLAG_NO_START);
}
