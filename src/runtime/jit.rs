//! The stub compiler: the process's executable arena and the thunks in it,
//! one template per signature (planned by `abi`, emitted by `backend`),
//! and a record of every installed stub for disassembly and perf maps.
//!
//! `ruby::attach` converts Ruby's arguments and calls [`compile`]; nothing
//! above this module touches the arena, the templates or the emitter.
//! Code of stubs whose module was collected comes back through [`reclaim`]
//! (called inside the GC: it takes only the queue's lock) and is given to
//! the arena under the JIT lock by the next user of the JIT.

use super::StubInfo;
use crate::abi::{self, CfuncForm};
use crate::backend::{self, EmitError, EmittedStub, RuntimeTargets, StubRequest, Thunks};
use crate::emit::arena::{self, CodeArena};
use crate::lower::struct_access::{self, StructAccess};
use crate::types::Signature;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The process's executable memory and the thunks in it, created on the
/// first use.
static JIT: Mutex<Option<Jit>> = Mutex::new(None);
static TARGETS: OnceLock<RuntimeTargets> = OnceLock::new();

/// Stubs whose owner was collected, and dropped method entries:
/// `(address, installed bytes, code class)`.
static RECLAIMED: Mutex<Vec<(usize, usize, u32)>> = Mutex::new(Vec::new());

struct Jit {
    arena: CodeArena,
    thunks: Thunks,
    /// Every installed stub, for disassembly.
    stubs: Vec<StubRecord>,
    /// One emitted stub per signature and flavour (see [`Flavour::index`]),
    /// with its cfunc form, retargeted (two literal-pool entries patched)
    /// for later functions of the same signature: no planning, no
    /// assembling. Each template's index in insertion order is the arena
    /// code class of its stubs (they differ only in their literal pools).
    templates: HashMap<Signature, [Option<Template>; 4]>,
    /// Struct accessors (reader, writer) per layout shape and fallbacks,
    /// each with its code class, counted with the templates' (see
    /// [`compile_struct_accessors`]).
    accessor_templates: HashMap<(StructAccess, [usize; 2]), [(EmittedStub, u32); 2]>,
    template_count: u32,
    perf_map: Option<std::fs::File>,
}

struct Template {
    stub: EmittedStub,
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

/// What distinguishes two stubs of one signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flavour {
    /// The call releases the GVL.
    pub blocking: bool,
    /// The ffi gem's messages and the argv form (arity -1).
    pub ffi_compatible: bool,
}

impl Flavour {
    fn index(self) -> usize {
        self.blocking as usize | (self.ffi_compatible as usize) << 1
    }
}

/// One stub to compile and install.
pub struct StubSpec<'a> {
    pub signature: &'a Signature,
    pub flavour: Flavour,
    /// The C function's address and symbol name.
    pub function: usize,
    pub c_name: String,
    /// The stub's info: its literal pool points at it, so it must live as
    /// long as the stub (its owner frees both).
    pub info: *const StubInfo,
}

/// An installed stub.
#[derive(Clone, Copy, Debug)]
pub struct Compiled {
    pub address: usize,
    /// Bytes installed (code and literal pool), and their arena code class.
    pub len: usize,
    pub class: u32,
    /// The cfunc arity to define the method with (-1: the argv form).
    pub arity: i32,
}

