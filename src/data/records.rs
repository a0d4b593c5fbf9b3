//! Records of a delimited file, read the way the csv crate reads them with
//! the settings `data` used (csv-core's defaults: `"` quotes a field that
//! starts with it, `""` inside quotes is a quote, CR or LF ends a record,
//! blank lines are skipped, rows may have any number of fields), about twice
//! as fast, so that a 1 GB file is counted in under a second.
//!
//! A line without a CR or a quote at the start of a field (nearly every line
//! of a TSV) is split where a 32-byte SIMD scan finds its delimiters and its
//! newline, and the same scan tells whether it is all ASCII (then it needs no
//! UTF-8 check). Any other record goes through a byte-by-byte state machine
//! that mirrors csv-core's. The tests hold both to the csv crate.

use std::io::{self, Read};

/// Bytes read from the file per refill.
const BUFFER: usize = 256 * 1024;

/// Reads records one at a time into a buffer it reuses; a record's fields are
/// borrowed from it until the next call of [`Records::next_record`].
pub(super) struct Records<R> {
    inner: R,
    delimiter: u8,
    /// `buf[start..end]` is read but not yet parsed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Whether nothing has been parsed yet (csv-core drops a BOM there).
    at_start: bool,
    /// 1-based line of `buf[start]`.
    next_line: usize,
    /// Line of the current record's first byte.
    record_line: usize,
    /// The current record's fields: ranges of `buf` from `base` (a quick
    /// split), or of `unquoted` (the state machine).
    fields: Vec<(usize, usize)>,
    base: usize,
    unquoted: Vec<u8>,
    in_unquoted: bool,
    /// Whether the quick split saw every byte of the record below 0x80.
    ascii: bool,
}

/// What [`split_line`] made of the bytes at the start of a record.
enum Split {
    /// One record of `len` bytes and its newline; `ascii` when no byte
    /// before the newline has its high bit set.
    Line { len: usize, ascii: bool },
    /// A CR, or a quote that starts a field: the state machine reads it.
    Slow,
    /// No newline in the buffer yet.
    NeedMore,
}

impl<R: Read> Records<R> {
    pub(super) fn new(inner: R, delimiter: u8) -> Self {
        Records {
            inner,
            delimiter,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            eof: false,
            at_start: true,
            next_line: 1,
            record_line: 1,
            fields: Vec::new(),
            base: 0,
            unquoted: Vec::new(),
            in_unquoted: false,
            ascii: false,
        }
    }

    /// Read the next record; `false` at the end of the file.
    pub(super) fn next_record(&mut self) -> io::Result<bool> {
        if self.at_start {
            while self.end - self.start < 3 && !self.eof {
                self.fill()?;
            }
            if self.buf[self.start..self.end].starts_with(b"\xEF\xBB\xBF") {
                self.start += 3;
            }
            self.at_start = false;
        }
        loop {
            self.skip_blank_lines();
            if self.start == self.end {
                if self.eof {
                    return Ok(false);
                }
                self.fill()?;
                continue;
            }
            self.record_line = self.next_line;
            let window = &self.buf[self.start..self.end];
            match split_line(window, self.delimiter, &mut self.fields) {
                Split::Line { len, ascii } => {
                    self.base = self.start;
                    self.start += len;
                    self.next_line += 1;
                    self.in_unquoted = false;
                    self.ascii = ascii;
                    return Ok(true);
                }
                Split::NeedMore if !self.eof => self.fill()?,
                Split::NeedMore | Split::Slow => {
                    if self.slow() {
                        return Ok(true);
                    }
                    self.fill()?;
                }
            }
        }
    }

