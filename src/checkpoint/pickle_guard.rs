//! A dry run of a checkpoint's pickle before candle's `Stack` executes it. Every
//! length is checked against the bytes that remain and the objects that memo
//! look-ups copy are counted, so a few crafted bytes can neither make the reader
//! allocate gigabytes, nor nest deep enough to overflow the stack when dropped,
//! nor reach the integer overflows in candle's reader (a `LONG1` of more than
//! eight bytes panics there).
//!
//! The opcodes and their effects mirror `candle_core::pickle::Stack::read`,
//! which understands a subset of protocol 2 (what `torch.save` writes).

use std::collections::HashMap;

/// Most units (objects, and bytes of strings) the objects built may hold, copies
/// included. A BERT-base state dict builds about 20 000.
const MAX_UNITS: u64 = 1 << 24;
/// Deepest nesting of tuples, calls and containers; a state dict needs about 8.
const MAX_DEPTH: u32 = 64;

/// What an object built by the pickle would cost.
#[derive(Debug, Clone, Copy)]
struct Size {
    units: u64,
    depth: u32,
}

impl Size {
    fn leaf(bytes: usize) -> Self {
        Size {
            units: 1 + bytes as u64,
            depth: 1,
        }
    }

    /// An object holding `parts`.
    fn holding(parts: &[Size]) -> Self {
        Size {
            units: 1 + parts.iter().map(|p| p.units).sum::<u64>(),
            depth: 1 + parts.iter().map(|p| p.depth).max().unwrap_or(0),
        }
    }
}

/// A stack slot: candle's `Object::Mark` or any other object.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Mark,
    Object(Size),
}

impl Slot {
    fn size(self) -> Size {
        match self {
            Slot::Mark => Size::leaf(0),
            Slot::Object(size) => size,
        }
    }
}

struct DryRun<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Slot>,
    /// Units built or copied so far.
    units: u64,
}

/// Whether candle's reader can run `bytes` within the bounds above; else why not.
pub(super) fn check(bytes: &[u8]) -> Result<(), String> {
    let mut run = DryRun {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        units: 0,
    };
    while !run.step()? {}
    Ok(())
}

