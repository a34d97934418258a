//! Attached functions whose arguments or result convert on the way
//! (Enum, Bitmask, DataConverter and callback types, `Struct.by_ref` and
//! `:strptr` results) or that take `callback_frame: true`: a native method
//! in front of the stub, with no Ruby wrapper (`Native.attach_converting`,
//! called by lib/fiddle_jit/library.rb's attach_function and function.rb's
//! `Function.attach_address`).
//!
//! Per converted parameter (and for the result), per call:
//! - a callback type: what the ffi gem's Call.c does around `ffi_call`: a
//!   block stands in for the last callback parameter; the argument becomes
//!   a Function pointer (nil, Pointers and Functions as they are; a
//!   Proc/Method/callable's as `Function.for_callback` finds or makes it,
//!   cached on the callable as the ffi gem does: `callback_lookup`); a
//!   callback result becomes a Function (`Function.from_native`);
//! - an exact FiddleJit::Enum (no subclass, no singleton methods): its
//!   maps read here, as Enum#to_native/#from_native read them
//!   (lib/fiddle_jit/enum.rb); what those methods do beyond a lookup
//!   (`to_int`, the ArgumentError for an unknown value) by calling them;
//! - any other converter: `to_native(value, nil)` / `from_native(value,
//!   nil)`, as the ffi gem calls them.
//!
//! A signature with callback types (or `callback_frame: true`) has a
//! callback frame open while C runs (see `runtime::callback`), and an
//! exception a callback raised is re-raised once C has returned; its stub is
//! called as the hidden method `__fiddle_jit_<name>` of a holder module, so
//! the callback runtime sees a wrapped stub on top of the VM stack
//! (`runtime::jump::top_is_wrapped_stub`). Other signatures call the stub's
//! cfunc directly (the module owns it as it owns its plain stubs).
//!
//! A Ruby cfunc gets no per-method data, so each method is a small
//! JIT-emitted entry (`backend::emit_method_thunk`) that passes its
//! `ParamConversions` as a fourth argument, as the ffi gem's MethodHandle
//! does. The entry lives as long as its `ParamConversions`, which the module
//! holds as it holds its stubs (see `definitions_of`): attaching the same
//! function again reuses it (and its holder's stub), and once the module is
//! collected its code goes back to the arena (`runtime::jit::MethodEntry`).
//!
//! Exceptions: converters and `Function.new_for_callback` are called with
//! `rb_funcallv` and may raise, which unwinds (longjmp) over `call`: at
//! those calls nothing with a destructor is alive in its frame.
//!
//! GC: the arguments, converted values and Functions stay in arrays on the
//! machine stack (which Ruby scans) through the call; the VALUEs kept here
//! are marked, hence pinned (read raw during calls).

use crate::ruby::attach::{self, AttachSignature};
use crate::ruby::stub_lifetime::StubOwner;
use crate::ruby::variadic::call_stub;
use crate::runtime::{callback, jit};
use magnus::rb_sys::{protect, resume_error, AsRawValue, FromRawValue};
use magnus::typed_data::Obj;
use magnus::{gc, prelude::*, DataTypeFunctions, Error, RArray, RHash, RModule, Ruby, TryConvert, TypedData, Value};
use rb_sys::{ID, VALUE};
use std::ffi::{c_int, CStr};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

const QNIL: VALUE = rb_sys::Qnil as VALUE;
const QUNDEF: VALUE = rb_sys::Qundef as VALUE;

/// What one parameter or the result goes through (also a variadic
/// argument's or result's converter, see `ruby::variadic`).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Conversion {
    /// A callback type (its FunctionType).
    Callback(VALUE),
    /// An exact FiddleJit::Enum and its `@kv_map` (Symbol => value) and
    /// `@vk_map` (value => Symbol).
    Enum { object: VALUE, symbols: VALUE, values: VALUE },
    /// Anything with `to_native`/`from_native`.
    Converter(VALUE),
}

/// How the method calls its stub.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// As method `stub` of `holder` (a module owning only that stub, at
    /// `address`), inside a callback frame.
    Framed { holder: VALUE, stub: ID, address: usize },
    /// The stub's cfunc (owned by the method's module) called directly.
    Direct { address: usize, arity: i32 },
    /// A variadic function: the VariadicInvoker in instance variable `ivar`
    /// of `module`, read per call (see `attach_variadic`).
    Variadic { module: VALUE, ivar: ID },
}

