//! `FiddleJit::Native.attach_function`: the Ruby arguments converted, the
//! stub compiled (`runtime::jit`), owned by the module and defined on it.

use crate::abi;
use crate::backend::EmitError;
use crate::runtime::jit::{self, Flavour, StubSpec};
use crate::runtime::{self, StubInfo};
use crate::ruby::stub_lifetime::{self, OwnedStub, StubOwner};
use crate::types::{CType, NamedType, Signature, StructType};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::{DataTypeFunctions, Obj};
use magnus::{function, prelude::*, Error, RArray, RHash, RModule, RString, Ruby, TypedData, Value};
use std::ffi::CString;
use std::sync::atomic::Ordering;

/// A type from the Ruby layer: a canonical name ("int32", "double", ...)
/// or a struct descriptor `["struct", size, alignment, [[leaf type name,
/// offset(, count, stride)], ...]]` (leaves flattened, an inline array's
/// elements as one run; see lib/fiddle_jit/struct.rb).
pub(crate) fn parse_type(ruby: &Ruby, value: Value) -> Result<CType, Error> {
    let invalid = |what: String| Error::new(ruby.exception_type_error(), format!("invalid type: {what}"));
    if let Some(name) = RString::from_value(value) {
        // SAFETY: the bytes are only read before any Ruby code can run.
        let found = std::str::from_utf8(unsafe { name.as_slice() })
            .ok()
            .and_then(CType::from_name);
        return found.ok_or_else(|| invalid(name.to_string().unwrap_or_default()));
    }
    let Some(desc) = RArray::from_value(value) else { return Err(invalid(format!("{value:?}"))) };
    let tag: String = desc.entry(0)?;
    if tag == "pointer" {
        return Ok(CType::StructRef); // ["pointer", StructClass] (Struct.by_ref): see `ref_class`
    }
    if tag != "struct" {
        return Err(invalid(tag));
    }
    let size: usize = desc.entry(1)?;
    let align: usize = desc.entry(2)?;
    let leaves: RArray = desc.entry(3)?;
    let mut fields = Vec::with_capacity(leaves.len());
    for leaf in leaves.into_iter() {
        let leaf = RArray::from_value(leaf).ok_or_else(|| invalid("struct leaf".into()))?;
        let name: String = leaf.entry(0)?;
        let offset: usize = leaf.entry(1)?;
        // A run of `count` scalars `stride` bytes apart (an inline array).
        let (count, stride): (usize, usize) = if leaf.len() == 4 { (leaf.entry(2)?, leaf.entry(3)?) } else { (1, 0) };
        let ty = CType::from_name(&name).filter(|t| !matches!(t, CType::Void)).ok_or_else(|| invalid(name))?;
        if count == 0 {
            continue;
        }
        let last = stride.checked_mul(count - 1).and_then(|d| d.checked_add(offset));
        if last.and_then(|l| l.checked_add(ty.size())).is_none_or(|end| end > size) {
            return Err(invalid(format!("struct field at {offset} beyond size {size}")));
        }
        // Past MAX_CLASSIFIED_AGGREGATE bytes no ABI looks at where each
        // scalar lies, only at their types and alignments: a run's first
        // and last elements keep those, and a million-byte array costs two
        // fields, not a million.
        if size <= abi::MAX_CLASSIFIED_AGGREGATE {
            fields.extend((0..count).map(|i| (ty.clone(), offset + i * stride)));
        } else {
            fields.push((ty.clone(), offset));
            if count > 1 {
                fields.push((ty, last.unwrap_or(offset)));
            }
        }
    }
    if size == 0 || align == 0 {
        return Err(invalid("empty struct".into()));
    }
    Ok(CType::Struct(std::sync::Arc::new(StructType { fields, size, align })))
}

