//! The native half of FiddleJit::Struct: every Struct (Union, ManagedStruct,
//! user subclasses) is a TypedData whose data says which Pointer it views,
//! like the ffi gem's `Struct { AbstractMemory* pointer; ... }`.
//!
//! - Stubs unbox a Struct argument inline (`lower::pointer_arg`):
//!   the object's `rb_data_type_t` is compared with `StructData`'s, then
//!   `[data + 0]` is the Pointer's data and `[[data + 0] + 0]` its address.
//!   So `memory` is the first `repr(C)` field and always points at a live
//!   Pointer's data (the shared NULL one before `initialize`), and a Pointer
//!   freed later reads as NULL through it (no stale copy of the address).
//! - `Struct#[]`/`#[]=` are raw cfuncs: the field name is looked up in the
//!   layout's `FieldTable` (identity of the Symbol VALUE); integer and float
//!   fields are read/written in place when in bounds and not byte-swapped,
//!   every other case goes to the Field's `get`/`put` through the hooks
//!   lib/ registers once (so nested structs, arrays, strings, callbacks,
//!   enums and custom types keep their Ruby semantics and errors). The hot
//!   path is a few loads and compares; everything else is out of line.
//!   A laid-out class has its own machine-code `[]`/`[]=` in front of these
//!   (`ruby::struct_accessors`), which come here for all but number fields
//!   (and `:pointer` and `:string` reads).
//! - Rust calls no lib/ method by name (see `Hooks`).

use super::pointer::{raise_or, Pointer, Scalar, Word, READ, WRITE};
use crate::lower::struct_access::{self, AccessField, FieldKind, StructAccess};
use crate::types::CType;
use crate::runtime::objects;
use magnus::gc::Marker;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::{DataTypeFunctions, Obj};
use magnus::value::ReprValue;
use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, Ruby, TypedData, Value};
use rb_sys::VALUE;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::OnceLock;

/// Write-barrier protected: `view` records what it stores (see `Pointer`).
#[derive(TypedData)]
#[magnus(class = "FiddleJit::Struct", free_immediately, size, mark, frozen_shareable, wb_protected)]
#[repr(C)]
pub struct StructData {
    /// Read inline by the stubs: keep first. The `Pointer` data of
    /// `pointer` (kept alive by marking `pointer`; TypedData payloads are
    /// boxed, so compaction never moves it).
    memory: Word,
    /// The Pointer object (MemoryPointer, AutoPointer, slice...), or 0
    /// before `initialize`. Marked with rb_gc_mark, so it is pinned.
    pointer: Word,
    /// The layout's `FieldTable` object, or 0 before `initialize`. Marked.
    table: Word,
}

impl Default for StructData {
    fn default() -> Self {
        StructData { memory: Word::new(Pointer::unset_data()), pointer: Word::new(0), table: Word::new(0) }
    }
}

impl DataTypeFunctions for StructData {
    fn mark(&self, marker: &Marker) {
        for v in [self.pointer.get(), self.table.get()] {
            if v != 0 {
                // SAFETY: stored from live VALUEs; kept alive (and pinned) here.
                marker.mark(unsafe { Value::from_raw(v as VALUE) });
            }
        }
    }
}

/// How a field is accessed natively.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// `:pointer`: read as a Pointer; written from nil, a Pointer, a
    /// Struct or a Function natively, anything else through the Field.
    Ptr,
    /// `:string` (StructLayout::String): read natively (nil for NULL, else
    /// the bytes up to the NUL, as `get_pointer(offset).get_string(0)`);
    /// written through the Field (which raises, as in the ffi gem).
    Str,
    /// Through the Ruby Field object.
    Ruby,
}

impl Kind {
    /// How a JIT-emitted accessor reads and writes the field, if it does.
    fn inline(self) -> Option<FieldKind> {
        let int = |bytes, signed| Some(FieldKind::Int { bytes, signed });
        match self {
            Kind::I8 => int(1, true),
            Kind::U8 => int(1, false),
            Kind::I16 => int(2, true),
            Kind::U16 => int(2, false),
            Kind::I32 => int(4, true),
            Kind::U32 => int(4, false),
            Kind::I64 => int(8, true),
            Kind::U64 => int(8, false),
            Kind::F32 => Some(FieldKind::Float),
            Kind::F64 => Some(FieldKind::Double),
            Kind::Ptr => Some(FieldKind::Pointer),
            Kind::Str => Some(FieldKind::String),
            Kind::Ruby => None,
        }
    }

