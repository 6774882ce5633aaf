//! A deliberately small HTTP/1.1 client over `std::net::TcpStream`, so that tests see exactly
//! what the server sends (short bodies, closed connections, chunked watch streams).
#![allow(dead_code)] // reason: each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A reply, or what came of the connection.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was shorter than `Content-Length` (the connection closed early).
    pub short: bool,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    s
}

fn write_request(s: &mut TcpStream, method: &str, path: &str, content_type: &str, body: &[u8], extra: &[(&str, &str)]) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nUser-Agent: testclient/1.0\r\nContent-Length: {}\r\n", body.len());
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).unwrap_or_else(|e| panic!("write: {e}"));
}

fn read_head(r: &mut BufReader<TcpStream>) -> Option<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((status, headers))
}

fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..pos]).trim(), 16).unwrap_or(0);
        rest = &rest[pos + 2..];
        if size == 0 || rest.len() < size {
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    out
}

/// Sends a request and reads the whole reply; `None` when the connection closed without one.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Option<Reply> {
    let mut s = connect(addr);
    write_request(&mut s, method, path, content_type, body, extra);
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r)?;
    let mut raw = Vec::new();
    let _ = r.read_to_end(&mut raw);
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(&raw) } else { raw };
    let declared = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let short = declared.is_some_and(|n| body.len() < n);
    Some(Reply { status, headers, body, short })
}

pub fn request(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> Reply {
    try_request(addr, method, path, content_type, body, &[])
        .unwrap_or_else(|| panic!("{method} {path}: connection closed without a reply"))
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, "", b"")
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    request(addr, "POST", path, "application/json", body.to_string().as_bytes())
}

pub fn put(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    request(addr, "PUT", path, "application/json", body.to_string().as_bytes())
}

pub fn patch(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> Reply {
    request(addr, "PATCH", path, content_type, body.as_bytes())
}

pub fn delete(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "DELETE", path, "", b"")
}

/// A watch stream, read event by event.
pub struct Watch {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

impl Watch {
    pub fn open(addr: SocketAddr, path: &str) -> Watch {
        let mut s = connect(addr);
        write_request(&mut s, "GET", path, "", b"", &[]);
        let mut reader = BufReader::new(s);
        let (status, _) = read_head(&mut reader).unwrap_or_else(|| panic!("watch {path}: no reply"));
        Watch { reader, status }
    }

    /// The next event, or `None` at the end of the stream.
    pub fn next(&mut self) -> Option<Value> {
        loop {
            let mut size_line = String::new();
            if self.reader.read_line(&mut size_line).ok()? == 0 {
                return None;
            }
            let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0u8; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            chunk.truncate(size);
            let text = String::from_utf8_lossy(&chunk).trim().to_string();
            if !text.is_empty() {
                return serde_json::from_str(&text).ok();
            }
        }
    }

    /// Events until one of `kind` comes (returned), skipping others.
    pub fn until(&mut self, kind: &str) -> Value {
        loop {
            let e = self.next().unwrap_or_else(|| panic!("the watch ended before a {kind} event"));
            if e["type"] == kind {
                return e;
            }
        }
    }
}

/// A ConfigMap body.
pub fn configmap(ns: &str, name: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"k": name}})
}
