//! errno after each attached call, per thread (`FiddleJit.errno`, the ffi
//! gem's `FFI.errno`), saved by the stub itself in a few instructions.
//!
//! A C library keeps errno in thread-local storage at a constant offset from
//! the thread pointer (fs:0 on x86-64) for every thread, because libc is in
//! the initial TLS image. The stub reads it with one fs-relative load and
//! stores `(thread pointer, errno)` into a 256-entry table slot chosen by
//! hashing the thread pointer: no call, no TLS lookup, about ten simple
//! instructions. Reading looks up the calling thread's slot; if another
//! thread has since taken that slot (a hash collision), it falls back to the
//! thread's current errno, which is what the saved value was unless Ruby
//! code in between changed it.

use crate::emit::{ERRNO_HASH_MULTIPLIER, ERRNO_SLOTS as SLOTS};
use std::sync::OnceLock;

/// The layout `emit` writes: thread pointer at 0, errno at 8, 16 bytes.
#[repr(C, align(16))]
pub struct Slot {
    pub thread: u64,
    pub errno: i32,
}

/// Written by stubs (with the GVL held) and read by `saved_errno`.
pub static mut FIDDLE_JIT_ERRNO_TABLE: [Slot; SLOTS] = [const { Slot { thread: 0, errno: 0 } }; SLOTS];

#[cfg(target_arch = "x86_64")]
fn thread_pointer() -> u64 {
    let tp: u64;
    // SAFETY: on x86-64 Linux fs:0 holds the thread control block's own
    // address (the thread pointer); reading it has no side effects.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    tp
}

fn errno_address() -> u64 {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() as u64 }
}

fn slot_index(tp: u64) -> usize {
    (tp.wrapping_mul(ERRNO_HASH_MULTIPLIER) >> 56) as usize
}

/// errno's offset from the thread pointer, if it is the same in a new thread
/// as in this one (checked once); `None` disables the inline save.
#[cfg(target_arch = "x86_64")]
pub fn errno_tp_offset() -> Option<i32> {
    static OFFSET: OnceLock<Option<i32>> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let here = errno_address().wrapping_sub(thread_pointer()) as i64;
        let there = std::thread::spawn(|| errno_address().wrapping_sub(thread_pointer()) as i64).join().ok()?;
        (here == there).then_some(here).and_then(|o| i32::try_from(o).ok())
    })
}

#[cfg(not(target_arch = "x86_64"))]
pub fn errno_tp_offset() -> Option<i32> {
    None
}

/// The errno the calling thread's last attached call left.
pub fn saved_errno() -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        let tp = thread_pointer();
        // SAFETY: plain reads of a static written only by threads holding
        // the GVL, as is this one.
        let slot = unsafe { &*std::ptr::addr_of!(FIDDLE_JIT_ERRNO_TABLE[slot_index(tp)]) };
        if slot.thread == tp {
            return slot.errno;
        }
    }
    // SAFETY: reading errno.
    unsafe { *libc::__errno_location() }
}

/// `FFI.errno = value`: sets both the saved value and errno.
pub fn set_saved_errno(value: i32) {
    // SAFETY: writing errno; the table write happens with the GVL held.
    unsafe {
        *libc::__errno_location() = value;
        #[cfg(target_arch = "x86_64")]
        {
            let tp = thread_pointer();
            let slot = &mut *std::ptr::addr_of_mut!(FIDDLE_JIT_ERRNO_TABLE[slot_index(tp)]);
            slot.thread = tp;
            slot.errno = value;
        }
    }
}

pub fn table_address() -> usize {
    std::ptr::addr_of!(FIDDLE_JIT_ERRNO_TABLE) as usize
}
