//! C calling Ruby: callback slots, the runtime entry every reverse
//! trampoline calls, GVL handling, exception capture and the dispatcher
//! thread for callbacks from threads Ruby does not know.
//!
//! A callback is a **slot** `[trampoline, data]` plus a **thunk** (the
//! address C gets) that loads the slot into r10 and jumps to the
//! trampoline; see `backend::x86_64_callback`. Trampolines are emitted once per
//! signature; slots and thunks are recycled when their `Function` is freed,
//! so creating callbacks in a loop does not grow executable memory.
//!
//! Exceptions: the Ruby call runs under `rb_protect`; a raise never unwinds
//! through C frames. The exception is stored in the innermost *callback
//! frame* of the current thread (pushed by the Ruby wrappers of functions
//! that take callback parameters and by `Function#call`), C gets a zero
//! return value, and the wrapper re-raises once the outer C function has
//! returned — the ffi gem's behaviour. While an exception is pending, later
//! callbacks in the same frame return zero without running Ruby code.
//! With no frame (a Function passed to a plain `:pointer` parameter, or a
//! call from a non-Ruby thread) the exception is reported on stderr and
//! discarded.

use super::jump::{self, Target};
use crate::backend::{self, CallbackRequest};
use super::host::host;
use crate::types::{CType, Signature};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::Value;
use rb_sys::VALUE;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

extern "C" {
    /// Exported by libruby (thread.c): is the calling native thread a Ruby
    /// thread that holds the GVL right now?
    fn ruby_thread_has_gvl_p() -> c_int;
}

/// Most arguments a callback may take.
pub const MAX_ARGS: usize = 32;

/// Freed slots of a signature wait in a FIFO until this many more have
/// been freed before one is reused, so C calling a callback it should have
/// forgotten most likely reaches a slot with no callback (a warning and
/// zeros) rather than a newer callback. Even when reused, a slot only ever
/// serves callbacks of its own signature (its trampoline never changes), so
/// a stale call never runs code for another signature.
pub const QUARANTINE: usize = 256;

const QNIL: VALUE = rb_sys::Qnil as VALUE;
const QTRUE: VALUE = rb_sys::Qtrue as VALUE;
const QFALSE: VALUE = rb_sys::Qfalse as VALUE;

/// What a callback calls and how it converts.
///
/// GVL rule: a `CallbackData` is only created, read and freed by threads
/// holding the GVL (callback_entry takes it, or hands the call to a Ruby
/// runner thread, before looking at the slot's data; `release` runs from
/// Function#free or the Function's GC free function). So `in_use` and
/// `released` need no atomics.
pub struct CallbackData {
    /// The Proc / Method / callable; pinned by its Function's mark function.
    pub callable: VALUE,
    pub is_proc: bool,
    pub types: Arc<CallbackTypes>,
    /// Calls running now (a callback may be called again from inside
    /// itself, and its Function may be freed meanwhile).
    in_use: Cell<u32>,
    /// Released while in use: the last call out frees it.
    released: Cell<bool>,
}

/// A callback signature's types, made once per signature that makes
/// callbacks (a `Function::Signature` keeps its own, see
/// `ruby::function`) and shared by its callbacks' data; it remembers its
/// pool once a callback of it was made, so later ones skip the lookup.
pub struct CallbackTypes {
    pub params: Vec<CType>,
    pub ret: CType,
    /// Index of the signature in `Registry::pools`, once known.
    pool: OnceLock<usize>,
}

impl CallbackTypes {
    pub fn new(params: Vec<CType>, ret: CType) -> Arc<CallbackTypes> {
        Arc::new(CallbackTypes { params, ret, pool: OnceLock::new() })
    }
}

/// The memory a thunk jumps through. `repr(C)`: the thunk reads `target`
/// at offset 0; the trampoline hands the slot's address to `entry`.
#[repr(C)]
pub struct Slot {
    /// The trampoline of the slot's signature; set once, never changed.
    target: AtomicUsize,
    /// The live callback's data, or null (freed or not yet reused).
    data: AtomicPtr<CallbackData>,
    thunk: usize,
    /// The signature's argument count and return type (the trampoline's),
    /// so a call reaching a freed slot can still return zeros properly.
    nargs: usize,
    ret: CType,
    /// Index of the slot's signature in `Registry::pools`.
    pool: usize,
    /// The `dispatcher::Dispatcher` of the Ractor that made the slot's
    /// current callback (what runs it when C calls from a thread Ruby does
    /// not know). On the slot, not in its data: a foreign thread reads it
    /// without the GVL.
    dispatcher: AtomicUsize,
}

impl Slot {
    /// The address C calls.
    pub fn thunk(&self) -> usize {
        self.thunk
    }
}

/// Slots made at once, their thunks installed as one piece of code.
const SLOT_BATCH: usize = 32;

/// One signature: its trampoline, its freed slots (oldest first) and the
/// slots made but not used yet (next last).
struct Pool {
    trampoline: usize,
    freed: VecDeque<&'static Slot>,
    fresh: Vec<&'static Slot>,
}

