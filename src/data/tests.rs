use super::*;

fn write(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn labelled() -> ReadOptions {
    ReadOptions {
        require_label: true,
        ..Default::default()
    }
}

#[test]
fn guesses_the_seed_kaggle_columns() {
    let header: Vec<String> = [
        "id",
        "tid1",
        "tid2",
        "title1_zh",
        "title2_zh",
        "title1_en",
        "title2_en",
        "label",
    ]
    .map(String::from)
    .to_vec();
    let cols = guess_columns(&header);
    assert_eq!(cols.text_a, "title1_zh");
    assert_eq!(cols.text_b.as_deref(), Some("title2_zh"));
    assert_eq!((cols.label.as_str(), cols.id.as_str()), ("label", "id"));
    let single = guess_columns(&["Review".to_string(), "Category".to_string()]);
    assert_eq!(
        (single.text_a.as_str(), single.text_b, single.label.as_str()),
        ("Review", None, "Category")
    );
}

#[test]
fn reads_quotes_bom_and_crlf() {
    let (_d, p) = write(
        "t.csv",
        "\u{FEFF}id,text_a,text_b,label\r\n7,\"Hello, world\",\"say \"\"hi\"\"\",agreed\r\n8,b,c,unrelated\r\n".as_bytes(),
    );
    let ds = read(&p, &labelled()).unwrap();
    assert_eq!(ds.examples.len(), 2);
    assert_eq!(ds.examples[0].text_a, "Hello, world");
    assert_eq!(ds.examples[0].text_b.as_deref(), Some("say \"hi\""));
    assert_eq!(ds.examples[0].id.as_deref(), Some("7"));
    assert_eq!(ds.examples[1].line, 3);
    assert_eq!(ds.majority_baseline(), 0.5);
}

#[test]
fn renamed_columns_read_the_kaggle_layout() {
    let (_d, p) = write(
        "train.csv",
        "id,tid1,tid2,title1_zh,title2_zh,title1_en,title2_en,label\n1,0,1,甲,乙,a,b,unrelated\n"
            .as_bytes(),
    );
    let mut o = labelled();
    o.columns.text_a = "title1_zh".into();
    o.columns.text_b = Some("title2_zh".into());
    let ds = read(&p, &o).unwrap();
    assert_eq!(ds.examples[0].text_a, "甲");
    assert_eq!(ds.examples[0].text_b.as_deref(), Some("乙"));
}

#[test]
fn problems_name_file_and_line() {
    let (_d, p) = write("t.tsv", b"text_a\tlabel\nfine\tx\n\ty\nragged\tx\textra\n");
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(
        err.ends_with("t.tsv:3: column \"text_a\" is empty"),
        "{err}"
    );

    let mut o = labelled();
    o.skip_bad_rows = true;
    let ds = read(&p, &o).unwrap();
    assert_eq!(ds.examples.len(), 1);
    assert_eq!(
        ds.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(ds.skipped[1]
        .reason
        .contains("3 fields but the header has 2"));

    let (_d, p) = write("u.tsv", b"text_a\tlabel\nok\tx\nbad \xff\tx\n");
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(
        err.ends_with("u.tsv:3: column \"text_a\" is not valid UTF-8"),
        "{err}"
    );

    let (_d, p) = write("v.tsv", b"sentence\tlabel\nok\tx\n");
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(err.contains("v.tsv:1: no column \"text_a\""), "{err}");
    assert!(
        err.contains("choose the first-sentence (text A) column"),
        "{err}"
    );
    assert!(!err.contains("--"), "the engine names no flag: {err}");
}

#[test]
fn crlf_files_name_the_right_line() {
    let (_d, p) = write(
        "c.tsv",
        b"\xEF\xBB\xBFtext_a\tlabel\r\nfine\tx\r\nalso fine\ty\r\n\tz\r\n",
    );
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(
        err.ends_with("c.tsv:4: column \"text_a\" is empty"),
        "{err}"
    );
    let mut o = labelled();
    o.skip_bad_rows = true;
    let ds = read(&p, &o).unwrap();
    assert_eq!(
        ds.examples.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(ds.examples[1].label.as_deref(), Some("y"));
    // A quoted field keeps its line break, as LF.
    let (_d, p) = write("q.csv", b"text_a,label\r\n\"two\r\nlines\",x\r\n,y\r\n");
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(
        err.ends_with("q.csv:4: column \"text_a\" is empty"),
        "{err}"
    );
    let (_d, p) = write("q.csv", b"text_a,label\r\n\"two\r\nlines\",x\r\n");
    assert_eq!(
        read(&p, &labelled()).unwrap().examples[0].text_a,
        "two\nlines"
    );
}

#[test]
fn an_unclosed_quote_is_reported_at_its_line() {
    // The quote runs to the end of the file: one field where two belong.
    let (_d, p) = write("t.tsv", b"text_a\tlabel\nok\tx\n\"open\tx\nmore\ty\n");
    let err = read(&p, &labelled()).unwrap_err().to_string();
    assert!(
        err.ends_with("t.tsv:3: row has 1 fields but the header has 2"),
        "{err}"
    );
}

#[test]
fn read_head_stops_after_its_rows() {
    // Row 4 is bad, so reading the whole file fails; the head never gets there.
    let (_d, p) = write("h.tsv", b"text_a\tlabel\na\tx\nb\ty\n\tz\n");
    assert!(read(&p, &labelled()).is_err());
    let ds = read_head(&p, &labelled(), 2).unwrap();
    assert_eq!(
        ds.examples
            .iter()
            .map(|e| e.text_a.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(read_head(&p, &labelled(), 0).unwrap().examples.len(), 0);
    let mut o = labelled();
    o.skip_bad_rows = true;
    let ds = read_head(&p, &o, 10).unwrap();
    assert_eq!((ds.examples.len(), ds.skipped.len()), (2, 1));
}

#[test]
fn read_lines_drops_bom_and_crlf() {
    let (_d, p) = write("l.txt", b"\xEF\xBB\xBFfirst\r\n\r\n  second  \r\nlast");
    let ds = read_lines(&p).unwrap();
    let got: Vec<(usize, &str)> = ds
        .examples
        .iter()
        .map(|e| (e.line, e.text_a.as_str()))
        .collect();
    assert_eq!(got, [(1, "first"), (3, "second"), (4, "last")]);
    let (_d, p) = write("l.txt", b"ok\nbad \xff\n");
    let err = read_lines(&p).unwrap_err().to_string();
    assert!(err.ends_with("l.txt:2: not valid UTF-8"), "{err}");
}

/// Hands out at most `step` bytes per read, to put every byte at a
/// buffer boundary once.
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

fn through_text(bytes: &[u8], step: usize, out_size: usize) -> Vec<u8> {
    let mut text = Text::new(Trickle { bytes, step }).unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; out_size];
    loop {
        let n = text.read(&mut buf).unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn text_drops_the_bom_and_each_cr_before_lf_across_reads() {
    let cases: [(&[u8], &[u8]); 7] = [
        (b"a\r\nb\r\n", b"a\nb\n"),
        (b"\xEF\xBB\xBFa\r\n", b"a\n"),
        (b"a\rb\r\r\nc\r", b"a\rb\r\nc\r"),
        (b"\r\n\r\n", b"\n\n"),
        (b"\xEF\xBB", b"\xEF\xBB"),
        (b"x\xEF\xBB\xBF", b"x\xEF\xBB\xBF"),
        (b"", b""),
    ];
    for (input, expected) in cases {
        for step in [1, 2, 3, 64] {
            for out_size in [1, 2, 5, 4096] {
                assert_eq!(
                    through_text(input, step, out_size),
                    expected,
                    "{input:?} in reads of {step}, buffers of {out_size}"
                );
            }
        }
    }
    // Long enough for the 32-byte scan, with the CR in the last block.
    let mut long = vec![b'a'; 100];
    long.extend_from_slice(b"\r\n");
    let mut expected = vec![b'a'; 100];
    expected.push(b'\n');
    assert_eq!(through_text(&long, 4096, 4096), expected);
    assert_eq!(through_text(&long, 7, 33), expected);
}
