//! Memory allocation: mimalloc as the global allocator of every binary that links the worker,
//! transparent huge pages off, and returning a finished thread's memory at once.

// Ingest makes and frees a few small strings per message on several threads; glibc's malloc
// spent a fifth of the ingest threads' CPU on that (perf, bench/e2e). mimalloc's per-thread
// free lists make it a small cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. Stored batches are allocated on the
/// ingest threads and freed after their flush on another, so the allocator keeps taking fresh
/// memory from the OS; with huge pages each first touch zeroes 2 MiB, which cost about an
/// eighth of the server's CPU during ingest (perf: clear_page_erms under
/// do_huge_pmd_anonymous_page, bench/e2e with 4 connections).
pub fn disable_transparent_huge_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments and touches no
    // memory of ours; failure (an old kernel) only means huge pages stay as they were.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Returns the calling thread's free memory to the OS now. For threads about to exit (each
/// query runs on threads of its own): mimalloc otherwise keeps a finished thread's pages for
/// a while, and after a few scans of millions of events RSS stood at three times what was live.
pub fn release_thread_memory() {
    // SAFETY: mi_collect only walks the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
