//! FiddleJit::Function: a C function pointer. Either backed by a Ruby
//! callable (a JIT-emitted reverse trampoline: C calls Ruby), or wrapping
//! an address C gave us (Ruby calls C; `call`/`attach` live in
//! lib/fiddle_jit/function.rb and reuse the forward stub emitter).
//!
//! Lifetime: the callable is marked (pinned, so GC.compact never moves it
//! under the trampoline) for as long as the Function object lives; when
//! the Function is collected (or `free`d) its slot and thunk are recycled
//! and the address must no longer be called by C.

mod callback_lookup;
mod constructor;
pub(crate) mod param_conversions;

pub(crate) use callback_lookup::function_for;

use crate::runtime::callback::{self, Slot};
use crate::types::CType;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::Obj;
use magnus::{function, gc, method, prelude::*, DataTypeFunctions, Error, RClass, RModule, Ruby, TypedData, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Write-barrier protected: every VALUE stored after creation goes through
/// `runtime::objects::written` (see `Pointer`).
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Function", mark, free_immediately, size, frozen_shareable, wb_protected)]
pub struct Function {
    address: usize,
    /// The callback slot, for Functions backed by a Ruby callable.
    /// (A Mutex so a frozen Function can be Ractor-shareable, i.e. `Sync`.)
    slot: std::sync::Mutex<Option<&'static Slot>>,
    /// The callable (raw VALUE, marked with rb_gc_mark so it is pinned).
    callable: Option<rb_sys::VALUE>,
    /// What the Function was made from, kept alive with it: the Pointer
    /// (or Function) of a pointer-backed one (the ffi gem's rbParent), the
    /// unadapted callable of a callback (whose caches `free` clears); marked.
    parent: Option<rb_sys::VALUE>,
    /// The Pointer `to_ptr` returns (0 until made), marked (pinned). Native
    /// rather than an instance variable: each of those is a generic-ivar
    /// table entry on a T_DATA object, the main cost of a short-lived
    /// Function (gir_ffi makes one per callback argument).
    pointer: AtomicUsize,
    /// `[return type, parameter types]` (`__types=`, set once by the Ruby
    /// layer), marked; native for the same reason. `freeze` makes it
    /// shareable before the Function is shared.
    types: AtomicUsize,
    /// The callback type (FunctionType) a callback parameter made this
    /// Function for (`__callback_type=`, set once; the key of the callable's
    /// cache), marked; 0 for none. Native for the same reason.
    callback_type: AtomicUsize,
}

impl DataTypeFunctions for Function {
    fn mark(&self, marker: &gc::Marker) {
        for v in [self.callable, self.parent].into_iter().flatten() {
            // SAFETY: a VALUE this object has kept alive since creation.
            marker.mark(unsafe { Value::from_raw(v) });
        }
        for v in [&self.pointer, &self.types, &self.callback_type].map(|v| v.load(Ordering::Relaxed)) {
            if v != 0 {
                // SAFETY: a VALUE stored by `to_ptr`, `__types=` or
                // `__callback_type=`, kept alive here.
                marker.mark(unsafe { Value::from_raw(v as rb_sys::VALUE) });
            }
        }
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            callback::release(slot);
        }
    }
}

fn parse_type(ruby: &Ruby, value: Value) -> Result<CType, Error> {
    crate::ruby::attach::parse_type(ruby, value)
}

impl Function {
    /// The address of a Function, if `value` is one (checked without
    /// raising: magnus' conversion raises and rescues for other T_DATA).
    pub fn address_of(value: Value) -> Option<usize> {
        Function::of(value).map(|f| f.address)
    }

    /// `==`, the ffi gem 1.17's Pointer#== (a Function is a Pointer there):
    /// nil equals a NULL Function; a Function or Pointer equals when the
    /// addresses do; anything else is not equal. (ethon compares its
    /// callbacks on every request.)
    fn eq(&self, other: Value) -> bool {
        if other.is_nil() {
            return self.address == 0;
        }
        Function::address_of(other).or_else(|| crate::ruby::pointer::Pointer::address_of(other)) == Some(self.address)
    }