#[derive(Default)]
struct Registry {
    /// Pool index by signature (a struct by value's key includes its layout).
    by_signature: HashMap<(Vec<CType>, CType), usize>,
    pools: Vec<Pool>,
    live: usize,
}

impl Registry {
    /// The pool of `types`' signature, made (its trampoline emitted) the
    /// first time.
    fn pool_of(&mut self, types: &CallbackTypes) -> Result<usize, String> {
        let key = (types.params.clone(), types.ret.clone());
        if let Some(&i) = self.by_signature.get(&key) {
            return Ok(i);
        }
        let plan = crate::abi::plan_callback(&Signature::new(key.0.clone(), key.1.clone())).map_err(|e| e.to_string())?;
        let req = CallbackRequest { plan: &plan, entry: callback_entry as *const () as usize };
        let code = backend::emit_callback_trampoline(&req).map_err(|e| e.to_string())?;
        let trampoline = super::jit::install_code(&code)?;
        self.pools.push(Pool { trampoline, freed: VecDeque::new(), fresh: Vec::new() });
        self.by_signature.insert(key, self.pools.len() - 1);
        Ok(self.pools.len() - 1)
    }

    /// A slot of `pool` no callback has used: one of the last batch, or
    /// the first of a new one (SLOT_BATCH slots, their thunks emitted and
    /// installed together: per callback, an install and its allocations
    /// cost more than the callback's own setup).
    fn fresh_slot(&mut self, pool: usize, types: &CallbackTypes) -> Result<&'static Slot, String> {
        if let Some(slot) = self.pools[pool].fresh.pop() {
            return Ok(slot);
        }
        let trampoline = self.pools[pool].trampoline;
        let slots: &'static mut [Slot] = Box::leak(
            (0..SLOT_BATCH)
                .map(|_| Slot {
                    target: AtomicUsize::new(trampoline),
                    data: AtomicPtr::new(std::ptr::null_mut()),
                    thunk: 0,
                    nargs: types.params.len(),
                    ret: types.ret.clone(),
                    pool,
                    dispatcher: AtomicUsize::new(0),
                })
                .collect::<Box<[Slot]>>(),
        );
        let addresses: Vec<usize> = slots.iter().map(|s| s as *const Slot as usize).collect();
        let (code, offsets) = backend::emit_callback_thunks(&addresses).map_err(|e| e.to_string())?;
        let base = super::jit::install_code(&code)?;
        for (slot, offset) in slots.iter_mut().zip(offsets) {
            slot.thunk = base + offset;
        }
        let slots: &'static [Slot] = slots;
        // Used in order: the first one now, the rest popped from the end.
        self.pools[pool].fresh.extend(slots[1..].iter().rev());
        Ok(&slots[0])
    }
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);


/// A callback for `params -> ret` calling `callable`. Never calls into
/// Ruby (it may run while the GC is not allowed to).
pub fn allocate(types: Arc<CallbackTypes>, callable: VALUE, is_proc: bool, dispatcher: usize) -> Result<&'static Slot, String> {
    if types.params.len() > MAX_ARGS {
        return Err(format!("a callback takes at most {MAX_ARGS} arguments (got {})", types.params.len()));
    }
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let reg = guard.get_or_insert_with(Registry::default);
    let pool = match types.pool.get() {
        Some(&i) => i,
        None => {
            let i = reg.pool_of(&types)?;
            let _ = types.pool.set(i);
            i
        }
    };
    let reuse = if reg.pools[pool].freed.len() > QUARANTINE { reg.pools[pool].freed.pop_front() } else { None };
    let slot = match reuse {
        Some(s) => s,
        None => reg.fresh_slot(pool, &types)?,
    };
    let data = Box::into_raw(Box::new(CallbackData {
        callable,
        is_proc,
        types,
        in_use: Cell::new(0),
        released: Cell::new(false),
    }));
    slot.dispatcher.store(dispatcher, Ordering::Release);
    slot.data.store(data, Ordering::Release);
    reg.live += 1;
    Ok(slot)
}

/// Detaches the callback data from `slot` and puts the slot in its
/// signature's quarantine. With the GVL (see `CallbackData`). A later call
/// through the old address returns zeros (with a warning) while the slot
/// is quarantined, and afterwards runs whatever callback of the same
/// signature reuses it: C must not keep function pointers of freed
/// callbacks (as with the ffi gem).
pub fn release(slot: &'static Slot) {
    let data = slot.data.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !data.is_null() {
        // SAFETY: `data` came from Box::into_raw in `allocate` and was
        // detached from the slot exactly once (the swap above); calls still
        // running hold it through `in_use` and the last one frees it.
        unsafe {
            if (*data).in_use.get() == 0 {
                drop(Box::from_raw(data));
            } else {
                (*data).released.set(true);
            }
        }
    }
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let reg = guard.get_or_insert_with(Registry::default);
    reg.live = reg.live.saturating_sub(1);
    reg.pools[slot.pool].freed.push_back(slot);
}

