//! FiddleJit::Pointer: a native address, optionally bounded and owning its
//! memory (MemoryPointer, Buffer and slices share this data type). Stubs read
//! `address` inline (it is the first field of the wrapped struct; see
//! `lower::pointer_arg`), so the layout is `repr(C)` and must keep
//! `address` first (`Cell<usize>` is `repr(transparent)`).
//!
//! Every access goes through `Pointer::check`: NULL (or freed) memory raises
//! `FiddleJit::NullPointerError`, an access outside a sized pointer raises
//! `IndexError` with the ffi gem's message. Plain `Pointer.new(address)`
//! objects are unbounded (size `LONG_MAX`), as in the ffi gem.

use magnus::gc::Marker;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::{DataTypeFunctions, Obj};
use magnus::value::{Opaque, ReprValue};
use magnus::{function, method, prelude::*, Error, ExceptionClass, RArray, RModule, RString, Ruby, TryConvert, TypedData, Value};
use rb_sys::VALUE;
use crate::runtime::{convert_num, Num};
use crate::types::NamedType;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// A word of object data that frozen, Ractor-shared objects may have read
/// by several threads: a relaxed atomic (the same plain loads and stores as
/// a `Cell` on x86-64 and aarch64, and the same layout, which the stubs
/// rely on), so the data types can be RUBY_TYPED_FROZEN_SHAREABLE (`Sync`).
#[derive(Default)]
#[repr(transparent)]
pub(crate) struct Word(AtomicUsize);

impl Word {
    pub(crate) const fn new(v: usize) -> Word {
        Word(AtomicUsize::new(v))
    }
    #[inline]
    pub(crate) fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
    #[inline]
    pub(crate) fn set(&self, v: usize) {
        self.0.store(v, Relaxed)
    }
    #[inline]
    pub(crate) fn replace(&self, v: usize) -> usize {
        self.0.swap(v, Relaxed)
    }
}

/// A flag of object data (see `Word`).
#[derive(Default)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    const fn new(v: bool) -> Flag {
        Flag(AtomicBool::new(v))
    }
    #[inline]
    fn get(&self) -> bool {
        self.0.load(Relaxed)
    }
    #[inline]
    fn set(&self, v: bool) {
        self.0.store(v, Relaxed)
    }
}

/// Access flags of a Pointer (see `Word`).
struct Byte(AtomicU8);

impl Byte {
    const fn new(v: u8) -> Byte {
        Byte(AtomicU8::new(v))
    }
    #[inline]
    fn get(&self) -> u8 {
        self.0.load(Relaxed)
    }
    #[inline]
    fn set(&self, v: u8) {
        self.0.store(v, Relaxed)
    }
}

/// The size of an unbounded pointer (the ffi gem's LONG_MAX).
pub const UNBOUNDED: usize = i64::MAX as usize;

/// Access flags (the ffi gem's MEM_RD/MEM_WR): NULL has neither, and so has
/// every pointer derived from it (`NULL + 8`); `freeze` drops WRITE. Derived
/// pointers (`+`, `slice`, `Pointer.new(ptr)`, `order`) copy their source's.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

/// The Pointers derived from one Pointer (and from those, transitively):
/// the addresses of their live `Pointer` data. Freeing the memory (MemoryPointer#free,
/// AutoPointer#free, GC of an owning pointer) makes every member NULL, so a
/// slice of freed memory raises NullPointerError (and a stub passes NULL)
/// instead of reading freed memory. Members leave in their `Drop`; the set
/// lives as long as any member or the source does (Arc).
#[derive(Default)]
struct Family {
    members: Mutex<HashSet<usize>>,
}

/// Write-barrier protected (its only VALUE, `parent`, is set at creation or
/// through `runtime::objects::written`): long-lived Pointers age like
/// Ruby's own objects instead of being re-marked by every minor GC, and do
/// not count toward the unprotected objects whose growth forces a major GC.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Pointer", free_immediately, size, mark, frozen_shareable, wb_protected)]
#[repr(C)]
pub struct Pointer {
    /// Read inline by the stubs: keep first.
    address: Word,
    /// Size of the pointed-to type (`Pointer.new(type, address)`, `#[]`).
    type_size: Word,
    /// Accessible bytes from `address`; UNBOUNDED for plain pointers.
    size: Word,
    /// malloc'ed block this object owns (MemoryPointer, dup), or 0.
    owned: Word,
    owned_size: Word,
    /// Free `owned` when collected.
    autorelease: Flag,
    /// The object (VALUE) whose memory this points into (slice, `+`,
    /// Pointer.new(ptr)), kept alive by `mark`; 0 when none.
    parent: Word,
    /// Multi-byte scalars are stored byte-swapped (`order(:big)` on a
    /// little-endian host, the ffi gem's MEM_SWAP); inherited by `+`/`slice`.
    swap: Flag,
    /// READ | WRITE, as allowed (see READ).
    flags: Byte,
    /// The family this pointer belongs to (as a derived pointer) or heads
    /// (created when the first pointer is derived from it).
    family: OnceLock<Arc<Family>>,
}

impl Default for Pointer {
    fn default() -> Self {
        Pointer::raw(0, 1, UNBOUNDED)
    }
}

impl DataTypeFunctions for Pointer {
    fn mark(&self, marker: &Marker) {
        let parent = self.parent.get();
        if parent != 0 {
            // SAFETY: `parent` was a live VALUE when stored and is kept alive
            // (and pinned: rb_gc_mark) by this very mark function.
            marker.mark(unsafe { Value::from_raw(parent as VALUE) });
        }
    }
}

impl Drop for Pointer {
    fn drop(&mut self) {
        if self.autorelease.get() {
            self.release();
        }
        if let Some(family) = self.family.get() {
            let me = self as *const Pointer as usize;
            family.members.lock().unwrap_or_else(|p| p.into_inner()).remove(&me);
        }
    }
}

static NULL: OnceLock<Opaque<Value>> = OnceLock::new();
/// FiddleJit::MemoryPointer (a VALUE; classes are pinned: see init).
static MEMORY_POINTER_CLASS: OnceLock<usize> = OnceLock::new();
static NULL_POINTER_ERROR: OnceLock<Opaque<ExceptionClass>> = OnceLock::new();

fn null_pointer_error(ruby: &Ruby) -> ExceptionClass {
    NULL_POINTER_ERROR.get().map(|c| ruby.get_inner(*c)).unwrap_or_else(|| ruby.exception_runtime_error())
}

/// A String argument, without `to_str`: the ffi gem's Check_Type(str, T_STRING).
fn string_arg(ruby: &Ruby, v: Value) -> Result<RString, Error> {
    RString::from_value(v).ok_or_else(|| {
        Error::new(ruby.exception_type_error(), format!("wrong argument type {} (expected String)", v.class()))
    })
}

fn index_error(ruby: &Ruby, off: i64, len: i64) -> Error {
    Error::new(ruby.exception_index_error(), format!("Memory access offset={off} size={len} is out of bounds"))
}

// --- CRuby conversions (the ones the ffi gem's AbstractMemory uses) ---------

// Each has a Fixnum fast path (no rb_protect, which costs a setjmp) that
// gives exactly what the CRuby function would.

#[inline]
fn fixnum(v: Value) -> Option<i64> {
    let raw = v.as_raw();
    (raw & 1 == 1).then_some((raw as i64) >> 1)
}

fn num2long(v: Value) -> Result<i64, Error> {
    if let Some(n) = fixnum(v) {
        return Ok(n);
    }
    convert_num(Num::Long, v).map(|r| r as i64)
}
fn num2int(v: Value) -> Result<i32, Error> {
    if let Some(n) = fixnum(v).filter(|n| i32::try_from(*n).is_ok()) {
        return Ok(n as i32);
    }
    convert_num(Num::Int, v).map(|r| r as i32)
}
fn num2uint(v: Value) -> Result<u32, Error> {
    // NUM2UINT accepts INT_MIN..UINT_MAX.
    if let Some(n) = fixnum(v).filter(|n| (i32::MIN as i64..=u32::MAX as i64).contains(n)) {
        return Ok(n as u32);
    }
    convert_num(Num::Uint, v).map(|r| r as u32)
}
fn num2ll(v: Value) -> Result<i64, Error> {
    if let Some(n) = fixnum(v) {
        return Ok(n);
    }
    convert_num(Num::LongLong, v).map(|r| r as i64)
}
fn num2ull(v: Value) -> Result<u64, Error> {
    // NUM2ULL wraps negative Fixnums.
    if let Some(n) = fixnum(v) {
        return Ok(n as u64);
    }
    convert_num(Num::UlongLong, v).map(|r| r as u64)
}
fn num2dbl(v: Value) -> Result<f64, Error> {
    if let Some(n) = fixnum(v) {
        return Ok(n as f64);
    }
    if let Some(f) = magnus::Float::from_value(v) {
        return Ok(f.to_f64());
    }
    convert_num(Num::Double, v).map(|r| f64::from_bits(r as u64))
}

/// A C scalar stored in memory.
pub(crate) trait Scalar: Copy {
    fn to_value(self, ruby: &Ruby) -> Value;
    fn from_value(v: Value) -> Result<Self, Error>;
    /// The value as a VALUE without a Ruby handle (the raw fast paths).
    fn to_raw(self) -> VALUE;
    /// A Fixnum/flonum argument converted without raising, if possible.
    fn from_raw_fast(v: VALUE) -> Option<Self>;
    /// The value as byte-swapped memory holds it: bytes reversed for
    /// integers; floats and pointers unchanged, as in the ffi gem 1.15.
    fn swap_bytes(self) -> Self;
}

