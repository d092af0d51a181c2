//! Readiness for systemd's `Type=notify` services (sd_notify(3)), without
//! libsystemd.
//!
//! When systemd starts a service with `Type=notify` it sets
//! `NOTIFY_SOCKET` to a Unix datagram socket (a path, or an abstract name
//! written with a leading `@`). Steer sends `READY=1` once DNS and the
//! admin API are listening, so units ordered after it start only when
//! Steer answers, and `STOPPING=1` when it begins to shut down. Without
//! the variable nothing is sent; a send that fails is logged at debug
//! level and changes nothing, since readiness is advisory.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket, state) {
        tracing::debug!(%error, state, "could not notify the service manager");
    }
}

fn send(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sender.send_to_addr(state.as_bytes(), &address)?;
    } else {
        sender.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reaches_a_path_socket_and_an_abstract_one() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("notify");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1").expect("send");
        let mut buffer = [0u8; 64];
        let length = receiver.recv(&mut buffer).expect("receive");
        assert_eq!(&buffer[..length], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("steer-test-{}", std::process::id());
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let abstract_receiver = UnixDatagram::bind_addr(&address).expect("bind abstract");
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        let length = abstract_receiver.recv(&mut buffer).expect("receive");
        assert_eq!(&buffer[..length], b"STOPPING=1");
    }
}
