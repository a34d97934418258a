//! `FiddleJit::Native.attach_function`: plan, emit, install, define.

use crate::abi::{self, CfuncForm};
use crate::backend::{self, EmitError, RuntimeTargets, StubRequest, Thunks};
use crate::emit::arena::CodeArena;
use crate::runtime::{self, StubInfo};
use crate::ruby::stub_lifetime::{self, OwnedStub, StubOwner};
use crate::types::{CType, NamedType, Signature, StructType};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::{DataTypeFunctions, Obj};
use magnus::{function, prelude::*, Error, RArray, RHash, RModule, RString, Ruby, TypedData, Value};
use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};

/// The process's executable memory and the thunks in it, created on the
/// first attach.
static JIT: Mutex<Option<Jit>> = Mutex::new(None);
static TARGETS: OnceLock<RuntimeTargets> = OnceLock::new();

struct Jit {
    arena: CodeArena,
    thunks: Thunks,
    /// Every installed stub, for disassembly.
    stubs: Vec<StubRecord>,
    /// One emitted stub per signature and blocking/ffi-mode flags (index
    /// `options & (BLOCKING | FFI_COMPATIBLE)`), with its cfunc form, retargeted (two
    /// literal-pool entries patched) for later functions of the same
    /// signature: no planning, no assembling.
    /// Each template's index in insertion order is the arena code class of
    /// its stubs (they differ only in their literal pools).
    templates: std::collections::HashMap<Signature, [Option<Template>; 4]>,
    template_count: u32,
    perf_map: Option<std::fs::File>,
}

struct Template {
    stub: backend::EmittedStub,
    form: CfuncForm,
    /// Arena code class: stubs retargeted from this template.
    class: u32,
}

struct StubRecord {
    name: String,
    address: usize,
    len: usize,
    code_len: usize,
    /// The C function (address, symbol name) and the stub's info, for
    /// annotations.
    function: (usize, String),
    info: usize,
}

/// `FIDDLE_JIT_PERF_MAP=1`: append `START SIZE name` lines to
/// /tmp/perf-<pid>.map, the format `perf report` reads for JIT code.
fn open_perf_map() -> Option<std::fs::File> {
    if std::env::var("FIDDLE_JIT_PERF_MAP").map_or(true, |v| v.is_empty() || v == "0") {
        return None;
    }
    let path = format!("/tmp/perf-{}.map", std::process::id());
    std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
}

impl Jit {
    fn record(&mut self, record: StubRecord) {
        if let Some(map) = self.perf_map.as_mut() {
            use std::io::Write;
            let _ = writeln!(map, "{:x} {:x} fiddle_jit:{}", record.address, record.len, record.name);
        }
        self.stubs.push(record);
    }
}

const THUNK_NAMES: [&str; 10] = [
    "arg_int", "arg_uint", "arg_long_long", "arg_ulong_long", "arg_double", "arg_bool", "arg_pointer", "arg_cstr", "arg_struct",
    "arg_long_double",
];

fn thunk_addresses(t: &Thunks) -> [usize; 10] {
    [
        t.arg_int, t.arg_uint, t.arg_long_long, t.arg_ulong_long, t.arg_double, t.arg_bool, t.arg_pointer, t.arg_cstr, t.arg_struct,
        t.arg_long_double,
    ]
}

/// Names for the addresses stubs refer to.
fn runtime_symbols(targets: &RuntimeTargets, thunks: &Thunks) -> Vec<(u64, String)> {
    let mut names: Vec<(u64, String)> = thunk_addresses(thunks)
        .iter()
        .zip(THUNK_NAMES)
        .map(|(a, n)| (*a as u64, format!("fiddle_jit thunk {n}")))
        .collect();
    for (a, n) in [
        (targets.arity_error, "fiddle_jit arity_error"),
        (targets.ret_pointer, "fiddle_jit ret_pointer"),
        (targets.ll2inum, "rb_ll2inum"),
        (targets.ull2inum, "rb_ull2inum"),
        (targets.float_new_in_heap, "rb_float_new_in_heap"),
        (targets.str_new_cstr, "rb_str_new_cstr"),
        (targets.call_without_gvl, "rb_thread_call_without_gvl"),
        (targets.ret_struct, "fiddle_jit ret_struct"),
        (targets.ret_long_double, "fiddle_jit ret_long_double"),
        (targets.pointer_data_type, "FiddleJit::Pointer data type"),
    ] {
        names.push((a as u64, n.to_string()));
    }
    names
}

/// The JIT, after giving the arena back the code of stubs whose module was
/// collected (and forgetting their disassembly records). Every user of the
/// JIT goes through here, so a record never outlives its stub's info.
fn lock_jit() -> std::sync::MutexGuard<'static, Option<Jit>> {
    let mut guard = JIT.lock().unwrap_or_else(|p| p.into_inner());
    let reclaimed = stub_lifetime::take_reclaimed();
    if let (Some(jit), false) = (guard.as_mut(), reclaimed.is_empty()) {
        let gone: std::collections::HashSet<usize> = reclaimed.iter().map(|r| r.0).collect();
        jit.stubs.retain(|r| !gone.contains(&r.address));
        for (address, len, class) in reclaimed {
            jit.arena.free(address, len, class);
        }
    }
    guard
}