/// What one attached method needs. The object lives in a hidden instance
/// variable of the module the method is defined on.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::ParamConversions", free_immediately, size, mark)]
pub struct ParamConversions {
    target: Target,
    arity: usize,
    /// Index and conversion of each converted parameter.
    params: Box<[(usize, Conversion)]>,
    ret: Option<Conversion>,
    /// The index of the last callback parameter (a block may stand in for it).
    last_callback: Option<usize>,
    /// For arity messages: the method's name, and whether the module
    /// words them as the ffi gem.
    name: String,
    ffi_messages: bool,
    /// The method's entry, which passes this object's address: installed
    /// once the object is in place, freed with it.
    entry: std::cell::OnceCell<jit::MethodEntry>,
}

impl Conversion {
    pub(crate) fn values(&self) -> impl Iterator<Item = VALUE> {
        let (a, b, c) = match *self {
            Conversion::Callback(v) | Conversion::Converter(v) => (v, QNIL, QNIL),
            Conversion::Enum { object, symbols, values } => (object, symbols, values),
        };
        [a, b, c].into_iter()
    }
}

impl DataTypeFunctions for ParamConversions {
    fn mark(&self, marker: &gc::Marker) {
        // SAFETY: VALUEs of live objects stored by `attach_converting`,
        // kept alive (and pinned) here.
        let mark = |v: VALUE| marker.mark(unsafe { Value::from_raw(v) });
        self.params.iter().flat_map(|(_, c)| c.values()).for_each(mark);
        self.ret.iter().flat_map(Conversion::values).for_each(mark);
        match self.target {
            Target::Framed { holder, .. } => mark(holder),
            Target::Variadic { module, .. } => mark(module),
            Target::Direct { .. } => {}
        }
    }
}

/// Method names and classes the native methods (and
/// `ruby::variadic`'s invokers) use, looked up where functions are
/// attached and invokers made (the main Ractor: two Ractors racing into the
/// OnceLock could deadlock on a GC barrier); every call only reads them.
pub(crate) struct Names {
    pub to_native: ID,
    pub from_native: ID,
    /// VariadicInvoker#shape.
    pub shape: ID,
    /// FiddleJit::Function, FunctionType and Enum (pinned).
    pub function: VALUE,
    pub function_type: VALUE,
    enumeration: VALUE,
    kv_map: ID,
    vk_map: ID,
}

pub(crate) fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    // SAFETY: interning names and reading constants lib/fiddle_jit defines
    // before anything is attached; the classes are pinned forever.
    NAMES.get_or_init(|| unsafe {
        let class = |path: &std::ffi::CStr| {
            let c = rb_sys::rb_path2class(path.as_ptr());
            rb_sys::rb_gc_register_mark_object(c);
            c
        };
        Names {
            to_native: rb_sys::rb_intern(c"to_native".as_ptr()),
            from_native: rb_sys::rb_intern(c"from_native".as_ptr()),
            shape: rb_sys::rb_intern(c"shape".as_ptr()),
            function: class(c"FiddleJit::Function"),
            function_type: class(c"FiddleJit::FunctionType"),
            enumeration: class(c"FiddleJit::Enum"),
            kv_map: rb_sys::rb_intern(c"@kv_map".as_ptr()),
            vk_map: rb_sys::rb_intern(c"@vk_map".as_ptr()),
        }
    })
}

impl Conversion {
    /// The conversion for `converter`, a converter or a FunctionType.
    pub(crate) fn of(converter: Value) -> Conversion {
        let names = names();
        let v = converter.as_raw();
        // SAFETY: a class check and flag/class reads of a live object (the
        // klass field of a heap object, a singleton class if it has one).
        unsafe {
            if rb_sys::rb_obj_is_kind_of(v, names.function_type) == rb_sys::Qtrue as VALUE {
                return Conversion::Callback(v);
            }
            if !rb_sys::SPECIAL_CONST_P(v) && (*(v as *const rb_sys::RBasic)).klass == names.enumeration {
                let symbols = rb_sys::rb_ivar_get(v, names.kv_map);
                let values = rb_sys::rb_ivar_get(v, names.vk_map);
                if rb_sys::RB_TYPE_P(symbols, rb_sys::ruby_value_type::RUBY_T_HASH)
                    && rb_sys::RB_TYPE_P(values, rb_sys::ruby_value_type::RUBY_T_HASH)
                {
                    return Conversion::Enum { object: v, symbols, values };
                }
            }
        }
        Conversion::Converter(v)
    }

