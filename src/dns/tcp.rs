//! TCP service (RFC 7766): length-framed queries on tokio.
//!
//! One accept loop per listening address and one task per connection. A
//! connection reads whatever the client has sent, answers every complete
//! frame in order (clients may pipeline many queries back to back), and
//! writes the responses in one go once no complete frame is left buffered, so
//! that a burst of queries costs one write, not one per answer. The current
//! [`RoutingTable`] is loaded per query and never held across an await.
//!
//! Resources are bounded: a semaphore caps the open connections (past the
//! limit a new connection is closed at once), and so does a count per
//! client (an IPv4 address or an IPv6 /64), so that one host cannot take
//! every connection while resolvers need TCP (after a truncated answer,
//! or one the rate limits slipped); a connection that does not
//! deliver a complete query within the idle timeout is closed, and so is one
//! whose client stops reading our answers for that long. Each connection is
//! its own task, so a slow client only ever delays itself.
//!
//! The server binds UDP first and then TCP on the same addresses with the
//! ports UDP resolved, so both transports share a port number: binding an
//! explicit port here is the normal case, port 0 mostly serves tests.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;

use super::{Outcome, Transport, proxy};
use crate::metrics::{Metrics, ProxyCounters, TcpRefusal, WorkerCounters};
use crate::query_log::QueryLog;
use crate::table::RoutingTable;
use crate::transfer::outbound::AxfrStream;

/// Pending connections the kernel queues per listener.
const LISTEN_BACKLOG: i32 = 1024;

/// Bytes read at a time when no larger frame is known to be pending.
const READ_CHUNK: usize = 16 * 1024;

/// Buffered responses past which we write even though queries remain, so
/// that a pipelined burst of small queries with large answers cannot make the
/// output buffer grow without bound.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// How long to pause accepting after an accept error (say, out of file
/// descriptors), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Limits applied to every TCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections over all addresses; past it new ones are closed at once.
    pub max_connections: usize,
    /// A connection is closed when no complete query arrives for this long,
    /// or when the client does not take our responses for this long.
    pub idle_timeout: Duration,
    /// Open connections from one client (an IPv4 address, an IPv6 /64);
    /// past it its new ones are closed at once.
    pub max_connections_per_client: usize,
    /// Queries answered on one connection before it is closed (`None`: no limit).
    pub max_queries_per_connection: Option<usize>,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(10),
            max_connections_per_client: 64,
            max_queries_per_connection: None,
        }
    }
}

/// Open connections per client, for [`TcpLimits::max_connections_per_client`].
/// Locked once when a connection opens and once when it closes, never per
/// query.
#[derive(Default)]
struct ClientConnections {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl ClientConnections {
    /// Counts a new connection from `client`, or refuses it at `limit`.
    fn open(self: &Arc<Self>, client: IpAddr, limit: usize) -> Option<ClientConnection> {
        let key = client_key(client);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientConnection {
            clients: Arc::clone(self),
            key,
        })
    }
}

/// One open connection of a client; dropping it (the connection's end)
/// gives its place back.
struct ClientConnection {
    clients: Arc<ClientConnections>,
    key: IpAddr,
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let mut open = self
            .clients
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Who a connection is counted against: an IPv4 address, or the /64 of an
/// IPv6 one (a host usually has a whole /64).
fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(address) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(address) & !u128::from(u64::MAX),
        )),
        v4 => v4,
    }
}

