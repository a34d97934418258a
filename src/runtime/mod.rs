//! The `extern "C"` slow paths stubs call when the inline fast path does not
//! apply. Each is documented with its register contract (SysV: arguments in
//! rdi, rsi, rdx; result in rax or xmm0). A helper either returns a native
//! value or raises a Ruby exception (a longjmp through this frame: every
//! helper keeps its Rust values in an inner function so nothing with a
//! destructor is alive when `resume_error` runs).
//!
//! Conversions use the same CRuby functions the ffi gem uses (NUM2INT,
//! NUM2UINT, NUM2LL, NUM2ULL, NUM2DBL, StringValueCStr), so values and
//! exception classes match it; TypeError/RangeError/ArgumentError messages
//! get the function name and argument position prepended.

pub mod errno;
pub mod host;
pub mod objects;
pub mod jit;
pub mod jump;
pub mod long_double;

use host::host;
use magnus::rb_sys::{protect, resume_error, AsRawValue, FromRawValue};
use magnus::value::ReprValue;
use magnus::{Error, ExceptionClass, RArray, RString, Ruby, Value};
use rb_sys::VALUE;
use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Per-function data a stub hands to its slow paths. Owned, with the
/// stub, by the module the stub is attached to (`ruby::stub_lifetime`),
/// whose StubOwner marks (and so pins) the VALUEs below.
#[repr(C)]
pub struct StubInfo {
    /// One entry per parameter: the Struct class a `Struct.by_ref`
    /// parameter requires, else 0 (points into `ref_classes_owned`).
    /// The stubs' inline Struct check reads it at offset 0: keep first.
    pub ref_classes: *const VALUE,
    pub ref_classes_owned: Box<[VALUE]>,
    /// The Ruby method name (what users see in messages).
    pub name: String,
    /// The parameter types as written by the user (a frozen Array), for
    /// messages.
    pub param_labels: VALUE,
    pub arity: usize,
    /// Byte size of each struct-by-value parameter (0 for the others).
    pub struct_sizes: Vec<usize>,
    /// A struct-by-value return: its Ruby class and size.
    pub ret_struct: Option<(VALUE, usize)>,
    /// Attached under `require "fiddle_jit/ffi"`: conversion and arity
    /// messages are exactly the ffi gem's (no "fn: argument N (:type): ").
    pub ffi_messages: bool,
    /// Per parameter: the ffi gem's type is `long`/`ulong` (also size_t,
    /// off_t...), which it converts with NUM2LONG/NUM2ULONG rather than
    /// NUM2LL/NUM2ULL: the same values on LP64, other error messages.
    pub ffi_long: Vec<bool>,
    /// The defining Library's enums (their Symbol => value Hash), or 0: a
    /// Symbol given for an integer parameter is looked up there, as the
    /// ffi gem does. Set once, after the stub is installed (Native.stub_enums).
    pub enums: AtomicUsize,
}

/// How the user wrote a parameter type (a Symbol, usually), for messages.
fn label_of(value: Value) -> String {
    if let Some(sym) = magnus::Symbol::from_value(value) {
        if let Ok(name) = sym.name() {
            return name.into_owned();
        }
    }
    if let Some(s) = RString::from_value(value) {
        if let Ok(s) = s.to_string() {
            return s;
        }
    }
    value.to_string()
}

impl StubInfo {
    /// Do two infos convert and report alike (all but the name, labels
    /// and enums, which the stub's owner compares or sets separately)?
    pub fn same_conversions(&self, ref_classes: &[VALUE], ret_struct: Option<(VALUE, usize)>, ffi_messages: bool, ffi_long: &[bool]) -> bool {
        *self.ref_classes_owned == *ref_classes && self.ret_struct == ret_struct && self.ffi_messages == ffi_messages && self.ffi_long == ffi_long
    }

    /// The Struct class parameter `index` requires (`Struct.by_ref`), or 0.
    fn ref_class(&self, index: u32) -> VALUE {
        if (index as usize) < self.arity {
            // SAFETY: `ref_classes` has `arity` entries (built with the info).
            unsafe { *self.ref_classes.add(index as usize) }
        } else {
            0
        }
    }

