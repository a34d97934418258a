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
    /// A `Struct.by_ref` parameter: a pointer taken only from nil or a
    /// Struct of the class the stub's info names (a Pointer is a TypeError,
    /// as in the ffi gem). No type name resolves to it: the Ruby layer's
    /// `["pointer", StructClass]` descriptor does.
    StructRef,
    CString,
    /// A struct passed or returned by value.
    Struct(Arc<StructType>),
}

/// Every scalar [`CType`] (each `name()` is a canonical name of the type
/// table; [`CType::from_name`] matches them directly, tested against this).
#[cfg(test)]
const SCALARS: [CType; 15] = [
    CType::Void,
    CType::Bool,
    CType::I8,
    CType::U8,
    CType::I16,
    CType::U16,
    CType::I32,
    CType::U32,
    CType::I64,
    CType::U64,
    CType::F32,
    CType::F64,
    CType::LongDouble,
    CType::Pointer,
    CType::CString,
];

/// C `long`/`unsigned long` on the target: LP64 on 64-bit Unix, 32 bits
/// elsewhere (ILP32, Windows' LLP64).
const LONG: &str = if cfg!(all(target_pointer_width = "64", not(windows))) { "int64" } else { "int32" };
const ULONG: &str = if cfg!(all(target_pointer_width = "64", not(windows))) { "uint64" } else { "uint32" };

/// C `long double` on the target, (size, alignment): x87 extended in 16
/// bytes on x86-64, binary128 on AArch64 Linux, `double` on Apple arm64.
const LONG_DOUBLE: (usize, usize) =
    if cfg!(all(target_arch = "aarch64", target_vendor = "apple")) { (8, 8) } else { (16, 16) };

const POINTER: usize = std::mem::size_of::<usize>();

/// The C type table: every type name the Ruby layer accepts (the ffi gem's
/// spellings) and the canonical name it resolves to; a canonical name maps
/// to itself. lib/fiddle_jit/types.rb (`FiddleJit::Native::C_TYPES`), the
/// Pointer and Struct accessors and [`CType::from_name`] all read it.
/// `strptr` (a return type only) and `varargs` (the last parameter only) are
/// the Ruby layer's pseudo types: no `CType`.
pub const TYPE_NAMES: &[(&str, &str)] = &[
    ("void", "void"),
    ("bool", "bool"),
    ("char", "int8"),
    ("uchar", "uint8"),
    ("int8", "int8"),
    ("uint8", "uint8"),
    ("short", "int16"),
    ("ushort", "uint16"),
    ("int16", "int16"),
    ("uint16", "uint16"),
    ("int", "int32"),
    ("uint", "uint32"),
    ("int32", "int32"),
    ("uint32", "uint32"),
    ("long", LONG),
    ("ulong", ULONG),
    ("int64", "int64"),
    ("uint64", "uint64"),
    ("long_long", "int64"),
    ("ulong_long", "uint64"),
    ("size_t", ULONG),
    ("ssize_t", LONG),
    ("intptr_t", LONG),
    ("uintptr_t", ULONG),
    ("float", "float"),
    ("double", "double"),
    ("float32", "float"),
    ("float64", "double"),
    ("pointer", "pointer"),
    ("string", "string"),
    ("buffer_in", "pointer"),
    ("buffer_out", "pointer"),
    ("buffer_inout", "pointer"),
    ("long_double", "long_double"),
    ("strptr", "strptr"),
    ("varargs", "varargs"),
];

/// A row of the type table with the size and alignment Ruby reports for it
/// (`FFI.type_size`, `Type#size`/`#alignment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedType {
    pub name: &'static str,
    pub canonical: &'static str,
    pub size: usize,
    pub align: usize,
}

impl NamedType {
    /// Every row of [`TYPE_NAMES`], in order.
    pub fn all() -> impl Iterator<Item = NamedType> {
        TYPE_NAMES.iter().map(|&(name, canonical)| NamedType::row(name, canonical))
    }

