//! FiddleJit::DynamicLibrary: dlopen/dlsym via libloading. Libraries are
//! never closed: stubs hold raw addresses into them for the life of the
//! process.

use crate::ruby::pointer::Pointer;
use libloading::os::unix::Library;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::{Opaque, ReprValue};
use magnus::{
    function, gc, method, prelude::*, DataTypeFunctions, Error, RClass, RModule, RString, Ruby, TypedData, Value,
};
use rb_sys::VALUE;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

#[derive(TypedData)]
#[magnus(class = "FiddleJit::DynamicLibrary", free_immediately, size, mark, frozen_shareable, wb_protected)]
pub struct DynamicLibrary {
    /// The dlopen handle (never closed: stubs keep addresses into the library).
    handle: usize,
    name: Option<String>,
    /// The Symbols `find_function` & co. made, by name. A Symbol is frozen
    /// (shareable) and its library stays open, so the one found first stays
    /// right; a miss is not kept (a later RTLD_GLOBAL library can provide
    /// the name). gir_ffi looks its functions up on every call. Behind a
    /// lock: a library is frozen and shared by every Ractor. The VALUEs are
    /// marked (pinned) by `mark`, stored with a write barrier; nothing that
    /// can run the GC happens while the lock is held.
    found: Mutex<HashMap<Box<[u8]>, VALUE>>,
}

impl DataTypeFunctions for DynamicLibrary {
    fn mark(&self, _: &gc::Marker) {
        for &symbol in self.found.lock().unwrap_or_else(|p| p.into_inner()).values() {
            // SAFETY: a live Symbol this library made; marking pins it, as
            // its VALUE is kept here.
            unsafe { rb_sys::rb_gc_mark(symbol) };
        }
    }
}

/// FiddleJit::DynamicLibrary::Symbol (a Pointer subclass; lib/ adds its
/// `inspect`).
static SYMBOL_CLASS: OnceLock<Opaque<RClass>> = OnceLock::new();

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
        let lib = ruby.obj_wrap(DynamicLibrary { handle, name, found: Mutex::default() });
        lib.freeze();
        Ok(lib)
    }

    /// The symbol's address, or nil.
    /// (Plain dlsym: libloading's checked lookup clears and formats dlerror
    /// on every call, several times the cost of the lookup itself.)
    fn find_symbol(ruby: &Ruby, rb_self: &Self, name: String) -> Result<Option<usize>, Error> {
        check_c_name(ruby, name.as_bytes())?;
        Ok(rb_self.find_bytes(name.as_bytes()))
    }

    /// `find_symbol` of a name's bytes (any encoding; none with a NUL byte).
    fn find_bytes(&self, name: &[u8]) -> Option<usize> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: `handle` came from dlopen and is never closed; dlsym only
        // looks the name up.
        let address = unsafe { libc::dlsym(self.handle as *mut std::ffi::c_void, name.as_ptr()) };
        (!address.is_null()).then_some(address as usize)
    }

    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    /// `find_function(name)` (also `find_symbol`, `find_variable`): the
    /// ffi gem's DynamicLibrary::Symbol for `name`, or nil. The same frozen
    /// Symbol for a name found before (see `found`).
    fn symbol(ruby: &Ruby, rb_self: magnus::typed_data::Obj<Self>, name: Value) -> Result<Option<Value>, Error> {
        let Some(name) = RString::from_value(name) else {
            // The ffi gem's Check_Type message.
            let shown = if name.is_nil() || name.as_raw() == rb_sys::Qtrue as VALUE || name.as_raw() == rb_sys::Qfalse as VALUE {
                name.inspect()
            } else {
                unsafe { name.classname() }.into_owned()
            };
            return Err(Error::new(ruby.exception_type_error(), format!("wrong argument type {shown} (expected String)")));
        };
        {
            // SAFETY: the bytes are only compared, before anything can run
            // Ruby code or allocate.
            let bytes = unsafe { name.as_slice() };
            if let Some(&found) = rb_self.found.lock().unwrap_or_else(|p| p.into_inner()).get(bytes) {
                // SAFETY: kept alive by `mark`.
                return Ok(Some(unsafe { Value::from_raw(found) }));
            }
        }
        // (A miss: the name copied before anything below allocates.)
        // SAFETY: copied at once.
        let bytes: Box<[u8]> = unsafe { name.as_slice() }.into();
        check_c_name(ruby, &bytes)?;
        let Some(address) = rb_self.find_bytes(&bytes) else { return Ok(None) };
        let class = ruby.get_inner(*SYMBOL_CLASS.get().expect("DynamicLibrary::Symbol defined at init"));
        let symbol = Pointer::new_of_class(ruby, class, address);
        // SAFETY: plain calls on live objects, GVL held: the name as an
        // interned frozen String (the Ruby `-name`), the Symbol frozen as an
        // Object (not its memory: a C variable stays writable).
        unsafe {
            let name = rb_sys::rb_str_to_interned_str(name.as_raw());
            rb_sys::rb_ivar_set(symbol.as_raw(), rb_sys::rb_intern(c"@name".as_ptr()), name);
            rb_sys::rb_obj_freeze(symbol.as_raw());
        }
        let mut found = rb_self.found.lock().unwrap_or_else(|p| p.into_inner());
        let kept = *found.entry(bytes).or_insert(symbol.as_raw());
        drop(found);
        crate::runtime::objects::written(rb_self.as_raw(), kept);
        // SAFETY: `kept` is `symbol` or one another thread stored first, alive either way.
        Ok(Some(unsafe { Value::from_raw(kept) }))
    }
}

