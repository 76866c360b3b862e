//! The FXSAVE memory image of the x87 and SSE state (the layout FXSAVE/FXRSTOR use and the
//! signal frame's FP state): composing it from the CPU state, applying it back, and copying it
//! to and from guest memory.

use super::Cpu;

/// Bytes of the image Kiln writes and reads: the header, ST(0)..ST(7) and xmm0-15. The rest of
/// the 512-byte area (reserved and available bytes) is left untouched.
pub const IMAGE_BYTES: usize = 416;

/// The image as little-endian quadwords.
pub type Image = [u64; IMAGE_BYTES / 8];

/// The x87 status word with the current stack top in bits 11-13.
pub fn status_word(cpu: &Cpu) -> u64 {
    (cpu.fpu_sw as u64 & !0x3800) | ((cpu.fpu_top & 7) << 11)
}

/// The abridged tag word: one bit per physical register, set when it is not empty.
pub fn abridged_tag_word(cpu: &Cpu) -> u64 {
    let mut ftw = 0u64;
    for p in 0..8 {
        if (cpu.fpu_tag >> (2 * p)) & 3 != 3 {
            ftw |= 1 << p;
        }
    }
    ftw
}

/// The full tag word's emptiness from an abridged one: empty (3) where the bit is clear;
/// valid registers are re-tagged as "valid" (0), the abridged tag cannot say more.
fn tags_from_abridged(ftw: u64) -> u64 {
    let mut tag = 0u64;
    for p in 0..8 {
        if ftw & (1 << p) == 0 {
            tag |= 3 << (2 * p);
        }
    }
    tag
}

/// The image of the current state. The instruction and operand pointers are stored as 0, and
/// MXCSR_MASK as 0xffff.
pub fn image_of(cpu: &Cpu) -> Image {
    let mut img = [0u64; IMAGE_BYTES / 8];
    img[0] = cpu.fpu_cw as u64 | (status_word(cpu) << 16) | (abridged_tag_word(cpu) << 32);
    img[3] = cpu.mxcsr as u64 | (0xffff << 32);
    for i in 0..8 {
        let r = cpu.st[((cpu.fpu_top as usize) + i) & 7];
        img[4 + 2 * i] = r[0];
        img[5 + 2 * i] = r[1] & 0xffff;
    }
    for (i, x) in cpu.xmm.iter().enumerate() {
        img[20 + 2 * i] = x[0];
        img[21 + 2 * i] = x[1];
    }
    img
}

/// Loads the state from an image: control and status words (the stack top from the status
/// word), the abridged tags, MXCSR, ST(0)..ST(7) and xmm0-15.
pub fn apply_image(cpu: &mut Cpu, img: &Image) {
    let w0 = img[0];
    cpu.fpu_cw = w0 as u16;
    cpu.fpu_sw = (w0 >> 16) as u16;
    cpu.fpu_top = (w0 >> 27) & 7;
    cpu.mxcsr = img[3] as u32;
    for i in 0..8 {
        let p = ((cpu.fpu_top as usize) + i) & 7;
        cpu.st[p] = [img[4 + 2 * i], img[5 + 2 * i] & 0xffff];
    }
    cpu.fpu_tag = tags_from_abridged((w0 >> 32) & 0xff);
    for (i, x) in cpu.xmm.iter_mut().enumerate() {
        *x = [img[20 + 2 * i], img[21 + 2 * i]];
    }
}

/// The host address of guest quadword `i` of an image at guest `a`.
fn host_qword(a: u64, i: usize) -> *mut u64 {
    crate::mem::host(a.wrapping_add(8 * i as u64)) as *mut u64
}

/// Stores the image of the current state at guest `a` (FXSAVE, and the signal frame's FP
/// state).
pub fn fxsave_to(cpu: &Cpu, a: u64) {
    for (i, q) in image_of(cpu).iter().enumerate() {
        // SAFETY: `mem::host` keeps the pointer in the guest reservation; unmapped pages fault
        // as the guest's own store would.
        unsafe { host_qword(a, i).write_unaligned(*q) };
    }
}

/// Loads the state from the image at guest `a` (FXRSTOR, and signal return).
pub fn fxrstor_from(cpu: &mut Cpu, a: u64) {
    let mut img = [0u64; IMAGE_BYTES / 8];
    for (i, q) in img.iter_mut().enumerate() {
        // SAFETY: as in `fxsave_to`, for a load.
        *q = unsafe { host_qword(a, i).read_unaligned() };
    }
    apply_image(cpu, &img);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Box<Cpu> {
        let mut cpu = Cpu::new();
        cpu.fpu_cw = 0x37f;
        cpu.fpu_sw = 0x3841;
        cpu.fpu_top = 5;
        cpu.fpu_tag = 0xffff & !(3 << 10) & !(3 << 14);
        cpu.mxcsr = 0x1fa0;
        for (i, r) in cpu.st.iter_mut().enumerate() {
            *r = [0x8000_0000_0000_0000 | i as u64, 0x3fff + i as u64];
        }
        for (i, x) in cpu.xmm.iter_mut().enumerate() {
            *x = [i as u64, !(i as u64)];
        }
        cpu
    }

    #[test]
    fn image_header_composes_status_and_abridged_tags() {
        let cpu = sample();
        let img = image_of(&cpu);
        assert_eq!(img[0] & 0xffff, 0x37f);
        assert_eq!((img[0] >> 16) & 0xffff, 0x2841);
        assert_eq!(img[0] >> 32, 0b1010_0000);
        assert_eq!(img[3], 0xffff_0000_1fa0);
        // ST(0) is physical register 5.
        assert_eq!(img[4], cpu.st[5][0]);
        assert_eq!(img[22], 1);
    }

    #[test]
    fn image_round_trips() {
        let cpu = sample();
        let img = image_of(&cpu);
        let mut back = sample();
        back.fpu_top = 0;
        back.xmm = [[0; 2]; 16];
        apply_image(&mut back, &img);
        assert_eq!(image_of(&back), img);
        assert_eq!(back.fpu_top, 5);
        assert_eq!(back.fpu_tag, cpu.fpu_tag);
    }
}
