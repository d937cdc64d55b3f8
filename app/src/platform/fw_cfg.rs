//! QEMU's firmware configuration device (`fw_cfg`, I/O ports 0x510/0x511):
//! how a VM receives files from the host, e.g. its identity
//! (`-fw_cfg name=opt/dsoftbus/identity,file=<path>`).
//!
//! Only the legacy port interface: write a 16-bit selector to 0x510, read
//! the item byte by byte from 0x511. The file directory (selector 0x19) is
//! a big-endian entry count followed by 64-byte entries: size (u32 BE),
//! selector (u16 BE), reserved (u16), NUL-padded name (56 bytes). Every
//! read is bounded; nothing here trusts the host beyond its sizes.

use super::port::{inb, outw};

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const SIGNATURE: u16 = 0x0000;
const FILE_DIR: u16 = 0x0019;
/// Most directory entries looked at.
const MAX_ENTRIES: u32 = 256;
/// Length of an entry's name field.
const NAME_LEN: usize = 56;

fn select(key: u16) {
    // SAFETY: 0x510 is fw_cfg's selector port on `-machine pc`; selecting an
    // item has no effect beyond what the data port then returns.
    unsafe { outw(SELECTOR, key) }
}

fn read(buf: &mut [u8]) {
    for b in buf {
        // SAFETY: 0x511 is fw_cfg's data port; reading advances within the item.
        *b = unsafe { inb(DATA) };
    }
}

/// Whether a fw_cfg device answers (its signature is `QEMU`).
pub fn present() -> bool {
    select(SIGNATURE);
    let mut sig = [0u8; 4];
    read(&mut sig);
    &sig == b"QEMU"
}

/// Why a file could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// No fw_cfg device.
    Absent,
    /// No file of that name.
    NotFound,
    /// The file is larger than the caller's buffer.
    TooLarge(u32),
}

/// Reads the file called `name` into `buf`; returns its length.
pub fn read_file(name: &str, buf: &mut [u8]) -> Result<usize, FwCfgError> {
    if !present() {
        return Err(FwCfgError::Absent);
    }
    select(FILE_DIR);
    let mut count = [0u8; 4];
    read(&mut count);
    let count = u32::from_be_bytes(count).min(MAX_ENTRIES);
    let mut found = None;
    for _ in 0..count {
        let mut head = [0u8; 8];
        read(&mut head);
        let mut raw = [0u8; NAME_LEN];
        read(&mut raw);
        let len = raw.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
        if found.is_none() && raw.get(..len) == Some(name.as_bytes()) {
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let key = u16::from_be_bytes([head[4], head[5]]);
            found = Some((size, key));
        }
    }
    let (size, key) = found.ok_or(FwCfgError::NotFound)?;
    let n = usize::try_from(size).map_err(|_| FwCfgError::TooLarge(size))?;
    let dst = buf.get_mut(..n).ok_or(FwCfgError::TooLarge(size))?;
    select(key);
    read(dst);
    Ok(n)
}
