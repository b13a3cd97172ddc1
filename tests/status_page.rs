//! The status page (issue 20) in a real browser: `elasticrds demo` serves it on loopback,
//! headless Chromium (Debian's package) loads it, its DOM is checked for the cluster, its
//! numbers, the chart and the decisions, a screenshot is taken, and tidy (Debian's HTML checker)
//! finds no error in it. Both programs are installed by the test command: without them this
//! test fails, it does not skip.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The page stays small: one cluster with a full chart is about 11 KB.
const MAX_PAGE_BYTES: usize = 64 * 1024;

fn chromium(args: &[&str], url: &str, profile: &std::path::Path) -> std::process::Output {
    let bin = support::find_bin("chromium").expect("chromium is installed by scripts/test.sh");
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null());
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_status_page_loads_in_a_browser_with_the_cluster_its_numbers_and_chart() {
    let port = support::free_port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _demo = Kill(
        support::elasticrds(None)
            .args([
                "demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--speed",
                "20ms",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the demo"),
    );
    // Wait until the page shows decisions (the demo has ticked for a while).
    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let r = support::get(("127.0.0.1", port), "/");
        if let Some(r) = r.as_ref().ok().filter(|r| r.body.contains("<li><time")) {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no decision on the page in 60 s: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let body = page.body.as_str();
    assert!(body.len() < MAX_PAGE_BYTES, "{} bytes", body.len());
    assert!(
        !body.contains("<script") && !body.contains("src=\"http"),
        "nothing fetched, no script"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let dom = chromium(&["--dump-dom"], &url, &dir.path().join("p1"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        "<h2>cluster1</h2>",
        "id=\"cluster-cluster1\"",
        "<td class=\"serving\">",
        "<td class=\"desired\">",
        "<polyline class=\"capacity\" points=\"0.0,",
        "<polyline class=\"load\" points=\"",
        "<a href=\"/metrics\">",
        "<ol class=\"decisions\">\n<li><time datetime=",
    ] {
        assert!(dom.contains(want), "{want} missing from the DOM:\n{dom}");
    }
    let load = dom
        .split("<polyline class=\"load\" points=\"")
        .nth(1)
        .unwrap_or("");
    assert!(
        load.starts_with(|c: char| c.is_ascii_digit()),
        "the load line has points"
    );
    let serving: usize = dom
        .split("<td class=\"serving\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .expect("a number of serving replicas");
    assert!((1..=4).contains(&serving), "{serving}");
    let shot = dir.path().join("status.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1200",
        ],
        &url,
        &dir.path().join("p2"),
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // HTML validity: tidy reports errors with exit code 2 (1 is warnings only).
    let html = dir.path().join("status.html");
    std::fs::write(&html, body).unwrap();
    let tidy =
        Command::new(support::find_bin("tidy").expect("tidy is installed by scripts/test.sh"))
            .args(["-q", "-e"])
            .arg(&html)
            .output()
            .expect("run tidy");
    assert!(
        tidy.status.code().is_some_and(|c| c < 2),
        "tidy found errors:\n{}",
        String::from_utf8_lossy(&tidy.stderr)
    );
}