/// Running accept loops and connections.
///
/// Dropping the service without [`TcpService::stop`] also stops every task,
/// just without waiting for them.
pub struct TcpService {
    local_addrs: Vec<SocketAddr>,
    accept_loops: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

impl TcpService {
    /// Binds each address (port 0 allowed; `IPV6_V6ONLY` on IPv6) and spawns
    /// an accept loop per address on the current tokio runtime. An explicit
    /// port, such as the one the UDP service resolved, is bound as given.
    /// With `tls`, every address serves DNS over TLS (RFC 7858) instead:
    /// the same framing and limits, after a handshake.
    ///
    /// # Errors
    ///
    /// Fails when an address cannot be bound; nothing is left running then.
    pub async fn start(
        addresses: &[SocketAddr],
        tls: Option<TlsAcceptor>,
        limits: TcpLimits,
        table: Arc<ArcSwap<RoutingTable>>,
        query_log: Option<QueryLog>,
        metrics: &Metrics,
        updates: Option<crate::update::UpdateQueue>,
    ) -> io::Result<TcpService> {
        let idle_timeout = limits.idle_timeout;
        let proxies = Proxies {
            is_proxy: Box::new({
                let table = Arc::clone(&table);
                move |source| table.load().is_proxy(source)
            }),
            refused: Arc::clone(&metrics.proxy),
        };
        let transfers: Transfers = Box::new({
            let table = Arc::clone(&table);
            let counts = Arc::clone(&metrics.transfers_out);
            move |query, source| {
                let stream = table
                    .load()
                    .outbound()
                    .and_then(|outbound| outbound.answer(query, source))?;
                let zone = stream.zone_served().unwrap_or_default();
                counts.count(zone, stream.sent(), stream.rcode());
                Some(stream)
            }
        });
        let hooks = Hooks {
            proxies: Some(proxies),
            transfers: Some(transfers),
            updates,
        };
        start_with(
            addresses,
            tls,
            limits,
            metrics,
            hooks,
            move |packet, transport, source, out| {
                let table = table.load();
                let outcome = if transport == Transport::Tls {
                    super::respond_tls(&table, packet, source, idle_timeout, out)
                } else {
                    super::respond_tcp(&table, packet, source, idle_timeout, out)
                };
                if let Some(log) = &query_log {
                    log.record(packet, out, source, transport, outcome);
                }
                outcome
            },
        )
        .await
    }

    /// The bound addresses (port resolved), one per configured address, in
    /// the configured order.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Stops accepting, closes every connection and waits until all tasks
    /// have ended.
    pub async fn stop(self) {
        // `send_replace` stores the value even when no task is listening.
        self.shutdown.send_replace(true);
        for accept_loop in self.accept_loops {
            if let Err(error) = accept_loop.await {
                tracing::error!(%error, "a TCP accept loop failed");
            }
        }
        // Every connection task holds a receiver: once all are dropped, all
        // connections are closed.
        self.shutdown.closed().await;
    }
}

/// Creates a listening socket: `SO_REUSEADDR` (restart without waiting for
/// `TIME_WAIT`), `IPV6_V6ONLY` for IPv6 (so that `::` and `0.0.0.0` can be
/// bound side by side), non-blocking for tokio.
///
/// # Errors
///
/// Fails when the socket cannot be created, configured, bound or listened on.
pub fn bind_tcp_listener(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Starts the service with any responder, so that the transport can be
/// tested without a real table.
async fn start_with<F>(
    addresses: &[SocketAddr],
    tls: Option<TlsAcceptor>,
    limits: TcpLimits,
    metrics: &Metrics,
    hooks: Hooks,
    answer: F,
) -> io::Result<TcpService>
where
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome + Send + Sync + 'static,
{
    // Bind everything before spawning anything, so that a bad address leaves
    // nothing running behind.
    let mut listeners = Vec::with_capacity(addresses.len());
    let mut local_addrs = Vec::with_capacity(addresses.len());
    for &address in addresses {
        let listener = TcpListener::from_std(bind_tcp_listener(address)?)?;
        local_addrs.push(listener.local_addr()?);
        listeners.push((listener, tls.clone()));
    }

    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        connections: Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        )),
        limits,
        answer,
        counters: metrics.register_worker(),
        clients: Arc::default(),
        proxies: hooks.proxies,
        transfers: hooks.transfers,
        updates: hooks.updates,
    });
    let accept_loops = listeners
        .into_iter()
        .map(|(listener, acceptor)| {
            tokio::spawn(accept_loop(
                listener,
                acceptor,
                Arc::clone(&shared),
                shutdown.subscribe(),
            ))
        })
        .collect();
    Ok(TcpService {
        local_addrs,
        accept_loops,
        shutdown,
    })
}