/// `Native::Signature`'s `options` bits (`Native::BLOCKING`,
/// `Native::FFI_COMPATIBLE`): the call releases the GVL; the function
/// behaves as the ffi gem's (its messages, the argv form so arity is -1),
/// which the Ruby layer decides per module (`Library.attach_options`).
const BLOCKING: usize = 1;
const FFI_COMPATIBLE: usize = 2;

/// The Struct class of a `["pointer", StructClass]` parameter (a
/// `Struct.by_ref`), 0 otherwise. (Pinned by the stub's owner: the stub's
/// inline check compares its VALUE.)
fn ref_class(value: Value) -> Result<rb_sys::VALUE, Error> {
    let Some(desc) = RArray::from_value(value) else { return Ok(0) };
    if desc.len() != 2 || desc.entry::<String>(0)? != "pointer" {
        return Ok(0);
    }
    let class: magnus::RClass = desc.entry(1)?;
    Ok(class.as_raw())
}

/// A function's signature as `Native.attach_function` takes it: one typed
/// object, `FiddleJit::Native::Signature.new(params, ret, labels, fixed,
/// options)`, built by the Ruby layer in one place
/// (`Library.native_signature`). `params`/`ret` are canonical type names
/// (the Ruby layer resolved aliases; `"long"`/`"ulong"` where the ffi gem
/// types a parameter as long) or struct descriptors
/// (`Type::Struct#native_descriptor`, a return's with its class appended),
/// `labels` the types as the user wrote them (for messages), `fixed` (or
/// nil) the number of fixed parameters of a variadic function whose call
/// shape `params` describes, `options` the bits above.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Native::Signature", free_immediately, size, mark)]
pub struct AttachSignature {
    sig: Signature,
    /// Per parameter: the Struct class of a `Struct.by_ref`, else 0.
    ref_classes: Vec<rb_sys::VALUE>,
    /// A struct return: the class to build and its size.
    ret_struct: Option<(rb_sys::VALUE, usize)>,
    /// Per parameter: typed as long by the ffi gem (NUM2LONG's messages).
    ffi_long: Vec<bool>,
    /// A frozen copy of the labels Array.
    labels: rb_sys::VALUE,
    options: usize,
}

impl DataTypeFunctions for AttachSignature {
    fn mark(&self, marker: &magnus::gc::Marker) {
        // SAFETY: VALUEs of live objects stored by `new`, kept alive (and
        // pinned) by this mark.
        let mark = |v: rb_sys::VALUE| marker.mark(unsafe { Value::from_raw(v) });
        for &v in &self.ref_classes {
            if v != 0 {
                mark(v);
            }
        }
        // No comparison on the class: with None its bytes are undefined,
        // and an optimised `Some && != 0` may test them first (memcheck).
        if let Some((class, _)) = self.ret_struct {
            mark(class);
        }
        mark(self.labels);
    }
}

impl AttachSignature {
    fn new(ruby: &Ruby, params: RArray, ret: Value, labels: RArray, fixed: Option<usize>, options: usize) -> Result<Self, Error> {
        let ffi_long: Vec<bool> = params
            .into_iter()
            // SAFETY: the bytes are only read before any Ruby code can run.
            .map(|p| RString::from_value(p).is_some_and(|s| matches!(unsafe { s.as_slice() }, b"long" | b"ulong")))
            .collect();
        let ref_classes = params.into_iter().map(ref_class).collect::<Result<Vec<_>, _>>()?;
        let mut param_types = params.into_iter().map(|p| parse_type(ruby, p)).collect::<Result<Vec<_>, _>>()?;
        let ret_type = parse_type(ruby, ret)?;
        // A struct return is built as an instance of the class the Ruby
        // layer appends to its descriptor.
        let ret_struct = match &ret_type {
            CType::Struct(s) => {
                let class: Value = RArray::from_value(ret).expect("struct descriptor").entry(4)?;
                Some((class.as_raw(), s.size))
            }
            _ => None,
        };
        let sig = match fixed {
            // One call shape of a variadic function: default promotions
            // apply to the variadic part, and %al gets the vector count.
            Some(fixed) if fixed <= param_types.len() => {
                let varargs = param_types.split_off(fixed);
                Signature::variadic(param_types, varargs, ret_type)
            }
            _ => Signature::new(param_types, ret_type),
        };
        let labels = labels.dup();
        labels.freeze();
        Ok(AttachSignature { sig, ref_classes, ret_struct, ffi_long, labels: labels.as_raw(), options })
    }
}

