//! UDP workers: one `SO_REUSEPORT` socket and one OS thread per worker.
//!
//! Each worker owns its socket, so the kernel spreads incoming datagrams over
//! the workers and no two threads ever touch the same socket or buffer. A
//! worker receives up to [`BATCH`] datagrams with one `recvmmsg` call, loads
//! the current [`RoutingTable`] once for the batch, answers every query into a
//! preallocated buffer and sends all replies with one `sendmmsg` call. Every
//! buffer is allocated when the thread starts, so the steady state allocates
//! nothing.
//!
//! A socket bound to a wildcard address (`0.0.0.0` or `::`) asks the kernel
//! for each datagram's destination address (`IP_PKTINFO`,
//! `IPV6_RECVPKTINFO`) and hands it back as the source of the reply: a client
//! that queried one of the host's addresses must hear back from that very
//! address, or it discards the answer.
//!
//! Replies are never fragmented and never sized by ICMP: every socket is
//! set to `IP_PMTUDISC_PROBE` (`IPV6_PMTUDISC_PROBE`), which sends with
//! the don't-fragment bit and ignores path-MTU messages. A spoofed
//! "fragmentation needed" could otherwise make the kernel split answers
//! for a victim resolver, and a forged second fragment is how DNS caches
//! get poisoned (RFC 9715 is the background). Answers stay within 1,232
//! bytes of payload, so they fit every path that carries IPv6's minimum
//! MTU; a path that does not gets no answer and the resolver retries
//! (over TCP in the end).
//!
//! The batching system calls make this module Linux-only.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};

use super::rate_limit::Buckets;
use super::{Outcome, OverLimit, Transport};
use crate::metrics::{Metrics, WorkerCounters};
use crate::query_log::QueryLog;
use crate::table::RoutingTable;
use crate::update::UpdateQueue;

/// Datagrams received (and replies sent) per system call.
const BATCH: usize = 32;

/// Receive buffer per datagram. Queries are small; one that does not fit is
/// truncated by the kernel and dropped as malformed.
const QUERY_BYTES: usize = 4096;

/// Response buffer capacity. A UDP answer is at most 1,232 bytes
/// (`respond::UDP_PAYLOAD_SIZE`); a steered answer is written whole before
/// the size check and stays under 2 KiB. Small buffers keep a batch's
/// writes on a few pages instead of one 64 KiB buffer each; a larger answer
/// would only grow its buffer once.
const RESPONSE_BYTES: usize = 4096;

/// Ancillary data buffer; one `in6_pktinfo` message needs 40 bytes.
const CONTROL_BYTES: usize = 64;

/// Socket receive buffer asked for; the kernel caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// Running UDP workers. Dropping the service stops them too.
pub struct UdpService {
    threads: Vec<JoinHandle<()>>,
    /// Kept to wake the workers on stop; shared with their threads so the
    /// descriptors stay open until every thread has finished.
    sockets: Vec<Arc<UdpSocket>>,
    local_addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
}

impl UdpService {
    /// Binds `workers` sockets per address (`SO_REUSEPORT`; IPv6 sockets
    /// `IPV6_V6ONLY`) and starts one OS thread per socket, named
    /// `steer-udp-N`. Port 0 is allowed: the first socket of an address picks
    /// the port, the others bind to it; [`UdpService::local_addrs`] reports it.
    /// Every worker charges responses to `buckets` under the served table's
    /// `[rate_limit]`, and offers its sampled queries to `query_log`.
    ///
    /// # Errors
    ///
    /// Fails when `workers` is 0, when a socket cannot be bound or when a
    /// thread cannot be started; nothing is left running then.
    pub fn start(
        addresses: &[SocketAddr],
        workers: usize,
        table: Arc<ArcSwap<RoutingTable>>,
        buckets: Arc<Buckets>,
        query_log: Option<QueryLog>,
        metrics: &Metrics,
        updates: Option<UpdateQueue>,
    ) -> io::Result<UdpService> {
        let proxy_refused = Arc::clone(&metrics.proxy);
        start_with(
            addresses,
            (workers, updates),
            metrics,
            move || table.load(),
            move |table: &arc_swap::Guard<Arc<RoutingTable>>,
                  packet: &[u8],
                  _: Transport,
                  source: IpAddr,
                  out: &mut Vec<u8>| {
                let Some((packet, client)) =
                    super::proxy::unwrap_datagram(table, packet, source, &proxy_refused)
                else {
                    return Outcome::Drop;
                };
                let outcome = super::respond_udp(table, &buckets, packet, client, out);
                if let Some(log) = &query_log {
                    log.record(packet, out, client, Transport::Udp, outcome);
                }
                outcome
            },
        )
    }

