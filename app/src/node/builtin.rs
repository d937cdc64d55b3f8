//! The services a node serves itself once published: `ping` (an echo),
//! and, with the service layer, `sd` (the directory) and `blob` (the store).
//! Each channel of a built-in service is driven here during the pump; the
//! application never sees it.

use dsb_transports::mux::{ChannelError, ChannelId, Mux};

use crate::bus::channel::{ChannelIo, MuxChannel};
use crate::bus::Handler;

/// Bytes the echo moves per step.
const ECHO_CHUNK: usize = 4096;

/// The state of one channel served by the node.
#[derive(Debug)]
pub(crate) enum Builtin {
    /// `ping`: everything read is written back; FIN after the peer's FIN.
    Echo { peer_done: bool },
}

impl Builtin {
    /// The built-in that serves channels of `handler`, if the node has one.
    pub fn for_handler(handler: Handler) -> Option<Builtin> {
        match handler {
            Handler::Ping => Some(Builtin::Echo { peer_done: false }),
            Handler::App | Handler::Directory | Handler::Blob => None,
        }
    }

    /// Serves channel `id` as far as the mux allows; true when it is done.
    pub fn poll(&mut self, mux: &mut Mux, id: ChannelId) -> bool {
        let mut io = MuxChannel { mux, id };
        match self {
            Builtin::Echo { peer_done } => echo(&mut io, peer_done),
        }
    }
}

/// Echoes what the write side can take; finishes after the peer did and
/// everything was echoed. True when the channel is done.
fn echo(io: &mut impl ChannelIo, peer_done: &mut bool) -> bool {
    let mut buf = [0u8; ECHO_CHUNK];
    loop {
        let room = io.write_capacity().min(ECHO_CHUNK);
        if room == 0 {
            break;
        }
        match io.read(buf.get_mut(..room).unwrap_or(&mut [])) {
            Ok(0) => {
                *peer_done = true;
                break;
            }
            Ok(n) => match io.write(buf.get(..n).unwrap_or(&[])) {
                Ok(w) if w == n => {}
                // write_capacity said it fits; anything else ends the channel.
                _ => {
                    io.reset(2);
                    return true;
                }
            },
            Err(ChannelError::WouldBlock) => break,
            Err(_) => return true,
        }
    }
    if *peer_done {
        return !matches!(io.finish(), Err(ChannelError::WouldBlock));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::channel::{End, Pipe};

    #[test]
    fn the_echo_returns_every_byte_then_finishes() {
        let mut p = Pipe::new(16);
        let mut done = false;
        let mut peer_done = false;
        let msg: alloc::vec::Vec<u8> = (0..100u8).collect();
        let mut sent = 0;
        let mut back = alloc::vec::Vec::new();
        for _ in 0..100 {
            if sent < msg.len() {
                sent += p.end(End::A).write(&msg[sent..]).unwrap_or(0);
            } else {
                p.end(End::A).finish().unwrap();
            }
            if !done {
                done = echo(&mut p.end(End::B), &mut peer_done);
            }
            let mut buf = [0u8; 16];
            while let Ok(n) = p.end(End::A).read(&mut buf) {
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&buf[..n]);
            }
        }
        assert!(done);
        assert_eq!(back, msg);
        assert_eq!(p.end(End::A).read(&mut [0u8; 4]), Ok(0));
    }
}
