//! `FiddleJit::Native::VariadicCall`, the native half of
//! `FiddleJit::VariadicInvoker` (lib/fiddle_jit/variadic.rb): its `#call`
//! walks the `(type, value)` pairs, finds the stub of that shape of
//! variadic types by the identity of the type VALUEs (no allocation),
//! converts only the values whose type needs it, and calls the stub's cfunc
//! directly. A shape seen for the first time goes through the Ruby
//! `#shape`, which resolves the types (raising the ffi gem's errors for bad
//! ones), attaches the stub to the invoker's hidden module and returns what
//! is cached here.
//!
//! Exceptions: `call` is a raw cfunc. Ruby code it calls (converters, the
//! stub, `#shape`) may raise, which unwinds (longjmp) over it: at those
//! calls nothing with a destructor is alive in its frame, and the cache's
//! lock is never held across a call into Ruby.
//!
//! GC: the argument VALUEs are kept in an array on the machine stack, which
//! Ruby scans; the cache's VALUEs (keys, converters, the holder module) are
//! marked, hence pinned.

use crate::abi::{MAX_FIXED_ARITY, MAX_PARAMS};
use crate::ruby::pointer::raise_or;
use crate::ruby::function::param_conversions::{names, Conversion};
use crate::runtime::objects;
use magnus::gc::Marker;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::DataTypeFunctions;
use magnus::{method, prelude::*, Error, RArray, RModule, Ruby, TypedData, Value};
use rb_sys::VALUE;
use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard};

const NIL: VALUE = rb_sys::Qnil as VALUE;

/// What one argument goes through before the stub sees it.
#[derive(Clone, Copy)]
enum Convert {
    /// Passed as is (the stub converts it).
    Plain,
    /// `converter.to_native(value, nil)`: an Enum (its maps read natively,
    /// as for fixed parameters), a DataConverter, ...
    ToNative(Conversion),
    /// `Function.for_callback(type, value)`: a Proc for a callback type.
    Callback(VALUE),
}

/// One shape of variadic types and its stub.
struct Shape {
    /// The types as the caller passed them (Symbols, Type objects),
    /// compared by identity.
    types: Box<[VALUE]>,
    /// The stub's cfunc address and arity (-1: the `(argc, argv, self)`
    /// form).
    stub: usize,
    arity: i32,
    /// One per argument, fixed ones first; empty when all are plain.
    converts: Box<[Convert]>,
}

/// What `call` needs (from `__setup`) and the shapes seen so far.
#[derive(Default)]
struct Dispatch {
    fixed: usize,
    /// The return value's converter (`from_native(result, nil)`).
    ret_conv: Option<Conversion>,
    /// The hidden module the stubs are attached to (and owned by): their
    /// receiver.
    holder: VALUE,
    /// Boxed: a `&Shape` stays valid after the lock is released and the
    /// Vec grows (shapes are only ever added, and live as long as the
    /// invoker).
    #[allow(clippy::vec_box)]
    shapes: Vec<Box<Shape>>,
}

impl Dispatch {
    fn find(&self, args: &[VALUE]) -> Option<&Shape> {
        let n = args.len().div_ceil(2);
        self.shapes
            .iter()
            .find(|s| s.types.len() == n && s.types.iter().zip(args.iter().step_by(2)).all(|(a, b)| a == b))
            .map(|s| &**s)
    }
}

/// Behind a lock: a frozen invoker is shareable, so several Ractors may
/// fill its cache.
#[derive(Default, TypedData)]
#[magnus(class = "FiddleJit::Native::VariadicCall", free_immediately, size, mark, frozen_shareable)]
pub struct VariadicCall {
    dispatch: Mutex<Dispatch>,
}

impl DataTypeFunctions for VariadicCall {
    fn mark(&self, marker: &Marker) {
        // No Ruby code runs (so no GC starts) while the lock is held.
        let d = self.lock();
        // SAFETY: VALUEs of live objects stored by `setup`/`cache`, kept
        // alive (and pinned) by this mark.
        let mark = |v: VALUE| marker.mark(unsafe { Value::from_raw(v) });
        d.ret_conv.iter().flat_map(Conversion::values).for_each(mark);
        if d.holder != 0 {
            mark(d.holder);
        }
        for s in &d.shapes {
            s.types.iter().copied().for_each(mark);
            for c in s.converts.iter() {
                match *c {
                    Convert::ToNative(conversion) => conversion.values().for_each(mark),
                    Convert::Callback(v) => mark(v),
                    Convert::Plain => {}
                }
            }
        }
    }
}

