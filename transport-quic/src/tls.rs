//! TLS settings of both ends: certificates and keys from PEM files, mutual authentication
//! with TLS 1.3 only, ALPN `pcxses/1`, and the device's identity read from its certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// The application protocol both ends must agree on.
pub const ALPN: &[u8] = b"pcxses/1";

/// A connection without any packet for this long is closed; the device then reconnects.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The device keeps its connection alive this often when it has nothing to send.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Why TLS settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file (or what the PEM text is).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("TLS: {0}")]
    Rustls(String),
}

/// A PEM file's bytes.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| pem_error(&path.display().to_string(), e))
}

fn pem_error(what: &str, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: what.to_string(),
        reason: reason.to_string(),
    }
}

/// Every certificate in PEM text (`what` names it in errors).
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, "no certificate"));
    }
    Ok(certs)
}

/// The private key in PEM text (`what` names it in errors).
pub fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| pem_error(what, e))
}

fn roots(cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca.clone())
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_error(e: impl ToString) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// The AC's side: its certificate chain and key, and the CA every device certificate
/// must chain to. A device without a certificate from that CA does not get a connection.
pub struct ServerTls {
    /// The AC's certificate, then any intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The AC's private key.
    pub key: PrivateKeyDer<'static>,
    /// The device CA's certificates.
    pub device_ca: Vec<CertificateDer<'static>>,
}

impl ServerTls {
    /// Reads the three PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path, device_ca: &Path) -> Result<Self, TlsError> {
        let name = |p: &Path| p.display().to_string();
        Ok(ServerTls {
            cert_chain: certificates(&read(cert)?, &name(cert))?,
            key: private_key(&read(key)?, &name(key))?,
            device_ca: certificates(&read(device_ca)?, &name(device_ca))?,
        })
    }

    pub(crate) fn quinn_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&self.device_ca)?,
            provider(),
        )
        .build()
        .map_err(rustls_error)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(rustls_error)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = QuicServerConfig::try_from(tls).map_err(rustls_error)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().map_err(rustls_error)?));
        // A device opens one control stream; the AC opens the bulk stream itself.
        transport.max_concurrent_bidi_streams(1u32.into());
        transport.max_concurrent_uni_streams(0u32.into());
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// The device's side: the AC's CA (pinned: no other root is trusted), the name the AC's
/// certificate must carry, and the device's own certificate and key.
pub struct ClientTls {
    /// The CA the AC's certificate must chain to.
    pub ac_ca: Vec<CertificateDer<'static>>,
    /// The name the AC's certificate must be valid for.
    pub ac_name: String,
    /// The device's certificate, then any intermediates; its name is the device's.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The device's private key.
    pub key: PrivateKeyDer<'static>,
    /// The application protocol offered; [`ALPN`] unless testing a refusal.
    pub alpn: Vec<u8>,
}

impl ClientTls {
    /// Reads the three PEM files; the AC's certificate must be valid for `ac_name`.
    pub fn from_pem_files(
        ac_ca: &Path,
        ac_name: &str,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, TlsError> {
        let name = |p: &Path| p.display().to_string();
        Ok(ClientTls {
            ac_ca: certificates(&read(ac_ca)?, &name(ac_ca))?,
            ac_name: ac_name.to_string(),
            cert_chain: certificates(&read(cert)?, &name(cert))?,
            key: private_key(&read(key)?, &name(key))?,
            alpn: ALPN.to_vec(),
        })
    }

    /// The client configuration of a quinn endpoint with these settings, for a program
    /// that drives its own connections.
    pub fn quinn_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error)?
            .with_root_certificates(roots(&self.ac_ca)?)
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(rustls_error)?;
        tls.alpn_protocols = vec![self.alpn.clone()];
        let crypto = QuicClientConfig::try_from(tls).map_err(rustls_error)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().map_err(rustls_error)?));
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// The name a verified peer certificate gives its holder: its first DNS subject
/// alternative name, else its common name.
pub fn identity(connection: &quinn::Connection) -> Option<String> {
    let certs = connection
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    name_in(certs.first()?)
}

/// The name a certificate gives its holder (see [`identity`]).
pub fn name_in(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        if let Some(name) = san.value.general_names.iter().find_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_string()),
            _ => None,
        }) {
            return Some(name);
        }
    }
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The TLS failure a connection ended in, with its alert: one this side's TLS raised (the
/// peer's certificate did not verify, say), or one the peer raised (it did not trust this
/// side's). `None` for a connection that ended otherwise (closed, timed out, reset).
pub(crate) fn failure(e: &quinn::ConnectionError) -> Option<String> {
    use quinn::ConnectionError as E;
    let is_tls = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        E::TransportError(t) if is_tls(t.code) => Some(format!("{}: {}", t.code, t.reason)),
        E::ConnectionClosed(c) if is_tls(c.error_code) => {
            Some(format!("the peer sent {}", c.error_code))
        }
        _ => None,
    }
}
