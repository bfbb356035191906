//! A global allocator that counts the bytes it has handed out, so a
//! program can report its heap honestly (the RESP server's INFO memory and
//! `--maxmemory`). The `evnet` binary installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: evnet::sys::alloc::Counting = evnet::sys::alloc::Counting;
//! ```
//!
//! A program that embeds the library and does not install it pays nothing;
//! [`allocated`] then says `None`.
//!
//! Each allocation adds the size the system allocator really reserves for
//! it (glibc's chunk size, computed from the request) to one relaxed atomic
//! counter and each free takes it off again: the heap as the allocator
//! sees it, not the sizes asked for.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting (see the module doc).
pub struct Counting;

/// The bytes an allocation of `layout` really occupies in glibc's malloc:
/// its chunk (the request plus an 8-byte header, rounded up to 16, at
/// least 32) less the header; large ones (mmapped) are page-rounded.
/// Computed, not asked (`malloc_usable_size` costs a call per allocation
/// and per free); the same figure is added and taken off, so the count
/// stays exact to what it models.
fn usable(ptr: *mut u8, layout: Layout) -> isize {
    if ptr.is_null() {
        return 0;
    }
    let size = layout.size().max(layout.align());
    let chunk = if size >= MMAP_AT {
        (size + 16 + 4095) & !4095
    } else {
        ((size + 8 + 15) & !15).max(32)
    };
    (chunk - 8) as isize
}

/// glibc's default mmap threshold: larger allocations get their own pages.
const MMAP_AT: usize = 128 * 1024;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counting only reads the
// pointers it gets back.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller upholds `alloc`'s contract).
        let p = unsafe { System.alloc(layout) };
        count_new(p, layout);
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        count_new(p, layout);
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(usable(ptr, layout), Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(ptr, layout);
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // SAFETY: `layout.align()` is a valid alignment and `new_size`
            // was accepted by realloc, so this is a valid layout.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            ALLOCATED.fetch_add(usable(p, new_layout) - before, Ordering::Relaxed);
        }
        p
    }
}

/// Count `p` (of `layout`) as allocated.
fn count_new(p: *mut u8, layout: Layout) {
    ALLOCATED.fetch_add(usable(p, layout), Ordering::Relaxed);
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Bytes allocated on the heap now, if [`Counting`] is the global
/// allocator (it knows once it has allocated anything); `None` otherwise.
pub fn allocated() -> Option<usize> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| ALLOCATED.load(Ordering::Relaxed).max(0) as usize)
}

/// The process's resident set size in bytes, from `/proc/self/statm`.
pub fn resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}