/// `[live callbacks, quarantined slots, trampolines]`, for tests.
pub fn stats() -> (usize, usize, usize) {
    let guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map_or((0, 0, 0), |r| (r.live, r.pools.iter().map(|p| p.freed.len()).sum(), r.pools.len()))
}

// ---------------------------------------------------------------------------
// Callback frames (where exceptions wait for the outer call to return).

thread_local! {
    /// This thread's callback frames, innermost last: each the exception a
    /// callback raised during that outer call, or nil. An exception stored
    /// here is also kept alive by the thread (see `hold_exception`); most calls
    /// see none, so a frame costs no allocation.
    static FRAMES: RefCell<Vec<VALUE>> = const { RefCell::new(Vec::new()) };
}

/// `Native.callback_frame_push`: a new frame for an outer C call; returns
/// its token (a Fixnum: its depth) for `frame_pop`.
/// A raw cfunc (no conversions to do, and it runs on every wrapped call).
pub unsafe extern "C" fn frame_push(_module: VALUE) -> VALUE {
    let depth = FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        frames.push(QNIL);
        frames.len() - 1
    });
    rb_sys::rb_int2inum(depth as isize)
}

/// `Native.callback_frame_pop(token)`: removes the frame `token` names
/// (and any left above it), returns the exception a callback raised during
/// the call (or nil). If a callback jumped (throw, break, Thread#kill,
/// Timeout) during the call, continues that jump instead of returning:
/// this runs in the wrapper's `ensure`, after C has returned.
pub unsafe extern "C" fn frame_pop(_module: VALUE, token: VALUE) -> VALUE {
    let depth = if rb_sys::FIXNUM_P(token) { rb_sys::rb_num2long(token).max(0) as usize } else { usize::MAX };
    let (exc, above) = FRAMES.with(|f| {
        let mut frames = f.borrow_mut();
        let at = depth.min(frames.len());
        let mut removed = frames.drain(at..);
        (removed.next().unwrap_or(QNIL), removed.filter(|&e| e != QNIL).collect::<Vec<_>>())
    });
    // (Frames above it were left by a jump past their pops: theirs are
    // dropped.)
    for e in above.into_iter().chain(std::iter::once(exc)).filter(|&e| e != QNIL) {
        PENDING_FRAMES.fetch_sub(1, Ordering::Relaxed);
        drop_exception(e);
    }
    if jump::any_pending() {
        jump::continue_at_frame();
    }
    exc
}

/// Stores `exc` as the current frame's exception (the frame has none).
/// SAFETY: with the GVL, `exc` a live object.
unsafe fn store_in_frame(exc: VALUE) {
    hold_exception(exc);
    PENDING_FRAMES.fetch_add(1, Ordering::Relaxed);
    FRAMES.with(|f| {
        if let Some(last) = f.borrow_mut().last_mut() {
            *last = exc;
        }
    });
}

/// The Ruby thread's Array of the exceptions its frames hold (a
/// thread-local variable, so the GC marks them with the thread), if made.
unsafe fn held_exceptions(create: bool) -> Option<VALUE> {
    let key = rb_sys::rb_intern(c"__fiddle_jit_callback_exceptions".as_ptr());
    let thread = rb_sys::rb_thread_current();
    let held = rb_sys::rb_thread_local_aref(thread, key);
    if held != QNIL {
        return Some(held);
    }
    create.then(|| rb_sys::rb_thread_local_aset(thread, key, rb_sys::rb_ary_new()))
}

unsafe fn hold_exception(exc: VALUE) {
    rb_sys::rb_ary_push(held_exceptions(true).expect("created"), exc);
}

unsafe fn drop_exception(exc: VALUE) {
    if let Some(held) = held_exceptions(false) {
        rb_sys::rb_ary_delete(held, exc);
    }
}

/// Defines the frame functions on `native` as raw cfuncs.
pub fn define_frame_functions(native: magnus::RModule) {
    // SAFETY: the functions have the cfunc signatures the arities announce.
    unsafe {
        let push: unsafe extern "C" fn(VALUE) -> VALUE = frame_push;
        let pop: unsafe extern "C" fn(VALUE, VALUE) -> VALUE = frame_pop;
        rb_sys::rb_define_singleton_method(
            native.as_raw(),
            c"callback_frame_push".as_ptr(),
            Some(std::mem::transmute::<unsafe extern "C" fn(VALUE) -> VALUE, unsafe extern "C" fn() -> VALUE>(push)),
            0,
        );
        rb_sys::rb_define_singleton_method(
            native.as_raw(),
            c"callback_frame_pop".as_ptr(),
            Some(std::mem::transmute::<unsafe extern "C" fn(VALUE, VALUE) -> VALUE, unsafe extern "C" fn() -> VALUE>(pop)),
            1,
        );
    }
}

/// The current frame's exception (nil for none), or None without a frame.
fn current_frame() -> Option<VALUE> {
    FRAMES.with(|f| f.borrow().last().copied())
}

// ---------------------------------------------------------------------------
// The entry every trampoline calls.

