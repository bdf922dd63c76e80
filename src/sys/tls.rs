//! TLS for the servers the user names, with libpq's `sslmode` semantics.
//!
//! The stack: rustls (pure Rust; `ring` as its crypto, so no OpenSSL at
//! build time and none at run time), over `tokio-rustls`, plugged into
//! tokio-postgres with a `MakeTlsConnect` of our own ([`Connector`]) rather
//! than the `tokio-postgres-rustls` crate: libpq's `verify-ca` (the chain is
//! checked, the host name is not) and `require`'s "no verification unless a
//! root certificate file exists" need verifiers of our own anyway, and the
//! connector is also where a failed `password_command` is reported
//! (see `db::connect`). `rustls-native-certs` reads the platform's roots for
//! `sslrootcert=system`.
//!
//! libpq's rules (PostgreSQL 15 and 18, "SSL Support" in libpq's docs,
//! table "SSL Mode Descriptions" and "Client Verification of Server
//! Certificates"): the default mode is `prefer`; `require` verifies the
//! chain (as `verify-ca` does) when a root certificate file exists;
//! `verify-ca`/`verify-full` without one fail; the root file defaults to
//! `~/.postgresql/root.crt`, the client certificate and key to
//! `~/.postgresql/postgresql.crt` and `postgresql.key` (used when they exist).
//! `sslrootcert=system` (PostgreSQL 16+ libpq) means the platform's roots
//! and makes `verify-full` the default mode; a weaker explicit mode is an error.
//!
//! Not done: `sslcrl`, `sslpassword` (encrypted keys), the key file's
//! permission check. SCRAM channel binding is offered (`channel_binding`,
//! read by tokio-postgres's parser: `prefer` by default, `require` as Neon's
//! URLs ask).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings a connection string (or the environment) gave, before
/// files are read: what `sslmode`, `sslrootcert`, `sslcert`, `sslkey` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
}

impl TlsParams {
    /// Sets `key` if it is one of ours; false otherwise.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }

    /// What the string left out, from libpq's environment variables.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> TlsParams {
        for (slot, var) in [
            (&mut self.sslmode, "PGSSLMODE"),
            (&mut self.sslrootcert, "PGSSLROOTCERT"),
            (&mut self.sslcert, "PGSSLCERT"),
            (&mut self.sslkey, "PGSSLKEY"),
        ] {
            if slot.is_none() {
                *slot = env(var).filter(|v| !v.is_empty());
            }
        }
        self
    }
}

/// Why TLS settings cannot be used: the key, and what is wrong, never a
/// file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct TlsSetupError {
    pub key: &'static str,
    pub why: String,
}

impl TlsSetupError {
    /// The error for the TLS settings of `input` ("--url", "postgres.url"): exit 4, naming the key.
    pub fn explain(&self, input: &str) -> crate::error::Error {
        crate::error::ErrorKind::ConnectionFailed
            .error(format!("cannot use the TLS settings of {input}: {self} (docs/connections.md)"))
    }
}

fn setup_error(key: &'static str, why: impl Into<String>) -> TlsSetupError {
    TlsSetupError { key, why: why.into() }
}

/// How a connection is encrypted: the mode and, unless it is `disable`, the rustls configuration.
#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: SslMode,
    config: Option<Arc<ClientConfig>>,
    /// The settings it was made from, for client tools (PGSSLMODE, ...);
    /// shared, as every `ConnInfo` carries a `Tls`.
    params: Arc<TlsParams>,
}

impl Default for Tls {
    /// No TLS: the throwaway servers rehearse starts itself, reached over their private sockets.
    fn default() -> Tls {
        Tls::disabled()
    }
}

/// Where libpq looks when a setting is not given: `~/.postgresql/NAME`.
fn default_file(name: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql").join(name))
}

impl Tls {
    pub fn disabled() -> Tls {
        Tls { mode: SslMode::Disable, config: None, params: Arc::default() }
    }

