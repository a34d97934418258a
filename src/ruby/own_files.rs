//! Loading fiddle_jit's own Ruby files (lib/fiddle_jit.rb's list, and the
//! FFI namespace of lib/fiddle_jit/ffi.rb) from the binaries of their
//! compiled instruction sequences, kept beside the native extension.
//!
//! Compiling that source was most of what `require "fiddle_jit/ffi"` cost
//! (about 5 of 8 M instructions per 1 k instruction words on Ruby 3.1);
//! loading the binary of the same code costs about a fifth of that. As
//! Python's __pycache__: one file per source under `<extension dir>/iseq/`,
//! used only while the source file is byte for byte the one it was compiled
//! from, at the same path, on this very Ruby (revision, platform, compile
//! options: the key lib/fiddle_jit.rb passes). On a miss the source is
//! compiled by lib/fiddle_jit/source_cache.rb, which has the binary
//! written (`__store_own`, here: the format lives in this file only) where
//! the directory is writable. The hit path is here, natively, so that
//! a process that loads everything from binaries compiles no Ruby source
//! of fiddle_jit's beyond lib/fiddle_jit.rb and lib/fiddle_jit/ffi.rb.
//!
//! A binary file: `FJISEQ1\n`, then the key, the source's path and the
//! source, each as a little-endian u32 length and its bytes, then the output
//! of `RubyVM::InstructionSequence#to_binary`.

use crate::ruby::library::provide_feature;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::ReprValue;
use magnus::{function, prelude::*, Error, RClass, RModule, RString, Ruby, Value};
use std::ffi::CString;
use std::sync::Mutex;

const MAGIC: &[u8] = b"FJISEQ1\n";

/// Where `__require_own` finds a file and its binary, and the key binaries
/// must carry (set once by lib/fiddle_jit.rb).
#[derive(Clone)]
struct OwnFiles {
    dir: String,
    binaries: Option<String>,
    key: Vec<u8>,
}

static OWN_FILES: Mutex<Option<OwnFiles>> = Mutex::new(None);

/// The instruction binary in `data` (a binary file's bytes) when it was made
/// under `key` from `source` at `path`.
fn binary_for<'a>(data: &'a [u8], key: &[u8], path: &[u8], source: &[u8]) -> Option<&'a [u8]> {
    let mut rest = data.strip_prefix(MAGIC)?;
    for expected in [key, path, source] {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let (field, tail) = rest.get(4..)?.split_at_checked(len)?;
        if field != expected {
            return None;
        }
        rest = tail;
    }
    Some(rest)
}

/// `FiddleJit.__store_own(binary_path, key, path, source, binary)`: writes
/// the binary file of `source` (the file at `path`) compiled under `key` to
/// `binary_path`, in the form `binary_for` reads, atomically (a rename, so
/// a concurrent process reads the old file or the new one), making its
/// directory if need be; false where that cannot be done (a read-only
/// installation: the next process compiles again).
fn store_binary(binary_path: String, key: RString, path: String, source: RString, binary: RString) -> bool {
    // SAFETY: the bytes are copied out before anything can run Ruby code.
    let (key, source, binary) = unsafe { (key.as_slice().to_vec(), source.as_slice().to_vec(), binary.as_slice().to_vec()) };
    let mut data = MAGIC.to_vec();
    for field in [&key[..], path.as_bytes(), &source[..]] {
        let Ok(len) = u32::try_from(field.len()) else { return false };
        data.extend(len.to_le_bytes());
        data.extend(field);
    }
    data.extend(binary);
    write_atomically(std::path::Path::new(&binary_path), &data).is_ok()
}

fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        std::fs::create_dir(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn instruction_sequence(ruby: &Ruby) -> Result<RClass, Error> {
    ruby.class_object().const_get::<_, RClass>("RubyVM")?.const_get("InstructionSequence")
}

/// `FiddleJit.__load_cached(path, binary_path, key)`: evaluates the source
/// file at `path` from its binary at `binary_path` and makes `path` a loaded
/// feature; false (nothing evaluated) when there is no binary for this
/// source and key, or Ruby cannot read it.
fn load_cached(ruby: &Ruby, path: String, binary_path: String, key: RString) -> Result<bool, Error> {
    // SAFETY: the key's bytes are copied out before any Ruby call.
    let key = unsafe { key.as_slice() }.to_vec();
    load_binary(ruby, path, &binary_path, &key)
}

fn load_binary(ruby: &Ruby, path: String, binary_path: &str, key: &[u8]) -> Result<bool, Error> {
    let (Ok(data), Ok(source)) = (std::fs::read(binary_path), std::fs::read(&path)) else {
        return Ok(false);
    };
    let Some(binary) = binary_for(&data, key, path.as_bytes(), &source) else {
        return Ok(false);
    };
    let binary = ruby.str_from_slice(binary);
    // (A binary this Ruby cannot read raises: compiled again by the caller.)
    let loaded = instruction_sequence(ruby)?.funcall::<_, _, Value>("load_from_binary", (binary,));
    // Its bytes freed now, not at some later GC: Ruby counts the bytes
    // malloc'ed since its last major GC, and these would hasten the next.
    if !binary.is_frozen() {
        // SAFETY: a String this function made; nothing reads it after the load.
        unsafe { rb_sys::rb_str_resize(binary.as_raw(), 0) };
    }
    let Ok(iseq) = loaded else {
        return Ok(false);
    };
    iseq.funcall::<_, _, Value>("eval", ())?;
    provide_unless_frozen(ruby, path)?;
    Ok(true)
}

fn provide_unless_frozen(ruby: &Ruby, path: String) -> Result<(), Error> {
    // SAFETY: reading a global variable with the GVL held.
    let features = unsafe { rb_sys::rb_gv_get(c"$LOADED_FEATURES".as_ptr()) };
    // SAFETY: a live VALUE (the global keeps it).
    if !unsafe { Value::from_raw(features) }.is_frozen() {
        provide_feature(ruby, path)?;
    }
    Ok(())
}

/// `FiddleJit.__own_files(dir, binaries_dir, key)`: where `__require_own`
/// finds fiddle_jit's Ruby files and their binaries (nil: compile every
/// file, as `require` does).
fn set_own_files(dir: String, binaries: Option<String>, key: RString) -> Result<(), Error> {
    // SAFETY: copied out at once.
    let key = unsafe { key.as_slice() }.to_vec();
    *OWN_FILES.lock().unwrap_or_else(|p| p.into_inner()) = Some(OwnFiles { dir, binaries, key });
    Ok(())
}

/// `FiddleJit.__require_own(name)`: loads `<dir>/<name>.rb` once, as
/// `require` would, from its binary where there is one; else through
/// lib/fiddle_jit/source_cache.rb, which compiles it and writes the binary.
/// False when it was a loaded feature already.
fn require_own(ruby: &Ruby, name: String) -> Result<bool, Error> {
    let own = OWN_FILES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let own = own.ok_or_else(|| Error::new(ruby.exception_runtime_error(), "FiddleJit.__own_files was not set"))?;
    let path = format!("{}/{name}.rb", own.dir);
    let c_path = CString::new(path.as_str()).map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    // SAFETY: a NUL-terminated path; `loading` may be NULL.
    if unsafe { rb_sys::rb_feature_provided(c_path.as_ptr(), std::ptr::null_mut()) } != 0 {
        return Ok(false);
    }
    let Some(binaries) = own.binaries else {
        return ruby.require(ruby.str_new(&path));
    };
    let binary_path = format!("{binaries}/{name}.bin");
    if load_binary(ruby, path.clone(), &binary_path, &own.key)? {
        return Ok(true);
    }
    ruby.require(ruby.str_new(&format!("{}/source_cache.rb", own.dir)))?;
    let module: RModule = ruby.class_object().const_get("FiddleJit")?;
    let key = ruby.str_from_slice(&own.key);
    module.const_get::<_, Value>("SourceCache")?.funcall("load", (path, binary_path, key))
}

pub fn init(_ruby: &Ruby, module: RModule) -> Result<(), Error> {
    module.define_singleton_method("__own_files", function!(set_own_files, 3))?;
    module.define_singleton_method("__require_own", function!(require_own, 1))?;
    module.define_singleton_method("__load_cached", function!(load_cached, 3))?;
    module.define_singleton_method("__store_own", function!(store_binary, 5))?;
    Ok(())
}