#[inline]
fn int_to_raw(n: i64) -> VALUE {
    if (i64::MIN >> 1..=i64::MAX >> 1).contains(&n) {
        ((n << 1) | 1) as VALUE
    } else {
        // SAFETY: allocates a Bignum; called with the GVL (a method body).
        unsafe { rb_sys::rb_ll2inum(n) }
    }
}

#[inline]
fn uint_to_raw(n: u64) -> VALUE {
    if n <= (i64::MAX >> 1) as u64 {
        ((n << 1) | 1) as VALUE
    } else {
        // SAFETY: allocates a Bignum; called with the GVL (a method body).
        unsafe { rb_sys::rb_ull2inum(n) }
    }
}

macro_rules! int_scalar {
    ($t:ty, $conv:ident, $wide:ty, $from:ident, $raw:ident, $lo:expr, $hi:expr) => {
        impl Scalar for $t {
            fn to_value(self, ruby: &Ruby) -> Value {
                ruby.$from(self as $wide).as_value()
            }
            fn from_value(v: Value) -> Result<Self, Error> {
                $conv(v).map(|n| n as $t)
            }
            #[inline]
            fn to_raw(self) -> VALUE {
                $raw(self as $wide)
            }
            #[inline]
            fn from_raw_fast(v: VALUE) -> Option<Self> {
                // Fixnums in the range the CRuby conversion accepts; the
                // same truncation as the slow path.
                (v & 1 == 1).then(|| (v as i64) >> 1).filter(|n| ($lo..=$hi).contains(n)).map(|n| n as $t)
            }
            fn swap_bytes(self) -> Self {
                <$t>::swap_bytes(self)
            }
        }
    };
}
const INT_LO: i64 = i32::MIN as i64;
const INT_HI: i64 = i32::MAX as i64;
const UINT_HI: i64 = u32::MAX as i64;
int_scalar!(i8, num2int, i64, integer_from_i64, int_to_raw, INT_LO, INT_HI);
int_scalar!(u8, num2uint, u64, integer_from_u64, uint_to_raw, INT_LO, UINT_HI);
int_scalar!(i16, num2int, i64, integer_from_i64, int_to_raw, INT_LO, INT_HI);
int_scalar!(u16, num2uint, u64, integer_from_u64, uint_to_raw, INT_LO, UINT_HI);
int_scalar!(i32, num2int, i64, integer_from_i64, int_to_raw, INT_LO, INT_HI);
int_scalar!(u32, num2uint, u64, integer_from_u64, uint_to_raw, INT_LO, UINT_HI);
int_scalar!(i64, num2ll, i64, integer_from_i64, int_to_raw, i64::MIN, i64::MAX);
int_scalar!(u64, num2ull, u64, integer_from_u64, uint_to_raw, i64::MIN, i64::MAX);

impl Scalar for f32 {
    fn to_value(self, ruby: &Ruby) -> Value {
        ruby.float_from_f64(self as f64).as_value()
    }
    fn to_raw(self) -> VALUE {
        // SAFETY: a flonum or a new Float; called with the GVL (a method body).
        unsafe { rb_sys::rb_float_new(self as f64) }
    }
    fn from_raw_fast(_v: VALUE) -> Option<Self> {
        None
    }
    fn from_value(v: Value) -> Result<Self, Error> {
        num2dbl(v).map(|d| d as f32)
    }
    fn swap_bytes(self) -> Self {
        self // the ffi gem swaps integers only (float32 is NOSWAP there)
    }
}
impl Scalar for f64 {
    fn to_value(self, ruby: &Ruby) -> Value {
        ruby.float_from_f64(self).as_value()
    }
    fn to_raw(self) -> VALUE {
        // SAFETY: a flonum or a new Float; called with the GVL (a method body).
        unsafe { rb_sys::rb_float_new(self) }
    }
    fn from_raw_fast(_v: VALUE) -> Option<Self> {
        None
    }
    fn from_value(v: Value) -> Result<Self, Error> {
        num2dbl(v)
    }
    fn swap_bytes(self) -> Self {
        self // as for f32
    }
}

/// A `void *` in memory: read as a Pointer, written from a Pointer, nil,
/// an Integer address or anything with `to_ptr` (like the ffi gem).
#[derive(Clone, Copy)]
pub struct PtrVal(usize);

impl Scalar for PtrVal {
    fn to_value(self, _ruby: &Ruby) -> Value {
        Pointer::new_value(self.0)
    }
    fn from_value(v: Value) -> Result<Self, Error> {
        pointer_value(v).map(PtrVal)
    }
    fn to_raw(self) -> VALUE {
        Pointer::new_value(self.0).as_raw()
    }
    fn from_raw_fast(_v: VALUE) -> Option<Self> {
        None
    }
    fn swap_bytes(self) -> Self {
        self // the ffi gem does not swap pointers either
    }
}

/// The ffi gem's read check for memory a stub copies from (a struct by
/// value): RuntimeError "invalid memory read" for a Pointer without read
/// access (derived from NULL), NullPointerError for NULL. Anything that is
/// not a Pointer passes (the caller checked what it is).
pub fn check_readable(memory: Value) -> Result<(), Error> {
    match Pointer::from_value(memory) {
        Some(p) => p.check_access(&Ruby::get_with(memory), false),
        None => Ok(()),
    }
}

/// `to_ptr`, interned once (interning its name per call costs more than
/// the call's own dispatch).
static TO_PTR: magnus::value::LazyId = magnus::value::LazyId::new("to_ptr");

/// The address a Pointer-ish value denotes (for put_pointer).
pub fn pointer_value(v: Value) -> Result<usize, Error> {
    let ruby = Ruby::get_with(v);
    if v.is_nil() {
        return Ok(0);
    }
    if let Some(a) = Pointer::address_of(v) {
        return Ok(a);
    }
    if v.is_kind_of(ruby.class_integer()) {
        return num2ull(v).map(|n| n as usize);
    }
    if v.respond_to(*TO_PTR, false)? {
        let p: Value = v.funcall(*TO_PTR, ())?;
        if let Some(a) = Pointer::address_of(p) {
            return Ok(a);
        }
    }
    Err(Error::new(ruby.exception_arg_error(), "value is not a pointer"))
}

impl Pointer {
    fn raw(address: usize, type_size: usize, size: usize) -> Pointer {
        Pointer {
            address: Word::new(address),
            type_size: Word::new(type_size),
            size: Word::new(size),
            owned: Word::new(0),
            owned_size: Word::new(0),
            autorelease: Flag::new(false),
            parent: Word::new(0),
            swap: Flag::new(false),
            flags: Byte::new(READ | WRITE),
            family: OnceLock::new(),
        }
    }

    /// Makes `child` (a new pointer into this one's memory) share this
    /// pointer's access flags, byte order and liveness.
    fn adopt(&self, child: &Pointer) {
        child.flags.set(self.flags.get());
        child.swap.set(self.swap.get());
        let family = self.family.get_or_init(|| Arc::new(Family::default())).clone();
        family.members.lock().unwrap_or_else(|p| p.into_inner()).insert(child as *const Pointer as usize);
        // A Pointer is adopted once, right after its allocation.
        let _ = child.family.set(family);
    }

    /// Every pointer derived from this one reads as NULL from now on.
    fn orphan_family(&self) {
        let Some(family) = self.family.get() else { return };
        let members = family.members.lock().unwrap_or_else(|p| p.into_inner());
        for &m in members.iter() {
            // SAFETY: members are the data of live Pointer objects (each
            // leaves the set in its Drop, under this lock).
            let m = unsafe { &*(m as *const Pointer) };
            m.address.set(0);
            m.size.set(0);
        }
    }

    /// The Pointer data of `value` (any Pointer subclass), without building
    /// an Error on failure (TryConvert does, which is slow).
    pub fn from_value<'a>(value: Value) -> Option<&'a Pointer> {
        let raw = value.as_raw();
        // Immediates (Fixnum, nil, true, Symbols, flonums) are never Pointers.
        if crate::runtime::objects::is_immediate(raw) {
            return None;
        }
        // SAFETY: `raw` is a heap object; the check only reads its type.
        if unsafe { rb_sys::rb_typeddata_is_kind_of(raw, Pointer::data_type_address() as *const rb_sys::rb_data_type_t) } == 0 {
            return None;
        }
        // SAFETY: typed data of Pointer's type (or a subclass's), live: an
        // argument of the running method.
        Some(unsafe { crate::runtime::objects::typed_data_unchecked(raw) })
    }

    /// The address of a Pointer (or subclass instance), if `value` is one.
    pub fn address_of(value: Value) -> Option<usize> {
        Pointer::from_value(value).map(|p| p.address.get())
    }

    /// A Pointer VALUE for `address`: the shared NULL for 0, like the ffi gem.
    pub fn new_value(address: usize) -> Value {
        let ruby = Ruby::get().expect("Ruby thread");
        if address == 0 {
            if let Some(null) = NULL.get() {
                return ruby.get_inner(*null);
            }
        }
        ruby.obj_wrap(Pointer::raw(address, 1, UNBOUNDED)).as_value()
    }

    /// A plain pointer to `address` of `class` (a Pointer subclass): what
    /// `class.new(address)` makes, without calling its `initialize`.
    pub(crate) fn new_of_class(ruby: &Ruby, class: magnus::RClass, address: usize) -> Value {
        ruby.obj_wrap_as(Pointer::raw(address, 1, UNBOUNDED), class).as_value()
    }