impl VariadicCall {
    fn lock(&self) -> MutexGuard<'_, Dispatch> {
        self.dispatch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `__setup(fixed_count, ret_conv, holder)`, from `initialize`.
    fn setup(&self, fixed: usize, ret_conv: Value, holder: RModule) {
        // Here, where invokers are made (the main Ractor), not on a first
        // call: two Ractors racing into the OnceLock could deadlock on a GC
        // barrier.
        names();
        let mut d = self.lock();
        d.fixed = fixed;
        d.ret_conv = (!ret_conv.is_nil()).then(|| Conversion::of(ret_conv));
        d.holder = holder.as_raw();
    }

    /// Caches the Ruby `#shape`'s answer for `types`: `[stub address, cfunc
    /// arity, converter per argument or nil]`.
    fn cache(&self, types: RArray, entry: Value) -> Result<&Shape, Error> {
        let entry = RArray::try_convert(entry)?;
        let (stub, arity, convs): (usize, i32, RArray) = (entry.entry(0)?, entry.entry(1)?, entry.entry(2)?);
        let converts: Box<[Convert]> = convs
            .into_iter()
            .map(|c| match c {
                c if c.is_nil() => Convert::Plain,
                c => match Conversion::of(c) {
                    Conversion::Callback(ty) => Convert::Callback(ty),
                    conversion => Convert::ToNative(conversion),
                },
            })
            .collect();
        let converts = if converts.iter().all(|c| matches!(c, Convert::Plain)) { Box::default() } else { converts };
        let types: Box<[VALUE]> = types.into_iter().map(|t| t.as_raw()).collect();
        let mut d = self.lock();
        // Another thread may have learnt it meanwhile.
        let i = match d.shapes.iter().position(|s| s.types == types) {
            Some(i) => i,
            None => {
                d.shapes.push(Box::new(Shape { types, stub, arity, converts }));
                d.shapes.len() - 1
            }
        };
        let shape: *const Shape = &*d.shapes[i];
        // SAFETY: boxed and never removed while `self` lives (see Dispatch).
        Ok(unsafe { &*shape })
    }
}

/// `call(fixed..., type, value, type, value...)`: as the ffi gem, missing
/// fixed arguments are nil and a trailing type without a value passes nil.
/// (Also the body of the methods `attach_function` defines for a variadic
/// function, see `ruby::function::param_conversions::attach_variadic`.)
pub(crate) unsafe extern "C" fn call(argc: c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    // SAFETY: the method is defined on Native::VariadicCall only, whose
    // allocator makes this data.
    let this = objects::typed_data_unchecked::<VariadicCall>(rb_self);
    // SAFETY: Ruby passes `argc` live VALUEs at `argv`.
    let args = if argc > 0 { std::slice::from_raw_parts(argv, argc as usize) } else { &[] };
    let (fixed, ret_conv, holder, found) = {
        let d = this.lock();
        let pairs = args.get(d.fixed..).unwrap_or(&[]);
        (d.fixed, d.ret_conv, d.holder, d.find(pairs).map(|s| s as *const Shape))
    };
    let pairs = args.get(fixed..).unwrap_or(&[]);
    let shape = match found {
        // SAFETY: see Dispatch::shapes.
        Some(s) => &*s,
        None => learn(this, rb_self, pairs),
    };
    let total = fixed + shape.types.len();
    if total > MAX_PARAMS {
        // Unreachable: attaching a stub with more parameters failed in `#shape`.
        raise_or::<()>(Err(Error::new(Ruby::get_unchecked().exception_arg_error(), "too many arguments")));
    }
    let mut values = [MaybeUninit::<VALUE>::uninit(); MAX_PARAMS];
    let arg = |i: usize| args.get(i).copied().unwrap_or(NIL);
    for (i, v) in values.iter_mut().take(fixed).enumerate() {
        v.write(arg(i));
    }
    for (k, v) in values[fixed..total].iter_mut().enumerate() {
        v.write(arg(fixed + 2 * k + 1));
    }
    // SAFETY: the first `total` entries were written above.
    let values = std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut VALUE, total);
    for (v, c) in values.iter_mut().zip(shape.converts.iter()) {
        *v = convert(*c, *v);
    }
    let result = call_stub(shape.stub, shape.arity, holder, values);
    match ret_conv {
        None => result,
        Some(conversion) => conversion.from_native(result),
    }
}