    /// The value the stub gets for argument `value`, and an object to keep
    /// alive through the call (a callback's Function) or nil.
    ///
    /// # Safety
    /// With the GVL, `value` a live VALUE; may raise (longjmp).
    // Inlined into `call`'s loop: with variadic calls as a second caller it had
    // become a call of its own (+23 instructions an enum argument).
    #[inline(always)]
    pub(crate) unsafe fn to_native(self, value: VALUE) -> (VALUE, VALUE) {
        match self {
            Conversion::Callback(ty) => callback_pointer(ty, value),
            // Enum#to_native: `@kv_map[val] || (Integer ? val : ...)`; its
            // keys are Symbols (and nil for a leading value).
            Conversion::Enum { object, symbols, .. } => {
                if rb_sys::RB_INTEGER_TYPE_P(value) {
                    return (value, QNIL);
                }
                if rb_sys::RB_SYMBOL_P(value) || value == QNIL {
                    let found = rb_sys::rb_hash_lookup2(symbols, value, QUNDEF);
                    if found != QUNDEF {
                        return (found, QNIL);
                    }
                }
                (rb_sys::rb_funcallv(object, names().to_native, 2, [value, QNIL].as_ptr()), QNIL)
            }
            Conversion::Converter(c) => (rb_sys::rb_funcallv(c, names().to_native, 2, [value, QNIL].as_ptr()), QNIL),
        }
    }

    /// The method's result for the stub's `result`.
    ///
    /// # Safety
    /// As `to_native`.
    #[inline(always)]
    pub(crate) unsafe fn from_native(self, result: VALUE) -> VALUE {
        match self {
            Conversion::Callback(ty) => rb_sys::rb_funcallv(names().function, names().from_native, 2, [ty, result].as_ptr()),
            // Enum#from_native: `@vk_map[val] || val` (its values are Symbols).
            Conversion::Enum { values, .. } => rb_sys::rb_hash_lookup2(values, result, result),
            Conversion::Converter(c) => rb_sys::rb_funcallv(c, names().from_native, 2, [result, QNIL].as_ptr()),
        }
    }
}

/// The pointer the stub gets for callback argument `value` of `ty`: nil or
/// a Pointer as it is, else the Function's Pointer (`to_ptr`). Also returns
/// the Function, which the caller keeps on its stack so it outlives the call.
///
/// # Safety
/// As `Conversion::to_native`.
unsafe fn callback_pointer(ty: VALUE, value: VALUE) -> (VALUE, VALUE) {
    let host = crate::runtime::host::host();
    if value == QNIL || (host.pointer_address)(Value::from_raw(value)).is_some() {
        return (value, QNIL);
    }
    // Raises the ffi gem's TypeError for anything not callable.
    let function = super::callback_lookup::function_for(ty, value);
    // A Function's Pointer; anything else `for_callback` returned (nil, a
    // Pointer) as is.
    let pointer = super::Function::pointer_of(Value::from_raw(function)).map_or(function, |p| p.as_raw());
    (pointer, function)
}

impl ParamConversions {
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
}

/// Argument slots on the machine stack: the GC scans it, so the converted
/// values, the Functions and a block's Proc stay alive through the call.
type Slots = [MaybeUninit<VALUE>; crate::abi::MAX_PARAMS];

/// The stub's call under rb_protect.
struct StubCall<'a> {
    holder: VALUE,
    stub: ID,
    args: &'a [VALUE],
}

unsafe extern "C" fn call_framed_stub(arg: VALUE) -> VALUE {
    // SAFETY: `call_framed` passes its StubCall, alive through rb_protect.
    let call = &*(arg as *const StubCall);
    rb_sys::rb_funcallv(call.holder, call.stub, call.args.len() as c_int, call.args.as_ptr())
}

