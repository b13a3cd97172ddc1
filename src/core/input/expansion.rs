//! What a YAML document holds once its aliases are expanded: `*name` repeats the value
//! anchored as `&name`, so a file of a few megabytes can stand for gigabytes ("billion laughs",
//! or one long anchored string repeated). [`check`] walks the document as the parser expands it,
//! counting values and scalar bytes without keeping any, and refuses it past
//! [`MAX_EXPANDED_VALUES`] or [`MAX_EXPANDED_BYTES`] before anything is built from it.

use super::{InputError, MAX_EXPANDED_BYTES, MAX_EXPANDED_VALUES};
use serde::de::{DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use std::fmt;

/// The words of the refusal (also how [`check`] tells it from the parser's own errors, which
/// the real parse reports with their field).
const TOO_LARGE: &str = "the document is too large once its YAML aliases are expanded";

/// Refuse `text` when its expansion exceeds the limits; any other problem is left to the
/// parse that follows (which reports it with its field).
pub fn check(file: &str, text: &str) -> Result<(), InputError> {
    let mut walk = Walk::default();
    let de = serde_yaml::Deserializer::from_str(text);
    match (&mut walk).deserialize(de) {
        Err(e) if e.to_string().contains(TOO_LARGE) => {
            let pos = e.location().map(|l| (l.line(), l.column()));
            Err(InputError::new(
                file,
                "",
                format!(
                    "{TOO_LARGE} (more than {MAX_EXPANDED_VALUES} values or {MAX_EXPANDED_BYTES} bytes of text)"
                ),
            )
            .at(pos))
        }
        _ => Ok(()),
    }
}

/// Values and scalar bytes seen so far.
#[derive(Default)]
struct Walk {
    values: usize,
    bytes: usize,
}

impl Walk {
    fn count<E: serde::de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        self.values += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.values > MAX_EXPANDED_VALUES || self.bytes > MAX_EXPANDED_BYTES {
            return Err(E::custom(TOO_LARGE));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for &mut Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Walk {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.count(1)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.count(v.len())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.count(0)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.count(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.count(0)?;
        while seq.next_element_seed(&mut *self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.count(0)?;
        while map.next_key_seed(&mut *self)?.is_some() {
            map.next_value_seed(&mut *self)?;
        }
        Ok(())
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): its value counts like any other.
        self.count(0)?;
        let ((), variant) = data.variant_seed(&mut *self)?;
        variant.newtype_variant_seed(&mut *self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_that_expand_too_far_are_refused_and_ordinary_ones_pass() {
        // One anchored string of 64 KiB repeated 300 times: 19 MiB once expanded.
        let big = "x".repeat(64 * 1024);
        let mut bomb = format!("a: [&s \"{big}\"");
        bomb.push_str(&", *s".repeat(300));
        bomb.push_str("]\n");
        let e = check("p.yaml", &bomb).unwrap_err();
        assert!(e.message.starts_with(TOO_LARGE), "{e}");
        assert_eq!(e.file, "p.yaml");
        assert!(e.line.is_some(), "located: {e}");
        // Nested aliases ("billion laughs"): 10 levels of 10.
        let mut laughs =
            String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            laughs.push_str(&format!(
                "l{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
            ));
        }
        // (serde_yaml's own repetition limit refuses this one, in the parse.)
        let e = super::super::parse_document::<serde_yaml::Value>(
            "b.yaml",
            &laughs,
            super::super::Syntax::Yaml,
        )
        .unwrap_err();
        assert_eq!(e.file, "b.yaml");
        // An anchor reused a few times, and a document that is broken in another way: fine
        // here (the parse reports the latter with its field).
        let ok = "t: &t {class: db.r6g.large, tags: {a: b}}\nx: *t\ny: *t\n";
        assert!(check("ok.yaml", ok).is_ok());
        assert!(check("broken.yaml", "a: [1, 2\n").is_ok());
        assert!(check("tagged.yaml", "a: !Thing {b: 1}\nc: !Other 2\n").is_ok());
    }
}
