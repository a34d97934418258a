//! Executable memory for stubs: many stubs packed into shared chunks, W^X.
//!
//! Each chunk is one memfd mapped twice: a read+execute view the stubs run
//! from, and a read+write view the arena copies code into. No page is ever
//! writable and executable at the same time, no page is ever flipped between
//! the two (so a thread running a stub never faults while another attaches),
//! and a chunk never moves or shrinks once a stub address has been handed out
//! (dynasmrt's growable buffer remaps on overflow; we avoid it for that
//! reason: see docs/design.md).
//!
//! The writable view exists only where code is being written: the chunk
//! stubs are appended to, and at most one other chunk whose reclaimed space
//! is being refilled. A chunk that fills up loses its writable view; one
//! whose stubs were freed gets it back (a fresh mmap of the memfd) while
//! code goes into that space, and loses it again when another chunk needs
//! refilling or it is full.
//!
//! A freed stub (`free`) leaves a hole that only a stub of the same *code
//! class* fills: the same instructions, differing only in their literal
//! pool (a template retargeted to another function, see
//! `EmittedStub::retarget`). So whatever an instruction fetch or a
//! translation cache holds for that address stays right: x86-64 fetches
//! coherently anyway, but valgrind and qemu-user translate guest code once
//! and cannot see a write made through the other mapping. Who frees a stub
//! must know that no thread can run it any more (see `ruby::stub_lifetime`).
//!
//! fork: the memfd pages are shared between parent and child, but each
//! process has its own idea of which bytes are free. So after a fork a
//! process writes into a chunk only once it has made the chunk its own: a
//! copy in a new memfd mapped over both views at the same addresses
//! (`MAP_FIXED` replaces a mapping atomically: a thread running a stub there
//! meanwhile sees the same bytes). Parent and child both do this, lazily, for
//! the chunks they write to.
//!
//! aarch64 (see docs/aarch64.md): instruction fetch is not coherent with
//! data writes, so after copying a stub the arena cleans the data cache and
//! invalidates the instruction cache over the stub's executable addresses
//! before handing the address out. macOS cannot use memfd; there a chunk is
//! one `MAP_JIT` mapping, writable or executable per thread, toggled with
//! `pthread_jit_write_protect_np` around each copy (UNTESTED: no Apple
//! machine in CI; it is compiled only for macOS), and a forked child gets a
//! private copy from the kernel.

use std::collections::HashMap;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

const CHUNK_SIZE: usize = 256 * 1024;
/// Stubs start on a 16-byte boundary (instruction fetch blocks).
const STUB_ALIGN: usize = 16;
/// Fill between stubs, so a stray jump past a stub traps: int3 on x86-64,
/// `udf #0` (the all-zero word) on aarch64.
#[cfg(not(target_arch = "aarch64"))]
const PAD: u8 = 0xcc;
#[cfg(target_arch = "aarch64")]
const PAD: u8 = 0x00;

/// Bumped in parent and child by a `pthread_atfork` handler: a chunk whose
/// `own_gen` differs may be shared with another process.
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

fn fork_gen() -> u64 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers plain functions that only bump an atomic.
        unsafe { libc::pthread_atfork(None, Some(after_fork), Some(after_fork)) };
    });
    FORK_GEN.load(Ordering::Relaxed)
}

struct Chunk {
    /// The memfd (kept to map the writable view again); -1 on macOS.
    fd: libc::c_int,
    /// The writable view, or null while the chunk has none.
    rw: *mut u8,
    rx: *const u8,
    size: usize,
    /// Bytes handed out from the start (the tail after it is free).
    used: usize,
    /// Freed stubs in this chunk not refilled yet.
    holes: usize,
    /// `FORK_GEN` when this process last made the memory its own.
    own_gen: u64,
}

// SAFETY: the raw pointers are addresses of mappings owned by the arena;
// access is serialized by the arena's owner (a Mutex).
unsafe impl Send for Chunk {}

