//! The Debian package (issue 19): scripts/build-deb.sh builds it (from the test binary: a
//! release build takes minutes); `systemd-analyze verify` finds nothing wrong with its unit;
//! dpkg installs it on this machine, every file is where it belongs, `/usr/bin/elasticrds
//! --version` runs and the shipped config validates; `dpkg --purge` removes every file.
//! Needs root and Debian's dpkg and systemd-analyze, which the test command has: fails, never
//! skips, without them.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Purges the package when the test ends, whatever happened.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "elasticrds"])
            .output();
    }
}

const FILES: &[&str] = &[
    "/usr/bin/elasticrds",
    "/lib/systemd/system/elasticrds.service",
    "/etc/elasticrds/elasticrds.yaml.example",
    "/etc/elasticrds/environment",
    "/etc/elasticrds/policies/cpu-target.yaml.example",
    "/usr/share/man/man1/elasticrds.1.gz",
    "/usr/share/bash-completion/completions/elasticrds",
    "/usr/share/zsh/vendor-completions/_elasticrds",
    "/usr/share/fish/vendor_completions.d/elasticrds.fish",
    "/usr/share/doc/elasticrds/copyright",
];

#[test]
fn the_debian_package_builds_installs_verifies_and_removes_cleanly() {
    let uid = ok(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "installing a package needs root (the test command runs as root)"
    );
    let before = run(Command::new("dpkg").args(["-s", "elasticrds"]));
    assert!(
        !before.status.success(),
        "a package elasticrds is already installed on this machine: not touching it"
    );
    let root = support::repo_root();
    let out = tempfile::tempdir().unwrap();
    let deb = ok(Command::new("bash")
        .arg(root.join("scripts/build-deb.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_elasticrds"), "--out"])
        .arg(out.path()));
    let deb = deb.trim().to_string();
    assert!(Path::new(&deb).is_file(), "{deb}");
    let info = ok(Command::new("dpkg-deb").args(["--info", &deb]));
    for field in ["Package: elasticrds", "Section: admin", "Depends: libc6"] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    assert!(info.contains("conffiles"), "{info}");

    let _guard = Installed;
    ok(Command::new("dpkg").args(["-i", &deb]));
    for f in FILES {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }
    let version = ok(Command::new("/usr/bin/elasticrds").arg("--version"));
    assert!(
        version.starts_with(&format!(
            "elasticrds {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    let man = ok(Command::new("sh").args(["-c", "gzip -dc /usr/share/man/man1/elasticrds.1.gz"]));
    assert!(
        man.contains(".TH elasticrds 1"),
        "{}",
        &man[..man.len().min(300)]
    );
    assert!(man.contains("pause"), "the man page lists the commands");
    let bash = std::fs::read_to_string(FILES[6]).unwrap();
    assert!(
        bash.contains("create-cluster") && bash.contains("--dry-run"),
        "bash completions"
    );

    // The unit: hardened, reloads with SIGHUP, and systemd-analyze finds nothing wrong.
    let unit = std::fs::read_to_string(FILES[1]).unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=\n",
        "MemoryMax=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=-/etc/elasticrds/environment",
    ] {
        assert!(
            unit.contains(line),
            "{line:?} missing from the unit:\n{unit}"
        );
    }
    let verify = run(Command::new("systemd-analyze").args(["verify", FILES[1]]));
    let said = text(&verify);
    assert!(verify.status.success(), "systemd-analyze verify:\n{said}");
    assert!(
        !said.contains("elasticrds.service"),
        "systemd-analyze has something to say about the unit:\n{said}"
    );

    // The shipped examples are valid.
    let valid = run(Command::new("/usr/bin/elasticrds")
        .args([
            "--config",
            "/etc/elasticrds/elasticrds.yaml.example",
            "validate",
        ])
        .arg("/etc/elasticrds/policies/cpu-target.yaml.example"));
    assert!(valid.status.success(), "{}", text(&valid));

    ok(Command::new("dpkg").args(["--purge", "elasticrds"]));
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} left behind by dpkg --purge");
    }
    assert!(
        !Path::new("/etc/elasticrds").exists(),
        "/etc/elasticrds left behind"
    );
}
