//! Continuing a jump a callback started — `throw`, `break`, Thread#kill,
//! Timeout, an exception with no callback frame to wait in — once the C
//! function that called the callback has returned.
//!
//! A callback runs under `rb_protect`, so no longjmp ever crosses the C
//! library's frames. When its Ruby code jumps, `rb_protect` reports the
//! jump's tag (`state`) and leaves its cause in the execution context's
//! errinfo: an exception, an internal THROW_DATA imemo (`throw`, `break`,
//! `return`; its class is 0 from Ruby 3.2 on, so nothing here ever asks it
//! for its class or calls a method on it), or the Fixnum `TAG_FATAL`
//! (Thread#kill). The ffi gem lets that longjmp unwind the C frames; here it
//! becomes the thread's **pending jump**, continued with `rb_jump_tag(state)`
//! (errinfo put back first) where only Ruby's own frames are left between
//! the thread and the jump's target:
//!
//! - `Target::Frame`: the callback frame of the wrapper that called C
//!   (`callback::frame_pop`, in the wrapper's `ensure`);
//! - `Target::Return`: no frame — the `c_return` event of the method that
//!   was running when C called back (usually the stub). A C_RETURN event hook
//!   is installed only while some thread has such a jump pending;
//! - `Target::Runner`: a dispatcher runner thread, once the foreign thread
//!   has its result.
//!
//! Until then every callback of that thread returns zeros without running
//! Ruby code: with the ffi gem the C function would already be unwound.
//!
//! Ruby offers no API to put a THROW_DATA or a Fixnum back into errinfo
//! (`rb_set_errinfo` accepts exceptions only) and the event hook runs with
//! errinfo cleared, so the errinfo slot is located once, by setting two
//! sentinel exceptions with `rb_set_errinfo` and finding the one word of the
//! current fiber (whose execution context holds errinfo) that follows both.
//! If that fails on some Ruby, a non-exception jump degrades to the
//! LocalJumpError earlier versions raised.

use rb_sys::{ID, VALUE};
use std::cell::Cell;
use std::ffi::{c_int, c_long};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `enum ruby_tag_type` (vm_core.h), the same in every Ruby since 1.9.
pub const TAG_RAISE: c_int = 6;

const QNIL: VALUE = rb_sys::Qnil as VALUE;

/// Where a pending jump continues.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Frame,
    /// The c_return of the frame at `depth` (counted by `stack_depth`),
    /// whose receiver and method were `recv`/`mid`.
    Return { depth: usize, recv: VALUE, mid: ID },
    Runner,
}

#[derive(Clone, Copy)]
struct Pending {
    state: c_int,
    /// The errinfo to restore; also in `HOLD` (marked) until continued.
    cause: VALUE,
    target: Target,
}

thread_local! {
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
    /// Clears the counters if the thread ends with a jump still pending.
    static GUARD: ExitGuard = const { ExitGuard };
}

/// Jumps pending on all threads: callbacks check this one counter (relaxed)
/// before looking at their thread's state.
static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);
/// `Target::Return` jumps pending: the event hook is installed while > 0.
static HOOK_USERS: AtomicUsize = AtomicUsize::new(0);
static HOOKED: AtomicUsize = AtomicUsize::new(0);
/// A frozen-free Array (pinned with rb_gc_register_mark_object) holding the
/// causes of pending jumps, so a THROW_DATA stays alive even if something
/// clears errinfo meanwhile. Only touched with the GVL.
static HOLD: AtomicUsize = AtomicUsize::new(0);
/// 0: not looked for yet; usize::MAX: not found; else 1 + the word index of
/// errinfo in the current fiber's `rb_fiber_t`.
static ERRINFO_WORD: AtomicUsize = AtomicUsize::new(0);

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // No Ruby calls here (the thread may be past its GVL); the cause
        // stays in HOLD, the hook removes itself once unused.
        if let Some(p) = PENDING.try_with(|c| c.take()).ok().flatten() {
            forget(p);
        }
    }
}

