//! A software rasteriser for egui's tessellated output: the same triangles
//! and font atlas the window draws, without a GPU or a display. egui's
//! meshes carry their own anti-aliasing (feathered edges), so sampling pixel
//! centres is enough; colours are premultiplied and blended in gamma space,
//! as egui's own painters do.

use std::collections::HashMap;

use egui::TexturesDelta;

use egui::epaint::{ClippedPrimitive, Color32, ImageData, Primitive, TextureId, Vertex};

/// Texture images by id, kept up to date from each frame's deltas.
#[derive(Default)]
pub struct Textures {
    images: HashMap<TextureId, Image>,
}

struct Image {
    size: [usize; 2],
    pixels: Vec<Color32>,
}

impl Textures {
    pub fn apply(&mut self, delta: &TexturesDelta) {
        for (id, deltas) in &delta.set {
            for d in deltas {
                let ImageData::Color(src) = &d.image;
                match d.pos {
                    None => {
                        self.images.insert(
                            *id,
                            Image {
                                size: src.size,
                                pixels: src.pixels.clone(),
                            },
                        );
                    }
                    Some([x0, y0]) => {
                        let Some(dst) = self.images.get_mut(id) else {
                            continue;
                        };
                        for y in 0..src.size[1] {
                            for x in 0..src.size[0] {
                                let (dx, dy) = (x0 + x, y0 + y);
                                if dx < dst.size[0] && dy < dst.size[1] {
                                    dst.pixels[dy * dst.size[0] + dx] =
                                        src.pixels[y * src.size[0] + x];
                                }
                            }
                        }
                    }
                }
            }
        }
        for id in &delta.free {
            self.images.remove(id);
        }
    }

    /// Bilinear sample at normalised `uv`, premultiplied RGBA in 0..=1.
    fn sample(&self, id: TextureId, u: f32, v: f32) -> [f32; 4] {
        let Some(img) = self.images.get(&id) else {
            return [1.0; 4];
        };
        let (w, h) = (img.size[0] as f32, img.size[1] as f32);
        let (x, y) = (u * w - 0.5, v * h - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let at = |xi: f32, yi: f32| -> [f32; 4] {
            let xi = xi.clamp(0.0, w - 1.0) as usize;
            let yi = yi.clamp(0.0, h - 1.0) as usize;
            let c = img.pixels[yi * img.size[0] + xi];
            [c.r(), c.g(), c.b(), c.a()].map(|v| v as f32 / 255.0)
        };
        let (a, b, c, d) = (
            at(x0, y0),
            at(x0 + 1.0, y0),
            at(x0, y0 + 1.0),
            at(x0 + 1.0, y0 + 1.0),
        );
        std::array::from_fn(|i| {
            let top = a[i] + (b[i] - a[i]) * fx;
            let bottom = c[i] + (d[i] - c[i]) * fx;
            top + (bottom - top) * fy
        })
    }
}

/// An RGBA canvas, premultiplied, `0..=1` per channel.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<[f32; 4]>,
}

impl Canvas {
    /// A canvas filled with `background` (transparent for a PNG without one).
    pub fn new(width: usize, height: usize, background: Color32) -> Self {
        let bg = [
            background.r(),
            background.g(),
            background.b(),
            background.a(),
        ]
        .map(|v| v as f32 / 255.0);
        Canvas {
            width,
            height,
            pixels: vec![bg; width * height],
        }
    }

    /// Draw every mesh, scaled by `pixels_per_point`, inside its clip rectangle.
    pub fn draw(
        &mut self,
        primitives: &[ClippedPrimitive],
        textures: &Textures,
        pixels_per_point: f32,
    ) {
        for p in primitives {
            let Primitive::Mesh(mesh) = &p.primitive else {
                continue;
            };
            let clip = [
                (p.clip_rect.min.x * pixels_per_point).max(0.0),
                (p.clip_rect.min.y * pixels_per_point).max(0.0),
                (p.clip_rect.max.x * pixels_per_point).min(self.width as f32),
                (p.clip_rect.max.y * pixels_per_point).min(self.height as f32),
            ];
            for tri in mesh.indices.chunks_exact(3) {
                let get = |i: u32| mesh.vertices.get(i as usize).copied();
                if let (Some(a), Some(b), Some(c)) = (get(tri[0]), get(tri[1]), get(tri[2])) {
                    self.triangle([a, b, c], mesh.texture_id, textures, pixels_per_point, clip);
                }
            }
        }
    }