    fn describe(&self, index: u32) -> String {
        // SAFETY: an Array pinned by the stub's owner (see the field).
        let labels = RArray::from_value(unsafe { Value::from_raw(self.param_labels) });
        let label = labels.and_then(|a| a.entry::<Value>(index as isize).ok()).map_or_else(|| "?".into(), label_of);
        format!("{}: argument {} (:{})", self.name, index + 1, label)
    }

    /// `message`, with the function and argument in front unless this
    /// function was attached in ffi-compatible mode.
    fn message(&self, index: u32, message: &str) -> String {
        if self.ffi_messages {
            message.to_string()
        } else {
            format!("{}: {}", self.describe(index), message)
        }
    }

    fn is_ffi_long(&self, index: u32) -> bool {
        self.ffi_long.get(index as usize).copied().unwrap_or(false)
    }
}

/// Raises `result`'s error, after dropping everything else.
fn finish<T>(result: Result<T, Error>) -> T {
    match result {
        Ok(v) => v,
        // SAFETY: called as the last step of an extern "C" helper entered
        // from a stub with the GVL held; the Result's payload was moved out.
        Err(e) => unsafe { resume_error(e) },
    }
}

/// Runs a raw CRuby conversion under rb_protect; conversion errors (the
/// classes CRuby raises for bad numbers and strings) are re-raised with the
/// function name and argument position in front.
fn converting<F: FnOnce() -> VALUE>(info: &StubInfo, index: u32, f: F) -> Result<VALUE, Error> {
    protect(f).map_err(|e| annotate(info, index, e))
}

fn annotate(info: &StubInfo, index: u32, e: Error) -> Error {
    let ruby = Ruby::get().expect("slow paths run on a Ruby thread");
    if info.ffi_messages {
        return e;
    }
    let Some(exc) = e.value() else { return e };
    let class = exc.class();
    let rewrap = [ruby.exception_type_error(), ruby.exception_range_error(), ruby.exception_arg_error(), ruby.exception_float_domain_error()]
        .iter()
        .any(|c| class.as_raw() == c.as_raw());
    if !rewrap {
        return e;
    }
    let message: String = exc.funcall("message", ()).unwrap_or_default();
    let class = ExceptionClass::from_value(class.as_value()).expect("an exception's class");
    Error::new(class, format!("{}: {}", info.describe(index), message))
}

/// The StubInfo a stub passes its slow paths.
///
/// SAFETY: `info` is the StubInfo the stub was built with: leaked when it
/// was attached and dropped only with the stub's owner, after the stub can
/// no longer run, so alive while the helper does.
unsafe fn info<'a>(info: *const StubInfo) -> &'a StubInfo {
    &*info
}

/// What a numeric parameter converts: a Symbol becomes its value in the
/// Library's enums when the function has them (their Symbol => value Hash;
/// nil when unknown, exactly the ffi gem's lookup); anything else is itself.
///
/// SAFETY: `value` is a live VALUE; `info.enums` is 0 or a Hash pinned by the stub's owner.
unsafe fn enum_mapped(info: &StubInfo, value: VALUE) -> VALUE {
    let enums = info.enums.load(Ordering::Acquire);
    if enums == 0 || magnus::Symbol::from_value(Value::from_raw(value)).is_none() {
        return value;
    }
    rb_sys::rb_hash_lookup2(enums as VALUE, value, rb_sys::Qnil as VALUE)
}

/// CRuby's numeric conversions (NUM2INT ... NUM2DBL), as the ffi gem picks
/// them per type.
#[derive(Clone, Copy)]
pub enum Num {
    Int,
    Uint,
    Long,
    Ulong,
    LongLong,
    UlongLong,
    /// The double's bits.
    Double,
}

