//! Crash at every step: `elasticrds run` is killed with SIGKILL at each point of a scale-out
//! (cluster ca 1 → 3 replicas: two creates) and of a scale-in (ca 3 → 1: two deletes) — before
//! the AWS call (the proxy holds the request, the process dies, the request never reaches
//! moto), right after it (moto acted, the answer is held and never delivered), between the two
//! actions, and while waiting (between ticks, after the state was written) — then started
//! again. Each time it must converge to the same fleet with zero duplicate creates, zero
//! instances outside the config touched, and the cooldown state recovered from the master's
//! tags (a restarted process reports the scale-in cooldown still running).
//!
//! Run by scripts/faults.sh (`cargo test --test crash -- --ignored`), which adds the outcomes
//! to the summary line.

mod faultkit;
mod support;

use faultkit::proxy::{Fault, Rule};
use faultkit::{
    fixed_policy, foreign_touches, lost, metric_sum, record, set, wait_until, Outcome, Rig,
};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Point {
    /// The first action's request is held before it reaches moto.
    BeforeCall,
    /// The first action reached moto; its answer is held.
    AfterCall,
    /// The first action completed; the second is held before it reaches moto.
    BetweenActions,
    /// Both actions and the state write are done; killed while sleeping until the next tick.
    WhileWaiting,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dir {
    /// ca 1 → 3: two creates.
    Out,
    /// ca 3 → 1: two deletes.
    In,
    /// ca 1 → 2: one create, so the killed call is the only action (nothing is left for the
    /// restarted process to do, and its cooldown can only come from what the first wrote).
    OutSingle,
}

fn expected(dir: Dir) -> BTreeSet<String> {
    let mut e = set(&["ca-m01", "ca-x01", "ca-s01", "cb-m01", "cb-s01", "cb-s02"]);
    match dir {
        Dir::Out => e.extend(["ca-s02".to_string(), "ca-s03".to_string()]),
        Dir::OutSingle => e.extend(["ca-s02".to_string()]),
        Dir::In => {}
    }
    e
}

fn crash_once(dir: Dir, point: Point) -> (Outcome, Vec<String>) {
    let name = format!("kill -9 {:?} {:?}", dir, point).to_lowercase();
    let rig = Rig::start();
    let (start, target, op) = match dir {
        Dir::Out => (1, 3, "CreateDBInstanceReadReplica"),
        Dir::In => (3, 1, "DeleteDBInstance"),
        Dir::OutSingle => (1, 2, "CreateDBInstanceReadReplica"),
    };
    // cb is already converged: only ca acts, so "the first action" is ca's.
    rig.seed(start, 2);
    rig.set_policy("ca", &fixed_policy("ca", target));
    rig.set_policy("cb", &fixed_policy("cb", 2));
    let mut problems = Vec::new();
    let before = rig.fleet();

    match point {
        Point::BeforeCall => rig
            .rds
            .add_rule(Rule::new(op, Fault::HoldBefore, 1).for_ids("ca-")),
        Point::AfterCall => rig
            .rds
            .add_rule(Rule::new(op, Fault::HoldAfter, 1).for_ids("ca-")),
        Point::BetweenActions => rig
            .rds
            .add_rule(Rule::new(op, Fault::HoldBefore, 1).for_ids("ca-").after(1)),
        Point::WhileWaiting => {}
    }
    let mut svc = rig.spawn("first", &[]);
    let reached = match point {
        Point::WhileWaiting => wait_until(Duration::from_secs(60), || {
            // Both actions done and the state written on the master.
            rig.rds.count(op) >= 2 && rig.rds.count("AddTagsToResource") >= 1
        }),
        _ => wait_until(Duration::from_secs(60), || rig.rds.held() >= 1),
    };
    if !reached {
        problems.push(format!(
            "the crash point was never reached:\n{}",
            svc.log_text()
        ));
    }
    if let Point::WhileWaiting = point {
        std::thread::sleep(Duration::from_millis(300));
    }
    svc.kill9();
    // The held request sees its caller gone: a HoldBefore request is dropped, never forwarded.
    if !wait_until(Duration::from_secs(10), || rig.rds.held() == 0) {
        problems.push("a held request outlived its caller".into());
    }
    let after_kill = rig.fleet();
    match point {
        Point::BeforeCall if after_kill != before => problems.push(format!(
            "a request from the killed process reached moto: {after_kill:?}"
        )),
        Point::AfterCall if after_kill == before => {
            problems.push("the held call did not reach moto".into())
        }
        _ => {}
    }
    rig.rds.clear_rules();

    // Restart: converges to the same fleet.
    let mut svc2 = rig.spawn("second", &[]);
    let want = expected(dir);
    let converged = wait_until(Duration::from_secs(60), || rig.fleet() == want);
    std::thread::sleep(Duration::from_secs(2));
    let fleet = rig.fleet();
    let lost_ids = lost(&fleet, &want);
    if !converged || !lost_ids.is_empty() {
        problems.push(format!(
            "not converged after restart: {fleet:?}, want {want:?}"
        ));
    }
    if svc2.stop().is_none_or(|s| !s.success()) {
        problems.push("the restarted service did not stop cleanly on SIGTERM".into());
    }

    // Cooldowns survive: a third process with a metric-driven policy and an hour of scale-in
    // cooldown reads the last scale time from the master's tags and reports the cooldown.
    rig.set_policy(
        "ca",
        "cluster: ca\nmin_replicas: 1\nmax_replicas: 4\nrules:\n  - metric: cpu\n    target: 60\nscale_in:\n  cooldown: 1h\n  stabilization: 0s\n",
    );
    let svc3 = rig.spawn("third", &[]);
    let mut cooldown = 0.0;
    wait_until(Duration::from_secs(30), || {
        cooldown = svc3
            .metrics()
            .map(|m| {
                metric_sum(
                    &m,
                    "elasticrds_cooldown_remaining_seconds",
                    &[("cluster", "ca"), ("direction", "in")],
                )
            })
            .unwrap_or(0.0);
        cooldown > 0.0
    });
    if cooldown < 3000.0 {
        let tags = rig.tags("ca-m01");
        problems.push(format!(
            "after the restart the scale-in cooldown is {cooldown}s (want about 1h): state not recovered from the master's tags {tags:?}\n{}",
            svc3.log_text()
        ));
    }
    drop(svc3);
    if rig.fleet() != want {
        problems.push("the third process changed the fleet inside the cooldown".into());
    }

    let foreign = foreign_touches(&rig.rds);
    if !foreign.is_empty() {
        problems.push(format!("touched outside the config: {foreign:?}"));
    }
    let duplicates = rig.rds.duplicates();
    if duplicates > 0 {
        problems.push(format!("{duplicates} duplicate creates"));
    }
    if !problems.is_empty() {
        problems.push(format!("--- first run ---\n{}", svc.log_text()));
        problems.push(format!("--- second run ---\n{}", svc2.log_text()));
    }
    let outcome = Outcome {
        test: "crash".into(),
        scenario: name,
        injected: 1,
        duplicates,
        lost: lost_ids.len(),
        foreign: foreign.len(),
        converged: converged && lost_ids.is_empty(),
    };
    (outcome, problems)
}

#[test]
#[ignore = "the crash test: run by scripts/faults.sh (cargo test --test crash -- --ignored)"]
fn kill_9_at_every_step_of_a_scale_out_and_a_scale_in() {
    let mut cases = Vec::new();
    for dir in [Dir::Out, Dir::In] {
        for point in [
            Point::BeforeCall,
            Point::AfterCall,
            Point::BetweenActions,
            Point::WhileWaiting,
        ] {
            cases.push((dir, point));
        }
    }
    cases.push((Dir::OutSingle, Point::AfterCall));
    // ELASTICRDS_FAULTS_ONLY=<substring> runs the matching cases only (for debugging).
    if let Ok(f) = std::env::var("ELASTICRDS_FAULTS_ONLY") {
        cases.retain(|(d, p)| format!("kill -9 {d:?} {p:?}").to_lowercase().contains(&f));
    }
    let width: usize = std::env::var("ELASTICRDS_FAULTS_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let queue = std::sync::Mutex::new(cases);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..width {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().pop();
                let Some((dir, point)) = next else { break };
                let (o, problems) = std::panic::catch_unwind(|| crash_once(dir, point))
                    .unwrap_or_else(|_| {
                        (
                            Outcome {
                                test: "crash".into(),
                                scenario: format!("{dir:?} {point:?}"),
                                ..Default::default()
                            },
                            vec!["panicked".into()],
                        )
                    });
                record(&o);
                eprintln!(
                    "[crash] {:<40} dup {}  lost {}  foreign {}  converged {}  {}",
                    o.scenario,
                    o.duplicates,
                    o.lost,
                    o.foreign,
                    o.converged,
                    if problems.is_empty() { "ok" } else { "FAILED" }
                );
                if !problems.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "== {} ==\n{}",
                        o.scenario,
                        problems.join("\n")
                    ));
                }
            });
        }
    });
    let f = failures.into_inner().unwrap();
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}
