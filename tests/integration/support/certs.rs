//! A certificate authority of the test's own, made with the `openssl` CLI:
//! a server certificate for `localhost` only and client certificates, for
//! servers started with `ssl = on` (`OwnedServer::enable_tls`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Certs {
    /// ca.crt/ca.key, and server.crt/server.key naming `localhost` (and no address).
    pub fn make() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A name of its own: a verifier finds a certificate's issuer by name.
        let subject = format!("/CN=rehearse test CA {}", d.file_name().unwrap().to_string_lossy());
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        );
        let certs = Certs { dir };
        certs.issue("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n");
        certs
    }

    /// `NAME.crt`/`NAME.key` for `cn`, signed by the CA, with `extensions` (an openssl extfile).
    pub fn issue(&self, name: &str, cn: &str, extensions: &str) {
        let d = self.dir.path();
        std::fs::write(d.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{extensions}")).unwrap();
        let (key, csr, crt, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        openssl(
            d,
            &["req", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={cn}"), "-keyout", &key, "-out", &csr],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
        // libpq (and PostgreSQL) want keys readable by their owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A client certificate for role `user`.
    pub fn client(&self, user: &str) {
        self.issue(user, user, "extendedKeyUsage=clientAuth\n");
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn path_str(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }
}
