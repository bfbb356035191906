//! Batched UDP: `recvmmsg(2)` / `sendmmsg(2)` and the segmentation offloads
//! (`UDP_GRO` on receive, `UDP_SEGMENT` on send).
//!
//! The message headers are built on the stack for each call from the
//! batch's own buffers, so no raw pointer outlives a call and the batches
//! stay `Send`. Nothing here allocates after construction.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

use super::retry;

/// Most messages one `recvmmsg`/`sendmmsg` call handles. 32 amortises the
/// syscall well past the point where copying dominates.
pub const MAX_BATCH: usize = 32;
/// Most segments one `UDP_SEGMENT` send may carry (the kernel's
/// `UDP_MAX_SEGMENTS`, 64 on every kernel that has the option).
pub const MAX_SEGMENTS: usize = 64;

/// Control space for one `int` option (UDP_GRO / UDP_SEGMENT's u16),
/// 8-byte aligned as `cmsghdr` wants.
type Ctrl = [u64; 4];

/// `setsockopt(SOL_UDP, UDP_GRO, 1)`: coalesce received datagrams of one
/// flow into one buffer with their segment size in a control message.
/// Fails (ENOPROTOOPT) on kernels without UDP GRO (before 5.0).
pub fn set_udp_gro(fd: RawFd, on: bool) -> io::Result<()> {
    let v: libc::c_int = on.into();
    // SAFETY: `v` is a live c_int and its size is passed with it.
    retry("setsockopt UDP_GRO", || unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Whether the kernel accepts `UDP_SEGMENT` (GSO) on `fd`: sets the
/// socket's default segment size to 0 (off), which only a kernel that
/// knows the option accepts (4.18+).
pub fn probe_udp_segment(fd: RawFd) -> bool {
    let v: libc::c_int = 0;
    // SAFETY: `v` is a live c_int and its size is passed with it.
    retry("setsockopt UDP_SEGMENT", || unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .is_ok()
}

/// Receive buffers for [`RecvBatch::recv`]: `slots` buffers of `slot_len`
/// bytes with their sender addresses and control space.
pub struct RecvBatch {
    bufs: Box<[u8]>,
    slot_len: usize,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[Ctrl]>,
    /// Per slot after a call: bytes, address length, GRO segment size (0 =
    /// one datagram).
    got: Box<[(usize, libc::socklen_t, u16)]>,
    count: usize,
}

impl RecvBatch {
    /// `slots` (1..=[`MAX_BATCH`]) buffers of `slot_len` bytes each. With
    /// GRO on, `slot_len` must be 65,536 or more: a coalesced buffer may be
    /// that large.
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let slots = slots.clamp(1, MAX_BATCH);
        RecvBatch {
            bufs: vec![0u8; slots * slot_len].into_boxed_slice(),
            slot_len,
            // SAFETY: sockaddr_storage is plain data, valid when zeroed.
            names: vec![unsafe { zeroed::<libc::sockaddr_storage>() }; slots].into_boxed_slice(),
            ctrl: vec![[0u64; 4]; slots].into_boxed_slice(),
            got: vec![(0, 0, 0); slots].into_boxed_slice(),
            count: 0,
        }
    }

    /// How many buffers one call fills at most.
    pub fn slots(&self) -> usize {
        self.got.len()
    }

    /// One `recvmmsg(MSG_DONTWAIT)`: how many buffers were filled (at
    /// least 1; EAGAIN when none was waiting).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let slots = self.got.len();
        // SAFETY: iovec and mmsghdr are plain data, valid when zeroed.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = self.bufs.as_mut_ptr();
        for i in 0..slots {
            iovs[i] = libc::iovec {
                // SAFETY: slot i lies inside `bufs` (slots * slot_len bytes).
                iov_base: unsafe { base.add(i * self.slot_len) }.cast(),
                iov_len: self.slot_len,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<Ctrl>();
        }
        // SAFETY: every header points at buffers, names and control space
        // owned by `self` or this frame, all live and writable for the call.
        let n = retry("recvmmsg", || unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        })? as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            let seg = gro_segment(&h.msg_hdr);
            self.got[i] = (h.msg_len as usize, h.msg_hdr.msg_namelen, seg);
        }
        self.count = n;
        Ok(n)
    }

    /// Buffer `i` of the last [`recv`](Self::recv): sender, bytes, and the
    /// GRO segment size if the kernel coalesced several datagrams into it
    /// (each `seg` bytes, the last possibly shorter).
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8], usize)> {
        if i >= self.count {
            return None;
        }
        let (len, namelen, seg) = self.got[i];
        // SAFETY: recvmmsg filled `namelen` bytes of names[i] with the sender.
        let addr = unsafe { SockAddr::new(self.names[i], namelen) }.as_socket()?;
        let start = i * self.slot_len;
        let data = &self.bufs[start..start + len.min(self.slot_len)];
        let seg = if seg == 0 {
            data.len()
        } else {
            usize::from(seg)
        };
        Some((addr, data, seg))
    }
}

