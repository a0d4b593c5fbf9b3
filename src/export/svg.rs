//! egui's shapes as SVG: one element per line, rectangle, circle and path,
//! text as `<text>` (editable on a slide) with the width egui measured.
//! Lines that the views batch into one mesh of thin quads come out as one
//! `<line>` each, the rectangles of a mesh (heat-map cells) as `<rect>`s.
//! Only the shapes that reach into the picture's crop are written.

use std::fmt::Write;

use egui::epaint::{ClippedShape, Color32, Mesh, Pos2, Rect, Shape, TextShape};

/// The fonts the text asks for: egui's own first (Ubuntu Light), then
/// sans-serif faces of similar width.
pub const FONT_FAMILY: &str =
    "Ubuntu, 'Ubuntu Light', 'Noto Sans', 'Liberation Sans', Arial, sans-serif";

/// An SVG document of the part `crop` (points) of a frame drawing `shapes`;
/// `background` fills it first unless transparent.
pub fn document(shapes: &[ClippedShape], crop: Rect, background: Color32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="{x} {y} {w} {h}" font-family="{FONT_FAMILY}">"#,
        x = num(crop.min.x),
        y = num(crop.min.y),
        w = num(crop.width()),
        h = num(crop.height())
    );
    if background.a() > 0 {
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" {}/>"#,
            num(crop.min.x),
            num(crop.min.y),
            num(crop.width()),
            num(crop.height()),
            fill(background)
        );
    }
    let mut clips: Vec<Rect> = Vec::new();
    for clipped in shapes {
        let clip = clipped.clip_rect.intersect(crop);
        if !clip.is_positive() || !clipped.shape.visual_bounding_rect().intersects(clip) {
            continue;
        }
        let id = match clips.iter().position(|c| *c == clip) {
            Some(i) => i,
            None => {
                clips.push(clip);
                let _ = writeln!(
                    out,
                    r#"<clipPath id="c{}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>"#,
                    clips.len() - 1,
                    num(clip.min.x),
                    num(clip.min.y),
                    num(clip.width().max(0.0)),
                    num(clip.height().max(0.0))
                );
                clips.len() - 1
            }
        };
        let mut body = String::new();
        shape(&mut body, &clipped.shape);
        if !body.is_empty() {
            let _ = write!(out, "<g clip-path=\"url(#c{id})\">\n{body}</g>\n");
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A number with at most two decimals.
fn num(v: f32) -> String {
    let s = format!("{:.2}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// `rgb(…)` and its opacity, from egui's premultiplied colour.
fn rgb(color: Color32) -> (String, f32) {
    let [r, g, b, a] = color.to_srgba_unmultiplied();
    (format!("rgb({r},{g},{b})"), a as f32 / 255.0)
}

fn paint(attr: &str, color: Color32) -> String {
    let (c, a) = rgb(color);
    if a >= 1.0 {
        format!(r#"{attr}="{c}""#)
    } else {
        format!(r#"{attr}="{c}" {attr}-opacity="{}""#, num_fine(a))
    }
}

fn num_fine(v: f32) -> String {
    let s = format!("{:.3}", v);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn fill(color: Color32) -> String {
    if color.a() == 0 {
        r#"fill="none""#.into()
    } else {
        paint("fill", color)
    }
}

fn stroke(width: f32, color: Color32) -> String {
    if width <= 0.0 || color.a() == 0 {
        String::new()
    } else {
        format!(
            r#" {} stroke-width="{}""#,
            paint("stroke", color),
            num_fine(width)
        )
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn points(pts: &[Pos2]) -> String {
    let parts: Vec<String> = pts
        .iter()
        .map(|p| format!("{},{}", num(p.x), num(p.y)))
        .collect();
    parts.join(" ")
}

fn shape(out: &mut String, shape: &Shape) {
    match shape {
        Shape::Noop | Shape::Callback(_) => {}
        Shape::Vec(shapes) => shapes.iter().for_each(|s| self::shape(out, s)),
        Shape::LineSegment {
            points: [a, b],
            stroke: s,
        } => {
            line(out, (*a, *b), s.width, s.color);
        }
        Shape::Circle(c) => {
            let _ = writeln!(
                out,
                r#"<circle cx="{}" cy="{}" r="{}" {}{}/>"#,
                num(c.center.x),
                num(c.center.y),
                num(c.radius),
                fill(c.fill),
                stroke(c.stroke.width, c.stroke.color)
            );
        }
        Shape::Ellipse(e) => {
            let _ = writeln!(
                out,
                r#"<ellipse cx="{}" cy="{}" rx="{}" ry="{}" {}{}/>"#,
                num(e.center.x),
                num(e.center.y),
                num(e.radius.x),
                num(e.radius.y),
                fill(e.fill),
                stroke(e.stroke.width, e.stroke.color)
            );
        }
        Shape::Rect(r) => {
            let radius = r.corner_radius.average();
            let _ = writeln!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" rx="{}" {}{}/>"#,
                num(r.rect.min.x),
                num(r.rect.min.y),
                num(r.rect.width().max(0.0)),
                num(r.rect.height().max(0.0)),
                num(radius),
                fill(r.fill),
                stroke(r.stroke.width, r.stroke.color)
            );
        }
        Shape::Path(p) => {
            let color = solid(&p.stroke.color);
            let tag = if p.closed { "polygon" } else { "polyline" };
            let _ = writeln!(
                out,
                r#"<{tag} points="{}" {}{}/>"#,
                points(&p.points),
                fill(if p.closed {
                    p.fill
                } else {
                    Color32::TRANSPARENT
                }),
                stroke(p.stroke.width, color)
            );
        }
        Shape::QuadraticBezier(q) => curve(out, &q.points, q.fill, &q.stroke),
        Shape::CubicBezier(q) => curve(out, &q.points, q.fill, &q.stroke),
        // Bands (varying-width strips, plots only) have no SVG form here.
        Shape::Band(_) => {}
        Shape::Text(t) => text(out, t),
        Shape::Mesh(mesh) => self::mesh(out, mesh),
    }
}

/// A quadratic (three points) or cubic (four) Bézier curve as a `<path>`.
fn curve(out: &mut String, pts: &[Pos2], fill_color: Color32, s: &egui::epaint::PathStroke) {
    let Some((first, rest)) = pts.split_first() else {
        return;
    };
    let command = if rest.len() == 2 { "Q" } else { "C" };
    let _ = writeln!(
        out,
        r#"<path d="M{},{} {command}{}" {}{}/>"#,
        num(first.x),
        num(first.y),
        points(rest),
        fill(fill_color),
        stroke(s.width, solid(&s.color))
    );
}

fn line(out: &mut String, (a, b): (Pos2, Pos2), width: f32, color: Color32) {
    let _ = writeln!(
        out,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}"{}/>"#,
        num(a.x),
        num(a.y),
        num(b.x),
        num(b.y),
        stroke(width, color)
    );
}

fn solid(mode: &egui::epaint::ColorMode) -> Color32 {
    match mode {
        egui::epaint::ColorMode::Solid(c) => *c,
        egui::epaint::ColorMode::UV(_) => Color32::GRAY,
    }
}

/// One `<text>` per row of the galley, at its baseline, in its colour.
fn text(out: &mut String, t: &TextShape) {
    let galley = &t.galley;
    let (size, mono) = galley
        .job
        .sections
        .first()
        .map(|s| {
            (
                s.format.font_id.size,
                matches!(s.format.font_id.family, egui::FontFamily::Monospace),
            )
        })
        .unwrap_or((14.0, false));
    for placed in &galley.rows {
        let row = &placed.row;
        let Some(first) = row.glyphs.first() else {
            continue;
        };
        let content: String = row.glyphs.iter().map(|g| g.chr).collect();
        if content.trim().is_empty() {
            continue;
        }
        let color = t.override_text_color.unwrap_or_else(|| {
            let c = row
                .visuals
                .mesh
                .vertices
                .get(first.first_vertex as usize)
                .map_or(t.fallback_color, |v| v.color);
            if c == Color32::PLACEHOLDER {
                t.fallback_color
            } else {
                c
            }
        });
        let color = color.gamma_multiply(t.opacity_factor);
        let origin = t.pos + placed.pos.to_vec2();
        let (x, y) = (origin.x + first.pos.x, origin.y + first.pos.y);
        let rotate = if t.angle != 0.0 {
            format!(
                r#" transform="rotate({} {} {})""#,
                num(t.angle.to_degrees()),
                num(t.pos.x),
                num(t.pos.y)
            )
        } else {
            String::new()
        };
        let family = if mono {
            r#" font-family="'Hack', 'DejaVu Sans Mono', monospace""#
        } else {
            ""
        };
        // The width egui measured: a renderer with another font fits the
        // text to it rather than running into the next label.
        let last = row.glyphs.last().unwrap_or(first);
        let width = last.pos.x + last.advance_width - first.pos.x;
        let length = if width > 0.0 {
            format!(
                r#" textLength="{}" lengthAdjust="spacingAndGlyphs""#,
                num(width)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" {}{family}{length}{rotate} xml:space="preserve">{}</text>"#,
            num(x),
            num(y),
            num(size),
            fill(color),
            escape(&content)
        );
    }
}

/// The rectangle a quad of one colour covers, when its four corners are an
/// axis-aligned rectangle's (egui's `add_colored_rect`).
fn as_rect(quad: &[egui::epaint::Vertex]) -> Option<Rect> {
    let mut r = Rect::NOTHING;
    for v in quad {
        r.extend_with(v.pos);
    }
    let corner = |p: Pos2| (p.x == r.min.x || p.x == r.max.x) && (p.y == r.min.y || p.y == r.max.y);
    let distinct = quad
        .iter()
        .enumerate()
        .all(|(i, a)| quad[..i].iter().all(|b| b.pos != a.pos));
    let one_colour = quad.iter().all(|v| v.color == quad[0].color);
    (quad.len() == 4 && distinct && one_colour && quad.iter().all(|v| corner(v.pos))).then_some(r)
}

/// A mesh of rectangles (heat-map cells) as `<rect>`s, of thin quads (the
/// views' line batches) as lines; any other mesh as its triangles.
fn mesh(out: &mut String, mesh: &Mesh) {
    let v = &mesh.vertices;
    let rect_quads = v.len().is_multiple_of(4)
        && mesh.indices.len() == v.len() / 4 * 6
        && mesh.indices.chunks(6).enumerate().all(|(q, idx)| {
            let b = (q * 4) as u32;
            idx == [b, b + 1, b + 2, b + 2, b + 1, b + 3]
        })
        && v.chunks(4).all(|q| as_rect(q).is_some());
    if rect_quads {
        for q in v.chunks(4) {
            if let Some(r) = as_rect(q) {
                let _ = writeln!(
                    out,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" {}/>"#,
                    num(r.min.x),
                    num(r.min.y),
                    num(r.width()),
                    num(r.height()),
                    fill(q[0].color)
                );
            }
        }
        return;
    }
    let quads = v.len().is_multiple_of(4)
        && mesh.indices.len() == v.len() / 4 * 6
        && mesh.indices.chunks(6).enumerate().all(|(q, idx)| {
            let b = (q * 4) as u32;
            idx == [b, b + 1, b + 2, b + 1, b + 3, b + 2]
        });
    if quads {
        for q in v.chunks(4) {
            let a = q[0].pos.lerp(q[1].pos, 0.5);
            let b = q[2].pos.lerp(q[3].pos, 0.5);
            let width = q[0].pos.distance(q[1].pos);
            line(out, (a, b), width, q[0].color);
        }
        return;
    }
    for tri in mesh.indices.chunks(3) {
        let pts: Vec<Pos2> = tri
            .iter()
            .filter_map(|&i| v.get(i as usize))
            .map(|v| v.pos)
            .collect();
        if let (3, Some(first)) = (pts.len(), v.get(tri[0] as usize)) {
            let _ = writeln!(
                out,
                r#"<polygon points="{}" {}/>"#,
                points(&pts),
                fill(first.color)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_batches_become_one_line_each_and_text_is_escaped() {
        let mut batch = crate::ui::support::lines::LineBatch::new(Rect::EVERYTHING);
        batch.add(Pos2::new(0.0, 0.0), Pos2::new(10.0, 0.0), 2.0, Color32::RED);
        batch.add(
            Pos2::new(0.0, 5.0),
            Pos2::new(10.0, 9.0),
            1.0,
            Color32::BLUE,
        );
        let shapes = vec![ClippedShape {
            clip_rect: Rect::EVERYTHING,
            shape: batch.into_shape(),
            transform_after_tessellation: egui::emath::TSTransform::IDENTITY,
        }];
        let crop = Rect::from_min_size(Pos2::ZERO, egui::vec2(20.0, 10.0));
        let svg = document(&shapes, crop, Color32::WHITE);
        assert_eq!(svg.matches("<line ").count(), 2, "{svg}");
        assert!(
            svg.contains(r#"x1="0" y1="0" x2="10" y2="0" stroke="rgb(255,0,0)" stroke-width="2""#),
            "{svg}"
        );
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(2.345), "2.35");
    }

    #[test]
    fn cells_become_rects_and_shapes_outside_the_crop_are_left_out() {
        let mut cells = Mesh::default();
        for i in 0..3 {
            let at = Pos2::new(10.0 * i as f32, 0.0);
            cells.add_colored_rect(
                Rect::from_min_size(at, egui::vec2(10.0, 10.0)),
                Color32::BLUE,
            );
        }
        let outside = Shape::rect_filled(
            Rect::from_min_size(Pos2::new(500.0, 500.0), egui::vec2(30.0, 10.0)),
            0.0,
            Color32::RED,
        );
        let clipped = |shape| ClippedShape {
            clip_rect: Rect::EVERYTHING,
            shape,
            transform_after_tessellation: egui::emath::TSTransform::IDENTITY,
        };
        let crop = Rect::from_min_size(Pos2::ZERO, egui::vec2(40.0, 20.0));
        let svg = document(
            &[clipped(Shape::mesh(cells)), clipped(outside)],
            crop,
            Color32::WHITE,
        );
        assert_eq!(svg.matches(r#"fill="rgb(0,0,255)""#).count(), 3, "{svg}");
        assert!(
            !svg.contains("<polygon") && !svg.contains("rgb(255,0,0)"),
            "{svg}"
        );
        assert!(svg.contains(r#"viewBox="0 0 40 20""#), "{svg}");
    }
}
