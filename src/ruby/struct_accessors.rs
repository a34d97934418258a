//! Each Struct class's own `#[]` and `#[]=`: machine code emitted for its
//! layout (`lower::struct_access`), so reading or writing a number field
//! costs what a C extension's accessor costs. They are made on the first
//! access to a struct of a layout, which goes through the generic methods
//! (`struct_memory::struct_aref`/`struct_aset`, which then call
//! [`install_for`]): classes never accessed (most of a big binding's) cost
//! no code and no time. The
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

use super::struct_memory::{class_table, layout_class, struct_aref, struct_aset, FieldTable};
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

/// Emits and defines the accessors of the class whose layout's table
/// `table` is (the nearest laid-out class of `rb_self`'s), unless that
/// class's `[]` or `[]=` is written in Ruby (there or in a module it
/// includes, which its own methods would shadow), or its layout changed
/// since `rb_self` was made, or the layout has no field the code accesses
/// inline (or too many), or the class is frozen. Called with the GVL by the
/// generic methods; raises nothing.
pub(crate) unsafe fn install_for(rb_self: VALUE, table: VALUE, data: &FieldTable) {
    let Some(class) = layout_class(rb_sys::rb_obj_class(rb_self)) else { return };
    if class_table(class).map(|(t, _)| t) != Some(table) || !brackets_are_native(class) {
        return;
    }
    let Some(Ok(entries)) = data.access(table).map(|access| jit::compile_struct_accessors(&access, generic())) else {
        return;
    };
    let Ok(owner) = owner(&Ruby::get_unchecked(), class) else { return };
    define(class, [entries[0].address, entries[1].address]);
    owner.installed.borrow_mut().push((entries, table));
    OWNED.fetch_add(1, Ordering::Relaxed);
}

/// The generic `Struct#[]` and `#[]=`: the accessors' fallbacks.
fn generic() -> [usize; 2] {
    [struct_aref as *const () as usize, struct_aset as *const () as usize]
}

/// Defines `class`'s `[]` and `[]=` as the accessors at `funcs`.
fn define(class: VALUE, funcs: [usize; 2]) {
    for (name, func, arity) in [(c"[]", funcs[0], 1), (c"[]=", funcs[1], 2)] {
        // SAFETY: `func` is an accessor of `arity` VALUE arguments after
        // self, alive as long as the class (its owner holds it).
        unsafe {
            let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(func);
            rb_sys::rb_define_method(class, name.as_ptr(), Some(func), arity);
        }
    }
}

/// Whether `class`'s `[]` and `[]=` are native (no source location).
fn brackets_are_native(class: VALUE) -> bool {
    let native = magnus::rb_sys::protect(|| {
        // SAFETY: core methods of a live class and method, with the GVL;
        // an exception is caught by protect.
        unsafe {
            let call = |receiver: VALUE, method: &std::ffi::CStr, args: &[VALUE]| {
                rb_sys::rb_funcallv(receiver, rb_sys::rb_intern(method.as_ptr()), args.len() as _, args.as_ptr())
            };
            let native = [c"[]", c"[]="].iter().all(|name| {
                let method = call(class, c"instance_method", &[rb_sys::rb_id2sym(rb_sys::rb_intern(name.as_ptr()))]);
                call(method, c"source_location", &[]) == rb_sys::Qnil as VALUE
            });
            (if native { rb_sys::Qtrue } else { rb_sys::Qfalse }) as VALUE
        }
    });
    matches!(native, Ok(v) if v == rb_sys::Qtrue as VALUE)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let native = module.define_module("Native")?;
    native.define_class("StructAccessors", ruby.class_object())?.undef_default_alloc_func();
    native.define_singleton_method("struct_accessor_total", function!(|| OWNED.load(Ordering::Relaxed), 0))?;
    Ok(())
}