/// The names in one library directory that contain ".so." (the candidates
/// of every "libfoo.so.N" lookup), in readdir order.
type DirIndex = Vec<String>;

/// Directory path => its index (shared by paths naming the same directory),
/// or None for a directory that could not be read. Built on a directory's
/// first use, kept for the life of the process, as the ffi gem's dlopen
/// sees the system's library cache of its start.
static DIR_INDEXES: std::sync::Mutex<Option<std::collections::HashMap<String, Option<std::sync::Arc<DirIndex>>>>> =
    std::sync::Mutex::new(None);

/// A name C can look up: no NUL byte (the ffi gem's StringValueCStr error).
fn check_c_name(ruby: &Ruby, name: &[u8]) -> Result<(), Error> {
    if name.contains(&0) {
        return Err(Error::new(ruby.exception_arg_error(), "string contains null byte"));
    }
    Ok(())
}

/// `DynamicLibrary.last_error`: dlerror's message of the last failed dl*
/// call not read yet; "(null)" without one (the ffi gem formats dlerror()
/// with "%s").
fn last_error() -> String {
    // SAFETY: dlerror's NUL-terminated message is copied at once (the GVL is
    // held, so no other Ruby thread calls dl* meanwhile).
    unsafe {
        let err = libc::dlerror();
        if err.is_null() {
            "(null)".into()
        } else {
            std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
        }
    }
}

fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(u64::MAX)).collect()
}

/// One readdir pass over `dir`.
fn read_dir_index(dir: &str) -> Option<DirIndex> {
    let c_dir = std::ffi::CString::new(dir).ok()?;
    // SAFETY: plain opendir/readdir/closedir on a handle used only here;
    // each d_name is a NUL-terminated name valid until the next readdir,
    // copied before it.
    let handle = unsafe { libc::opendir(c_dir.as_ptr()) };
    if handle.is_null() {
        return None;
    }
    let mut index = DirIndex::new();
    loop {
        let entry = unsafe { libc::readdir(handle) };
        if entry.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name.windows(4).any(|w| w == b".so.") {
            if let Ok(name) = std::str::from_utf8(name) {
                index.push(name.to_owned());
            }
        }
    }
    unsafe { libc::closedir(handle) };
    Some(index)
}

