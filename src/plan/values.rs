//! Values in the scenario file: strings with `${VAR}` expanded, setting
//! values of any YAML scalar type, sizes and rates in Postgres's units.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A string in which `${VAR}` was replaced by the environment variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvString(pub String);

impl EnvString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand_env(&raw, |name| std::env::var(name).ok()).map(EnvString).map_err(de::Error::custom)
    }
}

/// Replaces every `${NAME}` in `raw` with `lookup(NAME)`; `$$` stands for a literal `$`.
pub fn expand_env(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{raw}`: write `${{NAME}}`, or `$$` for a literal `$`"))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid environment variable reference"));
            }
            let value = lookup(name).ok_or_else(|| {
                format!("environment variable {name} is not set (referenced as ${{{name}}}); export it before running rehearse")
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A setting value: YAML scalars of any type, kept as the text Postgres parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingValue(pub String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = SettingValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a setting value such as 1GB, 200, on or 'off'")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SettingValue, E> {
                expand_env(v, |n| std::env::var(n).ok()).map(SettingValue).map_err(E::custom)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SettingValue, E> {
                Ok(SettingValue(if v { "on" } else { "off" }.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SettingValue, E> {
                Ok(SettingValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A size such as `512MB` or `2GB`. Units are Postgres's: 1kB = 1024 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid size `{text}`: expected a number and a unit, like 512MB or 2GB"))?;
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "kib" | "k" => 1 << 10,
            "mb" | "mib" | "m" => 1 << 20,
            "gb" | "gib" | "g" => 1 << 30,
            "tb" | "tib" | "t" => 1 << 40,
            _ => return Err(format!("invalid size `{text}`: unknown unit `{unit}`; use B, kB, MB, GB or TB")),
        };
        Ok(ByteSize((value * factor as f64).round() as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512MB or 2GB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A rate in bytes per second: a size, optionally followed by `/s` (`50MB/s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRate(pub u64);

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = ByteRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rate such as 50MB/s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteRate, E> {
                let size = v.trim().strip_suffix("/s").unwrap_or(v);
                match ByteSize::parse(size) {
                    Ok(ByteSize(0)) => Err(E::custom("a rate must be more than 0 bytes per second")),
                    Ok(b) => Ok(ByteRate(b.0)),
                    Err(e) => Err(E::custom(e)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteRate, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteRate, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(RateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_postgres_units() {
        assert_eq!(ByteSize::parse("512MB").unwrap().0, 512 << 20);
        assert_eq!(ByteSize::parse("2GB").unwrap().0, 2 << 30);
        assert_eq!(ByteSize::parse("1.5kB").unwrap().0, 1536);
        assert!(ByteSize::parse("12 parsecs").is_err());
    }

    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        let lookup = |n: &str| (n == "HOST").then(|| "db".to_string());
        assert_eq!(expand_env("postgres://${HOST}/x $$5", lookup).unwrap(), "postgres://db/x $5");
        let err = expand_env("${NOPE}", lookup).unwrap_err();
        assert!(err.contains("NOPE is not set"), "{err}");
    }
}
