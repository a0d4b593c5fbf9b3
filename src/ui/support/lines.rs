//! Many thin straight lines as one mesh: tens of thousands of attention lines
//! per frame cost far less this way than as individual anti-aliased shapes.

use egui::epaint::{Mesh, Vertex, WHITE_UV};
use egui::{Color32, Pos2, Rect, Shape};

/// A batch of lines drawn as thin quads.
pub struct LineBatch {
    mesh: Mesh,
    clip: Rect,
}

impl LineBatch {
    /// Lines entirely outside `clip` are skipped.
    pub fn new(clip: Rect) -> Self {
        LineBatch {
            mesh: Mesh::default(),
            clip,
        }
    }

    pub fn add(&mut self, a: Pos2, b: Pos2, width: f32, color: Color32) {
        if color.a() == 0 || !self.clip.intersects(Rect::from_two_pos(a, b).expand(width)) {
            return;
        }
        let dir = b - a;
        let len = dir.length();
        if len <= f32::EPSILON {
            return;
        }
        let n = egui::vec2(-dir.y, dir.x) * (0.5 * width / len);
        let base = self.mesh.vertices.len() as u32;
        for pos in [a + n, a - n, b + n, b - n] {
            self.mesh.vertices.push(Vertex {
                pos,
                uv: WHITE_UV,
                color,
            });
        }
        self.mesh.indices.extend_from_slice(&[
            base,
            base + 1,
            base + 2,
            base + 1,
            base + 3,
            base + 2,
        ]);
    }

    pub fn len(&self) -> usize {
        self.mesh.vertices.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.mesh.vertices.is_empty()
    }

    pub fn into_shape(self) -> Shape {
        Shape::mesh(self.mesh)
    }
}