/// What every connection of the service shares.
struct Shared<F> {
    limits: TcpLimits,
    answer: F,
    /// Zone transfers out: the messages answering an AXFR, for a query
    /// that is one (and `[transfer]` is set).
    transfers: Option<Transfers>,
    /// Dynamic updates: handed to the control plane, whose response this
    /// connection writes.
    updates: Option<crate::update::UpdateQueue>,
    counters: Arc<WorkerCounters>,
    connections: Arc<Semaphore>,
    clients: Arc<ClientConnections>,
    proxies: Option<Proxies>,
}

/// What the server adds to the plain read–answer–write loop.
#[derive(Default)]
struct Hooks {
    proxies: Option<Proxies>,
    transfers: Option<Transfers>,
    updates: Option<crate::update::UpdateQueue>,
}

/// Finds the AXFR answer to a query from a client, in the table in force.
type Transfers = Box<dyn Fn(&[u8], IpAddr) -> Option<AxfrStream> + Send + Sync>;

/// `server.proxy_protocol_from`, as the configuration in force says at
/// each accept: connections from a proxy start with a PROXY v2 header.
struct Proxies {
    is_proxy: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    refused: Arc<ProxyCounters>,
}

async fn accept_loop<F>(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared<F>>,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome + Send + Sync + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "TCP accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // A proxy's connection is counted against the client its header
        // names, once it has been read.
        // Proxies terminate TLS themselves: a DNS over TLS listener reads
        // no PROXY header.
        let proxied = acceptor.is_none()
            && shared
                .proxies
                .as_ref()
                .is_some_and(|proxies| (proxies.is_proxy)(peer.ip()));
        // At a limit the stream is dropped here, which closes it.
        let client = if proxied {
            None
        } else {
            let Some(client) = shared
                .clients
                .open(peer.ip(), shared.limits.max_connections_per_client)
            else {
                tracing::debug!(%peer, "TCP connection limit per client reached; closing");
                shared.counters.refuse_tcp(TcpRefusal::PerClient);
                continue;
            };
            Some(client)
        };
        let Ok(permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
            tracing::debug!(%peer, "TCP connection limit reached; closing");
            shared.counters.refuse_tcp(TcpRefusal::Total);
            continue;
        };
        let shared = Arc::clone(&shared);
        let mut shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _places = (permit, client);
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
            }
            let source = peer.ip().to_canonical();
            let served = async {
                match acceptor {
                    Some(acceptor) => serve_tls(stream, source, acceptor, &shared).await,
                    None => serve_connection(stream, source, proxied, &shared).await,
                }
            };
            tokio::select! {
                result = served => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "TCP connection ended");
                    }
                }
                // Dropping the connection future closes the stream.
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }
}

/// Reads a proxy's PROXY v2 header off the start of `stream`, within the
/// idle timeout: the client it names (`None`: the proxy itself) and the
/// bytes that came after it. `Err` when the connection is to be closed
/// (counted when the header was missing or malformed).
async fn read_proxy_header<S>(
    stream: &mut S,
    limit: Duration,
    refused: &ProxyCounters,
) -> Result<(Option<IpAddr>, Vec<u8>), ()>
where
    S: AsyncRead + Unpin,
{
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let deadline = Instant::now() + limit;
    let refuse = |refusal| {
        refused.refuse(Transport::Tcp, refusal);
        Err(())
    };
    loop {
        match proxy::total_length(&input) {
            Err(refusal) => return refuse(refusal),
            Ok(Some(length)) if input.len() >= length => {
                return match proxy::parse(&input) {
                    Ok(header) => Ok((header.client, input.split_off(header.length))),
                    Err(refusal) => refuse(refusal),
                };
            }
            Ok(_) => {}
        }
        match timeout_at(deadline, stream.read_buf(&mut input)).await {
            Ok(Ok(read)) if read > 0 => {}
            // A connection that closes, fails or idles out before its
            // header is complete never said anything; it is not counted.
            _ => return Err(()),
        }
    }
}

