//! Attached functions with callback parameters, a callback return or
//! `callback_frame: true`: a native method in front of the stub, with no
//! Ruby wrapper (lib/fiddle_jit/function.rb, `Function.attach_address`).
//!
//! Per call it does what the ffi gem's Call.c does around `ffi_call`:
//! a block stands in for the last callback parameter; each callback
//! argument becomes a Function pointer (nil, Pointers and Functions as
//! they are; a Proc/Method/callable through its type's memo, else
//! `Function.for_callback`, which caches the Function on the callable as
//! the ffi gem does); a callback frame is open while C runs (see
//! `runtime::callback`), and an exception a callback raised is re-raised
//! once C has returned. The stub itself is called as the hidden method of
//! a holder module, so the callback runtime still sees a wrapped stub on
//! top of the VM stack.
//!
//! A Ruby cfunc gets no per-method data, so each method is a small
//! JIT-emitted entry (`backend::emit_method_thunk`) that passes its
//! `CallbackParams` as a fourth argument, as the ffi gem's MethodHandle does.
//! The entry lives as long as its `CallbackParams`, which the module holds
//! as it holds its stubs (see `definitions_of`): attaching the same
//! function again reuses it, and once the module is collected its code goes
//! back to the arena (`runtime::jit::MethodEntry`).

use crate::runtime::{callback, jit};
use magnus::rb_sys::{protect, resume_error, AsRawValue, FromRawValue};
use crate::ruby::stub_lifetime::StubOwner;
use magnus::{gc, prelude::*, DataTypeFunctions, Error, RArray, RHash, RModule, Ruby, TryConvert, TypedData, Value};
use rb_sys::{ID, VALUE};
use std::ffi::{c_int, CString};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

const QNIL: VALUE = rb_sys::Qnil as VALUE;

/// What one attached method needs. Its VALUEs are marked with rb_gc_mark
/// (pinned: they are read as raw VALUEs during calls). The object lives in
/// a hidden instance variable of the module the method is defined on.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::CallbackParams", free_immediately, size, mark)]
pub struct CallbackParams {
    /// The module holding the stub as its singleton method `stub`.
    holder: VALUE,
    stub: ID,
    arity: usize,
    /// Index and FunctionType of each callback parameter.
    callbacks: Box<[(usize, VALUE)]>,
    /// The FunctionType of a callback return, or nil.
    ret_type: VALUE,
    /// FiddleJit::Function (for `for_callback` and `from_native`).
    function_class: VALUE,
    /// For arity messages: the method's name, and whether the module
    /// words them as the ffi gem.
    name: String,
    ffi_messages: bool,
    /// The method's entry, which passes this object's address: installed
    /// once the object is in place, freed with it.
    entry: std::cell::OnceCell<jit::MethodEntry>,
}

impl DataTypeFunctions for CallbackParams {
    fn mark(&self, marker: &gc::Marker) {
        // SAFETY: VALUEs of live objects stored by `define`, kept alive
        // (and pinned) here.
        let mark = |v: VALUE| marker.mark(unsafe { Value::from_raw(v) });
        self.callbacks.iter().for_each(|&(_, t)| mark(t));
        [self.holder, self.ret_type, self.function_class].into_iter().for_each(mark);
    }
}

fn intern(cell: &'static OnceLock<ID>, name: &'static std::ffi::CStr) -> ID {
    // SAFETY: interns a static NUL-terminated name (static IDs never move).
    *cell.get_or_init(|| unsafe { rb_sys::rb_intern(name.as_ptr()) })
}

macro_rules! id {
    ($name:literal) => {{
        static ID_CELL: OnceLock<ID> = OnceLock::new();
        intern(&ID_CELL, $name)
    }};
}

impl CallbackParams {
    fn arity_error(&self, given: usize) -> Error {
        let ruby = Ruby::get().expect("Ruby thread");
        let expected = self.arity;
        let message = if self.ffi_messages {
            format!("wrong number of arguments ({given} for {expected})")
        } else {
            format!("wrong number of arguments (given {given}, expected {expected}) calling {}", self.name)
        };
        Error::new(ruby.exception_arg_error(), message)
    }

