//! Flyway's checksum of a script, as `flyway_schema_history.checksum` holds
//! it: what tells a changed repeatable migration from an unchanged one.
//!
//! Flyway's `ChecksumCalculator.calculateChecksumForResource`
//! (flyway-core, `org.flywaydb.core.internal.resolver.ChecksumCalculator`)
//! reads the script with a `BufferedReader`, strips a byte-order mark from
//! the first line (`BomFilter.FilterBomFromString`), feeds each line's UTF-8
//! bytes, without its line ending, to a `java.util.zip.CRC32`, and stores
//! `(int) crc32.getValue()`: a signed 32-bit number. Line endings never count,
//! so CRLF and LF files have the same checksum, and so do files that differ
//! only in blank lines.
//!
//! Which text is checksummed: `SqlMigrationResolver.getChecksumForLoadableResource`
//! checksums a repeatable migration after placeholder replacement (when
//! replacement is on, Flyway's default: a changed placeholder value re-runs
//! the repeatable), a versioned one as the raw file; and
//! `getEquivalentChecksumForLoadableResource` keeps the raw file's checksum of
//! a repeatable as an equivalent that also matches
//! (`ResolvedMigrationImpl.checksumMatches`), so rows written before Flyway
//! replaced placeholders in checksums still match. rehearse does the same.

/// Flyway's checksum of `text` (the file as UTF-8).
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    // Lines without their endings (`\n`, `\r\n` or `\r`, as readLine splits),
    // fed one after the other: the same bytes as the text without any CR or LF.
    for piece in text.split(['\r', '\n']) {
        crc.update(piece.as_bytes());
    }
    crc.finalize() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected numbers were computed apart from this code, with Python:
    /// `zlib.crc32(b"".join(l.encode("utf-8") for l in lines))`, converted
    /// to signed 32 bits (`x - 2**32 if x >= 2**31 else x`), where `lines` is
    /// `["CREATE VIEW v AS", "SELECT 'é' AS x;", "", "-- done"]`: what
    /// Java's readLine yields for the file below. `SELECT 1;` alone gives
    /// 78787420, and no lines at all 0.
    #[test]
    fn matches_flyway_crc32_of_lines() {
        let file = "\u{feff}CREATE VIEW v AS\r\nSELECT 'é' AS x;\n\n-- done\n";
        assert_eq!(flyway_checksum(file), -1426879079);
        assert_eq!(flyway_checksum("SELECT 1;"), 78787420);
        assert_eq!(flyway_checksum("SELECT 1;\n"), 78787420, "a final line ending adds no line");
        assert_eq!(flyway_checksum(""), 0);
        // Line endings and blank lines do not count; a BOM counts past the first line.
        assert_eq!(flyway_checksum("CREATE VIEW v AS\rSELECT 'é' AS x;\r\n-- done"), -1426879079);
        assert_ne!(flyway_checksum("SELECT 1;\n\u{feff}"), 78787420);
    }
}
