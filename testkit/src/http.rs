//! HTTP clients of the tests: raw bytes on a socket, keep-alive load, one response read by
//! its Content-Length, curl for HTTP/2 cleartext.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use crate::site::MODULES;
use std::process::Command;
use std::thread;
use std::time::Duration;

/// Sends raw bytes on a new connection, half-closes, and returns all the server sent.
/// Returns the client's local port as well.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let port = s.local_addr().unwrap().port();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (port, buf)
}

/// Sends raw bytes without half-closing, reads until the server closes.
pub fn raw_exchange_keep_open(addr: SocketAddr, bytes: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let port = s.local_addr().unwrap().port();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (port, buf)
}

/// The status codes of every HTTP/1.x response in `buf`.
pub fn statuses(buf: &[u8]) -> Vec<i32> {
    let text = String::from_utf8_lossy(buf);
    let mut v = Vec::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("HTTP/1.") {
        let tail = &rest[i..];
        if let Some(code) = tail.get(9..12).and_then(|c| c.parse().ok()) {
            v.push(code);
        }
        rest = &tail[8..];
    }
    v
}

/// A simple `GET`/`HEAD` with `Connection: close`; returns (client port, status, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, i32, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let (port, buf) = raw_exchange_keep_open(addr, req.as_bytes());
    let status = statuses(&buf).first().copied().unwrap_or(0);
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| buf[i + 4..].to_vec())
        .unwrap_or_default();
    (port, status, body)
}

/// Runs GETs of `path` from `conns` threads at once, each sending `per_conn` requests over
/// keep-alive connections. Like any load generator it reconnects when the server closes an
/// idle keep-alive connection (the event MPM does that when all its workers are busy).
/// Returns how many requests got a complete response; failures are reported on stderr.
pub fn load(addr: SocketAddr, path: &str, conns: usize, per_conn: usize) -> usize {
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let path = path.to_string();
            thread::spawn(move || {
                let mut ok = 0;
                let mut reconnects = 0;
                'conn: while ok < per_conn && reconnects <= 20 {
                    let Ok(s) = TcpStream::connect(addr) else {
                        reconnects += 1;
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while ok < per_conn {
                        let close = if ok + 1 == per_conn {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n");
                        if w.write_all(req.as_bytes()).is_err()
                            || read_one_response(&mut r).is_none()
                        {
                            reconnects += 1;
                            continue 'conn;
                        }
                        ok += 1;
                    }
                }
                if ok < per_conn {
                    eprintln!("load: gave up after {ok} of {per_conn} responses");
                }
                ok
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
pub fn read_one_response(r: &mut impl BufRead) -> Option<i32> {
    read_response(r, true).ok().map(i32::from)
}

/// Reads one HTTP/1.x response: its status line, its headers and, when `has_body` (not the
/// answer to a HEAD), its Content-Length body; returns its status.
pub fn read_response(r: &mut impl BufRead, has_body: bool) -> Result<u16, String> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Err("connection closed".into());
    }
    let status: u16 = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed in headers".into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| format!("bad length {v:?}"))?;
            }
        }
    }
    if has_body {
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(status)
}

/// Runs curl (for HTTP/2 cleartext with prior knowledge); returns stdout.
pub fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/2 cleartext request (`curl --http2-prior-knowledge`, with `extra` arguments such as
/// headers) to `url`; what curl reports as `%{http_version} %{http_code}` (`"2 200"`).
pub fn h2c_request(url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "--http2-prior-knowledge",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args)
}

pub fn module_has_http2() -> bool {
    Path::new(MODULES).join("mod_http2.so").exists()
}
