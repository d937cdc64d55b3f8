//! The serving end of a blob channel: reads requests, moves raw bytes
//! between the channel and the [`BlobStore`], answers.
//!
//! After answering an error to a `Put` or `Get` (or `Stored` for a blob it
//! already had) the server finishes its side and discards what still
//! arrives, at most [`BLOB_DRAIN_MAX`] bytes, then stops reading so flow
//! control halts the sender; the client resets the channel when it reads the
//! answer. A refused `Put` thus moves at most that much plus one channel
//! window, however large its `size`.

use alloc::collections::VecDeque;
use alloc::string::String;

use smoltcp::time::{Duration, Instant};

use super::store::{Begin, BlobStore};
use super::wire::{valid_name, BlobCode, BlobRequest, BlobResponse, Hash};
use super::{
    BLOB_DRAIN_MAX, BLOB_IDLE_TIMEOUT, BLOB_IDLE_TIMEOUT_MAX, BLOB_IO_CHUNK, BLOB_MSG_CAP,
};
use crate::bus::channel::ChannelIo;
use crate::bus::codec::{reset_code, CodecError, MsgReader, MsgWriter};
use dsb_transports::mux::ChannelError;

/// What happened on a blob channel, for the node's log and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobEvent {
    /// A `Put` was verified and committed (or the same blob was already stored).
    Stored { name: String, size: u64 },
    /// A `Get` was served: bytes `[from, size)` are written.
    Sent { name: String, from: u64, size: u64 },
    /// A `Put` or `Get` was refused with this code.
    Refused { code: BlobCode },
    /// An upload stopped before its end; `have` bytes are kept for resume.
    Interrupted { name: String, have: u64 },
}

/// How a server's channel ended. The outcome of the operation is in the
/// events ([`BlobEvent`]); this only says how the stream stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEnd {
    /// Both sides finished.
    Finished,
    /// The channel went away: peer reset or session down (over the mux,
    /// also a slot released after both FINs before we read the peer's).
    Closed,
    /// We reset it with this code (malformed input, idle timeout, blob gone).
    Reset(u16),
}

#[derive(Debug)]
enum Next {
    Request,
    Download(Download),
    Close,
}

#[derive(Debug)]
struct Download {
    name: String,
    gen: u64,
    from: u64,
    pos: u64,
    end: u64,
}

#[derive(Debug)]
struct Upload {
    id: u64,
    name: String,
    size: u64,
    hash: Hash,
    left: u64,
}

#[derive(Debug)]
enum State {
    Request,
    Answer(Next),
    Upload(Upload),
    Download(Download),
    Close,
    Closing { discarded: u64 },
    Done(ServerEnd),
}

/// One blob channel, server side. Poll it whenever the node polls its
/// sessions, with the store it serves.
#[derive(Debug)]
pub struct BlobServer {
    reader: MsgReader,
    writer: MsgWriter,
    state: State,
    peer_finished: bool,
    last_progress: Instant,
    idle_timeout: Duration,
    events: VecDeque<BlobEvent>,
}

/// Most events queued between polls (a channel produces at most two).
const EVENTS_CAP: usize = 4;

impl BlobServer {
    /// A server for a channel accepted at `now`.
    pub fn new(now: Instant) -> BlobServer {
        BlobServer {
            reader: MsgReader::new(BLOB_MSG_CAP),
            writer: MsgWriter::new(BLOB_MSG_CAP),
            state: State::Request,
            peer_finished: false,
            last_progress: now,
            idle_timeout: BLOB_IDLE_TIMEOUT,
            events: VecDeque::with_capacity(EVENTS_CAP),
        }
    }

    /// Changes the idle timeout (default [`BLOB_IDLE_TIMEOUT`], at most
    /// [`BLOB_IDLE_TIMEOUT_MAX`]).
    pub fn set_idle_timeout(&mut self, t: Duration) {
        self.idle_timeout = t.min(BLOB_IDLE_TIMEOUT_MAX);
    }

    /// How the channel ended, once it has.
    pub fn end(&self) -> Option<ServerEnd> {
        match self.state {
            State::Done(e) => Some(e),
            _ => None,
        }
    }

    /// True once the channel ended; the node drops the server then.
    pub fn is_done(&self) -> bool {
        self.end().is_some()
    }

    /// When [`BlobServer::poll`] must run at the latest (idle deadline).
    pub fn poll_at(&self) -> Option<Instant> {
        (!self.is_done()).then(|| self.last_progress + self.idle_timeout)
    }

    /// Bytes the server holds itself (frames; the blob data is in the store).
    pub fn buffered(&self) -> usize {
        self.reader.allocated() + self.writer.pending()
    }

