//! Who keeps a stub alive, and when its memory comes back.
//!
//! A stub is the body of the methods `attach_function` defines on a module
//! (a singleton and an instance method). The module **owns** it: a hidden
//! instance variable (no `@`, so invisible to Ruby code) holds a
//! `StubOwner`, which marks the Ruby objects the stub's `StubInfo` refers to
//! and, when the module is collected, hands the stub's code to the arena
//! for reuse and frees its `StubInfo`.
//!
//! Why nothing can run the stub once its module is garbage: a thread inside
//! a stub (converting arguments, blocked in the C function without the GVL,
//! or in a callback the C function called) has the stub's C-method frame on
//! its VM stack, whose method entry marks its owner, the module; a Method or
//! UnboundMethod object marks its method entry too; so do aliases; and an
//! object extended by or a class including the module marks it. (A body
//! copied elsewhere with `define_method(name, unbound_method)` shares the
//! C function but not the owner: keep the module alive for that.)
//!
//! Re-attaching a name with exactly the same function and signature reuses
//! its stub: the loop `attach_function :f, ...` on one module does not grow.
//! A stub replaced by a different definition of its name stays until the
//! module goes (a Method object taken before may still call it).
//!
//! GC rules: the owner marks with `rb_gc_mark` (pinning): stubs compare
//! `ref_classes` VALUEs inline and slow paths read the others as raw VALUEs.
//! `stubs` is never borrowed across a call into Ruby (marking borrows it).
//! The free function runs inside the GC: it only frees Rust memory and
//! queues the code for the arena (`take_reclaimed`, drained under the JIT
//! lock by the next attach), taking no lock the GC's thread could hold.

use crate::runtime::StubInfo;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::Obj;
use magnus::value::ReprValue;
use magnus::{gc, DataTypeFunctions, Error, Ruby, TryConvert, TypedData, Value};
use rb_sys::VALUE;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// What makes two attachments of a name the same stub.
#[derive(PartialEq)]
pub struct AttachKey {
    pub function: usize,
    pub signature: crate::types::Signature,
    pub blocking: bool,
    pub ffi_messages: bool,
    pub ffi_long: Vec<bool>,
    pub ref_classes: Vec<VALUE>,
    pub ret_struct: Option<(VALUE, usize)>,
    pub c_name: String,
}

pub struct OwnedStub {
    pub key: AttachKey,
    pub address: usize,
    /// Bytes installed in the arena.
    pub len: usize,
    /// From `Box::into_raw`; the stub's literal pool points at it.
    pub info: *mut StubInfo,
}

// SAFETY: the info is only touched with the GVL (attach, the slow paths,
// the owner's mark and free functions), whichever thread holds it.
unsafe impl Send for OwnedStub {}

#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::StubOwner", mark, free_immediately, size)]
pub struct StubOwner {
    /// Method name → the stubs attached under it, newest last.
    stubs: RefCell<HashMap<String, Vec<OwnedStub>>>,
}

impl DataTypeFunctions for StubOwner {
    fn mark(&self, _marker: &gc::Marker) {
        let stubs = self.stubs.borrow();
        for stub in stubs.values().flatten() {
            // SAFETY: `info` is alive while its owner is; the VALUEs in it
            // are the objects it was built with (see StubInfo's fields).
            unsafe {
                let info = &*stub.info;
                rb_sys::rb_gc_mark(info.param_labels);
                for &class in info.ref_classes_owned.iter().filter(|&&c| c != 0) {
                    rb_sys::rb_gc_mark(class);
                }
                if let Some((class, _)) = info.ret_struct {
                    rb_sys::rb_gc_mark(class);
                }
                let enums = info.enums.load(Ordering::Acquire);
                if enums != 0 {
                    rb_sys::rb_gc_mark(enums as VALUE);
                }
            }
        }
    }
}

/// Stubs owned by live modules, all modules together (for tests).
static OWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `Native.owned_stub_total`: stubs (each with its StubInfo) not reclaimed.
pub fn owned_total() -> usize {
    OWNED.load(Ordering::Relaxed)
}

/// Stubs whose owner was collected: `(address, installed bytes)`.
static RECLAIMED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

impl Drop for StubOwner {
    fn drop(&mut self) {
        let stubs = std::mem::take(self.stubs.get_mut());
        let mut reclaimed = RECLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        for stub in stubs.into_values().flatten() {
            OWNED.fetch_sub(1, Ordering::Relaxed);
            reclaimed.push((stub.address, stub.len));
            // SAFETY: the info was made by Box::into_raw for this stub
            // only, and its module (so every method running the stub) is
            // garbage.
            drop(unsafe { Box::from_raw(stub.info) });
        }
    }
}

/// The code of stubs freed since the last call (for the arena).
pub fn take_reclaimed() -> Vec<(usize, usize)> {
    std::mem::take(&mut *RECLAIMED.lock().unwrap_or_else(|p| p.into_inner()))
}

fn owner_id() -> rb_sys::ID {
    // SAFETY: interning needs the GVL, which attach_function holds.
    unsafe { rb_sys::rb_intern2(c"__fiddle_jit_stubs__".as_ptr(), 20) }
}

impl StubOwner {
    /// The owner of `module`'s stubs, created on first use. Raises (for a
    /// frozen module, FrozenError) before any stub is made.
    pub fn of(ruby: &Ruby, module: Value) -> Result<Obj<StubOwner>, Error> {
        // SAFETY: reads an instance variable of a live object, with the GVL.
        let existing = unsafe { Value::from_raw(rb_sys::rb_ivar_get(module.as_raw(), owner_id())) };
        if !existing.is_nil() {
            if let Ok(owner) = Obj::<StubOwner>::try_convert(existing) {
                return Ok(owner);
            }
        }
        let owner = ruby.obj_wrap(StubOwner { stubs: RefCell::new(HashMap::new()) });
        let id = owner_id();
        magnus::rb_sys::protect(|| {
            // SAFETY: sets a hidden instance variable, with the GVL; raises
            // FrozenError for a frozen module (caught by protect).
            unsafe { rb_sys::rb_ivar_set(module.as_raw(), id, owner.as_raw()) }
        })?;
        Ok(owner)
    }

    /// A stub of `name` attached with `key`, if any: its address, installed
    /// bytes and labels Array (for the caller to compare).
    pub fn find(&self, name: &str, key: &AttachKey) -> Vec<(usize, usize, VALUE)> {
        let stubs = self.stubs.borrow();
        stubs.get(name).map_or_else(Vec::new, |v| {
            v.iter()
                .filter(|s| s.key == *key)
                // SAFETY: alive with its owner.
                .map(|s| (s.address, s.len, unsafe { (*s.info).param_labels }))
                .collect()
        })
    }

    pub fn add(&self, name: String, stub: OwnedStub) {
        OWNED.fetch_add(1, Ordering::Relaxed);
        self.stubs.borrow_mut().entry(name).or_default().push(stub);
    }

    /// Stubs owned (all names), for tests.
    pub fn count(&self) -> usize {
        self.stubs.borrow().values().map(Vec::len).sum()
    }
}