    /// A Pointer VALUE to `size` bytes of code at `address` that can be
    /// read, not written (a Function's `to_ptr`); the shared NULL for 0.
    pub(crate) fn new_read_only(address: usize, type_size: usize, size: usize) -> Value {
        if address == 0 {
            return Pointer::new_value(0);
        }
        let p = Pointer::raw(address, type_size, size);
        p.set_readonly();
        Ruby::get().expect("Ruby thread").obj_wrap(p).as_value()
    }

    /// Address of the `rb_data_type_t` every Pointer object carries.
    pub fn data_type_address() -> usize {
        <Pointer as TypedData>::data_type() as *const _ as usize
    }

    /// Frees owned memory (if any) and makes the pointer, and every pointer
    /// derived from it, NULL and empty.
    fn release(&self) {
        let owned = self.owned.replace(0);
        if owned != 0 {
            // SAFETY: `owned` came from calloc/malloc in `allocate` and is
            // freed exactly once (the field was just cleared).
            unsafe {
                libc::free(owned as *mut libc::c_void);
                rb_sys::rb_gc_adjust_memory_usage(-(self.owned_size.get() as isize) as _);
            }
            self.address.set(0);
            self.size.set(0);
            self.orphan_family();
        }
    }

    /// The ffi gem's access check (checkRead/checkWrite): NULL →
    /// NullPointerError; no access (derived from NULL, or a write to frozen
    /// memory) → RuntimeError with the same message.
    fn check_access(&self, ruby: &Ruby, write: bool) -> Result<(), Error> {
        let addr = self.address.get();
        let need = if write { WRITE } else { READ };
        if addr != 0 && self.flags.get() & need != 0 {
            return Ok(());
        }
        let what = if write { "write" } else { "read" };
        let class = if addr == 0 { null_pointer_error(ruby) } else { ruby.exception_runtime_error() };
        Err(Error::new(class, format!("invalid memory {what} at address=0x{addr:016x}")))
    }

    /// Start of `len` bytes at `off`, after the ffi gem's checks: access
    /// (see `check_access`), then bounds → IndexError.
    fn check(&self, ruby: &Ruby, off: i64, len: i64, write: bool) -> Result<*mut u8, Error> {
        self.check_access(ruby, write)?;
        self.check_bounds(ruby, off, len)
    }

    /// Bounds only (the ffi gem checks no access for zero-length arrays).
    fn check_bounds(&self, ruby: &Ruby, off: i64, len: i64) -> Result<*mut u8, Error> {
        let addr = self.address.get();
        let size = self.size.get() as i64;
        let end = off.wrapping_add(len);
        if (off | len | end | size.wrapping_sub(end)) < 0 {
            return Err(index_error(ruby, off, len));
        }
        Ok((addr as *mut u8).wrapping_add(off as usize))
    }

