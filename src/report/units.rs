//! Durations and sizes as people read them.

/// `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub fn format_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Sizes in Postgres's units (1 kB = 1024 bytes): `512 B`, `8.0 kB`, `1.2 GB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 query`, `2 queries`: a count with its noun.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "4.2s (3.1s–6.0s)": an estimate's mid, then its range; one figure when
/// nothing was scaled, `-` for nothing at all (no blocking lock).
pub fn range_ms(r: super::Range) -> String {
    match r {
        super::Range { low: 0, mid: 0, high: 0 } => "-".into(),
        _ if r.low == r.high => format_ms(r.mid),
        _ => format!("{} ({}–{})", format_ms(r.mid), format_ms(r.low), format_ms(r.high)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(12_340), "12.3s");
        assert_eq!(format_ms(245_000), "4m 05s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(8192), "8.0 kB");
        assert_eq!(format_bytes(3 << 30), "3.0 GB");
        assert_eq!(count(1, "query", "queries"), "1 query");
        assert_eq!(count(0, "query", "queries"), "0 queries");
    }
}
