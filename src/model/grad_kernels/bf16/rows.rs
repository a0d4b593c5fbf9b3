//! A matrix held in bf16 between two products: rows of bf16 pairs laid out
//! as both kernels read `A`, so that an activation rounded once, where it is
//! made (a layer norm, a product's epilogue), goes into the next product
//! with no packing pass and half the bytes of `f32`.

use rayon::prelude::*;

use super::pack;

/// Pairs a row is padded to: a whole AMX tile row (and a multiple of both
/// kernels' blocks of `k`).
const ROW_PAIRS: usize = 16;
/// Rows are padded to whole row tiles of either kernel (12 and 32 rows).
pub(super) const ROW_TILES: usize = 96;

/// `rows` × `cols` values rounded to bf16, row by row: pair `p` of row `r`
/// (columns `2p`, `2p + 1`, the even one in the low half) at
/// `r * stride + p`. The pairs past `cols` and the rows past `rows` up to
/// whole tiles are there to be read; the pairs past `cols` are zero.
#[derive(Debug, Default, Clone)]
pub struct Bf16Rows {
    data: Vec<u32>,
    rows: usize,
    cols: usize,
    stride: usize,
}

impl Bf16Rows {
    /// Rows and columns of values.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<u32>()
    }

    /// Pairs from one row to the next.
    pub(super) fn stride(&self) -> usize {
        self.stride
    }

    /// Every pair, padding rows included.
    pub(super) fn data(&self) -> &[u32] {
        &self.data
    }

    /// Made ready for `rows` × `cols` values (their contents unspecified
    /// until written).
    pub fn reshape(&mut self, rows: usize, cols: usize) {
        let stride = cols.div_ceil(2).next_multiple_of(ROW_PAIRS);
        if (stride, cols) != (self.stride, self.cols) {
            // The pairs past `cols` must read as zero.
            self.data.clear();
        }
        self.data
            .resize(rows.next_multiple_of(ROW_TILES) * stride, 0);
        (self.rows, self.cols, self.stride) = (rows, cols, stride);
    }

    /// The rows' pairs to write, `stride` apart (`cols.div_ceil(2)` of each
    /// are the row's), and the stride.
    pub fn rows_mut(&mut self) -> (&mut [u32], usize) {
        let len = self.rows * self.stride;
        (&mut self.data[..len], self.stride)
    }

    /// `values` (`rows` × `cols`, row-major) rounded into these rows.
    pub fn fill(&mut self, values: &[f32], rows: usize, cols: usize) {
        self.reshape(rows, cols);
        let (data, stride) = self.rows_mut();
        data.par_chunks_mut(stride.max(1))
            .zip(values.par_chunks(cols.max(1)))
            .for_each(|(dst, src)| round_row(src, dst));
    }

    /// Value `(r, c)` back in `f32` (exactly the bf16 it holds).
    #[cfg(test)]
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let pair = self.data[r * self.stride + c / 2];
        f32::from_bits((pair >> (16 * (c % 2))) << 16)
    }
}

/// A row of values rounded to bf16 pairs (the last one's second half zero
/// for an odd count) at the start of `dst`.
pub fn round_row(values: &[f32], dst: &mut [u32]) {
    pack::pairs_of_run(values, dst, 1);
}