/// `DynamicLibrary.versioned_files(dirs, libname)`: the files
/// "<libname>.N[...]" of `dirs`, highest version first per directory, in
/// `dirs` order. Each directory is read once per process (and once for
/// paths naming the same directory, by device and inode, such as
/// /lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu on a merged-/usr
/// system); a lookup is a hash probe per directory. What `Dir.glob` +
/// `sort_by` over nine directories did on every miss, in Ruby.
fn versioned_files(dirs: Vec<String>, libname: String) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut cache = DIR_INDEXES.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(Default::default);
    let mut seen: Vec<*const DirIndex> = Vec::new();
    let mut out = Vec::new();
    let prefix = format!("{libname}.");
    for dir in &dirs {
        if !cache.contains_key(dir) {
            // A directory already indexed under another path shares its index.
            let id = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
            let same = id.and_then(|id| {
                cache.iter().find_map(|(other, index)| {
                    let index = index.as_ref()?;
                    let m = std::fs::metadata(other).ok()?;
                    ((m.dev(), m.ino()) == id).then(|| index.clone())
                })
            });
            let index = same.or_else(|| id.and_then(|_| read_dir_index(dir)).map(std::sync::Arc::new));
            cache.insert(dir.clone(), index);
        }
        let Some(index) = cache[dir].as_ref() else { continue };
        if seen.contains(&std::sync::Arc::as_ptr(index)) {
            continue;
        }
        seen.push(std::sync::Arc::as_ptr(index));
        let mut names: Vec<&String> =
            index.iter().filter(|n| n.len() > prefix.len() && n.starts_with(prefix.as_str())).collect();
        names.sort_by_cached_key(|n| std::cmp::Reverse(version_key(n)));
        let dir = dir.trim_end_matches('/');
        out.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    out
}

/// `FiddleJit.__provide_feature(path)`: marks `path` (the absolute path of a
/// Ruby file loaded some other way, see lib/fiddle_jit/source_cache.rb) as a
/// loaded feature, as `require` does after loading a file: through Ruby's
/// rb_provide, which keeps $LOADED_FEATURES' index in step. (A push onto
/// $LOADED_FEATURES from Ruby makes the next `require` rebuild that index
/// and realpath every loaded feature: ~15 M instructions in a process that
/// has loaded rubygems' ~250 files.) The caller checks that
/// $LOADED_FEATURES is not frozen (rb_provide would raise across this frame).
pub(crate) fn provide_feature(ruby: &Ruby, path: String) -> Result<(), Error> {
    let path = std::ffi::CString::new(path).map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    // Ruby keeps the pointer itself (rb_provide makes a static fstring of
    // it, as for a C literal): the name lives as long as the process, like
    // the feature. Leaked on purpose, once per file.
    let path: &'static std::ffi::CStr = Box::leak(path.into_boxed_c_str());
    // SAFETY: a NUL-terminated name that is never freed; called with the
    // GVL held, on an unfrozen $LOADED_FEATURES.
    unsafe { rb_sys::rb_provide(path.as_ptr()) };
    Ok(())
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    module.define_singleton_method("__provide_feature", function!(provide_feature, 1))?;
    let class = module.define_class("DynamicLibrary", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("open", function!(DynamicLibrary::open, 2))?;
    class.define_singleton_method("versioned_files", function!(versioned_files, 2))?;
    class.define_singleton_method("last_error", function!(last_error, 0))?;
    // The address as an Integer (or nil); lib/ builds the ffi gem's
    // find_symbol/find_function/find_variable (Symbol pointers) on it.
    class.define_method("find_address", method!(DynamicLibrary::find_symbol, 1))?;
    class.define_method("name", method!(DynamicLibrary::name, 0))?;
    let pointer: RClass = module.const_get("Pointer")?; // (defined by pointer::init, before)
    let symbol = class.define_class("Symbol", pointer)?;
    let _ = SYMBOL_CLASS.set(Opaque::from(symbol));
    for name in ["find_function", "find_symbol", "find_variable"] {
        class.define_method(name, method!(DynamicLibrary::symbol, 1))?;
    }
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
