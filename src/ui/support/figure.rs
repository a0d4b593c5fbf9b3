//! The figure of a view, for an export that shows the figure alone: each
//! view marks the rectangles its drawing and legend take this frame, and
//! says whether controls are drawn at all (an export without them). The
//! export crops the picture to the marked rectangles.

use egui::{Context, Id, Rect};

/// The marks of the frame being drawn.
#[derive(Clone, Default)]
struct Marks {
    rects: Vec<Rect>,
    figure_only: bool,
}

fn id() -> Id {
    Id::unique("bertscope-figure-marks")
}

/// Start a frame: no rectangle marked yet; `figure_only` says whether the
/// views leave their controls out.
pub fn begin(ctx: &Context, figure_only: bool) {
    ctx.data_mut(|d| {
        d.insert_temp(
            id(),
            Marks {
                rects: Vec::new(),
                figure_only,
            },
        )
    });
}

/// Whether this frame draws the figure alone (no controls).
pub fn only(ctx: &Context) -> bool {
    ctx.data(|d| d.get_temp::<Marks>(id()).is_some_and(|m| m.figure_only))
}

/// `rect` is part of the figure (its drawing, legend or caption); kept
/// only in a frame that draws the figure alone.
pub fn mark(ctx: &Context, rect: Rect) {
    if rect.is_positive() && only(ctx) {
        ctx.data_mut(|d| d.get_temp_mut_or_default::<Marks>(id()).rects.push(rect));
    }
}

/// Draw `add` and mark all it took as part of the figure (in a frame that
/// draws the figure alone; otherwise `add` as it is, the layout untouched).
pub fn marked_scope<R>(ui: &mut egui::Ui, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    if !only(ui.ctx()) {
        return add(ui);
    }
    let inner = ui.scope(add);
    mark(ui.ctx(), inner.response.rect.intersect(ui.clip_rect()));
    inner.inner
}

/// The union of the rectangles marked this frame, if any.
pub fn marked(ctx: &Context) -> Option<Rect> {
    ctx.data(|d| {
        d.get_temp::<Marks>(id())
            .and_then(|m| m.rects.iter().copied().reduce(|a, b| a.union(b)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_per_frame_and_united() {
        let ctx = Context::default();
        begin(&ctx, true);
        assert!(only(&ctx) && marked(&ctx).is_none());
        mark(
            &ctx,
            Rect::from_min_max([10.0, 10.0].into(), [20.0, 30.0].into()),
        );
        mark(
            &ctx,
            Rect::from_min_max([50.0, 5.0].into(), [60.0, 15.0].into()),
        );
        mark(&ctx, Rect::NOTHING);
        let united = marked(&ctx).unwrap();
        assert_eq!(
            united,
            Rect::from_min_max([10.0, 5.0].into(), [60.0, 30.0].into())
        );
        begin(&ctx, false);
        mark(
            &ctx,
            Rect::from_min_max([10.0, 10.0].into(), [20.0, 30.0].into()),
        );
        assert!(
            !only(&ctx) && marked(&ctx).is_none(),
            "kept only for a figure alone"
        );
    }
}