/// Calls `holder.stub(*args)` inside a callback frame; re-raises what a
/// callback raised once C has returned.
unsafe fn call_framed(holder: VALUE, stub: ID, args: &[VALUE]) -> VALUE {
    let frame = callback::frame_push(QNIL);
    let call = StubCall { holder, stub, args };
    let mut state: c_int = 0;
    let result = rb_sys::rb_protect(Some(call_framed_stub), &call as *const StubCall as VALUE, &mut state);
    // (Continues a jump a callback made, once C has returned.)
    let exception = callback::frame_pop(QNIL, frame);
    if state != 0 {
        rb_sys::rb_jump_tag(state);
    }
    if exception != QNIL {
        rb_sys::rb_exc_raise(exception);
    }
    result
}

/// The method body: `data` is the method's ParamConversions (its entry
/// thunk passes it).
unsafe extern "C" fn call(argc: c_int, argv: *const VALUE, recv: VALUE, data: *const ParamConversions) -> VALUE {
    let mut args: Slots = [MaybeUninit::uninit(); crate::abi::MAX_PARAMS];
    let mut kept: Slots = [MaybeUninit::uninit(); crate::abi::MAX_PARAMS];
    // SAFETY: the thunk passes the ParamConversions its module keeps alive
    // (a running call's frame marks the module, see `definitions_of`).
    let this = &*data;
    if let Err(e) = gather(this, argc as usize, argv, &mut args) {
        resume_error(e)
    }
    for (k, &(i, conversion)) in this.params.iter().enumerate() {
        let (value, keep) = conversion.to_native(args[i].assume_init());
        args[i].write(value);
        kept[k].write(keep);
    }
    // SAFETY: `gather` wrote the first `arity` slots.
    let values = std::slice::from_raw_parts(args.as_ptr() as *const VALUE, this.arity);
    let result = match this.target {
        Target::Framed { holder, stub, .. } => call_framed(holder, stub, values),
        Target::Direct { address, arity } => call_stub(address, arity, recv, values),
        Target::Variadic { .. } => unreachable!("a variadic method's body is call_variadic"),
    };
    // The converted values and Functions lived through the call (the
    // stack slots are read here).
    std::hint::black_box((&args, &kept));
    match this.ret {
        None => result,
        Some(conversion) => conversion.from_native(result),
    }
}

/// The body of a variadic function's method: the invoker's `call` with
/// the arguments as they are. The instance variable is read as a `def`
/// would read it: Library#freeze makes it shareable, and another Ractor
/// reading it before that gets Ruby's Ractor::IsolationError.
unsafe extern "C" fn call_variadic(argc: c_int, argv: *const VALUE, _recv: VALUE, data: *const ParamConversions) -> VALUE {
    // SAFETY: as in `call`.
    let Target::Variadic { module, ivar } = (*data).target else { unreachable!("defined by attach_variadic") };
    let invoker = rb_sys::rb_ivar_get(module, ivar);
    if !crate::ruby::variadic::is_variadic_call(invoker) {
        let ruby = Ruby::get_unchecked();
        resume_error(Error::new(ruby.exception_type_error(), "the variadic function's invoker is gone"));
    }
    crate::ruby::variadic::call(argc, argv, invoker)
}

/// Fills `args` with the call's arguments (a block for the last callback
/// parameter, as in the ffi gem), or gives the arity error.
unsafe fn gather(this: &ParamConversions, argc: usize, argv: *const VALUE, args: &mut Slots) -> Result<(), Error> {
    let n = this.arity;
    let given: &[VALUE] = if argc == 0 { &[] } else { std::slice::from_raw_parts(argv, argc) };
    if argc == n {
        for (slot, &v) in args.iter_mut().zip(given) {
            slot.write(v);
        }
        return Ok(());
    }
    let (Some(at), true) = (this.last_callback, argc + 1 == n) else { return Err(this.arity_error(argc)) };
    if rb_sys::rb_block_given_p() == 0 {
        return Err(this.arity_error(argc));
    }
    let block = rb_sys::rb_block_proc();
    let mut rest = given.iter();
    for (i, slot) in args[..n].iter_mut().enumerate() {
        slot.write(if i == at { block } else { *rest.next().expect("argc + 1 == n") });
    }
    Ok(())
}

