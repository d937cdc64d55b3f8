//! One pcap file of the whole segment, written through smoltcp's `PcapSink`
//! (the crate is built without `std`, so the sink wraps the file itself).

use smoltcp::phy::{PcapLinkType, PcapSink};
use smoltcp::time::Instant;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A buffered pcap file; the first write error is kept and later writes are skipped.
pub struct PcapFile {
    out: BufWriter<File>,
    error: Option<std::io::Error>,
    /// Frames written.
    pub frames: u64,
}

impl PcapFile {
    /// Creates (truncates) `path` and writes the Ethernet global header.
    pub fn create(path: &Path) -> Result<PcapFile, String> {
        let file = File::create(path)
            .map_err(|e| format!("pcap: cannot create {}: {e}", path.display()))?;
        let mut p = PcapFile {
            out: BufWriter::new(file),
            error: None,
            frames: 0,
        };
        p.global_header(PcapLinkType::Ethernet);
        p.take_error()
            .map_or(Ok(p), |e| Err(format!("pcap: {}: {e}", path.display())))
    }

    /// Records one frame seen at `at` (wall-clock microseconds since the epoch).
    pub fn record(&mut self, at: Instant, frame: &[u8]) {
        self.packet(at, frame);
        self.frames += 1;
    }

    /// The first write error, if any (taken).
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }
}

impl PcapSink for PcapFile {
    fn write(&mut self, data: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(data) {
                self.error = Some(e);
            }
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
    }
}