/// `num`'s conversion of `v`: the result's bits. May raise.
///
/// SAFETY: `v` is a live VALUE; the caller catches a raise (rb_protect).
unsafe fn num_raw(num: Num, v: VALUE) -> VALUE {
    match num {
        Num::Int => rb_sys::rb_num2int(v) as VALUE,
        Num::Uint => rb_sys::rb_num2uint(v) as VALUE,
        Num::Long => rb_sys::rb_num2long(v) as VALUE,
        Num::Ulong => rb_sys::rb_num2ulong(v) as VALUE,
        Num::LongLong => rb_sys::rb_num2ll(v) as VALUE,
        Num::UlongLong => rb_sys::rb_num2ull(v) as VALUE,
        Num::Double => rb_sys::rb_num2dbl(v).to_bits() as VALUE,
    }
}

/// `num`'s conversion of `v` under rb_protect: the result's bits, or the
/// exception it raised.
pub fn convert_num(num: Num, v: Value) -> Result<VALUE, Error> {
    // SAFETY: `v` is a live VALUE (a Value handle); rb_protect catches a raise.
    protect(|| unsafe { num_raw(num, v.as_raw()) })
}

/// An integer parameter: `plain`'s conversion, or `ffi_long`'s where the ffi
/// gem types the parameter as long (`StubInfo::is_ffi_long`), after the
/// enum lookup, under rb_protect (errors annotated, then raised). The
/// result's bits.
fn integer_arg(value: VALUE, info_ptr: *const StubInfo, index: u32, plain: Num, ffi_long: Num) -> VALUE {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`).
    let info = unsafe { info(info_ptr) };
    let num = if info.is_ffi_long(index) { ffi_long } else { plain };
    // SAFETY: `value` is a live VALUE from the stub's argument slots, the
    // enum Hash is pinned (see `enum_mapped`); rb_protect catches a raise.
    let r = converting(info, index, || unsafe { num_raw(num, enum_mapped(info, value)) });
    finish(r)
}

/// NUM2INT: int8/int16/int32 parameters. Returns the int in rax.
pub extern "C" fn arg_int(value: VALUE, info_ptr: *const StubInfo, index: u32) -> i64 {
    integer_arg(value, info_ptr, index, Num::Int, Num::Int) as i64
}

/// NUM2UINT: uint8/uint16/uint32 parameters (accepts INT_MIN..UINT_MAX).
pub extern "C" fn arg_uint(value: VALUE, info_ptr: *const StubInfo, index: u32) -> i64 {
    integer_arg(value, info_ptr, index, Num::Uint, Num::Uint) as i64
}

/// NUM2LL: int64/long parameters (NUM2LONG where the ffi gem uses it).
pub extern "C" fn arg_long_long(value: VALUE, info_ptr: *const StubInfo, index: u32) -> i64 {
    integer_arg(value, info_ptr, index, Num::LongLong, Num::Long) as i64
}

/// NUM2ULL: uint64/ulong parameters (NUM2ULONG where the ffi gem uses it).
pub extern "C" fn arg_ulong_long(value: VALUE, info_ptr: *const StubInfo, index: u32) -> u64 {
    integer_arg(value, info_ptr, index, Num::UlongLong, Num::Ulong) as u64
}

/// NUM2DBL: float/double parameters, after the enum lookup (the ffi gem
/// maps a Symbol through the Library's enums for these too). Returns the
/// double in xmm0.
pub extern "C" fn arg_double(value: VALUE, info_ptr: *const StubInfo, index: u32) -> f64 {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`).
    let info = unsafe { info(info_ptr) };
    // SAFETY: `value` is a live VALUE from its argument slots, the enum Hash
    // is pinned (see `enum_mapped`); rb_protect catches a raise.
    let r = converting(info, index, || unsafe { num_raw(Num::Double, enum_mapped(info, value)) });
    f64::from_bits(finish(r) as u64)
}