/// The hidden instance variable of a module holding its ParamConversions
/// by method name (no `@`: invisible to Ruby, so `Library#freeze` does not
/// walk it).
fn definitions_ivar() -> ID {
    static ID_CELL: OnceLock<ID> = OnceLock::new();
    // SAFETY: interns a static NUL-terminated name (static IDs never move).
    *ID_CELL.get_or_init(|| unsafe { rb_sys::rb_intern(c"__fiddle_jit_param_conversions__".as_ptr()) })
}

/// `Native.attach_converting(module, name, address, c_name, signature,
/// conversions, ret_conversion, frame)`: defines `name` on `module`
/// (singleton and public instance method, as attach_function) calling the
/// stub for `address` and `signature` (an `AttachSignature`) as described
/// above. `conversions` has per parameter nil or its converter (a
/// FunctionType for a callback), `ret_conversion` the result's (or nil);
/// `frame` forces a callback frame. Returns `[stub address, bytes]`.
/// `module` is a Module or a Class (`extend FFI::Library` works in both).
#[allow(clippy::too_many_arguments)]
fn attach_converting(
    ruby: &Ruby,
    module: Value,
    name: Value,
    address: usize,
    c_name: String,
    signature: Obj<AttachSignature>,
    conversions: RArray,
    ret: Value,
    frame: bool,
) -> Result<(usize, usize), Error> {
    names();
    let (id, name) = method_name(ruby, name)?;
    let arity = signature.arity();
    if conversions.len() != arity || arity > crate::abi::MAX_PARAMS {
        return Err(Error::new(ruby.exception_arg_error(), "one conversion per parameter expected"));
    }
    let mut params = Vec::new();
    for (i, c) in conversions.into_iter().enumerate() {
        if !c.is_nil() {
            params.push((i, Conversion::of(c)));
        }
    }
    let ret = (!ret.is_nil()).then(|| Conversion::of(ret));
    let callbacks = params.iter().any(|(_, c)| matches!(c, Conversion::Callback(_)));
    let last_callback = params.iter().rev().find(|(_, c)| matches!(c, Conversion::Callback(_))).map(|&(i, _)| i);
    let definitions = definitions_of(ruby, module, id)?;
    let (target, stub) = if frame || callbacks || matches!(ret, Some(Conversion::Callback(_))) {
        framed_stub(ruby, definitions, name.to_str().expect("UTF-8 checked"), address, &c_name, signature)?
    } else {
        let stub = attach::owned_stub(ruby, module, name.to_str().expect("UTF-8 checked"), address, &c_name, signature)?;
        (Target::Direct { address: stub.address, arity: stub.arity }, (stub.address, stub.len))
    };
    let conversions = ParamConversions {
        target,
        arity,
        params: params.into_boxed_slice(),
        ret,
        last_callback,
        ffi_messages: signature.ffi_compatible(),
        name: name.to_str().expect("UTF-8 checked").to_owned(),
        entry: std::cell::OnceCell::new(),
    };
    let thunk = match earlier_entry(definitions, &conversions)? {
        Some(thunk) => thunk,
        None => new_entry(ruby, definitions, conversions)?,
    };
    define_methods(module, name, thunk);
    Ok(stub)
}

/// The holder and stub for a framed call: an earlier definition's holder
/// whose stub is the same (nothing emitted, nothing kept), else a new
/// holder module with the stub as `__fiddle_jit_<name>`.
fn framed_stub(
    ruby: &Ruby,
    definitions: RArray,
    name: &str,
    address: usize,
    c_name: &str,
    signature: Obj<AttachSignature>,
) -> Result<(Target, (usize, usize)), Error> {
    // The stub keeps its hidden name (messages, `top_is_wrapped_stub`).
    let hidden = format!("__fiddle_jit_{name}");
    for i in 0..definitions.len() {
        let earlier: &ParamConversions = TryConvert::try_convert(definitions.entry::<Value>(i as isize)?)?;
        let Target::Framed { holder, .. } = earlier.target else { continue };
        // SAFETY: the holder is pinned by the earlier definition's `mark`.
        let owner = StubOwner::of(ruby, unsafe { Value::from_raw(holder) })?;
        if let Some(stub) = attach::find_stub(owner, &hidden, address, &signature) {
            return Ok((Target::Framed { holder, stub: intern(&hidden), address: stub.address }, (stub.address, stub.len)));
        }
    }
    let holder = ruby.module_new();
    let stub = attach::owned_stub(ruby, holder.as_value(), &hidden, address, c_name, signature)?;
    stub.define(ruby, holder.as_value())?;
    Ok((Target::Framed { holder: holder.as_raw(), stub: intern(&hidden), address: stub.address }, (stub.address, stub.len)))
}