    /// `v` as stored in (or read from) this memory: byte-swapped for
    /// `order(:big)` views.
    #[inline]
    fn order<T: Scalar>(&self, v: T) -> T {
        if self.swap.get() {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// `count` elements for a new Array, checked as `rb_ary_new2` checks
    /// it (the ffi gem creates the Array before any memory check).
    fn array_count(ruby: &Ruby, count: i64) -> Result<usize, Error> {
        /// CRuby's ARY_MAX_SIZE: LONG_MAX / sizeof(VALUE).
        const ARY_MAX_SIZE: i64 = i64::MAX / std::mem::size_of::<VALUE>() as i64;
        if count < 0 {
            return Err(Error::new(ruby.exception_arg_error(), "negative array size (or size too big)"));
        }
        if count > ARY_MAX_SIZE {
            return Err(Error::new(ruby.exception_arg_error(), "array size too big"));
        }
        Ok(count as usize)
    }

    fn span(ruby: &Ruby, count: i64, elem: usize) -> Result<i64, Error> {
        count.checked_mul(elem as i64).ok_or_else(|| index_error(ruby, 0, i64::MAX))
    }

    // --- construction -------------------------------------------------------

    /// `initialize(address)` / `initialize(type, address)`.
    fn initialize(ruby: &Ruby, rb_self: Obj<Pointer>, args: &[Value]) -> Result<(), Error> {
        let (type_size, address) = match args {
            [address] => (1, *address),
            [ty, address] => (type_size_of(ruby, *ty)?, *address),
            _ => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!("wrong number of arguments (given {}, expected 1..2)", args.len()),
                ))
            }
        };
        rb_self.type_size.set(type_size);
        // Like the ffi gem 1.17: a Pointer (sharing its bounds, keeping it
        // alive), or an Integer read as NUM2ULL (so negative values wrap
        // and 2**64 is a RangeError; 1.15 read NUM2LL); nothing else.
        if let Some(other) = Pointer::from_value(address) {
            rb_self.address.set(other.address.get());
            rb_self.size.set(other.size.get());
            rb_self.parent.set(address.as_raw() as usize);
            crate::runtime::objects::written(rb_self.as_raw(), address.as_raw());
            if rb_self.family.get().is_none() {
                other.adopt(&rb_self);
            }
            return Ok(());
        }
        if address.is_kind_of(ruby.class_integer()) {
            rb_self.address.set(num2ull(address)? as usize);
            rb_self.size.set(UNBOUNDED);
            return Ok(());
        }
        Err(Error::new(
            ruby.exception_type_error(),
            format!("wrong argument type {}, expected Integer or FiddleJit::Pointer", address.class()),
        ))
    }

    /// The MemoryPointer/Buffer constructor's allocation. Memory is counted by the GC (rb_gc_adjust_memory_usage).
    fn allocate(ruby: &Ruby, rb_self: &Pointer, type_size: i64, total: i64, clear: bool) -> Result<(), Error> {
        if total < 0 || type_size < 0 {
            return Err(Error::new(ruby.exception_arg_error(), format!("negative memory size {total}")));
        }
        rb_self.release();
        let bytes = (total as usize).max(1);
        // SAFETY: plain libc allocation; checked for NULL below.
        let block = unsafe { if clear { libc::calloc(bytes, 1) } else { libc::malloc(bytes) } } as usize;
        if block == 0 {
            return Err(Error::new(ruby.exception_no_mem_error(), format!("Failed to allocate memory size={total} bytes")));
        }
        // SAFETY: a counter update, with the GVL (a method body).
        unsafe { rb_sys::rb_gc_adjust_memory_usage(bytes as _) };
        rb_self.owned.set(block);
        rb_self.owned_size.set(bytes);
        rb_self.address.set(block);
        rb_self.size.set(total as usize);
        rb_self.type_size.set((type_size as usize).max(1));
        rb_self.autorelease.set(true);
        Ok(())
    }

    /// MemoryPointer#initialize(type_or_size, count = 1, clear = true): owned
    /// memory, zeroed unless `clear` is false; with a block, yields self and
    /// frees the memory when the block ends (also on exceptions, break, throw).
    fn memory_initialize(ruby: &Ruby, rb_self: Value, args: &[Value]) -> Result<Value, Error> {
        // SAFETY: the receiver of MemoryPointer#initialize is a Pointer.
        let p = unsafe { memory_receiver(rb_self.as_raw()) };
        let (ty, count, clear) = match args {
            [ty] => (*ty, 1, true),
            [ty, count] => (*ty, num2long(*count)?, true),
            [ty, count, clear] => (*ty, num2long(*count)?, clear.to_bool()),
            _ => return Err(arity(ruby, args.len(), "1..3")),
        };
        let type_size = type_size_of(ruby, ty)? as i64;
        let total = type_size
            .checked_mul(count)
            .ok_or_else(|| Error::new(ruby.exception_arg_error(), "memory size too big"))?;
        Pointer::allocate(ruby, p, type_size, total, clear)?;
        if ruby.block_given() {
            let result = ruby.yield_value::<_, Value>(rb_self);
            p.release();
            result?;
        }
        Ok(ruby.qnil().as_value())
    }

    /// dup/clone: a copy of the memory (ffi: unbounded pointers cannot be duplicated).
    fn initialize_copy(ruby: &Ruby, rb_self: &Pointer, other: &Pointer) -> Result<(), Error> {
        if std::ptr::eq(rb_self, other) {
            return Ok(());
        }
        if other.size.get() == UNBOUNDED {
            return Err(Error::new(ruby.exception_runtime_error(), "cannot duplicate unbounded memory area"));
        }
        if other.address.get() == 0 {
            return Err(Error::new(ruby.exception_runtime_error(), "cannot duplicate unreadable/unwritable memory area"));
        }
        let size = other.size.get();
        Pointer::allocate(ruby, rb_self, other.type_size.get() as i64, size as i64, false)?;
        // SAFETY: both blocks are at least `size` bytes (bounds of `other`, fresh allocation).
        unsafe { std::ptr::copy_nonoverlapping(other.address.get() as *const u8, rb_self.address.get() as *mut u8, size) };
        Ok(())
    }

    fn derived(rb_self: Obj<Pointer>, address: usize, size: usize) -> Obj<Pointer> {
        let ruby = Ruby::get_with(rb_self);
        let p = Pointer::raw(address, rb_self.type_size.get(), size);
        p.parent.set(rb_self.as_raw() as usize);
        let child = ruby.obj_wrap(p);
        // After wrapping: the data's address is final (a Box).
        rb_self.adopt(&child);
        child
    }

    fn plus(ruby: &Ruby, rb_self: Obj<Pointer>, offset: i64) -> Result<Obj<Pointer>, Error> {
        let size = rb_self.size.get();
        if offset < 0 || offset as u64 > size as u64 {
            return Err(index_error(ruby, offset, 1));
        }
        let new_size = if size == UNBOUNDED { UNBOUNDED } else { size - offset as usize };
        Ok(Pointer::derived(rb_self, rb_self.address.get().wrapping_add(offset as usize), new_size))
    }

    /// `ptr[index]`: the ffi gem's `self + NUM2ULONG(index) * type_size`
    /// (so a negative index wraps to an offset `+` refuses, a RangeError).
    fn aref(ruby: &Ruby, rb_self: Obj<Pointer>, index: Value) -> Result<Obj<Pointer>, Error> {
        let offset = num2ull(index)?.wrapping_mul(rb_self.type_size.get() as u64);
        let offset = i64::try_from(offset)
            .map_err(|_| Error::new(ruby.exception_range_error(), "bignum too big to convert into `long'"))?;
        Pointer::plus(ruby, rb_self, offset)
    }

    fn slice(ruby: &Ruby, rb_self: Obj<Pointer>, offset: Value, len: Value) -> Result<Obj<Pointer>, Error> {
        let (off, len) = (num2long(offset)?, num2long(len)?);
        let size = rb_self.size.get() as i64;
        let end = off.wrapping_add(len);
        if (off | len | end | size.wrapping_sub(end)) < 0 {
            return Err(index_error(ruby, off, len));
        }
        Ok(Pointer::derived(rb_self, rb_self.address.get().wrapping_add(off as usize), len as usize))
    }

    // --- attributes ------------------------------------------------------------

    pub(crate) fn address(&self) -> usize {
        self.address.get()
    }
    fn is_null(&self) -> bool {
        self.address.get() == 0
    }
    fn type_size(&self) -> usize {
        self.type_size.get()
    }
    fn size(&self) -> usize {
        self.size.get()
    }
    fn is_swapped(&self) -> bool {
        self.swap.get()
    }
    fn set_swapped(&self) {
        self.swap.set(true);
    }
    fn is_autorelease(&self) -> bool {
        self.autorelease.get()
    }

    fn set_autorelease(rb_self: Obj<Pointer>, value: Value) -> Result<Value, Error> {
        rb_self.check_frozen()?;
        rb_self.autorelease.set(value.to_bool());
        Ok(value)
    }

    /// Frees owned memory now (MemoryPointer#free). Unlike the ffi gem the
    /// pointer then reads as NULL, so later accesses raise NullPointerError
    /// instead of touching freed memory.
    fn free(ruby: &Ruby, rb_self: Obj<Pointer>) -> Result<Obj<Pointer>, Error> {
        if rb_self.owned.get() != 0 {
            rb_self.check_frozen()?;
            rb_self.release();
        } else {
            // (Not a FrozenError for pointers that own nothing: the frozen
            // NULL warns like the ffi gem's unfrozen one.)
            let _: Value = ruby.module_kernel().funcall(
                "warn",
                (format!("calling free on non allocated pointer {}", rb_self.inspect()),),
            )?;
        }
        Ok(rb_self)
    }

    /// Private `__invalidate`: NULL and empty from now on (AutoPointer#free).
    fn invalidate(rb_self: Obj<Pointer>) -> Result<(), Error> {
        rb_self.check_frozen()?;
        rb_self.release();
        rb_self.address.set(0);
        rb_self.size.set(0);
        rb_self.orphan_family();
        Ok(())
    }

    /// Private `__readonly!`: no WRITE access from now on (`freeze`, as
    /// the ffi gem's memory_freeze).
    fn set_readonly(&self) {
        self.flags.set(self.flags.get() & !WRITE);
    }

    /// Equal addresses; `nil` equals NULL; anything else is an
    /// ArgumentError, as in the ffi gem.
    /// The ffi gem 1.17's rule: nil equals NULL; another Pointer equals
    /// when the addresses do; anything else is not equal (1.15 raised
    /// ArgumentError for non-pointers).
    fn eq(&self, other: Value) -> bool {
        if other.is_nil() {
            return self.address.get() == 0;
        }
        Pointer::from_value(other).is_some_and(|p| p.address.get() == self.address.get())
    }

    fn eql(&self, other: Value) -> bool {
        Pointer::address_of(other) == Some(self.address.get())
    }

    fn hash(&self) -> usize {
        self.address.get()
    }

    fn inspect(rb_self: Obj<Pointer>) -> String {
        let size = rb_self.size.get();
        if size == UNBOUNDED {
            format!("#<{} address=0x{:016x}>", rb_self.class(), rb_self.address.get())
        } else {
            format!("#<{} address=0x{:016x} size={}>", rb_self.class(), rb_self.address.get(), size)
        }
    }

    fn clear(ruby: &Ruby, rb_self: Obj<Pointer>) -> Result<Obj<Pointer>, Error> {
        // The ffi gem's order: NULL (and read-only memory) first.
        rb_self.check_access(ruby, true)?;
        let size = rb_self.size.get();
        if size == UNBOUNDED {
            return Err(Error::new(ruby.exception_arg_error(), "cannot clear unbounded memory area"));
        }
        let p = rb_self.check(ruby, 0, size as i64, true)?;
        // SAFETY: checked: `size` bytes from `p` belong to this pointer.
        unsafe { std::ptr::write_bytes(p, 0, size) };
        Ok(rb_self)
    }

    /// `__copy_from__(src, len)`: memcpy len bytes of `src` to self.
    fn copy_from(ruby: &Ruby, rb_self: Obj<Pointer>, src: &Pointer, len: i64) -> Result<Obj<Pointer>, Error> {
        let from = src.check(ruby, 0, len, false)?;
        let to = rb_self.check(ruby, 0, len, true)?;
        // SAFETY: both ranges checked; memmove tolerates overlap.
        unsafe { std::ptr::copy(from, to, len as usize) };
        Ok(rb_self)
    }

    // --- scalars ---------------------------------------------------------------

    fn get_at<T: Scalar>(ruby: &Ruby, p: &Pointer, off: i64) -> Result<Value, Error> {
        let at = p.check(ruby, off, std::mem::size_of::<T>() as i64, false)?;
        // SAFETY: checked range; memory may be unaligned.
        Ok(p.order(unsafe { (at as *const T).read_unaligned() }).to_value(ruby))
    }

    fn put_at<T: Scalar>(ruby: &Ruby, p: &Pointer, off: i64, v: Value) -> Result<(), Error> {
        let value = T::from_value(v)?;
        let at = p.check(ruby, off, std::mem::size_of::<T>() as i64, true)?;
        // SAFETY: checked range; memory may be unaligned.
        unsafe { (at as *mut T).write_unaligned(p.order(value)) };
        Ok(())
    }

    fn get_array_at<T: Scalar>(ruby: &Ruby, p: &Pointer, off: i64, count: i64) -> Result<RArray, Error> {
        Pointer::array_count(ruby, count)?;
        let elem = std::mem::size_of::<T>();
        // As the ffi gem: no access check for zero elements (NULL.read_array_of_int(0) is []).
        if count > 0 {
            p.check_access(ruby, false)?;
        }
        let at = p.check_bounds(ruby, off, Pointer::span(ruby, count, elem)?)?;
        let ary = ruby.ary_new_capa(count as usize);
        for i in 0..count as usize {
            // SAFETY: within the checked range.
            let v = unsafe { (at.add(i * elem) as *const T).read_unaligned() };
            ary.push(p.order(v).to_value(ruby))?;
        }
        Ok(ary)
    }

    fn put_array_at<T: Scalar>(ruby: &Ruby, p: &Pointer, off: i64, ary: Value) -> Result<(), Error> {
        let ary = RArray::from_value(ary).ok_or_else(|| {
            Error::new(ruby.exception_type_error(), format!("wrong argument type {} (expected Array)", ary.class()))
        })?;
        let elem = std::mem::size_of::<T>();
        let count = ary.len();
        if count > 0 {
            p.check_access(ruby, true)?;
        }
        let at = p.check_bounds(ruby, off, Pointer::span(ruby, count as i64, elem)?)?;
        for i in 0..count {
            let v = T::from_value(ary.entry(i as isize)?)?;
            // SAFETY: within the checked range (the memory's bounds do not change).
            unsafe { (at.add(i * elem) as *mut T).write_unaligned(p.order(v)) };
        }
        Ok(())
    }

    fn get_array<T: Scalar>(ruby: &Ruby, rb_self: &Pointer, off: Value, count: Value) -> Result<RArray, Error> {
        Pointer::get_array_at::<T>(ruby, rb_self, num2long(off)?, num2long(count)?)
    }
    fn put_array<T: Scalar>(ruby: &Ruby, rb_self: Obj<Pointer>, off: Value, ary: Value) -> Result<Obj<Pointer>, Error> {
        Pointer::put_array_at::<T>(ruby, &rb_self, num2long(off)?, ary)?;
        Ok(rb_self)
    }
    fn write_array<T: Scalar>(ruby: &Ruby, rb_self: Obj<Pointer>, ary: Value) -> Result<Obj<Pointer>, Error> {
        Pointer::put_array_at::<T>(ruby, &rb_self, 0, ary)?;
        Ok(rb_self)
    }

    // --- strings and bytes --------------------------------------------------

    /// `get_string(offset, length = nil)`: bytes up to the first NUL within
    /// `length` (default: the rest of the memory).
    fn get_string(ruby: &Ruby, rb_self: &Pointer, args: &[Value]) -> Result<RString, Error> {
        let (off, len) = match args {
            [off] => (num2long(*off)?, None),
            [off, len] if len.is_nil() => (num2long(*off)?, None),
            [off, len] => (num2long(*off)?, Some(num2long(*len)?)),
            _ => return Err(arity(ruby, args.len(), "1..2")),
        };
        let len = len.unwrap_or_else(|| (rb_self.size.get() as i64).wrapping_sub(off));
        let at = rb_self.check(ruby, off, len, false)?;
        // SAFETY: checked range (for unbounded pointers, up to the first NUL
        // the caller promises exists, as in the ffi gem).
        let n = unsafe { libc::memchr(at as *const libc::c_void, 0, len as usize) };
        let n = if n.is_null() { len as usize } else { n as usize - at as usize };
        // SAFETY: n <= len bytes of that range.
        Ok(ruby.str_from_slice(unsafe { std::slice::from_raw_parts(at, n) }))
    }

    /// `read_string(length = nil)` as the ffi gem's: get_string(0) without
    /// a length (nil or false), "".b for one `== 0`, else get_bytes(0, length).
    fn read_string(ruby: &Ruby, rb_self: &Pointer, args: &[Value]) -> Result<RString, Error> {
        let zero = ruby.integer_from_i64(0).as_value();
        match args {
            [] => Pointer::get_string(ruby, rb_self, &[zero]),
            [len] if !len.to_bool() => Pointer::get_string(ruby, rb_self, &[zero]),
            [len] if len.funcall::<_, _, Value>("==", (zero,))?.to_bool() => Ok(ruby.str_from_slice(&[])),
            [len] => Pointer::get_bytes(ruby, rb_self, zero, *len),
            _ => Err(arity(ruby, args.len(), "0..1")),
        }
    }

    /// `put_string(offset, str)`: the bytes plus a terminating NUL.
    fn put_string(ruby: &Ruby, rb_self: Obj<Pointer>, off: Value, s: Value) -> Result<Obj<Pointer>, Error> {
        let s = string_arg(ruby, s)?;
        let off = num2long(off)?;
        // SAFETY: copied before any Ruby code runs (which could change `s`).
        let bytes = unsafe { s.as_slice() }.to_vec();
        let at = rb_self.check(ruby, off, bytes.len() as i64 + 1, true)?;
        // SAFETY: checked range of len + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
            *at.add(bytes.len()) = 0;
        }
        Ok(rb_self)
    }

    fn get_bytes(ruby: &Ruby, rb_self: &Pointer, off: Value, len: Value) -> Result<RString, Error> {
        let (off, len) = (num2long(off)?, num2long(len)?);
        let at = rb_self.check(ruby, off, len, false)?;
        // SAFETY: `check` allowed reading `len` bytes at `at`.
        Ok(ruby.str_from_slice(unsafe { std::slice::from_raw_parts(at, len as usize) }))
    }


    /// `put_bytes(offset, str, index = 0, length = nil)`.
    fn put_bytes_at(ruby: &Ruby, p: &Pointer, off: i64, args: &[Value]) -> Result<(), Error> {
        let (s, idx, len) = match args {
            [s] => (*s, None, None),
            [s, i] => (*s, Some(*i), None),
            [s, i, l] => (*s, Some(*i), Some(*l)),
            _ => return Err(arity(ruby, args.len() + 1, "2..4")),
        };
        let s = string_arg(ruby, s)?;
        // SAFETY: copied before any Ruby code runs (num2long below may call some).
        let bytes = unsafe { s.as_slice() }.to_vec();
        let total = bytes.len() as i64;
        let idx = match idx {
            Some(i) => num2long(i)?,
            None => 0,
        };
        if idx < 0 {
            return Err(Error::new(ruby.exception_range_error(), "index out of range"));
        }
        let len = match len {
            Some(l) => num2long(l)?,
            None => total - idx,
        };
        if idx.wrapping_add(len) > total {
            return Err(Error::new(ruby.exception_range_error(), "length is too big"));
        }
        let at = p.check(ruby, off, len, true)?;
        // SAFETY: checked destination; source range checked above.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().add(idx as usize), at, len as usize) };
        Ok(())
    }

    fn put_bytes(ruby: &Ruby, rb_self: &Pointer, args: &[Value]) -> Result<(), Error> {
        let Some((off, rest)) = args.split_first() else { return Err(arity(ruby, 0, "2..4")) };
        Pointer::put_bytes_at(ruby, rb_self, num2long(*off)?, rest)
    }

    fn write_bytes(ruby: &Ruby, rb_self: Obj<Pointer>, args: &[Value]) -> Result<Obj<Pointer>, Error> {
        Pointer::put_bytes_at(ruby, &rb_self, 0, args)?;
        Ok(rb_self)
    }

    /// `get_array_of_string(offset, count = nil)`: `char *` elements, NULL →
    /// nil; without a count, up to the first NULL (within the bounds).
    fn get_array_of_string(ruby: &Ruby, rb_self: &Pointer, args: &[Value]) -> Result<RArray, Error> {
        let ps = std::mem::size_of::<usize>();
        let read_str = |addr: usize| -> Value {
            if addr == 0 {
                ruby.qnil().as_value()
            } else {
                // SAFETY: a C string the memory points at (caller's promise, as in ffi).
                let c = unsafe { std::ffi::CStr::from_ptr(addr as *const libc::c_char) };
                ruby.str_from_slice(c.to_bytes()).as_value()
            }
        };
        let ary = ruby.ary_new();
        match args {
            [off, count] if !count.is_nil() => {
                // As the ffi gem: an `int` count.
                let (off, count) = (num2long(*off)?, i64::from(num2int(*count)?));
                Pointer::array_count(ruby, count)?;
                let at = rb_self.check(ruby, off, Pointer::span(ruby, count, ps)?, false)?;
                for i in 0..count as usize {
                    // SAFETY: `check` allowed reading `count` pointers at `at`.
                    ary.push(read_str(unsafe { (at.add(i * ps) as *const usize).read_unaligned() }))?;
                }
            }
            [off] | [off, _] => {
                let off = num2long(*off)?;
                let at = rb_self.check(ruby, off, ps as i64, false)?;
                let size = rb_self.size.get() as i64;
                let mut i = 0usize;
                // The ffi gem's loop bound: the last slot is never read.
                while off + ((i * ps) as i64) < size - ps as i64 {
                    // SAFETY: the loop stays within the Pointer's size, which
                    // `check` validated the start of (the ffi gem's bound).
                    let addr = unsafe { (at.add(i * ps) as *const usize).read_unaligned() };
                    if addr == 0 {
                        break;
                    }
                    ary.push(read_str(addr))?;
                    i += 1;
                }
            }
            _ => return Err(arity(ruby, args.len(), "1..2")),
        }
        Ok(ary)
    }
}