    /// The bound addresses (port resolved), one per configured address, in
    /// the configured order.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Stops the threads and joins them.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Waking a blocked recvmmsg: shutting down the receive side makes it
        // return at once. (A receive timeout would do it too, but would arm a
        // kernel timer on every wait, which costs CPU on every quiet moment.)
        for socket in &self.sockets {
            // SAFETY: the socket is open (this Arc keeps it alive); shutdown
            // has no memory effects. On an unconnected UDP socket it reports
            // ENOTCONN but still marks the socket and wakes its waiters.
            unsafe {
                libc::shutdown(socket.as_raw_fd(), libc::SHUT_RD);
            }
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a UDP worker thread panicked");
            }
        }
    }
}

impl Drop for UdpService {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Creates one UDP socket bound to `address` the way the workers need it:
/// `SO_REUSEPORT` (so that several workers share the port), `IPV6_V6ONLY` for
/// IPv6 (so that `::` and `0.0.0.0` can be bound side by side), a large
/// receive buffer (best effort), replies never fragmented nor sized by
/// ICMP (see the module's notes), destination-address reporting on
/// wildcard addresses.
///
/// # Errors
///
/// Fails when the socket cannot be created, configured or bound.
pub fn bind_udp_socket(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a refusal only means a smaller buffer, not a broken socket.
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::debug!(%address, %error, "could not enlarge the UDP receive buffer");
    }
    let (level, option, probe) = match address {
        SocketAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        ),
        SocketAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        ),
    };
    set_option(socket.as_raw_fd(), level, option, probe)?;
    if address.ip().is_unspecified() {
        match address {
            SocketAddr::V4(_) => {
                set_flag(socket.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO)?;
            }
            SocketAddr::V6(_) => {
                set_flag(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_RECVPKTINFO,
                )?;
            }
        }
    }
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Sets an integer socket option to 1.
fn set_flag(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    set_option(fd, level, name, 1)
}

/// Sets an integer socket option.
fn set_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller, and the option value
    // points to a live `c_int` whose size is passed alongside it.
    let result = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::from_ref(&value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts the workers with any responder, so that the transport can be tested
/// without a real table. `load` runs once per batch; `answer` once per
/// datagram with what `load` returned.
fn start_with<S, L, A>(
    addresses: &[SocketAddr],
    (workers, updates): (usize, Option<UpdateQueue>),
    metrics: &Metrics,
    load: L,
    answer: A,
) -> io::Result<UdpService>
where
    L: Fn() -> S + Clone + Send + 'static,
    A: Fn(&S, &[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome + Clone + Send + 'static,
{
    if workers == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one UDP worker is needed",
        ));
    }

    // Bind everything before starting any thread, so that a bad address
    // leaves nothing running behind.
    let mut sockets = Vec::with_capacity(addresses.len() * workers);
    let mut local_addrs = Vec::with_capacity(addresses.len());
    for &address in addresses {
        let first = bind_udp_socket(address)?;
        let resolved = first.local_addr()?;
        sockets.push((first, address.ip().is_unspecified()));
        for _ in 1..workers {
            sockets.push((bind_udp_socket(resolved)?, address.ip().is_unspecified()));
        }
        local_addrs.push(resolved);
    }

    let mut service = UdpService {
        threads: Vec::with_capacity(sockets.len()),
        sockets: Vec::with_capacity(sockets.len()),
        local_addrs,
        stop: Arc::default(),
    };
    for (index, (socket, wildcard)) in sockets.into_iter().enumerate() {
        let socket = Arc::new(socket);
        service.sockets.push(Arc::clone(&socket));
        let stop = Arc::clone(&service.stop);
        let counters = metrics.register_worker();
        let load = load.clone();
        let answer = answer.clone();
        let updates = updates.clone();
        let thread = std::thread::Builder::new()
            .name(format!("steer-udp-{index}"))
            .spawn(move || {
                let worker = Worker {
                    socket: &socket,
                    wildcard,
                    updates: updates.as_ref(),
                };
                run_worker(&worker, &stop, &counters, load, answer);
            });
        // On error, dropping `service` stops and joins the threads already started.
        service.threads.push(thread?);
    }
    Ok(service)
}