fn intern(name: &str) -> ID {
    // SAFETY: interns a copy of the bytes (a static, never-freed ID).
    unsafe { rb_sys::rb_intern2(name.as_ptr() as *const std::ffi::c_char, name.len() as std::ffi::c_long) }
}

/// A method entry's body: the cfunc arguments and the method's data.
type MethodBody = unsafe extern "C" fn(c_int, *const VALUE, VALUE, *const ParamConversions) -> VALUE;

/// Wraps `conversions`, held by the module before the methods exist
/// (defining may run the GC), and installs its method entry.
fn new_entry(ruby: &Ruby, definitions: RArray, conversions: ParamConversions) -> Result<usize, Error> {
    let body = match conversions.target {
        Target::Variadic { .. } => call_variadic as MethodBody,
        _ => call as MethodBody,
    };
    let conversions = ruby.obj_wrap(conversions);
    definitions.push(conversions)?;
    // (The boxed ParamConversions does not move; the object may.)
    let data = Obj::as_ptr(conversions) as usize;
    let code = crate::backend::emit_method_thunk(data, body as usize)
        .map_err(|e| Error::new(ruby.exception_not_imp_error(), e.to_string()))?;
    let entry = jit::MethodEntry::install(&code).map_err(|e| Error::new(ruby.exception_not_imp_error(), e))?;
    Ok(conversions.entry.get_or_init(|| entry).address)
}

/// The ID and name of a method name given as a Symbol or a String (a name
/// interned once: no String made per attach of a Symbol name).
fn method_name(ruby: &Ruby, name: Value) -> Result<(ID, &'static CStr), Error> {
    let bad = |what: &str| Error::new(ruby.exception_arg_error(), format!("invalid method name {what}"));
    let raw = name.as_raw();
    // SAFETY: type checks and interning of a live Symbol or String; an ID's
    // name is a NUL-terminated string alive as long as the ID (forever: a
    // dynamic Symbol's ID is pinned by rb_sym2id).
    unsafe {
        let id = if rb_sys::RB_SYMBOL_P(raw) {
            rb_sys::rb_sym2id(raw)
        } else if rb_sys::RB_TYPE_P(raw, rb_sys::ruby_value_type::RUBY_T_STRING) {
            rb_sys::rb_intern_str(raw)
        } else {
            return Err(bad(&format!("{name:?}")));
        };
        let text = CStr::from_ptr(rb_sys::rb_id2name(id));
        let full = rb_sys::RSTRING_LEN(rb_sys::rb_sym2str(rb_sys::rb_id2sym(id))) as usize == text.to_bytes().len();
        if !full || text.to_str().is_err() {
            return Err(bad(&format!("{name:?}")));
        }
        Ok((id, text))
    }
}

