//! Each Struct class's own `#[]` and `#[]=`: machine code emitted for its
//! layout (`lower::struct_access`) when the layout is set, so reading or
//! writing a number field costs what a C extension's accessor costs. The
//! code compares the name with the layout's field Symbols, checks the
//! struct and its memory inline, and jumps to the generic cfuncs
//! (`struct_memory::struct_aref`/`struct_aset`) for everything else, which
//! keeps every error and slow case as it was.
//!
//! No per-field methods (`s.x`) are defined: the ffi gem has none, and they
//! would shadow the user's own methods of those names.
//!
//! Lifetime: the class **owns** its accessors' code, through a hidden
//! instance variable holding a `StructAccessors` (as a module owns its
//! stubs, see `stub_lifetime`), which also marks (and so pins) the field
//! tables the code compares with. A re-laid-out class keeps its earlier
//! accessors (a Method object taken before may still run them) until the
//! class is collected; then the owner's free function gives all of the
//! code back to the arena (`MethodEntry`'s drop; no lock but the queue's,
//! allowed inside the GC). Nothing can run the code of a collected class:
//! a running accessor's method entry, a Method object and every subclass
//! mark the class.

use super::struct_memory::{struct_aref, struct_aset, FieldTable};
use crate::runtime::jit::{self, MethodEntry};
use crate::runtime::objects;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::typed_data::Obj;
use magnus::{function, gc, prelude::*, DataTypeFunctions, Error, RModule, Ruby, TypedData, Value};
use rb_sys::VALUE;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The accessors a Struct class installed, with the table each compares with.
#[derive(TypedData, Default)]
#[magnus(class = "FiddleJit::Native::StructAccessors", mark, free_immediately, size)]
struct StructAccessors {
    installed: RefCell<Vec<([MethodEntry; 2], VALUE)>>,
}

// SAFETY: touched only with the GVL (install, mark, free), whichever thread holds it.
unsafe impl Send for StructAccessors {}

/// Accessor pairs owned by live classes (`Native.struct_accessor_total`, for tests).
static OWNED: AtomicUsize = AtomicUsize::new(0);

impl DataTypeFunctions for StructAccessors {
    fn mark(&self, marker: &gc::Marker) {
        for (_, table) in self.installed.borrow().iter() {
            // SAFETY: a live FieldTable when installed, kept alive (and
            // pinned: rb_gc_mark) from then on by this function.
            marker.mark(unsafe { Value::from_raw(*table) });
        }
    }
}

impl Drop for StructAccessors {
    fn drop(&mut self) {
        // Dropping the entries queues their code for the arena.
        OWNED.fetch_sub(self.installed.get_mut().len(), Ordering::Relaxed);
    }
}

fn owner_id() -> rb_sys::ID {
    static ID: AtomicUsize = AtomicUsize::new(0);
    match ID.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: interning with the GVL (a method body).
            let id = unsafe { rb_sys::rb_intern(c"__fiddle_jit_struct_accessors__".as_ptr()) };
            ID.store(id as usize, Ordering::Relaxed);
            id
        }
        id => id as rb_sys::ID,
    }
}

/// The owner of `class`'s accessors, created on first use (the class
/// holds it in a hidden instance variable: no `@`, invisible to Ruby).
fn owner<'c>(ruby: &Ruby, class: VALUE) -> Result<&'c StructAccessors, Error> {
    // SAFETY: reads an instance variable of a live class, with the GVL.
    let existing = unsafe { rb_sys::rb_ivar_get(class, owner_id()) };
    if let Some(owner) = objects::typed_data::<StructAccessors>(existing) {
        return Ok(owner);
    }
    let owner = ruby.obj_wrap(StructAccessors::default());
    magnus::rb_sys::protect(|| {
        // SAFETY: sets a hidden instance variable, with the GVL; a frozen
        // class raises FrozenError (caught by protect).
        unsafe { rb_sys::rb_ivar_set(class, owner_id(), owner.as_raw()) }
    })?;
    // SAFETY: the class now holds the owner, which lives as long as it.
    Ok(unsafe { &*Obj::as_ptr(owner) })
}

/// Private `Struct.__install_accessors__(table)`: defines this class's
/// `[]` and `[]=` for its layout's field table; false (nothing defined)
/// when the layout has no field the code would access inline, or too
/// many, or the code cannot be emitted here.
fn install(ruby: &Ruby, class: Value, table: Value) -> Result<bool, Error> {
    let Some(access) = objects::typed_data::<FieldTable>(table.as_raw()).and_then(|t| t.access(table.as_raw())) else {
        return Ok(false);
    };
    let owner = owner(ruby, class.as_raw())?;
    let Ok(entries) = jit::compile_struct_accessors(&access, [struct_aref as *const () as usize, struct_aset as *const () as usize]) else {
        return Ok(false);
    };
    for (name, entry, arity) in [(c"[]", &entries[0], 1), (c"[]=", &entries[1], 2)] {
        // SAFETY: the entry is a cfunc of `arity` VALUE arguments after
        // self, alive as long as the class (its owner holds it, below).
        unsafe {
            let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(entry.address);
            rb_sys::rb_define_method(class.as_raw(), name.as_ptr(), Some(func), arity);
        }
    }
    owner.installed.borrow_mut().push((entries, table.as_raw()));
    OWNED.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Struct", ruby.class_object())?;
    class.singleton_class()?.define_private_method("__install_accessors__", magnus::method!(install, 1))?;
    let native = module.define_module("Native")?;
    native.define_class("StructAccessors", ruby.class_object())?.undef_default_alloc_func();
    native.define_singleton_method("struct_accessor_total", function!(|| OWNED.load(Ordering::Relaxed), 0))?;
    Ok(())
}