/// Answers queries on one connection until the client closes it, it idles
/// out or reaches its query limit.
async fn serve_connection<F>(
    mut stream: TcpStream,
    source: IpAddr,
    proxied: bool,
    shared: &Shared<F>,
) -> io::Result<()>
where
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
{
    let (source, input, _place) = match &shared.proxies {
        Some(proxies) if proxied => {
            let limit = shared.limits.idle_timeout;
            let Ok((client, input)) = read_proxy_header(&mut stream, limit, &proxies.refused).await
            else {
                return Ok(());
            };
            let client = client.unwrap_or(source);
            let Some(place) = shared
                .clients
                .open(client, shared.limits.max_connections_per_client)
            else {
                tracing::debug!(%client, "TCP connection limit per client reached; closing");
                shared.counters.refuse_tcp(TcpRefusal::PerClient);
                return Ok(());
            };
            (client, input, Some(place))
        }
        _ => (source, Vec::with_capacity(READ_CHUNK), None),
    };
    let finished = exchange(&mut stream, source, Transport::Tcp, input, shared).await?;
    if finished {
        // Say goodbye with a FIN; a client that has gone away is not our problem.
        let _ = timeout(shared.limits.idle_timeout, stream.shutdown()).await;
    }
    Ok(())
}

/// Answers queries on one DNS over TLS connection, once its handshake is
/// done (within the idle timeout), until the client closes it, it idles
/// out or reaches its query limit.
async fn serve_tls<F>(
    stream: TcpStream,
    source: IpAddr,
    acceptor: TlsAcceptor,
    shared: &Shared<F>,
) -> io::Result<()>
where
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
{
    let limit = shared.limits.idle_timeout;
    let mut stream = match timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            shared.counters.tls_handshake(true);
            stream
        }
        Ok(Err(error)) => {
            shared.counters.tls_handshake(false);
            tracing::debug!(%source, %error, "TLS handshake failed");
            return Ok(());
        }
        Err(_elapsed) => {
            shared.counters.tls_handshake(false);
            return Ok(());
        }
    };
    let input = Vec::with_capacity(READ_CHUNK);
    let finished = exchange(&mut stream, source, Transport::Tls, input, shared).await?;
    if finished {
        // close_notify, then FIN.
        let _ = timeout(limit, stream.shutdown()).await;
    }
    Ok(())
}

/// Longest a connection waits for the control plane to apply an update
/// (it reloads the zones): then the client is left to retry.
const UPDATE_WAIT: Duration = Duration::from_secs(60);

