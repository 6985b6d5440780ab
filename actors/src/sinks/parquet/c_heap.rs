//! The C heap under the zstd codec: parquet's zstd compressor allocates its contexts with the
//! C library's `malloc`, not with Rust's global allocator (mimalloc), so glibc's default
//! behaviour applies to them.
//!
//! parquet 60 creates a compression (and a decompression) context for every column chunk, a
//! few hundred KiB each. With glibc's defaults every free of one trims the heap (`madvise`) or
//! unmaps it, and the next allocation faults the pages back in: measured with `perf` on the
//! 10,000-instrument load test as `heap_trim`/`madvise` under `ZSTD_freeDCtx` and
//! `clear_page_erms` under `ZSTD_createCCtx`. Raising the mmap and trim thresholds keeps those
//! pages in the process instead.

use std::sync::Once;

/// Allocations below this come from the heap, not from a fresh `mmap` each time.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// The heap is trimmed only when this much is free at its top.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Sets glibc's mmap and trim thresholds once per process (no effect on other C libraries).
pub(super) fn keep_c_heap() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only changes two tuning parameters of glibc's allocator; it is safe
        // to call at any time from any thread, and both values are in its documented range.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}