/// A freed stub's place: chunk index and offset.
#[derive(Clone, Copy)]
struct Hole {
    chunk: usize,
    offset: usize,
}

/// An arena of executable code: stubs are appended, freed, and their space
/// reused by stubs of the same code class.
#[derive(Default)]
pub struct CodeArena {
    chunks: Vec<Chunk>,
    /// Code bytes of the stubs alive (without alignment padding).
    bytes: usize,
    /// The chunk (other than the last) whose writable view is mapped for
    /// refilling its holes.
    refill: Option<usize>,
    /// Per code class: its holes (all the same size).
    holes: HashMap<u32, Vec<Hole>>,
}

impl CodeArena {
    pub fn new() -> CodeArena {
        CodeArena::default()
    }

    /// Copies position-independent `code` into executable memory and
    /// returns the address it runs at, for the life of the process.
    pub fn install(&mut self, code: &[u8]) -> io::Result<usize> {
        self.install_in_class(code, None)
    }

    /// Like `install`, for code of `class` that may be `free`d: it may go
    /// where a freed stub of the same class was.
    pub fn install_reusable(&mut self, code: &[u8], class: u32) -> io::Result<usize> {
        self.install_in_class(code, Some(class))
    }

    fn install_in_class(&mut self, code: &[u8], class: Option<u32>) -> io::Result<usize> {
        let len = Self::rounded(code.len());
        let (index, offset) = match class.and_then(|c| self.take_hole(c)) {
            Some(found) => found?,
            None => self.append(len)?,
        };
        let chunk = &mut self.chunks[index];
        chunk.make_own()?;
        // SAFETY: [offset, offset+len) lies inside the chunk and is free
        // (a hole of this class, or the tail), its writable view is mapped
        // (`take_hole`, `append`), and no stub there can run: nothing was
        // handed out there, or what was has been freed.
        unsafe {
            let _writable = WriteWindow::open();
            ptr::copy_nonoverlapping(code.as_ptr(), chunk.rw.add(offset), code.len());
            ptr::write_bytes(chunk.rw.add(offset + code.len()), PAD, len - code.len());
        }
        let addr = chunk.rx as usize + offset;
        // SAFETY: the range was just written and lies inside the RX view.
        flush_icache(unsafe { std::slice::from_raw_parts(addr as *const u8, len) });
        self.bytes += code.len();
        Ok(addr)
    }

    /// Gives back the `code_len` bytes of `class` installed at `addr`. The
    /// caller guarantees that no thread runs or will run that code.
    pub fn free(&mut self, addr: usize, code_len: usize, class: u32) {
        let Some(chunk) = self.chunks.iter().position(|c| (c.rx as usize..c.rx as usize + c.size).contains(&addr)) else {
            return;
        };
        self.chunks[chunk].holes += 1;
        self.holes.entry(class).or_default().push(Hole { chunk, offset: addr - self.chunks[chunk].rx as usize });
        self.bytes -= code_len;
    }

    fn rounded(len: usize) -> usize {
        len.div_ceil(STUB_ALIGN) * STUB_ALIGN
    }

    /// A hole of `class`, with its chunk's writable view mapped: one in a
    /// chunk that has the view already if there is (the last chunk or the
    /// refill chunk), else the newest, whose chunk becomes the refill chunk.
    fn take_hole(&mut self, class: u32) -> Option<io::Result<(usize, usize)>> {
        let holes = self.holes.get_mut(&class).filter(|h| !h.is_empty())?;
        let chunks = &self.chunks;
        let pick = holes.iter().rposition(|h| !chunks[h.chunk].rw.is_null()).unwrap_or(holes.len() - 1);
        let hole = holes.swap_remove(pick);
        self.chunks[hole.chunk].holes -= 1;
        let last = self.chunks.len() - 1;
        if hole.chunk != last {
            if let Err(e) = self.set_refill(Some(hole.chunk)) {
                return Some(Err(e));
            }
        }
        Some(Ok((hole.chunk, hole.offset)))
    }