    /// The live Function behind `value`, if it is one.
    #[inline(always)]
    fn of<'a>(value: Value) -> Option<&'a Function> {
        crate::runtime::objects::typed_data::<Function>(value.as_raw())
    }

    /// `to_ptr`: a Pointer to the address (what `:pointer` parameters take
    /// inline), made once. Not stored once frozen (`freeze` makes and
    /// freezes it first, so a shareable Function holds a frozen Pointer, as
    /// the ffi gem's Function, a Pointer itself, is frozen).
    pub fn to_ptr(rb_self: Obj<Function>) -> Value {
        rb_self.cached_pointer(rb_self.as_raw(), rb_self.is_frozen())
    }

    #[inline(always)]
    fn cached_pointer(&self, owner: rb_sys::VALUE, frozen: bool) -> Value {
        let cached = self.pointer.load(Ordering::Acquire);
        if cached != 0 {
            // SAFETY: marked by this Function.
            return unsafe { Value::from_raw(cached as rb_sys::VALUE) };
        }
        self.make_pointer(owner, frozen)
    }

    #[cold]
    #[inline(never)]
    fn make_pointer(&self, owner: rb_sys::VALUE, frozen: bool) -> Value {
        // The ffi gem's Function is a Pointer to the code: LONG_MAX bytes of
        // a C function (type size 1), 48 of a callback's trampoline (type
        // size 0). Read-only here (writing there crashes the ffi gem).
        let (type_size, size) =
            if self.callable.is_some() { (0, CALLBACK_CODE_SIZE) } else { (1, crate::ruby::pointer::UNBOUNDED) };
        let pointer = crate::ruby::pointer::Pointer::new_read_only(self.address, type_size, size);
        if !frozen {
            self.pointer.store(pointer.as_raw() as usize, Ordering::Release);
            crate::runtime::objects::written(owner, pointer.as_raw());
        }
        pointer
    }

    /// `to_ptr` of a Function VALUE while the Function keeps it alive (made
    /// now if need be; a frozen Function's was made by `freeze`), None for
    /// anything else.
    pub(crate) fn kept_pointer(value: Value) -> Option<Value> {
        let f = Function::of(value)?;
        let pointer = f.cached_pointer(value.as_raw(), value.is_frozen());
        (f.pointer.load(Ordering::Acquire) == pointer.as_raw() as usize).then_some(pointer)
    }

    /// `to_ptr` of a Function VALUE, None for anything else.
    pub fn pointer_of(value: Value) -> Option<Value> {
        Some(Function::of(value)?.cached_pointer(value.as_raw(), value.is_frozen()))
    }

    /// `__types`: what `__types=` stored, or nil.
    fn types(ruby: &Ruby, rb_self: &Self) -> Value {
        match rb_self.types.load(Ordering::Acquire) {
            0 => ruby.qnil().as_value(),
            // SAFETY: marked by this Function.
            v => unsafe { Value::from_raw(v as rb_sys::VALUE) },
        }
    }

    /// `__types=(pair)`: (a Function's state is only ever set before it
    /// is frozen, by the Ruby layer).
    fn set_types(rb_self: Obj<Self>, types: Value) {
        rb_self.types.store(types.as_raw() as usize, Ordering::Release);
        crate::runtime::objects::written(rb_self.as_raw(), types.as_raw());
    }

    /// `Function.__callback(params, ret, callable, types, parent)`, an
    /// instance of the receiver (a subclass too, as in the ffi gem): canonical
    /// type names, or struct descriptors for structs by value (as for
    /// attach_function); `types` as for `__types=`, `parent` the unadapted
    /// callable.
    fn new_callback(
        ruby: &Ruby,
        class: RClass,
        params: magnus::RArray,
        ret: Value,
        callable: Value,
        types: Value,
        parent: Value,
    ) -> Result<Obj<Function>, Error> {
        let callback_types = callback_types(ruby, params, ret)?;
        Function::new_callback_of(ruby, class, callback_types, callable, types, parent)
    }

