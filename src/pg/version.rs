//! A server's version as a type: the one place that knows how
//! `server_version_num` encodes it (major × 10000 + minor since
//! PostgreSQL 10, e.g. 150018 is 15.18), so the rest of the tree asks
//! `version.at_least(15)` instead of comparing magic numbers.

/// A PostgreSQL server's version, read from `server_version_num`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PgVersion(i32);

impl PgVersion {
    /// The version `server_version_num` says (e.g. 150018).
    pub fn from_num(num: i32) -> PgVersion {
        PgVersion(num)
    }

    /// The major version: 15 for 15.18.
    pub fn major(self) -> i32 {
        self.0 / 10000
    }

    /// Whether the server is `major` or later.
    pub fn at_least(self, major: i32) -> bool {
        self.major() >= major
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_is_read_from_server_version_num() {
        let v = PgVersion::from_num(150018);
        assert_eq!(v.major(), 15);
        assert!(v.at_least(15) && v.at_least(14) && !v.at_least(16));
        assert!(PgVersion::from_num(180000).at_least(18));
        assert!(!PgVersion::from_num(139999).at_least(14));
    }
}
