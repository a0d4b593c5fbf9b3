//! Progress over the rows of a data file: a bar once the total is known,
//! a spinner while the rows are still being read.

/// `progress`: rows done and in all; `prefix` names what runs ("before: …").
pub fn rows(ui: &mut egui::Ui, progress: Option<(usize, usize)>, prefix: &str, width: f32) {
    match progress {
        Some((done, total)) => {
            let bar = egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                .desired_width(width)
                .text(format!("{prefix}{done} of {total} rows"));
            ui.add(bar);
        }
        None => {
            ui.add(egui::Spinner::new());
            ui.label("reading the rows…");
        }
    }
}
