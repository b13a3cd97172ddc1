//! Names of instances and classes: [`InstanceId`] (RDS's naming rules; identity is the
//! lower-case spelling, the given spelling kept for display) and [`InstanceClass`], both over a
//! shared text that a copy only counts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Why an identifier was rejected (RDS rules: 1–63 letters, digits or hyphens, starting with a
/// letter, no trailing hyphen, no two consecutive hyphens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    /// The identifier's first 63 characters (an id of any length is never echoed whole) and
    /// its length.
    #[error("identifier starting {start:?} is longer than 63 characters ({chars})")]
    TooLong { start: String, chars: usize },
    #[error("identifier {0:?} must start with a letter")]
    BadStart(String),
    #[error("identifier {0:?} may contain only ASCII letters, digits and hyphens")]
    BadChar(String),
    #[error("identifier {0:?} must not end with a hyphen")]
    TrailingHyphen(String),
    #[error("identifier {0:?} must not contain two consecutive hyphens")]
    DoubleHyphen(String),
}

/// The text of an identifier or class, shared: identifiers are copied many times per tick
/// and a copy is a reference count, not a string. Compares, orders, hashes and prints as the
/// `str` it holds.
#[derive(Clone)]
struct SharedStr(Arc<str>);

impl SharedStr {
    fn new(s: &str) -> SharedStr {
        SharedStr(s.into())
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    #[inline]
    fn as_str(&self) -> &str {
        &self.0
    }

    /// Copies of one text.
    #[inline]
    fn same_text(&self, other: &SharedStr) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for SharedStr {
    #[inline]
    fn eq(&self, other: &SharedStr) -> bool {
        self.same_text(other) || self.as_bytes() == other.as_bytes()
    }
}
impl Eq for SharedStr {}
impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &SharedStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SharedStr {
    /// As `str` orders: by bytes.
    fn cmp(&self, other: &SharedStr) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}
impl std::hash::Hash for SharedStr {
    /// As `str` hashes.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}
impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A DB instance identifier that satisfies the RDS naming rules. RDS compares identifiers
/// case-insensitively and stores them in lower case, so an `InstanceId`'s identity is its
/// lower-case spelling: it compares, orders and hashes by that, while it keeps (and prints)
/// the spelling it was given.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId {
    /// The lower-case spelling: the identity.
    key: SharedStr,
    /// The spelling given, when it is not already the lower-case one.
    spelled: Option<SharedStr>,
}

impl PartialEq for InstanceId {
    fn eq(&self, other: &InstanceId) -> bool {
        self.key == other.key
    }
}
impl Eq for InstanceId {}
impl PartialOrd for InstanceId {
    fn partial_cmp(&self, other: &InstanceId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InstanceId {
    fn cmp(&self, other: &InstanceId) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}
impl std::hash::Hash for InstanceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}
impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({:?})", self.as_str())
    }
}

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        let chars = s.chars().count();
        if chars > 63 {
            let start = s.chars().take(63).collect();
            return Err(IdError::TooLong { start, chars });
        }
        if !s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(IdError::BadStart(s.to_string()));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(IdError::BadChar(s.to_string()));
        }
        if s.ends_with('-') {
            return Err(IdError::TrailingHyphen(s.to_string()));
        }
        if s.contains("--") {
            return Err(IdError::DoubleHyphen(s.to_string()));
        }
        Ok(InstanceId::new(s))
    }

    /// An identifier as AWS reported it; not re-validated (AWS is the authority on what exists).
    pub fn from_aws(s: &str) -> Self {
        InstanceId::new(s)
    }

    fn new(s: &str) -> Self {
        let lower = s.to_ascii_lowercase();
        if lower == s {
            InstanceId {
                key: SharedStr::new(s),
                spelled: None,
            }
        } else {
            InstanceId {
                key: SharedStr::new(&lower),
                spelled: Some(SharedStr::new(s)),
            }
        }
    }

    /// The spelling it was given.
    pub fn as_str(&self) -> &str {
        self.spelled.as_ref().unwrap_or(&self.key).as_str()
    }
}

impl TryFrom<String> for InstanceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        InstanceId::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.as_str().to_owned()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DB instance class such as `db.m5.large`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceClass(SharedStr);

/// Longest instance class accepted (real ones are under 30 characters).
pub const MAX_CLASS_LEN: usize = 64;

/// `db.<family>.<size>`, or RDS for Oracle's preconfigured `db.<family>.<size>.tpc<N>.mem<N>x`;
/// family and size are lower-case letters, digits and `-`.
fn is_class_shape(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    };
    let number = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    match s.split('.').collect::<Vec<_>>().as_slice() {
        ["db", family, size] => part(family) && part(size),
        ["db", family, size, tpc, mem] => {
            part(family)
                && part(size)
                && tpc.strip_prefix("tpc").is_some_and(number)
                && mem
                    .strip_prefix("mem")
                    .and_then(|m| m.strip_suffix('x'))
                    .is_some_and(number)
        }
        _ => false,
    }
}

impl InstanceClass {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_CLASS_LEN {
            return Err(format!(
                "instance class of {} characters: the limit is {MAX_CLASS_LEN}",
                s.len()
            ));
        }
        if is_class_shape(s) {
            Ok(InstanceClass(SharedStr::new(s)))
        } else {
            Err(format!(
                "instance class {s:?} is not of the form db.<family>.<size> (lower case, e.g. db.r6g.large)"
            ))
        }
    }
    pub fn from_aws(s: &str) -> Self {
        InstanceClass(SharedStr::new(s))
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for InstanceClass {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        InstanceClass::parse(&s)
    }
}
impl From<InstanceClass> for String {
    fn from(c: InstanceClass) -> String {
        c.0.as_str().to_owned()
    }
}
impl fmt::Display for InstanceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}
