//! How deep the stack has been: `cortex-m-rt` paints the stack's memory with
//! `0xCCCC_CCCC` at reset (feature `paint-stack`), and the deepest word no longer painted
//! marks the deepest the stack went. Only the top [`SCANNED`] bytes are searched.

/// Bytes below the top of the stack searched: a deeper stack shows as this much.
pub const SCANNED: usize = 64 * 1024;

const PAINT: u32 = 0xCCCC_CCCC;

/// The most bytes of stack used since reset.
pub fn peak() -> usize {
    unsafe extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = (&raw const _stack_end as usize).max(top.saturating_sub(SCANNED));
    let mut at = bottom;
    // SAFETY: every word from `bottom` to `top` is RAM reserved for the stack; a word above
    // the stack pointer is read only, never written.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}