/// A worker's socket and what its queries may be handed to.
struct Worker<'a> {
    socket: &'a Arc<UdpSocket>,
    /// Bound to a wildcard address: replies say which address they are from.
    wildcard: bool,
    /// Where UPDATE messages go, when the server takes them.
    updates: Option<&'a UpdateQueue>,
}

/// One worker's loop: receive a batch, answer it, send the replies, until
/// `stop` is set.
fn run_worker<S, L, A>(
    worker: &Worker<'_>,
    stop: &AtomicBool,
    counters: &WorkerCounters,
    load: L,
    answer: A,
) where
    L: Fn() -> S,
    A: Fn(&S, &[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
{
    let fd = worker.socket.as_raw_fd();
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(fd) {
            Ok(received) => received,
            Err(error) => {
                match error.kind() {
                    // Woken without data (a signal, or `stop` shut the socket down).
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    _ => {
                        tracing::warn!(%error, "UDP receive failed");
                        // Do not spin if the error repeats.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            // Woken by `stop`: after shutdown(SHUT_RD) the kernel reports an
            // empty "datagram" that is not a query.
            break;
        }
        let snapshot = load();
        let replies = batch.answer(received, worker, &snapshot, &answer, counters);
        // Release the table before the send, which may take a while.
        drop(snapshot);
        batch.send(fd, replies, counters);
    }
}

/// Ancillary data, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control {
    bytes: [u8; CONTROL_BYTES],
}

/// The local address a reply sent later must come from: what the kernel
/// reported for the query on a wildcard socket, else nothing to pin.
#[derive(Clone, Copy)]
pub struct ReplySource(Destination);

// SAFETY: a `Destination` is plain addresses and an interface index.
unsafe impl Send for ReplySource {}
// SAFETY: as above; it is only read.
unsafe impl Sync for ReplySource {}

/// Sends `bytes` to `to` from `socket`, from the local address in `from`
/// when there is one (the control plane's replies to dynamic updates, from
/// the worker socket the update came in on). Blocking sockets never
/// block long on UDP; a failure is returned for the caller to log.
pub fn send_reply(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: ReplySource,
) -> io::Result<()> {
    let address = socket2::SockAddr::from(to);
    let mut iovec = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = Control {
        bytes: [0; CONTROL_BYTES],
    };
    let control_length = write_source(&mut control, from.0);
    let mut header: libc::msghdr = zeroed();
    header.msg_name = address.as_ptr().cast_mut().cast();
    header.msg_namelen = address.len();
    header.msg_iov = &raw mut iovec;
    header.msg_iovlen = 1;
    if control_length > 0 {
        header.msg_control = control.bytes.as_mut_ptr().cast();
        header.msg_controllen = control_length as _;
    }
    // SAFETY: `header` points at `address`, one iovec over `bytes` and,
    // when set, `control_length` bytes of `control`, all alive until the
    // call returns; the kernel only reads them.
    let result = unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const header, 0) };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The address a datagram was sent to, as reported by the kernel.
#[derive(Clone, Copy)]
enum Destination {
    /// Not reported: the socket is bound to a specific address.
    Unknown,
    /// IPv4 `ipi_spec_dst`: the local address to answer from.
    V4(libc::in_addr),
    /// IPv6 destination address and arrival interface.
    V6(libc::in6_addr, libc::c_uint),
}

/// Everything one datagram of a batch needs, received and replied.
struct Slot {
    query: [u8; QUERY_BYTES],
    source: libc::sockaddr_storage,
    receive_control: Control,
    receive_iovec: libc::iovec,
    response: Vec<u8>,
    send_control: Control,
    send_iovec: libc::iovec,
}

/// A worker's preallocated buffers.
struct Batch {
    slots: Box<[Slot]>,
    receive_headers: Box<[libc::mmsghdr]>,
    send_headers: Box<[libc::mmsghdr]>,
    /// What each queued reply counts once sent (rcode, and the steering
    /// decision if any), in `send_headers` order.
    send_outcomes: [Outcome; BATCH],
}

/// An all-zero value of a plain C struct.
fn zeroed<T: PlainC>() -> T {
    // SAFETY: `PlainC` is implemented only for libc structs made of integers
    // and raw pointers, for which all-zero bytes are a valid value (null
    // pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// libc structs whose all-zero value is valid.
trait PlainC {}
impl PlainC for libc::mmsghdr {}
impl PlainC for libc::msghdr {}
impl PlainC for libc::sockaddr_storage {}

impl Batch {
    fn new() -> Batch {
        let slots = (0..BATCH)
            .map(|_| Slot {
                query: [0; QUERY_BYTES],
                source: zeroed(),
                receive_control: Control {
                    bytes: [0; CONTROL_BYTES],
                },
                receive_iovec: libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                },
                response: Vec::with_capacity(RESPONSE_BYTES),
                send_control: Control {
                    bytes: [0; CONTROL_BYTES],
                },
                send_iovec: libc::iovec {
                    iov_base: ptr::null_mut(),
                    iov_len: 0,
                },
            })
            .collect();
        Batch {
            slots,
            receive_headers: (0..BATCH).map(|_| zeroed()).collect(),
            send_headers: (0..BATCH).map(|_| zeroed()).collect(),
            send_outcomes: [Outcome::Drop; BATCH],
        }
    }

    /// Blocks until at least one datagram arrives (or the receive timeout
    /// expires), then takes whatever else is already queued, up to [`BATCH`].
    fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        // The pointers are rebuilt on every call, right before the system
        // call, from the current borrows; the kernel also rewrites the
        // lengths, so they must be reset anyway.
        for (header, slot) in self.receive_headers.iter_mut().zip(self.slots.iter_mut()) {
            slot.receive_iovec = libc::iovec {
                iov_base: slot.query.as_mut_ptr().cast(),
                iov_len: QUERY_BYTES,
            };
            let message = &mut header.msg_hdr;
            message.msg_name = ptr::from_mut(&mut slot.source).cast();
            message.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            message.msg_iov = &raw mut slot.receive_iovec;
            message.msg_iovlen = 1;
            message.msg_control = slot.receive_control.bytes.as_mut_ptr().cast();
            message.msg_controllen = CONTROL_BYTES as _;
            message.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: `receive_headers` holds BATCH initialised headers, each
        // pointing at its own slot's address, iovec (one buffer of
        // QUERY_BYTES) and control buffer (CONTROL_BYTES), all of which live
        // in `self` and stay put for the duration of the call. No timeout:
        // `UdpService::stop` wakes the wait by shutting the socket down.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.receive_headers.as_mut_ptr(),
                BATCH as _,
                libc::MSG_WAITFORONE as _,
                ptr::null_mut(),
            )
        };
        match usize::try_from(received) {
            Ok(received) => Ok(received.min(BATCH)),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }

    /// Answers the first `received` datagrams and queues the replies in
    /// `send_headers`; returns how many were queued. Dropped datagrams are
    /// counted here, replies once their fate is known in [`Batch::send`].
    fn answer<S, A>(
        &mut self,
        received: usize,
        worker: &Worker<'_>,
        snapshot: &S,
        answer: &A,
        counters: &WorkerCounters,
    ) -> usize
    where
        A: Fn(&S, &[u8], Transport, IpAddr, &mut Vec<u8>) -> Outcome,
    {
        let mut queued = 0;
        for (header, slot) in self
            .receive_headers
            .iter()
            .zip(self.slots.iter_mut())
            .take(received)
        {
            let message = &header.msg_hdr;
            let length = header.msg_len as usize;
            // A truncated query is malformed; so is one without a usable source.
            let truncated = message.msg_flags & libc::MSG_TRUNC != 0;
            let source = socket_ip(&slot.source, message.msg_namelen);
            let (false, Some(source), Some(query)) = (truncated, source, slot.query.get(..length))
            else {
                counters.record(Transport::Udp, Outcome::Drop);
                continue;
            };
            // Updates are the control plane's, which replies itself.
            if let Some(updates) = worker.updates
                && crate::update::is_update(query)
                && let Some(to) = socket_address(&slot.source, message.msg_namelen)
                && updates.offer(query, source, || crate::update::Reply::Datagram {
                    socket: Arc::clone(worker.socket),
                    to,
                    // On a wildcard socket the reply must come from the
                    // address the update was sent to.
                    from: ReplySource(if worker.wildcard {
                        read_destination(&slot.receive_control, control_length_of(message))
                    } else {
                        Destination::Unknown
                    }),
                })
            {
                continue;
            }
            let outcome = answer(snapshot, query, Transport::Udp, source, &mut slot.response);
            if let Outcome::OverLimit {
                action: OverLimit::Dropped | OverLimit::Slipped | OverLimit::DryRun,
                ..
            } = outcome
            {
                counters.note_limited(source);
            }
            if !outcome.is_sent() {
                counters.record(Transport::Udp, outcome);
                continue;
            }

            let destination = if worker.wildcard {
                read_destination(&slot.receive_control, control_length_of(message))
            } else {
                Destination::Unknown
            };
            let control_length = write_source(&mut slot.send_control, destination);
            slot.send_iovec = libc::iovec {
                iov_base: slot.response.as_mut_ptr().cast(),
                iov_len: slot.response.len(),
            };
            let reply = &mut self.send_headers[queued].msg_hdr;
            reply.msg_name = ptr::from_mut(&mut slot.source).cast();
            reply.msg_namelen = message.msg_namelen;
            reply.msg_iov = &raw mut slot.send_iovec;
            reply.msg_iovlen = 1;
            reply.msg_control = if control_length == 0 {
                ptr::null_mut()
            } else {
                slot.send_control.bytes.as_mut_ptr().cast()
            };
            reply.msg_controllen = control_length as _;
            reply.msg_flags = 0;
            self.send_outcomes[queued] = outcome;
            queued += 1;
        }
        queued
    }

    /// Sends the first `queued` replies, retrying after partial sends. Never
    /// blocks: when the socket buffer is full the rest is counted as dropped.
    fn send(&mut self, fd: RawFd, queued: usize, counters: &WorkerCounters) {
        let mut sent = 0;
        while sent < queued {
            let remaining = &mut self.send_headers[sent..queued];
            // SAFETY: `remaining` holds initialised headers filled by
            // `answer` for this batch; each points at its slot's source
            // address, one iovec over the response bytes and, when non-null,
            // a control buffer of `msg_controllen` bytes, all living in
            // `self` and untouched until the call returns.
            let result = unsafe {
                libc::sendmmsg(
                    fd,
                    remaining.as_mut_ptr(),
                    remaining.len() as _,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if let Ok(count @ 1..) = usize::try_from(result) {
                for &outcome in &self.send_outcomes[sent..sent + count] {
                    counters.record(Transport::Udp, outcome);
                }
                sent += count;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => {}
                // The socket buffer is full: the rest would fail as well.
                Some(libc::EAGAIN | libc::ENOBUFS) | None => {
                    for _ in sent..queued {
                        counters.record(Transport::Udp, Outcome::Drop);
                    }
                    return;
                }
                // The error belongs to the first message (say, an unreachable
                // destination): skip it and send the others.
                Some(_) => {
                    tracing::debug!(%error, "UDP reply not sent");
                    counters.record(Transport::Udp, Outcome::Drop);
                    sent += 1;
                }
            }
        }
    }
}

/// The ancillary data length the kernel reported for a datagram.
#[allow(
    clippy::unnecessary_cast,
    reason = "`msg_controllen` is a `size_t` on glibc but a `socklen_t` on musl"
)]
fn control_length_of(message: &libc::msghdr) -> usize {
    message.msg_controllen as usize
}

/// The IP address in a `sockaddr_storage` filled by the kernel.
fn socket_ip(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<IpAddr> {
    let length = length as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if length >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family and length say the storage holds a
            // `sockaddr_in`; `sockaddr_storage` is large and aligned enough
            // for any socket address.
            let address = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                address.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 if length >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for `sockaddr_in6`.
            let address = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(address.sin6_addr.s6_addr)).to_canonical())
        }
        _ => None,
    }
}

