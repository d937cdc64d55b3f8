//! The global allocator: `linked_list_allocator` over RAM right above the image.
//!
//! The heap is taken from the PVH memory map (the RAM range that holds the end of
//! the image), capped at [`HEAP_SIZE`] and at 4 GiB (the end of the identity map).
//! Nothing is zeroed up front. Single CPU, interrupts off: the lock only guards
//! against re-entry, and a re-entrant call fails the allocation instead of hanging.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::Heap;

use super::start_info::RamRange;

/// Largest heap the image sets up.
pub const HEAP_SIZE: usize = 32 * 1024 * 1024;
/// Smallest heap the image accepts.
pub const HEAP_MIN: usize = 4 * 1024 * 1024;
/// End of the identity map set up by the boot stub.
const IDENTITY_MAP_END: u64 = 4 << 30;

unsafe extern "C" {
    /// First byte after the image (linker script).
    static __image_end: u8;
}

struct KernelHeap {
    busy: AtomicBool,
    heap: UnsafeCell<Heap>,
}

// SAFETY: one CPU, no interrupts; `busy` serialises every access to `heap`.
unsafe impl Sync for KernelHeap {}

impl KernelHeap {
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false, so no other reference to the heap exists.
        let r = f(unsafe { &mut *self.heap.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

// SAFETY: allocations come from the linked-list heap, which hands out disjoint,
// properly aligned blocks of RAM that nothing else uses.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| h.allocate_first_fit(layout))
            .and_then(Result::ok)
            .map_or(null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `ptr` was returned by `alloc` with this `layout` (GlobalAlloc contract).
            self.with(|h| unsafe { h.deallocate(ptr, layout) });
        }
    }
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap {
    busy: AtomicBool::new(false),
    heap: UnsafeCell::new(Heap::empty()),
};

/// Why the heap could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The memory map has no RAM range holding the end of the image.
    NoRam,
    /// The RAM above the image is smaller than [`HEAP_MIN`].
    TooSmall,
}

impl HeapError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            HeapError::NoRam => "no-ram",
            HeapError::TooSmall => "too-small",
        }
    }
}

/// Sets up the heap above the image; returns its `(start, size)`.
pub fn init(ram: &[RamRange]) -> Result<(u64, usize), HeapError> {
    let start = core::ptr::addr_of!(__image_end) as u64;
    let range = ram
        .iter()
        .find(|r| r.start <= start && start < r.end)
        .ok_or(HeapError::NoRam)?;
    let end = range
        .end
        .min(IDENTITY_MAP_END)
        .min(start.saturating_add(HEAP_SIZE as u64));
    let size = end.saturating_sub(start) as usize;
    if size < HEAP_MIN {
        return Err(HeapError::TooSmall);
    }
    ALLOCATOR
        .with(|h| {
            // SAFETY: [start, start + size) is RAM above the image, identity mapped and
            // used by nothing else; the heap is initialised once.
            unsafe { h.init(start as usize as *mut u8, size) }
        })
        .ok_or(HeapError::NoRam)?;
    Ok((start, size))
}

/// Bytes in use and total heap size.
pub fn usage() -> (usize, usize) {
    ALLOCATOR.with(|h| (h.used(), h.size())).unwrap_or((0, 0))
}
