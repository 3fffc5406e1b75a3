//! Rust std::net and std::os::unix::net over loopback: a TCP echo server
//! and client on IPv4 and IPv6, UDP, and UNIX streams and datagrams in the
//! run's directory. Prints only what is the same natively and under km.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::thread;

fn tcp(addr: &str) {
    let listener = TcpListener::bind(addr).expect("bind");
    let local = listener.local_addr().expect("local_addr");
    let server = thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut all = Vec::new();
        conn.read_to_end(&mut all).expect("server read");
        conn.write_all(&all).expect("server write");
        peer.is_ipv6() == local.is_ipv6()
    });
    let mut client = TcpStream::connect(local).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    client.write_all(&data).expect("client write");
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("client read");
    let same_family = server.join().expect("server thread");
    println!(
        "tcp {}: echoed {} bytes, equal: {}, peer family: {}",
        if local.is_ipv6() { "v6" } else { "v4" },
        back.len(),
        back == data,
        same_family
    );
}

fn udp() {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    a.send_to(b"datagram", b.local_addr().expect("addr")).expect("send_to");
    let mut buf = [0u8; 32];
    let (n, from) = b.recv_from(&mut buf).expect("recv_from");
    println!("udp: {} from a: {}", String::from_utf8_lossy(&buf[..n]), from == a.local_addr().expect("addr"));
}

fn unix() {
    let listener = UnixListener::bind("sock").expect("unix bind");
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("unix accept");
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf).expect("unix read");
        conn.write_all(&buf[..n]).expect("unix write");
    });
    let mut client = UnixStream::connect("sock").expect("unix connect");
    client.write_all(b"over unix").expect("write");
    let mut buf = [0u8; 16];
    let n = client.read(&mut buf).expect("read");
    server.join().expect("server");
    let (x, y) = UnixDatagram::pair().expect("pair");
    x.send(b"dgram").expect("send");
    let mut d = [0u8; 8];
    let m = y.recv(&mut d).expect("recv");
    println!("unix: {} / {}", String::from_utf8_lossy(&buf[..n]), String::from_utf8_lossy(&d[..m]));
    std::fs::remove_file("sock").expect("remove");
}

fn main() {
    tcp("127.0.0.1:0");
    tcp("[::1]:0");
    udp();
    unix();
    println!("done");
}