/// Installs other position-independent code (callback trampolines) in the
/// same executable arena as the stubs.
pub(crate) fn install_code(code: &[u8]) -> Result<usize, String> {
    with_jit(|jit| jit.arena.install(code).map_err(|e| EmitError::ExecutableMemory(crate::emit::arena::describe_map_error(&e))))
        .map_err(|e| e.to_string())
}

fn with_jit<T>(f: impl FnOnce(&mut Jit) -> Result<T, EmitError>) -> Result<T, EmitError> {
    let mut guard = lock_jit();
    if guard.is_none() {
        let mut arena = CodeArena::new();
        let thunks = backend::install_thunks(&mut arena, TARGETS.get_or_init(runtime::targets))?;
        let mut jit =
            Jit { arena, thunks, stubs: Vec::new(), templates: Default::default(), template_count: 0, perf_map: open_perf_map() };
        if let Some(map) = jit.perf_map.as_mut() {
            use std::io::Write;
            for (address, name) in thunk_addresses(&thunks).iter().zip(THUNK_NAMES) {
                let _ = writeln!(map, "{address:x} 100 fiddle_jit:thunk_{name}");
            }
        }
        *guard = Some(jit);
    }
    f(guard.as_mut().expect("initialized above"))
}

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
        return Ok(CType::Pointer); // ["pointer", StructClass]: see `ref_class`
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
    let AttachSignature { sig, ref_classes, ret_struct, ffi_long, labels, options } = &*signature;
    let (sig, ret_struct, options) = (sig.clone(), *ret_struct, *options);
    let blocking = options & BLOCKING != 0;
    let ffi_mode = options & FFI_COMPATIBLE != 0;
    let struct_sizes = sig.params.iter().map(|t| if let CType::Struct(s) = t { s.size } else { 0 }).collect();
    if address == 0 {
        return Err(Error::new(ruby.exception_arg_error(), "cannot attach a NULL function address"));
    }
    // ffi-compatible mode: the argv form, so arity errors are the stub's
    // (worded like the ffi gem's) and the method's arity is -1 as in ffi.
    let owner = StubOwner::of(ruby, module)?;
    // The same function, signature, conversions and labels under this
    // name: its stub again (nothing emitted, nothing kept).
    let same = |s: &OwnedStub| {
        s.function == address
            && s.blocking == blocking
            && s.signature == sig
            // SAFETY: alive with its owner.
            && unsafe { &*s.info }.same_conversions(ref_classes, ret_struct, ffi_mode, ffi_long)
    };
    for (stub, len, arity, old_labels) in owner.find(&method_name, same) {
        // SAFETY: compares two live Arrays (Symbols, Strings, type objects).
        if unsafe { rb_sys::rb_equal(old_labels, *labels) } == rb_sys::Qtrue as rb_sys::VALUE {
            define(ruby, module, &method_name, stub, arity)?;
            return Ok((stub, len));
        }
    }
    // The labels are held by `signature` (an argument, on the stack the GC
    // scans) until the owner marks them.
    let ref_classes = ref_classes.clone().into_boxed_slice();
    let info = Box::into_raw(Box::new(StubInfo {
        ref_classes: ref_classes.as_ptr(),
        ref_classes_owned: ref_classes,
        name: method_name,
        // Formatted only when a message needs them.
        param_labels: *labels,
        arity: sig.params.len(),
        struct_sizes,
        ret_struct,
        ffi_messages: ffi_mode,
        ffi_long: ffi_long.clone(),
        enums: std::sync::atomic::AtomicUsize::new(0),
    }));
    // SAFETY: just made; nothing else refers to it yet.
    let method_name = unsafe { &(*info).name };
    let targets = TARGETS.get_or_init(runtime::targets);
    let flags = options & (BLOCKING | FFI_COMPATIBLE);
    let emitted = with_jit(|jit| {
        let info_address = info as usize;
        let cached = jit.templates.get(&sig).and_then(|t| t[flags].as_ref());
        let (emitted, form, class) = match cached {
            Some(t) => (t.stub.retarget(address, info_address), t.form, t.class),
            None => {
                let plan = abi::plan_stub_in_form(&sig, ffi_mode).map_err(|e| EmitError::Plan(e.to_string()))?;
                let req = StubRequest { plan: &plan, function: address, info: info_address, targets, thunks: &jit.thunks, blocking };
                let stub = backend::emit_stub(&req)?;
                let class = jit.template_count;
                jit.template_count += 1;
                jit.templates.entry(sig.clone()).or_default()[flags] = Some(Template { stub: stub.clone(), form: plan.form, class });
                (stub, plan.form, class)
            }
        };
        let stub = jit
            .arena
            .install_reusable(&emitted.code, class)
            .map_err(|e| EmitError::ExecutableMemory(crate::emit::arena::describe_map_error(&e)))?;
        jit.record(StubRecord {
            name: method_name.clone(),
            address: stub,
            len: emitted.code.len(),
            code_len: emitted.code_len,
            function: (address, c_name),
            info: info_address,
        });
        Ok((stub, emitted.code.len(), form, class))
    })
    .map_err(|e| match e {
        EmitError::Plan(_) => Error::new(ruby.exception_arg_error(), format!("{method_name}: {e}")),
        // No executable memory is a property of the platform, like a missing
        // code generator: NotImplementedError, naming the cause.
        EmitError::UnsupportedArch(_) | EmitError::Unsupported(_) | EmitError::ExecutableMemory(_) => {
            Error::new(ruby.exception_not_imp_error(), format!("{method_name}: {e}"))
        }
        EmitError::Assembler(_) => Error::new(ruby.exception_runtime_error(), format!("{method_name}: {e}")),
    });
    let (stub, code_len, form, class) = match emitted {
        Ok(done) => done,
        Err(e) => {
            // SAFETY: made above by Box::into_raw and never handed out.
            drop(unsafe { Box::from_raw(info) });
            return Err(e);
        }
    };
    let arity = match form {
        CfuncForm::Fixed(n) => n as i32,
        CfuncForm::Argv(_) => -1,
    };
    // Owned before the methods exist: defining them may run the GC.
    owner.add(OwnedStub::new(stub, code_len, class, info, address, sig, blocking, arity));
    std::hint::black_box(signature);
    // SAFETY: the info lives as long as its owner, which `module` holds.
    define(ruby, module, unsafe { &(*info).name }, stub, arity)?;
    Ok((stub, code_len))
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

