//! A data preview runs on a thread of its own: while one reads a file that
//! never ends (a FIFO nobody writes), the model worker still answers analyses.

mod common;

use std::time::{Duration, Instant};

use bertscope::ui::worker::{AnalyzeRequest, Request, Response, WorkerHandle};
use candle_core::Device;
use common::*;

fn wait_for(worker: &mut WorkerHandle, what: &str, done: impl Fn(&Response) -> bool) -> Response {
    let start = Instant::now();
    loop {
        if let Some(r) = worker.poll().into_iter().find(|r| done(r)) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {what} in 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_slow_preview_does_not_hold_up_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("endless.tsv");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

    let mut worker = WorkerHandle::spawn(Device::Cpu, Vec::new(), || {});
    let spec = fixture_model("mlm-safetensors").display().to_string();
    worker.send(Request::Load { spec });
    wait_for(&mut worker, "load", |r| matches!(r, Response::Loaded(_)));
    worker.send(Request::Preview {
        path: fifo.clone(),
        columns: None,
    });
    worker.send(Request::Analyze(AnalyzeRequest {
        text_a: "the dog jumps".into(),
        text_b: None,
        masked: Vec::new(),
        top_k: 1,
        inspect: Default::default(),
    }));
    // The preview is still blocked opening the FIFO; the analysis comes anyway.
    wait_for(&mut worker, "analysis", |r| {
        matches!(r, Response::Analysis { .. })
    });

    // Give the preview its end of file: it answers (an empty file fails).
    std::fs::write(&fifo, "").unwrap();
    wait_for(&mut worker, "preview answer", |r| {
        matches!(r, Response::Preview(_) | Response::PreviewFailed { .. })
    });
}
