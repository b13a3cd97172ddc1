//! Where a cluster lives: its AWS region and the IAM role assumed to reach its account, as
//! written per cluster in the config (`region`, `role_arn`, `external_id`, `session_name`; the
//! old JSON format takes the same keys), checked with located errors. A cluster without them is
//! reached with the default credential chain and region, as before. Pure: the adapters turn a
//! [`Target`] into SDK clients (`adapters::aws::Targets`).

use serde::Serialize;

/// The AWS region and role of a cluster; the default (none) is the service's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// An IAM role to assume (STS AssumeRole) for a cluster's calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Role {
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The role session's name (default `elasticrds`), seen in the target account's CloudTrail.
    pub session_name: String,
}

impl Target {
    pub fn is_default(&self) -> bool {
        *self == Target::default()
    }

    /// The account of the role, when there is one (`arn:aws:iam::<account>:role/...`).
    pub fn account(&self) -> Option<&str> {
        let arn = &self.role.as_ref()?.arn;
        arn.split(':').nth(4)
    }

    /// A short label for logs: `eu-west-1 as arn:aws:iam::...:role/x`.
    pub fn label(&self) -> String {
        let region = self.region.as_deref().unwrap_or("default region");
        match &self.role {
            Some(r) => format!("{region} as {}", r.arn),
            None => format!("{region}, default credentials"),
        }
    }
}

/// The keys as written; `field(name)` names the key in errors.
pub(crate) struct RawTarget<'a> {
    pub region: Option<&'a str>,
    pub role_arn: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub session_name: Option<&'a str>,
}

/// Check the keys; each problem as (key, message, value).
pub(crate) fn check(raw: &RawTarget<'_>) -> (Target, Vec<(&'static str, String, String)>) {
    let mut errors = Vec::new();
    if let Some(r) = raw.region.filter(|r| !is_region(r)) {
        errors.push((
            "region",
            format!("{r:?} is not an AWS region (e.g. eu-west-1)"),
            r.into(),
        ));
    }
    if let Some(a) = raw.role_arn.filter(|a| !is_role_arn(a)) {
        let msg =
            format!("{a:?} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)");
        errors.push(("role_arn", msg, a.into()));
    }
    if let Some(e) = raw.external_id.filter(|e| !is_external_id(e)) {
        let msg = "2 to 1224 characters: letters, digits and +=,.@:/-".to_string();
        errors.push(("external_id", msg, e.into()));
    }
    if let Some(s) = raw.session_name.filter(|s| !is_session_name(s)) {
        let msg = format!("{s:?}: 2 to 64 characters: letters, digits and +=,.@-");
        errors.push(("session_name", msg, s.into()));
    }
    if raw.role_arn.is_none() {
        for (key, v) in [
            ("external_id", raw.external_id),
            ("session_name", raw.session_name),
        ] {
            if let Some(v) = v {
                errors.push((key, "needs role_arn".to_string(), v.into()));
            }
        }
    }
    let role = raw.role_arn.map(|arn| Role {
        arn: arn.to_string(),
        external_id: raw.external_id.map(str::to_string),
        session_name: raw.session_name.unwrap_or("elasticrds").to_string(),
    });
    let target = Target {
        region: raw.region.map(str::to_string),
        role,
    };
    (target, errors)
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_role_arn(a: &str) -> bool {
    let parts: Vec<&str> = a.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty())
}

fn is_external_id(e: &str) -> bool {
    (2..=1224).contains(&e.len())
        && e.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-".contains(c))
}

fn is_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_a_role_gets_a_session_name() {
        let ok = RawTarget {
            region: Some("eu-west-1"),
            role_arn: Some("arn:aws:iam::111122223333:role/elasticrds"),
            external_id: Some("ops-42"),
            session_name: None,
        };
        let (t, e) = check(&ok);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(t.account(), Some("111122223333"));
        assert_eq!(t.role.unwrap().session_name, "elasticrds");
        let bad = RawTarget {
            region: Some("Europe"),
            role_arn: Some("arn:aws:iam::1:user/x"),
            external_id: Some("x"),
            session_name: Some("a b"),
        };
        let keys: Vec<&str> = check(&bad).1.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, ["region", "role_arn", "external_id", "session_name"]);
        let orphan = RawTarget {
            region: None,
            role_arn: None,
            external_id: Some("abc"),
            session_name: None,
        };
        assert_eq!(check(&orphan).1[0].1, "needs role_arn");
        assert!(check(&RawTarget {
            region: None,
            role_arn: None,
            external_id: None,
            session_name: None
        })
        .0
        .is_default());
    }

    #[test]
    fn the_config_takes_the_keys_in_yaml_and_json_with_located_errors() {
        let y = "c1:\n  master_node: {identifier: s, instance_id: m1, instance_class: db.t3.micro}\n  region: eu-west-1\n  role_arn: arn:aws:iam::1:role/x\n";
        let e = crate::core::config::Config::parse("c.yaml", y)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:4:13: c1.role_arn:"), "{e}");
        let j = r#"{"c1": {"master_node": {"identifier": "s", "instance_id": "m1", "instance_class": "db.t3.micro"},
            "region": "eu-west-1", "role_arn": "arn:aws:iam::222222222222:role/x"}}"#;
        let c = crate::core::config::Config::parse("c.json", j).unwrap();
        assert_eq!(c.clusters["c1"].target.account(), Some("222222222222"));
        assert_eq!(c.clusters["c1"].target.region.as_deref(), Some("eu-west-1"));
    }
}