struct Invocation {
    slot: *const Slot,
    /// The callback's data while the call runs (set by `invoke`, with the GVL).
    data: *const CallbackData,
    /// The trampoline's argument slots: raw C values, boxed into VALUEs in
    /// place (the slots are on the machine stack, which the GC scans).
    raw: *mut u64,
    result: u64,
    /// A :long_double result (x87 value), which does not fit `result`.
    result_ld: crate::LongDouble,
    /// The slot's signature returns a long double (set with the GVL, so the
    /// caller's thread need not read the slot's data).
    long_double: bool,
    /// Running on a dispatcher runner thread for a foreign thread.
    on_runner: bool,
}

/// How many frames (all threads) hold a pending exception: the common case
/// (none) skips the thread-local frame lookup.
static PENDING_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// `fn(slot, raw_args) -> return bits`, called by trampolines on whatever
/// thread C calls from. Reads nothing of the callback before holding the
/// GVL (see `CallbackData`).
pub extern "C" fn callback_entry(slot: *const Slot, raw: *mut u64) -> u64 {
    let mut inv = Invocation {
        slot,
        data: std::ptr::null(),
        raw,
        result: 0,
        result_ld: Default::default(),
        long_double: false,
        on_runner: false,
    };
    // SAFETY: plain queries of the running interpreter.
    unsafe {
        if ruby_thread_has_gvl_p() != 0 {
            invoke(&mut inv);
        } else if rb_sys::ruby_native_thread_p() != 0 {
            // A Ruby thread inside a blocking region: take the GVL back.
            rb_sys::rb_thread_call_with_gvl(Some(invoke_with_gvl), &mut inv as *mut Invocation as *mut c_void);
        } else {
            dispatcher::run(&mut inv);
        }
        // A long double result goes back in the first two raw slots (at
        // least 16 bytes, the arguments are dead); the trampoline loads it
        // into st(0).
        if inv.long_double {
            std::ptr::write_unaligned(raw as *mut crate::LongDouble, inv.result_ld);
        }
    }
    inv.result
}

#[cold]
#[inline(never)]
fn freed_callback() {
    eprintln!("fiddle_jit: C called a callback whose Function was freed; returning 0");
}

unsafe extern "C" fn invoke_with_gvl(inv: *mut c_void) -> *mut c_void {
    invoke(&mut *(inv as *mut Invocation));
    std::ptr::null_mut()
}

/// Runs the callback with the GVL held: box, call, unbox, all under
/// rb_protect; an exception goes to the current frame, a jump is deferred
/// until C has returned (`jump`).
#[inline(always)]
fn invoke(inv: &mut Invocation) {
    // SAFETY: the trampoline passes the slot its thunk loaded; slots are
    // never freed. Its data is read with the GVL held (see CallbackData).
    let slot = unsafe { &*inv.slot };
    // A struct result: zeros unless the callback returns a struct (or
    // raises), as the ffi gem. Its destination is in raw slot nargs.
    if let CType::Struct(s) = &slot.ret {
        // SAFETY: the trampoline of this slot's signature put the result
        // destination (s.size bytes) in raw slot nargs.
        unsafe { std::ptr::write_bytes(*inv.raw.add(slot.nargs) as *mut u8, 0, s.size) };
    }
    inv.long_double = matches!(slot.ret, CType::LongDouble);
    if PENDING_FRAMES.load(Ordering::Relaxed) != 0 || jump::any_pending() {
        if skip_ruby() {
            return;
        }
    }
    let data = slot.data.load(Ordering::Acquire);
    if data.is_null() {
        return freed_callback();
    }
    // SAFETY: with the GVL, `data` stays allocated while `in_use` > 0.
    unsafe { (*data).in_use.set((*data).in_use.get() + 1) };
    inv.data = data;
    let mut state: c_int = 0;
    // SAFETY: `protected_call` only reads `inv` through the pointer.
    unsafe { rb_sys::rb_protect(Some(protected_call), inv as *mut Invocation as VALUE, &mut state) };
    // SAFETY: as above; freed here if `release` ran during the call.
    unsafe {
        let n = (*data).in_use.get() - 1;
        (*data).in_use.set(n);
        if n == 0 && (*data).released.get() {
            drop(Box::from_raw(data as *mut CallbackData));
        }
    }
    inv.data = std::ptr::null();
    if state != 0 {
        captured(inv, state);
    }
}

/// Must this callback return zeros without running Ruby code? Yes while
/// this thread has a jump pending, or while the current frame holds an
/// exception from an earlier callback of the same outer call.
#[cold]
#[inline(never)]
fn skip_ruby() -> bool {
    if jump::pending_here() {
        return true;
    }
    if PENDING_FRAMES.load(Ordering::Relaxed) != 0 {
        if let Some(exc) = current_frame() {
            return exc != QNIL;
        }
    }
    false
}

