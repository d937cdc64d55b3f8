//! Downloading one blob over one channel into a bounded buffer, checked
//! against its BLAKE2s-256 hash before success is reported.
//!
//! The buffer is reserved once, at the size the server announces, and only
//! if that size is within the caller's cap. After an interruption
//! ([`BlobError::ChannelClosed`], [`BlobError::Truncated`],
//! [`BlobError::Timeout`]) [`BlobGet::into_resume`] keeps what arrived, and
//! [`BlobGet::resume`] asks a new channel for the rest; the hash still
//! covers the whole blob.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};

use super::error::BlobError;
use super::wire::{blob_hash, valid_name, BlobCode, BlobRequest, BlobResponse, Hash};
use super::{BLOB_IDLE_TIMEOUT, BLOB_IDLE_TIMEOUT_MAX, BLOB_IO_CHUNK, BLOB_MSG_CAP};
use crate::bus::channel::ChannelIo;
use crate::bus::codec::{reset_code, CodecError, MsgReader, MsgWriter};
use dsb_transports::mux::ChannelError;

/// A verified download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetDone {
    pub data: Vec<u8>,
    pub hash: Hash,
    /// Bytes that came from an earlier, interrupted download.
    pub resumed_from: u64,
}

/// What an interrupted download keeps, to continue it on a new channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResume {
    pub name: String,
    /// Bytes `[0, data.len())` of the blob.
    pub data: Vec<u8>,
    /// Size and hash the server announced, if it did.
    pub expect: Option<(u64, Hash)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitData,
    Data { size: u64, hash: Hash },
    Done,
}

/// Client side of one download.
#[derive(Debug)]
pub struct BlobGet {
    name: String,
    cap: usize,
    data: Vec<u8>,
    expect: Option<(u64, Hash)>,
    resumed_from: u64,
    state: State,
    reader: MsgReader,
    writer: MsgWriter,
    started: bool,
    fin_sent: bool,
    last_progress: Option<Instant>,
    idle_timeout: Duration,
}

impl BlobGet {
    /// A download of `name`, refused locally if larger than `cap` bytes.
    pub fn new(name: &str, cap: usize) -> Result<BlobGet, BlobError> {
        BlobGet::resume(
            GetResume {
                name: String::from(name),
                ..GetResume::default()
            },
            cap,
        )
    }

    /// Continues an interrupted download from `r.data.len()`.
    pub fn resume(r: GetResume, cap: usize) -> Result<BlobGet, BlobError> {
        if !valid_name(&r.name) {
            return Err(BlobError::BadName);
        }
        if r.data.len() > cap {
            return Err(BlobError::TooLarge);
        }
        Ok(BlobGet {
            resumed_from: r.data.len() as u64,
            name: r.name,
            cap,
            data: r.data,
            expect: r.expect,
            state: State::AwaitData,
            reader: MsgReader::new(BLOB_MSG_CAP),
            writer: MsgWriter::new(BLOB_MSG_CAP),
            started: false,
            fin_sent: false,
            last_progress: None,
            idle_timeout: BLOB_IDLE_TIMEOUT,
        })
    }

    /// Changes the idle timeout (default [`BLOB_IDLE_TIMEOUT`], at most
    /// [`BLOB_IDLE_TIMEOUT_MAX`]).
    pub fn set_idle_timeout(&mut self, t: Duration) {
        self.idle_timeout = t.min(BLOB_IDLE_TIMEOUT_MAX);
    }

    /// Bytes held so far (including resumed ones).
    pub fn received(&self) -> u64 {
        self.data.len() as u64
    }

    /// The size the server announced, once it did.
    pub fn size(&self) -> Option<u64> {
        self.expect.map(|(s, _)| s)
    }

