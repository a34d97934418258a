//! `Function.new`'s common case, native: a Proc or a Pointer for a
//! signature of builtin type Symbols that `cached_signature` has seen
//! before (lib/fiddle_jit/function.rb). The Ruby path took seven method
//! calls to get there; ffi-yajl makes 11 Functions per parse, gir_ffi three
//! per HashTable.

use super::{trie_walk, Function};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{prelude::*, Error, RArray, RClass, Ruby, Value};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// `SIGNATURES` (registered once by lib/, `__signatures=`), read only in
/// the main Ractor: the Hash is not shareable.
static TRIE: OnceLock<usize> = OnceLock::new();

/// `Function.__signatures=(trie)`: keeps `trie` (alive for the process).
pub(super) fn set_trie(trie: magnus::RHash) {
    // SAFETY: a live Hash, registered so it is never collected or moved.
    unsafe { rb_sys::rb_gc_register_mark_object(trie.as_raw()) };
    let _ = TRIE.set(trie.as_raw() as usize);
}

/// The members of a `Function::Signature` (a ::Struct), by index.
const NATIVE_PARAMS: i64 = 2;
const NATIVE_RET: i64 = 3;
const ADAPT: i64 = 4;
const TYPES: i64 = 5;

/// `Function.__new_cached(ret, params, callable)`: a `class` Function for
/// `callable` (a Proc, or a Pointer/Function to call) with the Signature
/// `SIGNATURES` holds for `ret` and `params`; nil when there is none (or
/// this is not the main Ractor), or the callable needs adapting or
/// checking (the Ruby path does those, and raises what it raises).
pub(super) fn new_cached(ruby: &Ruby, class: RClass, ret: Value, params: Value, callable: Value) -> Result<Option<Value>, Error> {
    let Some(&trie) = TRIE.get() else { return Ok(None) };
    // SAFETY: a type test on a live VALUE.
    if params.is_nil() || !unsafe { rb_sys::RB_TYPE_P(params.as_raw(), rb_sys::ruby_value_type::RUBY_T_ARRAY) } {
        return Ok(None);
    }
    if !crate::ruby::footprint::in_main_ractor() {
        return Ok(None);
    }
    // SAFETY: live VALUEs (`trie` registered), `params` an Array; a key's
    // #hash or #eql? may raise, hence the protect.
    let sig = magnus::rb_sys::protect(|| unsafe { trie_walk(trie as VALUE, ret.as_raw(), params.as_raw()) })?;
    if sig == rb_sys::Qnil as VALUE {
        return Ok(None);
    }
    // SAFETY: the trie holds only frozen Signature Structs (see
    // `cached_signature`), whose members are read by index.
    let member = |i: i64| unsafe { Value::from_raw(rb_sys::rb_struct_aref(sig, rb_sys::rb_int2inum(i as _))) };
    if member(ADAPT).to_bool() {
        return Ok(None);
    }
    let types = member(TYPES);
    if crate::ruby::pointer::Pointer::from_value(callable).is_some() || Function::of(callable).is_some() {
        return Function::new_pointer_from(ruby, class, callable, types).map(|f| Some(f.as_value()));
    }
    // SAFETY: a plain predicate on a live VALUE.
    if unsafe { rb_sys::rb_obj_is_proc(callable.as_raw()) } != rb_sys::Qtrue as VALUE {
        return Ok(None);
    }
    let native_params = RArray::from_value(member(NATIVE_PARAMS)).expect("Signature#native_params is an Array");
    Function::new_callback(ruby, class, native_params, member(NATIVE_RET), callable, types, callable).map(|f| Some(f.as_value()))
}