impl AttachSignature {
    /// The number of parameters.
    pub(crate) fn arity(&self) -> usize {
        self.sig.params.len()
    }

    /// Whether the function behaves as the ffi gem's (FFI_COMPATIBLE).
    pub(crate) fn ffi_compatible(&self) -> bool {
        self.options & FFI_COMPATIBLE != 0
    }
}

/// `attach_function(module, method_name, address, c_name, signature)`:
/// defines `method_name` on `module` as a singleton method and a public
/// instance method (what the ffi gem's Function#attach does) whose body is
/// the stub for the C function at `address` with `signature` (an
/// `AttachSignature`). Returns `[stub address, bytes emitted]`.
fn attach_function(
    ruby: &Ruby,
    module: Value,
    method_name: String,
    address: usize,
    c_name: String,
    signature: Obj<AttachSignature>,
) -> Result<(usize, usize), Error> {
    let stub = owned_stub(ruby, module, &method_name, address, &c_name, signature)?;
    stub.define(ruby, module)?;
    Ok((stub.address, stub.len))
}

/// A stub `module` owns (defined or not): its cfunc address and arity, the
/// bytes installed, and its info (the method name).
pub(crate) struct Stub {
    pub address: usize,
    pub len: usize,
    pub arity: i32,
    info: *const StubInfo,
}

impl Stub {
    /// Defines the stub's name on `module` (which owns it) as a singleton
    /// and a public instance method whose body is the stub.
    pub(crate) fn define(&self, ruby: &Ruby, module: Value) -> Result<(), Error> {
        // SAFETY: the info lives as long as its owner, which the module
        // holds, and the module is alive while its attach runs.
        define(ruby, module, unsafe { &(*self.info).name }, self.address, self.arity)
    }
}

/// The stub `module` owns for `method_name` calling `address` with
/// `signature`, defining nothing: the one it has for the same function,
/// signature, conversions and labels (nothing emitted, nothing kept), else
/// a new one. (The Ruby layer's converting methods call it directly, see
/// `ruby::function::param_conversions`.)
pub(crate) fn owned_stub(
    ruby: &Ruby,
    module: Value,
    method_name: &str,
    address: usize,
    c_name: &str,
    signature: Obj<AttachSignature>,
) -> Result<Stub, Error> {
    if address == 0 {
        return Err(Error::new(ruby.exception_arg_error(), "cannot attach a NULL function address"));
    }
    let owner = StubOwner::of(ruby, module)?;
    if let Some(stub) = find_stub(owner, method_name, address, &signature) {
        return Ok(stub);
    }
    let AttachSignature { sig, ref_classes, ret_struct, ffi_long, labels, options } = &*signature;
    let (sig, ret_struct) = (sig.clone(), *ret_struct);
    // ffi-compatible mode: the argv form, so arity errors are the stub's
    // (worded like the ffi gem's) and the method's arity is -1 as in ffi.
    let (blocking, ffi_mode) = (options & BLOCKING != 0, options & FFI_COMPATIBLE != 0);
    let struct_sizes = sig.params.iter().map(|t| if let CType::Struct(s) = t { s.size } else { 0 }).collect();
    // The labels are held by `signature` (an argument, on the stack the GC
    // scans) until the owner marks them.
    let ref_classes = ref_classes.clone().into_boxed_slice();
    let info = Box::into_raw(Box::new(StubInfo {
        ref_classes: ref_classes.as_ptr(),
        ref_classes_owned: ref_classes,
        name: method_name.to_owned(),
        // Formatted only when a message needs them.
        param_labels: *labels,
        arity: sig.params.len(),
        struct_sizes,
        ret_struct,
        ffi_messages: ffi_mode,
        ffi_long: ffi_long.clone(),
        enums: std::sync::atomic::AtomicUsize::new(0),
    }));
    let spec = StubSpec {
        signature: &sig,
        flavour: Flavour { blocking, ffi_compatible: ffi_mode },
        function: address,
        c_name: c_name.to_owned(),
        info,
    };
    let compiled = match jit::compile(&spec) {
        Ok(compiled) => compiled,
        Err(e) => {
            // SAFETY: made above by Box::into_raw and never handed out.
            let name = unsafe { Box::from_raw(info) }.name;
            return Err(compile_error(ruby, &name, e));
        }
    };
    let jit::Compiled { address: stub, len, class, arity } = compiled;
    // Owned before any method exists: defining one may run the GC.
    owner.add(OwnedStub::new(stub, len, class, info, address, sig, blocking, arity));
    std::hint::black_box(signature);
    Ok(Stub { address: stub, len, arity, info })
}

