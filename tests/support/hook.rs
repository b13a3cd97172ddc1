//! [`Hook`]: a local HTTP sink on 127.0.0.1 (a webhook's receiver) that records each request's
//! headers and body and answers 200, a chosen status, or slowly ([`HookMode`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the hook answers.
#[derive(Clone, Copy)]
pub enum HookMode {
    Ok,
    Status(u16),
    Slow(Duration),
}

/// One request the hook received: its headers (lower-cased names) and body.
#[derive(Debug, Clone)]
pub struct Got {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A local HTTP sink on 127.0.0.1.
pub struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Hook {
    pub fn start(mode: HookMode) -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || answer(s, mode, &g));
            }
        });
        Hook { port, got }
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

fn answer(s: std::net::TcpStream, mode: HookMode, got: &Mutex<Vec<Got>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut headers = Vec::new();
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = (headers.iter())
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    let _ = r.read_exact(&mut body);
    got.lock().unwrap().push(Got {
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    });
    let code = match mode {
        HookMode::Ok => 200,
        HookMode::Status(c) => c,
        HookMode::Slow(d) => {
            std::thread::sleep(d);
            200
        }
    };
    let mut s = s;
    let _ = write!(
        s,
        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
