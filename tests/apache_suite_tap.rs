//! The verdicts of Apache's test suite (tests/apache_suite.rs, root-only) rest on reading each
//! test file's TAP and comparing passes file by file; these checks of that reading need no
//! root, Apache or tracer, so they run in the rootless tier.

#[path = "apache_suite/tap.rs"]
mod tap;
use std::collections::BTreeMap;
use tap::*;

fn files(list: Vec<(&str, FileResult)>) -> BTreeMap<String, FileResult> {
    list.into_iter().map(|(f, r)| (f.to_string(), r)).collect()
}

#[test]
fn tap_results_and_differences_are_read_exactly() {
    let ok = parse_tap("1..3\n# comment\nok 1\nok 2 # skip no TLS 1.3\nok 3 - named\n");
    assert_eq!((ok.verdict(), ok.ran, ok.skipped), ("ok", 3, 1));
    let failed = parse_tap("1..4 todo 3;\nok 1\nnot ok 2\nnot ok 3\n    not ok 1\nok 4\n");
    assert_eq!(failed.verdict(), "failed");
    assert_eq!((failed.failed, failed.todo_failed), (vec![2], vec![3]));
    let short = parse_tap("1..5\nok 1\nok 2\n");
    assert_eq!(short.verdict(), "failed", "a file that stopped early");
    let skipped = parse_tap("1..0 # skipped: cannot find module 'mod_heartbeat'\n");
    assert_eq!(skipped.verdict(), "skipped");
    assert_eq!(
        skipped.to_string(),
        "skipped (cannot find module 'mod_heartbeat')"
    );
    let base = files(vec![("t/a.t", ok.clone()), ("t/b.t", skipped.clone())]);
    assert!(
        differences(
            &base,
            &files(vec![("t/a.t", ok.clone()), ("t/b.t", skipped)]),
            "loaded"
        )
        .is_empty()
    );
    let diff = differences(
        &base,
        &files(vec![("t/a.t", parse_tap("1..3\nok 1\nnot ok 2\nok 3\n"))]),
        "loaded",
    );
    assert_eq!(diff.len(), 2, "{diff:?}");
}