/// The read–answer–write loop. Returns `true` when the connection should be
/// shut down politely (query limit reached), `false` when it simply ends.
async fn exchange<S, F>(
    stream: &mut S,
    source: IpAddr,
    transport: Transport,
    mut input: Vec<u8>,
    shared: &Shared<F>,
) -> io::Result<bool>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
{
    let limits = &shared.limits;
    // Received bytes not yet answered (`input`, which may start with what
    // came after a PROXY header), framed responses not yet written, and
    // the one response buffer `answer` writes into.
    let mut output: Vec<u8> = Vec::new();
    let mut response: Vec<u8> = Vec::new();
    let mut queries: usize = 0;
    let mut deadline = Instant::now() + limits.idle_timeout;

    loop {
        // Answer every complete frame that is buffered.
        let mut consumed = 0;
        let mut limit_reached = false;
        while let Some(frame) = complete_frame(&input[consumed..]) {
            let query = &input[consumed + 2..consumed + 2 + frame];
            consumed += 2 + frame;
            queries += 1;
            let update = shared
                .updates
                .as_ref()
                .and_then(|updates| updates.offer_stream(query, source));
            if let Some(update) = update {
                // Answers before it go first; later ones wait for it, in order.
                write_out(stream, &mut output, limits.idle_timeout).await?;
                let outcome = match timeout(UPDATE_WAIT, update).await {
                    Ok(Ok(response)) if u16::try_from(response.len()).is_ok() => {
                        output.extend_from_slice(&(response.len() as u16).to_be_bytes());
                        output.extend_from_slice(&response);
                        Outcome::Reply {
                            rcode: u16::from(response.get(3).map_or(0, |flags| flags & 0x0F)),
                            decision: None,
                            zone: None,
                        }
                    }
                    // Dropped (queue full) or not answered in time.
                    _ => Outcome::Drop,
                };
                shared.counters.record(transport, outcome);
                continue;
            }
            let transfer = shared
                .transfers
                .as_ref()
                .and_then(|transfers| transfers(query, source));
            if let Some(mut transfer) = transfer {
                // An AXFR: its messages, flushed as they pile up.
                let mut messages = 0usize;
                while transfer.next_message(&mut response) {
                    messages += 1;
                    let Ok(length) = u16::try_from(response.len()) else {
                        break;
                    };
                    output.extend_from_slice(&length.to_be_bytes());
                    output.extend_from_slice(&response);
                    if output.len() >= FLUSH_THRESHOLD {
                        write_out(stream, &mut output, limits.idle_timeout).await?;
                    }
                }
                let outcome = Outcome::Reply {
                    rcode: transfer.rcode(),
                    decision: None,
                    zone: None,
                };
                shared.counters.record(transport, outcome);
                // Rare, and what an operator wants to see: who took what.
                tracing::info!(
                    zone = %transfer.zone_asked(),
                    client = %source,
                    sent = transfer.sent(),
                    messages,
                    rcode = transfer.rcode(),
                    "zone transfer out"
                );
                continue;
            }
            answer_frame(query, transport, source, shared, &mut response, &mut output);
            if limits
                .max_queries_per_connection
                .is_some_and(|limit| queries >= limit)
            {
                limit_reached = true;
                break;
            }
            if output.len() >= FLUSH_THRESHOLD {
                write_out(stream, &mut output, limits.idle_timeout).await?;
            }
        }
        write_out(stream, &mut output, limits.idle_timeout).await?;
        if consumed > 0 {
            input.drain(..consumed);
            // Counted from when the answers are out, so that a slow write
            // does not eat into the wait for the next query.
            deadline = Instant::now() + limits.idle_timeout;
        }
        if limit_reached {
            return Ok(true);
        }

        // Make room for the rest of a pending frame, or for a fresh chunk.
        let pending = match input.get(..2) {
            Some(&[high, low]) => 2 + usize::from(u16::from_be_bytes([high, low])),
            _ => 0,
        };
        input.reserve(pending.saturating_sub(input.len()).max(READ_CHUNK));
        match timeout_at(deadline, stream.read_buf(&mut input)).await {
            // Idle for too long: close without a word, as RFC 7766 allows.
            Err(_elapsed) => return Ok(false),
            Ok(Ok(0)) => return Ok(false),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
        }
    }
}

/// The length of the frame at the start of `buffered`, if all of it is there.
fn complete_frame(buffered: &[u8]) -> Option<usize> {
    let (&[high, low], rest) = buffered.split_first_chunk::<2>()?;
    let length = usize::from(u16::from_be_bytes([high, low]));
    (rest.len() >= length).then_some(length)
}