/// The callback raised or jumped: C gets zero. An exception goes to the
/// current frame (re-raised by the wrapper once C has returned); anything
/// else — or an exception with no frame — becomes this thread's pending
/// jump, continued once C has returned (see `jump`). Out of line: the hot
/// path never gets here.
#[cold]
#[inline(never)]
fn captured(inv: &mut Invocation, state: c_int) {
    inv.result = 0;
    // SAFETY: after rb_protect reported a jump, errinfo holds its cause.
    let err = unsafe { rb_sys::rb_errinfo() };
    // From Ruby 3.2 on, a throw leaves an internal THROW_DATA imemo whose
    // class is 0, and Thread#kill a Fixnum: only ordinary objects
    // (exceptions are T_OBJECT) may be asked for their class.
    // SAFETY: RB_TYPE_P reads the flags of heap objects only; the class
    // check runs only on a T_OBJECT, which always has one.
    let is_exception = unsafe {
        rb_sys::RB_TYPE_P(err, rb_sys::ruby_value_type::RUBY_T_OBJECT)
            && rb_sys::rb_obj_is_kind_of(err, rb_sys::rb_eException) != QFALSE
    };
    let exception = state == jump::TAG_RAISE && is_exception;
    // The frame is the current C call's only if the method C called back
    // from is the stub its wrapper called: a function attached without
    // callback types, called from inside a callback of a wrapped call, is
    // not, and its jump must continue when it returns, not the outer call.
    let frame = if inv.on_runner { None } else { current_frame().filter(|_| jump::top_is_wrapped_stub()) };
    if exception && inv.on_runner {
        // Nobody to raise it in: the caller is a foreign thread.
        // SAFETY: with the GVL.
        unsafe { rb_sys::rb_set_errinfo(QNIL) };
        return report_discarded(err);
    }
    if exception && frame.is_some() {
        // SAFETY: with the GVL; `err` an exception.
        unsafe {
            rb_sys::rb_set_errinfo(QNIL);
            store_in_frame(err);
        }
        return;
    }
    if !exception && !jump::can_continue_jumps() {
        // This Ruby's errinfo could not be located (see `jump`): the jump
        // becomes the LocalJumpError of earlier versions.
        // SAFETY: with the GVL.
        unsafe { rb_sys::rb_set_errinfo(QNIL) };
        let exc = jump::local_jump_error();
        return match frame {
            // SAFETY: with the GVL; `exc` a new exception.
            Some(_) => unsafe { store_in_frame(exc) },
            None => jump::defer(jump::TAG_RAISE, exc, jump::return_target()),
        };
    }
    let target = if inv.on_runner {
        Target::Runner
    } else if frame.is_some() {
        Target::Frame
    } else {
        jump::return_target()
    };
    jump::defer(state, err, target);
}

fn report_discarded(exc: VALUE) {
    // SAFETY: `exc` is a live exception object.
    let exc = unsafe { Value::from_raw(exc) };
    let text = magnus::rb_sys::protect(|| unsafe {
        rb_sys::rb_funcallv(exc.as_raw(), rb_sys::rb_intern2(c"full_message".as_ptr(), 12), 0, std::ptr::null())
    })
    .ok()
    // SAFETY: `v` is full_message's live result.
    .and_then(|v| unsafe { magnus::RString::from_value(Value::from_raw(v)) }.and_then(|s| s.to_string().ok()))
    .unwrap_or_else(|| "(exception)".into());
    let message = format!(
        "fiddle_jit: exception in a callback discarded (the callback ran for a non-Ruby thread, \
         which has no Ruby caller to raise it in):\n{text}"
    );
    // Kernel#warn (honours $stderr and Warning); stderr if even that fails.
    // SAFETY: with the GVL (the dispatcher thread is a Ruby thread); the
    // String lives on this stack while Kernel#warn runs; rb_protect catches a raise.
    let shown = magnus::rb_sys::protect(|| unsafe {
        let s = rb_sys::rb_utf8_str_new(message.as_ptr() as *const std::ffi::c_char, message.len() as c_long);
        rb_sys::rb_funcallv(rb_sys::rb_mKernel, rb_sys::rb_intern2(c"warn".as_ptr(), 4), 1, &s)
    });
    if shown.is_err() {
        eprintln!("{message}");
    }
}

#[inline(never)]
unsafe extern "C" fn protected_call(arg: VALUE) -> VALUE {
    let inv = &mut *(arg as *mut Invocation);
    // SAFETY: set by `invoke`, which keeps it allocated during the call.
    let data = &*inv.data;
    let types = &*data.types;
    let n = types.params.len();
    for (i, ty) in types.params.iter().enumerate() {
        let slot = inv.raw.add(i);
        *slot = box_arg(ty, *slot) as u64;
    }
    let argv = inv.raw as *const VALUE;
    let ret = if data.is_proc {
        rb_sys::rb_proc_call_with_block(data.callable, n as c_int, argv, QNIL)
    } else {
        rb_sys::rb_funcallv(data.callable, id_call(), n as c_int, argv)
    };
    if matches!(types.ret, CType::LongDouble) {
        inv.result_ld = if ret == QNIL {
            Default::default()
        } else {
            match super::long_double::from_value(Value::from_raw(ret)) {
                Ok(ld) => ld,
                Err(e) => magnus::rb_sys::resume_error(e),
            }
        };
        return QNIL;
    }
    if let CType::Struct(st) = &types.ret {
        // The Ruby layer turned the result into a String of its bytes (or nil).
        if let Some(bytes) = magnus::RString::from_value(Value::from_raw(ret)) {
            let dest = *inv.raw.add(n) as *mut u8;
            let src = bytes.as_slice();
            std::ptr::copy_nonoverlapping(src.as_ptr(), dest, src.len().min(st.size));
        }
        return QNIL;
    }
    inv.result = unbox_ret(&types.ret, ret);
    QNIL
}

