//! Data files at scale: a generated TSV read and previewed with its memory
//! measured (`/proc/self/status`). The plain test runs on every `cargo test`;
//! the benchmark writes a 1 GB, 5-million-row file:
//! `cargo test --release --test data_scale -- --ignored --nocapture`.
//!
//! One test per run of this binary measures memory: tests share a process, so
//! the plain test is the only one that is not ignored.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use bertscope::data::{self, ReadOptions};
use bertscope::tokenize::BertTokenizer;
use bertscope::train::preview;
use common::fixture_model;

const LABELS: [&str; 3] = ["agreed", "disagreed", "unrelated"];
const WORDS: [&str; 16] = [
    "the", "woman", "went", "to", "buy", "a", "book", "man", "saw", "dog", "in", "park", "and",
    "it", "was", "good",
];

/// What the generator wrote: usable rows, their labels, and the lines of the
/// rows that cannot be used.
struct Written {
    bytes: u64,
    rows: usize,
    labels: BTreeMap<String, usize>,
    bad_lines: Vec<usize>,
}

/// A pair-classification TSV of `rows` data rows (about 200 bytes each),
/// written row by row so that writing it holds no copy of it. Every
/// `bad_every`-th row has an empty first sentence.
fn generate(path: &Path, rows: usize, bad_every: usize) -> Written {
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "id\ttitle1_en\ttitle2_en\tlabel").unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sentence = |words: usize| {
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        }
        s
    };
    let mut written = Written {
        bytes: 0,
        rows: 0,
        labels: BTreeMap::new(),
        bad_lines: Vec::new(),
    };
    for i in 0..rows {
        let line = i + 2;
        // 28 to 68 words over both sentences: about 200 bytes a row.
        let a = sentence(14 + i % 21);
        let b = sentence(14 + (i * 7) % 21);
        let label = LABELS[(i * i + i / 3) % 3];
        if bad_every > 0 && i % bad_every == bad_every - 1 {
            writeln!(out, "{i}\t\t{b}\t{label}").unwrap();
            written.bad_lines.push(line);
        } else {
            writeln!(out, "{i}\t{a}\t{b}\t{label}").unwrap();
            written.rows += 1;
            *written.labels.entry(label.to_string()).or_insert(0) += 1;
        }
    }
    out.flush().unwrap();
    drop(out);
    written.bytes = std::fs::metadata(path).unwrap().len();
    written
}

/// A `VmRSS`/`VmHWM` line of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Run `f` and return its value and how far it raised the peak resident
/// memory above the memory resident before it; `None` where that cannot be
/// measured (no `/proc`, or a kernel that cannot reset the peak).
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    // Hand freed heap back first: memory an earlier step freed but kept
    // resident would be reused unseen, and `f` would look smaller than it is.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_bytes("VmRSS:");
    let peak_before = status_bytes("VmHWM:");
    let value = f();
    let growth = match (before, peak_before, status_bytes("VmHWM:")) {
        // After a reset the peak starts at the resident memory.
        (Some(before), Some(peak_before), Some(peak))
            if reset && peak_before <= before + (1 << 20) =>
        {
            Some(peak.saturating_sub(before))
        }
        _ => None,
    };
    (value, growth)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn tokenizer() -> BertTokenizer {
    BertTokenizer::load(&fixture_model("classifier")).unwrap()
}

fn options() -> ReadOptions {
    ReadOptions {
        columns: data::guess_columns(&[
            "id".into(),
            "title1_en".into(),
            "title2_en".into(),
            "label".into(),
        ]),
        require_label: true,
        skip_bad_rows: true,
        ..Default::default()
    }
}

