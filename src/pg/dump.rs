//! pg_dump's output formats, told apart from the content of the file, never its name.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result};
use crate::kinds::closed_set;

/// How much of the dump is read to tell its format.
const SNIFF_BYTES: usize = 64 * 1024;

closed_set! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DumpFormat {
        /// `pg_dump -Fc`
        Custom = "custom",
        /// `pg_dump -Fd`
        Directory = "directory",
        /// `pg_dump -Ft`
        Tar = "tar",
        /// `pg_dump -Fp`
        Plain = "plain",
        /// `pg_dump -Fp | gzip`
        PlainGzip = "plain_gzip",
    }
}

impl DumpFormat {
    /// Tells the format from the content, never from the name.
    pub fn detect(path: &Path) -> Result<DumpFormat> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            ErrorKind::DumpUnreadable
                .because(format!("dump {shown} cannot be read: check the path (or pass --dump PATH)"), e)
        })?;
        if meta.is_dir() {
            return if path.join("toc.dat").is_file() {
                Ok(DumpFormat::Directory)
            } else {
                Err(ErrorKind::DumpUnsupported.error(format!(
                    "dump {shown} is a directory without toc.dat, so not a pg_dump directory-format (-Fd) dump"
                )))
            };
        }
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        File::open(path)
            .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
            .map_err(|e| ErrorKind::DumpUnreadable.because(format!("dump {shown} cannot be read"), e))?;
        if head.is_empty() {
            return Err(
                ErrorKind::DumpUnreadable.error(format!("dump {shown} is empty (0 bytes): make it again with pg_dump"))
            );
        }
        if head.starts_with(b"PGDMP") {
            return Ok(DumpFormat::Custom);
        }
        // POSIX tar: "ustar" at offset 257 of the first header.
        if head.len() >= 262 && &head[257..262] == b"ustar" {
            return Ok(DumpFormat::Tar);
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::with_capacity(SNIFF_BYTES);
            let _ = flate2::read::GzDecoder::new(
                File::open(path)
                    .map_err(|e| ErrorKind::DumpUnreadable.because(format!("dump {shown} cannot be read"), e))?,
            )
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut text);
            return if looks_like_sql(&text) {
                Ok(DumpFormat::PlainGzip)
            } else {
                Err(ErrorKind::DumpUnsupported.error(format!(
                    "dump {shown} is gzip-compressed but does not hold a plain SQL dump (or is truncated): \
                     rehearse reads gzip only around `pg_dump -Fp`; use pg_dump -Fc for compressed dumps"
                )))
            };
        }
        if looks_like_sql(&head) {
            return Ok(DumpFormat::Plain);
        }
        let preview: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(ErrorKind::DumpUnsupported.error(format!(
            "dump {shown} is not pg_dump output (it starts with bytes {}): expected custom (-Fc), directory (-Fd), \
             tar (-Ft), plain SQL (-Fp) or gzip-compressed plain SQL",
            preview.join(" ")
        )))
    }

    /// Whether `pg_restore` reads it (as opposed to psql).
    pub fn is_archive(self) -> bool {
        matches!(self, DumpFormat::Custom | DumpFormat::Directory | DumpFormat::Tar)
    }

    /// Opens a plain dump as SQL text, decompressing if needed.
    pub fn open_text(self, path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
        let file = File::open(path)?;
        Ok(match self {
            DumpFormat::PlainGzip => Box::new(flate2::read::GzDecoder::new(file)),
            _ => Box::new(file),
        })
    }
}

/// Text with no NUL byte, valid UTF-8 (but for a cut last character), with
/// something SQL-like in it.
fn looks_like_sql(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if head.len() - e.valid_up_to() < 4 && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    valid.lines().any(|l| {
        let l = l.trim_start().to_ascii_uppercase();
        ["--", "SET ", "CREATE ", "SELECT ", "BEGIN", "COPY ", "INSERT ", "ALTER "].iter().any(|k| l.starts_with(k))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_from_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert_eq!(DumpFormat::detect(&write("a.sql.gz", b"PGDMP\x01\x0e")).unwrap(), DumpFormat::Custom);
        assert_eq!(
            DumpFormat::detect(&write("b.dump", b"--\n-- PostgreSQL database dump\n")).unwrap(),
            DumpFormat::Plain
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"SET statement_timeout = 0;\n").unwrap();
        assert_eq!(DumpFormat::detect(&write("c", &gz.finish().unwrap())).unwrap(), DumpFormat::PlainGzip);
        let err = DumpFormat::detect(&write("d", &[0x00, 0x9f, 0x12, 0xff])).unwrap_err();
        assert!(err.to_string().contains("starts with bytes 00 9f 12 ff"), "{err}");
        let err = DumpFormat::detect(&write("e", b"")).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(DumpFormat::detect(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn json_spells_formats_in_snake_case() {
        assert_eq!(DumpFormat::PlainGzip.as_str(), "plain_gzip");
        crate::kinds::assert_serde_spells_as_str(&DumpFormat::ALL, DumpFormat::as_str);
    }
}