impl DryRun<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "pickle ends at byte {} inside an argument of {n} bytes",
                    self.bytes.len()
                )
            })?;
        let arg = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(arg)
    }

    fn le_u32(&mut self) -> Result<u32, String> {
        let arg = self.take(4)?;
        Ok(u32::from_le_bytes([arg[0], arg[1], arg[2], arg[3]]))
    }

    /// The bytes up to the next newline, as candle's `read_to_newline` reads them.
    fn line(&mut self) -> Result<usize, String> {
        let rest = &self.bytes[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle ends inside a GLOBAL name")?;
        self.pos += len + 1;
        Ok(len)
    }

    fn push(&mut self, slot: Slot) -> Result<(), String> {
        let size = slot.size();
        if size.depth > MAX_DEPTH {
            return Err(format!("pickle nests objects more than {MAX_DEPTH} deep"));
        }
        self.stack.push(slot);
        Ok(())
    }

    fn push_object(&mut self, size: Size) -> Result<(), String> {
        self.push(Slot::Object(size))
    }

    fn pop(&mut self) -> Result<Size, String> {
        self.stack
            .pop()
            .map(Slot::size)
            .ok_or_else(|| "pickle pops an empty stack".to_string())
    }

    fn pop_to_mark(&mut self) -> Result<Vec<Size>, String> {
        let mark = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or("pickle has no MARK where one is needed")?;
        let parts = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(parts.into_iter().map(Slot::size).collect())
    }

    /// Add `parts` to the container on top of the stack (APPEND, SETITEM, …).
    fn extend_last(&mut self, parts: &[Size]) -> Result<(), String> {
        let Some(Slot::Object(last)) = self.stack.last().copied() else {
            return Err("pickle adds items to something that is not a container".into());
        };
        let grown = Size::holding(&[last, Size::holding(parts)]);
        self.stack.pop();
        self.push_object(grown)
    }

    /// Count a copy candle makes of `slot` (memo put and get clone the object).
    fn copy(&mut self, slot: Slot) -> Result<Slot, String> {
        self.units = self.units.saturating_add(slot.size().units);
        if self.units > MAX_UNITS {
            return Err(format!(
                "pickle builds more than {MAX_UNITS} objects (memo copies)"
            ));
        }
        Ok(slot)
    }

    fn memo_get(&mut self, id: u32) -> Result<(), String> {
        let slot = *self
            .memo
            .get(&id)
            .ok_or_else(|| format!("pickle reads memo {id} before writing it"))?;
        let slot = self.copy(slot)?;
        self.push(slot)
    }

    fn memo_put(&mut self, id: u32) -> Result<(), String> {
        let last = *self.stack.last().ok_or("pickle memoizes an empty stack")?;
        let slot = self.copy(last)?;
        self.memo.insert(id, slot);
        Ok(())
    }

    /// Pop `n` objects and push one holding them.
    fn combine(&mut self, n: usize) -> Result<(), String> {
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(self.pop()?);
        }
        self.push_object(Size::holding(&parts))
    }

    /// One opcode; `true` at STOP.
    fn step(&mut self) -> Result<bool, String> {
        let op = self.take(1)?[0];
        match op {
            0x80 => {
                self.take(1)?; // PROTO
            }
            b'c' => {
                let len = self.line()? + self.line()?;
                self.push_object(Size::leaf(len))?;
            }
            b'K' | b'M' | b'J' | b'G' => {
                let n = match op {
                    b'K' => 1,
                    b'M' => 2,
                    b'J' => 4,
                    _ => 8,
                };
                self.take(n)?;
                self.push_object(Size::leaf(0))?;
            }
            b'X' => {
                let len = self.le_u32()? as usize;
                self.take(len)?;
                self.push_object(Size::leaf(len))?;
            }
            0x8a => {
                let n = self.take(1)?[0];
                if n > 8 {
                    return Err(format!("LONG1 of {n} bytes (at most 8 are supported)"));
                }
                self.take(n.into())?;
                self.push_object(Size::leaf(0))?;
            }
            b'Q' => self.combine(1)?,
            0x85 => self.combine(1)?,
            0x86 => self.combine(2)?,
            0x87 => self.combine(3)?,
            b'b' | b'R' | 0x81 => self.combine(2)?,
            b't' => {
                let parts = self.pop_to_mark()?;
                self.push_object(Size::holding(&parts))?;
            }
            b'a' => {
                let value = self.pop()?;
                self.extend_last(&[value])?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.extend_last(&[key, value])?;
            }
            b'e' | b'u' => {
                let parts = self.pop_to_mark()?;
                self.extend_last(&parts)?;
            }
            // candle reads `d` (DICT) as EMPTY_DICT.
            0x88 | 0x89 | b'N' | b'}' | b'd' | b')' | b']' => {
                self.push_object(Size::leaf(0))?;
            }
            b'(' => self.push(Slot::Mark)?,
            b'h' => {
                let id = self.take(1)?[0];
                self.memo_get(id.into())?;
            }
            b'j' => {
                let id = self.le_u32()?;
                self.memo_get(id)?;
            }
            b'q' => {
                let id = self.take(1)?[0];
                self.memo_put(id.into())?;
            }
            b'r' => {
                let id = self.le_u32()?;
                self.memo_put(id)?;
            }
            b'.' => return Ok(true),
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn a_small_state_dict_passes() {
        // d = {"a": (1, "xy")}, memoized when empty, then (memo 0,).
        let pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01X\x02\x00\x00\x00xy\x86uh\x00\x85.";
        assert_eq!(check(pickle), Ok(()));
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        let err = check(b"\x80\x02X\xff\xff\xff\xffab.").unwrap_err();
        assert!(
            err.contains("inside an argument of 4294967295 bytes"),
            "{err}"
        );
    }

    #[test]
    fn long1_wider_than_eight_bytes_is_refused() {
        let mut pickle = b"\x80\x02\x8a\x40".to_vec();
        pickle.extend([0u8; 64]);
        pickle.push(b'.');
        assert!(check(&pickle).unwrap_err().contains("LONG1 of 64 bytes"));
    }

    #[test]
    fn memo_doubling_is_bounded() {
        // x = ("a"*1000,); then 64 times: x = (x, x) — 2^64 units once copied.
        let mut pickle = b"\x80\x02X\xe8\x03\x00\x00".to_vec();
        pickle.extend([b'a'; 1000]);
        pickle.extend(b"\x85q\x00");
        for _ in 0..64 {
            pickle.extend(b"h\x00h\x00\x86q\x00");
        }
        pickle.push(b'.');
        let err = check(&pickle).unwrap_err();
        assert!(err.contains("memo copies"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut pickle = b"\x80\x02N".to_vec();
        pickle.extend([0x85; 100_000]);
        pickle.push(b'.');
        assert!(check(&pickle).unwrap_err().contains("deep"));
    }
}