/// Answers one query and appends the framed response to `output`; empty
/// queries and dropped packets get nothing, and are counted as dropped.
fn answer_frame<F>(
    query: &[u8],
    transport: Transport,
    source: IpAddr,
    shared: &Shared<F>,
    response: &mut Vec<u8>,
    output: &mut Vec<u8>,
) where
    F: Fn(&[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
{
    let outcome = if query.is_empty() {
        Outcome::Drop
    } else {
        (shared.answer)(query, transport, source, response)
    };
    let outcome = match (outcome, u16::try_from(response.len())) {
        (reply @ Outcome::Reply { .. }, Ok(length)) => {
            output.extend_from_slice(&length.to_be_bytes());
            output.extend_from_slice(response);
            reply
        }
        // A response too long to frame cannot be sent.
        _ => Outcome::Drop,
    };
    shared.counters.record(transport, outcome);
}

/// Writes and clears `output`; a client that does not take it within
/// `limit` is treated as gone.
async fn write_out<S>(stream: &mut S, output: &mut Vec<u8>, limit: Duration) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if output.is_empty() {
        return Ok(());
    }
    match timeout(limit, stream.write_all(output)).await {
        Ok(result) => result?,
        Err(_elapsed) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ));
        }
    }
    output.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TIMEOUT: Duration = Duration::from_secs(3);

    /// Echoes the query prefixed with the source family (4 or 6); drops
    /// queries starting with 0xFF.
    fn echo(packet: &[u8], transport: Transport, source: IpAddr, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        assert_eq!(transport, Transport::Tcp);
        if packet.first() == Some(&0xFF) {
            return Outcome::Drop;
        }
        out.push(if source.is_ipv4() { 4 } else { 6 });
        out.extend_from_slice(packet);
        Outcome::Reply {
            rcode: 0,
            decision: None,
            zone: None,
        }
    }

    async fn start_echo(addresses: &[&str], limits: TcpLimits, metrics: &Metrics) -> TcpService {
        let addresses: Vec<SocketAddr> = addresses
            .iter()
            .map(|address| address.parse().expect("address"))
            .collect();
        start_with(&addresses, None, limits, metrics, Hooks::default(), echo)
            .await
            .expect("start TCP service")
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut framed = (payload.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(payload);
        framed
    }

    async fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
        let mut length = [0u8; 2];
        timeout(TIMEOUT, stream.read_exact(&mut length))
            .await
            .expect("reply in time")
            .expect("reply length");
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(length))];
        timeout(TIMEOUT, stream.read_exact(&mut payload))
            .await
            .expect("reply in time")
            .expect("reply payload");
        payload
    }

    /// Reads until the server closes the connection; returns what came first.
    async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
        let mut rest = Vec::new();
        // A reset counts as closed as well.
        let _ = timeout(TIMEOUT, stream.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        rest
    }

    #[tokio::test]
    async fn port_zero_resolves_on_both_families() {
        let metrics = Metrics::default();
        let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
        let addresses: &[&str] = if ipv6 {
            &["127.0.0.1:0", "[::1]:0"]
        } else {
            &["127.0.0.1:0"]
        };
        let service = start_echo(addresses, TcpLimits::default(), &metrics).await;
        assert_eq!(service.local_addrs().len(), addresses.len());
        for address in service.local_addrs() {
            assert_ne!(address.port(), 0);
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream.write_all(&frame(b"hi")).await.expect("write");
            let family = if address.is_ipv4() { 4 } else { 6 };
            assert_eq!(read_frame(&mut stream).await, [family, b'h', b'i']);
        }
        service.stop().await;
    }

    #[tokio::test]
    async fn explicit_port_shared_with_udp() {
        // The server binds UDP first and reuses its port for TCP. A port
        // the kernel gave UDP may be taken for TCP by a test running in
        // parallel; the server retries with a new pair, and so does this.
        let metrics = Metrics::default();
        for _ in 0..5 {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
            let address = udp.local_addr().expect("UDP address");
            match start_with(
                &[address],
                None,
                TcpLimits::default(),
                &metrics,
                Hooks::default(),
                echo,
            )
            .await
            {
                Ok(service) => {
                    assert_eq!(service.local_addrs(), &[address]);
                    service.stop().await;
                    return;
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
                Err(error) => panic!("bind the UDP port for TCP: {error}"),
            }
        }
        panic!("five UDP ports in a row were taken for TCP");
    }

    #[tokio::test]
    async fn pipelined_queries_answered_in_order() {
        let metrics = Metrics::default();
        let service = start_echo(&["127.0.0.1:0"], TcpLimits::default(), &metrics).await;
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        let mut burst = Vec::new();
        for index in 0..100u16 {
            burst.extend_from_slice(&frame(&index.to_be_bytes()));
        }
        stream.write_all(&burst).await.expect("write");
        for index in 0..100u16 {
            let [high, low] = index.to_be_bytes();
            assert_eq!(read_frame(&mut stream).await, [4, high, low]);
        }
        service.stop().await;
        assert_eq!(metrics.totals().answered_total(Transport::Tcp), 100);
    }

    #[tokio::test]
    async fn query_split_across_writes() {
        let metrics = Metrics::default();
        let service = start_echo(&["127.0.0.1:0"], TcpLimits::default(), &metrics).await;
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let framed = frame(b"split query");
        // One byte of the length, then the rest of the length and part of
        // the query, then the remainder together with a second query.
        stream.write_all(&framed[..1]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(30)).await;
        stream.write_all(&framed[1..5]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut rest = framed[5..].to_vec();
        rest.extend_from_slice(&frame(b"second"));
        stream.write_all(&rest).await.expect("write");
        assert_eq!(read_frame(&mut stream).await, b"\x04split query");
        assert_eq!(read_frame(&mut stream).await, b"\x04second");
        service.stop().await;
    }

    #[tokio::test]
    async fn empty_and_dropped_queries_are_skipped() {
        let metrics = Metrics::default();
        let service = start_echo(&["127.0.0.1:0"], TcpLimits::default(), &metrics).await;
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        let mut burst = frame(b"");
        burst.extend_from_slice(&frame(&[0xFF, 1]));
        burst.extend_from_slice(&frame(b"ok"));
        stream.write_all(&burst).await.expect("write");
        assert_eq!(read_frame(&mut stream).await, b"\x04ok");
        service.stop().await;
        let totals = metrics.totals();
        assert_eq!(totals.answered_total(Transport::Tcp), 1);
        assert_eq!(totals.dropped[1], 2);
    }

    #[tokio::test]
    async fn idle_connection_is_closed() {
        let metrics = Metrics::default();
        let limits = TcpLimits {
            idle_timeout: Duration::from_millis(200),
            ..TcpLimits::default()
        };
        let service = start_echo(&["127.0.0.1:0"], limits, &metrics).await;
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        // A query resets the timer; half a query does not.
        stream.write_all(&frame(b"a")).await.expect("write");
        assert_eq!(read_frame(&mut stream).await, b"\x04a");
        let started = Instant::now();
        stream.write_all(&[0, 9, 1]).await.expect("write");
        assert!(read_to_close(&mut stream).await.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "closed after {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
        service.stop().await;
    }

    /// Connects with `connect` until a query is answered: a connection
    /// that just ended frees its place only once its task has finished.
    async fn answered_once_freed<C, F>(connect: C)
    where
        C: Fn() -> F,
        F: Future<Output = io::Result<TcpStream>>,
    {
        for _ in 0..50 {
            let mut stream = connect().await.expect("connect");
            let _ = stream.write_all(&frame(b"4")).await;
            let mut reply = [0u8; 4];
            if timeout(TIMEOUT, stream.read_exact(&mut reply))
                .await
                .is_ok_and(|read| read.is_ok())
            {
                // Length 2, then the echo's marker and the query.
                assert_eq!(reply, [0, 2, 4, b'4']);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no connection was answered after the place was freed");
    }

    #[tokio::test]
    async fn connection_limit_closes_the_extra_connection() {
        let metrics = Metrics::default();
        let limits = TcpLimits {
            max_connections: 1,
            ..TcpLimits::default()
        };
        let service = start_echo(&["127.0.0.1:0"], limits, &metrics).await;
        let address = service.local_addrs()[0];
        let mut first = TcpStream::connect(address).await.expect("connect");
        // Once answered, the first connection surely holds the only permit.
        first.write_all(&frame(b"1")).await.expect("write");
        assert_eq!(read_frame(&mut first).await, b"\x041");

        let mut second = TcpStream::connect(address).await.expect("connect");
        let _ = second.write_all(&frame(b"2")).await;
        assert!(read_to_close(&mut second).await.is_empty());

        // The first is unaffected, and its end frees the slot.
        first.write_all(&frame(b"3")).await.expect("write");
        assert_eq!(read_frame(&mut first).await, b"\x043");
        drop(first);
        answered_once_freed(|| TcpStream::connect(address)).await;
        service.stop().await;
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_connection() {
        let metrics = Metrics::default();
        let limits = TcpLimits {
            max_connections_per_client: 2,
            ..TcpLimits::default()
        };
        let service = start_echo(&["127.0.0.1:0"], limits, &metrics).await;
        let address = service.local_addrs()[0];
        let connect_from = |local: &'static str| async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(format!("{local}:0").parse().expect("address"))
                .expect("bind");
            socket.connect(address).await.expect("connect")
        };
        let mut open = Vec::new();
        for index in 0..2u8 {
            let mut stream = connect_from("127.0.0.1").await;
            stream.write_all(&frame(&[index])).await.expect("write");
            assert_eq!(read_frame(&mut stream).await, [4, index]);
            open.push(stream);
        }
        // A third from the same address is closed; another address is not
        // held to its count.
        let mut third = connect_from("127.0.0.1").await;
        let _ = third.write_all(&frame(b"3")).await;
        assert!(read_to_close(&mut third).await.is_empty());
        let mut neighbour = connect_from("127.0.0.2").await;
        neighbour.write_all(&frame(b"n")).await.expect("write");
        assert_eq!(read_frame(&mut neighbour).await, b"\x04n");
        assert_eq!(metrics.totals().tcp_refused, [0, 1]);

        // When one of its connections ends, the client may open another.
        drop(open.pop());
        answered_once_freed(|| async { Ok(connect_from("127.0.0.1").await) }).await;
        service.stop().await;
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let key = |text: &str| client_key(text.parse().expect("address"));
        assert_eq!(key("2001:db8:1:2::7"), key("2001:db8:1:2:ffff::1"));
        assert_ne!(key("2001:db8:1:2::7"), key("2001:db8:1:3::7"));
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }

    #[tokio::test]
    async fn query_limit_closes_after_the_last_answer() {
        let metrics = Metrics::default();
        let limits = TcpLimits {
            max_queries_per_connection: Some(3),
            ..TcpLimits::default()
        };
        let service = start_echo(&["127.0.0.1:0"], limits, &metrics).await;
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        let mut burst = Vec::new();
        for payload in [b"a", b"b", b"c"] {
            burst.extend_from_slice(&frame(payload));
        }
        stream.write_all(&burst).await.expect("write");
        for expected in [b"\x04a", b"\x04b", b"\x04c"] {
            assert_eq!(read_frame(&mut stream).await, expected);
        }
        assert!(read_to_close(&mut stream).await.is_empty());
        service.stop().await;
    }

    #[tokio::test]
    async fn large_responses_to_a_burst_are_all_delivered() {
        // Responses far beyond the flush threshold, to a client that only
        // reads after sending everything.
        fn large(packet: &[u8], _: Transport, _: IpAddr, out: &mut Vec<u8>) -> Outcome {
            out.clear();
            out.resize(60_000, packet.first().copied().unwrap_or_default());
            Outcome::Reply {
                rcode: 0,
                decision: None,
                zone: None,
            }
        }
        let metrics = Metrics::default();
        let address: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let service = start_with(
            &[address],
            None,
            TcpLimits::default(),
            &metrics,
            Hooks::default(),
            large,
        )
        .await
        .expect("start");
        let mut stream = TcpStream::connect(service.local_addrs()[0])
            .await
            .expect("connect");
        let mut burst = Vec::new();
        for index in 0..20u8 {
            burst.extend_from_slice(&frame(&[index]));
        }
        stream.write_all(&burst).await.expect("write");
        for index in 0..20u8 {
            let payload = read_frame(&mut stream).await;
            assert_eq!(payload.len(), 60_000);
            assert!(payload.iter().all(|&byte| byte == index));
        }
        service.stop().await;
    }

    #[tokio::test]
    async fn stop_closes_open_connections() {
        let metrics = Metrics::default();
        let ipv6 = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
        let bind = if ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
        let service = start_echo(&[bind], TcpLimits::default(), &metrics).await;
        let address = service.local_addrs()[0];
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(&frame(b"x")).await.expect("write");
        assert_eq!(read_frame(&mut stream).await[1..], *b"x");
        timeout(TIMEOUT, service.stop())
            .await
            .expect("stopped in time");
        assert!(read_to_close(&mut stream).await.is_empty());
        assert!(TcpStream::connect(address).await.is_err());
    }
}