fn id_call() -> rb_sys::ID {
    static ID: AtomicUsize = AtomicUsize::new(0);
    let id = ID.load(Ordering::Relaxed);
    if id != 0 {
        return id as rb_sys::ID;
    }
    // SAFETY: interning needs the GVL, which the caller holds.
    let id = unsafe { rb_sys::rb_intern2(c"call".as_ptr(), 4) };
    ID.store(id as usize, Ordering::Relaxed);
    id
}

/// A raw C argument → VALUE, as the ffi gem converts callback arguments.
unsafe fn box_arg(ty: &CType, raw: u64) -> VALUE {
    match ty {
        CType::Bool => {
            if raw as u8 != 0 {
                QTRUE
            } else {
                QFALSE
            }
        }
        CType::I8 => fixnum(raw as i8 as i64),
        CType::U8 => fixnum(raw as u8 as i64),
        CType::I16 => fixnum(raw as i16 as i64),
        CType::U16 => fixnum(raw as u16 as i64),
        CType::I32 => fixnum(raw as i32 as i64),
        CType::U32 => fixnum(raw as u32 as i64),
        CType::I64 if ((raw as i64) << 1) >> 1 == raw as i64 => fixnum(raw as i64),
        CType::I64 => rb_sys::rb_ll2inum(raw as i64),
        CType::U64 => rb_sys::rb_ull2inum(raw),
        CType::F32 => rb_sys::rb_float_new(f32::from_bits(raw as u32) as f64),
        CType::F64 => rb_sys::rb_float_new(f64::from_bits(raw)),
        CType::Pointer | CType::StructRef => (host().new_pointer)(raw as usize).as_raw(),
        CType::CString => {
            if raw == 0 {
                QNIL
            } else {
                rb_sys::rb_str_new_cstr(raw as *const std::ffi::c_char)
            }
        }
        // The trampoline passes the address of the caller's 16-byte slot.
        CType::LongDouble => {
            let ld = std::ptr::read_unaligned(raw as *const crate::LongDouble);
            match super::long_double::to_value(ld) {
                Ok(v) => v.as_raw(),
                Err(e) => magnus::rb_sys::resume_error(e),
            }
        }
        // The trampoline passes the address of the struct's bytes; Ruby
        // gets a copy (a String the Ruby layer turns into a struct).
        CType::Struct(s) => rb_sys::rb_str_new(raw as *const std::ffi::c_char, s.size as c_long),
        CType::Void => QNIL,
    }
}

fn fixnum(v: i64) -> VALUE {
    ((v << 1) | 1) as VALUE
}

/// The callback's result → return bits, as the ffi gem converts: nil is
/// zero for every type; integers through NUM2INT/NUM2UINT/NUM2LL/NUM2ULL
/// (TypeError/RangeError on the Ruby side for anything else); `:bool` is
/// `value == true`; `:pointer` takes a Pointer or Function (anything else
/// is NULL); `:string` returns are not supported by the ffi gem and give
/// NULL.
unsafe fn unbox_ret(ty: &CType, v: VALUE) -> u64 {
    if v == QNIL {
        return 0;
    }
    if v & 1 == 1 {
        // Fixnum fast path, with NUM2INT/NUM2UINT's ranges.
        let i = (v as i64) >> 1;
        match ty {
            CType::I8 | CType::I16 | CType::I32 if i == i as i32 as i64 => {
                return match ty {
                    CType::I8 => i as i8 as i32 as u32 as u64,
                    CType::I16 => i as i16 as i32 as u32 as u64,
                    _ => i as i32 as u32 as u64,
                }
            }
            CType::I64 => return i as u64,
            _ => {}
        }
    }
    match ty {
        CType::Void => 0,
        CType::Bool => (v == QTRUE) as u64,
        CType::I8 => rb_sys::rb_num2int(v) as i8 as i32 as u32 as u64,
        CType::I16 => rb_sys::rb_num2int(v) as i16 as i32 as u32 as u64,
        CType::I32 => rb_sys::rb_num2int(v) as i32 as u32 as u64,
        CType::U8 => rb_sys::rb_num2uint(v) as u8 as u64,
        CType::U16 => rb_sys::rb_num2uint(v) as u16 as u64,
        CType::U32 => rb_sys::rb_num2uint(v) as u32 as u64,
        CType::I64 => rb_sys::rb_num2ll(v) as u64,
        CType::U64 => rb_sys::rb_num2ull(v),
        CType::F32 => (rb_sys::rb_num2dbl(v) as f32).to_bits() as u64,
        CType::F64 => rb_sys::rb_num2dbl(v).to_bits(),
        CType::Pointer | CType::StructRef => {
            let value = Value::from_raw(v);
            let host = host();
            (host.pointer_address)(value).or_else(|| (host.function_address)(value)).unwrap_or(0) as u64
        }
        CType::CString | CType::Struct(_) | CType::LongDouble => 0,
    }
}

