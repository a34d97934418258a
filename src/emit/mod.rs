//! Executable memory: the arena stubs, thunks and trampolines are
//! installed into (`arena`). The code itself comes from `crate::backend`.

pub mod arena;
