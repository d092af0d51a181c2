//! The EDNS compliance checks of ISC's DNS Compliance Testing (the
//! `genreport` tests behind ednscomp.isc.org, and RFC 8906's "failure to
//! communicate" cases), asked with Debian's `dig` exactly as that tool
//! asks them, against the real server on loopback.
//!
//! Each case names the test as genreport does and asserts what a
//! compliant authoritative server answers: NOERROR with AA to plain
//! queries, the header's Z bit and unknown EDNS flags never echoed
//! (RFC 6891 §6.1.4 "MBZ"), unknown options ignored and not echoed,
//! BADVERS with version 0 for EDNS version 1, DO copied, unknown types
//! answered NODATA (RFC 3597), and EDNS over TCP.

mod common;

use common::{Family, TestServer, Transport};

/// `dig` against `server`'s UDP (or TCP) port for `example.test` with
/// `arguments`: its whole output.
async fn dig(server: &TestServer, arguments: &str) -> String {
    let mut command = vec!["example.test".to_owned()];
    command.extend(arguments.split_whitespace().map(str::to_owned));
    common::tools::dig_text(server.dns_addr(Transport::Udp, Family::V4), command).await
}

fn assert_has(output: &str, expected: &str) {
    assert!(
        output.contains(expected),
        "missing {expected:?} in\n{output}"
    );
}

fn assert_lacks(output: &str, unexpected: &str) {
    assert!(!output.contains(unexpected), "{unexpected:?} in\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ednscomp_check_passes() {
    let server = TestServer::start(&[("example.test.zone", common::EXAMPLE_ZONE)]).await;

    // dns: plain DNS, no OPT back.
    let plain = dig(&server, "+noedns +noad +norec soa").await;
    assert_has(&plain, "status: NOERROR");
    assert_has(&plain, "flags: qr aa;");
    assert_lacks(&plain, "OPT PSEUDOSECTION");

    // zflag: the header's Z bit is not echoed.
    let zflag = dig(&server, "+noedns +noad +norec +zflag soa").await;
    assert_has(&zflag, "status: NOERROR");
    assert_lacks(&zflag, "MBZ");

    // edns: OPT back, version 0, no options asked, none sent.
    let edns = dig(&server, "+edns=0 +nocookie +noad +norec soa").await;
    assert_has(&edns, "status: NOERROR");
    assert_has(&edns, "EDNS: version: 0, flags:; udp: 1232");

    // edns1: BADVERS, with version 0 and no answer.
    let edns1 = dig(&server, "+edns=1 +noednsneg +nocookie +noad +norec soa").await;
    assert_has(&edns1, "status: BADVERS");
    assert_has(&edns1, "EDNS: version: 0,");
    assert_has(&edns1, "ANSWER: 0,");

    // ednsopt and edns1opt: an unknown option is ignored, never echoed.
    let ednsopt = dig(&server, "+edns=0 +nocookie +noad +norec +ednsopt=100 soa").await;
    assert_has(&ednsopt, "status: NOERROR");
    assert_lacks(&ednsopt, "OPT=100");
    let edns1opt = dig(
        &server,
        "+edns=1 +noednsneg +nocookie +noad +norec +ednsopt=100 soa",
    )
    .await;
    assert_has(&edns1opt, "status: BADVERS");
    assert_lacks(&edns1opt, "OPT=100");

    // do: the DO bit is copied.
    let dnssec_ok = dig(&server, "+edns=0 +nocookie +noad +norec +dnssec soa").await;
    assert_has(&dnssec_ok, "EDNS: version: 0, flags: do; udp: 1232");

    // ednsflags: an unknown EDNS flag is not echoed.
    let ednsflags = dig(
        &server,
        "+edns=0 +nocookie +noad +norec +ednsflags=0x80 soa",
    )
    .await;
    assert_has(&ednsflags, "status: NOERROR");
    assert_has(&ednsflags, "EDNS: version: 0, flags:; udp: 1232");
    assert_lacks(&ednsflags, "MBZ");

    // optlist: NSID (none configured), ECS 0/0 (scope 0), a cookie, EXPIRE
    // (not a secondary: ignored).
    let optlist = dig(
        &server,
        "+edns=0 +noad +norec +nsid +subnet=0.0.0.0/0 +expire +cookie soa",
    )
    .await;
    assert_has(&optlist, "status: NOERROR");
    assert_has(&optlist, "CLIENT-SUBNET: 0.0.0.0/0/0");
    assert_has(&optlist, "(good)");
    assert_lacks(&optlist, "EXPIRE");

    // type666: an unknown type is NODATA with the SOA (RFC 3597).
    let unknown = dig(&server, "+noedns +noad +norec type666").await;
    assert_has(&unknown, "status: NOERROR");
    assert_has(&unknown, "ANSWER: 0, AUTHORITY: 1,");

    // ednstcp: EDNS over TCP.
    let tcp = dig(&server, "+edns=0 +nocookie +noad +norec +tcp soa").await;
    assert_has(&tcp, "status: NOERROR");
    assert_has(&tcp, "EDNS: version: 0,");

    // edns512: with DO and a 512-byte buffer, the answer fits or is
    // truncated, never larger.
    let small = dig(
        &server,
        "+edns=0 +dnssec +bufsize=512 +ignore +nocookie +noad +norec dnskey",
    )
    .await;
    assert_has(&small, "status: NOERROR");
    let size: usize = small
        .lines()
        .find_map(|line| line.split("MSG SIZE  rcvd: ").nth(1))
        .and_then(|size| size.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in\n{small}"));
    assert!(size <= 512, "{size} bytes");
    server.shutdown().await;
}
