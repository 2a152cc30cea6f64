/**
 * Imported by main.ts for its effect, before anything else allocates: the block below is freed
 * by V8's first scavenge, which comes with the first traffic (loading the modules allocates mostly
 * outside the young generation).
 *
 * glibc's malloc hands memory back to the kernel as soon as 128 KiB lie free at the top of its
 * heap, and takes it back on the next allocation as fresh pages, one fault per 4 KiB. A relay's
 * reads are 64 KiB buffers that V8 frees in batches of tens of MiB at each scavenge, so by
 * default every batch went back to the kernel and came back page by page: a bulk transfer spent
 * a third of its CPU in page faults (bench/profile-sessions.md, "Bulk").
 *
 * glibc raises its thresholds by itself the first time a block it mapped is freed (mallopt(3),
 * dynamic mmap threshold): blocks below that size then come from the heap, and the heap keeps
 * twice that size free before trimming. One block just under glibc's 32 MiB cap for this, never
 * written to (so never resident) and freed by V8's first scavenge, sets the trim threshold to
 * 64 MiB. Elsewhere (musl, macOS) it is one allocation and one free. Setting
 * `GLIBC_TUNABLES=glibc.malloc.trim_threshold=N` turns glibc's dynamic thresholds off, and this
 * with them, for whoever prefers memory returned at once.
 */
const BLOCK = 32 * 1024 * 1024 - 64 * 1024;

void Buffer.allocUnsafeSlow(BLOCK);