// --- raw cfuncs for the hottest accessors --------------------------------
//
// get_T(offset)/put_T(offset, v)/read_T/write_T(v) as plain C functions:
// the common case (Fixnum offset in bounds, Fixnum value) touches no magnus
// machinery; everything else falls back to the checked methods above, whose
// errors are raised after every Rust value is dropped.

/// The Pointer data of a receiver of a method defined on Pointer. Not every
/// such receiver has it: a Function is a Pointer subclass with data of its
/// own, and reading its fields as a Pointer's would take anything for an
/// address. Every such receiver is typed data (made by Pointer's allocator
/// or Function's), so one load and compare tell them apart; a Function reads
/// through its `to_ptr`, anything else through `no_memory`.
#[inline(always)]
unsafe fn receiver<'a>(rb_self: VALUE) -> &'a Pointer {
    if crate::runtime::objects::data_type_of(rb_self) == <Pointer as TypedData>::data_type() as *const _ as usize {
        crate::runtime::objects::typed_data_unchecked(rb_self)
    } else {
        other_receiver(rb_self)
    }
}

/// `receiver` of a Function: its `to_ptr` (kept and marked by the
/// Function, so alive as long as the receiver), as the ffi gem's Function
/// is a Pointer to its code; of anything else, `no_memory`.
#[cold]
#[inline(never)]
unsafe fn other_receiver<'a>(rb_self: VALUE) -> &'a Pointer {
    let to_ptr = crate::ruby::function::Function::kept_pointer(Value::from_raw(rb_self));
    match to_ptr.and_then(|p| crate::runtime::objects::typed_data::<Pointer>(p.as_raw())) {
        Some(p) => p,
        None => no_memory(),
    }
}

/// A Pointer with no address, size or access: its methods raise
/// NullPointerError (never touched by `allocate`, see `memory_receiver`).
#[cold]
fn no_memory() -> &'static Pointer {
    static NO_MEMORY: OnceLock<Pointer> = OnceLock::new();
    NO_MEMORY.get_or_init(|| {
        let p = Pointer::raw(0, 1, 0);
        p.flags.set(0);
        p
    })
}

/// The Pointer data of an object MemoryPointer's allocator made (the
/// receiver of MemoryPointer#initialize, an `rb_obj_alloc` of a
/// MemoryPointer class): always a Pointer's.
#[inline]
unsafe fn memory_receiver<'a>(rb_self: VALUE) -> &'a Pointer {
    crate::runtime::objects::typed_data_unchecked(rb_self)
}

#[inline]
fn fast_span(p: &Pointer, off: VALUE, len: usize, need: u8) -> Option<*mut u8> {
    if off & 1 == 0 || (off as i64) < 0 {
        return None;
    }
    p.span_at(((off as i64) >> 1) as usize, len, need)
}