/// A :bool parameter got something other than true/false: TypeError, as
/// the ffi gem raises. Never returns.
pub extern "C" fn arg_bool(value: VALUE, info_ptr: *const StubInfo, index: u32) -> ! {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`).
    let e = bool_error(unsafe { info(info_ptr) }, index, value);
    // SAFETY: see `finish`.
    unsafe { resume_error(e) }
}

fn bool_error(info: &StubInfo, index: u32, value: VALUE) -> Error {
    let ruby = Ruby::get().expect("Ruby thread");
    // SAFETY: a live VALUE from the stub's argument slots.
    let value = unsafe { Value::from_raw(value) };
    if info.ffi_messages {
        // The ffi gem's message, class name left out as it does.
        return Error::new(ruby.exception_type_error(), "wrong argument type  (expected a boolean parameter)");
    }
    Error::new(
        ruby.exception_type_error(),
        format!("{}: wrong argument type {} (expected a boolean parameter)", info.describe(index), value.class()),
    )
}

/// StringValueCStr on `*slot` (which may be replaced by `to_str`'s result,
/// keeping it alive in the stub's frame slot). nil → NULL.
pub extern "C" fn arg_cstr(slot: *mut VALUE, info_ptr: *const StubInfo, index: u32) -> *const c_char {
    // SAFETY: `slot` points at the stub's keep-alive slot holding the VALUE.
    let value = unsafe { *slot };
    if value == rb_sys::Qnil as VALUE {
        return std::ptr::null();
    }
    if let Some(ptr) = plain_cstr(value) {
        return ptr;
    }
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`); `slot` as
    // above (StringValueCStr may store `to_str`'s result there); rb_protect
    // catches a raise.
    let r = converting(unsafe { info(info_ptr) }, index, || unsafe { rb_sys::rb_string_value_cstr(slot) as VALUE });
    finish(r) as *const c_char
}

/// The common case the stub leaves to us: a heap (or long embedded) String
/// in a one-byte-terminator encoding, NUL-terminated, without NUL inside —
/// its pointer without rb_protect. `None` sends it through StringValueCStr.
fn plain_cstr(value: VALUE) -> Option<*const c_char> {
    // SAFETY: `value` is a live VALUE; the RString accessors read its header.
    unsafe {
        if rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_STRING) {
            let encoding = rb_sys::rb_enc_get_index(value);
            if encoding > 2 {
                return None; // not ASCII-8BIT, UTF-8 or US-ASCII
            }
            let ptr = rb_sys::RSTRING_PTR(value);
            let len = rb_sys::RSTRING_LEN(value) as usize;
            if *ptr.add(len) == 0 && libc::memchr(ptr as *const _, 0, len).is_null() {
                return Some(ptr);
            }
        }
        None
    }
}

