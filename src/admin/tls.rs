//! HTTPS for the admin API (`admin.tls_certificate`, `admin.tls_key`) and
//! the peers' listener (`peers.tls_certificate`, `peers.tls_key`), the CA a
//! node trusts for its peers (`peers.ca_file`), and the certificate pin the
//! `steer` client commands use.
//!
//! Without TLS the bearer tokens, the admin commands and the peers' views
//! cross the network in clear. A fleet usually has its own CA, so
//! `ca_file` replaces the system's roots for peer connections instead of
//! adding to them: a certificate some public CA issued for a peer's address
//! is then not enough.
//!
//! The certificate is read again at every reload, and new handshakes use
//! the new one: renewing a certificate needs no restart. Whether a listener
//! speaks TLS at all is fixed when it opens.

use std::sync::{Arc, Mutex};

use axum::Router;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::config::tls::TlsIdentity;
use crate::control::Control;

/// The certificate chain and key of `chain_pem` and `key_pem`, checked to
/// belong together. The error is one line and never shows the key.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("the certificate is not valid PEM: {error}"))?;
    if chain.is_empty() {
        return Err("holds no certificate (expected PEM \"BEGIN CERTIFICATE\")".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|error| format!("the key is not a PEM private key: {error}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|error| format!("the key does not fit the certificate: {error}"))
}

/// The CA certificates of `pem`, for [`crate::peers::client`].
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|error| format!("the CA file is not valid PEM: {error}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate (expected PEM \"BEGIN CERTIFICATE\")".to_owned());
    }
    Ok(certificates)
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Which listener a [`serve`] loop is: it decides where the certificate
/// in force is found, and what the log says.
#[derive(Clone, Copy, Debug)]
pub enum Listener {
    /// The admin API: `admin.tls_certificate`.
    Admin,
    /// The peers' listener: `peers.tls_certificate`.
    Peers,
    /// DNS over TLS: `server.tls_certificate`.
    Dns,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Self::Admin => "the admin API",
            Self::Peers => "the peers' listener",
            Self::Dns => "DNS over TLS",
        }
    }

    /// The certificate and key of the configuration in force.
    fn identity(self, control: &Control) -> Option<Arc<TlsIdentity>> {
        match self {
            Self::Admin => control.admin_tls(),
            Self::Peers => {
                let steering = control.steering();
                steering.peers.as_ref()?.tls.clone()
            }
            Self::Dns => control.dns_tls(),
        }
    }
}

/// Hands each handshake the certificate of the configuration in force,
/// parsed once per change of the files.
struct Resolver {
    control: Arc<Control>,
    listener: Listener,
    cached: Mutex<Option<Parsed>>,
}

/// A certificate chain and key as PEM, and what they parse to.
type Parsed = (Vec<u8>, Vec<u8>, Arc<CertifiedKey>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A listener that opened with TLS stays with it until a restart:
        // when a reload dropped the certificate, the last one goes on
        // rather than the listener falling silent or into clear text.
        let tls = self.listener.identity(&self.control);
        let mut cached = crate::lock(&self.cached);
        let Some(tls) = tls else {
            return cached
                .as_ref()
                .map(|(_, _, certified)| Arc::clone(certified));
        };
        if let Some((chain, key, certified)) = cached.as_ref()
            && *chain == tls.chain
            && *key == tls.key
        {
            return Some(Arc::clone(certified));
        }
        // Checked when the configuration was loaded; a failure here means
        // the files changed since, and the old certificate goes on.
        match certified_key(&tls.chain, &tls.key) {
            Ok(certified) => {
                let certified = Arc::new(certified);
                *cached = Some((tls.chain.clone(), tls.key.clone(), Arc::clone(&certified)));
                Some(certified)
            }
            Err(error) => {
                warn!("{} keeps its certificate: {error}", self.listener.name());
                cached
                    .as_ref()
                    .map(|(_, _, certified)| Arc::clone(certified))
            }
        }
    }
}

/// Serves `app` over TLS on `listener` until `stopped` fires; each
/// connection runs on a task of its own, and they end with the loop.
pub async fn serve(
    socket: TcpListener,
    listener: Listener,
    app: Router,
    control: Arc<Control>,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let acceptor = acceptor(listener, control, &[])?;
    let mut connections = JoinSet::new();
    loop {
        let (stream, address) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "{} could not accept", listener.name());
                    continue;
                }
            },
            _ = &mut stopped => return Ok(()),
        };
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
        let (acceptor, app) = (acceptor.clone(), app.clone());
        connections.spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        debug!(%address, %error, "TLS handshake with a client of {} failed", listener.name());
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                debug!(%address, %error, "a connection to {} ended with an error", listener.name());
            }
        });
    }
}

/// A TLS acceptor for `listener` that hands each handshake the certificate
/// of the configuration in force, offering the `alpn` protocols (none: no
/// ALPN). Session tickets let a client that comes back skip the full
/// handshake.
pub fn acceptor(
    listener: Listener,
    control: Arc<Control>,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    // Parsed now, so that a reload that drops the certificate before the
    // first handshake still leaves one to go on with.
    let first = listener.identity(&control).and_then(|tls| {
        let certified = certified_key(&tls.chain, &tls.key).ok()?;
        Some((tls.chain.clone(), tls.key.clone(), Arc::new(certified)))
    });
    let resolver = Arc::new(Resolver {
        control,
        listener,
        cached: Mutex::new(first),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(std::io::Error::other)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TLS client configuration that trusts exactly the first certificate of
/// `chain_pem` (the server's own), whatever name or CA it has: what the
/// `steer` client commands use when they find the admin API through the
/// configuration, since they read the same `admin.tls_certificate` file
/// the server serves. The handshake's signature is still checked, so only
/// the holder of the key gets through.
pub fn pinned_client(chain_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let certificate = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or("holds no certificate (expected PEM \"BEGIN CERTIFICATE\")")?
        .map_err(|error| format!("the certificate is not valid PEM: {error}"))?;
    let provider = Arc::new(provider());
    let verifier = Arc::new(Pinned {
        certificate,
        provider: Arc::clone(&provider),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts the one certificate it was made with.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the one in admin.tls_certificate (renewed \
                 without a reload? send SIGHUP to make the server read it)"
                    .to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