impl Pointer {
    /// Where the struct accessors' guards read what `span_at` checks.
    pub(crate) fn inline_layout() -> crate::lower::struct_access::PointerLayout {
        use std::mem::offset_of;
        // `swap` and `flags` are read as one little-endian 16-bit word.
        const _: () = assert!(offset_of!(Pointer, flags) == offset_of!(Pointer, swap) + 1 && cfg!(target_endian = "little"));
        crate::lower::struct_access::PointerLayout {
            address_at: offset_of!(Pointer, address) as i32,
            size_at: offset_of!(Pointer, size) as i32,
            swap_and_flags_at: offset_of!(Pointer, swap) as i32,
            read: READ,
            write: WRITE,
        }
    }

    /// `len` bytes at `off` if the raw fast paths may access them directly:
    /// in bounds, not NULL, not byte-swapped. `None` sends the caller to the
    /// checked path (which raises the right error or swaps).
    #[inline]
    pub(crate) fn span_at(&self, off: usize, len: usize, need: u8) -> Option<*mut u8> {
        let addr = self.address.get();
        if addr == 0
            || self.flags.get() & need == 0
            || self.swap.get()
            || (off as u64).checked_add(len as u64)? > self.size.get() as u64
        {
            return None;
        }
        Some((addr + off) as *mut u8)
    }

    /// A new MemoryPointer of `size` zeroed bytes (type size `size`), as
    /// `MemoryPointer.new(size, 1, true)` without the method dispatch: what
    /// `Struct.new` allocates.
    pub(crate) fn new_memory(size: usize) -> Result<Value, Error> {
        // SAFETY: set in init, a class constant (pinned by its constant).
        let class = MEMORY_POINTER_CLASS.get().map(|c| *c as VALUE).expect("MemoryPointer class");
        let ruby = Ruby::get().expect("Ruby thread");
        // SAFETY: rb_obj_alloc runs the class's (Pointer's) alloc function.
        let obj = unsafe { Value::from_raw(rb_sys::rb_obj_alloc(class)) };
        let p = Pointer::from_value(obj).expect("a Pointer");
        Pointer::allocate(&ruby, p, size as i64, size as i64, true)?;
        Ok(obj)
    }

    /// The address (for struct_memory's pointer fields).
    pub(crate) fn address_value(&self) -> usize {
        self.address.get()
    }

    /// Data of a NULL, empty pointer that is never freed: what a Struct's
    /// memory refers to before `initialize` gave it a Pointer.
    pub(crate) fn unset_data() -> usize {
        static UNSET: OnceLock<usize> = OnceLock::new();
        *UNSET.get_or_init(|| {
            let p = Pointer::raw(0, 1, 0);
            p.flags.set(0);
            Box::leak(Box::new(p)) as *const Pointer as usize
        })
    }
}

pub(crate) fn raise_or<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        // SAFETY: called last in a cfunc entered from Ruby with the GVL;
        // nothing with a destructor is alive.
        Err(e) => unsafe { magnus::rb_sys::resume_error(e) },
    }
}

/// `null?`, as a plain cfunc (gems call it on every returned Pointer):
/// checked, as a Function (a Pointer subclass with data of its own) may be
/// bound to it with `bind_call`: magnus's conversion raises its TypeError.
unsafe extern "C" fn raw_is_null(rb_self: VALUE) -> VALUE {
    let v = Value::from_raw(rb_self);
    match Pointer::from_value(v) {
        Some(p) => rb_bool(p.is_null()),
        None => raise_or(<&Pointer as TryConvert>::try_convert(v).map(|p| rb_bool(p.is_null()))),
    }
}

fn rb_bool(b: bool) -> VALUE {
    (if b { rb_sys::Qtrue } else { rb_sys::Qfalse }) as VALUE
}

unsafe extern "C" fn raw_get<T: Scalar>(rb_self: VALUE, off: VALUE) -> VALUE {
    let p = receiver(rb_self);
    if let Some(at) = fast_span(p, off, std::mem::size_of::<T>(), READ) {
        return (at as *const T).read_unaligned().to_raw();
    }
    raise_or(slow_get::<T>(p, Value::from_raw(off)))
}

fn slow_get<T: Scalar>(p: &Pointer, off: Value) -> Result<VALUE, Error> {
    let ruby = Ruby::get_with(off);
    Pointer::get_at::<T>(&ruby, p, num2long(off)?).map(|v| v.as_raw())
}

unsafe extern "C" fn raw_read<T: Scalar>(rb_self: VALUE) -> VALUE {
    raw_get::<T>(rb_self, 1 /* Fixnum 0 */)
}

unsafe extern "C" fn raw_put<T: Scalar>(rb_self: VALUE, off: VALUE, v: VALUE) -> VALUE {
    let p = receiver(rb_self);
    if let (Some(value), Some(at)) = (T::from_raw_fast(v), fast_span(p, off, std::mem::size_of::<T>(), WRITE)) {
        (at as *mut T).write_unaligned(value);
        return rb_self;
    }
    raise_or(slow_put::<T>(p, Value::from_raw(off), Value::from_raw(v)));
    rb_self
}

fn slow_put<T: Scalar>(p: &Pointer, off: Value, v: Value) -> Result<(), Error> {
    let ruby = Ruby::get_with(off);
    Pointer::put_at::<T>(&ruby, p, num2long(off)?, v)
}

unsafe extern "C" fn raw_write<T: Scalar>(rb_self: VALUE, v: VALUE) -> VALUE {
    raw_put::<T>(rb_self, 1 /* Fixnum 0 */, v)
}

/// A Fixnum >= 0 as usize.
#[inline]
fn fix_usize(v: VALUE) -> Option<usize> {
    (v & 1 == 1 && (v as i64) >= 0).then(|| ((v as i64) >> 1) as usize)
}

/// `get_bytes(offset, length)`: in bounds with Fixnums, a binary String
/// straight from the memory; anything else through the checked method.
unsafe extern "C" fn raw_get_bytes(rb_self: VALUE, off: VALUE, len: VALUE) -> VALUE {
    let p = receiver(rb_self);
    if let Some(n) = fix_usize(len) {
        if let Some(at) = fast_span(p, off, n, READ) {
            return rb_sys::rb_str_new(at as *const std::ffi::c_char, n as _);
        }
    }
    let ruby = Ruby::get_unchecked();
    raise_or(Pointer::get_bytes(&ruby, p, Value::from_raw(off), Value::from_raw(len))).as_raw()
}

unsafe extern "C" fn raw_read_bytes(rb_self: VALUE, len: VALUE) -> VALUE {
    raw_get_bytes(rb_self, 1 /* Fixnum 0 */, len)
}

/// The bytes from `off` to the first NUL (or the end of the memory), when
/// the raw path may read them; None otherwise.
unsafe fn fast_cstring(p: &Pointer, off: VALUE) -> Option<VALUE> {
    let off = fix_usize(off)?;
    let len = p.size.get().checked_sub(off)?;
    let at = p.span_at(off, len, READ)?;
    let nul = libc::memchr(at as *const libc::c_void, 0, len);
    let n = if nul.is_null() { len } else { nul as usize - at as usize };
    Some(rb_sys::rb_str_new(at as *const std::ffi::c_char, n as _))
}

/// A raw cfunc's checked path (`f`'s value, or its error raised), out of
/// line: the fast path before it keeps its small frame.
#[cold]
#[inline(never)]
fn checked<T: ReprValue>(f: impl FnOnce(&Ruby) -> Result<T, Error>) -> VALUE {
    // SAFETY: called from a cfunc, with the GVL.
    let ruby = unsafe { Ruby::get_unchecked() };
    raise_or(f(&ruby)).as_raw()
}

/// A raw cfunc's arguments (`argc`, `argv` as Ruby passes them).
unsafe fn raw_args<'a>(argc: std::ffi::c_int, argv: *const VALUE) -> &'a [Value] {
    if argc <= 0 {
        return &[];
    }
    // SAFETY: Ruby passes `argc` VALUEs at `argv`, alive for the call;
    // magnus's Value is a transparent VALUE.
    std::slice::from_raw_parts(argv as *const Value, argc as usize)
}

/// `get_string(offset, length = nil)`: the one-argument form in place; the
/// others checked.
unsafe extern "C" fn raw_get_string(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    let p = receiver(rb_self);
    if argc == 1 {
        if let Some(v) = fast_cstring(p, *argv) {
            return v;
        }
    }
    checked(|ruby| Pointer::get_string(ruby, p, raw_args(argc, argv)))
}

/// `read_string(length = nil)`: get_string(0) without a length, "".b for
/// 0, get_bytes(0, length) for a Fixnum; the other forms checked.
unsafe extern "C" fn raw_read_string(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    let len = if argc == 1 { *argv } else { rb_sys::Qnil as VALUE };
    if argc <= 1 {
        if len == rb_sys::Qnil as VALUE {
            if let Some(v) = fast_cstring(receiver(rb_self), 1) {
                return v;
            }
        } else if len == 1 {
            return rb_sys::rb_str_new(std::ptr::null(), 0);
        } else if fix_usize(len).is_some() {
            return raw_get_bytes(rb_self, 1, len);
        }
    }
    checked(|ruby| Pointer::read_string(ruby, receiver(rb_self), raw_args(argc, argv)))
}

