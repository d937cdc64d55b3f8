//! Uploading one blob over one channel, resuming where an earlier upload
//! of the same content stopped.
//!
//! `Stat` first: if the server holds a partial upload of the same (name,
//! size, hash) the `Put` starts at its `have`; if it holds the whole blob
//! nothing is sent. Then the `Put` header, the bytes, FIN, and the server's
//! `Stored`. An error answered before all bytes are sent stops the upload at
//! once (the channel is reset). After an interruption, run a new `BlobPut`
//! with the same data on a new channel ([`BlobPut::into_data`]).

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};

use super::error::BlobError;
use super::wire::{blob_hash, valid_name, BlobCode, BlobRequest, BlobResponse, Hash};
use super::{BLOB_IDLE_TIMEOUT, BLOB_IDLE_TIMEOUT_MAX, BLOB_IO_CHUNK, BLOB_MSG_CAP};
use crate::bus::channel::ChannelIo;
use crate::bus::codec::{reset_code, CodecError, MsgReader, MsgWriter};
use dsb_transports::mux::ChannelError;

/// A completed upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutDone {
    pub size: u64,
    pub hash: Hash,
    /// Where this upload started (`have` of the partial it continued;
    /// `size` if the server already had the blob).
    pub resumed_from: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stat sent (or being sent), waiting for its answer.
    Stat,
    /// Put header queued; sending bytes from `pos`.
    Data,
    /// Everything sent and FIN queued; waiting for `Stored`.
    AwaitStored,
    Done,
}

/// Client side of one upload.
#[derive(Debug)]
pub struct BlobPut {
    name: String,
    data: Vec<u8>,
    hash: Hash,
    state: State,
    reader: MsgReader,
    writer: MsgWriter,
    started: bool,
    resumed_from: u64,
    pos: u64,
    last_progress: Option<Instant>,
    idle_timeout: Duration,
}

impl BlobPut {
    /// An upload of `data` as `name` (hashes `data` now).
    pub fn new(name: &str, data: Vec<u8>) -> Result<BlobPut, BlobError> {
        if !valid_name(name) {
            return Err(BlobError::BadName);
        }
        Ok(BlobPut {
            name: String::from(name),
            hash: blob_hash(&data),
            data,
            state: State::Stat,
            reader: MsgReader::new(BLOB_MSG_CAP),
            writer: MsgWriter::new(BLOB_MSG_CAP),
            started: false,
            resumed_from: 0,
            pos: 0,
            last_progress: None,
            idle_timeout: BLOB_IDLE_TIMEOUT,
        })
    }

    /// Changes the idle timeout (default [`BLOB_IDLE_TIMEOUT`], at most
    /// [`BLOB_IDLE_TIMEOUT_MAX`]).
    pub fn set_idle_timeout(&mut self, t: Duration) {
        self.idle_timeout = t.min(BLOB_IDLE_TIMEOUT_MAX);
    }

    /// The content hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// `(bytes the server has or we have sent, size)`.
    pub fn progress(&self) -> (u64, u64) {
        (self.pos, self.size())
    }