/// The stub for `spec`: its signature's template retargeted, or a new one
/// planned and emitted; installed in the arena and recorded.
pub fn compile(spec: &StubSpec) -> Result<Compiled, EmitError> {
    let targets = TARGETS.get_or_init(super::targets);
    let info = spec.info as usize;
    with_jit(|jit| {
        let index = spec.flavour.index();
        let cached = jit.templates.get(spec.signature).and_then(|t| t[index].as_ref());
        let (emitted, form, class) = match cached {
            Some(t) => (t.stub.retarget(spec.function, info), t.form, t.class),
            None => {
                let plan = abi::plan_stub_in_form(spec.signature, spec.flavour.ffi_compatible)
                    .map_err(|e| EmitError::Plan(e.to_string()))?;
                let req = StubRequest {
                    plan: &plan,
                    function: spec.function,
                    info,
                    targets,
                    thunks: &jit.thunks,
                    blocking: spec.flavour.blocking,
                };
                let stub = backend::emit_stub(&req)?;
                let class = jit.template_count;
                jit.template_count += 1;
                let template = Template { stub: stub.clone(), form: plan.form, class };
                jit.templates.entry(spec.signature.clone()).or_default()[index] = Some(template);
                (stub, plan.form, class)
            }
        };
        let address = jit
            .arena
            .install_reusable(&emitted.code, class)
            .map_err(|e| EmitError::ExecutableMemory(arena::describe_map_error(&e)))?;
        jit.record(StubRecord {
            // SAFETY: the caller's info, alive with the stub.
            name: unsafe { (*spec.info).name.clone() },
            address,
            len: emitted.code.len(),
            code_len: emitted.code_len,
            function: (spec.function, spec.c_name.clone()),
            info,
        });
        let arity = match form {
            CfuncForm::Fixed(n) => n as i32,
            CfuncForm::Argv(_) => -1,
        };
        Ok(Compiled { address, len: emitted.code.len(), class, arity })
    })
}

/// Queues the code of a stub whose owner was collected (or of a dropped
/// method entry) for the arena. Called inside the GC: takes no lock but
/// the queue's.
pub fn reclaim(address: usize, len: usize, class: u32) {
    RECLAIMED.lock().unwrap_or_else(|p| p.into_inner()).push((address, len, class));
}

/// Installs other position-independent code (callback trampolines, which
/// live as long as the process) in the same executable arena as the stubs.
pub fn install_code(code: &[u8]) -> Result<usize, String> {
    install_in(code, None)
}

/// Arena code class of method entries (`backend::emit_method_thunk`: the
/// same instructions, differing only in their constants). Template classes
/// count up from 0 and never reach it.
const METHOD_ENTRY_CLASS: u32 = u32::MAX;

/// A method entry (`backend::emit_method_thunk`) installed in the arena.
/// Its owner (the per-method data the entry passes) drops it when nothing
/// can run the entry any more: that queues its code for reuse by the next
/// entry, like [`reclaim`]ed stubs (dropping is allowed inside the GC).
pub struct MethodEntry {
    pub address: usize,
    len: usize,
    class: u32,
}

impl MethodEntry {
    pub fn install(code: &[u8]) -> Result<MethodEntry, String> {
        Ok(MethodEntry { address: install_in(code, Some(METHOD_ENTRY_CLASS))?, len: code.len(), class: METHOD_ENTRY_CLASS })
    }
}

impl Drop for MethodEntry {
    fn drop(&mut self) {
        reclaim(self.address, self.len, self.class);
    }
}

/// A layout's `Struct#[]` and `#[]=` (`lower::struct_access`), installed;
/// each falls back to the generic cfunc in `fallbacks` (`[]`, `[]=`).
/// Their owner drops them when no method entry can run them any more.
///
/// The code depends on the table only through its pool entry (the info):
/// layouts of one shape (names, offsets, types) get the first one's code
/// retargeted, and that shape's code class, so freed code is reused only by
/// the same instructions (the arena's rule: qemu-user and valgrind
/// translate code once).
pub fn compile_struct_accessors(access: &StructAccess, fallbacks: [usize; 2]) -> Result<[MethodEntry; 2], String> {
    let targets = TARGETS.get_or_init(super::targets);
    let shape = (StructAccess { table: 0, ..access.clone() }, fallbacks);
    let table = access.table as usize;
    with_jit(|jit| {
        let templates = match jit.accessor_templates.get(&shape) {
            Some(t) => t.clone(),
            None => {
                let mut emit = |l: crate::lower::Lowered, fallback: usize| -> Result<(EmittedStub, u32), EmitError> {
                    jit.template_count += 1;
                    Ok((backend::emit_struct_accessor(&l, table, fallback, targets)?, jit.template_count - 1))
                };
                let t = [emit(struct_access::reader(access), fallbacks[0])?, emit(struct_access::writer(access), fallbacks[1])?];
                jit.accessor_templates.insert(shape, t.clone());
                t
            }
        };
        let mut install = |(stub, class): &(EmittedStub, u32)| -> Result<MethodEntry, EmitError> {
            let code = stub.retarget(0, table).code;
            let address =
                jit.arena.install_reusable(&code, *class).map_err(|e| EmitError::ExecutableMemory(arena::describe_map_error(&e)))?;
            Ok(MethodEntry { address, len: code.len(), class: *class })
        };
        Ok([install(&templates[0])?, install(&templates[1])?])
    })
    .map_err(|e| e.to_string())
}