    /// True once a result was returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When [`BlobGet::poll`] must run at the latest (idle deadline).
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.state, self.last_progress) {
            (State::Done, _) | (_, None) => None,
            (_, Some(t)) => Some(t + self.idle_timeout),
        }
    }

    /// What arrived so far, to [`BlobGet::resume`] on a new channel.
    pub fn into_resume(self) -> GetResume {
        GetResume {
            name: self.name,
            data: self.data,
            expect: self.expect,
        }
    }

    fn finish(&mut self, r: Result<GetDone, BlobError>) -> Option<Result<GetDone, BlobError>> {
        self.state = State::Done;
        Some(r)
    }

    fn fail<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        code: u16,
        e: BlobError,
    ) -> Option<Result<GetDone, BlobError>> {
        io.reset(code);
        self.finish(Err(e))
    }

    /// Drives the download; returns its result once.
    pub fn poll<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
    ) -> Option<Result<GetDone, BlobError>> {
        if self.state == State::Done {
            return None;
        }
        let last = *self.last_progress.get_or_insert(now);
        if now >= last + self.idle_timeout {
            return self.fail(io, reset_code::TIMEOUT, BlobError::Timeout);
        }
        if !self.started {
            self.started = true;
            let get = BlobRequest::Get {
                name: self.name.clone(),
                offset: self.data.len() as u64,
            };
            if self.writer.send(&get).is_err() {
                return self.fail(io, reset_code::ABORTED, BlobError::BadName);
            }
        }
        match self.writer.flush(io) {
            Ok(true) if !self.fin_sent => match io.finish() {
                Ok(()) => self.fin_sent = true,
                Err(ChannelError::WouldBlock) => {}
                Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
            },
            Ok(_) => {}
            Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
        }
        if self.state == State::AwaitData {
            let resp = match self.reader.poll(io) {
                Ok(Some(frame)) => match BlobResponse::decode(&frame) {
                    Ok(r) => r,
                    Err(_) => return self.fail(io, reset_code::MALFORMED, BlobError::Malformed),
                },
                Ok(None) => return None,
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
        self.read_data(now, io)
    }

    fn on_answer<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        resp: BlobResponse,
    ) -> Option<Result<GetDone, BlobError>> {
        match resp {
            BlobResponse::Data { size, hash } => {
                if usize::try_from(size).map_or(true, |s| s > self.cap) {
                    return self.fail(io, reset_code::ABORTED, BlobError::TooLarge);
                }
                if self.expect.is_some_and(|e| e != (size, hash)) || (self.data.len() as u64) > size
                {
                    return self.fail(io, reset_code::ABORTED, BlobError::Changed);
                }
                let rest = (size - self.data.len() as u64) as usize;
                if self.data.try_reserve_exact(rest).is_err() {
                    return self.fail(io, reset_code::ABORTED, BlobError::TooLarge);
                }
                self.expect = Some((size, hash));
                self.state = State::Data { size, hash };
                None
            }
            BlobResponse::Err { code, message } => self.finish(Err(BlobError::Remote {
                code: BlobCode::from_code(code),
                message,
            })),
            _ => self.fail(io, reset_code::MALFORMED, BlobError::Malformed),
        }
    }

    fn read_data<C: ChannelIo + ?Sized>(
        &mut self,
        now: Instant,
        io: &mut C,
    ) -> Option<Result<GetDone, BlobError>> {
        let State::Data { size, hash } = self.state else {
            return None;
        };
        let mut scratch = [0u8; BLOB_IO_CHUNK];
        while (self.data.len() as u64) < size {
            let left = usize::try_from(size - self.data.len() as u64).unwrap_or(usize::MAX);
            let dst = scratch
                .get_mut(..left.min(BLOB_IO_CHUNK))
                .unwrap_or(&mut []);
            match io.read(dst) {
                Ok(0) => return self.finish(Err(BlobError::Truncated)),
                Ok(n) => {
                    self.data.extend_from_slice(dst.get(..n).unwrap_or(&[]));
                    self.last_progress = Some(now);
                }
                Err(ChannelError::WouldBlock) => return None,
                Err(_) => return self.finish(Err(BlobError::ChannelClosed)),
            }
        }
        if blob_hash(&self.data) != hash {
            // Nothing of it can be trusted: a resume would start over.
            self.data = Vec::new();
            self.expect = None;
            return self.finish(Err(BlobError::BadHash));
        }
        let data = core::mem::take(&mut self.data);
        let resumed_from = self.resumed_from;
        self.finish(Ok(GetDone {
            data,
            hash,
            resumed_from,
        }))
    }
}
