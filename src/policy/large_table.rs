//! Read-only tables for the query path, laid out for the TLB and the cache.
//!
//! A prefix map of a million client networks is tens of megabytes read at
//! random addresses, one lookup per query. In 4 KiB pages every such read
//! also misses the TLB (a page walk before the cache miss itself), so a
//! table of at least [`HUGE_PAGE`] bytes is placed on 2 MiB boundaries and
//! advised for transparent huge pages (`MADV_HUGEPAGE`, which Debian's
//! default `madvise` mode honours): a few TLB entries then cover it whole.
//! Smaller tables are aligned to a cache line, so that an element of 64
//! bytes is one line. The advice is best effort: where the kernel declines,
//! the table works the same in small pages.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::{self, NonNull};

/// The huge page size advised for (x86-64 and the common arm64 setting).
const HUGE_PAGE: usize = 2 << 20;

/// Alignment of tables too small for huge pages: one cache line.
const CACHE_LINE: usize = 64;

/// An immutable slice of plain values in its own aligned allocation.
pub struct LargeTable<T: Copy> {
    pointer: NonNull<T>,
    length: usize,
    /// The allocation's layout; size 0 when nothing was allocated.
    layout: Layout,
}

// SAFETY: the table owns its allocation and never hands out mutable access,
// so sharing or sending it is as safe as sharing or sending `[T]`.
unsafe impl<T: Copy + Send> Send for LargeTable<T> {}
// SAFETY: as above; `&LargeTable<T>` only gives `&[T]`.
unsafe impl<T: Copy + Sync> Sync for LargeTable<T> {}

impl<T: Copy> LargeTable<T> {
    /// An empty table (no allocation).
    pub fn empty() -> Self {
        Self {
            pointer: NonNull::dangling(),
            length: 0,
            layout: Layout::new::<()>(),
        }
    }

    /// A copy of `items` in a new aligned allocation.
    ///
    /// # Panics
    ///
    /// Panics when the size overflows `isize` (as a `Vec` would) and aborts
    /// when memory runs out.
    pub fn from_slice(items: &[T]) -> Self {
        let bytes = size_of_val(items);
        if bytes == 0 {
            return Self::empty();
        }
        let (size, align) = if bytes >= HUGE_PAGE {
            (bytes.next_multiple_of(HUGE_PAGE), HUGE_PAGE)
        } else {
            (bytes, CACHE_LINE.max(align_of::<T>()))
        };
        let layout = Layout::from_size_align(size, align).expect("table size overflows");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(pointer) = NonNull::new(raw.cast::<T>()) else {
            alloc::handle_alloc_error(layout);
        };
        if align == HUGE_PAGE {
            // Advice before the first touch, so that the copy below faults
            // huge pages in. A refusal (THP disabled) changes nothing else.
            // SAFETY: the range is exactly the allocation just made, which
            // is page aligned; MADV_HUGEPAGE does not change its contents.
            unsafe {
                libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE);
            }
        }
        // SAFETY: the allocation holds `size >= bytes` bytes aligned for `T`
        // and does not overlap `items`.
        unsafe { ptr::copy_nonoverlapping(items.as_ptr(), pointer.as_ptr(), items.len()) };
        Self {
            pointer,
            length: items.len(),
            layout,
        }
    }

    /// Bytes allocated (rounded up to whole huge pages for a large table).
    pub fn allocated_bytes(&self) -> usize {
        self.layout.size()
    }
}

impl<T: Copy> Deref for LargeTable<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `pointer` holds `length` initialised values (or is
        // dangling with length 0), alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.pointer.as_ptr(), self.length) }
    }
}

impl<T: Copy> Drop for LargeTable<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `from_slice` with exactly this layout.
            unsafe { alloc::dealloc(self.pointer.as_ptr().cast(), self.layout) };
        }
    }
}

impl<T: Copy> Clone for LargeTable<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Copy> Default for LargeTable<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Copy> fmt::Debug for LargeTable<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "LargeTable({} entries)", self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_aligns_small_and_large_tables() {
        let empty = LargeTable::<u32>::from_slice(&[]);
        assert!(empty.is_empty());
        assert_eq!(empty.allocated_bytes(), 0);

        let small = LargeTable::from_slice(&[1u32, 2, 3]);
        assert_eq!(&*small, &[1, 2, 3]);
        assert_eq!(small.as_ptr() as usize % CACHE_LINE, 0);

        let values: Vec<u64> = (0..(HUGE_PAGE / 8 + 5) as u64).collect();
        let large = LargeTable::from_slice(&values);
        assert_eq!(&*large, &values[..]);
        assert_eq!(large.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(large.allocated_bytes(), 2 * HUGE_PAGE);
        let copy = large.clone();
        assert_eq!(&*copy, &values[..]);
        assert_ne!(copy.as_ptr(), large.as_ptr());
    }
}