/// Installs `code`; with a class, where freed code of that class was.
fn install_in(code: &[u8], class: Option<u32>) -> Result<usize, String> {
    with_jit(|jit| {
        let installed = match class {
            Some(class) => jit.arena.install_reusable(code, class),
            None => jit.arena.install(code),
        };
        installed.map_err(|e| EmitError::ExecutableMemory(arena::describe_map_error(&e)))
    })
    .map_err(|e| e.to_string())
}

/// The info of the installed stub at `stub`, if it is one (the newest
/// record for that address).
pub fn info_of(stub: usize) -> Option<*const StubInfo> {
    let jit = lock_jit();
    let record = jit.as_ref()?.stubs.iter().rev().find(|r| r.address == stub)?;
    Some(record.info as *const StubInfo)
}

/// `[code bytes, reserved bytes, writable bytes]` of the executable arena
/// (after giving back the code of collected modules' stubs).
pub fn arena_stats() -> (usize, usize, usize) {
    let jit = lock_jit();
    jit.as_ref().map_or((0, 0, 0), |j| (j.arena.code_bytes(), j.arena.reserved_bytes(), j.arena.writable_bytes()))
}

/// Assembly of the stub installed at `stub`, or None.
pub fn disassemble(stub: usize) -> Option<String> {
    let jit = lock_jit();
    let jit = jit.as_ref()?;
    let record = jit.stubs.iter().find(|r| r.address == stub)?;
    // SAFETY: the record describes installed code, mapped for the life of
    // the process and not written while its stub is alive.
    let code = unsafe { std::slice::from_raw_parts(record.address as *const u8, record.len) };
    let header = format!(
        "; fiddle_jit stub for {} ({} bytes: {} code + {} literal pool)\n",
        record.name,
        record.len,
        record.code_len,
        record.len - record.code_len
    );
    let mut symbols = runtime_symbols(TARGETS.get()?, &jit.thunks);
    symbols.push((record.function.0 as u64, record.function.1.clone()));
    symbols.push((record.info as u64, format!("info for {}", record.name)));
    Some(header + &backend::disasm::disassemble(code, record.code_len, record.address as u64, &symbols))
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
fn lock_jit() -> MutexGuard<'static, Option<Jit>> {
    let mut guard = JIT.lock().unwrap_or_else(|p| p.into_inner());
    let reclaimed = std::mem::take(&mut *RECLAIMED.lock().unwrap_or_else(|p| p.into_inner()));
    if let (Some(jit), false) = (guard.as_mut(), reclaimed.is_empty()) {
        let gone: std::collections::HashSet<usize> = reclaimed.iter().map(|r| r.0).collect();
        jit.stubs.retain(|r| !gone.contains(&r.address));
        for (address, len, class) in reclaimed {
            jit.arena.free(address, len, class);
        }
    }
    guard
}

fn with_jit<T>(f: impl FnOnce(&mut Jit) -> Result<T, EmitError>) -> Result<T, EmitError> {
    let mut guard = lock_jit();
    if guard.is_none() {
        let mut arena = CodeArena::new();
        let thunks = backend::install_thunks(&mut arena, TARGETS.get_or_init(super::targets))?;
        let mut jit = Jit {
            arena,
            thunks,
            stubs: Vec::new(),
            templates: HashMap::new(),
            accessor_templates: HashMap::new(),
            template_count: 0,
            perf_map: open_perf_map(),
        };
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
