//! The initial stack, laid out as Linux's exec builds it: from the stack
//! pointer up, argc, argv[], NULL, envp[], NULL, auxv pairs ending in
//! AT_NULL, then padding and the strings and bytes they point to, with the
//! executable's name (AT_EXECFN) at the very top.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;

/// Auxiliary vector values other than the ones pointing into the stack.
#[derive(Clone, Debug, Default)]
pub struct AuxValues {
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    pub entry: u64,
    /// Where the interpreter is loaded (0 without one).
    pub base: u64,
    pub hwcap: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub clktck: u64,
    /// The vDSO's ELF header.
    pub sysinfo_ehdr: u64,
}

pub struct InitialStack {
    /// The payload's rsp at entry (16-byte aligned, pointing at argc).
    pub sp: u64,
    /// Bytes for [sp, top).
    pub bytes: Vec<u8>,
    /// Where the argument strings lie, [start, end): /proc/self/cmdline.
    pub args: (u64, u64),
    /// Where the environment strings lie: /proc/self/environ.
    pub env: (u64, u64),
    /// The auxiliary vector as laid out, AT_NULL pair included, which
    /// Linux keeps for /proc/self/auxv.
    pub auxv: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StackError {
    #[error("an argument or environment string contains a NUL byte")]
    Nul,
    #[error("arguments and environment need {0} bytes, more than the {1}-byte limit")]
    TooBig(usize, usize),
}

/// Builds the stack that ends at `top` (exclusive). `limit` bounds the
/// strings and vectors together, like Linux's ARG_MAX check (E2BIG).
pub fn build(
    top: u64,
    args: &[OsString],
    env: &[OsString],
    execfn: &OsString,
    random: [u8; 16],
    aux: &AuxValues,
    limit: usize,
) -> Result<InitialStack, StackError> {
    let cstr = |s: &OsString| CString::new(s.clone().into_vec()).map_err(|_| StackError::Nul);
    let args: Vec<CString> = args.iter().map(cstr).collect::<Result<_, _>>()?;
    let env: Vec<CString> = env.iter().map(cstr).collect::<Result<_, _>>()?;
    let execfn = cstr(execfn)?;

    // Strings and bytes are placed downward from the top.
    let mut data: Vec<u8> = Vec::new(); // grows downward: data[0] is at `cursor`
    let mut cursor = top - 8; // Linux leaves one word free at the very top
    let mut push = |bytes: &[u8], data: &mut Vec<u8>| -> u64 {
        cursor -= bytes.len() as u64;
        let mut v = bytes.to_vec();
        v.append(data);
        *data = v;
        cursor
    };
    let execfn_at = push(execfn.as_bytes_with_nul(), &mut data);
    let env_at: Vec<u64> = env.iter().rev().map(|s| push(s.as_bytes_with_nul(), &mut data)).collect();
    let arg_at: Vec<u64> = args.iter().rev().map(|s| push(s.as_bytes_with_nul(), &mut data)).collect();
    let platform_at = push(b"x86_64\0", &mut data);
    let random_at = push(&random, &mut data);

    let auxv: Vec<(u64, u64)> = vec![
        (AT_SYSINFO_EHDR, aux.sysinfo_ehdr),
        (AT_HWCAP, aux.hwcap),
        (AT_PAGESZ, 4096),
        (AT_CLKTCK, aux.clktck),
        (AT_PHDR, aux.phdr),
        (AT_PHENT, aux.phent),
        (AT_PHNUM, aux.phnum),
        (AT_BASE, aux.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, aux.entry),
        (AT_UID, aux.uid),
        (AT_EUID, aux.euid),
        (AT_GID, aux.gid),
        (AT_EGID, aux.egid),
        (AT_SECURE, 0),
        (AT_RANDOM, random_at),
        (AT_HWCAP2, 0),
        (AT_EXECFN, execfn_at),
        (AT_PLATFORM, platform_at),
        (AT_NULL, 0),
    ];
    let auxv_bytes: Vec<u8> = auxv.iter().flat_map(|&(k, v)| [k.to_le_bytes(), v.to_le_bytes()]).flatten().collect();
    let env_start = env_at.last().copied().unwrap_or(execfn_at);
    let arg_start = arg_at.last().copied().unwrap_or(env_start);
    let mut words: Vec<u64> = Vec::new();
    words.push(args.len() as u64);
    words.extend(arg_at.iter().rev());
    words.push(0);
    words.extend(env_at.iter().rev());
    words.push(0);
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }

    let vector_bytes = words.len() * 8;
    let sp = (cursor - vector_bytes as u64) & !15;
    let total = (top - sp) as usize;
    if total > limit {
        return Err(StackError::TooBig(total, limit));
    }
    let mut bytes = vec![0u8; total];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let data_off = (cursor - sp) as usize;
    bytes[data_off..data_off + data.len()].copy_from_slice(&data);
    Ok(InitialStack { sp, bytes, args: (arg_start, env_start), env: (env_start, execfn_at), auxv: auxv_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &InitialStack, addr: u64) -> u64 {
        let o = (addr - s.sp) as usize;
        u64::from_le_bytes(s.bytes[o..o + 8].try_into().unwrap())
    }

    fn string(s: &InitialStack, addr: u64) -> String {
        let o = (addr - s.sp) as usize;
        let end = s.bytes[o..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8(s.bytes[o..o + end].to_vec()).unwrap()
    }

    fn sample() -> InitialStack {
        let args: Vec<OsString> = vec!["prog".into(), "a b".into(), "".into()];
        let env: Vec<OsString> = vec!["HOME=/h".into(), "X=1".into()];
        let aux = AuxValues { phdr: 0x400040, phnum: 7, phent: 56, entry: 0x401000, clktck: 100, ..Default::default() };
        build(0x7000_0000, &args, &env, &"./prog".into(), [7; 16], &aux, 1 << 20).unwrap()
    }

    #[test]
    fn layout_matches_linux() {
        let s = sample();
        assert_eq!(s.sp % 16, 0);
        assert_eq!(s.sp + s.bytes.len() as u64, 0x7000_0000);
        assert_eq!(word(&s, s.sp), 3);
        let argv = s.sp + 8;
        assert_eq!(string(&s, word(&s, argv)), "prog");
        assert_eq!(string(&s, word(&s, argv + 8)), "a b");
        assert_eq!(string(&s, word(&s, argv + 16)), "");
        assert_eq!(word(&s, argv + 24), 0);
        let envp = argv + 32;
        assert_eq!(string(&s, word(&s, envp)), "HOME=/h");
        assert_eq!(string(&s, word(&s, envp + 8)), "X=1");
        assert_eq!(word(&s, envp + 16), 0);
        let mut auxv = std::collections::HashMap::new();
        let mut at = envp + 24;
        loop {
            let (k, v) = (word(&s, at), word(&s, at + 8));
            if k == AT_NULL {
                break;
            }
            auxv.insert(k, v);
            at += 16;
        }
        assert_eq!(auxv[&AT_PAGESZ], 4096);
        assert_eq!(auxv[&AT_PHDR], 0x400040);
        assert_eq!(auxv[&AT_PHNUM], 7);
        assert_eq!(auxv[&AT_ENTRY], 0x401000);
        assert_eq!(auxv[&AT_CLKTCK], 100);
        assert_eq!(string(&s, auxv[&AT_EXECFN]), "./prog");
        assert_eq!(string(&s, auxv[&AT_PLATFORM]), "x86_64");
        let r = (auxv[&AT_RANDOM] - s.sp) as usize;
        assert_eq!(&s.bytes[r..r + 16], &[7; 16]);
        assert_eq!(string(&s, s.args.0), "prog");
        assert_eq!(s.args.1 - s.args.0, "prog\0a b\0\0".len() as u64);
        assert_eq!(string(&s, s.env.0), "HOME=/h");
        assert_eq!(s.env.1 - s.env.0, "HOME=/h\0X=1\0".len() as u64);
        assert_eq!(s.auxv.len() % 16, 0);
        assert_eq!(&s.auxv[s.auxv.len() - 16..], &[0; 16]);
        // The file name sits at the top, below one free word.
        assert_eq!(auxv[&AT_EXECFN], 0x7000_0000 - 8 - "./prog".len() as u64 - 1);
    }

    #[test]
    fn auxv_names_the_vdso() {
        let aux = AuxValues { sysinfo_ehdr: 0x7f_c040_1000, ..Default::default() };
        let s = build(0x7000_0000, &["p".into()], &[], &"p".into(), [0; 16], &aux, 1 << 20).unwrap();
        // argc, argv[0], NULL, no env, NULL, then the first auxv pair.
        let auxv = s.sp + 4 * 8;
        assert_eq!((word(&s, auxv), word(&s, auxv + 8)), (AT_SYSINFO_EHDR, 0x7f_c040_1000));
    }

    #[test]
    fn alignment_holds_for_any_count() {
        for n in 0..6 {
            let args: Vec<OsString> = (0..n).map(|i| format!("{i}").into()).collect();
            let s = build(0x7000_0000, &args, &[], &"p".into(), [0; 16], &AuxValues::default(), 1 << 20).unwrap();
            assert_eq!(s.sp % 16, 0, "{n} args");
            assert_eq!(word(&s, s.sp), n);
        }
    }

    #[test]
    fn rejects_nul_and_oversize() {
        let bad: Vec<OsString> = vec![OsString::from_vec(b"a\0b".to_vec())];
        let e = build(0x7000_0000, &bad, &[], &"p".into(), [0; 16], &AuxValues::default(), 1 << 20);
        assert_eq!(e.err(), Some(StackError::Nul));
        let big: Vec<OsString> = vec!["x".repeat(5000).into()];
        let e = build(0x7000_0000, &big, &[], &"p".into(), [0; 16], &AuxValues::default(), 4096);
        assert!(matches!(e.err(), Some(StackError::TooBig(_, 4096))));
    }
}