    /// The accessor for a field of the type named `name` (a type table name).
    fn of(name: &str) -> Kind {
        match CType::from_name(name) {
            Some(CType::I8) => Kind::I8,
            Some(CType::U8) => Kind::U8,
            Some(CType::I16) => Kind::I16,
            Some(CType::U16) => Kind::U16,
            Some(CType::I32) => Kind::I32,
            Some(CType::U32) => Kind::U32,
            Some(CType::I64) => Kind::I64,
            Some(CType::U64) => Kind::U64,
            Some(CType::F32) => Kind::F32,
            Some(CType::F64) => Kind::F64,
            Some(CType::Pointer) => Kind::Ptr,
            Some(CType::CString) => Kind::Str,
            _ => Kind::Ruby,
        }
    }
}

struct Entry {
    /// The field name as given to `layout` (a Symbol), compared by VALUE.
    name: VALUE,
    offset: usize,
    kind: Kind,
    /// The Ruby `StructLayout::Field`: what the `get`/`put` hooks get for
    /// every value not accessed in place.
    field: VALUE,
}

/// See `FieldTable::index`.
struct NameIndex {
    /// (name VALUE, entry index); an empty slot's name is 0 (`false`,
    /// never a field name).
    slots: Box<[(VALUE, usize)]>,
    /// 64 − log2(slots.len()): `home` keeps the hash's top bits.
    shift: u32,
}

impl NameIndex {
    /// The index of `entries`; a repeated name finds its last entry, as
    /// the ffi gem's Hash does.
    fn new(entries: &[Entry]) -> NameIndex {
        let len = (2 * entries.len()).next_power_of_two().max(2);
        let mut index = NameIndex { slots: vec![(0, 0); len].into(), shift: 64 - len.trailing_zeros() };
        for (i, e) in entries.iter().enumerate() {
            let mut slot = index.home(e.name);
            while index.slots[slot].0 != 0 && index.slots[slot].0 != e.name {
                slot = (slot + 1) & (len - 1);
            }
            index.slots[slot] = (e.name, i);
        }
        index
    }