    /// `new_callback` with the types parsed already (a Signature's
    /// CallbackTypes).
    fn new_callback_of(
        ruby: &Ruby,
        class: RClass,
        callback_types: Arc<callback::CallbackTypes>,
        callable: Value,
        types: Value,
        parent: Value,
    ) -> Result<Obj<Function>, Error> {
        // SAFETY: a plain predicate on a live VALUE.
        let is_proc = unsafe { rb_sys::rb_obj_is_proc(callable.as_raw()) } == rb_sys::Qtrue as rb_sys::VALUE;
        let dispatcher = callback::dispatcher::ensure_started();
        crate::runtime::jump::prepare();
        let slot = callback::allocate(callback_types, callable.as_raw(), is_proc, dispatcher)
            .map_err(|e| Error::new(ruby.exception_not_imp_error(), e))?;
        Ok(ruby.obj_wrap_as(Function {
            address: slot.thunk(),
            slot: std::sync::Mutex::new(Some(slot)),
            callable: Some(callable.as_raw()),
            parent: Some(parent.as_raw()),
            pointer: AtomicUsize::new(0),
            types: AtomicUsize::new(types.as_raw() as usize),
            callback_type: AtomicUsize::new(0),
        }, class))
    }

    /// `Function.__pointer(address)`: a C function pointer.
    fn new_pointer(ruby: &Ruby, address: usize) -> Obj<Function> {
        ruby.obj_wrap(Function::pointer_backed(address, None, 0))
    }

    /// `Function.__pointer_from(pointer, types)`: a C function pointer at
    /// the address of a Pointer (or Function), which it keeps alive; `types`
    /// as for `__types=`.
    fn new_pointer_from(ruby: &Ruby, class: RClass, pointer: Value, types: Value) -> Result<Obj<Function>, Error> {
        let address = (crate::runtime::host::host().pointer_address)(pointer)
            .or_else(|| Function::address_of(pointer))
            .ok_or_else(|| Error::new(ruby.exception_type_error(), "expected a Pointer"))?;
        Ok(ruby.obj_wrap_as(Function::pointer_backed(address, Some(pointer.as_raw()), types.as_raw()), class))
    }

    fn pointer_backed(address: usize, parent: Option<rb_sys::VALUE>, types: rb_sys::VALUE) -> Function {
        Function {
            address,
            slot: std::sync::Mutex::new(None),
            callable: None,
            parent,
            pointer: AtomicUsize::new(0),
            types: AtomicUsize::new(types as usize),
            callback_type: AtomicUsize::new(0),
        }
    }

    fn address(&self) -> usize {
        self.address
    }

    fn callable(&self) -> Option<Value> {
        // SAFETY: marked by this object.
        self.callable.map(|v| unsafe { Value::from_raw(v) })
    }

    /// `__callback_type`: the FunctionType set by `__callback_type=`, or nil.
    fn callback_type(&self) -> Option<Value> {
        match self.callback_type.load(Ordering::Relaxed) {
            0 => None,
            // SAFETY: marked by this object.
            v => Some(unsafe { Value::from_raw(v as rb_sys::VALUE) }),
        }
    }

    /// `__callback_type=(type)`: remembers the callback type this Function
    /// was made for.
    fn set_callback_type(rb_self: Obj<Self>, ty: Value) {
        rb_self.callback_type.store(ty.as_raw() as usize, Ordering::Relaxed);
        crate::runtime::objects::written(rb_self.as_raw(), ty.as_raw());
    }

    fn parent(&self) -> Option<Value> {
        // SAFETY: marked by this object.
        self.parent.map(|v| unsafe { Value::from_raw(v) })
    }