#[test]
fn a_large_file_previews_with_its_counts_and_reads_in_bounded_memory() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("big.tsv");
    let written = generate(&path, 200_000, 50_000);
    let tok = tokenizer();

    let (p, preview_growth) = peak_growth(|| preview::preview(&path, None, Some(&tok)).unwrap());
    assert_eq!(p.rows, written.rows);
    assert_eq!(p.label_counts, written.labels);
    assert_eq!(
        p.problems.iter().map(|s| s.line).collect::<Vec<_>>(),
        written.bad_lines
    );
    assert_eq!(p.problem_count, written.bad_lines.len());
    assert_eq!(p.sampled_rows, preview::LENGTH_SAMPLE_ROWS);
    let histogram_rows: usize = p.length_histogram.iter().map(|b| b.1).sum();
    assert_eq!(histogram_rows, preview::LENGTH_SAMPLE_ROWS);
    assert_eq!(p.first_rows.len(), preview::PREVIEW_ROWS);
    assert_eq!(p.first_rows[0].line, 2);
    assert_eq!(
        p.summary(),
        format!(
            "counted {} rows; lengths from a sample of {}; {} rows cannot be used",
            written.rows,
            preview::LENGTH_SAMPLE_ROWS,
            written.bad_lines.len()
        )
    );

    let (ds, read_growth) = peak_growth(|| data::read(&path, &options()).unwrap());
    assert_eq!(ds.examples.len(), written.rows);
    assert_eq!(ds.label_counts(), written.labels);
    drop(ds);

    eprintln!(
        "{:.1} MiB, {} rows: preview grew the peak by {:?} MiB, read by {:?} MiB",
        mib(written.bytes),
        written.rows,
        preview_growth.map(mib),
        read_growth.map(mib)
    );
    if let Some(growth) = preview_growth {
        // Head rows and a sample, never the file.
        assert!(
            growth < written.bytes / 4,
            "the preview grew the peak by {:.1} MiB for a {:.1} MiB file",
            mib(growth),
            mib(written.bytes)
        );
    }
    if let Some(growth) = read_growth {
        // One owned copy of each row's text and its `Example`: about 1.7×
        // for rows of this size (it was 3.6× with the whole file read first).
        assert!(
            growth < written.bytes * 5 / 2,
            "reading grew the peak by {:.1} MiB for a {:.1} MiB file",
            mib(growth),
            mib(written.bytes)
        );
    }
}

/// CPU time of this process so far (all threads), in seconds: the machine
/// may be shared, and wall time alone would charge us for other work.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Time `f`: its value, wall seconds and CPU seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let value = f();
    (value, wall.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

#[test]
#[ignore = "a benchmark: writes a 1 GB file; run with --release -- --ignored --nocapture"]
fn benchmark_preview_and_read_of_a_gigabyte() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("big.tsv");
    let (written, wall, _) = timed(|| generate(&path, 5_000_000, 1_000_000));
    eprintln!(
        "wrote {} bytes ({:.0} MiB), {} rows in {wall:.1} s",
        written.bytes,
        mib(written.bytes),
        written.rows + written.bad_lines.len(),
    );

    // The fixture's tokenizer costs next to nothing; the demo model's, when
    // it is in ./models, shows what the app pays for the length sample.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let tokenizers = [
        ("no tokenizer", None),
        ("fixture tokenizer", Some(tokenizer())),
        (
            "all-MiniLM-L6-v2 tokenizer",
            BertTokenizer::load(&demo).ok(),
        ),
    ];
    for (name, tok) in &tokenizers {
        if name.starts_with("all-") && tok.is_none() {
            continue;
        }
        let ((p, wall, cpu), growth) =
            peak_growth(|| timed(|| preview::preview(&path, None, tok.as_ref()).unwrap()));
        eprintln!(
            "preview, {name}: {wall:.3} s wall, {cpu:.3} s CPU, peak grew by {:.1} MiB; {}",
            growth.map_or(f64::NAN, mib),
            p.summary()
        );
        assert_eq!(p.rows, written.rows);
        assert_eq!(p.label_counts, written.labels);
    }

    let ((head, wall, _), growth) =
        peak_growth(|| timed(|| data::read_head(&path, &options(), 64).unwrap()));
    eprintln!(
        "read_head of 64 rows: {:.4} s, peak grew by {:.1} MiB",
        wall,
        growth.map_or(f64::NAN, mib)
    );
    assert_eq!(head.examples.len(), 64);

    let ((ds, wall, cpu), growth) =
        peak_growth(|| timed(|| data::read(&path, &options()).unwrap()));
    eprintln!(
        "read: {wall:.3} s wall, {cpu:.3} s CPU, peak grew by {:.1} MiB ({:.2}× the file)",
        growth.map_or(f64::NAN, mib),
        growth.map_or(f64::NAN, |g| g as f64 / written.bytes as f64)
    );
    assert_eq!(ds.examples.len(), written.rows);
}