/// A :pointer parameter that is not nil or a plain Pointer: Pointer
/// subclasses, Functions (their code address), Strings (their bytes, like
/// the ffi gem), Structs, objects with `to_ptr`; anything else is an
/// ArgumentError, as in the ffi gem.
pub extern "C" fn arg_pointer(value: VALUE, info_ptr: *const StubInfo, index: u32) -> usize {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`); `value` a live
    // VALUE from its argument slots.
    let r = pointer_address(unsafe { info(info_ptr) }, index, unsafe { Value::from_raw(value) });
    finish(r)
}

/// `to_ptr`, interned once (interning the name costs more than the call).
static TO_PTR: magnus::value::LazyId = magnus::value::LazyId::new("to_ptr");

fn pointer_address(info: &StubInfo, index: u32, value: Value) -> Result<usize, Error> {
    let ruby = Ruby::get().expect("Ruby thread");
    if value.is_nil() {
        return Ok(0);
    }
    let class = info.ref_class(index);
    if class != 0 {
        return struct_ref_address(&ruby, info, index, value, class);
    }
    if let Some(p) = memory_address(value) {
        return Ok(p);
    }
    if let Some(s) = RString::from_value(value) {
        // SAFETY: the String is an argument of the running call, alive until it returns.
        return Ok(unsafe { rb_sys::rb_string_value_ptr(&mut s.as_raw()) } as usize);
    }
    if let Some(p) = (host().struct_address)(value) {
        return Ok(p);
    }
    // As the ffi gem: rb_respond_to, then the call; raw, not under
    // rb_protect (two per argument cost more than the rest of this path):
    // what `to_ptr` raises unwinds (longjmp) over this frame and
    // arg_pointer's, where nothing with a destructor is alive.
    let to_ptr = magnus::rb_sys::AsRawId::as_raw(magnus::value::IntoId::into_id_with(*TO_PTR, &ruby));
    // SAFETY: with the GVL (a stub's helper), `value` a live VALUE.
    if unsafe { rb_sys::rb_respond_to(value.as_raw(), to_ptr) } != 0 {
        // SAFETY: as above; no arguments.
        let converted = unsafe { Value::from_raw(rb_sys::rb_funcallv(value.as_raw(), to_ptr, 0, std::ptr::null())) };
        return memory_address(converted).ok_or_else(|| {
            Error::new(ruby.exception_arg_error(), info.message(index, "to_ptr returned an invalid pointer"))
        });
    }
    if info.ffi_messages {
        return Err(Error::new(ruby.exception_arg_error(), ":pointer argument is not a valid pointer"));
    }
    Err(Error::new(
        ruby.exception_arg_error(),
        format!("{}: :pointer argument is not a valid pointer (got {})", info.describe(index), value.class()),
    ))
}

/// The address of a Pointer (any subclass) or a Function, which is a
/// Pointer in the ffi gem: what it takes from its AbstractMemory (even after
/// a Function's `free`), without calling `to_ptr` (nor an override of it).
fn memory_address(value: Value) -> Option<usize> {
    (host().pointer_address)(value).or_else(|| (host().function_address)(value))
}

/// A `Struct.by_ref` parameter (not nil, not an instance of exactly the
/// class, which the stub takes inline): an instance of a subclass, or a
/// Pointer (which the ffi gem would refuse; the stub accepts Pointers inline
/// too); anything else is the ffi gem's TypeError.
fn struct_ref_address(ruby: &Ruby, info: &StubInfo, index: u32, value: Value, class: VALUE) -> Result<usize, Error> {
    // SAFETY: the class is pinned by the stub's owner while the stub can run.
    let class = unsafe { magnus::RClass::from_value(Value::from_raw(class)) }.expect("a Struct class");
    // Only an instance of the class (a subclass's too, as the ffi gem's
    // `@struct_class === value`): a Pointer is a TypeError there.
    if value.is_kind_of(class) {
        if let Some(p) = (host().struct_address)(value) {
            return Ok(p);
        }
    }
    Err(Error::new(
        ruby.exception_type_error(),
        info.message(index, &format!("wrong argument type {} (expected {})", value.class(), class)),
    ))
}

/// A struct-by-value parameter: the address of a Struct's (or Pointer's)
/// memory holding at least the struct's size; ArgumentError for other
/// values (as the ffi gem), TypeError for NULL and IndexError for too
/// little memory (the ffi gem would read from whatever it was given).
pub extern "C" fn arg_struct(value: VALUE, info_ptr: *const StubInfo, index: u32) -> usize {
    // SAFETY: as in `arg_pointer`.
    let r = struct_address(unsafe { info(info_ptr) }, index, unsafe { Value::from_raw(value) });
    finish(r)
}

fn struct_address(info: &StubInfo, index: u32, value: Value) -> Result<usize, Error> {
    let ruby = Ruby::get().expect("Ruby thread");
    let needed = info.struct_sizes.get(index as usize).copied().unwrap_or(0);
    let memory: Option<Value> = if (host().pointer_address)(value).is_some() {
        Some(value)
    } else if (host().struct_address)(value).is_some() {
        Some(value.funcall(*TO_PTR, ())?)
    } else {
        None
    };
    // nil is NULL (below); anything else is not memory: the ffi gem's ArgumentError.
    let Some(memory) = memory.or_else(|| value.is_nil().then_some(value)) else {
        return Err(Error::new(
            ruby.exception_arg_error(),
            info.message(index, &format!("wrong argument type {} (expected Struct)", value.class())),
        ));
    };
    let address = (host().pointer_address)(memory).unwrap_or(0);
    if address == 0 {
        return Err(Error::new(ruby.exception_type_error(), format!("{}: struct argument is NULL", info.describe(index))));
    }
    // A Pointer derived from NULL has no access (the ffi gem segfaults).
    (host().check_readable)(memory)?;
    let size: i64 = memory.funcall("size", ())?;
    if (size as u64) < needed as u64 {
        return Err(Error::new(
            ruby.exception_index_error(),
            format!("{}: struct argument has {size} bytes, needs {needed}", info.describe(index)),
        ));
    }
    Ok(address)
}

/// A struct-by-value return: a new instance of the struct class on a new
/// MemoryPointer holding a copy of the `size` bytes at `bytes` (the stub's
/// return buffer), made as the ffi gem makes it: `initialize(memory)`
/// through rb_class_new_instance, so a subclass's `initialize` gets the
/// memory (and one that does not call super gets lazily zeroed memory).
pub extern "C" fn ret_struct(info_ptr: *const StubInfo, bytes: *const u8) -> VALUE {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`).
    let r = new_struct(unsafe { info(info_ptr) }, bytes);
    finish(r).as_raw()
}

