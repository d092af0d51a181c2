//! A dnstap collector on a socket (`query_log.socket`): the connection,
//! Frame Streams' bidirectional handshake, and reconnecting.
//!
//! Collectors (fstrm_capture, dnscollector, Vector, dnstap-ldns) are
//! services of their own: they restart, and they may start after Steer.
//! So a collector that is not there never stops Steer from starting or
//! answering: the writer thread tries to connect, and while it cannot,
//! entries are dropped and counted, with one warning per outage and
//! attempts again after 1 s, doubling to 30 s. Writes time out, so a
//! collector that stops reading is treated as gone rather than holding
//! the writer (the workers never wait for it either way). What was
//! buffered for a connection that broke is lost with it.

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::dnstap;
use crate::config::QueryLogOutput;
use crate::metrics::Metrics;

/// How long a connect, a handshake read or one write may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stop waits for the collector's FINISH.
const FINISH_WAIT: Duration = Duration::from_secs(1);
/// First wait before connecting again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What is buffered before a write to the socket.
const BUFFER: usize = 64 * 1024;

/// A connected socket of either kind.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(address: &QueryLogOutput) -> io::Result<Stream> {
        let stream = match address {
            QueryLogOutput::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            QueryLogOutput::Tcp(address) => {
                let stream = TcpStream::connect_timeout(address, TIMEOUT)?;
                // Frames go out in 64 KiB writes; nothing to gain by holding them.
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            QueryLogOutput::File(path) => {
                return Err(io::Error::other(format!("{} is a file", path.display())));
            }
        };
        stream.set_read_timeout(TIMEOUT)?;
        match &stream {
            Stream::Unix(socket) => socket.set_write_timeout(Some(TIMEOUT))?,
            Stream::Tcp(socket) => socket.set_write_timeout(Some(TIMEOUT))?,
        }
        Ok(stream)
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.set_read_timeout(Some(timeout)),
            Stream::Tcp(stream) => stream.set_read_timeout(Some(timeout)),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(stream) => stream.shutdown(Shutdown::Both),
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.read(buffer),
            Stream::Tcp(stream) => stream.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.write(buffer),
            Stream::Tcp(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer's connection to the collector, when there is one.
pub struct Collector {
    address: QueryLogOutput,
    stream: Option<BufWriter<Stream>>,
    /// When to try to connect next, while there is no connection.
    retry_at: Instant,
    backoff: Duration,
    /// Whether this outage was logged.
    warned: bool,
}

impl Collector {
    /// Not connected yet: the first [`Collector::writer`] connects.
    pub fn new(address: QueryLogOutput) -> Collector {
        Collector {
            address,
            stream: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            warned: false,
        }
    }

    /// The connection to write frames to, connecting first when there is
    /// none and it is time to try; `None` while the collector is away.
    pub fn writer(&mut self, metrics: &Metrics) -> Option<&mut BufWriter<Stream>> {
        if self.stream.is_none() && Instant::now() >= self.retry_at {
            match self.connect() {
                Ok(stream) => {
                    tracing::info!(collector = %self.address, "sending the dnstap query log");
                    self.stream = Some(stream);
                    self.backoff = FIRST_BACKOFF;
                    self.warned = false;
                    metrics.query_log_connected.store(2, Ordering::Relaxed);
                }
                Err(error) => self.lost(&error, metrics),
            }
        }
        self.stream.as_mut()
    }

    /// Opens the socket and shakes hands: READY, ACCEPT, START.
    fn connect(&self) -> io::Result<BufWriter<Stream>> {
        let mut stream = Stream::connect(&self.address)?;
        dnstap::ready(&mut stream)?;
        dnstap::read_accept(&mut stream)?;
        let mut writer = BufWriter::with_capacity(BUFFER, stream);
        dnstap::start(&mut writer)?;
        Ok(writer)
    }

    /// The connection failed (or could not be made): it is dropped with
    /// what it buffered, and the next attempt waits.
    pub fn lost(&mut self, error: &io::Error, metrics: &Metrics) {
        if let Some(writer) = self.stream.take() {
            // Not flushed: the connection is what failed.
            let (stream, _) = writer.into_parts();
            stream.shutdown();
        }
        metrics.query_log_connected.store(1, Ordering::Relaxed);
        if !self.warned {
            tracing::warn!(
                collector = %self.address,
                %error,
                "cannot send the dnstap query log; entries are dropped until the collector is back"
            );
            self.warned = true;
        }
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Sends what is buffered (the channel ran dry), and connects when
    /// the collector was away and it is time to try again.
    pub fn idle(&mut self, metrics: &Metrics) {
        if let Some(writer) = self.writer(metrics)
            && let Err(error) = writer.flush()
        {
            self.lost(&error, metrics);
        }
    }

    /// Ends the stream: STOP, then the collector's FINISH, briefly waited
    /// for.
    pub fn close(&mut self) {
        let Some(mut writer) = self.stream.take() else {
            return;
        };
        if dnstap::stop(&mut writer).is_ok() && writer.flush().is_ok() {
            let (mut stream, _) = writer.into_parts();
            let finished = stream
                .set_read_timeout(FINISH_WAIT)
                .and_then(|()| dnstap::read_finish(&mut stream));
            if let Err(error) = finished {
                tracing::debug!(collector = %self.address, %error, "no FINISH from the collector");
            }
            stream.shutdown();
        }
    }
}
