//! TLS: `dt_flags` bit 0 on requests over TLS ports, at request-start and request-done, and
//! never on the cleartext port.

use super::*;

/// TLS: `dt_flags` bit 0 at request-start and request-done of requests on a TLS port (HTTP/1.1
/// and HTTP/2 over TLS), of a TLS request Apache rejected while reading it (request-done
/// only: there was no request-start to learn it from), and never on the cleartext port.
#[test]
fn tls_requests_are_flagged_at_start_and_done() {
    tls_flag(Backend::Sdt);
}

#[test]
fn tls_requests_are_flagged_at_start_and_done_usdt_backend() {
    tls_flag(Backend::Usdt);
}

fn tls_flag(backend: Backend) {
    if !need_tracing(&format!("TLS flag ({})", backend.name())) {
        return;
    }
    let certs = scratch_dir("tls-cert");
    let cert = certs.join("cert.pem");
    let key = certs.join("key.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(st.success(), "openssl could not make a test certificate");
    chmod(&certs, 0o755).unwrap();
    chmod(&key, 0o644).unwrap();
    let tls_port = free_port().unwrap();
    let h2 = module_has_http2();
    let mut extra = format!(
        "LoadModule ssl_module {MODULES}/mod_ssl.so\n\
         Listen 127.0.0.1:{tls_port} https\n\
         <VirtualHost 127.0.0.1:{tls_port}>\n  SSLEngine on\n  SSLCertificateFile {}\n  \
         SSLCertificateKeyFile {}\n</VirtualHost>\n",
        cert.display(),
        key.display()
    );
    if h2 {
        extra.push_str(&format!(
            "LoadModule http2_module {MODULES}/mod_http2.so\nProtocols h2 http/1.1\n"
        ));
    }
    let mut opts = ApacheOpts::new(Mpm::Event);
    opts.backend = backend;
    opts.h2c = false; // cleartext h2c is not what this test is about
    opts.extra = extra;
    let mut a = Apache::start(opts);
    let t = Tracer::start(TRACE_ALL, &a.module);
    let url = |path: &str| format!("https://127.0.0.1:{tls_port}{path}");
    let get = |args: &[&str]| {
        let mut all = vec![
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ];
        all.extend_from_slice(args);
        curl(&all)
    };
    let (_, st, _) = request(a.addr(), "GET", "/page.html?plain", &[("User-Agent", UA)]);
    assert_eq!(st, 200);
    assert_eq!(
        get(&["--http1.1", "-A", UA, &url("/page.html?tls")]),
        "1.1 200"
    );
    let big = format!("X-Big: {}", "b".repeat(10_000));
    assert_eq!(
        get(&["--http1.1", "-H", &big, &url("/page.html?big")]),
        "1.1 400"
    );
    if h2 {
        assert_eq!(
            get(&["--http2", "-A", UA, &url("/page.html?tls-h2")]),
            "2 200"
        );
    }
    let lines = if h2 { 4 } else { 3 };
    let log = a.wait_access_lines(lines);
    let out = t.stop();
    let events = parse_events(&out);
    a.stop();
    assert_eq!(log.len(), lines, "access log: {log:#?}");

    for e in [
        one(&events, true, "/page.html?plain"),
        one(&events, false, "/page.html?plain"),
    ] {
        assert_eq!((e.flags & FLAG_TLS, e.lport), (0, a.port), "{e:#?}");
    }
    let mut tls_uris = vec!["/page.html?tls"];
    if h2 {
        tls_uris.push("/page.html?tls-h2");
    }
    for uri in tls_uris {
        let s = one(&events, true, uri);
        let d = one(&events, false, uri);
        assert_eq!(s.id, d.id);
        for e in [s, d] {
            assert_eq!((e.flags, e.lport), (FLAG_TLS, tls_port), "{e:#?}");
        }
        assert_eq!(d.arg4, 200);
    }
    let rejected: Vec<&Event> = events
        .iter()
        .filter(|e| e.flags & FLAG_NO_START != 0)
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(
        (rejected[0].flags, rejected[0].arg4, rejected[0].lport),
        (FLAG_NO_START | FLAG_TLS, 400, tls_port),
        "{:#?}",
        rejected[0]
    );
    assert!(a.crash_lines().is_empty(), "{}", a.error_log());
    let _ = std::fs::remove_dir_all(&certs);
}