    /// Reads the files `params` name (or libpq's defaults) and builds the rustls configuration.
    pub fn from_params(params: TlsParams) -> Result<Tls, TlsSetupError> {
        let explicit = match params.sslmode.as_deref() {
            Some(v) => Some(SslMode::parse(v).ok_or_else(|| {
                setup_error(
                    "sslmode",
                    format!("{v:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"),
                )
            })?),
            None => None,
        };
        let system = params.sslrootcert.as_deref() == Some("system");
        let mode = match (explicit, system) {
            (None, true) => SslMode::VerifyFull,
            (Some(m), true) if m != SslMode::VerifyFull => {
                return Err(setup_error(
                    "sslmode",
                    format!("sslmode={} may not be used with sslrootcert=system: use verify-full", m.as_str()),
                ))
            }
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        if mode == SslMode::Disable {
            return Ok(Tls { mode, config: None, params: Arc::new(params) });
        }
        let config = client_config(mode, &params)?;
        Ok(Tls { mode, config: Some(Arc::new(config)), params: Arc::new(params) })
    }

    /// tokio-postgres's mode for one attempt (`allow` tries plain first: see `db::connect`).
    pub fn first_attempt(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self.mode {
            SslMode::Disable | SslMode::Allow => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }

    /// The connector for tokio-postgres; `refusal`, when set, fails every connection with it.
    pub fn connector(&self, refusal: Option<Arc<dyn std::error::Error + Send + Sync>>) -> Connector {
        Connector { config: self.config.clone(), refusal }
    }

    /// Encrypts `stream` to the server at `host` as libpq would, for a byte
    /// relay (`sys::forward`) whose client cannot ask for TLS itself (libpq
    /// never uses TLS over a unix socket): an SSLRequest, then the handshake
    /// when the server answers 'S' (Frontend/Backend Protocol, "SSL Session
    /// Encryption", PostgreSQL 15 and 18). `disable` stays plain; `allow`,
    /// which libpq tries plain then encrypted, is tried encrypted then plain
    /// (the relay cannot replay a refused login), as `prefer`; a server that
    /// answers 'N' is refused under `require` and stricter.
    pub async fn negotiate<S>(&self, mut stream: S, host: &str) -> io::Result<Negotiated<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Some(config) = self.config.clone().filter(|_| self.mode >= SslMode::Allow) else {
            return Ok(Negotiated::Plain(stream));
        };
        // Length 8, then the SSLRequest code 80877103.
        stream.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
        match stream.read_u8().await? {
            b'S' => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Ok(Negotiated::Tls(Box::new(tokio_rustls::TlsConnector::from(config).connect(name, stream).await?)))
            }
            b'N' if self.mode <= SslMode::Prefer => Ok(Negotiated::Plain(stream)),
            b'N' => Err(io::Error::other(format!(
                "the server does not accept TLS, and sslmode={} requires it",
                self.mode.as_str()
            ))),
            other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected SSLRequest answer {other}"))),
        }
    }

    /// libpq's connection parameters for a URL a client tool is given
    /// (`DATABASE_URL`, `{url}`): sslmode and the files, as query parameters.
    pub fn url_params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("sslmode", self.mode.as_str().to_string())];
        for (key, value) in [
            ("sslrootcert", &self.params.sslrootcert),
            ("sslcert", &self.params.sslcert),
            ("sslkey", &self.params.sslkey),
        ] {
            params.extend(value.as_ref().map(|v| (key, v.clone())));
        }
        params
    }

    /// libpq's environment for client tools (psql, pg_restore) to connect as rehearse does.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        // PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY.
        self.url_params().into_iter().map(|(key, value)| (format!("PG{}", key.to_uppercase()), value)).collect()
    }
}

