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
//! module goes (a Method object taken before may still call it). The
//! method entries of functions with converted parameters follow the same
//! rules (`ruby::function::param_conversions`).
//!
//! GC rules: the owner marks with `rb_gc_mark` (pinning): stubs compare
//! `ref_classes` VALUEs inline and slow paths read the others as raw VALUEs.
//! `stubs` is never borrowed across a call into Ruby (marking borrows it).
//! The free function runs inside the GC: it only frees Rust memory and
//! queues the code for the arena (`runtime::jit::reclaim`, drained under
//! the JIT lock by the next attach), taking no lock the GC's thread could hold.

use crate::runtime::jit;
use crate::runtime::StubInfo;
use magnus::rb_sys::AsRawValue;
use magnus::typed_data::Obj;
use magnus::{gc, DataTypeFunctions, Error, Ruby, TypedData, Value};
use rb_sys::VALUE;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;

/// A stub its module owns. Two attachments of a name are the same stub when
/// these and the info's conversions (`StubInfo::same_conversions`) agree.
pub struct OwnedStub {
    pub address: usize,
    /// Bytes installed in the arena, and their code class.
    pub len: usize,
    pub class: u32,
    /// From `Box::into_raw`; the stub's literal pool points at it.
    pub info: *mut StubInfo,
    pub function: usize,
    pub signature: crate::types::Signature,
    pub blocking: bool,
    /// The stub's cfunc arity (what `define` announces).
    pub arity: i32,
    /// The previous stub of the same name hash, if any (see `by_name`).
    older: Option<usize>,
}

// SAFETY: the info is only touched with the GVL (attach, the slow paths,
// the owner's mark and free functions), whichever thread holds it.
unsafe impl Send for OwnedStub {}

#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::StubOwner", mark, free_immediately, size)]
pub struct StubOwner {
    stubs: RefCell<Vec<OwnedStub>>,
    /// FNV-1a hash of a method name → its newest stub in `stubs` (older
    /// ones, and other names with the same hash, chained through `older`;
    /// the name itself is the info's). No String per stub is kept for this.
    by_name: RefCell<HashMap<u64, usize, BuildHasherDefault<PreHashed>>>,
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The keys of `by_name` are hashes already: used as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |h, &b| h.rotate_left(8) ^ b as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl DataTypeFunctions for StubOwner {
    fn mark(&self, _marker: &gc::Marker) {
        let stubs = self.stubs.borrow();
        for stub in stubs.iter() {
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

impl Drop for StubOwner {
    fn drop(&mut self) {
        let stubs = std::mem::take(self.stubs.get_mut());
        for stub in stubs {
            OWNED.fetch_sub(1, Ordering::Relaxed);
            jit::reclaim(stub.address, stub.len, stub.class);
            // SAFETY: the info was made by Box::into_raw for this stub
            // only, and its module (so every method running the stub) is
            // garbage.
            drop(unsafe { Box::from_raw(stub.info) });
        }
    }
}

fn owner_id() -> rb_sys::ID {
    static ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = ID.load(Ordering::Relaxed);
    if id != 0 {
        return id as rb_sys::ID;
    }
    // SAFETY: interning needs the GVL, which attach_function holds.
    let id = unsafe { rb_sys::rb_intern2(c"__fiddle_jit_stubs__".as_ptr(), 20) };
    ID.store(id as usize, Ordering::Relaxed);
    id
}

impl StubOwner {
    /// The owner of `module`'s stubs, created on first use. Raises (for a
    /// frozen module, FrozenError) before any stub is made. The reference
    /// is good while `module` is alive (it holds the owner).
    pub fn of<'m>(ruby: &Ruby, module: Value) -> Result<&'m StubOwner, Error> {
        let data_type = <StubOwner as TypedData>::data_type() as *const _ as *const rb_sys::rb_data_type_t;
        // SAFETY: reads an instance variable of a live object, with the GVL;
        // magnus keeps a StubOwner behind the data pointer of typed data of
        // its type (the check just made).
        unsafe {
            let existing = rb_sys::rb_ivar_get(module.as_raw(), owner_id());
            if existing != rb_sys::Qnil as VALUE && rb_sys::rb_typeddata_is_kind_of(existing, data_type) != 0 {
                return Ok(&*(rb_sys::RTYPEDDATA_GET_DATA(existing) as *const StubOwner));
            }
        }
        let owner = ruby.obj_wrap(StubOwner { stubs: RefCell::new(Vec::new()), by_name: RefCell::new(HashMap::default()) });
        let id = owner_id();
        magnus::rb_sys::protect(|| {
            // SAFETY: sets a hidden instance variable, with the GVL; raises
            // FrozenError for a frozen module (caught by protect).
            unsafe { rb_sys::rb_ivar_set(module.as_raw(), id, owner.as_raw()) }
        })?;
        // SAFETY: as above; the module now holds the owner.
        Ok(unsafe { &*Obj::as_ptr(owner) })
    }

    /// The stubs of `name` that `same` accepts: their address, installed
    /// bytes, arity, labels Array (for the caller to compare, outside this
    /// borrow: comparing runs Ruby code) and info.
    pub fn find(&self, name: &str, same: impl Fn(&OwnedStub) -> bool) -> Vec<(usize, usize, i32, VALUE, *const StubInfo)> {
        let stubs = self.stubs.borrow();
        let mut found = Vec::new();
        let mut next = self.by_name.borrow().get(&name_hash(name)).copied();
        while let Some(i) = next {
            let s = &stubs[i];
            // SAFETY: alive with its owner.
            let info = unsafe { &*s.info };
            if info.name == name && same(s) {
                found.push((s.address, s.len, s.arity, info.param_labels, s.info as *const StubInfo));
            }
            next = s.older;
        }
        found
    }

    /// Takes ownership of a new stub of `name` (its info's name).
    pub fn add(&self, mut stub: OwnedStub) {
        OWNED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the info was just made for this stub.
        let hash = name_hash(unsafe { &(*stub.info).name });
        let mut stubs = self.stubs.borrow_mut();
        let mut by_name = self.by_name.borrow_mut();
        stub.older = by_name.insert(hash, stubs.len());
        stubs.push(stub);
    }

    /// Stubs owned, for tests.
    pub fn count(&self) -> usize {
        self.stubs.borrow().len()
    }
}

impl OwnedStub {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        address: usize,
        len: usize,
        class: u32,
        info: *mut StubInfo,
        function: usize,
        signature: crate::types::Signature,
        blocking: bool,
        arity: i32,
    ) -> OwnedStub {
        OwnedStub { address, len, class, info, function, signature, blocking, arity, older: None }
    }
}
