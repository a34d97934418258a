//! errno after each attached call, per thread (`FiddleJit.errno`, the ffi
//! gem's `FFI.errno`), saved by the stub itself in two instructions.
//!
//! Both errno and the saved copy live in static TLS, at offsets from the
//! thread pointer that are the same in every thread:
//!
//! - libc is in the initial TLS image (every Ruby links it, so it is loaded
//!   with the program), so errno is at a constant offset. This is not
//!   checked against a new thread: a process's first thread turns glibc's
//!   malloc and stdio onto their locked paths for good (its single-thread
//!   fast path ends), which made a malloc-heavy C library 1–2% slower in
//!   every process that merely loaded fiddle_jit (sassc's render);
//! - the saved copy is one 8-byte thread-local defined below in assembly and
//!   reached with the *initial-exec* TLS model. That marks this library
//!   `DF_STATIC_TLS`: the dynamic loader places its TLS block in the static
//!   TLS area (glibc reserves surplus space there for libraries that are
//!   dlopen'ed and do this), so the offset is fixed for every thread, past
//!   and future.
//!
//! A stub therefore saves errno with `mov esi, fs:[errno]` and
//! `mov fs:[saved], esi`: no call, no table, no TLS lookup. Only this one
//! variable is initial-exec; Rust's own thread-locals keep the default model.

use std::sync::OnceLock;

// The saved errno: one thread-local quadword, and a function returning its
// offset from the thread pointer (the initial-exec GOT entry).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
std::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".type fiddle_jit_saved_errno, @tls_object",
    ".size fiddle_jit_saved_errno, 8",
    "fiddle_jit_saved_errno:",
    ".zero 8",
    ".popsection",
    ".pushsection .text.fiddle_jit_saved_errno_offset,\"ax\",@progbits",
    ".globl fiddle_jit_saved_errno_offset",
    ".hidden fiddle_jit_saved_errno_offset",
    ".type fiddle_jit_saved_errno_offset, @function",
    "fiddle_jit_saved_errno_offset:",
    "mov rax, qword ptr [rip + fiddle_jit_saved_errno@GOTTPOFF]",
    "ret",
    ".size fiddle_jit_saved_errno_offset, . - fiddle_jit_saved_errno_offset",
    ".popsection",
);

// The same for AArch64 Linux (tpidr_el0-relative, TLS variant I). Not run
// here: see docs/aarch64.md.
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
std::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".type fiddle_jit_saved_errno, @tls_object",
    ".size fiddle_jit_saved_errno, 8",
    "fiddle_jit_saved_errno:",
    ".zero 8",
    ".popsection",
    ".pushsection .text.fiddle_jit_saved_errno_offset,\"ax\",@progbits",
    ".globl fiddle_jit_saved_errno_offset",
    ".hidden fiddle_jit_saved_errno_offset",
    ".type fiddle_jit_saved_errno_offset, @function",
    "fiddle_jit_saved_errno_offset:",
    "adrp x0, :gottprel:fiddle_jit_saved_errno",
    "ldr x0, [x0, #:gottprel_lo12:fiddle_jit_saved_errno]",
    "ret",
    ".size fiddle_jit_saved_errno_offset, . - fiddle_jit_saved_errno_offset",
    ".popsection",
);

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux"))]
extern "C" {
    fn fiddle_jit_saved_errno_offset() -> isize;
}

/// The thread pointer: fs:0 on x86-64 (the TCB's own address), tpidr_el0 on
/// AArch64.
fn thread_pointer() -> usize {
    let tp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: on x86-64 Linux fs:0 holds the thread control block's own
    // address; reading it has no side effects.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading the thread pointer register has no side effects.
    unsafe {
        std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        tp = 0;
    }
    tp
}

fn errno_address() -> usize {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() as usize }
}

/// `(errno, saved errno)` offsets from the thread pointer (both static TLS,
/// see the module docs), when they fit the stubs' 32-bit displacement;
/// `None` disables the inline save and `FFI.errno` then reads errno itself.
pub fn tp_offsets() -> Option<(i32, i32)> {
    static OFFSETS: OnceLock<Option<(i32, i32)>> = OnceLock::new();
    *OFFSETS.get_or_init(|| {
        let saved = saved_offset()?;
        let errno = errno_address().wrapping_sub(thread_pointer()) as isize;
        Some((i32::try_from(errno).ok()?, i32::try_from(saved).ok()?))
    })
}

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux"))]
fn saved_offset() -> Option<isize> {
    // SAFETY: returns a constant.
    Some(unsafe { fiddle_jit_saved_errno_offset() })
}

#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux")))]
fn saved_offset() -> Option<isize> {
    None
}

/// The calling thread's saved errno slot.
fn saved_slot() -> Option<*mut i32> {
    let (_, saved) = tp_offsets()?;
    Some(thread_pointer().wrapping_add_signed(saved as isize) as *mut i32)
}

/// The errno the calling thread's last attached call left.
pub fn saved_errno() -> i32 {
    match saved_slot() {
        // SAFETY: the slot is this thread's own static-TLS quadword.
        Some(slot) => unsafe { slot.read() },
        // SAFETY: reading errno.
        None => unsafe { *libc::__errno_location() },
    }
}

/// `FFI.errno = value`: sets both the saved value and errno.
pub fn set_saved_errno(value: i32) {
    // SAFETY: writing errno and this thread's own saved slot.
    unsafe {
        *libc::__errno_location() = value;
        if let Some(slot) = saved_slot() {
            slot.write(value);
        }
    }
}