/// The stub `owner` has for `name` with the same function, signature,
/// conversions and labels, if any.
pub(crate) fn find_stub(owner: &StubOwner, name: &str, address: usize, signature: &AttachSignature) -> Option<Stub> {
    let AttachSignature { sig, ref_classes, ret_struct, ffi_long, labels, options } = signature;
    let (blocking, ffi_mode) = (options & BLOCKING != 0, options & FFI_COMPATIBLE != 0);
    let same = |s: &OwnedStub| {
        s.function == address
            && s.blocking == blocking
            && s.signature == *sig
            // SAFETY: alive with its owner.
            && unsafe { &*s.info }.same_conversions(ref_classes, *ret_struct, ffi_mode, ffi_long)
    };
    owner.find(name, same).into_iter().find_map(|(address, len, arity, old_labels, info)| {
        // SAFETY: compares two live Arrays (Symbols, Strings, type objects).
        let equal = unsafe { rb_sys::rb_equal(old_labels, *labels) } == rb_sys::Qtrue as rb_sys::VALUE;
        equal.then_some(Stub { address, len, arity, info })
    })
}

/// A compile error as the Ruby exception for it.
fn compile_error(ruby: &Ruby, method_name: &str, e: EmitError) -> Error {
    let class = match e {
        EmitError::Plan(_) => ruby.exception_arg_error(),
        // No executable memory is a property of the platform, like a missing
        // code generator: NotImplementedError, naming the cause.
        EmitError::UnsupportedArch(_) | EmitError::Unsupported(_) | EmitError::ExecutableMemory(_) => ruby.exception_not_imp_error(),
        EmitError::Assembler(_) => ruby.exception_runtime_error(),
    };
    Error::new(class, format!("{method_name}: {e}"))
}

/// Defines `name` on `module` as a singleton method and a public instance
/// method whose body is the stub at `stub`.
fn define(ruby: &Ruby, module: Value, name: &str, stub: usize, arity: i32) -> Result<(), Error> {
    let name = CString::new(name).map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    // rb_define_method raises FrozenError on a frozen module: raised here
    // instead, through magnus (no longjmp over this frame).
    // SAFETY: a flag read of a live object.
    if unsafe { rb_sys::rb_obj_frozen_p(module.as_raw()) } != rb_sys::Qfalse as rb_sys::VALUE {
        // SAFETY: the class of a live object.
        let class = unsafe { Value::from_raw(rb_sys::rb_obj_class(module.as_raw())) };
        return Err(Error::new(ruby.exception_frozen_error(), format!("can't modify frozen {}: {}", class.inspect(), module.inspect())));
    }
    // SAFETY: `stub` is the address of complete machine code in the arena,
    // with the cfunc signature `arity` announces, owned by `module` (so not
    // freed while a method of it can run).
    unsafe {
        let func: unsafe extern "C" fn() -> rb_sys::VALUE = std::mem::transmute(stub);
        // Callable from any Ractor, as the ffi gem 1.16+'s functions: the
        // runtime the stub calls is Ractor-safe (see ruby::init). Defined
        // with the flag set, whoever set it last.
        rb_sys::rb_ext_ractor_safe(true);
        rb_sys::rb_define_singleton_method(module.as_raw(), name.as_ptr(), Some(func), arity);
        rb_sys::rb_define_method(module.as_raw(), name.as_ptr(), Some(func), arity);
    }
    Ok(())
}

