//! What the emitters know of Ruby's object layout: tag bits of special
//! VALUEs, the flags word (and its frozen bit), and field offsets of
//! RString, RTypedData and RFloat — all read from rb-sys's bindings of the Ruby being built against,
//! never written down as numbers.

#![allow(deprecated)] // rb-sys marks raw struct layouts deprecated; reading them is the point.

use rb_sys::{ruby_rstring_flags, ruby_special_consts, ruby_value_type};
use std::mem::offset_of;

pub const QFALSE: i32 = ruby_special_consts::RUBY_Qfalse as i32;
pub const QTRUE: i32 = ruby_special_consts::RUBY_Qtrue as i32;
pub const QNIL: i32 = ruby_special_consts::RUBY_Qnil as i32;
pub const IMMEDIATE_MASK: i32 = ruby_special_consts::RUBY_IMMEDIATE_MASK as i32;
pub const FIXNUM_FLAG: i32 = ruby_special_consts::RUBY_FIXNUM_FLAG as i32;
pub const FLONUM_MASK: i32 = ruby_special_consts::RUBY_FLONUM_MASK as i32;
pub const FLONUM_FLAG: i32 = ruby_special_consts::RUBY_FLONUM_FLAG as i32;
/// The flonum encoding of +0.0, which the rotate rule cannot express.
pub const FLONUM_ZERO: i64 = 0x8000_0000_0000_0002u64 as i64;
/// Largest integer that fits a Fixnum (2**62 - 1 on 64-bit).
pub const FIXNUM_MAX: i64 = i64::MAX >> 1;

pub const T_MASK: i32 = ruby_value_type::RUBY_T_MASK as i32;
pub const T_STRING: i32 = ruby_value_type::RUBY_T_STRING as i32;
pub const T_DATA: i32 = ruby_value_type::RUBY_T_DATA as i32;

pub const RSTRING_NOEMBED: i32 = ruby_rstring_flags::RSTRING_NOEMBED as i32;
/// Encoding index bits of the flags word.
pub const ENCODING_MASK: i32 = rb_sys::ruby_encoding_consts::RUBY_ENCODING_MASK as i32;
pub const ENCODING_SHIFT: u32 = rb_sys::ruby_encoding_consts::RUBY_ENCODING_SHIFT as u32;
/// Encoding indexes 0, 1 and 2 are ASCII-8BIT, UTF-8 and US-ASCII in every
/// Ruby (encindex.h): one-byte NUL terminators, so a NUL byte ends the
/// String exactly as StringValueCStr checks. Others take the slow path.
pub const ENCODING_INDEX_UTF_8: i32 = 1;
pub const ENCODING_INDEX_US_ASCII: i32 = 2;
pub const RBASIC_FLAGS: i32 = offset_of!(rb_sys::RBasic, flags) as i32;
/// The flags bit of a frozen object.
pub const FL_FREEZE: i64 = rb_sys::ruby_fl_type::RUBY_FL_FREEZE as i64;
pub const RBASIC_KLASS: i32 = offset_of!(rb_sys::RBasic, klass) as i32;

// --- RString: the part that differs between Ruby versions -----------------
//
//            | embedded length                 | heap length   | bytes
//   3.1      | flags bits 14..19 (EMBED_LEN)    | as.heap.len   | as.embed.ary (24 bytes in the object)
//   3.2      | as.embed.len (variable width)    | as.heap.len   | as.embed.ary (slot size - 24)
//   3.3, 3.4 | len (one field for both kinds)  | len           | as.embed.ary (slot size - 24)
//   4.0      | as 3.3
//
// 3.2 and 4.0 are built by construction, not run here: script/headers-check
// builds this crate against their headers and runs the cargo tests.
// Every number comes from rb-sys's bindings of the Ruby being built against;
// `build.rs` turns its version into the `ruby_gte_*` cfgs used here. The
// embedded area always holds at least 16 bytes (24 on 3.1; a 40-byte slot
// minus the 24-byte header from 3.2 on), which the inline NUL scans rely on.

/// Where an embedded String keeps its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedLength {
    /// `(flags >> shift) & ((1 << width) - 1)` (Ruby 3.1).
    Flags { shift: u32, width: u32 },
    /// A `long` at this offset in the object (Ruby 3.2 and later).
    Field(i32),
}

#[cfg(ruby_lt_3_2)]
pub const RSTRING_EMBED_LEN: EmbedLength = EmbedLength::Flags {
    shift: rb_sys::ruby_rstring_consts::RSTRING_EMBED_LEN_SHIFT as u32,
    width: (ruby_rstring_flags::RSTRING_EMBED_LEN_MASK as u32
        >> rb_sys::ruby_rstring_consts::RSTRING_EMBED_LEN_SHIFT as u32)
        .count_ones(),
};
#[cfg(all(ruby_gte_3_2, ruby_lt_3_3))]
pub const RSTRING_EMBED_LEN: EmbedLength = EmbedLength::Field(offset_of!(rb_sys::RString, as_.embed.len) as i32);
#[cfg(ruby_gte_3_3)]
pub const RSTRING_EMBED_LEN: EmbedLength = EmbedLength::Field(offset_of!(rb_sys::RString, len) as i32);

/// Offset of a heap (NOEMBED) String's length.
#[cfg(ruby_lt_3_3)]
pub const RSTRING_HEAP_LEN: i32 = offset_of!(rb_sys::RString, as_.heap.len) as i32;
#[cfg(ruby_gte_3_3)]
pub const RSTRING_HEAP_LEN: i32 = offset_of!(rb_sys::RString, len) as i32;
pub const RSTRING_HEAP_PTR: i32 = offset_of!(rb_sys::RString, as_.heap.ptr) as i32;
pub const RSTRING_EMBED_ARY: i32 = offset_of!(rb_sys::RString, as_.embed.ary) as i32;

// RTypedData: `type` at 16, `typed_flag` at 24, `data` at 32 up to 3.4; 4.0
// puts `fields_obj` at 16 and `type` at 24, marks typed data with a flags bit
// (RUBY_TYPED_FL_IS_TYPED_DATA) and an embedded one with bit 0 of `type`.
// Stubs compare `type` with a known rb_data_type_t by address, so an
// embedded object (4.0) or an RData (dmark/dfree there) never matches, and
// `data` is a pointer: fiddle_jit's data types are not RUBY_TYPED_EMBEDDABLE.
pub const RTYPEDDATA_TYPE: i32 = offset_of!(rb_sys::RTypedData, type_) as i32;
pub const RTYPEDDATA_DATA: i32 = offset_of!(rb_sys::RTypedData, data) as i32;


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_64_bit_ruby_one_we_expect() {
        // Sanity: these hold for every 64-bit CRuby the stubs support.
        assert_eq!((QFALSE, IMMEDIATE_MASK, FIXNUM_FLAG, FLONUM_FLAG), (0, 7, 1, 2));
        // Ruby 3.2 moved nil from 8 to 4: inside the immediate mask, so a
        // conversion tells nil apart before testing for immediates; either
        // way nil is above false and every immediate below it.
        assert_eq!(QNIL, if cfg!(ruby_lt_3_2) { 8 } else { 4 });
        assert_eq!(QTRUE, 0x14);
        assert_eq!(RBASIC_FLAGS, 0);
        assert!(RSTRING_HEAP_PTR > RSTRING_HEAP_LEN);
        assert!(RTYPEDDATA_DATA > RTYPEDDATA_TYPE);
    }
}
