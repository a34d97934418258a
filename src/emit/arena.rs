//! Executable memory for stubs: many stubs packed into shared chunks, W^X.
//!
//! Each chunk is one memfd mapped twice: a read+write view the arena copies
//! code into and a read+execute view the stubs run from. No page is ever
//! writable and executable at the same time, no page is ever flipped between
//! the two (so a thread running a stub never faults while another attaches),
//! and a chunk never moves or shrinks once a stub address has been handed out
//! (dynasmrt's growable buffer remaps on overflow; we avoid it for that
//! reason: see docs/design.md).
//!
//! aarch64 (see docs/aarch64.md): instruction fetch is not coherent with
//! data writes, so after copying a stub the arena cleans the data cache and
//! invalidates the instruction cache over the stub's executable addresses
//! before handing the address out. macOS cannot use memfd; there a chunk is
//! one `MAP_JIT` mapping, writable or executable per thread, toggled with
//! `pthread_jit_write_protect_np` around each copy (UNTESTED: no Apple
//! machine in CI; it is compiled only for macOS).

use std::io;
use std::ptr;

const CHUNK_SIZE: usize = 256 * 1024;
/// Stubs start on a 16-byte boundary (instruction fetch blocks).
const STUB_ALIGN: usize = 16;
/// Fill between stubs, so a stray jump past a stub traps: int3 on x86-64,
/// `udf #0` (the all-zero word) on aarch64.
#[cfg(not(target_arch = "aarch64"))]
const PAD: u8 = 0xcc;
#[cfg(target_arch = "aarch64")]
const PAD: u8 = 0x00;

struct Chunk {
    rw: *mut u8,
    rx: *const u8,
    size: usize,
    used: usize,
}

// SAFETY: the raw pointers are addresses of process-wide mappings that are
// never unmapped; access is serialized by the arena's owner (a Mutex).
unsafe impl Send for Chunk {}

/// An append-only arena of executable code.
#[derive(Default)]
pub struct CodeArena {
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl CodeArena {
    pub fn new() -> CodeArena {
        CodeArena::default()
    }

    /// Copies position-independent `code` into executable memory and
    /// returns the address it runs at. The memory lives for the process.
    pub fn install(&mut self, code: &[u8]) -> io::Result<usize> {
        let len = code.len().div_ceil(STUB_ALIGN) * STUB_ALIGN;
        let fits = |c: &Chunk| c.size - c.used >= len;
        if !self.chunks.last().is_some_and(fits) {
            self.chunks.push(Chunk::map(len.max(CHUNK_SIZE).div_ceil(page_size()) * page_size())?);
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
        // SAFETY: [used, used+len) lies inside the chunk's RW view (checked
        // by `fits`), and no stub has been handed out in that range yet.
        unsafe {
            let _writable = WriteWindow::open();
            ptr::copy_nonoverlapping(code.as_ptr(), chunk.rw.add(chunk.used), code.len());
            ptr::write_bytes(chunk.rw.add(chunk.used + code.len()), PAD, len - code.len());
        }
        let addr = chunk.rx as usize + chunk.used;
        // SAFETY: the range was just written and lies inside the RX view.
        flush_icache(unsafe { std::slice::from_raw_parts(addr as *const u8, len) });
        chunk.used += len;
        self.bytes += code.len();
        Ok(addr)
    }

    /// Bytes of code installed (excluding alignment padding).
    pub fn code_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of executable memory reserved.
    pub fn reserved_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.size).sum()
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
        Ok(Chunk { rw: p as *mut u8, rx: p as *const u8, size, used: 0 })
    }

    #[cfg(not(target_os = "macos"))]
    fn map(size: usize) -> io::Result<Chunk> {
        if deny_execmem_for_tests() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        // SAFETY: plain syscalls on a descriptor we own; every result is
        // checked, and the fd is closed once both views are mapped (the
        // mappings keep the memory alive).
        unsafe {
            let fd = libc::memfd_create(c"fiddle_jit-code".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let result = (|| {
                if libc::ftruncate(fd, size as libc::off_t) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let rw = libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
                if rw == libc::MAP_FAILED {
                    return Err(io::Error::last_os_error());
                }
                let rx = libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_EXEC, libc::MAP_SHARED, fd, 0);
                if rx == libc::MAP_FAILED {
                    libc::munmap(rw, size);
                    return Err(io::Error::last_os_error());
                }
                Ok(Chunk { rw: rw as *mut u8, rx: rx as *const u8, size, used: 0 })
            })();
            libc::close(fd);
            result
        }
    }
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

    #[test]
    fn stubs_are_packed_aligned_and_runnable() {
        let mut arena = CodeArena::new();
        let a = arena.install(&return_const(42)).unwrap();
        let b = arena.install(&return_const(7)).unwrap();
        assert_eq!(b - a, 16, "second stub packed right after the first");
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            // SAFETY: both addresses hold the complete functions written above.
            let (fa, fb): (extern "C" fn() -> i32, extern "C" fn() -> i32) =
                unsafe { (std::mem::transmute(a), std::mem::transmute(b)) };
            assert_eq!((fa(), fb()), (42, 7));
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn executable_view_is_never_writable() {
        let mut arena = CodeArena::new();
        let addr = arena.install(&[0xc3]).unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| {
                let range = l.split_whitespace().next().unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
                (lo..hi).contains(&addr)
            })
            .unwrap();
        let perms = line.split_whitespace().nth(1).unwrap();
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
}
