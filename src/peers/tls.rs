//! TLS between the nodes: the peers' listener serves HTTPS with
//! `peers.tls_certificate` and `peers.tls_key`, and a node trusts the CA in
//! `peers.ca_file` (alone) for its peers' `https://` URLs.
//!
//! Without TLS the fleet token and the views cross the network in clear.
//! A fleet usually has its own CA, so `ca_file` replaces the system's roots
//! for peer connections instead of adding to them: a certificate some
//! public CA issued for a peer's address is then not enough.
//!
//! The certificate is read again at every reload, and new handshakes use
//! the new one: renewing a certificate needs no restart. Whether the
//! listener speaks TLS at all is fixed when it opens.

use std::sync::{Arc, Mutex};

use axum::Router;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, warn};

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

/// The CA certificates of `pem`, for [`super::client`].
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

/// Hands each handshake the certificate of the configuration in force,
/// parsed once per change of the files.
struct Resolver {
    control: Arc<Control>,
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
        // A reload that dropped the certificate closes the listener to
        // new connections rather than opening it in clear.
        let steering = self.control.steering();
        let tls = steering.peers.as_ref()?.tls.as_ref()?;
        let mut cached = crate::lock(&self.cached);
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
                warn!("the peers' listener keeps its certificate: {error}");
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
    listener: TcpListener,
    app: Router,
    control: Arc<Control>,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let resolver = Arc::new(Resolver {
        control,
        cached: Mutex::new(None),
    });
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut connections = JoinSet::new();
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "the peers' listener could not accept");
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
                        debug!(%address, %error, "TLS handshake with a peer failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                debug!(%address, %error, "a peer's connection ended with an error");
            }
        });
    }
}

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