    fn row(name: &'static str, canonical: &'static str) -> NamedType {
        let (size, align) = match canonical {
            // As the ffi gem's Type::VOID (and its varargs marker): 1.
            "void" | "varargs" => (1, 1),
            "strptr" => (POINTER, POINTER),
            c => {
                let t = CType::canonical(c).expect("every canonical name is a scalar");
                (t.size(), t.align())
            }
        };
        NamedType { name, canonical, size, align }
    }

    /// The row for +name+ (names compared first, sizes computed once).
    pub fn find(name: &str) -> Option<NamedType> {
        TYPE_NAMES.iter().find(|(n, _)| *n == name).map(|&(n, c)| NamedType::row(n, c))
    }
}

/// Which register class a scalar travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegClass {
    Integer,
    Float,
}

impl CType {
    /// The C type a name of the type table stands for (`"int"`, `"int32"`,
    /// `"long"`, `"size_t"`, `"double"`, `"string"`, ...; see [`TYPE_NAMES`]);
    /// `None` for unknown names and the Ruby-only pseudo types (`strptr`,
    /// `varargs`).
    pub fn from_name(name: &str) -> Option<CType> {
        // The canonical names (what the Ruby layer passes almost always)
        // without scanning the table; then the other spellings.
        if let Some(t) = CType::canonical(name) {
            return Some(t);
        }
        let &(_, canonical) = TYPE_NAMES.iter().find(|(n, _)| *n == name)?;
        CType::canonical(canonical)
    }

    /// The scalar whose [`CType::name`] is +name+ (a `match`: no table scan).
    fn canonical(name: &str) -> Option<CType> {
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
            "float" => CType::F32,
            "double" => CType::F64,
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
            CType::Pointer | CType::StructRef => "pointer",
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
            CType::I64 | CType::U64 | CType::F64 | CType::Pointer | CType::StructRef | CType::CString => 8,
            CType::LongDouble => LONG_DOUBLE.0,
            CType::Struct(s) => s.size,
        }
    }

    /// Alignment in bytes (C `_Alignof`).
    pub fn align(&self) -> usize {
        match self {
            CType::Struct(s) => s.align,
            CType::Void => 1,
            CType::LongDouble => LONG_DOUBLE.1,
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
    fn canonical_names_match_every_scalar() {
        for t in SCALARS.iter() {
            assert_eq!(CType::canonical(t.name()).as_ref(), Some(t));
            assert_eq!(CType::from_name(t.name()).as_ref(), Some(t));
        }
        for &(name, canonical) in TYPE_NAMES {
            let expected = SCALARS.iter().find(|t| t.name() == canonical).cloned();
            assert_eq!(CType::from_name(name), expected, "{name}");
        }
    }

    #[test]
    fn names_round_trip() {
        for name in ["void", "bool", "int8", "uint64", "float", "double", "long_double", "pointer", "string"] {
            assert_eq!(CType::from_name(name).unwrap().name(), name);
        }
        assert_eq!(CType::from_name("long"), Some(CType::I64));
        assert_eq!(CType::from_name("float64"), Some(CType::F64));
        assert_eq!(CType::from_name("strptr"), None);
        assert_eq!(CType::from_name("nonsense"), None);
    }

    #[test]
    fn the_type_table_resolves_to_canonical_rows_with_c_sizes() {
        for t in NamedType::all() {
            let canonical = NamedType::find(t.canonical).expect("canonical row");
            assert_eq!((canonical.canonical, canonical.size, canonical.align), (t.canonical, t.size, t.align), "{}", t.name);
            if let Some(c) = CType::from_name(t.name).filter(|c| *c != CType::Void) {
                assert_eq!((c.size(), c.align()), (t.size, t.align), "{}", t.name);
            }
        }
        let size = |n| NamedType::find(n).unwrap().size;
        assert_eq!((size("char"), size("short"), size("int"), size("long_long")), (1, 2, 4, 8));
        assert_eq!((size("long"), size("size_t"), size("pointer")), (8, 8, 8));
        assert_eq!((size("void"), size("varargs")), (1, 1));
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
