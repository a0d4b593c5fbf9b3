use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

use super::cache::Shown;
use super::*;
use crate::ui::selection::{for_each_link, Links, SentenceFilter};
use crate::ui::support::contrast::Contrast;
use crate::AttentionMaps;

/// `layers` × `heads` of seeded weights over `[CLS] a… [SEP] b… [SEP]`.
fn result(layers: usize, heads: usize, seq: usize) -> AttentionResult {
    let mut state = 0x1234_5678_u32;
    let mut data = Vec::new();
    for _ in 0..layers * heads * seq {
        let row: Vec<f32> = (0..seq)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32).powi(4)
            })
            .collect();
        let sum: f32 = row.iter().sum();
        data.extend(row.iter().map(|w| w / sum));
    }
    let half = seq / 2;
    AttentionResult {
        tokens: (0..seq)
            .map(|i| match i {
                0 => "[CLS]".into(),
                i if i == half - 1 || i == seq - 1 => "[SEP]".into(),
                i => format!("t{i}"),
            })
            .collect(),
        input_ids: vec![0; seq],
        token_type_ids: (0..seq).map(|i| u32::from(i >= half)).collect(),
        attentions: AttentionMaps::new(layers, heads, seq, data),
        truncated: false,
        neurons: None,
    }
}

/// One frame's preparation of the cache for `sel`.
fn prepare(cache: &mut ThumbnailCache, ctx: &egui::Context, r: &AttentionResult, sel: &Selection) {
    let infos = token_infos(&r.tokens, &r.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let shown = Shown {
        maps: &r.attentions,
        visible: &visible,
        sel,
        focus: None,
        rows: visible.queries.len().max(visible.keys.len()),
        min_opacity: 0.02,
    };
    cache.prepare(ctx, &shown, 84, 1.0);
}

/// What `for_each_link` finds for head `i` under `sel`.
fn expected(r: &AttentionResult, sel: &Selection, i: usize) -> Vec<Link> {
    let infos = token_infos(&r.tokens, &r.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let heads = r.attentions.heads;
    let which = Links {
        layer: i / heads,
        head: i % heads,
        renormalize: sel.hide_special && sel.renormalize,
        focus: None,
        min_weight: 0.02,
    };
    let mut links = Vec::new();
    for_each_link(&r.attentions, &visible, which, |q, k, w| {
        links.push((q as u16, k as u16, w))
    });
    links
}

fn same(a: &[Link], b: &[Link]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.0, x.1) == (y.0, y.1) && (x.2 - y.2).abs() < 1e-5)
}

#[test]
fn thumbnails_follow_the_filters_the_data_and_the_contrast() {
    let mut r = result(2, 2, 12);
    let ctx = egui::Context::default();
    let mut cache = ThumbnailCache::vector();
    let mut sel = Selection::default();
    prepare(&mut cache, &ctx, &r, &sel);
    assert!(cache.settled());
    let all = cache.links(3).unwrap_or_default().to_vec();
    assert!(same(&all, &expected(&r, &sel, 3)));
    assert!(!cache.any_capped(), "a short input shows every line");

    sel.filter = SentenceFilter::AToB;
    prepare(&mut cache, &ctx, &r, &sel);
    let a_to_b = cache.links(3).unwrap_or_default().to_vec();
    assert!(
        same(&a_to_b, &expected(&r, &sel, 3)),
        "walked again for A→B"
    );
    assert_ne!(all.len(), a_to_b.len());

    sel.hide_special = true;
    prepare(&mut cache, &ctx, &r, &sel);
    assert!(same(
        cache.links(3).unwrap_or_default(),
        &expected(&r, &sel, 3)
    ));

    // Same data and filters: served from the cache, not walked again.
    r.attentions.data.reverse();
    prepare(&mut cache, &ctx, &r, &sel);
    let cached = cache.links(3).unwrap_or_default().to_vec();
    assert!(!same(&cached, &expected(&r, &sel, 3)));
    // The owner says the data is new (the same allocation): walked again.
    cache.data_changed();
    assert!(!cache.settled());
    prepare(&mut cache, &ctx, &r, &sel);
    assert!(same(
        cache.links(3).unwrap_or_default(),
        &expected(&r, &sel, 3)
    ));

    // Per-head contrast: the head's strongest line is opaque.
    sel.contrast = Contrast {
        per_head: true,
        gamma: 1.0,
    };
    prepare(&mut cache, &ctx, &r, &sel);
    let strongest = cache
        .links(3)
        .unwrap_or_default()
        .iter()
        .fold(0.0f32, |m, l| m.max(l.2));
    assert!((strongest - 1.0).abs() < 1e-5, "{strongest}");
}

