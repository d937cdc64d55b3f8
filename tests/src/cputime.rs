//! The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), for benchmarks
//! that report CPU cost rather than wall time. Nanosecond resolution on
//! Linux; it does not advance while the thread is descheduled, so a busy
//! machine does not inflate it.

use std::time::Duration;

/// CPU time consumed by the calling thread so far.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Measures the CPU time `f` takes on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = thread_cpu();
    let r = f();
    (r, thread_cpu().saturating_sub(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_with_work_and_has_fine_resolution() {
        let (_, d) = measure(|| {
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x)
        });
        assert!(d > Duration::ZERO);
        // Far finer than the 4 ms scheduler tick of /proc/thread-self/schedstat.
        let (_, tiny) = measure(|| std::hint::black_box(1 + 1));
        assert!(tiny < Duration::from_millis(1), "{tiny:?}");
    }
}