    /// The pointer the stub gets for callback argument `value` of `ty`:
    /// nil or a Pointer as it is, else the Function's Pointer (`to_ptr`).
    /// Also returns the Function, which the caller keeps on its stack so
    /// it outlives the call.
    fn callback_pointer(&self, ty: VALUE, value: VALUE) -> Result<(VALUE, VALUE), Error> {
        let host = crate::runtime::host::host();
        // SAFETY: `value` is a live argument of the running call.
        let arg = unsafe { Value::from_raw(value) };
        if value == QNIL || (host.pointer_address)(arg).is_some() {
            return Ok((value, QNIL));
        }
        let function = match crate::ruby::footprint::callback_memo(ty, value) {
            Some(f) => f,
            None => {
                // SAFETY: the class is pinned by `mark`; its method raises
                // the ffi gem's TypeError for anything not callable.
                let class = unsafe { Value::from_raw(self.function_class) };
                let ty = unsafe { Value::from_raw(ty) };
                class.funcall::<_, _, Value>("for_callback", (ty, arg))?.as_raw()
            }
        };
        Ok((function_pointer(function), function))
    }
}

/// A Function's Pointer (what the stub takes inline); anything else
/// `for_callback` returned (nil, a Pointer) as is.
fn function_pointer(function: VALUE) -> VALUE {
    // SAFETY: a live VALUE (the memo's, or returned by `for_callback`).
    super::Function::pointer_of(unsafe { Value::from_raw(function) }).map_or(function, |p| p.as_raw())
}

/// Argument slots on the machine stack: the GC scans it, so the converted
/// pointers, the Functions and a block's Proc stay alive through the call.
type Slots = [MaybeUninit<VALUE>; crate::abi::MAX_PARAMS];

/// The stub's call under rb_protect.
struct StubCall<'a> {
    params: &'a CallbackParams,
    args: *const VALUE,
}

unsafe extern "C" fn call_stub(arg: VALUE) -> VALUE {
    let call = &*(arg as *const StubCall);
    rb_sys::rb_funcallv(call.params.holder, call.params.stub, call.params.arity as c_int, call.args)
}

/// The method body: `data` is the method's CallbackParams (its entry thunk
/// passes it).
unsafe extern "C" fn call(argc: c_int, argv: *const VALUE, _recv: VALUE, data: *const CallbackParams) -> VALUE {
    let mut args: Slots = [MaybeUninit::uninit(); crate::abi::MAX_PARAMS];
    let mut functions: Slots = [MaybeUninit::uninit(); crate::abi::MAX_PARAMS];
    // SAFETY: the thunk passes the CallbackParams its module keeps alive
    // (a running call's frame marks the module, see `definitions_of`).
    let params = &*data;
    match prepare(params, argc as usize, argv, &mut args, &mut functions) {
        Ok(()) => {}
        Err(e) => resume_error(e),
    }
    let frame = callback::frame_push(QNIL);
    let call = StubCall { params, args: args.as_ptr() as *const VALUE };
    let mut state: c_int = 0;
    let result = rb_sys::rb_protect(Some(call_stub), &call as *const StubCall as VALUE, &mut state);
    // (Continues a jump a callback made, once C has returned.)
    let exception = callback::frame_pop(QNIL, frame);
    if state != 0 {
        rb_sys::rb_jump_tag(state);
    }
    if exception != QNIL {
        rb_sys::rb_exc_raise(exception);
    }
    // The Functions lived through the call (the stack slots are read here).
    std::hint::black_box(&functions);
    if params.ret_type == QNIL {
        return result;
    }
    match from_native(params, result) {
        Ok(v) => v,
        Err(e) => resume_error(e),
    }
}