#[test]
fn pictures_are_drawn_again_after_a_change_and_the_old_ones_shown_meanwhile() {
    let r = result(2, 3, 10);
    let ctx = egui::Context::default();
    let mut cache = ThumbnailCache::default();
    let mut sel = Selection::default();
    let settle = |cache: &mut ThumbnailCache, sel: &Selection| {
        let started = Instant::now();
        loop {
            prepare(cache, &ctx, &r, sel);
            if cache.settled() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never drawn");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    settle(&mut cache, &sel);
    assert_eq!(cache.progress(), (6, 6));
    let before = cache.texture(4);
    assert!(before.is_some());

    sel.filter = SentenceFilter::BToA;
    prepare(&mut cache, &ctx, &r, &sel);
    assert!(!cache.settled(), "a new filter: new pictures to draw");
    assert_eq!(
        cache.texture(4),
        before,
        "the old picture until the new one is in"
    );
    settle(&mut cache, &sel);
    assert!(same(
        cache.links(4).unwrap_or_default(),
        &expected(&r, &sel, 4)
    ));
    // The texture is reused, its image replaced.
    assert_eq!(cache.texture(4), before);
}

#[test]
fn twelve_heads_fit_beside_the_side_panel_and_fewer_scroll() {
    // The central panel at 1440 × 900 with the 320-point side panel open.
    let fitted = fit(1090.0, 12, 52.0, 48.0);
    assert_eq!(fitted.columns, 12);
    assert!(52.0 + 12.0 * (fitted.side + SPACING) <= 1090.0);
    assert!(fitted.side < THUMB && fitted.side >= 48.0);
    // Wide: full size; narrow: the smallest size and fewer columns.
    assert_eq!(fit(2000.0, 12, 52.0, 48.0).side, THUMB);
    let narrow = fit(500.0, 12, 52.0, 48.0);
    assert_eq!(narrow.side, 48.0);
    assert_eq!(narrow.columns, 8);
    assert_eq!(
        fit(800.0, 6, 52.0, 48.0),
        Fit {
            side: THUMB,
            columns: 6
        }
    );
}

/// The model view of a 12-layer × 12-head model in a window of `size`
/// with the app's 320-point side panel.
fn window(size: egui::Vec2) -> Harness<'static> {
    let r = result(12, 12, 24);
    let mut sel = Selection::default();
    sel.fit(12, 12);
    let mut cache = ThumbnailCache::default();
    let ablated = HeadSet::new();
    Harness::builder().with_size(size).build_ui(move |ui| {
        egui::Panel::left("inputs")
            .default_size(320.0)
            .show(ui, |ui| {
                // As the app's sentence boxes: as wide as the panel.
                ui.allocate_space(egui::Vec2::new(ui.available_width(), 20.0));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let ablation = Ablation {
                ablated: &ablated,
                mode: false,
            };
            show(ui, &r, &sel, None, &mut cache, ablation);
        });
    })
}

#[test]
fn at_1440_by_900_every_head_is_in_the_window() {
    let mut h = window(egui::Vec2::new(1440.0, 900.0));
    h.run_steps(3);
    let last = h.get_by_label("Layer 0 head 11").rect();
    assert!(last.right() <= 1440.0, "head 11 ends at {}", last.right());
    assert!(says(&h, "to fit all 12 heads"));
    assert!(says(&h, "scroll down for layers 9–11"));

    let mut h = window(egui::Vec2::new(900.0, 700.0));
    h.run_steps(3);
    assert!(h.get_by_label("Layer 0 head 11").rect().right() > 900.0);
    assert!(
        says(&h, "scroll sideways for heads 9–11"),
        "at 900 points, 9 columns fit"
    );
}

/// Whether a text on screen contains `text`.
fn says(h: &Harness<'_>, text: &str) -> bool {
    let holds = move |node: &egui_kittest::kittest::AccessKitNode<'_>| {
        node.value().is_some_and(|v| v.contains(text))
    };
    h.query_all(egui_kittest::kittest::by().predicate(holds))
        .next()
        .is_some()
}
