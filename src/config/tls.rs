//! A listener's TLS certificate and key, as read from the files that
//! `admin.tls_certificate`/`admin.tls_key` and
//! `peers.tls_certificate`/`peers.tls_key` name.
//!
//! Both files are read and checked to belong together when the
//! configuration is loaded, so `steer check` and a reload refuse a key that
//! does not fit its certificate instead of a listener failing handshakes
//! later. The PEM bytes are kept as read: the listener parses them once per
//! change (see [`crate::admin::tls`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// A certificate chain and its key as read (PEM), checked to belong
/// together. `Debug` shows the certificate's file, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// Where the certificate chain was read from.
    pub certificate: PathBuf,
    /// The certificate chain, PEM, the listener's own certificate first.
    pub chain: Vec<u8>,
    /// The private key, PEM.
    pub key: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TlsIdentity")
            .field("certificate", &self.certificate)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Reads `SECTION.tls_certificate` and `SECTION.tls_key` (the file names
/// as written, resolved against `base`). Each problem goes to `report` with
/// its key path; `None` when neither is set or something is wrong.
pub(crate) fn read_identity(
    section: &str,
    certificate: Option<&str>,
    key: Option<&str>,
    base: &Path,
    report: &mut dyn FnMut(String, String),
) -> Option<TlsIdentity> {
    let certificate_key = format!("{section}.tls_certificate");
    let (certificate, key) = match (certificate, key) {
        (None, None) => return None,
        (Some(certificate), Some(key)) => (base.join(certificate), base.join(key)),
        _ => {
            report(
                certificate_key,
                format!("needs {section}.tls_key beside it, and the other way round"),
            );
            return None;
        }
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
    };
    let chain = read(&certificate)
        .map_err(|message| report(certificate_key.clone(), message))
        .ok()?;
    let key_pem = read(&key)
        .map_err(|message| report(format!("{section}.tls_key"), message))
        .ok()?;
    if let Err(message) = crate::admin::tls::certified_key(&chain, &key_pem) {
        report(
            certificate_key,
            format!(
                "{} with {}: {message}",
                certificate.display(),
                key.display()
            ),
        );
        return None;
    }
    Some(TlsIdentity {
        certificate,
        chain,
        key: key_pem,
    })
}
