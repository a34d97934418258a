//! `Function.new`, native: its arguments sorted out as the ffi gem does (a
//! block stands in for the callable, a Hash before it is the options), and
//! its common case — a Proc or a Pointer for a signature of builtin type
//! Symbols that `cached_signature` has seen before, no options
//! (lib/fiddle_jit/function.rb) — made here in one call. The Ruby path took
//! seven method calls to get there; ffi-yajl makes 11 Functions per parse,
//! gir_ffi three per HashTable. Everything else goes to the private
//! `Function.new_resolving`.
//!
//! Also the Function a callback parameter makes from a Signature
//! (`callback_lookup`).

use super::{trie_walk, Function};
use magnus::rb_sys::{resume_error, AsRawValue, FromRawValue};
use magnus::typed_data::Obj;
use magnus::{prelude::*, Error, RArray, RClass, Ruby, Value};
use rb_sys::{ID, VALUE};
use std::ffi::c_int;
use std::sync::OnceLock;

const QNIL: VALUE = rb_sys::Qnil as VALUE;

/// `SIGNATURES` (registered once by lib/, `__signatures=`), read only in
/// the main Ractor: the Hash is not shareable.
static TRIE: OnceLock<usize> = OnceLock::new();

/// `Function.__signatures=(trie)`: keeps `trie` (alive for the process).
pub(super) fn set_trie(trie: magnus::RHash) {
    // SAFETY: a live Hash, registered so it is never collected or moved.
    unsafe { rb_sys::rb_gc_register_mark_object(trie.as_raw()) };
    let _ = TRIE.set(trie.as_raw() as usize);
}

/// A `Function::Signature` (a frozen ::Struct, lib/fiddle_jit/function.rb),
/// its members read by index.
#[derive(Clone, Copy)]
pub(super) struct Signature(VALUE);

impl Signature {
    const NATIVE_PARAMS: i64 = 2;
    const NATIVE_RET: i64 = 3;
    const ADAPT: i64 = 4;
    const TYPES: i64 = 5;
    const CALLBACK_TYPES: i64 = 6;

    /// # Safety
    /// `sig` is a live Signature: `cached_signature` and `FunctionType`
    /// store nothing else where it is read from (the trie, `__signature=`).
    pub(super) unsafe fn new(sig: VALUE) -> Signature {
        Signature(sig)
    }

    fn member(self, i: i64) -> Value {
        // SAFETY: a Signature (see `new`), alive as long as its holder.
        unsafe { Value::from_raw(rb_sys::rb_struct_aref(self.0, rb_sys::rb_int2inum(i as _))) }
    }

    /// Whether a callable needs `Function.adapt` (the Ruby path does that).
    pub(super) fn adapts(self) -> bool {
        self.member(Self::ADAPT).to_bool()
    }

    /// The frozen `[ret, params]` pair its Functions hold.
    fn types(self) -> Value {
        self.member(Self::TYPES)
    }

    /// A `class` Function calling `callable` (a Proc, or anything with
    /// `#call`) for this signature, which must not need adapting.
    pub(super) fn callback(self, ruby: &Ruby, class: RClass, callable: Value) -> Result<Obj<Function>, Error> {
        let parsed = crate::runtime::objects::typed_data::<super::SignatureCallbackTypes>(self.member(Self::CALLBACK_TYPES).as_raw())
            .and_then(|t| t.types());
        if let Some(types) = parsed {
            return Function::new_callback_of(ruby, class, types, callable, self.types(), callable);
        }
        let native_params = RArray::from_value(self.member(Self::NATIVE_PARAMS)).expect("Signature#native_params is an Array");
        Function::new_callback(ruby, class, native_params, self.member(Self::NATIVE_RET), callable, self.types(), callable)
    }
}