/// Fills `args` with the stub's arguments, and `functions` with the
/// Functions made for callback arguments.
unsafe fn prepare(params: &CallbackParams, argc: usize, argv: *const VALUE, args: &mut Slots, functions: &mut Slots) -> Result<(), Error> {
    let n = params.arity;
    let given = std::slice::from_raw_parts(argv, argc);
    let last_callback = params.callbacks.last().map(|&(i, _)| i);
    if argc == n {
        for (slot, &v) in args.iter_mut().zip(given) {
            slot.write(v);
        }
    } else if let (Some(at), true) = (last_callback, argc + 1 == n) {
        // A block for the last callback parameter, as in the ffi gem.
        if rb_sys::rb_block_given_p() == 0 {
            return Err(params.arity_error(argc));
        }
        let block = rb_sys::rb_block_proc();
        let mut rest = given.iter();
        for (i, slot) in args[..n].iter_mut().enumerate() {
            slot.write(if i == at { block } else { *rest.next().expect("argc + 1 == n") });
        }
    } else {
        return Err(params.arity_error(argc));
    }
    for (k, &(i, ty)) in params.callbacks.iter().enumerate() {
        let (pointer, function) = params.callback_pointer(ty, args[i].assume_init())?;
        args[i].write(pointer);
        functions[k].write(function);
    }
    Ok(())
}

fn from_native(params: &CallbackParams, result: VALUE) -> Result<VALUE, Error> {
    // SAFETY: pinned by `mark`; `result` is the stub's live return value.
    let (class, ty, result) = unsafe {
        (Value::from_raw(params.function_class), Value::from_raw(params.ret_type), Value::from_raw(result))
    };
    Ok(class.funcall::<_, _, Value>("from_native", (ty, result))?.as_raw())
}

/// The hidden instance variable of a module holding its CallbackParams by
/// method name (no `@`: invisible to Ruby, so `Library#freeze` does not
/// walk it).
fn holder_ivar() -> ID {
    id!(c"__fiddle_jit_callback_params__")
}

/// `Function.__define_callback_method(module, name, holder, stub, arity,
/// callback_indexes, callback_types, ret_type, ffi_messages)`: defines
/// `name` on `module` (singleton and public instance method, as
/// attach_function) calling `holder.stub` as described above.
#[allow(clippy::too_many_arguments)]
fn define(
    ruby: &Ruby,
    function_class: Value,
    module: RModule,
    name: String,
    holder: RModule,
    stub: String,
    arity: usize,
    indexes: Vec<usize>,
    types: RArray,
    ret_type: Value,
    ffi_messages: bool,
) -> Result<(), Error> {
    let types: Vec<VALUE> = types.into_iter().map(|t| t.as_raw()).collect();
    if indexes.len() != types.len() || indexes.iter().any(|&i| i >= arity) || arity > crate::abi::MAX_PARAMS {
        return Err(Error::new(ruby.exception_arg_error(), "callback parameter indexes out of range"));
    }
    let params = ruby.obj_wrap(CallbackParams {
        holder: holder.as_raw(),
        // SAFETY: interns a copy of the bytes (a static, never-freed ID).
        stub: unsafe { rb_sys::rb_intern2(stub.as_ptr() as *const std::ffi::c_char, stub.len() as std::ffi::c_long) },
        arity,
        callbacks: indexes.into_iter().zip(types).collect(),
        ret_type: ret_type.as_raw(),
        function_class: function_class.as_raw(),
        name: name.clone(),
        ffi_messages,
        entry: std::cell::OnceCell::new(),
    });
    let definitions = definitions_of(ruby, module, &name)?;
    if let Some(thunk) = earlier_entry(ruby, definitions, &params)? {
        return define_methods(ruby, module, name, thunk);
    }
    // Held by the module before the methods exist (defining may run the GC).
    definitions.push(params)?;
    let body = call as unsafe extern "C" fn(c_int, *const VALUE, VALUE, *const CallbackParams) -> VALUE;
    // (The boxed CallbackParams does not move; the object may.)
    let data = magnus::typed_data::Obj::as_ptr(params) as usize;
    let code = crate::backend::emit_method_thunk(data, body as usize)
        .map_err(|e| Error::new(ruby.exception_not_imp_error(), e.to_string()))?;
    let entry = jit::MethodEntry::install(&code).map_err(|e| Error::new(ruby.exception_not_imp_error(), e))?;
    let thunk = params.entry.get_or_init(|| entry).address;
    define_methods(ruby, module, name, thunk)
}

