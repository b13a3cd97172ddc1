//! Reloading the cluster config and policy files while `run` runs. The edge (`cli/run.rs`)
//! hands the daemon a [`Loader`] (read and validate the whole set, build its routers) and a
//! stream of [`Trigger`]s: SIGHUP, and the file watcher here ([`watch_files`]), which checks the
//! files' contents every period and reports a change once it has held still for one period
//! (editors save by truncate-and-write or write-and-rename; half a save is never loaded).
//! The daemon applies a set only whole and only between ticks ([`super::daemon::Daemon`]);
//! [`ReloadSummary`] says what changed, for the log.

use super::daemon::ClusterEntry;
use crate::ports::Routers;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// A validated set of clusters, their policies and their traffic routers.
pub struct ConfigSet {
    pub entries: Vec<ClusterEntry>,
    pub routers: Routers,
}

/// Read, validate and build a whole [`ConfigSet`]; on bad input, every error found (each
/// naming its file, line and field).
pub type Loader = Box<dyn Fn() -> Result<ConfigSet, String> + Send + Sync>;

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    FileChange,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChange => "file change",
        }
    }
}

/// What a reload changed, by cluster name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same cluster, another policy (or policy file).
    pub policy_changed: Vec<String>,
    /// Same cluster name, another master or replica list.
    pub config_changed: Vec<String>,
}

impl ReloadSummary {
    pub fn of(old: &[ClusterEntry], new: &[ClusterEntry]) -> ReloadSummary {
        let find = |set: &[ClusterEntry], name: &str| -> Option<usize> {
            set.iter().position(|e| *e.spec.name == *name)
        };
        let mut s = ReloadSummary::default();
        for e in new {
            match find(old, &e.spec.name).map(|i| &old[i]) {
                None => s.added.push(e.spec.name.to_string()),
                Some(o) => {
                    if o.policy != e.policy || o.policy_source != e.policy_source {
                        s.policy_changed.push(e.spec.name.to_string());
                    }
                    if o.spec != e.spec {
                        s.config_changed.push(e.spec.name.to_string());
                    }
                }
            }
        }
        s.removed = (old.iter())
            .filter(|o| find(new, &o.spec.name).is_none())
            .map(|o| o.spec.name.to_string())
            .collect();
        s
    }

    pub fn is_empty(&self) -> bool {
        *self == ReloadSummary::default()
    }

    /// One line for the log: `added a; removed b; policy changed c` (or `nothing changed`).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("added", &self.added),
            (
                "removed (no longer managed; nothing deleted)",
                &self.removed,
            ),
            ("policy changed", &self.policy_changed),
            ("config changed", &self.config_changed),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(what, v)| format!("{what}: {}", v.join(", ")))
        .collect();
        if parts.is_empty() {
            "nothing changed".into()
        } else {
            parts.join("; ")
        }
    }
}

/// The files a running service reads: the config file, the policy directory (every entry's
/// name and content) and the default policy file.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
}

/// Files larger than this are hashed by their size and first bytes only (the loader refuses
/// them anyway, through the bounded reader).
const MAX_HASHED_BYTES: u64 = 4 * 1024 * 1024;

impl Watched {
    /// A hash of what the files hold now (absent and unreadable files hash as such).
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for f in &self.files {
            hash_file(&mut h, f);
        }
        for d in &self.dirs {
            d.hash(&mut h);
            let mut names: Vec<PathBuf> = match std::fs::read_dir(d) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            for n in names {
                hash_file(&mut h, &n);
            }
        }
        h.finish()
    }
}

fn hash_file(h: &mut DefaultHasher, path: &PathBuf) {
    use std::io::Read;
    path.hash(h);
    // Only regular files are read (a FIFO would block the watcher).
    let Ok(meta) = std::fs::metadata(path) else {
        "absent".hash(h);
        return;
    };
    if !meta.is_file() {
        "not a file".hash(h);
        return;
    }
    meta.len().hash(h);
    let mut buf = Vec::new();
    match std::fs::File::open(path).map(|f| f.take(MAX_HASHED_BYTES).read_to_end(&mut buf)) {
        Ok(Ok(_)) => buf.hash(h),
        _ => "unreadable".hash(h),
    }
}

/// Check `watched` every `period`; send [`Trigger::FileChange`] when its content differs from
/// what was last loaded and has held still for one period. Ends when the receiver is dropped.
/// `loaded` is the fingerprint taken before the first load, so that an edit made while the
/// service was starting is loaded at the first checks, not taken for the loaded set.
pub async fn watch_files(
    watched: Watched,
    loaded: u64,
    period: Duration,
    tx: mpsc::Sender<Trigger>,
) {
    let fingerprint = |w: &Watched| {
        let w = w.clone();
        async move {
            tokio::task::spawn_blocking(move || w.fingerprint())
                .await
                .unwrap_or_default()
        }
    };
    let mut loaded = loaded;
    let mut last_seen = fingerprint(&watched).await;
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    iv.tick().await;
    loop {
        iv.tick().await;
        let now = fingerprint(&watched).await;
        // Changed since the last load, and the same as one period ago: the save is complete.
        if now != loaded && now == last_seen {
            if tx.send(Trigger::FileChange).await.is_err() {
                return;
            }
            loaded = now;
        }
        last_seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_content_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        let pol = dir.path().join("policies");
        std::fs::create_dir(&pol).unwrap();
        std::fs::write(&cfg, "a").unwrap();
        let w = Watched {
            files: vec![cfg.clone()],
            dirs: vec![pol.clone()],
        };
        let f0 = w.fingerprint();
        assert_eq!(f0, w.fingerprint(), "stable while nothing changes");
        std::fs::write(&cfg, "b").unwrap();
        let f1 = w.fingerprint();
        assert_ne!(f0, f1);
        std::fs::write(pol.join("p.yaml"), "x").unwrap();
        let f2 = w.fingerprint();
        assert_ne!(f1, f2);
        std::fs::remove_file(&cfg).unwrap();
        assert_ne!(f2, w.fingerprint());
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_reported_once_after_it_held_still_for_a_period() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.yaml");
        std::fs::write(&cfg, "a").unwrap();
        let w = Watched {
            files: vec![cfg.clone()],
            dirs: vec![],
        };
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(watch_files(
            w.clone(),
            w.fingerprint(),
            Duration::from_secs(1),
            tx,
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(rx.try_recv().is_err(), "nothing changed yet");
        std::fs::write(&cfg, "b").unwrap();
        // Seen changed at the next check, still the same one period later: reported.
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(Trigger::FileChange));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(rx.try_recv().is_err(), "reported once");
        task.abort();
    }
}
