//! Hints to the processor that change no result: fetching a cache line
//! ahead of its use, so that the misses of the next packets' lookups
//! overlap the work on this one instead of following it.

/// Asks for the cache line of `slice[i]` (nothing if `i` is out of
/// bounds). Only a hint: no fault, no effect on any value.
#[inline(always)]
pub(crate) fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = slice.get(i) {
        // SAFETY: PREFETCHT0 reads nothing into a register and cannot
        // fault, whatever the address; this one is a live element's.
        #[allow(unsafe_code, reason = "the prefetch intrinsic has no safe form")]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                std::ptr::from_ref(item).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}
