//! A development PKI: one CA that signs the AC's certificate and every device's. Each
//! device certificate names its device (DNS subject alternative name and common name);
//! the AC's is valid for `ac`, `localhost` and 127.0.0.1. Keys are ECDSA P-256.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The name the AC's development certificate is valid for, and devices check by default.
pub const AC_NAME: &str = "ac";

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A certificate and its key, PEM-encoded.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// A certificate authority that issues AC and device certificates.
pub struct DevCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl DevCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<DevCa, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(DevCa { cert, key })
    }

    /// The CA's own certificate and key.
    pub fn issued(&self) -> Issued {
        Issued {
            cert_pem: self.cert.pem(),
            key_pem: self.key.serialize_pem(),
        }
    }

    /// A certificate for the AC.
    pub fn ac(&self) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(vec![AC_NAME.to_string(), "localhost".into()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, AC_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A certificate naming device `name`.
    pub fn device(&self, name: &str) -> Result<Issued, CertError> {
        let mut params = CertificateParams::new(vec![name.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, CertError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes a development PKI into `dir`: `ca.pem`/`ca.key`, `ac.pem`/`ac.key`, and
/// `NAME.pem`/`NAME.key` for each device.
pub fn write_dev_pki(dir: &Path, devices: &[&str]) -> Result<(), CertError> {
    std::fs::create_dir_all(dir)?;
    let ca = DevCa::new("pcxses development CA")?;
    let write = |name: &str, issued: Issued| -> Result<(), CertError> {
        std::fs::write(dir.join(format!("{name}.pem")), issued.cert_pem)?;
        std::fs::write(dir.join(format!("{name}.key")), issued.key_pem)?;
        Ok(())
    };
    write("ca", ca.issued())?;
    write("ac", ca.ac()?)?;
    for d in devices {
        write(d, ca.device(d)?)?;
    }
    Ok(())
}
