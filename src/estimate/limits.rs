//! Production's memory and time limits, as its migration role's sessions
//! see them: a login setting of the recorded role (role-in-database, then
//! role, then database: "Role-specific variable settings take precedence
//! over database-specific ones", ALTER ROLE, PostgreSQL 15 and 18) over the
//! server's value; PostgreSQL's default when the stats file recorded
//! neither (a file made before `rehearse stats` read them).

use super::stats::ProductionStats;
use crate::report::format_bytes;

/// PostgreSQL's defaults (the same in 15 and 18): work_mem 4MB,
/// maintenance_work_mem 64MB, hash_mem_multiplier 2.0 (its default since
/// 15; 1.0 in 13 and 14), statement_timeout and lock_timeout 0 (none).
const DEFAULTS: [(&str, &str); 5] = [
    ("work_mem", "4MB"),
    ("maintenance_work_mem", "64MB"),
    ("hash_mem_multiplier", "2"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
];

/// One setting's value in production, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub value: String,
    /// "role migrator", "the server", "PostgreSQL's default (not in the stats file)".
    pub from: String,
}

/// The limits an estimate judges production-scale work against.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub work_mem: Limit,
    pub maintenance_work_mem: Limit,
    pub hash_mem_multiplier: Limit,
    pub statement_timeout: Limit,
    pub lock_timeout: Limit,
}

impl Limits {
    /// Production's limits from its stats file.
    pub fn of(stats: &ProductionStats) -> Limits {
        let get = |name: &str| resolve(stats, name);
        Limits {
            work_mem: get("work_mem"),
            maintenance_work_mem: get("maintenance_work_mem"),
            hash_mem_multiplier: get("hash_mem_multiplier"),
            statement_timeout: get("statement_timeout"),
            lock_timeout: get("lock_timeout"),
        }
    }

    /// work_mem in bytes: a sort's memory before it spills to disk.
    pub fn sort_bytes(&self) -> u64 {
        memory_bytes(&self.work_mem.value).unwrap_or(4 << 20)
    }

    /// work_mem × hash_mem_multiplier in bytes: a hash table's memory
    /// before it spills ("hash-based operations ... may use up to
    /// hash_mem_multiplier times work_mem", PostgreSQL 15 and 18).
    pub fn hash_bytes(&self) -> u64 {
        let m = self.hash_mem_multiplier.value.trim().parse::<f64>().unwrap_or(2.0);
        (self.sort_bytes() as f64 * m) as u64
    }

    /// maintenance_work_mem in bytes: an index build's sort memory.
    pub fn maintenance_bytes(&self) -> u64 {
        memory_bytes(&self.maintenance_work_mem.value).unwrap_or(64 << 20)
    }

    /// statement_timeout in ms; None when it is 0 (no timeout).
    pub fn statement_timeout_ms(&self) -> Option<u64> {
        duration_ms(&self.statement_timeout.value).filter(|&ms| ms > 0)
    }

    /// The basis line: which limits apply and where each came from.
    pub fn basis(&self) -> String {
        let show = |name: &str, l: &Limit| format!("{name} {} ({})", l.value, l.from);
        format!(
            "production's limits: {}, {}, {}",
            show("work_mem", &self.work_mem),
            show("hash_mem_multiplier", &self.hash_mem_multiplier),
            show("maintenance_work_mem", &self.maintenance_work_mem),
        )
    }

    /// "work_mem × hash_mem_multiplier (4MB × 2 = 8.0 MB)".
    pub fn describe_hash(&self) -> String {
        format!(
            "work_mem × hash_mem_multiplier ({} × {} = {})",
            self.work_mem.value,
            self.hash_mem_multiplier.value,
            format_bytes(self.hash_bytes())
        )
    }
}

/// A setting as the role's sessions get it (see the module's doc).
fn resolve(stats: &ProductionStats, name: &str) -> Limit {
    let login = stats.role.as_ref().and_then(|role| {
        // Sorted most specific first by `stats`; take the first that names it.
        let mut settings: Vec<_> = role.settings.iter().filter(|s| s.name == name).collect();
        settings.sort_by_key(|s| s.scope);
        settings.first().map(|s| Limit {
            value: s.value.clone(),
            from: match s.scope {
                crate::catalog::SettingScope::RoleInDatabase => format!("role {} in the database", role.name),
                crate::catalog::SettingScope::Role => format!("role {}", role.name),
                crate::catalog::SettingScope::Database => "the database".into(),
            },
        })
    });
    let server = || {
        stats
            .server_settings
            .get(name)
            .or_else(|| stats.settings.get(name))
            .map(|v| Limit { value: v.clone(), from: "the server".into() })
    };
    let default = || {
        let value = DEFAULTS.iter().find(|(n, _)| *n == name).map_or("0", |(_, v)| v);
        Limit { value: value.into(), from: "PostgreSQL's default: the stats file does not record it".into() }
    };
    login.or_else(server).unwrap_or_else(default)
}

/// A memory setting in bytes: a number with a unit (B, kB, MB, GB, TB), or
/// without one in kB (work_mem's and maintenance_work_mem's base unit).
pub fn memory_bytes(value: &str) -> Option<u64> {
    let (n, unit) = split_unit(value)?;
    let k = match unit {
        "B" => 1.0 / 1024.0,
        "" | "kB" => 1.0,
        "MB" => 1024.0,
        "GB" => 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * k * 1024.0) as u64)
}

/// A time setting in ms: a number with a unit (us, ms, s, min, h, d), or
/// without one in ms (statement_timeout's and lock_timeout's base unit).
pub fn duration_ms(value: &str) -> Option<u64> {
    let (n, unit) = split_unit(value)?;
    let k = match unit {
        "us" => 0.001,
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * k).round() as u64)
}

fn split_unit(value: &str) -> Option<(f64, &str)> {
    let v = value.trim().trim_matches('\'').trim();
    let at = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let n = v[..at].parse::<f64>().ok()?;
    Some((n, v[at..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_in_their_units() {
        assert_eq!(memory_bytes("4MB"), Some(4 << 20));
        assert_eq!(memory_bytes("4096kB"), Some(4 << 20));
        assert_eq!(memory_bytes("'1GB'"), Some(1 << 30));
        assert_eq!(memory_bytes("65536"), Some(64 << 20));
        assert_eq!(duration_ms("60s"), Some(60_000));
        assert_eq!(duration_ms("500"), Some(500));
        assert_eq!(duration_ms("2min"), Some(120_000));
        assert_eq!(duration_ms("0"), Some(0));
        assert_eq!(duration_ms("soon"), None);
    }
}
