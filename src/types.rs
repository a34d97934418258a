//! The C type model: what a signature says, independent of Ruby and of any
//! calling convention.

use std::fmt;
use std::sync::Arc;

/// A C type as it crosses the boundary between Ruby and native code.
///
/// `long`, `size_t` and friends are resolved to a fixed width before they get
/// here (the Ruby layer knows the platform's data model); `CString` is a
/// `char *` that Ruby sees as a String.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CType {
    Void,
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// x87 80-bit extended precision (`long double` on x86-64 SysV): 16
    /// bytes, 16-aligned; memory class as an argument, st(0) as a result.
    LongDouble,
    Pointer,
    CString,
    /// A struct passed or returned by value (planned by the ABI layer; the
    /// emitters do not convert it yet).
    Struct(Arc<StructType>),
}

/// Which register class a scalar travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegClass {
    Integer,
    Float,
}

impl CType {
    /// Parses the canonical fixed-width name used between Ruby and Rust
    /// (`"int8"`, `"uint64"`, `"double"`, `"string"`, ...).
    pub fn from_name(name: &str) -> Option<CType> {
        Some(match name {
            "void" => CType::Void,
            "bool" => CType::Bool,
            "int8" => CType::I8,
            "uint8" => CType::U8,
            "int16" => CType::I16,
            "uint16" => CType::U16,
            "int32" => CType::I32,
            "uint32" => CType::U32,
            "int64" => CType::I64,
            "uint64" => CType::U64,
            "float32" | "float" => CType::F32,
            "float64" | "double" => CType::F64,
            "long_double" => CType::LongDouble,
            "pointer" => CType::Pointer,
            "string" => CType::CString,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            CType::Void => "void",
            CType::Bool => "bool",
            CType::I8 => "int8",
            CType::U8 => "uint8",
            CType::I16 => "int16",
            CType::U16 => "uint16",
            CType::I32 => "int32",
            CType::U32 => "uint32",
            CType::I64 => "int64",
            CType::U64 => "uint64",
            CType::F32 => "float",
            CType::F64 => "double",
            CType::LongDouble => "long_double",
            CType::Pointer => "pointer",
            CType::CString => "string",
            CType::Struct(_) => "struct",
        }
    }

    /// Size in bytes (C `sizeof`).
    pub fn size(&self) -> usize {
        match self {
            CType::Void => 0,
            CType::Bool | CType::I8 | CType::U8 => 1,
            CType::I16 | CType::U16 => 2,
            CType::I32 | CType::U32 | CType::F32 => 4,
            CType::I64 | CType::U64 | CType::F64 | CType::Pointer | CType::CString => 8,
            CType::LongDouble => 16,
            CType::Struct(s) => s.size,
        }
    }

    /// Alignment in bytes (C `_Alignof`).
    pub fn align(&self) -> usize {
        match self {
            CType::Struct(s) => s.align,
            CType::Void => 1,
            t => t.size(),
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self, CType::F32 | CType::F64)
    }

    /// The register class of a scalar; `None` for void, aggregates and
    /// long double (x87 class: memory as an argument).
    pub fn reg_class(&self) -> Option<RegClass> {
        match self {
            CType::Void | CType::Struct(_) | CType::LongDouble => None,
            t if t.is_float() => Some(RegClass::Float),
            _ => Some(RegClass::Integer),
        }
    }
}

impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A struct's layout: each field's type and byte offset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StructType {
    pub fields: Vec<(CType, usize)>,
    pub size: usize,
    pub align: usize,
}

impl StructType {
    /// Lays fields out with C's natural alignment and tail padding.
    pub fn natural(fields: Vec<CType>) -> StructType {
        let mut offset: usize = 0;
        let mut align = 1;
        let mut placed = Vec::with_capacity(fields.len());
        for field in fields {
            let a = field.align();
            offset = offset.div_ceil(a) * a;
            align = align.max(a);
            let size = field.size();
            placed.push((field, offset));
            offset += size;
        }
        StructType { fields: placed, size: offset.div_ceil(align) * align, align }
    }

    /// Every scalar in the struct with its absolute offset (nested structs
    /// flattened), which is what the SysV classifier looks at.
    pub fn scalars(&self) -> Vec<(CType, usize)> {
        let mut out = Vec::new();
        for (field, offset) in &self.fields {
            match field {
                CType::Struct(inner) => {
                    out.extend(inner.scalars().into_iter().map(|(t, o)| (t, o + offset)))
                }
                t => out.push((t.clone(), *offset)),
            }
        }
        out
    }
}

/// A C function's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub params: Vec<CType>,
    pub ret: CType,
    /// For a variadic function, how many of `params` are the fixed ones; the
    /// rest are this call shape's variadic arguments (already promoted).
    pub fixed_params: Option<usize>,
}

impl Signature {
    pub fn new(params: Vec<CType>, ret: CType) -> Signature {
        Signature { params, ret, fixed_params: None }
    }

    pub fn variadic(fixed: Vec<CType>, varargs: Vec<CType>, ret: CType) -> Signature {
        let fixed_len = fixed.len();
        let mut params = fixed;
        // C's default argument promotions: float travels as double, narrow
        // integers as int.
        params.extend(varargs.into_iter().map(|t| match t {
            CType::F32 => CType::F64,
            CType::Bool | CType::I8 | CType::I16 => CType::I32,
            CType::U8 | CType::U16 => CType::U32,
            t => t,
        }));
        Signature { params, ret, fixed_params: Some(fixed_len) }
    }

    pub fn is_variadic(&self) -> bool {
        self.fixed_params.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_layout_pads_like_c() {
        // struct { char c; double d; int i; } => offsets 0, 8, 16; size 24
        let s = StructType::natural(vec![CType::I8, CType::F64, CType::I32]);
        let offsets: Vec<usize> = s.fields.iter().map(|f| f.1).collect();
        assert_eq!(offsets, vec![0, 8, 16]);
        assert_eq!((s.size, s.align), (24, 8));
    }

    #[test]
    fn variadic_promotes_float_and_narrow_ints() {
        let sig = Signature::variadic(vec![CType::CString], vec![CType::F32, CType::I8], CType::I32);
        assert_eq!(sig.params, vec![CType::CString, CType::F64, CType::I32]);
        assert_eq!(sig.fixed_params, Some(1));
    }

    #[test]
    fn names_round_trip() {
        for name in ["void", "bool", "int8", "uint64", "float", "double", "long_double", "pointer", "string"] {
            assert_eq!(CType::from_name(name).unwrap().name(), name);
        }
        assert_eq!(CType::from_name("long"), None);
    }

    #[test]
    fn long_double_is_16_bytes_16_aligned_and_not_promoted() {
        assert_eq!((CType::LongDouble.size(), CType::LongDouble.align()), (16, 16));
        assert_eq!(CType::LongDouble.reg_class(), None);
        let s = StructType::natural(vec![CType::I32, CType::LongDouble]);
        assert_eq!((s.fields[1].1, s.size, s.align), (16, 32, 16));
        let sig = Signature::variadic(vec![CType::CString], vec![CType::LongDouble], CType::I32);
        assert_eq!(sig.params[1], CType::LongDouble);
    }
}
