//! Loopback ports for the test servers: a free one, waiting until one answers, and whether the
//! listener on it belongs to the process we started.
//!
//! A port probed free can be taken by another test's server before ours binds it; a plain
//! "does it answer" check then hands a test the wrong server (a CI run once sent RDS calls to a
//! neighbour's CloudWatch emulator). [`listener_owned_by`] closes that gap on Linux by matching
//! the listening socket's inode in `/proc/net/tcp{,6}` with the fds of the child and its
//! descendants.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Wait until 127.0.0.1:`port` accepts a TCP connection; `false` on timeout.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Whether the socket listening on `port` is held by process `pid` or one of its descendants.
pub fn listener_owned_by(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    process_tree(pid)
        .into_iter()
        .any(|p| holds_any_socket(p, &inodes))
}

/// Inodes of the sockets in state LISTEN on `port` (IPv4 and IPv6 tables).
fn listening_inodes(port: u16) -> BTreeSet<String> {
    let want = format!(":{port:04X}");
    let mut out = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            if cols.len() > 9 && cols[1].ends_with(&want) && cols[3] == "0A" {
                out.insert(cols[9].to_string());
            }
        }
    }
    out
}

/// `pid` and every process whose parent chain leads to it.
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, parent_of(p)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn holds_any_socket(pid: u32, inodes: &BTreeSet<String>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| {
                let t = t.to_str()?.to_string();
                let inode = t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string();
                Some(inodes.contains(&inode))
            })
            .unwrap_or(false)
    })
}
