//! Readable assembly for installed code (`FiddleJit.disassemble`): x86-64
//! through iced-x86, AArch64 through yaxpeax-arm (both pure Rust, each
//! built only for its own architecture, and both for `cargo test`). Loads
//! from a stub's literal pool are annotated with the constant and, when
//! known, the symbol it names.

#[cfg(any(target_arch = "x86_64", test))]
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use std::fmt::Write;

/// Disassembles `code` (running at `address`) for the host architecture;
/// the first `code_len` bytes are instructions, the rest the literal pool.
/// `symbols` names addresses.
pub fn disassemble(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    #[cfg(target_arch = "x86_64")]
    return disassemble_x86_64(code, code_len, address, symbols);
    #[cfg(target_arch = "aarch64")]
    return disassemble_aarch64(code, code_len, address, symbols);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return words(code, code_len, address, symbols);
}

/// AArch64: one line per 4-byte word; a branch gets its target (as an
/// offset in the stub), and a literal load (`ldr x16, <pool>`) the pool
/// entry's value or the name of the symbol it holds. Words that decode to nothing are shown
/// as `.inst`. Then the pool entries that name a known address.
#[cfg(any(target_arch = "aarch64", test))]
fn disassemble_aarch64(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    use yaxpeax_arch::{Decoder as _, U8Reader};
    use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Operand, SIMDSizeCode, SizeCode};

    let name_of = |value: u64| symbols.iter().find(|(a, _)| *a == value).map(|(_, n)| n.as_str());
    let decoder = InstDecoder::default();
    let mut out = String::new();
    let mut inst = Instruction::default();
    for (i, word) in code[..code_len.min(code.len())].chunks_exact(4).enumerate() {
        let offset = 4 * i;
        let ip = address + offset as u64;
        if decoder.decode_into(&mut inst, &mut U8Reader::new(word)).is_err() {
            let w = u32::from_le_bytes(word.try_into().expect("4 bytes"));
            let _ = writeln!(out, "{ip:#x}  +{offset:<4} .inst {w:#010x}");
            continue;
        }
        let text = inst.to_string();
        let mut comment = String::new();
        if let Some(delta) = inst.operands.iter().find_map(|op| match op {
            Operand::PCOffset(delta) => Some(*delta),
            _ => None,
        }) {
            let target = ip.wrapping_add(delta as u64);
            // A literal load reads the pool: 4 bytes into a w/s register,
            // 8 into an x/d register.
            let width = match inst.operands[0] {
                Operand::Register(SizeCode::W, _) | Operand::SIMDRegister(SIMDSizeCode::S, _) => 4,
                _ => 8,
            };
            let at = target.wrapping_sub(address) as usize;
            let loaded = text.starts_with("ldr").then(|| code.get(at..at + width)).flatten();
            comment = match loaded {
                Some(bytes) => {
                    let mut le = [0u8; 8];
                    le[..width].copy_from_slice(bytes);
                    let value = u64::from_le_bytes(le);
                    match name_of(value) {
                        Some(name) => format!("  ; {name}"),
                        None => format!("  ; ={value:#x}"),
                    }
                }
                // A branch inside the stub: its offset, as in the left column.
                None if (address..address + code.len() as u64).contains(&target) => format!("  ; +{at}"),
                None => match name_of(target) {
                    Some(name) => format!("  ; {target:#x} {name}"),
                    None => format!("  ; {target:#x}"),
                },
            };
        }
        let _ = writeln!(out, "{ip:#x}  +{offset:<4} {text}{comment}");
    }
    named_pool_entries(&mut out, code, code_len, address, symbols);
    out
}

/// Fixed-width instruction words of an architecture without a decoder
/// here: `.inst 0x...` per word, then the named pool entries.
#[cfg(any(not(any(target_arch = "x86_64", target_arch = "aarch64")), test))]
fn words(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    let mut out = String::new();
    for (i, word) in code[..code_len.min(code.len())].chunks_exact(4).enumerate() {
        let w = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        let _ = writeln!(out, "{:#x}  +{:<4} .inst {w:#010x}", address + 4 * i as u64, 4 * i);
    }
    named_pool_entries(&mut out, code, code_len, address, symbols);
    out
}

/// The 8-byte pool entries after the code that hold a named address, and
/// the pool's size.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn named_pool_entries(out: &mut String, code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) {
    let mut at = code_len.div_ceil(8) * 8;
    while let Some(bytes) = code.get(at..at + 8) {
        let value = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        if let Some((_, name)) = symbols.iter().find(|(a, _)| *a == value) {
            let _ = writeln!(out, "{:#x}  +{:<4} .quad {value:#x}  ; {name}", address + at as u64, at);
        }
        at += 8;
    }
    if code.len() > code_len {
        let _ = writeln!(out, "; literal pool: {} bytes", code.len() - code_len);
    }
}

