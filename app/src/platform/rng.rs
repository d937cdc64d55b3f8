//! Boot seed for the image RNG: 32 bytes from RDRAND (after checking
//! CPUID.1:ECX bit 30; each 64-bit draw retried up to [`RDRAND_RETRIES`] times
//! while CF=0). Without RDRAND the seed is built from TSC readings and marked
//! predictable (`EntropySource::None`).

use core::arch::asm;
use core::arch::x86_64::__cpuid;

use dsb_app::rng::{EntropySource, NodeRng};

use super::clock::rdtsc;

/// Attempts per 64-bit RDRAND draw before giving up.
pub const RDRAND_RETRIES: u32 = 10;

fn has_rdrand() -> bool {
    // SAFETY: CPUID leaf 1 exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let leaf1 = unsafe { __cpuid(1) };
    leaf1.ecx & (1 << 30) != 0
}

fn rdrand64() -> Option<u64> {
    for _ in 0..RDRAND_RETRIES {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND is present (checked by the caller); it writes a register and CF.
        unsafe {
            asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok,
                 options(nomem, nostack));
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

fn rdrand_seed() -> Option<[u8; 32]> {
    if !has_rdrand() {
        return None;
    }
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rdrand64()?.to_le_bytes());
    }
    Some(seed)
}

/// Seeds the image RNG from the best source available.
pub fn seed() -> NodeRng {
    match rdrand_seed() {
        Some(seed) => NodeRng::from_seed(seed, EntropySource::Rdrand),
        None => {
            // Predictable: timestamps only. Marked as such so long-term keys are refused.
            let mut seed = [0u8; 32];
            for chunk in seed.chunks_exact_mut(8) {
                let t = rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15);
                chunk.copy_from_slice(&t.to_le_bytes());
            }
            NodeRng::from_seed(seed, EntropySource::None)
        }
    }
}