    /// The first slot to probe for `name`: the top bits of a Fibonacci
    /// hash, which spread both static Symbols (serial numbers in the high
    /// bits) and dynamic ones (heap addresses).
    #[inline]
    fn home(&self, name: VALUE) -> usize {
        ((name as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// The index of the entry named `name`. At least half the slots are
    /// empty, so the probe ends.
    #[inline]
    fn find(&self, name: VALUE) -> Option<usize> {
        let mut slot = self.home(name);
        loop {
            let (key, entry) = self.slots[slot];
            if key == name {
                return Some(entry);
            }
            if key == 0 {
                return None;
            }
            slot = (slot + 1) & (self.slots.len() - 1);
        }
    }
}

/// A layout's fields for the native `[]`/`[]=`. Built once per layout.
#[derive(TypedData)]
#[magnus(class = "FiddleJit::StructFieldTable", free_immediately, size, mark, frozen_shareable)]
pub struct FieldTable {
    entries: Vec<Entry>,
    /// `entries` by name VALUE, so the 11th field of a struct costs what
    /// the first does: open addressing, each slot an entry's index + 1 (0
    /// empty), a power of two at least twice the entries.
    index: NameIndex,
    /// The layout's size: what `Struct.new` allocates.
    size: usize,
    /// The field names, a frozen Array: `Struct#members` returns a copy.
    members: VALUE,
    /// name → Field Hash: names that are not the identical VALUE (e.g. an
    /// equal String) resolve through it exactly as the Ruby version did.
    field_map: VALUE,
    /// Until the first access through the generic `[]`/`[]=`, which emits
    /// the accessors of the layout's class (`ruby::struct_accessors`): most
    /// classes of a big binding are never accessed and cost no code.
    accessors_pending: AtomicBool,
}

impl DataTypeFunctions for FieldTable {
    fn mark(&self, marker: &Marker) {
        // SAFETY: VALUEs stored from live objects, kept alive and pinned
        // (rb_gc_mark) by this function, so the raw copies stay valid.
        let mark = |v: VALUE| marker.mark(unsafe { Value::from_raw(v) });
        mark(self.field_map);
        mark(self.members);
        for e in &self.entries {
            mark(e.name);
            mark(e.field);
        }
    }
}

impl FieldTable {
    /// `FiddleJit::StructFieldTable.build(field_map, [[name, offset, accessor suffix or nil, field], ...], size)`.
    fn build(ruby: &Ruby, field_map: RHash, fields: RArray, size: usize) -> Result<Obj<FieldTable>, Error> {
        let mut entries = Vec::with_capacity(fields.len());
        let members = ruby.ary_new_capa(fields.len());
        for row in fields.into_iter() {
            let row = RArray::try_convert(row)?;
            let (name, offset, suffix, field): (Value, usize, Option<String>, Value) =
                (row.entry(0)?, row.entry(1)?, row.entry(2)?, row.entry(3)?);
            let kind = suffix.as_deref().map_or(Kind::Ruby, Kind::of);
            members.push(name)?;
            entries.push(Entry { name: name.as_raw(), offset, kind, field: field.as_raw() });
        }
        members.freeze();
        let index = NameIndex::new(&entries);
        // A repeated name reads as its last field everywhere (`values`
        // too), as in the ffi gem.
        for i in 0..entries.len() {
            let last = index.find(entries[i].name).expect("indexed above");
            let Entry { offset, kind, field, .. } = entries[last];
            entries[i] = Entry { name: entries[i].name, offset, kind, field };
        }
        Ok(ruby.obj_wrap(FieldTable {
            entries,
            index,
            size,
            members: members.as_raw(),
            field_map: field_map.as_raw(),
            accessors_pending: AtomicBool::new(true),
        }))
    }

    #[inline]
    fn find(&self, name: VALUE) -> Option<&Entry> {
        self.index.find(name).map(|i| &self.entries[i])
    }

    /// What the JIT-emitted `[]`/`[]=` of this table (the object `table`)
    /// are built from: its number, `:pointer` and `:string` fields, each
    /// under the name its entry has (a repeated name's entries all hold its
    /// last field). None when no field or too many would be inline: the
    /// generic cfuncs serve then.
    pub(crate) fn access(&self, table: VALUE) -> Option<StructAccess> {
        let fields: Vec<AccessField> = self
            .entries
            .iter()
            .filter_map(|e| {
                let kind = e.kind.inline()?;
                let offset = u32::try_from(e.offset).ok().filter(|o| *o < i32::MAX as u32 - 8)?;
                Some(AccessField { name: e.name as u64, offset, kind })
            })
            .collect();
        if fields.is_empty() || fields.len() > struct_access::MAX_FIELDS {
            return None;
        }
        Some(StructAccess {
            data_type: StructData::data_type_address() as u64,
            table: table as u64,
            memory_at: std::mem::offset_of!(StructData, memory) as i32,
            table_at: std::mem::offset_of!(StructData, table) as i32,
            pointer: Pointer::inline_layout(),
            fields,
        })
    }

    /// The entry for `name`: the identical Symbol, else the layout's Hash
    /// lookup (an equal String...), else ArgumentError as the ffi gem.
    unsafe fn find_or_raise(&self, name: VALUE) -> &Entry {
        if let Some(e) = self.find(name) {
            return e;
        }
        let field = rb_sys::rb_hash_aref(self.field_map, name);
        match self.entries.iter().find(|e| e.field == field) {
            Some(e) => e,
            None => {
                let name = Value::from_raw(name);
                raise_or(Err(Error::new(
                    Ruby::get_unchecked().exception_arg_error(),
                    format!("No such field '{}'", name.to_s().map(|s| s.into_owned()).unwrap_or_default()),
                )))
            }
        }
    }
}

/// The Ruby code Rust hands what it does not do natively, registered once
/// by lib/ (`StructFieldTable.__hooks__`) as shareable lambdas, so they
/// run in any Ractor and no lib/ method is called by name from here:
/// - `get.(field, pointer)`, `put.(field, pointer, value)`: a field value
///   not accessed in place (nested structs, arrays, enums, custom types,
///   byte-swapped or bounded memory, non-Fixnum values...);
/// - `initialize.(struct, *args)`: `Struct#initialize` with a layout spec,
///   without a layout, or with something other than a Pointer.
struct Hooks {
    get: VALUE,
    put: VALUE,
    initialize: VALUE,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Private `StructFieldTable.__hooks__(get, put, initialize)`.
fn register_hooks(get: Value, put: Value, initialize: Value) {
    let hooks = Hooks { get: get.as_raw(), put: put.as_raw(), initialize: initialize.as_raw() };
    for v in [hooks.get, hooks.put, hooks.initialize] {
        // SAFETY: live VALUEs, made permanent mark roots (so pinned)
        // before they are stored.
        unsafe { rb_sys::rb_gc_register_mark_object(v) };
    }
    let _ = HOOKS.set(hooks);
}

fn hooks() -> &'static Hooks {
    HOOKS.get().expect("StructFieldTable.__hooks__ registered by struct_layout.rb")
}

/// Calls a hook (a Proc) with `args`.
unsafe fn call_hook(hook: VALUE, args: &[VALUE]) -> VALUE {
    rb_sys::rb_proc_call_with_block(hook, args.len() as _, args.as_ptr(), rb_sys::Qnil as VALUE)
}

impl StructData {
    /// Address of the `rb_data_type_t` every Struct object carries (compared
    /// by the stubs).
    pub fn data_type_address() -> usize {
        <StructData as TypedData>::data_type() as *const _ as usize
    }

    /// The StructData of `value` if it is a Struct: a type check and one
    /// load, no exception built on failure.
    pub fn from_value<'a>(value: Value) -> Option<&'a StructData> {
        objects::typed_data::<StructData>(value.as_raw())
    }

    /// The address of a FiddleJit::Struct's memory (its Pointer), without
    /// calling `to_ptr`: the ffi gem also special-cases its Struct class.
    /// Used by the :pointer slow path (the stubs check Structs inline).
    pub fn address_of(value: Value) -> Option<usize> {
        StructData::from_value(value).map(|d| d.memory().address())
    }

    /// The Pointer this struct views (its data; the shared NULL before
    /// `initialize`).
    pub fn memory(&self) -> &Pointer {
        // SAFETY: `memory` is the data of `pointer` (alive: marked) or the
        // leaked NULL data.
        unsafe { &*(self.memory.get() as *const Pointer) }
    }

    /// Private `__set_memory__(pointer, table)`: what the Struct views and
    /// how its fields are found.
    fn set_memory(ruby: &Ruby, rb_self: Obj<StructData>, pointer: Value, table: Obj<FieldTable>) -> Result<(), Error> {
        // The ffi gem 1.17 raises TypeError here (1.15: ArgumentError).
        let memory = Pointer::from_value(pointer).ok_or_else(|| {
            Error::new(
                ruby.exception_type_error(),
                format!("wrong argument type {} (expected FiddleJit::Pointer)", pointer.class()),
            )
        })?;
        rb_self.view(rb_self.as_raw(), pointer.as_raw(), memory, table.as_raw());
        Ok(())
    }
}

/// The receiver of a method defined on FiddleJit::Struct. A subclass
/// instance always has StructData (the allocator is inherited); anything
/// else reaching here (a method re-bound by force) is a TypeError.
unsafe fn receiver<'a>(rb_self: VALUE) -> &'a StructData {
    match StructData::from_value(Value::from_raw(rb_self)) {
        Some(d) => d,
        None => raise_or(Err(Error::new(
            Ruby::get_unchecked().exception_type_error(),
            "wrong argument type (expected FiddleJit::Struct)",
        ))),
    }
}

impl StructData {
    /// The layout's table, once `initialize` (or the lazy allocation) set
    /// it. `table` and `pointer` are only ever set together.
    #[inline]
    fn table(&self) -> Option<&FieldTable> {
        match self.table.get() {
            0 => None,
            // SAFETY: `table` only ever holds a FieldTable object the
            // struct pins (set from an Obj<FieldTable> or class_table).
            t => Some(unsafe { objects::typed_data_unchecked::<FieldTable>(t as VALUE) }),
        }
    }

    /// Views `pointer` (a Pointer object, whose data is `memory`) through
    /// the layout `table`.
    /// `owner`: this struct's VALUE (for the write barriers).
    fn view(&self, owner: VALUE, pointer: VALUE, memory: &Pointer, table: VALUE) {
        // Order matters for the GC only in that both VALUEs are on the
        // caller's stack (arguments or locals) until this returns.
        self.pointer.set(pointer as usize);
        self.table.set(table as usize);
        self.memory.set(memory as *const Pointer as usize);
        objects::written(owner, pointer);
        objects::written(owner, table);
    }
}

/// The RuntimeError the ffi gem raises for a Struct class without a layout.
unsafe fn no_layout(klass: VALUE) -> ! {
    let name = Value::from_raw(klass).to_s().map(|s| s.into_owned()).unwrap_or_default();
    raise_or(Err(Error::new(
        Ruby::get_unchecked().exception_runtime_error(),
        format!("no Struct layout configured for {name}"),
    )))
}

/// The table and Pointer VALUE of an initialized struct. A struct whose
/// subclass `initialize` did not call super gets zeroed memory of its
/// layout's size now, as the ffi gem allocates on first field access.
unsafe fn parts<'a>(d: &'a StructData, rb_self: VALUE) -> (&'a FieldTable, VALUE) {
    if d.table().is_none() {
        let klass = rb_sys::rb_obj_class(rb_self);
        let (table_value, table) = class_table(klass).unwrap_or_else(|| no_layout(klass));
        let pointer = raise_or(Pointer::new_memory(table.size));
        let memory = Pointer::from_value(pointer).expect("a new MemoryPointer");
        d.view(rb_self, pointer.as_raw(), memory, table_value);
    }
    (d.table().expect("set above"), d.pointer.get() as VALUE)
}

/// The struct and its table entry for `name` on the hot path: an
/// initialized FiddleJit::Struct and a field Symbol of its layout (None
/// sends the caller to the checked path, which allocates, resolves other
/// names or raises).
#[inline(always)]
fn fast_entry<'a>(rb_self: VALUE, name: VALUE) -> Option<(&'a StructData, &'a Entry)> {
    // SAFETY: `rb_self` is a live VALUE (the receiver).
    let d = StructData::from_value(unsafe { Value::from_raw(rb_self) })?;
    let table = d.table().filter(|t| !t.accessors_pending.load(Relaxed))?;
    Some((d, table.find(name)?))
}

/// On the first access through the generic methods to a struct of a
/// layout, the accessors of its class (`ruby::struct_accessors`).
unsafe fn first_access(rb_self: VALUE, d: &StructData, table: &FieldTable) {
    if table.accessors_pending.swap(false, Relaxed) {
        super::struct_accessors::install_for(rb_self, d.table.get() as VALUE, table);
    }
}

#[inline]
fn read<T: Scalar>(p: &Pointer, off: usize) -> Option<VALUE> {
    // SAFETY: span_at checked the bounds.
    p.span_at(off, std::mem::size_of::<T>(), READ).map(|at| unsafe { (at as *const T).read_unaligned() }.to_raw())
}

/// A `:string` field: nil for NULL, else a new (binary) String of the bytes
/// up to the first NUL, as the Ruby `StructLayout::String#get`
/// (`get_pointer(offset)`, then `get_string(0)` of that unbounded pointer).
fn read_c_string(p: &Pointer, off: usize) -> Option<VALUE> {
    let at = p.span_at(off, std::mem::size_of::<usize>(), READ)?;
    // SAFETY: span_at checked the bounds.
    let address = unsafe { (at as *const usize).read_unaligned() };
    if address == 0 {
        return Some(rb_sys::Qnil as VALUE);
    }
    // SAFETY: the C string C stored in the field (the caller's promise, as
    // with the ffi gem); read up to its NUL. rb_str_new copies the bytes.
    unsafe {
        let len = libc::strlen(address as *const std::ffi::c_char);
        Some(rb_sys::rb_str_new(address as *const std::ffi::c_char, len as _))
    }
}

#[inline]
fn write<T: Scalar>(p: &Pointer, off: usize, v: T) -> bool {
    match p.span_at(off, std::mem::size_of::<T>(), WRITE) {
        Some(at) => {
            // SAFETY: span_at checked the bounds.
            unsafe { (at as *mut T).write_unaligned(v) };
            true
        }
        None => false,
    }
}

/// A Fixnum or flonum as NUM2DBL would convert it; None for anything else.
#[inline]
fn fast_double(v: VALUE) -> Option<f64> {
    if v & 1 == 1 {
        Some(((v as i64) >> 1) as f64)
    } else if v & 3 == 2 {
        // SAFETY: a flonum; rb_float_value decodes it without allocating.
        Some(unsafe { rb_sys::rb_float_value(v) })
    } else {
        None
    }
}

#[inline(always)]
fn read_native(kind: Kind, p: &Pointer, off: usize) -> Option<VALUE> {
    match kind {
        Kind::I8 => read::<i8>(p, off),
        Kind::U8 => read::<u8>(p, off),
        Kind::I16 => read::<i16>(p, off),
        Kind::U16 => read::<u16>(p, off),
        Kind::I32 => read::<i32>(p, off),
        Kind::U32 => read::<u32>(p, off),
        Kind::I64 => read::<i64>(p, off),
        Kind::U64 => read::<u64>(p, off),
        Kind::F32 => read::<f32>(p, off),
        Kind::F64 => read::<f64>(p, off),
        Kind::Ptr => read::<super::pointer::PtrVal>(p, off),
        Kind::Str => read_c_string(p, off),
        Kind::Ruby => None,
    }
}

/// The address a `:pointer` field is set to from `v`, when that needs no
/// Ruby call: nil, a Pointer, a Struct (its memory) or a Function.
fn fast_address(v: VALUE) -> Option<usize> {
    if v == rb_sys::Qnil as VALUE {
        return Some(0);
    }
    // SAFETY: `v` is a live VALUE (a method argument).
    let value = unsafe { Value::from_raw(v) };
    Pointer::address_of(value)
        .or_else(|| StructData::from_value(value).map(|d| d.memory().address_value()))
        .or_else(|| super::function::Function::address_of(value))
}

#[inline(always)]
fn write_native(kind: Kind, p: &Pointer, off: usize, v: VALUE) -> bool {
    fn int<T: Scalar>(p: &Pointer, off: usize, v: VALUE) -> bool {
        T::from_raw_fast(v).is_some_and(|x| write(p, off, x))
    }
    match kind {
        Kind::I8 => int::<i8>(p, off, v),
        Kind::U8 => int::<u8>(p, off, v),
        Kind::I16 => int::<i16>(p, off, v),
        Kind::U16 => int::<u16>(p, off, v),
        Kind::I32 => int::<i32>(p, off, v),
        Kind::U32 => int::<u32>(p, off, v),
        Kind::I64 => int::<i64>(p, off, v),
        Kind::U64 => int::<u64>(p, off, v),
        Kind::F32 => fast_double(v).is_some_and(|d| write(p, off, d as f32)),
        Kind::F64 => fast_double(v).is_some_and(|d| write(p, off, d)),
        Kind::Ptr => fast_address(v).is_some_and(|a| write(p, off, a as u64)),
        Kind::Str | Kind::Ruby => false,
    }
}

/// `Struct#[](name)`: a number, pointer or string field read in place,
/// else the Field's `get`. Also where a layout's JIT-emitted `[]` goes for
/// everything it does not do itself (`ruby::struct_accessors`).
pub(crate) unsafe extern "C" fn struct_aref(rb_self: VALUE, name: VALUE) -> VALUE {
    match fast_entry(rb_self, name).and_then(|(d, e)| read_native(e.kind, d.memory(), e.offset)) {
        Some(v) => v,
        None => aref_checked(rb_self, name),
    }
}

/// `Struct#[]` off the hot path: kept out of line so the hot path saves
/// no registers for it.
#[cold]
#[inline(never)]
unsafe fn aref_checked(rb_self: VALUE, name: VALUE) -> VALUE {
    let d = receiver(rb_self);
    let (table, pointer) = parts(d, rb_self);
    first_access(rb_self, d, table);
    entry_value(d, table.find_or_raise(name), pointer)
}

/// A field's value: read in place, or through its Ruby Field.
unsafe fn entry_value(d: &StructData, e: &Entry, pointer: VALUE) -> VALUE {
    if let Some(v) = read_native(e.kind, d.memory(), e.offset) {
        return v;
    }
    call_hook(hooks().get, &[e.field, pointer])
}

/// `Struct#values`: every field's value, in layout order.
unsafe extern "C" fn struct_values(rb_self: VALUE) -> VALUE {
    let d = receiver(rb_self);
    let (table, pointer) = parts(d, rb_self);
    let ary = rb_sys::rb_ary_new_capa(table.entries.len() as _);
    for e in &table.entries {
        rb_sys::rb_ary_push(ary, entry_value(d, e, pointer));
    }
    ary
}

/// `Struct#members`: the layout's field names (a new Array, as the ffi
/// gem's). A struct without memory yet reads its class's layout.
unsafe extern "C" fn struct_members(rb_self: VALUE) -> VALUE {
    let table = match receiver(rb_self).table() {
        Some(table) => table,
        None => {
            let klass = rb_sys::rb_obj_class(rb_self);
            class_table(klass).unwrap_or_else(|| no_layout(klass)).1
        }
    };
    rb_sys::rb_ary_dup(table.members)
}

/// `Struct#pointer` / `#to_ptr`: the Pointer, or nil before `initialize`.
unsafe extern "C" fn struct_pointer(rb_self: VALUE) -> VALUE {
    match receiver(rb_self).pointer.get() {
        0 => rb_sys::Qnil as VALUE,
        p => p as VALUE,
    }
}

/// `Struct#null?`: whether the memory's address is NULL, read directly as
/// the ffi gem's struct_null_p does (no `pointer.null?` dispatch). Before
/// `initialize` (no memory) it is `nil.null?`, the NoMethodError of
/// `pointer.null?`.
unsafe extern "C" fn struct_null_p(rb_self: VALUE) -> VALUE {
    let data = receiver(rb_self);
    if data.pointer.get() == 0 {
        return rb_sys::rb_funcallv(rb_sys::Qnil as VALUE, rb_sys::rb_intern(c"null?".as_ptr()), 0, std::ptr::null());
    }
    (if data.memory().address() == 0 { rb_sys::Qtrue } else { rb_sys::Qfalse }) as VALUE
}

/// The FieldTable of `klass`'s layout (its own or the nearest superclass's
/// `@layout`), without calling Ruby; None sends the caller to the Ruby path.
pub(crate) unsafe fn class_table(klass: VALUE) -> Option<(VALUE, &'static FieldTable)> {
    match rb_sys::rb_attr_get(klass, layout_ids().0) {
        layout if layout == rb_sys::Qnil as VALUE => inherited_table(klass),
        layout => layout_table(layout),
    }
}

/// `class_table` for a class without a layout of its own (a subclass of a
/// laid-out struct class): the nearest superclass's.
#[cold]
#[inline(never)]
unsafe fn inherited_table(klass: VALUE) -> Option<(VALUE, &'static FieldTable)> {
    let class = layout_class(rb_sys::rb_class_superclass(klass))?;
    layout_table(rb_sys::rb_attr_get(class, layout_ids().0))
}

/// The nearest class of `klass`'s chain (itself first) with a layout of
/// its own: the one whose layout `class_table` finds.
pub(crate) unsafe fn layout_class(klass: VALUE) -> Option<VALUE> {
    let mut k = klass;
    while k != 0 && k != rb_sys::Qnil as VALUE {
        if rb_sys::rb_attr_get(k, layout_ids().0) != rb_sys::Qnil as VALUE {
            return Some(k);
        }
        k = rb_sys::rb_class_superclass(k);
    }
    None
}

/// The FieldTable of a StructLayout `layout` (not nil), if it is one.
unsafe fn layout_table(layout: VALUE) -> Option<(VALUE, &'static FieldTable)> {
    if layout & 7 != 0 || layout == rb_sys::Qfalse as VALUE {
        return None;
    }
    let table = match super::footprint::layout_native_table(layout) {
        Some(table) => table,
        None => rb_sys::rb_attr_get(layout, layout_ids().1),
    };
    crate::runtime::objects::typed_data::<FieldTable>(table).map(|data| (table, data))
}

/// The IDs of `@layout` (a Struct class's) and `@native_table` (a layout's).
fn layout_ids() -> (rb_sys::ID, rb_sys::ID) {
    // SAFETY: rb_intern on static C strings.
    *LAYOUT_IDS.get_or_init(|| unsafe { (rb_sys::rb_intern(c"@layout".as_ptr()), rb_sys::rb_intern(c"@native_table".as_ptr())) })
}

static LAYOUT_IDS: OnceLock<(rb_sys::ID, rb_sys::ID)> = OnceLock::new();

/// The size of a Struct class with its own layout (`MemoryPointer.new(StructClass)`),
/// without calling Ruby; None for anything else.
pub(crate) fn struct_class_size(v: VALUE) -> Option<usize> {
    // SAFETY: `v` is a live VALUE; only its type is read before the ivars.
    unsafe {
        if crate::runtime::objects::builtin_type(v) != Some(rb_sys::ruby_value_type::RUBY_T_CLASS as i32) {
            return None;
        }
        match rb_sys::rb_attr_get(v, layout_ids().0) {
            layout if layout == rb_sys::Qnil as VALUE => None,
            layout => layout_table(layout).map(|(_, t)| t.size),
        }
    }
}

/// `Struct#initialize(pointer = nil, *spec)`: with no spec and a layout
/// found on the class chain, natively (a new zeroed MemoryPointer of the
/// layout's size, or the Pointer given); anything else (a spec, no layout,
/// not a Pointer) through the `initialize` hook, which raises as the ffi
/// gem does.
unsafe extern "C" fn struct_initialize(argc: std::ffi::c_int, argv: *const VALUE, rb_self: VALUE) -> VALUE {
    let arg = if argc == 1 { *argv } else { rb_sys::Qnil as VALUE };
    if argc <= 1 {
        if let Some((table_value, table)) = class_table(rb_sys::rb_obj_class(rb_self)) {
            let d = receiver(rb_self);
            let pointer = if arg == rb_sys::Qnil as VALUE {
                raise_or(Pointer::new_memory(table.size)).as_raw()
            } else {
                arg
            };
            if let Some(memory) = Pointer::from_value(Value::from_raw(pointer)) {
                d.view(rb_self, pointer, memory, table_value);
                return rb_sys::Qnil as VALUE;
            }
        }
    }
    let args: Vec<VALUE> = std::iter::once(rb_self).chain(std::slice::from_raw_parts(argv, argc as usize).iter().copied()).collect();
    call_hook(hooks().initialize, &args)
}

/// `Struct#[]=(name, value)`; returns `value`. FrozenError on a frozen
/// struct, as in the ffi gem (frozen memory raises in the Pointer checks).
/// The JIT-emitted `[]=`'s fallback, as `struct_aref` is `[]`'s.
pub(crate) unsafe extern "C" fn struct_aset(rb_self: VALUE, name: VALUE, value: VALUE) -> VALUE {
    if let Some((d, e)) = fast_entry(rb_self, name) {
        // A Struct is a heap object: its flags word is readable.
        let frozen = *(rb_self as *const VALUE) & rb_sys::ruby_fl_type::RUBY_FL_FREEZE as VALUE != 0;
        if !frozen && write_native(e.kind, d.memory(), e.offset, value) {
            return value;
        }
    }
    aset_checked(rb_self, name, value)
}

/// `Struct#[]=` off the hot path (see `aref_checked`).
#[cold]
#[inline(never)]
unsafe fn aset_checked(rb_self: VALUE, name: VALUE, value: VALUE) -> VALUE {
    if rb_sys::rb_obj_frozen_p(rb_self) != rb_sys::Qfalse as VALUE {
        rb_sys::rb_error_frozen_object(rb_self);
    }
    let d = receiver(rb_self);
    let (table, pointer) = parts(d, rb_self);
    first_access(rb_self, d, table);
    let e = table.find_or_raise(name);
    if !write_native(e.kind, d.memory(), e.offset, value) {
        call_hook(hooks().put, &[e.field, pointer, value]);
    }
    value
}

fn define_raw(class: magnus::RClass, name: &str, func: *const (), arity: i32) {
    let name = std::ffi::CString::new(name).expect("method name");
    // SAFETY: `func` is one of the raw cfuncs above with `arity` VALUE
    // arguments after self.
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(func);
        rb_sys::rb_define_method(class.as_raw(), name.as_ptr(), Some(func), arity);
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Struct", ruby.class_object())?;
    class.define_alloc_func::<StructData>();
    class.define_private_method("__set_memory__", method!(StructData::set_memory, 2))?;
    define_raw(class, "pointer", struct_pointer as *const (), 0);
    define_raw(class, "to_ptr", struct_pointer as *const (), 0);
    define_raw(class, "null?", struct_null_p as *const (), 0);
    define_raw(class, "initialize", struct_initialize as *const (), -1);
    define_raw(class, "members", struct_members as *const (), 0);
    define_raw(class, "values", struct_values as *const (), 0);
    define_raw(class, "[]", struct_aref as *const (), 1);
    define_raw(class, "[]=", struct_aset as *const (), 2);

    let table = module.define_class("StructFieldTable", ruby.class_object())?;
    table.undef_default_alloc_func();
    table.define_singleton_method("build", function!(FieldTable::build, 3))?;
    table.define_singleton_method("__hooks__", function!(register_hooks, 3))?;
    Ok(())
}
