//! Readable assembly for installed code (`FiddleJit.disassemble`), via
//! iced-x86. RIP-relative loads from a stub's literal pool are annotated
//! with the constant and, when known, the symbol it names.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use std::fmt::Write;

/// Disassembles `code` (running at `address`) for the host architecture:
/// x86-64 as assembly; elsewhere (iced-x86 decodes x86 only) as raw
/// instruction words, with the literal pool's named entries.
pub fn disassemble(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    if cfg!(target_arch = "x86_64") {
        disassemble_x86_64(code, code_len, address, symbols)
    } else {
        words(code, code_len, address, symbols)
    }
}

/// Fixed-width instruction words (AArch64): `.inst 0x...` per word, then the
/// pool entries that name a known address. (`objdump -D -b binary -m
/// aarch64` on the words gives the assembly.)
fn words(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
    let mut out = String::new();
    for (i, word) in code[..code_len.min(code.len())].chunks_exact(4).enumerate() {
        let w = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        let _ = writeln!(out, "{:#x}  +{:<4} .inst {w:#010x}", address + 4 * i as u64, 4 * i);
    }
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
    out
}

/// Disassembles x86-64 `code`; the first `code_len` bytes are instructions,
/// the rest the literal pool. `symbols` names addresses.
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
        let text = disassemble(&code, 8, 0x1000, &[(0x1234, "strlen".into())]);
        assert!(text.contains("call"), "{text}");
        assert!(text.contains("; strlen"), "{text}");
        assert!(text.contains("ret"), "{text}");
        assert!(text.contains("literal pool: 8 bytes"), "{text}");
    }

    #[test]
    fn aarch64_code_is_listed_as_words_with_named_pool_entries() {
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
