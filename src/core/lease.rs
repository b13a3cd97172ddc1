//! Several copies of the service sharing the clusters: one lease per cluster in a shared table
//! (DynamoDB, `adapters::dynamodb`), taken and renewed with conditional writes. This module owns
//! the rules, pure: what a copy does in one round ([`plan_round`]) given the table as read, and
//! when a lease may be acted on or taken over.
//!
//! - **Fair share**: each copy holds up to ceil(clusters / live copies) leases; the live copies
//!   are those whose heartbeat (a `copy` record renewed every round) has not expired. A copy over
//!   its share releases the extra leases; one under it takes free or expired ones.
//! - **Clock skew**: a copy acts on a cluster only until `expires - skew` by its own clock, and
//!   another copy takes the lease over only after `expires + skew` by its clock; so as long as
//!   two clocks differ by less than `skew`, two copies never act on one cluster at once.
//! - **Fencing**: each take-over increments the lease's counter; the owner writes it on the
//!   master (`elasticrds:lease`), and a copy that finds a higher counter there stops acting (its
//!   lease was taken over while it was stalled).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// A lease, or a copy's heartbeat, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// The cluster name (a lease) or the copy id (a heartbeat).
    pub key: String,
    pub owner: String,
    pub expires: DateTime<Utc>,
    /// Take-overs so far: the fencing token.
    pub counter: u64,
}

/// The timings of the leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub duration: Duration,
    pub skew: Duration,
}

impl LeaseTimes {
    /// Whether `r`, held by `me`, may be acted on at `now`.
    pub fn holds(&self, r: &LeaseRecord, me: &str, now: DateTime<Utc>) -> bool {
        r.owner == me && now < r.expires - self.skew
    }
    /// Whether `r` may be taken by another copy at `now` (free, released or expired).
    pub fn free(&self, r: &LeaseRecord, now: DateTime<Utc>) -> bool {
        r.owner.is_empty() || now > r.expires + self.skew
    }
}

/// What a copy does in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundPlan {
    /// Leases held: renewed.
    pub renew: Vec<LeaseRecord>,
    /// Free leases to take: the record as read (`None`: never written).
    pub acquire: Vec<(String, Option<LeaseRecord>)>,
    /// Leases over the fair share: released.
    pub release: Vec<LeaseRecord>,
    /// The fair share used.
    pub share: usize,
}

/// The round of copy `me` over `clusters` (in config order), the leases and heartbeats read.
pub fn plan_round(
    clusters: &[String],
    leases: &[LeaseRecord],
    heartbeats: &[LeaseRecord],
    me: &str,
    times: LeaseTimes,
    now: DateTime<Utc>,
) -> RoundPlan {
    let mut live: Vec<&str> = (heartbeats.iter())
        .filter(|h| now < h.expires + times.skew)
        .map(|h| h.key.as_str())
        .collect();
    if !live.contains(&me) {
        live.push(me);
    }
    let share = clusters.len().div_ceil(live.len().max(1));
    let lease = |c: &str| leases.iter().find(|l| l.key == c);
    let mine: Vec<&LeaseRecord> = (clusters.iter())
        .filter_map(|c| lease(c))
        .filter(|l| l.owner == me && now < l.expires)
        .collect();
    let mut plan = RoundPlan {
        share,
        ..RoundPlan::default()
    };
    // Over the share: release from the end of the config, keep the rest.
    let keep = mine.len().min(share);
    plan.renew = mine[..keep].iter().map(|l| (*l).clone()).collect();
    plan.release = mine[keep..].iter().map(|l| (*l).clone()).collect();
    let mut room = share - keep;
    for c in clusters {
        if room == 0 {
            break;
        }
        match lease(c) {
            None => plan.acquire.push((c.clone(), None)),
            Some(l) if l.owner != me && times.free(l, now) => {
                plan.acquire.push((c.clone(), Some(l.clone())))
            }
            Some(l) if l.owner == me && now >= l.expires => {
                plan.acquire.push((c.clone(), Some(l.clone())))
            }
            _ => continue,
        }
        room -= 1;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }
    fn rec(key: &str, owner: &str, expires: i64, counter: u64) -> LeaseRecord {
        LeaseRecord {
            key: key.into(),
            owner: owner.into(),
            expires: t(expires),
            counter,
        }
    }
    const TIMES: LeaseTimes = LeaseTimes {
        duration: Duration::seconds(30),
        skew: Duration::seconds(2),
    };

    #[test]
    fn a_lone_copy_takes_all_and_a_second_one_gets_half() {
        let clusters: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let p = plan_round(&clusters, &[], &[], "a", TIMES, t(0));
        assert_eq!(p.acquire.len(), 4);
        let held: Vec<LeaseRecord> = clusters.iter().map(|c| rec(c, "a", 30, 1)).collect();
        let beats = [rec("a", "a", 30, 0), rec("b", "b", 30, 0)];
        let p = plan_round(&clusters, &held, &beats, "a", TIMES, t(10));
        assert_eq!((p.share, p.renew.len(), p.release.len()), (2, 2, 2));
        assert_eq!(p.release[0].key, "c2", "released from the end");
        // b takes nothing while a holds everything, then the released ones.
        let p = plan_round(&clusters, &held, &beats, "b", TIMES, t(10));
        assert!(p.acquire.is_empty());
        let mut after = held.clone();
        after[2].owner.clear();
        after[3].owner.clear();
        let p = plan_round(&clusters, &after, &beats, "b", TIMES, t(11));
        let taken: Vec<&str> = p.acquire.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(taken, ["c2", "c3"]);
    }

    #[test]
    fn an_expired_lease_moves_only_after_the_skew_allowance() {
        let clusters = vec!["c0".to_string()];
        let held = [rec("c0", "dead", 30, 4)];
        let beats = [rec("b", "b", 60, 0)];
        assert!(plan_round(&clusters, &held, &beats, "b", TIMES, t(31))
            .acquire
            .is_empty());
        let p = plan_round(&clusters, &held, &beats, "b", TIMES, t(33));
        assert_eq!(p.acquire[0].1.as_ref().unwrap().counter, 4);
        // The owner stops acting before the lease can be taken.
        assert!(TIMES.holds(&held[0], "dead", t(27)));
        assert!(!TIMES.holds(&held[0], "dead", t(28)));
    }
}