    /// `len` bytes of the last chunk's tail, or of a new chunk.
    fn append(&mut self, len: usize) -> io::Result<(usize, usize)> {
        // A refill chunk with no holes left keeps no writable view.
        if self.refill.is_some_and(|i| self.chunks[i].holes == 0) {
            self.set_refill(None)?;
        }
        let last = self.chunks.len().checked_sub(1);
        if let Some(i) = last {
            let c = &mut self.chunks[i];
            if c.size - c.used >= len {
                c.used += len;
                return Ok((i, c.used - len));
            }
        }
        let mut chunk = Chunk::map(len.max(CHUNK_SIZE).div_ceil(page_size()) * page_size())?;
        chunk.used = len;
        self.chunks.push(chunk);
        // The previous last chunk is full: its writable view goes, unless
        // it is being refilled.
        if let Some(i) = last {
            if self.refill != Some(i) {
                self.chunks[i].drop_writable();
            }
        }
        Ok((self.chunks.len() - 1, 0))
    }

    /// Makes chunk `index` the refill chunk (mapping its writable view) and
    /// drops the writable view of the previous one.
    fn set_refill(&mut self, index: Option<usize>) -> io::Result<()> {
        let last = self.chunks.len().checked_sub(1);
        if self.refill == index {
            return Ok(());
        }
        if let Some(old) = self.refill {
            if Some(old) != last {
                self.chunks[old].drop_writable();
            }
        }
        self.refill = index;
        if let Some(i) = index {
            self.chunks[i].map_writable()?;
        }
        Ok(())
    }

    /// Bytes of code installed and not freed (excluding alignment padding).
    pub fn code_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of executable memory reserved.
    pub fn reserved_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.size).sum()
    }

    /// Bytes of executable memory that also have a writable view now.
    pub fn writable_bytes(&self) -> usize {
        self.chunks.iter().filter(|c| !c.rw.is_null()).map(|c| c.size).sum()
    }
}

/// Makes the calling thread's view of `MAP_JIT` memory writable until
/// dropped (macOS on Apple silicon: JIT pages are writable or executable
/// per thread, never both). A no-op elsewhere: the memfd chunks have a
/// separate writable view. UNTESTED on macOS.
struct WriteWindow;

impl WriteWindow {
    fn open() -> WriteWindow {
        #[cfg(all(target_os = "macos", target_arch = "aarch64"))]
        // SAFETY: toggles only this thread's JIT write protection; the
        // matching drop turns it back on before any stub of this thread runs.
        unsafe {
            libc::pthread_jit_write_protect_np(0)
        };
        WriteWindow
    }
}

impl Drop for WriteWindow {
    fn drop(&mut self) {
        #[cfg(all(target_os = "macos", target_arch = "aarch64"))]
        // SAFETY: as in `open`.
        unsafe {
            libc::pthread_jit_write_protect_np(1)
        };
    }
}

