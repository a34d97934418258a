//! FiddleJit::DynamicLibrary: dlopen/dlsym via libloading. Libraries are
//! never closed: stubs hold raw addresses into them for the life of the
//! process.

use libloading::os::unix::Library;
use magnus::{function, method, prelude::*, Error, RModule, Ruby, Value};

#[magnus::wrap(class = "FiddleJit::DynamicLibrary", free_immediately, size, frozen_shareable)]
pub struct DynamicLibrary {
    /// The dlopen handle (never closed: stubs keep addresses into the library).
    handle: usize,
    name: Option<String>,
}

impl DynamicLibrary {
    /// `open(name, flags)`: name nil means the running process.
    /// Frozen, so Ractor-shareable (as the ffi gem 1.16+'s).
    fn open(ruby: &Ruby, name: Option<String>, flags: i32) -> Result<magnus::typed_data::Obj<DynamicLibrary>, Error> {
        // SAFETY: loading a library runs its initializers; that is the
        // documented purpose of this call.
        let handle = match &name {
            Some(path) => {
                let c_path = std::ffi::CString::new(path.as_str())
                    .map_err(|_| Error::new(ruby.exception_arg_error(), "library name contains a NUL byte"))?;
                // SAFETY: plain dlopen; dlerror is read right after on this
                // thread (the GVL is held, so no other Ruby thread dlopens).
                let handle = unsafe { libc::dlopen(c_path.as_ptr(), flags) };
                if handle.is_null() {
                    // SAFETY: as above.
                    let err = unsafe { libc::dlerror() };
                    let err = if err.is_null() {
                        "unknown error".into()
                    } else {
                        // SAFETY: dlerror's NUL-terminated message, valid until the next dl* call.
                        unsafe { std::ffi::CStr::from_ptr(err) }.to_string_lossy().into_owned()
                    };
                    // The ffi gem's message.
                    return Err(Error::new(ruby.exception_load_error(), format!("Could not open library '{path}': {err}")));
                }
                handle as usize
            }
            None => Library::this().into_raw() as usize,
        };
        let lib = ruby.obj_wrap(DynamicLibrary { handle, name });
        lib.freeze();
        Ok(lib)
    }

    /// The symbol's address, or nil.
    /// (Plain dlsym: libloading's checked lookup clears and formats dlerror
    /// on every call, several times the cost of the lookup itself.)
    fn find_symbol(&self, name: String) -> Option<usize> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: `handle` came from dlopen and is never closed; dlsym only
        // looks the name up.
        let address = unsafe { libc::dlsym(self.handle as *mut std::ffi::c_void, name.as_ptr()) };
        (!address.is_null()).then_some(address as usize)
    }

    fn name(&self) -> Option<String> {
        self.name.clone()
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("DynamicLibrary", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("open", function!(DynamicLibrary::open, 2))?;
    // The address as an Integer (or nil); lib/ builds the ffi gem's
    // find_symbol/find_function/find_variable (Symbol pointers) on it.
    class.define_method("find_address", method!(DynamicLibrary::find_symbol, 1))?;
    class.define_method("name", method!(DynamicLibrary::name, 0))?;
    for (name, flag) in [
        ("RTLD_LAZY", libc::RTLD_LAZY),
        ("RTLD_NOW", libc::RTLD_NOW),
        ("RTLD_GLOBAL", libc::RTLD_GLOBAL),
        ("RTLD_LOCAL", libc::RTLD_LOCAL),
    ] {
        class.const_set(name, flag)?;
    }
    let _: Value = class.as_value();
    Ok(())
}