/// Disassembles x86-64 `code`; the first `code_len` bytes are instructions,
/// the rest the literal pool. `symbols` names addresses.
#[cfg(any(target_arch = "x86_64", test))]
fn disassemble_x86_64(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    let mut decoder = Decoder::with_ip(64, &code[..code_len.min(code.len())], address, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    formatter.options_mut().set_first_operand_char_index(8);
    let mut out = String::new();
    let mut text = String::new();
    let mut instr = Instruction::default();
    let name_of = |value: u64| symbols.iter().find(|(a, _)| *a == value).map(|(_, n)| n.as_str());
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        text.clear();
        formatter.format(&instr, &mut text);
        let mut comment = String::new();
        if instr.is_ip_rel_memory_operand() {
            let at = instr.ip_rel_memory_address();
            let offset = at.wrapping_sub(address) as usize;
            if let Some(bytes) = code.get(offset..offset + 8) {
                let value = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                comment = match name_of(value) {
                    Some(name) => format!("  ; {name}"),
                    None => format!("  ; {value:#x}"),
                };
            }
        } else if let Some(name) = (instr.near_branch_target() != 0).then(|| name_of(instr.near_branch_target())).flatten() {
            comment = format!("  ; {name}");
        }
        let _ = writeln!(out, "{:#x}  +{:<4} {text}{comment}", instr.ip(), instr.ip() - address);
    }
    if code.len() > code_len {
        let _ = writeln!(out, "; literal pool: {} bytes", code.len() - code_len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_instructions_and_names_pool_entries() {
        // call qword ptr [rip+2]; ret; int3; then the pool entry 0x1234.
        let mut code = vec![0xff, 0x15, 0x02, 0, 0, 0, 0xc3, 0xcc];
        code.extend_from_slice(&0x1234u64.to_le_bytes());
        let text = disassemble_x86_64(&code, 8, 0x1000, &[(0x1234, "strlen".into())]);
        assert!(text.contains("call"), "{text}");
        assert!(text.contains("; strlen"), "{text}");
        assert!(text.contains("ret"), "{text}");
        assert!(text.contains("literal pool: 8 bytes"), "{text}");
    }

    #[test]
    fn aarch64_names_literal_loads_and_branch_targets() {
        // stp x29, x30, [sp, #-16]! ; ldr x16, pool+0 ; blr x16 ; cbz x9, (udf) ;
        // ldr d16, pool+8 ; udf #0 ; then the pool: strlen's address, 2.5
        // (words from aarch64-linux-gnu-as).
        let words: [u32; 6] = [0xa9bf_7bfd, 0x5800_00b0, 0xd63f_0200, 0xb400_0049, 0x5c00_0090, 0x0000_0000];
        let mut code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        code.extend_from_slice(&0x7f00_1234u64.to_le_bytes());
        code.extend_from_slice(&2.5f64.to_bits().to_le_bytes());
        let text = disassemble_aarch64(&code, 24, 0x1000, &[(0x7f00_1234, "strlen".into())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "0x1000  +0    stp x29, x30, [sp, #-0x10]!", "{text}");
        assert_eq!(lines[1], "0x1004  +4    ldr x16, $+0x14  ; strlen", "{text}");
        assert_eq!(lines[2], "0x1008  +8    blr x16", "{text}");
        assert_eq!(lines[3], "0x100c  +12   cbz x9, $+0x8  ; +20", "{text}");
        assert_eq!(lines[4], "0x1010  +16   ldr d16, $+0x10  ; =0x4004000000000000", "{text}");
        assert_eq!(lines[5], "0x1014  +20   udf #0x0", "{text}");
        assert_eq!(lines[6], "0x1018  +24   .quad 0x7f001234  ; strlen", "{text}");
        assert_eq!(lines[7], "; literal pool: 16 bytes", "{text}");
        assert_eq!(lines.len(), 8, "{text}");
    }

    #[test]
    fn other_architectures_list_words_with_named_pool_entries() {
        // ldr x16, #8; br x16; then the pool entry 0x1234.
        let mut code = Vec::new();
        code.extend_from_slice(&0x5800_0050u32.to_le_bytes());
        code.extend_from_slice(&0xd61f_0200u32.to_le_bytes());
        code.extend_from_slice(&0x1234u64.to_le_bytes());
        let text = words(&code, 8, 0x1000, &[(0x1234, "strlen".into())]);
        assert!(text.contains(".inst 0x58000050"), "{text}");
        assert!(text.contains(".inst 0xd61f0200"), "{text}");
        assert!(text.contains(".quad 0x1234  ; strlen"), "{text}");
        assert!(text.contains("literal pool: 8 bytes"), "{text}");
    }
}
