//! Giving memory back to the system. Both measures are for glibc's malloc
//! (Linux with the GNU C library, what the wheel is built for); elsewhere
//! they do nothing.
//!
//! - Large allocations (a large lab's device data: megabytes, parsed and
//!   answered) come from their own memory maps, returned when freed.
//!   glibc raises its mmap threshold to the size of the largest block freed
//!   so far (up to 32 MiB), so after the first large lab every later one
//!   came from the heap, whose pages it kept: measured with bench P7, RSS
//!   grew by a third over five bring-ups of a 120-node lab. A fixed
//!   threshold (which also turns the raising off; mallopt(3),
//!   `M_MMAP_THRESHOLD`) gives each bring-up's memory back.
//! - Many small blocks (each HTTP connection holds two 8 KiB buffers of
//!   hyper's) are freed back into malloc's heaps, but their pages stay
//!   with the process: measured, 10,000 long-polls raised RSS from 18 to
//!   156 MB, and it stayed at 89 MB once they had closed (151 MB after a
//!   second round). [`trim`] returns the free pages (malloc_trim(3)); the
//!   server calls it after many connections have closed.

/// Large allocations from their own maps. Call before any other thread starts.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns the free pages of malloc's heaps to the system (a few
/// milliseconds for a heap of a hundred megabytes).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc does not use.
    unsafe {
        libc::malloc_trim(0);
    }
}