    /// Fields in the current record.
    pub(super) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i` of the current record.
    pub(super) fn get(&self, i: usize) -> Option<&[u8]> {
        let &(from, to) = self.fields.get(i)?;
        self.storage().get(from..to)
    }

    /// The current record as text — its fields as one run (with the
    /// delimiters between them after a quick split) — and each field's range
    /// in it, so one UTF-8 check covers a record; `None` when the run is not
    /// UTF-8.
    pub(super) fn text(&self) -> (Option<&str>, impl Fn(usize) -> Option<(usize, usize)> + '_) {
        let from = self.fields.first().map_or(0, |f| f.0);
        let to = self.fields.last().map_or(from, |f| f.1);
        let bytes = self.storage().get(from..to).unwrap_or_default();
        let text = if self.ascii {
            debug_assert!(bytes.is_ascii());
            // SAFETY: `split_line` saw each of these bytes with its high bit
            // clear (`ascii`), and ASCII is UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        };
        let range = move |i: usize| self.fields.get(i).map(|&(a, b)| (a - from, b - from));
        (text, range)
    }

    /// 1-based line where the current record starts.
    pub(super) fn line(&self) -> usize {
        self.record_line
    }

    fn storage(&self) -> &[u8] {
        if self.in_unquoted {
            &self.unquoted
        } else {
            self.buf.get(self.base..).unwrap_or_default()
        }
    }

    /// Keep the unparsed bytes and read more after them, growing the buffer
    /// when a record fills it.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }

    /// Line ends between records end nothing: csv-core skips them.
    fn skip_blank_lines(&mut self) {
        while self.start < self.end {
            match self.buf[self.start] {
                b'\n' => self.next_line += 1,
                b'\r' => {}
                _ => return,
            }
            self.start += 1;
        }
    }

    /// csv-core's state machine from the start of a record, copying the
    /// fields without their quotes; `false` when the record runs past the
    /// buffer and the file has more.
    fn slow(&mut self) -> bool {
        enum State {
            StartField,
            InField,
            InQuotes,
            /// A quote inside quotes: a second one is a quote, anything else
            /// closes them.
            AfterQuote,
        }
        let d = self.delimiter;
        let window = &self.buf[self.start..self.end];
        let out = &mut self.unquoted;
        out.clear();
        self.fields.clear();
        let mut state = State::StartField;
        let (mut field, mut lines, mut used) = (0, 0, 0);
        let mut ended = false;
        for &b in window {
            used += 1;
            lines += usize::from(b == b'\n');
            state = match state {
                State::StartField if b == b'"' => State::InQuotes,
                State::InQuotes if b == b'"' => State::AfterQuote,
                State::InQuotes => {
                    out.push(b);
                    State::InQuotes
                }
                State::AfterQuote if b == b'"' => {
                    out.push(b);
                    State::InQuotes
                }
                _ if b == d || b == b'\n' || b == b'\r' => {
                    self.fields.push((field, out.len()));
                    field = out.len();
                    if b != d {
                        ended = true;
                        break;
                    }
                    State::StartField
                }
                _ => {
                    out.push(b);
                    State::InField
                }
            };
        }
        if !ended {
            if !self.eof {
                return false;
            }
            // The end of the file ends the record, whatever state it is in.
            self.fields.push((field, out.len()));
        }
        self.start += used;
        self.next_line += lines;
        self.in_unquoted = true;
        self.ascii = false;
        true
    }
}

/// Split the record at the start of `window` if it is one line with no CR
/// and no quote at the start of a field: fields (ranges of `window`) end at
/// delimiters, the record at the newline.
fn split_line(window: &[u8], delimiter: u8, fields: &mut Vec<(usize, usize)>) -> Split {
    fields.clear();
    let mut field = 0;
    let mut at_stop = |at: usize| -> Option<Split> {
        match window[at] {
            b'\n' => {
                fields.push((field, at));
                Some(Split::Line {
                    len: at + 1,
                    ascii: false,
                })
            }
            b'"' if at != field => None, // a quote inside a field is text
            b'\r' | b'"' => Some(Split::Slow),
            _ => {
                fields.push((field, at));
                field = at + 1;
                None
            }
        }
    };
    // Set the ASCII flag of a finished line from the high bits before its newline.
    let with_ascii = |split: Split, high: u32| match split {
        Split::Line { len, .. } => Split::Line {
            len,
            ascii: high == 0,
        },
        other => other,
    };
    let (blocks, rest) = window.as_chunks::<32>();
    let mut high = 0u32;
    for (i, block) in blocks.iter().enumerate() {
        let (mut stops, block_high) = scan(block, [delimiter, b'\n', b'\r', b'"']);
        while stops != 0 {
            let bit = stops.trailing_zeros() as usize;
            if let Some(split) = at_stop(i * 32 + bit) {
                let before = block_high & ((1u32 << bit) - 1);
                return with_ascii(split, high | before);
            }
            stops &= stops - 1;
        }
        high |= block_high;
    }
    let tail = blocks.len() * 32;
    for (i, &b) in rest.iter().enumerate() {
        if is_stop(b, delimiter) {
            if let Some(split) = at_stop(tail + i) {
                return with_ascii(split, high);
            }
        }
        high |= u32::from(b >= 0x80);
    }
    Split::NeedMore
}

fn is_stop(b: u8, delimiter: u8) -> bool {
    (b == delimiter) | (b == b'\n') | (b == b'\r') | (b == b'"')
}

/// The first `\r` in `bytes`, 32 bytes at a time.
pub(super) fn find_cr(bytes: &[u8]) -> Option<usize> {
    let (blocks, rest) = bytes.as_chunks::<32>();
    for (i, block) in blocks.iter().enumerate() {
        let (mask, _) = scan(block, [b'\r'; 4]);
        if mask != 0 {
            return Some(i * 32 + mask.trailing_zeros() as usize);
        }
    }
    let tail = blocks.len() * 32;
    rest.iter().position(|&b| b == b'\r').map(|i| tail + i)
}

/// Two masks of a block, bit `i` for `block[i]`: where it is one of
/// `wanted`; and where its high bit is set (not ASCII). SSE2 compares and
/// byte masks; SSE2 is part of every x86-64 CPU.
#[cfg(target_arch = "x86_64")]
fn scan(block: &[u8; 32], wanted: [u8; 4]) -> (u32, u32) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let half = |bytes: &[u8; 16]| -> (u32, u32) {
        // SAFETY: SSE2 is enabled on every x86-64 target, and the load reads
        // exactly the 16 bytes `bytes` borrows (unaligned loads are allowed).
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>());
            let hits = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            let any = _mm_or_si128(
                _mm_or_si128(hits(wanted[0]), hits(wanted[1])),
                _mm_or_si128(hits(wanted[2]), hits(wanted[3])),
            );
            // Each mask has one bit per byte in its low 16 bits, zeros above.
            (_mm_movemask_epi8(any) as u32, _mm_movemask_epi8(v) as u32)
        }
    };
    let (halves, _) = block.as_chunks::<16>();
    let ((stops_lo, high_lo), (stops_hi, high_hi)) = (half(&halves[0]), half(&halves[1]));
    (stops_lo | (stops_hi << 16), high_lo | (high_hi << 16))
}

/// Two masks of a block, bit `i` for `block[i]`: where it is one of
/// `wanted`; and where its high bit is set (not ASCII).
#[cfg(not(target_arch = "x86_64"))]
fn scan(block: &[u8; 32], wanted: [u8; 4]) -> (u32, u32) {
    block
        .iter()
        .enumerate()
        .fold((0u32, 0u32), |(found, high), (i, b)| {
            (
                found | (u32::from(wanted.contains(b)) << i),
                high | (u32::from(*b >= 0x80) << i),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, so records arrive in pieces.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn ours(bytes: &[u8], delimiter: u8) -> Vec<Vec<Vec<u8>>> {
        ours_in_reads_of(bytes, delimiter, usize::MAX)
    }

    fn ours_in_reads_of(bytes: &[u8], delimiter: u8, step: usize) -> Vec<Vec<Vec<u8>>> {
        let mut r = Records::new(Trickle { bytes, step }, delimiter);
        let mut all = Vec::new();
        while r.next_record().unwrap() {
            let fields: Vec<Vec<u8>> = (0..r.len()).map(|i| r.get(i).unwrap().to_vec()).collect();
            // The flag that lets `text` skip the UTF-8 check is never wrong.
            assert!(
                !r.ascii || fields.iter().all(|f| f.is_ascii()),
                "{fields:?}"
            );
            let (text, range) = r.text();
            if let Some(text) = text {
                for (i, field) in fields.iter().enumerate() {
                    let (a, b) = range(i).unwrap();
                    assert_eq!(text.as_bytes()[a..b], field[..]);
                }
            }
            all.push(fields);
        }
        all
    }

    fn csv_crate(bytes: &[u8], delimiter: u8) -> Vec<Vec<Vec<u8>>> {
        let mut r = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut record = csv::ByteRecord::new();
        let mut all = Vec::new();
        while r.read_byte_record(&mut record).unwrap() {
            all.push(record.iter().map(<[u8]>::to_vec).collect());
        }
        all
    }

    #[test]
    fn hand_made_cases_read_as_the_csv_crate_reads_them() {
        let cases: [&[u8]; 14] = [
            b"a\tb\nc\td\n",
            b"a\tb\nc\td",
            b"\n\na\t\t\n\r\n\tb\n",
            b"\"q\tq\"\tx\n",
            b"\"two\nlines\"\tx\ny\n",
            b"\"say \"\"hi\"\"\"\tx\n",
            b"\"closed\"after\tx\n",
            b"mid\"quote\tx\"\n",
            b"\"unclosed\tx\nnext\ty\n",
            b"a\rb\r\nc\n",
            b"\xEF\xBB\xBFh\n",
            b"\"\"\n",
            b"a\t",
            b"",
        ];
        for bytes in cases {
            assert_eq!(
                ours(bytes, b'\t'),
                csv_crate(bytes, b'\t'),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn random_tables_read_as_the_csv_crate_reads_them(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"\t"[..], b",", b"\n", b"\r\n", b"\r", b"\"", b"\"\"", b"a", b"word",
                    b" ", "\u{FEFF}".as_bytes(), "é".as_bytes(), b"\xff", b"0123456789abcdef",
                ]),
                0..120,
            ),
            comma in proptest::bool::ANY,
            step in 1usize..9,
        ) {
            let text = pieces.concat();
            let delimiter = if comma { b',' } else { b'\t' };
            let expected = csv_crate(&text, delimiter);
            proptest::prop_assert_eq!(ours(&text, delimiter), expected.clone());
            proptest::prop_assert_eq!(ours_in_reads_of(&text, delimiter, step), expected);
        }
    }

    #[test]
    fn records_cross_buffer_refills() {
        // Rows of every length around the 32-byte blocks and the buffer end,
        // some quoted, one field longer than the buffer.
        let mut text = Vec::new();
        for i in 0..40_000usize {
            let word = "x".repeat(i % 70);
            if i % 97 == 0 {
                text.extend_from_slice(format!("\"{word}\n{i}\"\t{i}\n").as_bytes());
            } else {
                text.extend_from_slice(format!("{word}\t{i}\n").as_bytes());
            }
        }
        text.extend_from_slice(&vec![b'y'; BUFFER * 3]);
        text.extend_from_slice(b"\tlast\n");
        assert_eq!(ours(&text, b'\t'), csv_crate(&text, b'\t'));
    }

    #[test]
    fn block_masks_mark_every_stop_and_every_high_byte() {
        let mut block = [b'x'; 32];
        for (i, b) in [
            (0, b'\t'),
            (5, b'\n'),
            (16, b'\r'),
            (17, b'"'),
            (31, b'\t'),
            (9, b','),
        ] {
            block[i] = b;
        }
        block[3] = 0x80;
        block[30] = 0xFF;
        let bits = |at: &[usize]| at.iter().fold(0u32, |m, &i| m | (1 << i));
        let tab = [b'\t', b'\n', b'\r', b'"'];
        let comma = [b',', b'\n', b'\r', b'"'];
        assert_eq!(
            scan(&block, tab),
            (bits(&[0, 5, 16, 17, 31]), bits(&[3, 30]))
        );
        assert_eq!(scan(&block, comma).0, bits(&[5, 9, 16, 17]));
        assert_eq!(scan(&[0xFF; 32], tab), (0, u32::MAX));
        let mut long = vec![b'a'; 100];
        assert_eq!(find_cr(&long), None);
        long[70] = b'\r';
        long[99] = b'\r';
        assert_eq!(find_cr(&long), Some(70));
        assert_eq!(find_cr(&long[71..]), Some(28));
        assert_eq!(find_cr(b"\r"), Some(0));
    }

    #[test]
    fn lines_are_where_records_start() {
        let text = b"h\tl\n\n\"a\nb\"\tx\r\n\r\nc\ty\nd";
        let mut r = Records::new(&text[..], b'\t');
        let mut lines = Vec::new();
        while r.next_record().unwrap() {
            lines.push(r.line());
        }
        // LF counts a line, a lone CR ends a record but no line.
        assert_eq!(lines, [1, 3, 6, 7]);
    }
}