    /// Blob size.
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// True once a result was returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When [`BlobPut::poll`] must run at the latest (idle deadline).
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.state, self.last_progress) {
            (State::Done, _) | (_, None) => None,
            (_, Some(t)) => Some(t + self.idle_timeout),
        }
    }

    /// The data back, e.g. to retry on a new channel.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    fn finish(&mut self, r: Result<PutDone, BlobError>) -> Option<Result<PutDone, BlobError>> {
        self.state = State::Done;
        Some(r)
    }

    fn fail<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        code: u16,
        e: BlobError,
    ) -> Option<Result<PutDone, BlobError>> {
        io.reset(code);
        self.finish(Err(e))
    }

    fn done(&self) -> PutDone {
        PutDone {
            size: self.size(),
            hash: self.hash,
            resumed_from: self.resumed_from,
        }
    }

    /// The blob's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drives the upload; returns its result once.
    pub fn poll<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
    ) -> Option<Result<PutDone, BlobError>> {
        if self.state == State::Done {
            return None;
        }
        let last = *self.last_progress.get_or_insert(now);
        if now >= last + self.idle_timeout {
            return self.fail(io, reset_code::TIMEOUT, BlobError::Timeout);
        }
        if !self.started {
            self.started = true;
            let stat = BlobRequest::Stat {
                name: self.name.clone(),
            };
            if self.writer.send(&stat).is_err() {
                return self.fail(io, reset_code::ABORTED, BlobError::BadName);
            }
        }
        if self.writer.flush(io).is_err() {
            return self.finish(Err(BlobError::ChannelClosed));
        }
        // Answers: the Stat's, an early refusal, or the final Stored.
        loop {
            let resp = match self.reader.poll(io) {
                Ok(Some(frame)) => match BlobResponse::decode(&frame) {
                    Ok(r) => r,
                    Err(_) => return self.fail(io, reset_code::MALFORMED, BlobError::Malformed),
                },
                Ok(None) => break,
                Err(CodecError::TooLarge { .. }) => {
                    return self.fail(io, reset_code::TOO_LARGE, BlobError::Malformed)
                }
                Err(CodecError::Malformed) => {
                    return self.fail(io, reset_code::MALFORMED, BlobError::Malformed)
                }
                Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
            };
            self.last_progress = Some(now);
            if let Some(r) = self.on_answer(io, resp) {
                return Some(r);
            }
        }
        if self.state == State::Data {
            return self.send_data(now, io);
        }
        None
    }

    fn on_answer<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        resp: BlobResponse,
    ) -> Option<Result<PutDone, BlobError>> {
        match (self.state, resp) {
            (State::Stat, BlobResponse::Stat { size, have, hash })
                if size == self.size() && hash == self.hash =>
            {
                if have >= size {
                    self.resumed_from = size;
                    self.pos = size;
                    let _ = io.finish();
                    return self.finish(Ok(self.done()));
                }
                self.start_put(io, have)
            }
            (State::Stat, BlobResponse::Stat { .. }) => self.start_put(io, 0),
            (State::Stat, BlobResponse::Err { code, .. })
                if BlobCode::from_code(code) == BlobCode::NotFound =>
            {
                self.start_put(io, 0)
            }
            (State::Data | State::AwaitStored, BlobResponse::Stored { size, hash })
                if size == self.size() && hash == self.hash =>
            {
                if self.state == State::Data {
                    // The server had it already and stopped reading.
                    io.reset(reset_code::ABORTED);
                }
                self.finish(Ok(self.done()))
            }
            (_, BlobResponse::Err { code, message }) => {
                let e = BlobError::Remote {
                    code: BlobCode::from_code(code),
                    message,
                };
                if self.state == State::AwaitStored {
                    self.finish(Err(e))
                } else {
                    self.fail(io, reset_code::ABORTED, e)
                }
            }
            _ => self.fail(io, reset_code::MALFORMED, BlobError::Malformed),
        }
    }

    fn start_put<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        offset: u64,
    ) -> Option<Result<PutDone, BlobError>> {
        self.resumed_from = offset;
        self.pos = offset;
        let put = BlobRequest::Put {
            name: self.name.clone(),
            size: self.size(),
            hash: self.hash,
            offset,
        };
        if self.writer.send(&put).is_err() {
            return self.fail(io, reset_code::ABORTED, BlobError::Malformed);
        }
        self.state = State::Data;
        None
    }

    fn send_data<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
    ) -> Option<Result<PutDone, BlobError>> {
        match self.writer.flush(io) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
        }
        while self.pos < self.size() {
            let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
            let end = start.saturating_add(BLOB_IO_CHUNK).min(self.data.len());
            let chunk = self.data.get(start..end).unwrap_or(&[]);
            match io.write(chunk) {
                Ok(0) | Err(ChannelError::WouldBlock) => return None,
                Ok(n) => {
                    self.pos += n as u64;
                    self.last_progress = Some(now);
                }
                Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
            }
        }
        match io.finish() {
            Ok(()) => self.state = State::AwaitStored,
            Err(ChannelError::WouldBlock) => {}
            Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
        }
        None
    }
}