/// A `class` Function for `callable` (a Proc, or a Pointer/Function to
/// call) with the Signature `SIGNATURES` holds for `ret` and `params`; None
/// when there is none (or this is not the main Ractor), or the callable
/// needs adapting or checking (the Ruby path does those, and raises what it
/// raises).
fn new_cached(ruby: &Ruby, class: RClass, ret: Value, params: Value, callable: Value) -> Result<Option<Value>, Error> {
    let Some(&trie) = TRIE.get() else { return Ok(None) };
    // SAFETY: a type test on a live VALUE.
    if params.is_nil() || !unsafe { rb_sys::RB_TYPE_P(params.as_raw(), rb_sys::ruby_value_type::RUBY_T_ARRAY) } {
        return Ok(None);
    }
    if !crate::ruby::footprint::in_main_ractor() {
        return Ok(None);
    }
    let key = memo_key(ret.as_raw(), params.as_raw());
    let sig = match key.as_ref().and_then(memo_get) {
        Some(sig) => sig,
        None => {
            // SAFETY: live VALUEs (`trie` registered), `params` an Array; a
            // key's #hash or #eql? may raise, hence the protect.
            let sig = magnus::rb_sys::protect(|| unsafe { trie_walk(trie as VALUE, ret.as_raw(), params.as_raw()) })?;
            if sig == QNIL {
                return Ok(None);
            }
            if let Some(k) = key {
                let new = MEMO.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Default::default).insert(k, sig).is_none();
                if new {
                    // SAFETY: a live Signature, pinned (it stays in the
                    // trie for the process anyway) so the memo's VALUE
                    // stays right.
                    unsafe { rb_sys::rb_gc_register_mark_object(sig) };
                }
            }
            sig
        }
    };
    // SAFETY: the trie holds only Signatures (see `cached_signature`).
    let sig = unsafe { Signature::new(sig) };
    if sig.adapts() {
        return Ok(None);
    }
    if crate::ruby::pointer::Pointer::from_value(callable).is_some() || Function::of(callable).is_some() {
        return Function::new_pointer_from(ruby, class, callable, sig.types()).map(|f| Some(f.as_value()));
    }
    // SAFETY: a plain predicate on a live VALUE.
    if unsafe { rb_sys::rb_obj_is_proc(callable.as_raw()) } != rb_sys::Qtrue as VALUE {
        return Ok(None);
    }
    sig.callback(ruby, class, callable).map(|f| Some(f.as_value()))
}

/// Most parameters a memo key holds.
const MEMO_PARAMS: usize = 8;

/// `[ret, parameter count, params..., 0...]` as Symbol IDs.
type MemoKey = [rb_sys::ID; MEMO_PARAMS + 2];

/// Signatures the trie gave for Symbol types, by their IDs (a Symbol's ID
/// never changes; a Symbol VALUE may be a heap object, loaded code's are),
/// so a signature seen before costs one hash lookup here instead of a Ruby
/// Hash lookup per type (ffi-yajl makes 11 Functions per parse). Main
/// Ractor only, as the trie; each Signature in it is pinned once.
static MEMO: std::sync::Mutex<Option<std::collections::HashMap<MemoKey, VALUE, std::hash::BuildHasherDefault<WordHasher>>>> =
    std::sync::Mutex::new(None);

/// The memo's Signature for `key`.
fn memo_get(key: &MemoKey) -> Option<VALUE> {
    MEMO.lock().unwrap_or_else(|p| p.into_inner()).as_ref()?.get(key).copied()
}

/// The memo key of `ret` and `params` (an Array), if they are Symbols and
/// few enough. (`rb_sym2id` makes a dynamic Symbol immortal, as naming a
/// type in code does.)
fn memo_key(ret: VALUE, params: VALUE) -> Option<MemoKey> {
    // SAFETY: `params` is a live Array (checked by the caller); the
    // Symbols are live VALUEs.
    unsafe {
        let params = std::slice::from_raw_parts(rb_sys::RARRAY_CONST_PTR(params), rb_sys::RARRAY_LEN(params) as usize);
        if params.len() > MEMO_PARAMS || !rb_sys::RB_SYMBOL_P(ret) || !params.iter().all(|&p| rb_sys::RB_SYMBOL_P(p)) {
            return None;
        }
        let mut key = [0; MEMO_PARAMS + 2];
        key[0] = rb_sys::rb_sym2id(ret);
        key[1] = params.len() as rb_sys::ID;
        for (k, &p) in key[2..].iter_mut().zip(params) {
            *k = rb_sys::rb_sym2id(p);
        }
        Some(key)
    }
}