/// `put_bytes(offset, str)`: copied from the String in place when in
/// bounds; every other form checked.
unsafe extern "C" fn raw_put_bytes(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    if argc == 2 {
        let (off, s) = (*argv, *argv.add(1));
        if s & 7 == 0 && s != rb_sys::Qnil as VALUE && s != rb_sys::Qfalse as VALUE
            && rb_sys::RB_TYPE_P(s, rb_sys::ruby_value_type::RUBY_T_STRING)
        {
            let n = rb_sys::RSTRING_LEN(s) as usize;
            if let Some(at) = fast_span(receiver(rb_self), off, n, WRITE) {
                std::ptr::copy_nonoverlapping(rb_sys::RSTRING_PTR(s) as *const u8, at, n);
                return rb_self;
            }
        }
    }
    checked(|ruby| Pointer::put_bytes(ruby, receiver(rb_self), raw_args(argc, argv)).map(|()| Value::from_raw(rb_self)))
}

/// `get_array_of_T(offset, count)`: in bounds with Fixnums, read in place.
unsafe extern "C" fn raw_get_array<T: Scalar>(rb_self: VALUE, off: VALUE, count: VALUE) -> VALUE {
    let p = receiver(rb_self);
    if let Some(n) = fix_usize(count) {
        let elem = std::mem::size_of::<T>();
        if let Some(at) = n.checked_mul(elem).and_then(|len| fast_span(p, off, len, READ)) {
            let ary = rb_sys::rb_ary_new_capa(n as _);
            for i in 0..n {
                rb_sys::rb_ary_push(ary, (at.add(i * elem) as *const T).read_unaligned().to_raw());
            }
            return ary;
        }
    }
    let ruby = Ruby::get_unchecked();
    raise_or(Pointer::get_array::<T>(&ruby, p, Value::from_raw(off), Value::from_raw(count))).as_raw()
}

unsafe extern "C" fn raw_read_array<T: Scalar>(rb_self: VALUE, count: VALUE) -> VALUE {
    raw_get_array::<T>(rb_self, 1 /* Fixnum 0 */, count)
}

/// `MemoryPointer.from_string(str)`: memory of the String's bytes and a
/// NUL (type size 1, not zeroed first), allocated without dispatch. Other
/// values are converted with `to_str` first (else TypeError, as the ffi gem
/// 1.16+).
unsafe extern "C" fn raw_from_string(klass: VALUE, s: VALUE) -> VALUE {
    if s & 7 == 0 && s != rb_sys::Qnil as VALUE && s != rb_sys::Qfalse as VALUE
        && rb_sys::RB_TYPE_P(s, rb_sys::ruby_value_type::RUBY_T_STRING)
    {
        return memory_from_string(klass, s);
    }
    checked(|_| RString::try_convert(Value::from_raw(s)).map(|s| Value::from_raw(memory_from_string(klass, s.as_raw()))))
}

/// `@name`, interned once.
static NAME_IVAR: OnceLock<rb_sys::ID> = OnceLock::new();

/// `klass.__frozen_at(address, name)`: a frozen `klass` (a Pointer
/// subclass: DynamicLibrary::Symbol) at `address`, its memory still
/// writable, with `@name` = `name` made shareable — in one native call
/// what `new(address)`, `name = FiddleJit.make_shareable(name)` and
/// `Kernel#freeze` do (what DynamicLibrary#find_function returns: about
/// 7,000 instructions in Ruby, dominating a lookup; the ffi gem's is in C).
fn frozen_at(ruby: &Ruby, klass: magnus::RClass, address: usize, name: RString) -> Result<Value, Error> {
    share_name(ruby, name)?;
    // SAFETY: allocating an instance of a class (protected: a class without
    // an allocator raises; Pointer's subclasses inherit Pointer's).
    let obj = magnus::rb_sys::protect(|| unsafe { rb_sys::rb_obj_alloc(klass.as_raw()) })?;
    // SAFETY: the object just allocated.
    let obj = unsafe { Value::from_raw(obj) };
    let p = Pointer::from_value(obj)
        .ok_or_else(|| Error::new(ruby.exception_type_error(), format!("{} is not a Pointer class", klass)))?;
    p.address.set(address);
    // SAFETY: a live object made above, not frozen yet (rb_ivar_set does not
    // raise); then Kernel#freeze (the object, not its memory: not
    // Pointer#freeze).
    unsafe {
        let ivar = *NAME_IVAR.get_or_init(|| rb_sys::rb_intern(c"@name".as_ptr()));
        rb_sys::rb_ivar_set(obj.as_raw(), ivar, name.as_raw());
        rb_sys::rb_obj_freeze(obj.as_raw());
    }
    Ok(obj)
}

/// `FiddleJit.make_shareable(name)` for a String: freezing it, unless it
/// carries instance variables (then the full walk).
fn share_name(ruby: &Ruby, name: RString) -> Result<(), Error> {
    // SAFETY: a live String (an argument of the running method).
    if unsafe { rb_sys::rb_ivar_count(name.as_raw()) } != 0 {
        let module: RModule = ruby.class_object().const_get("FiddleJit")?;
        let _: Value = module.funcall("make_shareable", (name,))?;
    } else if !name.is_frozen() {
        name.freeze();
    }
    Ok(())
}

/// A new `klass` (MemoryPointer) holding String `s`'s bytes and a NUL.
#[inline(always)]
unsafe fn memory_from_string(klass: VALUE, s: VALUE) -> VALUE {
    let n = rb_sys::RSTRING_LEN(s) as usize;
    let obj = rb_sys::rb_obj_alloc(klass);
    let p = memory_receiver(obj);
    let ruby = Ruby::get_unchecked();
    raise_or(Pointer::allocate(&ruby, p, 1, n as i64 + 1, false));
    let at = p.address.get() as *mut u8;
    std::ptr::copy_nonoverlapping(rb_sys::RSTRING_PTR(s) as *const u8, at, n);
    *at.add(n) = 0;
    obj
}

/// Defines `func`, a raw cfunc (the raw_* ones above; function.rs'
/// `on_to_ptr`), as `class`'s method `name`.
pub(crate) fn define_raw(class: magnus::RClass, name: &str, func: *const (), arity: i32) {
    let name = std::ffi::CString::new(name).expect("method name");
    // SAFETY: `func` is a cfunc taking `arity` VALUE arguments after self
    // (for -1: argc, argv, self).
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(func);
        rb_sys::rb_define_method(class.as_raw(), name.as_ptr(), Some(func), arity);
    }
}

/// Size of a builtin type name Symbol, by VALUE (static Symbols), without
/// building its name; None for anything else.
fn builtin_symbol_size(v: VALUE) -> Option<usize> {
    static TABLE: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // The type table's names (not the pseudo types; long double stays
        // on the Ruby path).
        crate::types::NamedType::all()
            .filter(|t| !matches!(t.name, "strptr" | "varargs" | "long_double"))
            .map(|t| {
                let c = std::ffi::CString::new(t.name).expect("name");
                // SAFETY: interning a static name; rb_id2sym of an interned ID
                // is a static (immortal, never moved) Symbol.
                let sym = unsafe { rb_sys::rb_id2sym(rb_sys::rb_intern(c.as_ptr())) };
                (sym as usize, t.size)
            })
        .collect()
    });
    table.iter().find(|(s, _)| *s == v as usize).map(|(_, n)| *n)
}

/// `MemoryPointer#initialize(type_or_size, count = 1, clear = true)` without
/// a block, a Fixnum size or builtin type Symbol and a Fixnum count: natively,
/// no argument conversion machinery. Everything else (a block, Struct
/// classes, typedefs, errors) checked.
unsafe extern "C" fn memory_initialize_raw(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    if (1..=3).contains(&argc) && rb_sys::rb_block_given_p() == 0 {
        let args = std::slice::from_raw_parts(argv, argc as usize);
        let ty = args[0];
        // (A size beyond an `int` is the checked path's RangeError.)
        let size = if ty & 1 == 1 && (0..=i32::MAX as i64).contains(&((ty as i64) >> 1)) {
            Some(((ty as i64) >> 1) as usize)
        } else {
            builtin_symbol_size(ty).or_else(|| crate::ruby::struct_memory::struct_class_size(ty))
        };
        let count = match args.get(1) {
            None => Some(1i64),
            Some(&c) if c & 1 == 1 => Some((c as i64) >> 1),
            Some(_) => None,
        };
        let clear = args.get(2).map_or(true, |&c| c != rb_sys::Qnil as VALUE && c != rb_sys::Qfalse as VALUE);
        if let (Some(size), Some(count)) = (size, count) {
            if let Some(total) = (size as i64).checked_mul(count) {
                let ruby = Ruby::get_unchecked();
                raise_or(Pointer::allocate(&ruby, memory_receiver(rb_self), size as i64, total, clear));
                return rb_sys::Qnil as VALUE;
            }
        }
    }
    memory_initialize_checked(argc, argv, rb_self)
}

/// `memory_initialize_raw`'s other forms (a tail call: no frame of its own
/// for the fast path to set up).
#[cold]
#[inline(never)]
unsafe fn memory_initialize_checked(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    checked(|ruby| Pointer::memory_initialize(ruby, Value::from_raw(rb_self), raw_args(argc, argv)))
}

fn arity(ruby: &Ruby, given: usize, expected: &str) -> Error {
    Error::new(ruby.exception_arg_error(), format!("wrong number of arguments (given {given}, expected {expected})"))
}