/// Makes freshly written code visible to instruction fetch at `code`'s
/// (executable) addresses. aarch64 Linux: `dc cvau` + `ic ivau` per cache
/// line, then `dsb ish; isb` (dynasmrt's cache_control, the same sequence
/// as libgcc's `__clear_cache`); the executable view aliases the written
/// physical pages, and both cache operations work by virtual address on
/// any readable mapping. macOS: `sys_icache_invalidate`. Other threads
/// only ever run a stub after receiving its address from this one, through
/// a lock (a context synchronization point), so they fetch the new bytes.
/// A no-op on x86-64 (coherent instruction fetch).
fn flush_icache(code: &[u8]) {
    #[cfg(target_arch = "aarch64")]
    {
        dynasmrt::cache_control::synchronize_icache(code);
        dynasmrt::cache_control::prepare_for_execution(code);
    }
    #[cfg(not(target_arch = "aarch64"))]
    let _ = code;
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Why mapping executable memory failed, for the message users see: the
/// OS error plus the usual causes (an SELinux policy with `deny_execmem`, a
/// PaX/grsecurity MPROTECT, a seccomp filter, a noexec memfd).
pub fn describe_map_error(e: &io::Error) -> String {
    format!("cannot map executable memory (SELinux deny_execmem / PaX MPROTECT / seccomp / noexec?): {e}")
}

/// Test hook: `FIDDLE_JIT_TEST_DENY_EXECMEM=1` in the environment (read
/// once, at the first chunk) makes every chunk mapping fail with EACCES, as
/// under an SELinux policy that denies execmem.
fn deny_execmem_for_tests() -> bool {
    static DENY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DENY.get_or_init(|| std::env::var_os("FIDDLE_JIT_TEST_DENY_EXECMEM").is_some_and(|v| v == "1"))
}

impl Chunk {
    /// After a fork, replaces the shared memory under both views by a
    /// private copy before this process writes (see the module comment).
    #[cfg(not(target_os = "macos"))]
    fn make_own(&mut self) -> io::Result<()> {
        let now = fork_gen();
        if self.own_gen == now {
            return Ok(());
        }
        // SAFETY: a new memfd of the chunk's size gets the chunk's bytes
        // (read through the executable view), then is mapped over both
        // views at their addresses. MAP_FIXED swaps the pages atomically
        // (under the mm lock), so a thread running a stub here meanwhile
        // reads the same bytes from the copy. Every result is checked; on
        // failure the old mapping stays.
        unsafe {
            let fd = new_memfd(self.size)?;
            let copied = libc::pwrite(fd, self.rx as *const libc::c_void, self.size, 0);
            if copied != self.size as isize {
                let e = io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            let rx = libc::mmap(self.rx as *mut libc::c_void, self.size, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED | libc::MAP_FIXED, fd, 0);
            if rx == libc::MAP_FAILED {
                let e = io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            libc::close(self.fd);
            self.fd = fd;
            if !self.rw.is_null() {
                let rw = libc::mmap(self.rw as *mut libc::c_void, self.size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_FIXED, fd, 0);
                if rw == libc::MAP_FAILED {
                    // The old writable view would write the shared copy:
                    // replace it with a new one of the copy.
                    libc::munmap(self.rw as *mut libc::c_void, self.size);
                    self.rw = ptr::null_mut();
                    self.own_gen = now;
                    return self.map_writable();
                }
            }
        }
        self.own_gen = now;
        Ok(())
    }

    /// macOS: a forked child's MAP_PRIVATE memory is its own already.
    #[cfg(target_os = "macos")]
    fn make_own(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Maps the writable view if the chunk has none.
    #[cfg(not(target_os = "macos"))]
    fn map_writable(&mut self) -> io::Result<()> {
        if !self.rw.is_null() {
            return Ok(());
        }
        // SAFETY: maps our own memfd read+write at a new address.
        let rw = unsafe { libc::mmap(ptr::null_mut(), self.size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, self.fd, 0) };
        if rw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.rw = rw as *mut u8;
        Ok(())
    }

    #[cfg(target_os = "macos")]
    fn map_writable(&mut self) -> io::Result<()> {
        self.rw = self.rx as *mut u8;
        Ok(())
    }

    /// Unmaps the writable view (macOS: there is only the one view, made
    /// writable per thread by `WriteWindow`).
    fn drop_writable(&mut self) {
        #[cfg(not(target_os = "macos"))]
        if !self.rw.is_null() {
            // SAFETY: the writable view is ours and nothing runs from it.
            unsafe { libc::munmap(self.rw as *mut libc::c_void, self.size) };
            self.rw = ptr::null_mut();
        }
    }

    /// macOS: one `MAP_JIT` mapping serves as both views (no memfd there);
    /// W^X holds per thread through `WriteWindow`. Needs the
    /// `com.apple.security.cs.allow-jit` entitlement under the hardened
    /// runtime (a plain `ruby` binary does not use it). UNTESTED.
    #[cfg(target_os = "macos")]
    fn map(size: usize) -> io::Result<Chunk> {
        if deny_execmem_for_tests() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        // SAFETY: an anonymous mapping; the result is checked.
        let p = unsafe { libc::mmap(ptr::null_mut(), size, prot, libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_JIT, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Chunk { fd: -1, rw: p as *mut u8, rx: p as *const u8, size, used: 0, holes: 0, own_gen: 0 })
    }

    #[cfg(not(target_os = "macos"))]
    fn map(size: usize) -> io::Result<Chunk> {
        if deny_execmem_for_tests() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let own_gen = fork_gen();
        // SAFETY: plain syscalls on a descriptor we own; every result is
        // checked. The fd is kept: the writable view is mapped again when
        // freed space in a full chunk is reused.
        unsafe {
            let fd = new_memfd(size)?;
            let rx = libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED, fd, 0);
            if rx == libc::MAP_FAILED {
                let e = io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            let mut chunk =
                Chunk { fd, rw: ptr::null_mut(), rx: rx as *const u8, size, used: 0, holes: 0, own_gen };
            if let Err(e) = chunk.map_writable() {
                libc::munmap(rx, size);
                libc::close(fd);
                return Err(e);
            }
            Ok(chunk)
        }
    }
}

/// A memfd of `size` zero bytes (close-on-exec).
#[cfg(not(target_os = "macos"))]
unsafe fn new_memfd(size: usize) -> io::Result<libc::c_int> {
    let fd = libc::memfd_create(c"fiddle_jit-code".as_ptr(), libc::MFD_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    if libc::ftruncate(fd, size as libc::off_t) != 0 {
        let e = io::Error::last_os_error();
        libc::close(fd);
        return Err(e);
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `return n` as machine code for the host.
    fn return_const(n: u8) -> Vec<u8> {
        if cfg!(target_arch = "aarch64") {
            // movz w0, #n ; ret
            [0x5280_0000u32 | (n as u32) << 5, 0xd65f_03c0].iter().flat_map(|w| w.to_le_bytes()).collect()
        } else {
            vec![0xb8, n, 0, 0, 0, 0xc3] // mov eax, n ; ret
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn run(addr: usize) -> i32 {
        // SAFETY: callers pass addresses of complete `return_const` functions.
        let f: extern "C" fn() -> i32 = unsafe { std::mem::transmute(addr) };
        f()
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn stubs_are_packed_aligned_and_runnable() {
        let mut arena = CodeArena::new();
        let a = arena.install(&return_const(42)).unwrap();
        let b = arena.install(&return_const(7)).unwrap();
        assert_eq!(b - a, 16, "second stub packed right after the first");
        assert_eq!((run(a), run(b)), (42, 7));
    }

    /// The perms of the mapping holding `addr`, from /proc/self/maps.
    #[cfg(target_os = "linux")]
    fn perms_at(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            let (lo, hi) = parts.next().unwrap().split_once('-').unwrap();
            let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
            (lo..hi).contains(&addr).then(|| parts.next().unwrap().to_string())
        })
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn executable_view_is_never_writable() {
        let mut arena = CodeArena::new();
        let addr = arena.install(&[0xc3]).unwrap();
        let perms = perms_at(addr).unwrap();
        assert!(perms.starts_with("r-x"), "executable view has perms {perms}");
    }

    #[test]
    fn chunks_never_move_when_full() {
        let mut arena = CodeArena::new();
        let first = arena.install(&[0xc3]).unwrap();
        let mut last = first;
        for _ in 0..(CHUNK_SIZE / 64 + 10) {
            last = arena.install(&[0x90; 64]).unwrap();
        }
        assert!(arena.chunks.len() >= 2);
        // The first stub is still mapped and unchanged.
        // SAFETY: `first` is inside the first chunk's RX view, which is never unmapped.
        assert_eq!(unsafe { *(first as *const u8) }, 0xc3);
        assert_ne!(last, first);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn full_chunks_keep_no_writable_view() {
        let mut arena = CodeArena::new();
        let first = arena.install_reusable(&[0xc3; 64], 1).unwrap();
        let first_rw = arena.chunks[0].rw;
        for _ in 0..(3 * CHUNK_SIZE / 64) {
            arena.install(&[0x90; 64]).unwrap();
        }
        assert!(arena.chunks.len() >= 3);
        assert_eq!(arena.writable_bytes(), CHUNK_SIZE, "only the chunk being appended to");
        assert!(arena.chunks[0].rw.is_null() && !first_rw.is_null(), "the first chunk's writable view was unmapped");
        // Freeing a stub in the first chunk and reusing its space maps a
        // writable view of that chunk again, and only of that one.
        arena.free(first, 64, 1);
        let chunks = arena.chunks.len();
        let again = arena.install_reusable(&[0xcc; 64], 1).unwrap();
        assert_eq!((again, arena.chunks.len()), (first, chunks), "the hole is reused, no new chunk");
        assert_eq!(arena.writable_bytes(), 2 * CHUNK_SIZE);
        // The refilled chunk has no holes left: the next stub goes to the
        // tail and that chunk's view goes away.
        arena.install(&[0x90; 64]).unwrap();
        assert_eq!(arena.writable_bytes(), CHUNK_SIZE);
        assert!(perms_at(first).unwrap().starts_with("r-x"));
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn a_hole_is_reused_by_its_code_class_only() {
        let mut arena = CodeArena::new();
        let a = arena.install_reusable(&return_const(1), 7).unwrap();
        let b = arena.install_reusable(&return_const(2), 7).unwrap();
        let bytes = arena.code_bytes();
        arena.free(a, return_const(1).len(), 7);
        assert_eq!(arena.code_bytes(), bytes - return_const(1).len());
        // Another class (other instructions) goes to the tail, not into a's place.
        let c = arena.install_reusable(&[0x90; 6], 8).unwrap();
        assert!(c > b);
        let d = arena.install(&return_const(4)).unwrap();
        assert!(d > c);
        // The same class takes the hole.
        let e = arena.install_reusable(&return_const(5), 7).unwrap();
        assert_eq!(e, a);
        assert_eq!((run(e), run(b), run(d)), (5, 2, 4));
    }

    /// Parent and child both install code after a fork: each keeps its own
    /// (before, both wrote the same offsets of the shared memfd and the
    /// parent ran the child's code).
    #[test]
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn after_fork_each_process_writes_its_own_memory() {
        let mut arena = CodeArena::new();
        let before = arena.install(&return_const(1)).unwrap();
        let mut pipe = [0; 2];
        // SAFETY: plain syscalls; the child only installs, runs and _exits.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                // Child: wait for the parent to install, then install at the
                // same offset of (what was) the same chunk.
                let mut byte = 0u8;
                libc::read(pipe[0], &mut byte as *mut u8 as *mut libc::c_void, 1);
                let mine = arena.install(&return_const(9)).unwrap();
                let ok = run(mine) == 9 && run(before) == 1;
                libc::_exit(if ok { 0 } else { 1 });
            }
            let parents = arena.install(&return_const(7)).unwrap();
            libc::write(pipe[1], [1u8].as_ptr() as *const libc::c_void, 1);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
            assert_eq!(run(parents), 7, "the child's install did not overwrite the parent's stub");
            assert_eq!(run(before), 1);
            let next = arena.install(&return_const(8)).unwrap();
            assert_eq!((run(next), run(parents)), (8, 7));
        }
    }
}