/// The UDP_GRO segment size in a received header's control messages, or 0.
fn gro_segment(h: &libc::msghdr) -> u16 {
    // SAFETY: the kernel wrote `msg_controllen` bytes of well-formed control
    // messages into the buffer `h` points at; CMSG_* walk only inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return u16::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// One message for [`send_batch`]: `data` to `peer` (None on a connected
/// socket), cut by the kernel into `segment`-byte datagrams when
/// `segment` is less than the length (UDP_SEGMENT).
pub struct OutMsg<'a> {
    /// Destination.
    pub peer: Option<SocketAddr>,
    /// The payload: one datagram, or several of `segment` bytes back to back.
    pub data: &'a [u8],
    /// Segment size; `data.len()` (or more) for one plain datagram.
    pub segment: usize,
}

/// One `sendmmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` of up to [`MAX_BATCH`]
/// messages: how many were sent (the rest, from the first unsent, should
/// be retried when the socket is writable). An error is the first
/// message's: the caller drops or splits it and goes on.
pub fn send_batch(fd: RawFd, msgs: &[OutMsg<'_>]) -> io::Result<usize> {
    let n = msgs.len().min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: plain data, valid when zeroed.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    let mut ctrl = [[0u64; 4]; MAX_BATCH];
    let mut names: [Option<SockAddr>; MAX_BATCH] = std::array::from_fn(|_| None);
    for (i, m) in msgs.iter().take(n).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: m.data.as_ptr() as *mut libc::c_void,
            iov_len: m.data.len(),
        };
        names[i] = m.peer.map(SockAddr::from);
        let h = &mut hdrs[i].msg_hdr;
        if let Some(a) = &names[i] {
            h.msg_name = a.as_ptr() as *mut libc::c_void;
            h.msg_namelen = a.len();
        }
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if m.segment < m.data.len() {
            h.msg_control = ctrl[i].as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is a pure size computation.
            h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
            // SAFETY: the control buffer (32 bytes) holds one cmsghdr plus a
            // u16; msg_control/msg_controllen describe it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), m.segment as u16);
            }
        }
    }
    // SAFETY: each header points at a payload borrowed from `msgs`, an
    // address in `names` and control space in this frame, all live for the
    // call; the kernel only reads them (and writes msg_len).
    let sent = retry("sendmmsg", || unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })?;
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_in_with_exact_boundaries() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = Some(b.local_addr().unwrap());
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1 + usize::from(i) * 7]).collect();
        let msgs: Vec<OutMsg<'_>> = payloads
            .iter()
            .map(|p| OutMsg {
                peer: to,
                data: p,
                segment: p.len(),
            })
            .collect();
        assert_eq!(send_batch(a.as_raw_fd(), &msgs).unwrap(), 10);
        let mut rb = RecvBatch::new(16, 2048);
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            if got.len() == 10 {
                break;
            }
            // Block until something is there, then take the batch.
            let mut peek = [0u8; 1];
            let _ = b.peek(&mut peek).unwrap();
            let n = rb.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                let (from, data, seg) = rb.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                assert_eq!(seg, data.len());
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn segment_offload_cuts_one_buffer_into_datagrams() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        if !probe_udp_segment(a.as_raw_fd()) {
            eprintln!("skipped: this kernel has no UDP_SEGMENT");
            return;
        }
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Three 100-byte segments and a 40-byte tail.
        let data: Vec<u8> = (0..340u32).map(|i| i as u8).collect();
        let msg = OutMsg {
            peer: Some(b.local_addr().unwrap()),
            data: &data,
            segment: 100,
        };
        assert_eq!(send_batch(a.as_raw_fd(), &[msg]).unwrap(), 1);
        let mut buf = [0u8; 1000];
        for (i, want) in [100usize, 100, 100, 40].into_iter().enumerate() {
            let n = b.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &data[i * 100..i * 100 + want]);
        }
    }
}