// ---------------------------------------------------------------------------
// Callbacks from native threads Ruby does not know.

/// A Ruby thread ("FFI Callback Dispatcher") takes the callbacks that
/// arrive on foreign threads and starts a Ruby thread ("FFI Callback
/// Runner") for each, as the ffi gem does; the foreign thread blocks until
/// its callback has returned. The dispatcher needs the GVL: if the Ruby thread that started
/// the C code holds it while waiting for the foreign thread (e.g. a
/// pthread_join in a non-blocking call), the callback cannot run.
///
/// Ractors (as the ffi gem 1.16+): each Ractor that makes a callback gets
/// its own dispatcher (found through Ractor-local storage), and a callback
/// is dispatched to the one of the Ractor that made it, so its Proc runs in
/// its own Ractor. (One per process would run other Ractors' Procs in the
/// Ractor that started it, and hang once that Ractor had ended.)
pub mod dispatcher {
    use super::*;

    struct Request {
        inv: *mut Invocation,
        /// The dispatcher it was queued on (whose lock guards `done`).
        dispatcher: &'static Dispatcher,
        done: bool,
    }

    #[derive(Default)]
    struct Queue {
        pending: VecDeque<usize>,
        /// Bumped by the unblocking function to wake the dispatcher.
        wakeups: u64,
    }

    /// One Ractor's dispatcher in one process. Leaked: callbacks made in
    /// the Ractor keep its address for as long as they live.
    pub struct Dispatcher {
        queue: Mutex<Queue>,
        arrived: Condvar,
        finished: Condvar,
        /// The process it was started in (a forked child needs its own).
        pid: u32,
        /// In a forked child: the dispatcher its Ractor started instead of
        /// this one (so callbacks made before the fork reach it), or 0.
        successor: AtomicUsize,
    }

    /// This process's id, kept by a `pthread_atfork` child handler rather
    /// than asked of the kernel: `ensure_started` checks it on every
    /// `Function.new` (ffi-yajl makes 11 per parse), and getpid is a
    /// system call.
    fn pid() -> u32 {
        static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        static REGISTER: std::sync::Once = std::sync::Once::new();
        extern "C" fn forked_child() {
            PID.store(std::process::id(), Ordering::Relaxed);
        }
        REGISTER.call_once(|| {
            PID.store(std::process::id(), Ordering::Relaxed);
            // SAFETY: registers a plain function that only stores an atomic.
            unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
        });
        PID.load(Ordering::Relaxed)
    }

    /// The Ractor-local storage key of the current Ractor's Dispatcher.
    fn key() -> rb_sys::rb_ractor_local_key_t {
        static KEY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        static TYPE: rb_sys::rb_ractor_local_storage_type = rb_sys::rb_ractor_local_storage_type { mark: None, free: None };
        // SAFETY: issues one key for the life of the process (TYPE is static).
        *KEY.get_or_init(|| unsafe { rb_sys::rb_ractor_local_storage_ptr_newkey(&TYPE) } as usize) as rb_sys::rb_ractor_local_key_t
    }