fn forget(p: Pending) {
    PENDING_COUNT.fetch_sub(1, Ordering::Relaxed);
    if matches!(p.target, Target::Return { .. }) {
        HOOK_USERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Has some thread a pending jump? (One relaxed load: the hot-path test.)
#[inline(always)]
pub fn any_pending() -> bool {
    PENDING_COUNT.load(Ordering::Relaxed) != 0
}

/// Has this thread a pending jump (so its callbacks must not run Ruby code)?
pub fn pending_here() -> bool {
    PENDING.with(|c| c.get().is_some())
}

/// Locates errinfo (see the module comment). Call once with the GVL, from
/// a Ruby method (never while a jump is pending: it overwrites errinfo).
pub fn prepare() {
    if ERRINFO_WORD.load(Ordering::Acquire) != 0 {
        return;
    }
    // SAFETY: with the GVL; the scan reads only the first SCAN words of the
    // current fiber's rb_fiber_t (an rb_context_t then the fiber fields,
    // far larger than SCAN words), and errinfo is restored through the API.
    unsafe {
        const SCAN: usize = 48;
        let hold = rb_sys::rb_ary_new();
        rb_sys::rb_gc_register_mark_object(hold);
        HOLD.store(hold as usize, Ordering::Release);
        let saved = rb_sys::rb_errinfo();
        let fiber = fiber_words();
        let a = rb_sys::rb_exc_new(rb_sys::rb_eRuntimeError, c"a".as_ptr(), 1);
        let b = rb_sys::rb_exc_new(rb_sys::rb_eRuntimeError, c"b".as_ptr(), 1);
        rb_sys::rb_set_errinfo(a);
        let seen_a: Vec<usize> = (0..SCAN).filter(|&i| *fiber.add(i) == a).collect();
        rb_sys::rb_set_errinfo(b);
        let both: Vec<usize> = seen_a.into_iter().filter(|&i| *fiber.add(i) == b).collect();
        rb_sys::rb_set_errinfo(saved);
        let word = match both.as_slice() {
            [i] if *fiber.add(*i) == saved => i + 1,
            _ => usize::MAX,
        };
        // Keep the sentinels alive until the scan is over.
        std::hint::black_box((a, b));
        ERRINFO_WORD.store(word, Ordering::Release);
    }
}

/// The current fiber's `rb_fiber_t`, as words (its execution context, and
/// so errinfo, is inside it: `th->ec == &fiber->cont.saved_ec`).
unsafe fn fiber_words() -> *mut VALUE {
    rb_sys::RTYPEDDATA_GET_DATA(rb_sys::rb_fiber_current()) as *mut VALUE
}

fn errinfo_word() -> Option<usize> {
    match ERRINFO_WORD.load(Ordering::Acquire) {
        0 | usize::MAX => None,
        w => Some(w - 1),
    }
}

/// Can a jump whose cause is not an exception be continued here?
pub fn can_continue_jumps() -> bool {
    errinfo_word().is_some()
}

/// Records the jump `rb_protect` just reported (`state`, errinfo `cause`)
/// as this thread's pending jump, continued at `target`. With the GVL,
/// right after `rb_protect` returned; clears errinfo.
pub fn defer(state: c_int, cause: VALUE, target: Target) {
    // SAFETY: with the GVL; HOLD is the pinned Array made by `prepare`
    // (callbacks exist only after it ran), `cause` a live VALUE (errinfo).
    unsafe {
        let hold = HOLD.load(Ordering::Acquire) as VALUE;
        rb_sys::rb_ary_push(hold, cause);
        rb_sys::rb_set_errinfo(QNIL);
    }
    let p = Pending { state, cause, target };
    if let Some(old) = PENDING.with(|c| c.replace(Some(p))) {
        // (Not reachable: callbacks do not run while a jump is pending.)
        unhold(old.cause);
        forget(old);
    }
    GUARD.with(|_| {});
    PENDING_COUNT.fetch_add(1, Ordering::Relaxed);
    if matches!(target, Target::Return { .. }) && HOOK_USERS.fetch_add(1, Ordering::Relaxed) == 0 && HOOKED.load(Ordering::Relaxed) == 0 {
        HOOKED.store(1, Ordering::Relaxed);
        // SAFETY: with the GVL; the hook has the rb_event_hook_func_t signature.
        unsafe { rb_sys::rb_add_event_hook(Some(c_return_hook), rb_sys::RUBY_EVENT_C_RETURN as rb_sys::rb_event_flag_t, QNIL) };
    }
}

/// The `Target::Return` of a callback called now: the frame on top of the
/// VM stack (the method that called C), with its receiver and method id.
pub fn return_target() -> Target {
    // SAFETY: queries of the running thread's VM stack, with the GVL.
    unsafe { Target::Return { depth: stack_depth(), recv: rb_sys::rb_current_receiver(), mid: rb_sys::rb_frame_this_func() } }
}

/// Is the method on top of the VM stack a stub a callback-frame wrapper
/// calls (lib/fiddle_jit/function.rb: the hidden `__fiddle_jit_<name>`,
/// or Function#call's invoker `call`)?
pub fn top_is_wrapped_stub() -> bool {
    // SAFETY: with the GVL; rb_id2name returns a NUL-terminated name or NULL.
    unsafe {
        let mid = rb_sys::rb_frame_this_func();
        if mid == 0 {
            return false;
        }
        let name = rb_sys::rb_id2name(mid);
        if name.is_null() {
            return false;
        }
        let name = std::ffi::CStr::from_ptr(name).to_bytes();
        name.starts_with(b"__fiddle_jit_") || name == b"call"
    }
}

/// Frames on this thread's VM stack (Ruby and C methods).
fn stack_depth() -> usize {
    const CHUNK: c_int = 512;
    let mut buf = [0 as VALUE; CHUNK as usize];
    let mut depth = 0usize;
    loop {
        // SAFETY: `buf` has room for CHUNK frames; lines may be NULL.
        let n = unsafe { rb_sys::rb_profile_frames(depth as c_int, CHUNK, buf.as_mut_ptr(), std::ptr::null_mut()) };
        depth += n.max(0) as usize;
        if n < CHUNK {
            return depth;
        }
    }
}

/// `frame_pop`: continues this thread's jump if it waits for a frame.
pub fn continue_at_frame() {
    continue_if(|t| t == Target::Frame);
}

/// A runner thread, its callback's result handed over: continues the
/// jump its callback made, if any.
pub fn continue_on_runner() {
    continue_if(|t| t == Target::Runner);
}

fn continue_if(wanted: impl Fn(Target) -> bool) {
    let Some(p) = PENDING.with(|c| c.get()) else { return };
    if wanted(p.target) {
        PENDING.with(|c| c.set(None));
        forget(p);
        // SAFETY: with the GVL, called from a cfunc (or a runner's body)
        // with no foreign C frame below it.
        unsafe { rejump(p) }
    }
}

/// The C_RETURN hook: continues this thread's jump once the frame that was
/// on top when C called back returns (normally: depth one less; unwound by
/// another exception: the same depth, same receiver and method).
unsafe extern "C" fn c_return_hook(_event: rb_sys::rb_event_flag_t, _data: VALUE, recv: VALUE, mid: ID, _klass: VALUE) {
    if HOOK_USERS.load(Ordering::Relaxed) == 0 {
        HOOKED.store(0, Ordering::Relaxed);
        rb_sys::rb_remove_event_hook(Some(c_return_hook));
        return;
    }
    let Some(p) = PENDING.with(|c| c.get()) else { return };
    let Target::Return { depth, recv: r, mid: m } = p.target else { return };
    let now = stack_depth();
    if now < depth || (now == depth && recv == r && mid == m) {
        PENDING.with(|c| c.set(None));
        forget(p);
        // Ruby continues a jump out of an event hook: rb_exec_event_hooks
        // re-raises the hook's state without touching errinfo.
        rejump(p);
    }
}

fn unhold(cause: VALUE) {
    // SAFETY: with the GVL; HOLD is a live Array of VALUEs compared by
    // identity only (its THROW_DATA entries must not receive method calls).
    unsafe {
        let hold = HOLD.load(Ordering::Acquire) as VALUE;
        let len = rb_sys::RARRAY_LEN(hold);
        for i in (0..len).rev() {
            if rb_sys::rb_ary_entry(hold, i as c_long) == cause {
                rb_sys::rb_ary_delete_at(hold, i as c_long);
                return;
            }
        }
    }
}

/// Continues `p`: raises its exception, or puts its cause back in errinfo
/// and jumps with its tag.
///
/// SAFETY: with the GVL, from a frame a Ruby jump may unwind.
unsafe fn rejump(p: Pending) -> ! {
    // `cause` stays alive on this stack (and, below, in errinfo).
    let cause = std::hint::black_box(p.cause);
    unhold(cause);
    if p.state == TAG_RAISE {
        rb_sys::rb_exc_raise(cause);
    }
    if let Some(w) = errinfo_word() {
        // SAFETY: the word `prepare` found to be errinfo in every fiber's
        // execution context. A plain store is what Ruby itself does
        // (`ec->errinfo = ...`): the context is a GC root, not a heap object.
        *fiber_words().add(w) = cause;
    }
    if rb_sys::rb_errinfo() == cause {
        rb_sys::rb_jump_tag(p.state);
    }
    rb_sys::rb_exc_raise(local_jump_error());
}

/// What a jump that cannot be continued becomes.
pub fn local_jump_error() -> VALUE {
    // SAFETY: creates a plain exception object, with the GVL.
    unsafe {
        rb_sys::rb_exc_new_cstr(rb_sys::rb_eLocalJumpError, c"throw or break out of a callback cannot unwind through C frames".as_ptr())
    }
}