/// `stub_enums(stub, enums)`: integer parameters of the stub at `stub` (an
/// address attach_function returned) accept the Symbols of `enums` (the
/// Library's enums' Symbol => value Hash), as the ffi gem's functions do. False when
/// `stub` is not a stub.
fn stub_enums(stub: usize, enums: RHash) -> bool {
    let Some(info) = jit::info_of(stub) else { return false };
    // SAFETY: the StubInfo of that stub, alive (the JIT drops the records
    // of reclaimed stubs); its owner marks `enums` from now on (the module
    // whose Library passes it keeps it anyway).
    unsafe { (*info).enums.store(enums.as_raw() as usize, Ordering::Release) };
    true
}

/// How many stubs `module` owns (for tests).
fn owned_stubs(ruby: &Ruby, module: Value) -> Result<usize, Error> {
    Ok(StubOwner::of(ruby, module)?.count())
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let native = module.define_module("Native")?;
    native.define_singleton_method("attach_function", function!(attach_function, 5))?;
    let signature = native.define_class("Signature", ruby.class_object())?;
    signature.undef_default_alloc_func();
    signature.define_singleton_method("new", function!(AttachSignature::new, 5))?;
    native.define_singleton_method("disassemble", function!(jit::disassemble, 1))?;
    native.define_singleton_method("stub_enums", function!(stub_enums, 2))?;
    native.define_singleton_method("errno", function!(runtime::errno::saved_errno, 0))?;
    native.define_singleton_method("errno=", function!(runtime::errno::set_saved_errno, 1))?;
    native.define_singleton_method("arena_stats", function!(jit::arena_stats, 0))?;
    native.define_singleton_method("owned_stubs", function!(owned_stubs, 1))?;
    native.define_singleton_method("owned_stub_total", function!(stub_lifetime::owned_total, 0))?;
    let owner_class = native.define_class("StubOwner", ruby.class_object())?;
    owner_class.undef_default_alloc_func();
    native.const_set("BLOCKING", BLOCKING)?;
    native.const_set("FFI_COMPATIBLE", FFI_COMPATIBLE)?;
    native.define_singleton_method("long_double_unpack", function!(runtime::long_double::unpack, 1))?;
    native.define_singleton_method("long_double_pack", function!(runtime::long_double::pack, 1))?;
    native.const_set("ARCH", std::env::consts::ARCH)?;
    native.const_set("C_TYPES", c_types(ruby)?)?;
    Ok(())
}

/// The C type table (`types::TYPE_NAMES`) for lib/fiddle_jit/types.rb: a
/// frozen Hash `name => [canonical name, size, alignment]` (Symbols and
/// Integers, frozen: Ractor-shareable). Static Symbols (interned, as a
/// literal `:int` is), not dynamic ones: those would be what every later
/// `:int` in Ruby code is, a heap object rather than an immediate.
fn c_types(ruby: &Ruby) -> Result<RHash, Error> {
    let table = ruby.hash_new();
    for t in NamedType::all() {
        let row = ruby.ary_new_from_values(&[
            ruby.sym_new(t.canonical).as_value(),
            ruby.integer_from_u64(t.size as u64).as_value(),
            ruby.integer_from_u64(t.align as u64).as_value(),
        ]);
        row.freeze();
        table.aset(ruby.sym_new(t.name), row)?;
    }
    table.freeze();
    Ok(table)
}