    /// Recycles the trampoline slot now (the ffi gem's Function#free).
    fn free(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        match rb_self.slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(slot) => {
                callback::release(slot);
                Ok(())
            }
            None => Err(Error::new(ruby.exception_runtime_error(), "cannot free function which was not allocated")),
        }
    }

    fn is_freed(&self) -> bool {
        self.callable.is_some() && self.slot.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

/// `[live callbacks, quarantined slots, trampolines]`.
fn callback_stats() -> (usize, usize, usize) {
    callback::stats()
}

/// `Function.__signature_in(trie, ret, params)`: the Signature under
/// `trie[ret][params[0]]...[params[n - 1]][nil]`, or nil (the cache of
/// `cached_signature`, lib/fiddle_jit/function.rb): one C call instead of a
/// Ruby loop of Hash and Array calls per parameter (gir_ffi makes three
/// Functions per operation).
fn signature_in(trie: magnus::RHash, ret: Value, params: magnus::RArray) -> Result<Value, Error> {
    let (trie, ret, params) = (trie.as_raw(), ret.as_raw(), params.as_raw());
    // SAFETY: live VALUEs (the method's arguments); a key's #hash or #eql?
    // may raise, hence the protect (nothing with a destructor in between).
    let found = magnus::rb_sys::protect(|| unsafe { trie_walk(trie, ret, params) })?;
    // SAFETY: a value stored in the trie (or nil).
    Ok(unsafe { Value::from_raw(found) })
}

/// See `signature_in`.
unsafe fn trie_walk(trie: rb_sys::VALUE, ret: rb_sys::VALUE, params: rb_sys::VALUE) -> rb_sys::VALUE {
    let nil = rb_sys::Qnil as rb_sys::VALUE;
    let is_hash = |v: rb_sys::VALUE| {
        v & 7 == 0 && v != nil && v != rb_sys::Qfalse as rb_sys::VALUE && rb_sys::RB_TYPE_P(v, rb_sys::ruby_value_type::RUBY_T_HASH)
    };
    let mut node = rb_sys::rb_hash_lookup2(trie, ret, nil);
    for i in 0..rb_sys::RARRAY_LEN(params) {
        if !is_hash(node) {
            return nil;
        }
        node = rb_sys::rb_hash_lookup2(node, rb_sys::rb_ary_entry(params, i), nil);
    }
    if is_hash(node) {
        rb_sys::rb_hash_lookup2(node, nil, nil)
    } else {
        nil
    }
}

/// A callback's parameter and return types from their native names (or
/// struct descriptors): TypeError for an unknown one, ArgumentError for a
/// `:void` parameter.
fn callback_types(ruby: &Ruby, params: magnus::RArray, ret: Value) -> Result<Arc<callback::CallbackTypes>, Error> {
    let params = params.into_iter().map(|p| parse_type(ruby, p)).collect::<Result<Vec<_>, _>>()?;
    if let Some(i) = params.iter().position(|p| *p == CType::Void) {
        return Err(Error::new(ruby.exception_arg_error(), format!("callback argument {} cannot be :void", i + 1)));
    }
    Ok(callback::CallbackTypes::new(params, parse_type(ruby, ret)?))
}

/// `FiddleJit::Native::CallbackTypes.new(native_params, native_ret)`: a
/// `Function::Signature`'s callback types, parsed once when the Signature
/// is made rather than for every Function of it (ffi-yajl makes 11 per
/// parse). None when they do not parse (or a parameter is `:void`): a
/// callback of that Signature then takes `new_callback`, which raises why.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::CallbackTypes", free_immediately, size, frozen_shareable)]
pub(crate) struct SignatureCallbackTypes(Option<Arc<callback::CallbackTypes>>);

impl DataTypeFunctions for SignatureCallbackTypes {}

impl SignatureCallbackTypes {
    fn new(ruby: &Ruby, params: magnus::RArray, ret: Value) -> SignatureCallbackTypes {
        SignatureCallbackTypes(callback_types(ruby, params, ret).ok())
    }

    pub(crate) fn types(&self) -> Option<Arc<callback::CallbackTypes>> {
        self.0.clone()
    }
}

/// The size the ffi gem gives a callback Function (its trampoline's).
const CALLBACK_CODE_SIZE: usize = 48;

/// A method of Pointer's called on a Function, whose data is not a
/// Pointer's: the same method of its `to_ptr` (as the ffi gem's Function,
/// a Pointer to the code, answers `size`, `get_bytes`, `+`...).
unsafe extern "C" fn on_to_ptr(argc: std::ffi::c_int, argv: *const rb_sys::VALUE, rb_self: rb_sys::VALUE) -> rb_sys::VALUE {
    // (Defined on Function, whose instances all have Function data.)
    let target = Function::pointer_of(Value::from_raw(rb_self)).map_or(rb_sys::Qnil as rb_sys::VALUE, |p| p.as_raw());
    // (No Rust value needs dropping past this call, which may raise.)
    rb_sys::rb_funcall_passing_block(target, rb_sys::rb_frame_this_func(), argc, argv)
}

/// `Function.__on_to_ptr(names)`: Function's methods `names` (Pointer's,
/// see lib/fiddle_jit/function.rb) act on `to_ptr`.
fn define_on_to_ptr(class: RClass, names: magnus::RArray) -> Result<(), Error> {
    for name in names.into_iter() {
        let name = magnus::Symbol::try_convert(name)?;
        crate::ruby::pointer::define_raw(class, &name.name()?, on_to_ptr as *const (), -1);
    }
    Ok(())
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    // A Pointer subclass, as in the ffi gem (`is_a?(Pointer)`); its own
    // data type, so :pointer parameters take it through `to_ptr`.
    let pointer: magnus::RClass = module.const_get("Pointer")?;
    let class = module.define_class("Function", pointer)?;
    class.undef_default_alloc_func();
    class.define_singleton_method("__callback", method!(Function::new_callback, 5))?;
    class.define_singleton_method("__pointer", function!(Function::new_pointer, 1))?;
    class.define_singleton_method("__signature_in", function!(signature_in, 3))?;
    class.define_singleton_method("__pointer_from", method!(Function::new_pointer_from, 2))?;
    class.define_singleton_method("__signatures=", function!(constructor::set_trie, 1))?;
    class.define_singleton_method("__for_callback", function!(callback_lookup::for_callback, 2))?;
    class.define_singleton_method("__on_to_ptr", method!(define_on_to_ptr, 1))?;
    constructor::init(class);
    callback_lookup::init();
    class.define_method("address", method!(Function::address, 0))?;
    class.define_method("to_i", method!(Function::address, 0))?;
    class.define_method("==", method!(Function::eq, 1))?;
    class.define_method("to_ptr", method!(Function::to_ptr, 0))?;
    class.define_private_method("__types", method!(Function::types, 0))?;
    class.define_private_method("__types=", method!(Function::set_types, 1))?;
    class.define_method("__callable", method!(Function::callable, 0))?;
    class.define_method("__callback_type", method!(Function::callback_type, 0))?;
    class.define_method("__callback_type=", method!(Function::set_callback_type, 1))?;
    class.define_private_method("__parent", method!(Function::parent, 0))?;
    class.define_method("native_free", method!(Function::free, 0))?;
    class.define_method("freed?", method!(Function::is_freed, 0))?;
    let native: RModule = module.const_get("Native")?;
    let callback_types = native.define_class("CallbackTypes", ruby.class_object())?;
    callback_types.undef_default_alloc_func();
    callback_types.define_singleton_method("new", function!(SignatureCallbackTypes::new, 2))?;
    callback::define_frame_functions(native);
    native.define_singleton_method("callback_stats", function!(callback_stats, 0))?;
    native.const_set("CALLBACK_QUARANTINE", callback::QUARANTINE)?;
    param_conversions::init(ruby, native)?;
    Ok(())
}