    /// Moves what can move now; returns one event, if any (call again until `None`).
    pub fn poll<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
        store: &mut BlobStore,
    ) -> Option<BlobEvent> {
        if !self.is_done() && now >= self.last_progress + self.idle_timeout {
            if let State::Upload(u) = &self.state {
                let have = u.size - u.left;
                self.event(BlobEvent::Interrupted {
                    name: u.name.clone(),
                    have,
                });
            }
            self.reset(io, reset_code::TIMEOUT);
        }
        while !self.is_done() && self.events.len() + 2 <= EVENTS_CAP {
            if !self.step(now, io, store) {
                break;
            }
        }
        self.events.pop_front()
    }

    fn event(&mut self, e: BlobEvent) {
        if self.events.len() < EVENTS_CAP {
            self.events.push_back(e);
        }
    }

    fn reset<C: ChannelIo + ?Sized>(&mut self, io: &mut C, code: u16) {
        io.reset(code);
        self.state = State::Done(ServerEnd::Reset(code));
    }

    fn answer<C: ChannelIo + ?Sized>(&mut self, io: &mut C, resp: &BlobResponse, next: Next) {
        if self.writer.send(resp).is_err() {
            return self.reset(io, reset_code::ABORTED);
        }
        self.state = State::Answer(next);
    }

    fn refuse<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        code: BlobCode,
        message: &str,
        next: Next,
    ) {
        self.answer(io, &BlobResponse::err(code, message), next);
    }

    /// One step of the state machine; false when blocked.
    fn step<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
        store: &mut BlobStore,
    ) -> bool {
        match core::mem::replace(&mut self.state, State::Close) {
            State::Done(e) => {
                self.state = State::Done(e);
                false
            }
            State::Request => {
                self.state = State::Request;
                match self.reader.poll(io) {
                    Ok(Some(frame)) => {
                        self.last_progress = now;
                        match BlobRequest::decode(&frame) {
                            Ok(req) => self.request(now, io, store, req),
                            Err(_) => self.reset(io, reset_code::MALFORMED),
                        }
                        true
                    }
                    Ok(None) => false,
                    Err(CodecError::Eof) => {
                        self.peer_finished = true;
                        self.state = State::Close;
                        true
                    }
                    Err(CodecError::Closed) => {
                        self.state = State::Done(ServerEnd::Closed);
                        false
                    }
                    Err(CodecError::TooLarge { .. }) => {
                        self.reset(io, reset_code::TOO_LARGE);
                        false
                    }
                    Err(_) => {
                        self.reset(io, reset_code::MALFORMED);
                        false
                    }
                }
            }
            State::Answer(next) => match self.writer.flush(io) {
                Ok(true) => {
                    self.last_progress = now;
                    self.state = match next {
                        Next::Request => State::Request,
                        Next::Download(d) => State::Download(d),
                        Next::Close => State::Close,
                    };
                    true
                }
                Ok(false) => {
                    self.state = State::Answer(next);
                    false
                }
                Err(_) => {
                    self.state = State::Done(ServerEnd::Closed);
                    false
                }
            },
            State::Upload(u) => self.upload(now, io, store, u),
            State::Download(d) => self.download(now, io, store, d),
            State::Close => match io.finish() {
                Ok(()) => {
                    self.state = if self.peer_finished {
                        State::Done(ServerEnd::Finished)
                    } else {
                        State::Closing { discarded: 0 }
                    };
                    true
                }
                Err(ChannelError::WouldBlock) => false,
                Err(_) => {
                    self.state = State::Done(ServerEnd::Closed);
                    false
                }
            },
            State::Closing { discarded } => {
                self.state = State::Closing { discarded };
                if discarded >= BLOB_DRAIN_MAX {
                    return false;
                }
                let mut scratch = [0u8; BLOB_IO_CHUNK];
                match io.read(&mut scratch) {
                    Ok(0) => {
                        self.state = State::Done(ServerEnd::Finished);
                        false
                    }
                    Ok(n) => {
                        self.state = State::Closing {
                            discarded: discarded + n as u64,
                        };
                        true
                    }
                    Err(ChannelError::WouldBlock) => false,
                    Err(_) => {
                        self.state = State::Done(ServerEnd::Closed);
                        false
                    }
                }
            }
        }
    }

    fn request<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
        store: &mut BlobStore,
        req: BlobRequest,
    ) {
        match req {
            BlobRequest::Stat { name } => {
                if !valid_name(&name) {
                    return self.refuse(io, BlobCode::BadName, "bad name", Next::Request);
                }
                match store.stat(&name) {
                    Some(s) => self.answer(
                        io,
                        &BlobResponse::Stat {
                            size: s.size,
                            have: s.have,
                            hash: s.hash,
                        },
                        Next::Request,
                    ),
                    None => self.refuse(io, BlobCode::NotFound, "no such blob", Next::Request),
                }
            }
            BlobRequest::Get { name, offset } => {
                let found = if valid_name(&name) {
                    store.lookup(&name).ok_or(BlobCode::NotFound)
                } else {
                    Err(BlobCode::BadName)
                };
                match found {
                    Ok((_, size, _)) if offset > size => {
                        self.event(BlobEvent::Refused {
                            code: BlobCode::BadOffset,
                        });
                        self.refuse(io, BlobCode::BadOffset, "offset past the end", Next::Close)
                    }
                    Ok((gen, size, hash)) => self.answer(
                        io,
                        &BlobResponse::Data { size, hash },
                        Next::Download(Download {
                            name,
                            gen,
                            from: offset,
                            pos: offset,
                            end: size,
                        }),
                    ),
                    Err(code) => {
                        self.event(BlobEvent::Refused { code });
                        self.refuse(io, code, code.label(), Next::Close)
                    }
                }
            }
            BlobRequest::Put {
                name,
                size,
                hash,
                offset,
            } => match store.begin_put(&name, size, hash, offset, now) {
                Ok(Begin::AlreadyStored) => {
                    self.event(BlobEvent::Stored { name, size });
                    self.answer(io, &BlobResponse::Stored { size, hash }, Next::Close)
                }
                Ok(Begin::Upload { id, have }) => {
                    self.state = State::Upload(Upload {
                        id,
                        name,
                        size,
                        hash,
                        left: size - have,
                    })
                }
                Err(code) => {
                    self.event(BlobEvent::Refused { code });
                    self.refuse(io, code, code.label(), Next::Close)
                }
            },
        }
    }

    fn upload<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
        store: &mut BlobStore,
        mut u: Upload,
    ) -> bool {
        if u.left == 0 {
            match store.commit(u.id) {
                Ok(()) => {
                    self.event(BlobEvent::Stored {
                        name: u.name,
                        size: u.size,
                    });
                    self.answer(
                        io,
                        &BlobResponse::Stored {
                            size: u.size,
                            hash: u.hash,
                        },
                        Next::Close,
                    );
                }
                Err(code) => {
                    self.event(BlobEvent::Refused { code });
                    self.refuse(io, code, code.label(), Next::Close);
                }
            }
            return true;
        }
        if !store.has_upload(u.id) {
            self.event(BlobEvent::Refused {
                code: BlobCode::Aborted,
            });
            self.refuse(
                io,
                BlobCode::Aborted,
                "upload dropped by the store",
                Next::Close,
            );
            return true;
        }
        let mut scratch = [0u8; BLOB_IO_CHUNK];
        let want = usize::try_from(u.left)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        let dst = scratch.get_mut(..want).unwrap_or(&mut []);
        match io.read(dst) {
            Ok(0) => {
                let have = u.size - u.left;
                self.peer_finished = true;
                self.event(BlobEvent::Interrupted { name: u.name, have });
                self.refuse(
                    io,
                    BlobCode::Incomplete,
                    "data ended before size",
                    Next::Close,
                );
                true
            }
            Ok(n) => {
                self.last_progress = now;
                match store.append(u.id, dst.get(..n).unwrap_or(&[]), now) {
                    Ok(_) => {
                        u.left -= n as u64;
                        self.state = State::Upload(u);
                    }
                    Err(code) => {
                        self.event(BlobEvent::Refused { code });
                        self.refuse(io, code, code.label(), Next::Close);
                    }
                }
                true
            }
            Err(ChannelError::WouldBlock) => {
                self.state = State::Upload(u);
                false
            }
            Err(_) => {
                let have = u.size - u.left;
                self.event(BlobEvent::Interrupted { name: u.name, have });
                self.state = State::Done(ServerEnd::Closed);
                false
            }
        }
    }

    fn download<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
        store: &BlobStore,
        mut d: Download,
    ) -> bool {
        if d.pos >= d.end {
            self.event(BlobEvent::Sent {
                name: d.name,
                from: d.from,
                size: d.end,
            });
            self.state = State::Close;
            return true;
        }
        let Some(chunk) = store.chunk(&d.name, d.gen, d.pos, BLOB_IO_CHUNK) else {
            // Replaced or removed while we were sending it.
            self.event(BlobEvent::Refused {
                code: BlobCode::Aborted,
            });
            self.reset(io, reset_code::ABORTED);
            return false;
        };
        match io.write(chunk) {
            Ok(0) | Err(ChannelError::WouldBlock) => {
                self.state = State::Download(d);
                false
            }
            Ok(n) => {
                self.last_progress = now;
                d.pos += n as u64;
                self.state = State::Download(d);
                true
            }
            Err(_) => {
                self.state = State::Done(ServerEnd::Closed);
                false
            }
        }
    }
}
