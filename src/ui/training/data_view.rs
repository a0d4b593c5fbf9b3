//! The training view's data section: the file and dev fields, the preview
//! (first rows, column choices, label counts, token-length histogram) and
//! the problems found while reading.

use egui::RichText;
use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints};

use crate::train::preview::DataPreview;
use crate::ui::support::palette;
use crate::ui::training::form::{combo, TrainForm};
use crate::ui::training::view::{text_field, TrainAction, TrainViewState};

pub(super) fn data_section(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    state: &TrainViewState,
    actions: &mut Vec<TrainAction>,
) {
    ui.heading("Data");
    ui.horizontal(|ui| {
        ui.label("Training file");
        let field = text_field(
            ui,
            &mut form.data_path,
            "Training data",
            "a TSV/CSV with a header (or drop one here)",
        );
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Browse…").clicked() {
            actions.push(TrainAction::BrowseData);
        }
        if ui.button("Load data").clicked() || enter {
            actions.push(TrainAction::LoadData { guess: true });
        }
    });
    ui.horizontal(|ui| {
        ui.label("Dev file");
        text_field(
            ui,
            &mut form.dev_path,
            "Dev data",
            "optional; else the dev fraction of the training rows",
        );
        if ui
            .button("Browse…")
            .on_hover_text("choose a dev file")
            .clicked()
        {
            actions.push(TrainAction::BrowseDev);
        }
    });
    if let Some(error) = state.preview_error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
    match state.preview {
        Some(p) => data_preview(ui, form, p, actions),
        None => {
            ui.label("Load a file to see its rows, labels and token lengths.");
        }
    }
}

/// The loaded file: column mapping, labels, first rows, lengths, problems.
fn data_preview(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    p: &DataPreview,
    actions: &mut Vec<TrainAction>,
) {
    ui.horizontal(|ui| {
        let mut changed = false;
        changed |= column_combo(
            ui,
            "Sentence A column",
            &mut form.text_a_column,
            &p.header,
            false,
        );
        changed |= column_combo(
            ui,
            "Sentence B column",
            &mut form.text_b_column,
            &p.header,
            true,
        );
        changed |= column_combo(ui, "Label column", &mut form.label_column, &p.header, false);
        if changed {
            actions.push(TrainAction::LoadData { guess: false });
        }
    });
    let counts: Vec<String> = p
        .label_counts
        .iter()
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    ui.label(format!(
        "{} usable rows in {} · labels: {} · majority baseline {:.1}%",
        p.rows,
        p.path.display(),
        counts.join(", "),
        p.majority_baseline * 100.0
    ));
    ui.columns(2, |cols| {
        preview_table(&mut cols[0], p);
        length_histogram(&mut cols[1], p, form.max_length);
    });
    ui.label(p.summary());
    if p.problem_count == 0 {
        ui.label("No problems found in the file.");
    } else {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!(
                "{} rows cannot be used and will be skipped (the first {} listed):",
                p.problem_count,
                p.problems.len()
            ),
        );
        egui::ScrollArea::vertical()
            .id_salt("data-problems")
            .max_height(90.0)
            .show(ui, |ui| {
                for s in &p.problems {
                    ui.monospace(format!("{}:{}: {}", p.path.display(), s.line, s.reason));
                }
            });
    }
}

fn column_combo(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut String,
    header: &[String],
    optional: bool,
) -> bool {
    let before = value.clone();
    ui.label(label);
    let shown = if value.is_empty() {
        "(none)".to_string()
    } else {
        value.clone()
    };
    combo(ui, label, &shown, |ui| {
        if optional {
            ui.selectable_value(value, String::new(), "(none)");
        }
        for h in header {
            ui.selectable_value(value, h.clone(), h);
        }
    });
    *value != before
}

fn preview_table(ui: &mut egui::Ui, p: &DataPreview) {
    ui.label(RichText::new("First rows").strong());
    let text_width = ((ui.available_width() - 190.0) / 2.0).max(60.0);
    egui::Grid::new("data-preview")
        .striped(true)
        .num_columns(4)
        .max_col_width(text_width)
        .show(ui, |ui| {
            ui.strong("line");
            ui.strong(&p.columns.text_a);
            ui.strong(if p.has_text_b {
                p.columns.text_b.as_deref().unwrap_or("text_b")
            } else {
                "—"
            });
            ui.strong(&p.columns.label);
            ui.end_row();
            for e in p
                .first_rows
                .iter()
                .take(crate::train::preview::PREVIEW_ROWS)
            {
                ui.label(e.line.to_string());
                ui.add(egui::Label::new(&e.text_a).truncate());
                ui.add(egui::Label::new(e.text_b.as_deref().unwrap_or("")).truncate());
                ui.label(e.label.as_deref().unwrap_or(""));
                ui.end_row();
            }
        });
}

fn length_histogram(ui: &mut egui::Ui, p: &DataPreview, max_length: usize) {
    let [p50, p90, p95, p99, max] = p.length_percentiles;
    // The cut-off line: red, as the caption below says.
    let cut_colour = ui.visuals().error_fg_color;
    ui.label(RichText::new("Tokens per input").strong());
    if p.length_histogram.is_empty() {
        ui.label("(load a model to count tokens)");
        return;
    }
    let width = p.length_histogram.get(1).map_or(1, |b| b.0).max(1) as f64;
    let bars: Vec<Bar> = p
        .length_histogram
        .iter()
        .map(|&(start, n)| Bar::new(start as f64 + width / 2.0, n as f64).width(width * 0.9))
        .collect();
    Plot::new("length-histogram")
        .height(130.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("tokens")
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("rows", bars).color(palette::BLUE));
            plot.line(
                Line::new(
                    "max length",
                    PlotPoints::from(vec![
                        [max_length as f64, 0.0],
                        [max_length as f64, p.sampled_rows as f64 / 4.0],
                    ]),
                )
                .stroke(egui::Stroke::new(1.5, cut_colour)),
            );
        });
    ui.label(format!(
        "p50 {p50} · p90 {p90} · p95 {p95} · p99 {p99} · max {max}; red: max length {max_length}"
    ));
}
