//! The heap: a linked-list allocator over a static array, counting the bytes in use and
//! their high-water mark.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use embedded_alloc::LlffHeap;

use crate::computations::MAX_HOSTED;

/// The heap's size: room for a MORPH stream of `Limits::MICROCONTROLLER.max_transfer`
/// bytes per hosted computation (two may arrive at once) and the device, and with
/// WebAssembly, per computation, its interpreter and module (PacMan's take about 230 KB)
/// and twice its largest linear memory (growing it copies it).
pub const SIZE: usize = {
    let transfer = pcxses_core::Limits::MICROCONTROLLER.max_transfer as usize;
    let per_computation = if cfg!(feature = "wasm") {
        transfer + 384 * 1024 + 2 * GUEST_MEMORY
    } else {
        transfer
    };
    MAX_HOSTED * per_computation + 32 * 1024
};

#[cfg(feature = "wasm")]
use crate::computations::GUEST_MEMORY;
#[cfg(not(feature = "wasm"))]
const GUEST_MEMORY: usize = 0;

/// The allocator, counting.
pub struct Counted {
    heap: LlffHeap,
    used: AtomicUsize,
    /// The most in use since boot, and since [`take_recent_peak`].
    peak: AtomicUsize,
    recent: AtomicUsize,
}

#[global_allocator]
static HEAP: Counted = Counted {
    heap: LlffHeap::empty(),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    recent: AtomicUsize::new(0),
};

/// Hands the heap its memory. Call once, first thing.
pub fn init() {
    static mut MEMORY: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
    // SAFETY: called once, before anything allocates; `MEMORY` is used by nothing else.
    unsafe { HEAP.heap.init(&raw mut MEMORY as usize, SIZE) }
}

/// Bytes allocated now, as the program asked for them.
pub fn used() -> usize {
    HEAP.used.load(Relaxed)
}

/// The most bytes allocated at once since boot.
pub fn peak() -> usize {
    HEAP.peak.load(Relaxed)
}

/// The most bytes allocated at once since the last call (since boot, the first time).
pub fn take_recent_peak() -> usize {
    // Thread mode only, as every allocation: no read-modify-write needed.
    let peak = HEAP.recent.load(Relaxed);
    HEAP.recent.store(used(), Relaxed);
    peak
}

// Allocation happens in thread mode only (the SysTick handler does not allocate), so the
// counters need no read-modify-write atomics, which Cortex-M0+ lacks.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.heap.alloc(layout) };
        if !p.is_null() {
            let used = self.used.load(Relaxed) + layout.size();
            self.used.store(used, Relaxed);
            for peak in [&self.peak, &self.recent] {
                if used > peak.load(Relaxed) {
                    peak.store(used, Relaxed);
                }
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.used
            .store(self.used.load(Relaxed) - layout.size(), Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}
