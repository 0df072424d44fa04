//! Peak heap measurement: a counting wrapper around the system allocator.
//!
//! Chosen over VmHWM because VmHWM is a process-wide high-water mark that
//! only grows (the first big workload would mask every later one) and
//! includes the allocator's retained pages; counting live heap bytes gives
//! the peak of each timed region on its own. Counting costs up to two atomic
//! read-modify-writes per allocation, which would tax the side that
//! allocates more, so it is switched on only for the warm-up run; the
//! measured runs see one relaxed load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

/// Turns counting on or off (frees of blocks counted while on are still
/// subtracted while off; only the peak of an "on" window is meaningful).
pub fn set_counting(on: bool) {
    ON.store(on, Relaxed);
}

#[inline]
fn grew(size: usize) {
    if !ON.load(Relaxed) {
        return;
    }
    let now = CURRENT.fetch_add(size, Relaxed) + size;
    if now > PEAK.load(Relaxed) {
        PEAK.fetch_max(now, Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if ON.load(Relaxed) {
            CURRENT.fetch_sub(layout.size(), Relaxed);
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else if ON.load(Relaxed) {
                CURRENT.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

/// Starts a new peak window; returns the live bytes at its start.
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

/// The highest live heap size since the last `reset_peak`.
pub fn peak() -> usize {
    PEAK.load(Relaxed)
}
