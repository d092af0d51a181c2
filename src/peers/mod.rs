//! The fleet's other nodes, as `[peers]` lists them: how their URLs
//! are checked and how this node reads JSON from them (control plane).
//!
//! Nodes share what only one of them can see: what their own probes say
//! ([`crate::health::peers`]) and the real-user measurements posted to them
//! ([`crate::latency::sharing`]). Both are pulled: each node fetches from
//! the others' read-only listeners (`peers.listen`, or their admin APIs)
//! on an interval, so a node that is down or slow
//! costs the others one failed fetch per interval and nothing else, and
//! nothing has to be pushed to a node that just restarted.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// The largest body read from a peer: ample for a view of tens of
/// thousands of targets or a page of the latency journal, and a bound on
/// what a broken peer can make this node buffer.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The host's name, the default `health.node`; `steer` when the system
/// has none that is printable.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes
    // at most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let length = buffer.iter().position(|&byte| byte == 0).unwrap_or(0);
    match std::str::from_utf8(&buffer[..length]) {
        Ok(name) if result == 0 && !name.is_empty() && name.len() <= 64 => {
            if name.bytes().all(|byte| byte.is_ascii_graphic()) {
                return name.to_owned();
            }
            "steer".to_owned()
        }
        _ => "steer".to_owned(),
    }
}

/// Checks a peer's URL as written in `peers.urls`: `http` or
/// `https`, a host, nothing after the path. Returns it without a trailing
/// slash, ready for a path to be appended.
pub fn base_url(text: &str) -> Result<String, String> {
    if !text.starts_with("http://") && !text.starts_with("https://") {
        return Err(format!(
            "\"{text}\" must start with http:// or https:// (a peer's admin API)"
        ));
    }
    let url =
        reqwest::Url::parse(text).map_err(|error| format!("\"{text}\" is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "\"{text}\" must start with http:// or https:// (a peer's admin API)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the text holds a password.
        return Err("must not carry credentials; use peers.token_file".to_owned());
    }
    if url.host().is_none() {
        return Err(format!("\"{text}\" has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("\"{text}\" must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The HTTP client for the peers: names the node in its `User-Agent`,
/// never follows redirects nor goes through a proxy, and trusts only the
/// CA of `ca` (PEM, `peers.ca_file`) when there is one.
pub fn client(node: &str, ca: Option<&[u8]>) -> Result<reqwest::Client, String> {
    crate::probe::check::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(crate::probe::check::user_agent(node))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca {
        builder = builder.tls_certs_only(crate::admin::tls::ca_certificates(pem)?);
    }
    builder
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// GETs `url` with `client`, sending `token` if there is one, and reads
/// the JSON body as `T`. The error is one line for logs and `/status`.
pub async fn fetch_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<T, String> {
    let mut request = client.get(url).timeout(timeout);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|error| describe(&error))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("the answer is larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|error| format!("the answer is not valid: {error}"))
}

/// One line for an HTTP client error, with its cause (reqwest's own text
/// stops at "error sending request").
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_and_lose_their_trailing_slash() {
        assert_eq!(
            base_url("http://10.0.0.2:8053/").as_deref(),
            Ok("http://10.0.0.2:8053")
        );
        assert_eq!(
            base_url("https://[2001:db8::2]:8053/steer/").as_deref(),
            Ok("https://[2001:db8::2]:8053/steer")
        );
        for (text, expected) in [
            ("10.0.0.2:8053", "http:// or https://"),
            ("http://", "not a URL"),
            ("ftp://10.0.0.2/", "http:// or https://"),
            ("http://10.0.0.2:8053/?x=1", "query"),
            ("http://admin:secret@10.0.0.2:8053", "credentials"),
        ] {
            let error = base_url(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
            assert!(
                !error.contains("secret"),
                "a password is never echoed: {error}"
            );
        }
    }

    /// Serves `response` (a whole HTTP response) to one connection, after
    /// reading its request head; returns the address.
    async fn serve_once(response: Vec<u8>) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => head.extend_from_slice(&buffer[..read]),
                }
            }
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        });
        address
    }

    fn response(status: &str, body: &[u8]) -> Vec<u8> {
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        response
    }

    async fn fetch(response: Vec<u8>) -> Result<serde_json::Value, String> {
        let address = serve_once(response).await;
        let client = client("test", None).expect("client");
        fetch_json(
            &client,
            &format!("http://{address}/view"),
            Some("token-0123456789abcdef"),
            Duration::from_secs(5),
        )
        .await
    }

    #[tokio::test]
    async fn a_broken_peer_gets_a_one_line_error_and_never_a_panic() {
        let good = fetch(response("200 OK", br#"{"node":"b"}"#)).await;
        assert_eq!(good.expect("JSON")["node"], "b");
        let refused = fetch(response("401 Unauthorized", b"{}")).await;
        assert_eq!(refused, Err("HTTP 401".to_owned()));
        let garbage = fetch(response("200 OK", b"<html>"))
            .await
            .expect_err("garbage");
        assert!(garbage.starts_with("the answer is not valid"), "{garbage}");
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        let huge = fetch(response("200 OK", &huge))
            .await
            .expect_err("too large");
        assert_eq!(
            huge,
            format!("the answer is larger than {MAX_BODY_BYTES} bytes")
        );
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address")
        };
        let client = client("test", None).expect("client");
        let url = format!("http://{closed}/view");
        let error = fetch_json::<serde_json::Value>(&client, &url, None, Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(error.contains("onnection refused"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }
}