/// A relayed connection to a server: encrypted, or plain as the mode allowed.
pub enum Negotiated<S> {
    Tls(Box<tokio_rustls::client::TlsStream<S>>),
    Plain(S),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(mode: SslMode, params: &TlsParams) -> Result<ClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier = verifier(mode, params, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error("sslmode", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client_identity(params)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| setup_error("sslkey", format!("the key does not go with sslcert's certificate: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The roots to verify with: None when nothing is to be verified.
fn roots(mode: SslMode, params: &TlsParams) -> Result<Option<RootCertStore>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match params.sslrootcert.as_deref() {
        Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(setup_error(
                    "sslrootcert",
                    "sslrootcert=system, but this machine has no root certificates",
                ));
            }
        }
        Some(file) => add_file(&mut roots, Path::new(file))?,
        None => match default_file("root.crt").filter(|f| f.exists()) {
            Some(file) => add_file(&mut roots, &file)?,
            None if mode >= SslMode::VerifyCa => {
                return Err(setup_error(
                    "sslrootcert",
                    format!(
                        "sslmode={} verifies the server's certificate, but no root certificate was given and \
                         ~/.postgresql/root.crt does not exist: set sslrootcert (a file, or system)",
                        mode.as_str()
                    ),
                ))
            }
            None => return Ok(None),
        },
    }
    Ok(Some(roots))
}

fn add_file(roots: &mut RootCertStore, file: &Path) -> Result<(), TlsSetupError> {
    let certs = read_certs(file).map_err(|why| setup_error("sslrootcert", why))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    match added {
        0 => Err(setup_error("sslrootcert", format!("{} holds no usable certificate", file.display()))),
        _ => Ok(()),
    }
}

fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    match certs.is_empty() {
        true => Err(format!("{} holds no PEM certificate", file.display())),
        false => Ok(certs),
    }
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate and key: given, or libpq's default files when the certificate exists.
fn client_identity(params: &TlsParams) -> Result<Option<Identity>, TlsSetupError> {
    let cert = match &params.sslcert {
        Some(f) => PathBuf::from(f),
        None => match default_file("postgresql.crt").filter(|f| f.exists()) {
            Some(f) => f,
            None => return Ok(None),
        },
    };
    let key = match &params.sslkey {
        Some(f) => PathBuf::from(f),
        None => default_file("postgresql.key").unwrap_or_default(),
    };
    let certs = read_certs(&cert).map_err(|why| setup_error("sslcert", why))?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| setup_error("sslkey", format!("cannot read a PEM private key from {}: {e}", key.display())))?;
    Ok(Some((certs, key)))
}

fn verifier(
    mode: SslMode,
    params: &TlsParams,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsSetupError> {
    let Some(roots) = roots(mode, params)? else {
        return Ok(Arc::new(Unverified(provider.clone())));
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| setup_error("sslrootcert", e.to_string()))?;
    Ok(match mode {
        SslMode::VerifyFull => webpki,
        // verify-ca, and require/prefer/allow with a root file: libpq checks the chain only.
        _ => Arc::new(ChainOnly(webpki)),
    })
}

/// `require` (and `prefer`, `allow`) without a root certificate: encrypted, the certificate not checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: webpki's verdict, except that a certificate for another host name is accepted
/// (webpki checks the chain before the name, so a name error means the chain was good).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's `MakeTlsConnect` over tokio-rustls.
#[derive(Clone)]
pub struct Connector {
    config: Option<Arc<ClientConfig>>,
    /// An error to fail the connection with before any TLS (a `password_command` that failed).
    refusal: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Why [`Connector`] made no TLS connector: the error it was given, as its source.
#[derive(Debug)]
pub struct ConnectorError(pub Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for Connector {
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = ConnectorError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, ConnectorError> {
        if let Some(refusal) = &self.refusal {
            return Err(ConnectorError(refusal.clone()));
        }
        // A unix socket has no name (""); TLS is never asked for there (see `ConnInfo::config`).
        let name = ServerName::try_from(domain.to_string())
            .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid name"));
        Ok(RustlsConnect { config: self.config.clone(), name })
    }
}

pub struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for RustlsConnect {
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| io::Error::other("TLS was not configured (sslmode=disable)"))?;
            let tls = tokio_rustls::TlsConnector::from(config).connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// SCRAM's `tls-server-end-point` (RFC 5929), the one channel binding
    /// PostgreSQL offers (SCRAM-SHA-256-PLUS): the hash of the server's
    /// certificate, with its signature's hash (MD5 and SHA-1 become SHA-256).
    fn channel_binding(&self) -> ChannelBinding {
        match self.0.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => ChannelBinding::tls_server_end_point(server_end_point(cert)),
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate's hash by its signature algorithm, found by the
/// algorithm's DER-encoded OID (it appears in the certificate twice, and
/// no other OID a certificate holds starts the same way).
fn server_end_point(cert: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    const SHA384: [&[u8]; 2] = [
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C], // sha384WithRSAEncryption
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D], // sha512WithRSAEncryption
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let holds = |oids: [&[u8]; 2]| oids.iter().any(|oid| cert.windows(oid.len()).any(|w| w == *oid));
    if holds(SHA512) {
        sha2::Sha512::digest(cert).to_vec()
    } else if holds(SHA384) {
        sha2::Sha384::digest(cert).to_vec()
    } else {
        sha2::Sha256::digest(cert).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_defaults_follow_libpq() {
        let tls = |mode: Option<&str>, root: Option<&str>| {
            Tls::from_params(TlsParams {
                sslmode: mode.map(str::to_string),
                sslrootcert: root.map(str::to_string),
                ..TlsParams::default()
            })
        };
        assert_eq!(tls(Some("disable"), None).unwrap().mode, SslMode::Disable);
        assert_eq!(tls(Some("require"), None).unwrap().mode, SslMode::Require);
        let err = tls(Some("verify-full"), Some("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(err.key, "sslrootcert");
        assert!(err.why.contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(tls(Some("require"), Some("system")).unwrap_err().key, "sslmode");
        assert_eq!(tls(Some("maybe"), None).unwrap_err().key, "sslmode");
    }

    #[test]
    fn the_environment_fills_what_the_string_left_out() {
        let params = TlsParams { sslmode: Some("require".into()), ..TlsParams::default() }
            .with_env(|var| Some(format!("env-{var}")));
        assert_eq!(params.sslmode.as_deref(), Some("require"));
        assert_eq!(params.sslrootcert.as_deref(), Some("env-PGSSLROOTCERT"));
        assert_eq!(params.sslkey.as_deref(), Some("env-PGSSLKEY"));
    }
}