/// The address and port in `storage`, as [`socket_ip`] reads the address.
fn socket_address(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<SocketAddr> {
    let ip = socket_ip(storage, length)?;
    let port = match libc::c_int::from(storage.ss_family) {
        // SAFETY: `socket_ip` checked the family and the length.
        libc::AF_INET => unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() }.sin_port,
        // SAFETY: as above.
        _ => unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() }.sin6_port,
    };
    // An IPv4 client of an IPv6 socket is answered at its mapped address.
    let ip = match (libc::c_int::from(storage.ss_family), ip) {
        (libc::AF_INET6, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        _ => ip,
    };
    Some(SocketAddr::new(ip, u16::from_be(port)))
}

/// Finds the packet-info message among the ancillary data of a datagram.
fn read_destination(control: &Control, length: usize) -> Destination {
    let mut header: libc::msghdr = zeroed();
    header.msg_control = control.bytes.as_ptr().cast_mut().cast();
    header.msg_controllen = length.min(CONTROL_BYTES) as _;
    // SAFETY: `header` describes `length` bytes of `control` (clamped to its
    // size), which the kernel filled with well-formed cmsg records;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay within that range and return null at its
    // end. Records are read unaligned and only after checking that their
    // length covers the payload read.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&header);
        while !message.is_null() {
            let record = ptr::read_unaligned(message);
            let data = libc::CMSG_DATA(message);
            let payload = (record.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if record.cmsg_level == libc::IPPROTO_IP
                && record.cmsg_type == libc::IP_PKTINFO
                && payload >= size_of::<libc::in_pktinfo>()
            {
                let info = ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                return Destination::V4(info.ipi_spec_dst);
            }
            if record.cmsg_level == libc::IPPROTO_IPV6
                && record.cmsg_type == libc::IPV6_PKTINFO
                && payload >= size_of::<libc::in6_pktinfo>()
            {
                let info = ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                return Destination::V6(info.ipi6_addr, info.ipi6_ifindex);
            }
            message = libc::CMSG_NXTHDR(&header, message);
        }
    }
    Destination::Unknown
}