/// The slow path: `#shape` for these types (raises for bad ones), cached.
#[cold]
unsafe fn learn<'a>(this: &'a VariadicCall, rb_self: VALUE, pairs: &[VALUE]) -> &'a Shape {
    let types = rb_sys::rb_ary_new_capa(pairs.len().div_ceil(2) as _);
    for &t in pairs.iter().step_by(2) {
        rb_sys::rb_ary_push(types, t);
    }
    let entry = rb_sys::rb_funcallv(rb_self, names().shape, 1, &types);
    raise_or(this.cache(RArray::from_value(Value::from_raw(types)).expect("an Array"), Value::from_raw(entry)))
}

unsafe fn convert(c: Convert, v: VALUE) -> VALUE {
    match c {
        Convert::Plain => v,
        Convert::ToNative(conversion) => conversion.to_native(v).0,
        Convert::Callback(ty) => crate::ruby::function::function_for(ty, v),
    }
}

/// Calls a stub's cfunc as the VM would for its arity (CRuby's
/// `call_cfunc_N`): `(argc, argv, self)` for -1, else `(self, args...)`.
pub(crate) unsafe fn call_stub(stub: usize, arity: i32, recv: VALUE, v: &[VALUE]) -> VALUE {
    macro_rules! fixed {
        ($($n:literal: $($i:literal)*;)*) => {
            match v.len() {
                $($n => {
                    // SAFETY: the stub was attached with arity `n`.
                    let f: unsafe extern "C" fn(VALUE $(, fixed!(@value $i))*) -> VALUE = std::mem::transmute(stub);
                    f(recv $(, v[$i])*)
                })*
                n => unreachable!("a stub of arity {n} > {MAX_FIXED_ARITY}"),
            }
        };
        (@value $i:literal) => { VALUE };
    }
    if arity < 0 {
        // SAFETY: the stub was attached in the argv form.
        let f: unsafe extern "C" fn(c_int, *const VALUE, VALUE) -> VALUE = std::mem::transmute(stub);
        return f(v.len() as c_int, v.as_ptr(), recv);
    }
    fixed! {
        0: ; 1: 0; 2: 0 1; 3: 0 1 2; 4: 0 1 2 3; 5: 0 1 2 3 4; 6: 0 1 2 3 4 5; 7: 0 1 2 3 4 5 6;
        8: 0 1 2 3 4 5 6 7; 9: 0 1 2 3 4 5 6 7 8; 10: 0 1 2 3 4 5 6 7 8 9; 11: 0 1 2 3 4 5 6 7 8 9 10;
        12: 0 1 2 3 4 5 6 7 8 9 10 11; 13: 0 1 2 3 4 5 6 7 8 9 10 11 12;
        14: 0 1 2 3 4 5 6 7 8 9 10 11 12 13; 15: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14;
    }
}

/// Whether `value` is a VariadicCall (a VariadicInvoker).
pub(crate) fn is_variadic_call(value: VALUE) -> bool {
    let data_type = <VariadicCall as TypedData>::data_type() as *const _ as *const rb_sys::rb_data_type_t;
    // SAFETY: a type check of a live VALUE.
    unsafe { !rb_sys::SPECIAL_CONST_P(value) && rb_sys::rb_typeddata_is_kind_of(value, data_type) != 0 }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let native = module.define_module("Native")?;
    let class = native.define_class("VariadicCall", ruby.class_object())?;
    class.define_alloc_func::<VariadicCall>();
    class.define_private_method("__setup", method!(VariadicCall::setup, 3))?;
    // SAFETY: `call` is a cfunc of arity -1.
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(call as *const ());
        rb_sys::rb_define_method(class.as_raw(), c"call".as_ptr(), Some(func), -1);
    }
    Ok(())
}