/// Hashes a memo key's words (FxHash's multiply-rotate), not its bytes
/// through SipHash: the key is VALUEs, not attacker-chosen data.
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for word in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..word.len()].copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7cc1_b727_220a_95);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// `Function.new(return_type, param_types, proc_or_pointer = nil, options
/// = {}, &block)`, a raw cfunc on the receiver class (a subclass makes its
/// own instances). As the ffi gem's: a block with a third argument takes
/// it as the options (ArgumentError with a fourth), nil options are none.
/// Then `new_cached` for no (or empty) options, else `new_resolving(ret,
/// params, callable[, options])`; raises what those raise.
unsafe extern "C" fn new(argc: c_int, argv: *const VALUE, class: VALUE) -> VALUE {
    if !(2..=4).contains(&argc) {
        rb_sys::rb_error_arity(argc, 2, 4);
    }
    // SAFETY: Ruby passes `argc` VALUEs at `argv`, alive for the call.
    let args = std::slice::from_raw_parts(argv, argc as usize);
    let (ret, params) = (args[0], args[1]);
    let mut callable = args.get(2).copied().unwrap_or(QNIL);
    let mut options = args.get(3).copied().filter(|&o| o != QNIL);
    if rb_sys::rb_block_given_p() != 0 {
        if argc == 4 {
            let ruby = Ruby::get_unchecked();
            resume_error(Error::new(ruby.exception_arg_error(), "cannot create function with both proc/address and block"));
        }
        // `Function.new(ret, params, options) { ... }`; a callable given
        // as well wins over the block.
        if rb_sys::rb_obj_is_kind_of(callable, rb_sys::rb_cHash) == rb_sys::Qtrue as VALUE {
            options = Some(callable);
            callable = QNIL;
        }
        if !rb_sys::TEST(callable) {
            callable = rb_sys::rb_block_proc();
        }
    }
    let no_options = options.map_or(true, |o| {
        rb_sys::RB_TYPE_P(o, rb_sys::ruby_value_type::RUBY_T_HASH) && rb_sys::rb_hash_size_num(o) == 0
    });
    if no_options {
        let ruby = Ruby::get_unchecked();
        let receiver = RClass::from_value(Value::from_raw(class)).expect("a class's singleton method");
        match new_cached(&ruby, receiver, Value::from_raw(ret), Value::from_raw(params), Value::from_raw(callable)) {
            Ok(Some(function)) => return function.as_raw(),
            Ok(None) => {}
            Err(e) => resume_error(e),
        }
    }
    let fallback = [ret, params, callable, options.unwrap_or(QNIL)];
    let n = if options.is_some() { 4 } else { 3 };
    rb_sys::rb_funcallv(class, new_resolving_id(), n, fallback.as_ptr())
}

/// `new_resolving`, interned by `init` (at load, in the main Ractor).
fn new_resolving_id() -> ID {
    static ID_CELL: OnceLock<ID> = OnceLock::new();
    // SAFETY: interns a static name.
    *ID_CELL.get_or_init(|| unsafe { rb_sys::rb_intern(c"new_resolving".as_ptr()) })
}

/// Defines `Function.new` on `class`.
pub(super) fn init(class: RClass) {
    new_resolving_id();
    // SAFETY: a raw cfunc of the (argc, argv, self) form.
    unsafe {
        let func: unsafe extern "C" fn() -> VALUE = std::mem::transmute(new as *const ());
        rb_sys::rb_define_singleton_method(class.as_raw(), c"new".as_ptr(), Some(func), -1);
    }
}
