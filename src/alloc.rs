//! The global allocator of the `elasticrds` binary and the backtest benchmark: mimalloc, with
//! the common case called directly. Not used by the library itself (a library does not choose
//! its users' allocator); `src/main.rs` and `benches/backtest.rs` install it.
//!
//! What it buys: a tick makes some thirty small allocations. The `mimalloc` crate's
//! `GlobalAlloc` asks for every block through mimalloc's aligned entry points, whose fast path
//! takes a block only when the free one happens to be aligned and whose slow path
//! over-allocates for block sizes that are not powers of two (24, 40, 48 bytes...). Every block
//! mimalloc hands out is aligned to a machine word, so a layout that needs no more than that
//! (nearly all of them) goes to the plain `mi_malloc`/`mi_realloc`; the rest to the aligned
//! calls as before. Measured with callgrind on a month of the benchmark's year: docs/backtest.md.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use libmimalloc_sys as mi;

/// Every mimalloc block is at least word-aligned (its size classes are whole words).
const WORD: usize = core::mem::size_of::<usize>();

/// mimalloc, the plain calls for word-aligned layouts.
pub struct Allocator;

/// A block for `layout` from `plain` when the layout needs no more than word alignment, else
/// from `aligned`.
///
/// # Safety
/// `plain` and `aligned` are mimalloc allocation calls (of a size; of a size and alignment).
#[inline]
unsafe fn block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: mimalloc's allocation calls accept any size; its blocks are word-aligned, and
    // the aligned call is used for anything more.
    unsafe {
        if layout.align() <= WORD {
            plain(layout.size()) as *mut u8
        } else {
            aligned(layout.size(), layout.align()) as *mut u8
        }
    }
}

unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned allocation calls.
        unsafe { block(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned zeroing allocation calls.
        unsafe { block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (mimalloc frees aligned and plain blocks alike).
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment (word-aligned by mimalloc, or by the aligned call).
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every small size and alignment come back aligned as asked, hold their bytes
    /// across a realloc, and zeroed ones are zero.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = Allocator;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 12, 24, 40, 48, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size}/{align}"
                    );
                    for i in 0..size {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let q = a.realloc(p, layout, size * 3);
                    assert!(
                        !q.is_null() && (q as usize).is_multiple_of(align),
                        "realloc {size}/{align}"
                    );
                    assert!((0..size).all(|i| *q.add(i) == (i % 251) as u8));
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert!(
                        !z.is_null() && (z as usize).is_multiple_of(align),
                        "zeroed {size}/{align}"
                    );
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