/// Assembly of the stub installed at `stub` (an address attach_function
/// returned), or nil.
fn disassemble(stub: usize) -> Option<String> {
    let jit = lock_jit();
    let record = jit.as_ref()?.stubs.iter().find(|r| r.address == stub)?;
    // SAFETY: the record describes installed code, mapped for the life of
    // the process and never written again.
    let code = unsafe { std::slice::from_raw_parts(record.address as *const u8, record.len) };
    let header = format!("; fiddle_jit stub for {} ({} bytes: {} code + {} literal pool)\n", record.name, record.len, record.code_len, record.len - record.code_len);
    let mut symbols = runtime_symbols(TARGETS.get()?, &jit.as_ref()?.thunks);
    symbols.push((record.function.0 as u64, record.function.1.clone()));
    symbols.push((record.info as u64, format!("info for {}", record.name)));
    Some(header + &backend::disasm::disassemble(code, record.code_len, record.address as u64, &symbols))
}

/// `stub_enums(stub, enums)`: integer parameters of the stub at `stub` (an
/// address attach_function returned) accept the Symbols of `enums` (the
/// Library's enums' Symbol => value Hash), as the ffi gem's functions do. False when
/// `stub` is not a stub.
fn stub_enums(stub: usize, enums: RHash) -> bool {
    let jit = lock_jit();
    let Some(record) = jit.as_ref().and_then(|j| j.stubs.iter().rev().find(|r| r.address == stub)) else { return false };
    // SAFETY: `record.info` is the StubInfo of that stub, alive (records of
    // reclaimed stubs are dropped by lock_jit); its owner marks `enums`
    // from now on (the module whose Library passes it keeps it anyway).
    unsafe { (*(record.info as *const StubInfo)).enums.store(enums.as_raw() as usize, Ordering::Release) };
    true
}

/// `[code bytes, reserved bytes, writable bytes]` of the executable arena
/// (after giving back the code of collected modules' stubs).
fn arena_stats() -> (usize, usize, usize) {
    let jit = lock_jit();
    jit.as_ref().map_or((0, 0, 0), |j| (j.arena.code_bytes(), j.arena.reserved_bytes(), j.arena.writable_bytes()))
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
    native.define_singleton_method("disassemble", function!(disassemble, 1))?;
    native.define_singleton_method("stub_enums", function!(stub_enums, 2))?;
    native.define_singleton_method("errno", function!(runtime::errno::saved_errno, 0))?;
    native.define_singleton_method("errno=", function!(runtime::errno::set_saved_errno, 1))?;
    native.define_singleton_method("arena_stats", function!(arena_stats, 0))?;
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
/// Integers, frozen: Ractor-shareable).
fn c_types(ruby: &Ruby) -> Result<RHash, Error> {
    let table = ruby.hash_new();
    for t in NamedType::all() {
        let row = ruby.ary_new_from_values(&[
            ruby.to_symbol(t.canonical).as_value(),
            ruby.integer_from_u64(t.size as u64).as_value(),
            ruby.integer_from_u64(t.align as u64).as_value(),
        ]);
        row.freeze();
        table.aset(ruby.to_symbol(t.name), row)?;
    }
    table.freeze();
    Ok(table)
}