fn new_struct(info: &StubInfo, bytes: *const u8) -> Result<Value, Error> {
    let (class, size) = info.ret_struct.expect("stub returns a struct");
    let memory = (host().new_memory)(size)?;
    let address = (host().pointer_address)(memory).expect("a new MemoryPointer");
    // SAFETY: the new MemoryPointer owns `size` bytes, and the stub's
    // buffer holds `size` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes, address as *mut u8, size) };
    // SAFETY: the class is pinned by the stub's owner while the stub can run.
    let class = magnus::RClass::from_value(unsafe { Value::from_raw(class) }).expect("a struct class");
    magnus::Class::new_instance(class, (memory,))
}

/// The argv form got the wrong number of arguments. Never returns.
pub extern "C" fn arity_error(argc: c_int, info_ptr: *const StubInfo) -> ! {
    // SAFETY: `info_ptr` is the stub's StubInfo (see `info`).
    let e = arity_message(unsafe { info(info_ptr) }, argc);
    // SAFETY: see `finish`.
    unsafe { resume_error(e) }
}

fn arity_message(info: &StubInfo, argc: c_int) -> Error {
    let ruby = Ruby::get().expect("Ruby thread");
    if info.ffi_messages {
        return Error::new(ruby.exception_arg_error(), format!("wrong number of arguments ({argc} for {})", info.arity));
    }
    Error::new(
        ruby.exception_arg_error(),
        format!("wrong number of arguments (given {argc}, expected {}) calling {}", info.arity, info.name),
    )
}

/// A :pointer return: a new Pointer, or Pointer::NULL for NULL.
pub extern "C" fn ret_pointer(address: usize) -> VALUE {
    (host().new_pointer)(address).as_raw()
}

/// Every address a stub may call, for the emitter.
pub fn targets() -> crate::backend::RuntimeTargets {
    crate::backend::RuntimeTargets {
        arg_int: arg_int as *const () as usize,
        arg_uint: arg_uint as *const () as usize,
        arg_long_long: arg_long_long as *const () as usize,
        arg_ulong_long: arg_ulong_long as *const () as usize,
        arg_bool: arg_bool as *const () as usize,
        arg_double: arg_double as *const () as usize,
        arg_cstr: arg_cstr as *const () as usize,
        arg_pointer: arg_pointer as *const () as usize,
        arity_error: arity_error as *const () as usize,
        ret_pointer: ret_pointer as *const () as usize,
        ll2inum: rb_sys::rb_ll2inum as *const () as usize,
        ull2inum: rb_sys::rb_ull2inum as *const () as usize,
        float_new_in_heap: rb_sys::rb_float_new_in_heap as *const () as usize,
        str_new_cstr: rb_sys::rb_str_new_cstr as *const () as usize,
        pointer_data_type: host().pointer_data_type,
        struct_data_type: host().struct_data_type,
        errno_tp_offsets: errno::tp_offsets(),
        call_without_gvl: rb_sys::rb_thread_call_without_gvl as *const () as usize,
        arg_struct: arg_struct as *const () as usize,
        ret_struct: ret_struct as *const () as usize,
        arg_long_double: long_double::arg_long_double as *const () as usize,
        ret_long_double: long_double::ret_long_double as *const () as usize,
    }
}




pub mod callback;
