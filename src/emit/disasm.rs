//! Readable assembly for installed code (`FiddleJit.disassemble`), via
//! iced-x86. RIP-relative loads from a stub's literal pool are annotated
//! with the constant and, when known, the symbol it names.

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use std::fmt::Write;

/// Disassembles `code` (running at `address`); the first `code_len` bytes
/// are instructions, the rest the literal pool. `symbols` names addresses.
pub fn disassemble(code: &[u8], code_len: usize, address: u64, symbols: &[(u64, String)]) -> String {
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
}
