//! Executable memory for stubs: many stubs packed into shared chunks, W^X.
//!
//! Each chunk is one memfd mapped twice: a read+write view the arena copies
//! code into and a read+execute view the stubs run from. No page is ever
//! writable and executable at the same time, no page is ever flipped between
//! the two (so a thread running a stub never faults while another attaches),
//! and a chunk never moves or shrinks once a stub address has been handed out
//! (dynasmrt's growable buffer remaps on overflow; we avoid it for that
//! reason: see docs/design.md).

use std::io;
use std::ptr;

const CHUNK_SIZE: usize = 256 * 1024;
/// Stubs start on a 16-byte boundary (instruction fetch blocks).
const STUB_ALIGN: usize = 16;

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
            ptr::copy_nonoverlapping(code.as_ptr(), chunk.rw.add(chunk.used), code.len());
            // Pad with int3 so a stray jump past a stub traps.
            ptr::write_bytes(chunk.rw.add(chunk.used + code.len()), 0xcc, len - code.len());
        }
        let addr = chunk.rx as usize + chunk.used;
        // AArch64 fetches instructions through a cache that does not snoop
        // data writes: clean and invalidate the new code's lines (no-op on
        // x86-64).
        // SAFETY: [addr, addr+len) is inside the chunk's RX view, readable.
        dynasmrt::cache_control::synchronize_icache(unsafe { std::slice::from_raw_parts(addr as *const u8, len) });
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

    #[test]
    fn stubs_are_packed_aligned_and_runnable() {
        let mut arena = CodeArena::new();
        // mov eax, 42; ret
        let a = arena.install(&[0xb8, 42, 0, 0, 0, 0xc3]).unwrap();
        // mov eax, 7; ret
        let b = arena.install(&[0xb8, 7, 0, 0, 0, 0xc3]).unwrap();
        assert_eq!(b - a, 16, "second stub packed right after the first");
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: both addresses hold the complete functions written above.
            let (fa, fb): (extern "C" fn() -> i32, extern "C" fn() -> i32) =
                unsafe { (std::mem::transmute(a), std::mem::transmute(b)) };
            assert_eq!((fa(), fb()), (42, 7));
        }
    }

    #[test]
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