    /// Called from a foreign thread: queue the call on the dispatcher of
    /// the callback's Ractor, wait until done.
    pub(super) fn run(inv: &mut Invocation) {
        // SAFETY: the trampoline passes its slot; slots are never freed.
        let d = unsafe { (*inv.slot).dispatcher.load(Ordering::Acquire) } as *const Dispatcher;
        // SAFETY: dispatchers are leaked, never freed; after a fork the
        // Ractor's replacement is linked from the one the callback recorded.
        let mut d = unsafe { d.as_ref() };
        while let Some(stale) = d.filter(|d| d.pid != pid()) {
            // SAFETY: as above: leaked dispatchers, never freed.
            d = unsafe { (stale.successor.load(Ordering::Acquire) as *const Dispatcher).as_ref() };
        }
        let d = match d {
            Some(d) => d,
            None => {
                eprintln!("fiddle_jit: callback called from a non-Ruby thread before its dispatcher started; returning 0");
                return;
            }
        };
        let mut req = Request { inv, dispatcher: d, done: false };
        let addr = &mut req as *mut Request as usize;
        let mut q = d.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.pending.push_back(addr);
        d.arrived.notify_all();
        // SAFETY: `done` is only written under the queue's lock.
        while !unsafe { (*(addr as *const Request)).done } {
            q = d.finished.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    struct Wait {
        dispatcher: &'static Dispatcher,
        request: usize,
        seen_wakeups: u64,
    }

    unsafe extern "C" fn wait_for_request(w: *mut c_void) -> *mut c_void {
        let w = &mut *(w as *mut Wait);
        let d = w.dispatcher;
        let mut q = d.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = q.pending.pop_front() {
                w.request = r;
                break;
            }
            if q.wakeups != w.seen_wakeups {
                break;
            }
            q = d.arrived.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        std::ptr::null_mut()
    }

    /// Unblocking function: Ruby wants the thread back (interrupt, kill, exit).
    unsafe extern "C" fn wake(d: *mut c_void) {
        let d = &*(d as *const Dispatcher);
        d.queue.lock().unwrap_or_else(|p| p.into_inner()).wakeups += 1;
        d.arrived.notify_all();
    }

    unsafe extern "C" fn main(d: *mut c_void) -> VALUE {
        let dispatcher = &*(d as *const Dispatcher);
        loop {
            let seen_wakeups = dispatcher.queue.lock().unwrap_or_else(|p| p.into_inner()).wakeups;
            let mut w = Wait { dispatcher, request: 0, seen_wakeups };
            rb_sys::rb_thread_call_without_gvl(Some(wait_for_request), &mut w as *mut Wait as *mut c_void, Some(wake), d);
            if w.request != 0 {
                // As the ffi gem: each callback runs on a new Ruby thread
                // named "FFI Callback Runner"; the dispatcher goes on waiting.
                let runner = rb_sys::rb_thread_create(Some(run_request), w.request as *mut c_void);
                let name = rb_sys::rb_str_new_cstr(c"FFI Callback Runner".as_ptr());
                rb_sys::rb_funcallv(runner, rb_sys::rb_intern2(c"name=".as_ptr(), 5), 1, &name);
            } else {
                // Woken by Ruby: handle the interrupt (raises on kill).
                rb_sys::rb_thread_check_ints();
            }
        }
    }

    /// A runner thread's body: the callback of one request (a foreign
    /// thread blocked in `run` until `done`). A jump the callback made
    /// (Thread#kill of the runner...) continues once the foreign thread
    /// has its result: this function is the thread's outermost frame.
    unsafe extern "C" fn run_request(req: *mut c_void) -> VALUE {
        let req = req as *mut Request;
        let foreign = &mut *(*req).inv;
        let slot = &*foreign.slot;
        // Box from a copy on this thread's stack: the GC scans it, not the
        // foreign thread's. One more slot: a struct result's destination.
        let n = slot.nargs + 1;
        let mut slots = [0u64; MAX_ARGS + 1];
        std::ptr::copy_nonoverlapping(foreign.raw, slots.as_mut_ptr(), n);
        let mut local = Invocation {
            slot: foreign.slot,
            data: std::ptr::null(),
            raw: slots.as_mut_ptr(),
            result: 0,
            result_ld: Default::default(),
            long_double: false,
            on_runner: true,
        };
        super::invoke(&mut local);
        foreign.result = local.result;
        foreign.result_ld = local.result_ld;
        foreign.long_double = local.long_double;
        {
            let d = (*req).dispatcher;
            let _q = d.queue.lock().unwrap_or_else(|p| p.into_inner());
            (*req).done = true;
            d.finished.notify_all();
        }
        jump::continue_on_runner();
        QNIL
    }

    /// The current Ractor's dispatcher in this process, started if it has
    /// none (with the GVL): what `allocate` records for a new callback.
    pub fn ensure_started() -> usize {
        // SAFETY: called from Ruby with the GVL held, in the Ractor whose
        // storage is read and written.
        unsafe {
            let current = rb_sys::rb_ractor_local_storage_ptr(key()) as *const Dispatcher;
            let stale = current.as_ref();
            if stale.is_some_and(|d| d.pid == pid()) {
                return current as usize;
            }
            let d: &'static Dispatcher = Box::leak(Box::new(Dispatcher {
                queue: Mutex::new(Queue::default()),
                arrived: Condvar::new(),
                finished: Condvar::new(),
                pid: pid(),
                successor: AtomicUsize::new(0),
            }));
            let ptr = d as *const Dispatcher as *mut c_void;
            // A forked child: the parent's dispatcher (and those before it)
            // lead here.
            let mut link = stale;
            while let Some(old) = link {
                let next = old.successor.swap(ptr as usize, Ordering::AcqRel);
                link = (next as *const Dispatcher).as_ref().filter(|n| n.pid != pid());
            }
            // Recorded before the Ruby calls below, which may switch
            // threads: another thread of this Ractor then uses this
            // dispatcher (its queue waits for the thread) instead of
            // starting a second one.
            rb_sys::rb_ractor_local_storage_ptr_set(key(), ptr);
            let thread = rb_sys::rb_thread_create(Some(main), ptr);
            rb_sys::rb_gc_register_mark_object(thread);
            let name = rb_sys::rb_str_new_cstr(c"FFI Callback Dispatcher".as_ptr());
            rb_sys::rb_funcallv(thread, rb_sys::rb_intern2(c"name=".as_ptr(), 5), 1, &name);
            ptr as usize
        }
    }
}
