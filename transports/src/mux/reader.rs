//! Reassembles frames from a byte stream chunked arbitrarily.
//!
//! Whole frames found in the input are handed out in place; only a partial
//! frame at the end of a chunk is copied, into a buffer capped at
//! `MAX_FRAME_LEN`. Header checks (type, flags, size) run as soon as the 8
//! header bytes are in, so an oversized frame is rejected before its payload.

use alloc::vec::Vec;

use super::error::MuxError;
use super::frame::{Header, HEADER_LEN};

/// Partial-frame buffer; its length never exceeds `MAX_FRAME_LEN`.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    partial: Vec<u8>,
}

impl FrameReader {
    /// Bytes of an incomplete frame currently held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Drops any partial frame.
    pub fn clear(&mut self) {
        self.partial = Vec::new();
    }

    /// Feeds `input`, calling `on_frame` with every whole frame (header + payload).
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(&[u8]) -> Result<(), MuxError>,
    ) -> Result<(), MuxError> {
        while !input.is_empty() {
            if self.partial.is_empty() {
                // Fast path: whole frames straight from the input.
                let Some(header) = Header::parse(input) else {
                    self.partial.extend_from_slice(input);
                    return Ok(());
                };
                header.check()?;
                let total = HEADER_LEN + usize::from(header.len);
                match input.split_at_checked(total) {
                    Some((frame, rest)) => {
                        on_frame(frame)?;
                        input = rest;
                    }
                    None => {
                        self.partial.extend_from_slice(input);
                        return Ok(());
                    }
                }
                continue;
            }
            // Slow path: complete the partial header, then the payload.
            if self.partial.len() < HEADER_LEN {
                let take = (HEADER_LEN - self.partial.len()).min(input.len());
                let (head, rest) = input.split_at(take);
                self.partial.extend_from_slice(head);
                input = rest;
            }
            let Some(header) = Header::parse(&self.partial) else {
                continue; // input exhausted before the header completed
            };
            header.check()?;
            let total = HEADER_LEN + usize::from(header.len);
            let take = total.saturating_sub(self.partial.len()).min(input.len());
            let (body, rest) = input.split_at(take);
            self.partial.extend_from_slice(body);
            input = rest;
            if self.partial.len() == total {
                let frame = core::mem::take(&mut self.partial);
                let result = on_frame(&frame);
                // Keep the allocation for the next partial frame.
                self.partial = frame;
                self.partial.clear();
                result?;
            }
        }
        Ok(())
    }
}