/// The size of a type as the ffi gem's `rbffi_type_size` takes it: an
/// Integer (an `int`; negative: ArgumentError, see docs/compatibility.md),
/// a builtin type name or Struct class (natively), else what the Ruby
/// layer's fallback says (typedefs; `type.size` for objects).
fn type_size_of(ruby: &Ruby, ty: Value) -> Result<usize, Error> {
    if ty.is_kind_of(ruby.class_integer()) {
        return memory_size(ruby, ty);
    }
    if let Some(sym) = magnus::Symbol::from_value(ty) {
        if let Some(t) = NamedType::find(&sym.name()?) {
            return Ok(t.size);
        }
    }
    if let Some(n) = crate::ruby::struct_memory::struct_class_size(ty.as_raw()) {
        return Ok(n);
    }
    let fallback = TYPE_SIZE_FALLBACK.get().ok_or_else(|| {
        Error::new(ruby.exception_runtime_error(), "FiddleJit::Pointer.type_size_fallback= was not called")
    })?;
    memory_size(ruby, ruby.get_inner(*fallback).funcall("call", (ty,))?)
}

/// A type size given as an Integer: NUM2INT, as the ffi gem (RangeError
/// beyond an `int`), and not negative.
fn memory_size(ruby: &Ruby, size: Value) -> Result<usize, Error> {
    let n = num2int(size)?;
    usize::try_from(n).map_err(|_| Error::new(ruby.exception_arg_error(), format!("negative memory size {n}")))
}

/// What `type_size_of` calls for the types it does not know: a callable
/// the Ruby layer hands in once (`Pointer.type_size_fallback = ...`, in
/// lib/fiddle_jit/pointer.rb).
static TYPE_SIZE_FALLBACK: OnceLock<Opaque<Value>> = OnceLock::new();

/// Private `Pointer.type_size_fallback=(callable)`: set once, at load.
fn set_type_size_fallback(ruby: &Ruby, callable: Value) -> Result<(), Error> {
    // SAFETY: registered, so the callable is marked (pinned) for the life
    // of the process and the stored VALUE stays valid.
    unsafe { rb_sys::rb_gc_register_mark_object(callable.as_raw()) };
    TYPE_SIZE_FALLBACK
        .set(Opaque::from(callable))
        .map_err(|_| Error::new(ruby.exception_runtime_error(), "type_size_fallback is already set"))
}

/// The ffi gem's short type names of the accessors and the fixed-width
/// names they alias.
const SHORT_NAMES: [(&str, &str); 10] = [
    ("char", "int8"),
    ("uchar", "uint8"),
    ("short", "int16"),
    ("ushort", "uint16"),
    ("int", "int32"),
    ("uint", "uint32"),
    ("long_long", "int64"),
    ("ulong_long", "uint64"),
    ("float", "float32"),
    ("double", "float64"),
];

/// What `accessors!` defines for each type name.
const ACCESSOR_PREFIXES: [&str; 8] =
    ["get_", "put_", "read_", "write_", "get_array_of_", "put_array_of_", "read_array_of_", "write_array_of_"];

macro_rules! accessors {
    ($class:expr, $name:literal, $t:ty) => {
        define_raw($class, concat!("get_", $name), raw_get::<$t> as *const (), 1);
        define_raw($class, concat!("put_", $name), raw_put::<$t> as *const (), 2);
        define_raw($class, concat!("read_", $name), raw_read::<$t> as *const (), 0);
        define_raw($class, concat!("write_", $name), raw_write::<$t> as *const (), 1);
        define_raw($class, concat!("get_array_of_", $name), raw_get_array::<$t> as *const (), 2);
        $class.define_method(concat!("put_array_of_", $name), method!(Pointer::put_array::<$t>, 2))?;
        define_raw($class, concat!("read_array_of_", $name), raw_read_array::<$t> as *const (), 1);
        $class.define_method(concat!("write_array_of_", $name), method!(Pointer::write_array::<$t>, 1))?;
    };
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let npe = module.define_error("NullPointerError", ruby.exception_runtime_error())?;
    let _ = NULL_POINTER_ERROR.set(Opaque::from(npe));

    let class = module.define_class("Pointer", ruby.class_object())?;
    class.define_alloc_func::<Pointer>();
    class.define_method("initialize", method!(Pointer::initialize, -1))?;
    class.define_method("initialize_copy", method!(Pointer::initialize_copy, 1))?;
    // MemoryPointer#initialize's sizes, for Buffer#initialize (no block).
    class.define_private_method("__initialize_memory", method!(Pointer::memory_initialize, -1))?;
    class.define_private_method("__invalidate", method!(Pointer::invalidate, 0))?;
    class.define_private_method("__swapped?", method!(Pointer::is_swapped, 0))?;
    class.define_private_method("__swap!", method!(Pointer::set_swapped, 0))?;
    class.define_private_method("__readonly!", method!(Pointer::set_readonly, 0))?;
    class.define_method("address", method!(Pointer::address, 0))?;
    class.define_method("to_i", method!(Pointer::address, 0))?;
    define_raw(class, "null?", raw_is_null as *const (), 0);
    class.define_method("type_size", method!(Pointer::type_size, 0))?;
    class.define_method("size", method!(Pointer::size, 0))?;
    class.define_method("total", method!(Pointer::size, 0))?;
    class.define_method("autorelease?", method!(Pointer::is_autorelease, 0))?;
    class.define_method("autorelease=", method!(Pointer::set_autorelease, 1))?;
    class.define_method("free", method!(Pointer::free, 0))?;
    class.define_method("==", method!(Pointer::eq, 1))?;
    class.define_method("eql?", method!(Pointer::eql, 1))?;
    class.define_method("hash", method!(Pointer::hash, 0))?;
    class.define_method("+", method!(Pointer::plus, 1))?;
    class.define_method("slice", method!(Pointer::slice, 2))?;
    class.define_method("[]", method!(Pointer::aref, 1))?;
    class.define_method("inspect", method!(Pointer::inspect, 0))?;
    class.define_method("clear", method!(Pointer::clear, 0))?;
    class.define_method("__copy_from__", method!(Pointer::copy_from, 2))?;

    accessors!(class, "int8", i8);
    accessors!(class, "uint8", u8);
    accessors!(class, "int16", i16);
    accessors!(class, "uint16", u16);
    accessors!(class, "int32", i32);
    accessors!(class, "uint32", u32);
    accessors!(class, "int64", i64);
    accessors!(class, "uint64", u64);
    accessors!(class, "long", i64);
    accessors!(class, "ulong", u64);
    accessors!(class, "float32", f32);
    accessors!(class, "float64", f64);
    accessors!(class, "pointer", PtrVal);
    // The ffi gem's short names: aliases, as in its AbstractMemory (so
    // `original_name` is the fixed-width name).
    let intern = |prefix: &str, name: &str| {
        let full = [prefix, name].concat();
        // SAFETY: interning a name, with the GVL (Init).
        unsafe { rb_sys::rb_intern2(full.as_ptr() as *const std::ffi::c_char, full.len() as _) }
    };
    for (short, canonical) in SHORT_NAMES {
        for prefix in ACCESSOR_PREFIXES {
            // SAFETY: with the GVL (Init); the original was defined by
            // `accessors!` above, so rb_alias cannot raise.
            unsafe { rb_sys::rb_alias(class.as_raw(), intern(prefix, short), intern(prefix, canonical)) };
        }
    }

    // Raw fast paths (falling back to the checked methods above).
    define_raw(class, "get_string", raw_get_string as *const (), -1);
    define_raw(class, "read_string", raw_read_string as *const (), -1);
    class.define_method("put_string", method!(Pointer::put_string, 2))?;
    define_raw(class, "get_bytes", raw_get_bytes as *const (), 2);
    define_raw(class, "put_bytes", raw_put_bytes as *const (), -1);
    define_raw(class, "read_bytes", raw_read_bytes as *const (), 1);
    class.define_method("write_bytes", method!(Pointer::write_bytes, -1))?;
    class.define_method("get_array_of_string", method!(Pointer::get_array_of_string, -1))?;

    class.const_set("SIZE", std::mem::size_of::<usize>())?;
    class.define_singleton_method("__frozen_at", method!(frozen_at, 2))?;
    class.define_singleton_method("type_size_fallback=", function!(set_type_size_fallback, 1))?;

    let memory_pointer = module.define_class("MemoryPointer", class)?;
    define_raw(memory_pointer, "initialize", memory_initialize_raw as *const (), -1);
    // SAFETY: a raw cfunc of one VALUE argument after the receiver.
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(raw_from_string as *const ());
        rb_sys::rb_define_singleton_method(memory_pointer.as_raw(), c"from_string".as_ptr(), Some(func), 1);
    }
    // SAFETY: a class bound to a constant; registered so it is never moved.
    unsafe { rb_sys::rb_gc_register_mark_object(memory_pointer.as_raw()) };
    let _ = MEMORY_POINTER_CLASS.set(memory_pointer.as_raw() as usize);
    let null_data = Pointer::raw(0, 1, UNBOUNDED);
    null_data.flags.set(0); // NULL and what is derived from it have no access
    let null = ruby.obj_wrap(null_data);
    // Frozen (so shareable: stubs hand it to every Ractor; the ffi gem's
    // is not, see docs/compatibility.md).
    null.freeze();
    class.const_set("NULL", null)?;
    // SAFETY: NULL is a constant (reachable forever) and pinned by
    // rb_gc_register_mark_object, so the stored VALUE never moves.
    unsafe { rb_sys::rb_gc_register_mark_object(null.as_raw()) };
    let _ = NULL.set(Opaque::from(null.as_value()));
    Ok(())
}
