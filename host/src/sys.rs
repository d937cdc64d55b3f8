//! The few system calls std does not wrap: socket options (SO_REUSEPORT,
//! IP_MULTICAST_IF, SO_LINGER, buffer sizes), a non-blocking connect,
//! `ppoll`, `getifaddrs` and `getrandom`. Every `unsafe` block of the crate is
//! here, each with the reason it is sound.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: in_addr(*a.ip()),
        sin_zero: [0; 8],
    }
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(a.octets()),
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: T) -> io::Result<()> {
    // SAFETY: `value` lives on this stack frame for the duration of the call
    // and its size is passed alongside; the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A new non-blocking, close-on-exec IPv4 socket of `kind`.
fn socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; a non-negative result is a fresh descriptor
    // that nothing else owns, so `OwnedFd` may take it.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: see above: `fd` is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: RawFd, addr: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr_in(addr);
    // SAFETY: `sa` is a valid sockaddr_in on this frame; its size is passed.
    cvt(unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Kernel buffer sizes of `fd` (the kernel doubles them and applies its own floor and ceiling).
pub fn set_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, n)?;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, n)
}

/// A non-blocking UDP socket bound to `addr`. `shared`: address and port
/// reuse (several processes of one host bind the same port and each gets
/// every multicast and broadcast datagram) and broadcast allowed.
pub fn udp_socket(addr: SocketAddrV4, shared: bool, buffer: usize) -> io::Result<UdpSocket> {
    let fd = socket(libc::SOCK_DGRAM)?;
    let raw = fd.as_raw_fd();
    if shared {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)?;
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1 as libc::c_int)?;
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_BROADCAST, 1 as libc::c_int)?;
    }
    set_buffers(raw, buffer)?;
    bind(raw, addr)?;
    Ok(UdpSocket::from(fd))
}

/// A non-blocking TCP listener on `addr` (`SO_REUSEADDR`, so a restarted
/// node gets its port back while old connections linger in TIME-WAIT).
/// Accepted sockets inherit its buffer sizes.
pub fn tcp_listener(addr: SocketAddrV4, backlog: i32, buffer: usize) -> io::Result<TcpListener> {
    let fd = socket(libc::SOCK_STREAM)?;
    let raw = fd.as_raw_fd();
    setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)?;
    set_buffers(raw, buffer)?;
    bind(raw, addr)?;
    // SAFETY: plain system call on a descriptor we own.
    cvt(unsafe { libc::listen(raw, backlog) })?;
    Ok(TcpListener::from(fd))
}

/// Outgoing multicast of `sock` leaves through the interface holding `local`.
pub fn set_multicast_if(sock: &UdpSocket, local: Ipv4Addr) -> io::Result<()> {
    setsockopt(
        sock.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        in_addr(local),
    )
}

/// What a non-blocking connect started.
pub enum Connect {
    /// In progress (or, on loopback, maybe done already): poll for writability.
    Started(TcpStream),
    /// The peer refused at once.
    Refused,
}

/// A non-blocking TCP connection from `local` (port chosen by the kernel) to `remote`.
pub fn tcp_connect(local: Ipv4Addr, remote: SocketAddrV4, buffer: usize) -> io::Result<Connect> {
    let fd = socket(libc::SOCK_STREAM)?;
    let raw = fd.as_raw_fd();
    setsockopt(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1 as libc::c_int)?;
    set_buffers(raw, buffer)?;
    bind(raw, SocketAddrV4::new(local, 0))?;
    let sa = sockaddr_in(remote);
    // SAFETY: `sa` is a valid sockaddr_in on this frame; its size is passed.
    let r = unsafe {
        libc::connect(
            raw,
            (&sa as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINPROGRESS) | Some(libc::EINTR) => {}
            Some(libc::ECONNREFUSED) => return Ok(Connect::Refused),
            _ => return Err(e),
        }
    }
    Ok(Connect::Started(TcpStream::from(fd)))
}

/// Whether `fd` is ready for `events` now (zero timeout).
pub fn ready_now(fd: RawFd, events: libc::c_short) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd on this frame, count 1, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents != 0
}

/// Aborts `stream`: SO_LINGER with a zero timeout, then close, so the peer gets a RST.
pub fn abort(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Best effort: if the option fails, dropping still closes (with a FIN).
    let _ = setsockopt(
        stream.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        linger,
    );
    drop(stream);
}

/// Waits until one of `fds` is ready or `timeout` passed; returns how many are ready.
pub fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `fds` is a valid slice of pollfd for its length; `ts` lives on
    // this frame; no signal mask is passed.
    let r = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    match cvt(r) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// The prefix length of `addr` on the interface that holds it, if any does.
pub fn prefix_of(addr: Ipv4Addr) -> io::Result<Option<u8>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and has not
        // been freed; its address fields are null or point to sockaddrs whose
        // family says their type (AF_INET: sockaddr_in).
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: see above.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: AF_INET entries carry sockaddr_in address and netmask.
        let (a, m) = unsafe {
            (
                *(ifa.ifa_addr as *const libc::sockaddr_in),
                *(ifa.ifa_netmask as *const libc::sockaddr_in),
            )
        };
        if Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()) == addr {
            found = Some(u32::from_be(m.sin_addr.s_addr).count_ones() as u8);
            break;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

/// Fills `buf` from the kernel's CSPRNG (getrandom(2), blocking only until
/// the pool is initialised at boot).
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(())
}
