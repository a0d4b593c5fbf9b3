//! The scatter of the Data view: every row a small square in one mesh
//! (tens of thousands of points at frame rate), equal scales on both axes
//! (the layouts' distances are what the alignment keeps), the point under
//! the pointer, a click, and a box dragged to select.

use egui::{Color32, Mesh, Pos2, Rect, Sense, Shape, Stroke, Vec2};

/// How near the pointer must be to a point to pick it.
const PICK: f32 = 6.0;

/// What happened on the scatter this frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScatterEvents {
    pub hovered: Option<usize>,
    pub clicked: Option<usize>,
    /// A box was finished: the points inside.
    pub boxed: Option<Vec<usize>>,
}

/// The data bounds that fit every layout of `stages`, a little padded.
pub fn bounds(stages: &[Vec<[f32; 2]>]) -> Rect {
    let mut rect = Rect::NOTHING;
    for p in stages.iter().flatten() {
        rect.extend_with(Pos2::new(p[0], p[1]));
    }
    if !rect.is_positive() {
        rect = Rect::from_center_size(rect.center(), Vec2::splat(1.0));
    }
    rect.expand2(rect.size() * 0.04)
}

/// Data → screen with one scale for both axes, `y` upwards, centred in `screen`.
pub fn transform(data: Rect, screen: Rect) -> impl Fn([f32; 2]) -> Pos2 {
    let scale = (screen.width() / data.width()).min(screen.height() / data.height());
    let (dc, sc) = (data.center(), screen.center());
    move |p: [f32; 2]| Pos2::new(sc.x + (p[0] - dc.x) * scale, sc.y - (p[1] - dc.y) * scale)
}

/// Half the side of a point: larger when there are few.
pub fn half_side(points: usize) -> f32 {
    match points {
        0..=500 => 3.5,
        501..=5000 => 2.5,
        _ => 1.5,
    }
}

/// The mesh of squares at `screen` positions.
pub fn mesh(positions: &[Pos2], colours: &[Color32]) -> Mesh {
    let half = half_side(positions.len());
    let mut mesh = Mesh::default();
    mesh.reserve_triangles(positions.len() * 2);
    mesh.reserve_vertices(positions.len() * 4);
    for (p, &c) in positions.iter().zip(colours) {
        mesh.add_colored_rect(Rect::from_center_size(*p, Vec2::splat(2.0 * half)), c);
    }
    mesh
}

/// Draw `points` (data coordinates) in `size`, `marked` rows outlined;
/// `still`: no pointer (a screenshot), nothing hovered.
#[allow(clippy::too_many_arguments)]
pub fn show(
    ui: &mut egui::Ui,
    still: bool,
    size: Vec2,
    data_bounds: Rect,
    points: &[[f32; 2]],
    colours: &[Color32],
    marked: &[usize],
) -> ScatterEvents {
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let n = points.len();
    let half = half_side(n);
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Image, true, format!("Scatter of {n} rows"))
    });
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
    let to_screen = transform(data_bounds, rect.shrink(8.0));
    let positions: Vec<Pos2> = points.iter().map(|&p| to_screen(p)).collect();
    painter.add(Shape::mesh(mesh(&positions, colours)));
    let ring = Stroke::new(1.5, ui.visuals().strong_text_color());
    for &i in marked {
        if let Some(p) = positions.get(i) {
            painter.rect_stroke(
                Rect::from_center_size(*p, Vec2::splat(2.0 * half + 3.0)),
                0.0,
                ring,
                egui::StrokeKind::Outside,
            );
        }
    }
    let mut events = ScatterEvents::default();
    let nearest = |at: Pos2| -> Option<usize> {
        positions
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.distance_sq(at)))
            .filter(|&(_, d)| d <= PICK * PICK)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    };
    if let Some(at) = response.hover_pos().filter(|_| !still) {
        events.hovered = nearest(at);
    }
    if response.clicked() {
        events.clicked = response.interact_pointer_pos().and_then(nearest);
    }
    let drag_id = response.id.with("box");
    if response.drag_started() {
        // Where the button went down, not where the drag was first noticed.
        let origin = ui.input(|i| i.pointer.press_origin());
        if let Some(start) = origin.or(response.interact_pointer_pos()) {
            ui.memory_mut(|m| m.data.insert_temp(drag_id, start));
        }
    }
    let start: Option<Pos2> = ui.memory(|m| m.data.get_temp(drag_id));
    if let (Some(start), Some(now)) = (start, response.interact_pointer_pos()) {
        let boxed = Rect::from_two_pos(start, now);
        if response.dragged() {
            painter.rect(
                boxed,
                0.0,
                ui.visuals().selection.bg_fill.gamma_multiply(0.25),
                ui.visuals().selection.stroke,
                egui::StrokeKind::Inside,
            );
        }
        if response.drag_stopped() {
            events.boxed = Some(
                positions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| boxed.contains(**p))
                    .map(|(i, _)| i)
                    .collect(),
            );
            ui.memory_mut(|m| m.data.remove::<Pos2>(drag_id));
        }
    }
    if let Some(i) = events.hovered {
        painter.circle_stroke(positions[i], half + 4.0, ring);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scale_for_both_axes_and_y_upwards() {
        let data = Rect::from_min_max(Pos2::new(-1.0, -1.0), Pos2::new(3.0, 1.0));
        let screen = Rect::from_min_size(Pos2::ZERO, Vec2::new(400.0, 400.0));
        let f = transform(data, screen);
        let (a, b) = (f([-1.0, 0.0]), f([3.0, 0.0]));
        assert!((b.x - a.x - 400.0).abs() < 1e-3);
        let up = f([0.0, 1.0]);
        let down = f([0.0, -1.0]);
        assert!(up.y < down.y && (down.y - up.y - 200.0).abs() < 1e-3);
    }

    #[test]
    fn bounds_cover_every_stage() {
        let r = bounds(&[vec![[0.0, 0.0], [1.0, 1.0]], vec![[-2.0, 0.5]]]);
        assert!(r.contains(Pos2::new(-2.0, 0.5)) && r.contains(Pos2::new(1.0, 1.0)));
    }
}