    fn triangle(
        &mut self,
        v: [Vertex; 3],
        tex: TextureId,
        textures: &Textures,
        ppp: f32,
        clip: [f32; 4],
    ) {
        let p = v.map(|v| (v.pos.x * ppp, v.pos.y * ppp));
        let area = (p[1].0 - p[0].0) * (p[2].1 - p[0].1) - (p[2].0 - p[0].0) * (p[1].1 - p[0].1);
        if area.abs() < 1e-12 {
            return;
        }
        let ymin = p.iter().map(|q| q.1).fold(f32::MAX, f32::min).max(clip[1]);
        let ymax = p.iter().map(|q| q.1).fold(f32::MIN, f32::max).min(clip[3]);
        let colors = v.map(|v| {
            [v.color.r(), v.color.g(), v.color.b(), v.color.a()].map(|c| c as f32 / 255.0)
        });
        let mut row = (ymin - 0.5).ceil().max(0.0) as usize;
        while (row as f32 + 0.5) <= ymax && row < self.height {
            let y = row as f32 + 0.5;
            let (mut lo, mut hi) = (clip[0], clip[2]);
            // Each edge function is linear in x: keep the side with the triangle.
            for i in 0..3 {
                let (a, b) = (p[i], p[(i + 1) % 3]);
                let slope = -(b.1 - a.1) * area.signum();
                let at0 = ((b.0 - a.0) * (y - a.1)) * area.signum();
                // e(x) = at0 + slope·(x − a.x) ≥ 0
                if slope.abs() < 1e-12 {
                    if at0 < 0.0 {
                        hi = lo - 1.0;
                    }
                } else if slope > 0.0 {
                    lo = lo.max(a.0 - at0 / slope);
                } else {
                    hi = hi.min(a.0 - at0 / slope);
                }
            }
            let mut col = (lo - 0.5).ceil().max(0.0) as usize;
            while (col as f32 + 0.5) <= hi && col < self.width {
                let x = col as f32 + 0.5;
                let w1 =
                    ((x - p[0].0) * (p[2].1 - p[0].1) - (p[2].0 - p[0].0) * (y - p[0].1)) / area;
                let w2 =
                    ((p[1].0 - p[0].0) * (y - p[0].1) - (x - p[0].0) * (p[1].1 - p[0].1)) / area;
                let w0 = 1.0 - w1 - w2;
                let color: [f32; 4] = std::array::from_fn(|k| {
                    colors[0][k] * w0 + colors[1][k] * w1 + colors[2][k] * w2
                });
                let u = v[0].uv.x * w0 + v[1].uv.x * w1 + v[2].uv.x * w2;
                let t = v[0].uv.y * w0 + v[1].uv.y * w1 + v[2].uv.y * w2;
                let texel = textures.sample(tex, u, t);
                let src: [f32; 4] = std::array::from_fn(|k| color[k] * texel[k]);
                let dst = &mut self.pixels[row * self.width + col];
                for k in 0..4 {
                    dst[k] = src[k] + dst[k] * (1.0 - src[3]);
                }
                col += 1;
            }
            row += 1;
        }
    }

    /// The pixels inside `x0..x0 + width`, `y0..y0 + height` (clamped).
    pub fn crop(&self, (x0, y0): (usize, usize), (width, height): (usize, usize)) -> Canvas {
        let x0 = x0.min(self.width);
        let y0 = y0.min(self.height);
        let width = width.min(self.width - x0);
        let height = height.min(self.height - y0);
        let mut pixels = Vec::with_capacity(width * height);
        for row in y0..y0 + height {
            let start = row * self.width + x0;
            pixels.extend_from_slice(&self.pixels[start..start + width]);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Straight-alpha RGBA8 bytes, rows top to bottom.
    pub fn to_rgba8(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 4);
        for p in &self.pixels {
            let a = p[3].clamp(0.0, 1.0);
            let un = |c: f32| {
                if a > 0.0 {
                    (c / a).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            };
            out.extend([un(p[0]), un(p[1]), un(p[2]), a].map(|c| (c * 255.0 + 0.5) as u8));
        }
        out
    }

    /// The canvas as a PNG file's bytes.
    pub fn to_png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut bytes = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
        image::ImageEncoder::write_image(
            encoder,
            &self.to_rgba8(),
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgba8,
        )?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::epaint::{Mesh, Pos2, Rect};

    #[test]
    fn a_filled_rectangle_covers_its_pixels_and_nothing_else() {
        let mut mesh = Mesh::default();
        mesh.add_colored_rect(
            Rect::from_min_max(Pos2::new(2.0, 1.0), Pos2::new(6.0, 3.0)),
            Color32::RED,
        );
        let prim = ClippedPrimitive {
            clip_rect: Rect::EVERYTHING,
            primitive: Primitive::Mesh(mesh),
        };
        let mut canvas = Canvas::new(8, 4, Color32::WHITE);
        canvas.draw(&[prim], &Textures::default(), 1.0);
        let px = canvas.to_rgba8();
        let at = |x: usize, y: usize| &px[(y * 8 + x) * 4..(y * 8 + x) * 4 + 4];
        assert_eq!(at(2, 1), [255, 0, 0, 255]);
        assert_eq!(at(5, 2), [255, 0, 0, 255]);
        assert_eq!(at(1, 1), [255, 255, 255, 255]);
        assert_eq!(at(6, 2), [255, 255, 255, 255]);
        assert_eq!(at(3, 3), [255, 255, 255, 255]);
        let red = px.chunks(4).filter(|p| p[1] == 0).count();
        assert_eq!(red, 8, "4×2 pixels, each once");
    }

    #[test]
    fn scaling_doubles_the_covered_area_per_axis_and_clips() {
        let mut mesh = Mesh::default();
        mesh.add_colored_rect(
            Rect::from_min_max(Pos2::new(0.0, 0.0), Pos2::new(2.0, 2.0)),
            Color32::BLUE,
        );
        let prim = ClippedPrimitive {
            clip_rect: Rect::from_min_max(Pos2::new(0.0, 0.0), Pos2::new(1.0, 2.0)),
            primitive: Primitive::Mesh(mesh),
        };
        let mut canvas = Canvas::new(8, 8, Color32::TRANSPARENT);
        canvas.draw(&[prim], &Textures::default(), 2.0);
        let covered = canvas.to_rgba8().chunks(4).filter(|p| p[3] == 255).count();
        assert_eq!(covered, 2 * 4, "clipped to 1×2 points = 2×4 pixels");
    }
}
