//! `FiddleJit::Native.attach_function`: plan, emit, install, define.

use crate::abi::{self, CfuncForm};
use crate::emit::{self, arena::CodeArena, EmitError, RuntimeTargets, StubRequest};
use crate::runtime::{self, StubInfo};
use crate::types::{CType, Signature};
use magnus::rb_sys::AsRawValue;
use magnus::{function, prelude::*, Error, RArray, RModule, Ruby};
use std::ffi::CString;
use std::sync::{Mutex, OnceLock};

pub(crate) static ARENA: Mutex<Option<CodeArena>> = Mutex::new(None);
static TARGETS: OnceLock<RuntimeTargets> = OnceLock::new();

fn parse_types(ruby: &Ruby, names: &[String]) -> Result<Vec<CType>, Error> {
    names
        .iter()
        .map(|n| CType::from_name(n).ok_or_else(|| Error::new(ruby.exception_type_error(), format!("invalid type: {n}"))))
        .collect()
}

/// `attach_function(module, method_name, address, params, ret, labels)`:
/// `params`/`ret` are canonical type names (the Ruby layer resolved
/// aliases), `labels` the names as the user wrote them (for messages).
/// Defines `method_name` on `module` as a singleton method and a public
/// instance method (what the ffi gem's Function#attach does) whose body is
/// the stub. Returns the number of code bytes emitted.
fn attach_function(
    ruby: &Ruby,
    module: RModule,
    method_name: String,
    address: usize,
    params: RArray,
    ret: String,
    labels: RArray,
) -> Result<usize, Error> {
    let params = parse_types(ruby, &params.to_vec::<String>()?)?;
    let ret = parse_types(ruby, &[ret])?.remove(0);
    if address == 0 {
        return Err(Error::new(ruby.exception_arg_error(), "cannot attach a NULL function address"));
    }
    let sig = Signature::new(params, ret);
    let plan = abi::plan_stub(&sig).map_err(|e| Error::new(ruby.exception_arg_error(), format!("{method_name}: {e}")))?;
    let info: &'static StubInfo = Box::leak(Box::new(StubInfo {
        name: method_name.clone(),
        param_labels: labels.to_vec::<String>()?,
        arity: sig.params.len(),
    }));
    let targets = TARGETS.get_or_init(runtime::targets);
    let req = StubRequest { plan: &plan, function: address, info: info as *const StubInfo as usize, targets };
    let code = emit::emit_stub(&req).map_err(|e| match e {
        EmitError::UnsupportedArch(_) | EmitError::Unsupported(_) => {
            Error::new(ruby.exception_not_imp_error(), format!("{method_name}: {e}"))
        }
        EmitError::Assembler(_) => Error::new(ruby.exception_runtime_error(), format!("{method_name}: {e}")),
    })?;
    let stub = {
        let mut arena = ARENA.lock().unwrap_or_else(|p| p.into_inner());
        arena.get_or_insert_with(CodeArena::new).install(&code)
    }
    .map_err(|e| Error::new(ruby.exception_no_mem_error(), format!("cannot map executable memory: {e}")))?;
    let arity = match plan.form {
        CfuncForm::Fixed(n) => n as i32,
        CfuncForm::Argv(_) => -1,
    };
    let name = CString::new(method_name).map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    // SAFETY: `stub` is the address of complete machine code in the arena,
    // never freed or moved, with the cfunc signature `arity` announces.
    unsafe {
        let func: unsafe extern "C" fn() -> rb_sys::VALUE = std::mem::transmute(stub);
        rb_sys::rb_define_singleton_method(module.as_raw(), name.as_ptr(), Some(func), arity);
        rb_sys::rb_define_method(module.as_raw(), name.as_ptr(), Some(func), arity);
    }
    Ok(code.len())
}

/// `[code bytes, reserved bytes]` of the executable arena.
fn arena_stats() -> (usize, usize) {
    let arena = ARENA.lock().unwrap_or_else(|p| p.into_inner());
    arena.as_ref().map_or((0, 0), |a| (a.code_bytes(), a.reserved_bytes()))
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let native = module.define_module("Native")?;
    native.define_singleton_method("attach_function", function!(attach_function, 6))?;
    native.define_singleton_method("arena_stats", function!(arena_stats, 0))?;
    native.const_set("ARCH", std::env::consts::ARCH)?;
    native.const_set("JIT_SUPPORTED", cfg!(target_arch = "x86_64"))?;
    let _ = ruby;
    Ok(())
}
