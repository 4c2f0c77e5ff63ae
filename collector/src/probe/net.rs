//! TCP and ICMP probes.
//!
//! ICMP echo uses Linux's unprivileged "ping" sockets (`SOCK_DGRAM`, `IPPROTO_ICMP`),
//! allowed for the groups in `net.ipv4.ping_group_range`; a process with CAP_NET_RAW falls
//! back to a raw socket. When neither is allowed the error says which sysctl to set. The
//! socket is driven by tokio as a UDP socket (the same send/receive calls).

use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use super::{resolve, IpProtocol, Outcome, Phases};

pub(super) async fn tcp(
    host: &str,
    port: u16,
    ip: IpProtocol,
    o: &mut Outcome,
    ph: &mut Phases,
) -> Result<(), String> {
    let addr = resolve(host, port, ip).await?;
    o.ip = Some(addr.ip());
    ph.enter("connect");
    TcpStream::connect(addr)
        .await
        .map_err(|e| match host == addr.ip().to_string() {
            true => format!("cannot connect to {host}:{port}: {e}"),
            false => format!("cannot connect to {host}:{port} ({addr}): {e}"),
        })?;
    o.connected = true;
    Ok(())
}

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A ping socket for `v6`, and whether it is raw (replies then carry the IPv4 header and
/// every ICMP packet of the host arrives).
fn icmp_socket(v6: bool) -> Result<(Socket, bool), String> {
    let (domain, proto) = match v6 {
        true => (Domain::IPV6, Protocol::ICMPV6),
        false => (Domain::IPV4, Protocol::ICMPV4),
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, false)),
        Err(dgram) => Socket::new(domain, Type::RAW, Some(proto))
            .map(|s| (s, true))
            .map_err(|_| {
                format!(
                    "ICMP is not allowed for this process ({dgram}): allow unprivileged ping for the \
                 collector's group with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` \
                 (and in /etc/sysctl.d to keep it), or give the collector CAP_NET_RAW"
                )
            }),
    }
}

pub(super) async fn icmp(host: &str, ip: IpProtocol, o: &mut Outcome, ph: &mut Phases) -> Result<(), String> {
    let addr = resolve(host, 0, ip).await?;
    o.ip = Some(addr.ip());
    ph.enter("setup");
    let v6 = addr.is_ipv6();
    let (socket, raw) = icmp_socket(v6)?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("ICMP socket: {e}"))?;
    let socket = tokio::net::UdpSocket::from_std(socket.into()).map_err(|e| format!("ICMP socket: {e}"))?;
    let id = rand::random::<u16>();
    let seq = rand::random::<u16>();
    let mut packet = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(b"obs-probe-ping!!");
    if !v6 {
        // The kernel fills in the ICMPv6 checksum itself (it covers a pseudo-header).
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    ph.enter("rtt");
    socket
        .send_to(&packet, SocketAddr::new(addr.ip(), 0))
        .await
        .map_err(|e| format!("cannot send an ICMP echo to {host}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = socket
            .recv_from(&mut buf)
            .await
            .map_err(|e| format!("no ICMP echo reply from {host}: {e}"))?;
        let mut reply = &buf[..n];
        if raw && !v6 {
            let header = usize::from(reply.first().map_or(0, |b| b & 0x0f)) * 4;
            reply = reply.get(header..).unwrap_or_default();
        }
        if is_reply(reply, v6, raw.then_some(id), seq) && same_host(from.ip(), addr.ip()) {
            o.connected = true;
            return Ok(());
        }
    }
}

/// An echo reply with our sequence number (and identifier, on a raw socket: a ping socket
/// rewrites the identifier and delivers only its own replies).
fn is_reply(p: &[u8], v6: bool, id: Option<u16>, seq: u16) -> bool {
    let kind = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    p.len() >= 8
        && p[0] == kind
        && id.is_none_or(|id| p[4..6] == id.to_be_bytes())
        && p[6..8] == seq.to_be_bytes()
}

fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A packet with its checksum filled in sums to zero.
        let mut p = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'x'];
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn replies_match_sequence_and_on_raw_sockets_the_id() {
        let reply = [0, 0, 0, 0, 0x12, 0x34, 0, 7];
        assert!(is_reply(&reply, false, None, 7));
        assert!(is_reply(&reply, false, Some(0x1234), 7));
        assert!(!is_reply(&reply, false, Some(0x1235), 7));
        assert!(!is_reply(&reply, false, None, 8));
        assert!(!is_reply(&reply, true, None, 7));
        assert!(!is_reply(&reply[..6], false, None, 7));
    }
}