/// Defines `name` on `module` (singleton and public instance method, arity
/// -1) with the installed method entry at `thunk`.
fn define_methods(ruby: &Ruby, module: RModule, name: String, thunk: usize) -> Result<(), Error> {
    let name = CString::new(name).map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    // SAFETY: `thunk` is complete code with the argc/argv cfunc signature,
    // alive with its CallbackParams, which `module` holds (`definitions_of`).
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(thunk);
        rb_sys::rb_ext_ractor_safe(true);
        rb_sys::rb_define_singleton_method(module.as_raw(), name.as_ptr(), Some(func), -1);
        rb_sys::rb_define_method(module.as_raw(), name.as_ptr(), Some(func), -1);
    }
    Ok(())
}

/// The entry of an earlier definition of the name that does what `params`
/// would (its holder's stub the same function, signature and conversions):
/// attaching the same function again adds nothing, as for stubs.
fn earlier_entry(ruby: &Ruby, definitions: RArray, params: &CallbackParams) -> Result<Option<usize>, Error> {
    for i in 0..definitions.len() {
        let earlier: &CallbackParams = TryConvert::try_convert(definitions.entry::<Value>(i as isize)?)?;
        if let (Some(entry), true) = (earlier.entry.get(), earlier.same_as(ruby, params)?) {
            return Ok(Some(entry.address));
        }
    }
    Ok(None)
}

impl CallbackParams {
    fn same_as(&self, ruby: &Ruby, other: &CallbackParams) -> Result<bool, Error> {
        let key = |p: &CallbackParams| (p.stub, p.arity, p.ret_type, p.function_class, p.ffi_messages);
        if key(self) != key(other) || self.callbacks != other.callbacks || self.name != other.name {
            return Ok(false);
        }
        // SAFETY: both holders are pinned by `mark`.
        let (a, b) = unsafe { (Value::from_raw(self.holder), Value::from_raw(other.holder)) };
        Ok(StubOwner::of(ruby, a)?.same_stubs(StubOwner::of(ruby, b)?))
    }
}

/// The Array of `module`'s CallbackParams for `name`, in its hidden Hash
/// (created if need be). Every definition of a name stays until the module
/// goes, as its stubs do (docs/design.md, "Stub lifetime"): a thread
/// running an entry has its method's frame, which marks the module, and a
/// Method object taken before the name was attached again still runs it.
fn definitions_of(ruby: &Ruby, module: RModule, name: &str) -> Result<RArray, Error> {
    // SAFETY: reads a hidden instance variable of a live module.
    let existing = unsafe { rb_sys::rb_ivar_get(module.as_raw(), holder_ivar()) };
    // SAFETY: nil or the Hash stored below.
    let table = match RHash::from_value(unsafe { Value::from_raw(existing) }) {
        Some(table) => table,
        None => {
            let table = ruby.hash_new();
            // SAFETY: sets a hidden instance variable; raises FrozenError
            // for a frozen module (caught by protect).
            protect(|| unsafe { rb_sys::rb_ivar_set(module.as_raw(), holder_ivar(), table.as_raw()) })?;
            table
        }
    };
    if let Some(definitions) = table.get(name).and_then(RArray::from_value) {
        return Ok(definitions);
    }
    let definitions = ruby.ary_new();
    table.aset(name, definitions)?;
    Ok(definitions)
}

pub fn init(ruby: &Ruby, function: magnus::RClass, native: RModule) -> Result<(), Error> {
    native.define_class("CallbackParams", ruby.class_object())?.undef_default_alloc_func();
    function.define_singleton_method("__define_callback_method", magnus::method!(define, 9))?;
    Ok(())
}
