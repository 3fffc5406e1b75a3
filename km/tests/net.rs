//! Sockets: loopback exchanges of every family and the ancillary data that
//! crosses the isolation boundary (SCM_RIGHTS both ways, credentials), run
//! natively and under km with the same output. Only 127.0.0.1, ::1 and
//! UNIX sockets in the run's own directory are used.

#[allow(dead_code)]
mod support;

use support::Case;

fn net(mode: &str) {
    let out = Case::new("net", &[mode]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "done"), "{mode}: no done line");
}

#[test]
fn tcp_over_ipv4_and_ipv6() {
    net("tcp4");
    net("tcp6");
}

#[test]
fn udp_datagrams() {
    net("udp");
}

#[test]
fn unix_sockets_named_and_abstract() {
    net("unix");
    net("abstract");
}

#[test]
fn scm_rights_and_credentials() {
    net("rights");
    net("creds");
}

#[test]
fn message_flags_and_nonblocking() {
    net("flags");
    net("nonblock");
    net("mmsg");
}

#[test]
fn socket_options() {
    net("options");
}

/// O_ASYNC with F_SETOWN (SIGIO, F_SETSIG's signal and si_fd), SIGURG on
/// out-of-band data, SIOCATMARK.
#[test]
fn sigio_and_sigurg() {
    net("async");
}

/// SCM_RIGHTS truncated by the control buffer and by RLIMIT_NOFILE
/// (MSG_CTRUNC), SOCK_SEQPACKET, SCM_TIMESTAMP, raw ICMP and packet sockets
/// where the host allows them, MSG_NOSIGNAL against SIGPIPE.
#[test]
fn ancillary_edges_raw_and_sigpipe() {
    net("more");
}

/// epoll edge-triggered, one-shot and exclusive.
#[test]
fn epoll_modes() {
    net("epoll");
}

/// A handler interrupting a blocked socket call: restarted under
/// SA_RESTART, unless the socket has a timeout (then EINTR, as Linux).
#[test]
fn socket_timeouts_are_not_restarted() {
    net("timeo");
}

#[test]
fn wild_pointers_in_socket_calls() {
    net("hostile");
}

/// Rust's std::net and UNIX sockets: TCP on IPv4 and IPv6, UDP, streams
/// and datagrams.
#[test]
fn rust_std_net() {
    net_program("rust-net");
}

fn net_program(name: &str) {
    let out = Case::new(name, &[]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "done"), "{name}: no done line");
}

/// Go's net/http server and client in one program (IPv4 and IPv6), and
/// net.Interfaces, which reads the interface list over netlink.
#[test]
fn go_http_and_netlink() {
    let out = Case::new("go-http", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tcp6 20 concurrent requests ok: true"), "{text}");
}