/// `Native.attach_variadic(module, name, invoker)`: defines `name` on
/// `module` (singleton and public instance method, as attach_function)
/// calling `invoker` (a VariadicInvoker), which the module keeps in the
/// instance variable `@__fiddle_jit_variadic_<name>`, read per call.
/// Attaching the name again replaces the invoker and reuses the entry.
fn attach_variadic(ruby: &Ruby, module: Value, name: Value, invoker: Value) -> Result<(), Error> {
    if !crate::ruby::variadic::is_variadic_call(invoker.as_raw()) {
        return Err(Error::new(ruby.exception_type_error(), "a VariadicInvoker expected"));
    }
    let (id, name) = method_name(ruby, name)?;
    let text = name.to_str().expect("UTF-8 checked");
    let ivar = intern(&format!("@__fiddle_jit_variadic_{text}"));
    // SAFETY: sets an instance variable of a live module; raises
    // FrozenError for a frozen one (caught by protect).
    protect(|| unsafe { rb_sys::rb_ivar_set(module.as_raw(), ivar, invoker.as_raw()) })?;
    let definitions = definitions_of(ruby, module, id)?;
    let conversions = ParamConversions {
        target: Target::Variadic { module: module.as_raw(), ivar },
        arity: 0,
        params: Box::default(),
        ret: None,
        last_callback: None,
        name: text.to_owned(),
        ffi_messages: false,
        entry: std::cell::OnceCell::new(),
    };
    let thunk = match earlier_entry(definitions, &conversions)? {
        Some(thunk) => thunk,
        None => new_entry(ruby, definitions, conversions)?,
    };
    define_methods(module, name, thunk);
    Ok(())
}

/// Defines `name` on `module` (singleton and public instance method, arity
/// -1) with the installed method entry at `thunk`.
fn define_methods(module: Value, name: &CStr, thunk: usize) {
    // SAFETY: `thunk` is complete code with the argc/argv cfunc signature,
    // alive with its ParamConversions, which `module` holds (`definitions_of`).
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(thunk);
        rb_sys::rb_ext_ractor_safe(true);
        rb_sys::rb_define_singleton_method(module.as_raw(), name.as_ptr(), Some(func), -1);
        rb_sys::rb_define_method(module.as_raw(), name.as_ptr(), Some(func), -1);
    }
}

/// The entry of an earlier definition of the name that does what
/// `conversions` would: attaching the same function again adds nothing, as
/// for stubs.
fn earlier_entry(definitions: RArray, conversions: &ParamConversions) -> Result<Option<usize>, Error> {
    for i in 0..definitions.len() {
        let earlier: &ParamConversions = TryConvert::try_convert(definitions.entry::<Value>(i as isize)?)?;
        if let (Some(entry), true) = (earlier.entry.get(), earlier.same_as(conversions)) {
            return Ok(Some(entry.address));
        }
    }
    Ok(None)
}

impl ParamConversions {
    /// The same stub (a framed one on the same holder), conversions and
    /// messages.
    fn same_as(&self, other: &ParamConversions) -> bool {
        self.target == other.target
            && self.arity == other.arity
            && self.params == other.params
            && self.ret == other.ret
            && self.ffi_messages == other.ffi_messages
            && self.name == other.name
    }
}

/// The Array of `module`'s ParamConversions for `name`, in its hidden Hash
/// (created if need be). Every definition of a name stays until the module
/// goes, as its stubs do (docs/design.md, "Stub lifetime"): a thread
/// running an entry has its method's frame, which marks the module, and a
/// Method object taken before the name was attached again still runs it.
fn definitions_of(ruby: &Ruby, module: Value, name: ID) -> Result<RArray, Error> {
    // SAFETY: reads a hidden instance variable of a live module.
    let existing = unsafe { rb_sys::rb_ivar_get(module.as_raw(), definitions_ivar()) };
    // SAFETY: nil or the Hash stored below.
    let table = match RHash::from_value(unsafe { Value::from_raw(existing) }) {
        Some(table) => table,
        None => {
            let table = ruby.hash_new();
            // SAFETY: sets a hidden instance variable; raises FrozenError
            // for a frozen module (caught by protect).
            protect(|| unsafe { rb_sys::rb_ivar_set(module.as_raw(), definitions_ivar(), table.as_raw()) })?;
            table
        }
    };
    // (A Symbol key: no String made per attach.)
    // SAFETY: the Symbol of an interned (static) ID.
    let key = unsafe { Value::from_raw(rb_sys::rb_id2sym(name)) };
    if let Some(definitions) = table.get(key).and_then(RArray::from_value) {
        return Ok(definitions);
    }
    let definitions = ruby.ary_new();
    table.aset(key, definitions)?;
    Ok(definitions)
}

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_class("ParamConversions", ruby.class_object())?.undef_default_alloc_func();
    native.define_singleton_method("attach_converting", magnus::function!(attach_converting, 8))?;
    native.define_singleton_method("attach_variadic", magnus::function!(attach_variadic, 3))?;
    Ok(())
}