/// Writes the ancillary data that makes a reply leave from `destination`;
/// returns its length (0: none needed).
fn write_source(control: &mut Control, destination: Destination) -> usize {
    match destination {
        Destination::Unknown => 0,
        // The interface is left to routing (index 0): only the source address
        // is pinned, as forcing the arrival interface breaks asymmetric routes.
        Destination::V4(address) => write_control(
            control,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: address,
                ipi_addr: libc::in_addr { s_addr: 0 },
            },
        ),
        // IPv6 keeps the interface: link-local addresses need it.
        Destination::V6(address, interface) => write_control(
            control,
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            libc::in6_pktinfo {
                ipi6_addr: address,
                ipi6_ifindex: interface,
            },
        ),
    }
}

/// Writes one cmsg record holding `value`; returns the control length.
fn write_control<T: Copy>(
    control: &mut Control,
    level: libc::c_int,
    kind: libc::c_int,
    value: T,
) -> usize {
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic on the payload size.
    let (space, length) = unsafe {
        (
            libc::CMSG_SPACE(size_of::<T>() as _) as usize,
            libc::CMSG_LEN(size_of::<T>() as _),
        )
    };
    if space > CONTROL_BYTES {
        return 0;
    }
    control.bytes[..space].fill(0);
    let mut header: libc::msghdr = zeroed();
    header.msg_control = control.bytes.as_mut_ptr().cast();
    header.msg_controllen = space as _;
    // SAFETY: `header` describes the first `space` bytes of `control`, which
    // were just checked to fit; CMSG_FIRSTHDR therefore returns a non-null
    // pointer to its start and CMSG_DATA(...) + size_of::<T>() ends within
    // `space`. Writes are unaligned-safe.
    unsafe {
        let message = libc::CMSG_FIRSTHDR(&header);
        let mut record: libc::cmsghdr = ptr::read_unaligned(message);
        record.cmsg_len = length as _;
        record.cmsg_level = level;
        record.cmsg_type = kind;
        ptr::write_unaligned(message, record);
        ptr::write_unaligned(libc::CMSG_DATA(message).cast::<T>(), value);
    }
    space
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Echoes the query, prefixed with the source address's family (4 or 6);
    /// packets starting with 0xFF are dropped.
    fn echo(
        _: &(),
        packet: &[u8],
        transport: Transport,
        source: IpAddr,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        assert_eq!(transport, Transport::Udp);
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

    fn start_echo(addresses: &[SocketAddr], workers: usize, metrics: &Metrics) -> UdpService {
        start_with(addresses, (workers, None), metrics, || (), echo).expect("start UDP service")
    }

    fn client(bind: &str) -> UdpSocket {
        let socket = UdpSocket::bind(bind).expect("bind client");
        socket
            .set_read_timeout(Some(TIMEOUT))
            .expect("client timeout");
        socket
    }

    fn ipv6_available() -> bool {
        UdpSocket::bind("[::1]:0").is_ok()
    }

    #[test]
    fn port_zero_resolves_and_workers_share_it() {
        let metrics = Metrics::default();
        let service = start_echo(&["127.0.0.1:0".parse().expect("address")], 3, &metrics);
        let [address] = service.local_addrs() else {
            panic!("one address expected")
        };
        assert_ne!(address.port(), 0);
        assert_eq!(address.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        // Many client ports hash onto different workers; all must answer.
        for index in 0..20u8 {
            let socket = client("127.0.0.1:0");
            socket.send_to(&[index], address).expect("send");
            let mut buffer = [0u8; 64];
            let (length, from) = socket.recv_from(&mut buffer).expect("reply");
            assert_eq!(&buffer[..length], &[4, index]);
            assert_eq!(from, *address);
        }
        service.stop();
        assert_eq!(metrics.totals().answered_total(Transport::Udp), 20);
    }

    #[test]
    fn batch_from_many_sockets_answered_to_each_source() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            if bind.starts_with('[') && !ipv6_available() {
                continue;
            }
            let metrics = Metrics::default();
            let service = start_echo(&[bind.parse().expect("address")], 1, &metrics);
            let address = service.local_addrs()[0];
            let clients: Vec<UdpSocket> = (0..8).map(|_| client(bind)).collect();
            // Send everything first so that the worker sees full batches.
            for round in 0..10u8 {
                for (index, socket) in clients.iter().enumerate() {
                    socket
                        .send_to(&[index as u8, round], address)
                        .expect("send");
                }
            }
            let family = if address.is_ipv4() { 4 } else { 6 };
            for (index, socket) in clients.iter().enumerate() {
                let mut rounds = HashSet::new();
                for _ in 0..10 {
                    let mut buffer = [0u8; 64];
                    let (length, from) = socket.recv_from(&mut buffer).expect("reply");
                    assert_eq!(from, address);
                    assert_eq!(length, 3);
                    assert_eq!(buffer[..2], [family, index as u8]);
                    rounds.insert(buffer[2]);
                }
                assert_eq!(rounds.len(), 10);
            }
            service.stop();
            assert_eq!(metrics.totals().answered_total(Transport::Udp), 80);
        }
    }

    #[test]
    fn dropped_and_truncated_queries_are_counted_not_answered() {
        let metrics = Metrics::default();
        let service = start_echo(&["127.0.0.1:0".parse().expect("address")], 1, &metrics);
        let address = service.local_addrs()[0];
        let socket = client("127.0.0.1:0");
        socket.send_to(&[0xFF, 1], address).expect("send dropped");
        socket
            .send_to(&vec![7u8; QUERY_BYTES + 1], address)
            .expect("send oversized");
        socket.send_to(&[1, 2, 3], address).expect("send good");
        let mut buffer = [0u8; 64];
        let (length, _) = socket.recv_from(&mut buffer).expect("reply");
        // The only reply is to the good query.
        assert_eq!(&buffer[..length], &[4, 1, 2, 3]);
        service.stop();
        let totals = metrics.totals();
        assert_eq!(totals.answered_total(Transport::Udp), 1);
        assert_eq!(totals.dropped[0], 2);
    }

    #[test]
    fn wildcard_bind_answers_from_the_queried_address() {
        let metrics = Metrics::default();
        let service = start_echo(&["0.0.0.0:0".parse().expect("address")], 2, &metrics);
        let port = service.local_addrs()[0].port();
        assert_ne!(port, 0);
        // 127.0.0.2 is local too; without packet info the reply would leave
        // from 127.0.0.1, the address routing picks towards the client.
        for target in ["127.0.0.1", "127.0.0.2"] {
            let target = SocketAddr::new(target.parse().expect("address"), port);
            let socket = client("127.0.0.1:0");
            socket.send_to(&[9], target).expect("send");
            let mut buffer = [0u8; 64];
            let (length, from) = socket.recv_from(&mut buffer).expect("reply");
            assert_eq!(&buffer[..length], &[4, 9]);
            assert_eq!(from, target);
        }
        service.stop();
    }

    #[test]
    fn wildcard_ipv6_bind_answers_from_loopback() {
        if !ipv6_available() {
            return;
        }
        let metrics = Metrics::default();
        // Both families side by side on the same port: V6ONLY makes it legal.
        let service = start_echo(
            &[
                "[::]:0".parse().expect("address"),
                "0.0.0.0:0".parse().expect("address"),
            ],
            1,
            &metrics,
        );
        let target = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), service.local_addrs()[0].port());
        let socket = client("[::1]:0");
        socket.send_to(&[5], target).expect("send");
        let mut buffer = [0u8; 64];
        let (length, from) = socket.recv_from(&mut buffer).expect("reply");
        assert_eq!(&buffer[..length], &[6, 5]);
        assert_eq!(from, target);
        service.stop();
    }

    #[test]
    fn explicit_shared_port_and_prompt_stop() {
        let metrics = Metrics::default();
        let first = start_echo(&["127.0.0.1:0".parse().expect("address")], 1, &metrics);
        let address = first.local_addrs()[0];
        first.stop();
        // The port is free again and can be bound explicitly.
        let service = start_echo(&[address], 2, &metrics);
        assert_eq!(service.local_addrs(), &[address]);
        let started = Instant::now();
        service.stop();
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    /// An integer socket option's value.
    fn read_option(socket: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut length = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the socket is open; value and length point to live locals
        // of the sizes passed.
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                ptr::from_mut(&mut value).cast(),
                &mut length,
            )
        };
        assert_eq!(result, 0, "getsockopt: {}", io::Error::last_os_error());
        value
    }

    #[test]
    fn replies_are_never_fragmented_nor_sized_by_icmp() {
        for (address, level, name, probe) in [
            (
                "127.0.0.1:0",
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            ),
            (
                "0.0.0.0:0",
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            ),
            (
                "[::1]:0",
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            ),
        ] {
            let socket = bind_udp_socket(address.parse().expect("address")).expect("bind");
            assert_eq!(read_option(&socket, level, name), probe, "{address}");
        }
        // The kernel's default (per-route discovery) is what the option
        // replaces: a socket bound without it reports something else.
        let plain = UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert_ne!(
            read_option(&plain, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_PROBE
        );
    }

    #[test]
    fn zero_workers_is_an_error() {
        let metrics = Metrics::default();
        let result = start_with(
            &["127.0.0.1:0".parse().expect("address")],
            (0, None),
            &metrics,
            || (),
            echo,
        );
        assert!(result.is_err());
    }
}
