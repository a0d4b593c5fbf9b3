//! The attention core as one op with a backward: scores, scaled masked
//! softmax, dropout on the probabilities and the context, one (batch, head)
//! per parallel task, read straight from the packed `[batch·seq, 3·hidden]`
//! query/key/value projection one linear layer leaves (no split into heads,
//! no transposed copies, no batched matmul nodes, one gradient to return).

use std::sync::{Arc, OnceLock};

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{host, matmul, rows, tensor_like, Held};
use crate::model::kernels::AttentionShape;

/// `softmax(scale·q kᵀ + mask)` per head, dropout, times `v`: the packed
/// `[batch·seq, 3·hidden]` rows `q | k | v` give the context `[batch·seq, hidden]`.
pub(super) struct AttentionOp {
    pub shape: AttentionShape,
    pub scale: f32,
    /// The additive key mask, `batch·seq` values.
    pub mask: Vec<f32>,
    /// Dropout on the probabilities (`[batch, heads, seq, seq]`), if training.
    pub keep: Option<Vec<f32>>,
    /// The probabilities before dropout, `[batch, heads, seq, seq]`: set by the
    /// forward, returned as the attention maps and read by the backward.
    pub probs: Arc<OnceLock<Tensor>>,
}

/// The values a head's backward reads.
struct Saved<'a> {
    qkv: &'a [f32],
    dctx: &'a [f32],
    probs: &'a [f32],
}

impl AttentionOp {
    fn check(&self, qkv: &[f32]) -> candle_core::Result<()> {
        let AttentionShape {
            batch,
            seq,
            heads,
            head_dim,
        } = self.shape;
        let n = batch * seq * heads * head_dim;
        let probs = batch * heads * seq * seq;
        if qkv.len() != 3 * n || self.mask.len() != batch * seq {
            bail!("attention: inputs do not match {:?}", self.shape);
        }
        if self.keep.as_ref().is_some_and(|keep| keep.len() != probs) {
            bail!(
                "attention: the dropout mask does not match {:?}",
                self.shape
            );
        }
        Ok(())
    }

    /// Task `b·heads + h`: batch row `b`, and where its head `h` starts in a
    /// buffer of rows of `row` values (`hidden` for the context, `3·hidden`
    /// for the packed input, whose `q` part comes first).
    fn head_start(&self, task: usize, row: usize) -> (usize, usize) {
        let AttentionShape {
            seq,
            heads,
            head_dim,
            ..
        } = self.shape;
        let (b, h) = (task / heads, task % heads);
        (b, b * seq * row + h * head_dim)
    }

    /// One head's probabilities `p` `[seq, seq]` and context `ctx` `[seq, head_dim]`.
    fn forward_head(
        &self,
        task: usize,
        qkv: &[f32],
        p: &mut [f32],
        ctx: &mut [f32],
    ) -> candle_core::Result<()> {
        let AttentionShape {
            seq,
            heads,
            head_dim,
            ..
        } = self.shape;
        let (hidden, row) = (heads * head_dim, 3 * heads * head_dim);
        let (b, at) = self.head_start(task, row);
        let mut scores = vec![0f32; seq * seq];
        let (qh, kh_t) = ((&qkv[at..], row, 1), (&qkv[at + hidden..], 1, row));
        matmul((seq, seq, head_dim), &mut scores, false, qh, kh_t, false)?;
        let mask = &self.mask[b * seq..(b + 1) * seq];
        for (s_row, p_row) in scores.chunks_exact(seq).zip(p.chunks_exact_mut(seq)) {
            rows::softmax(s_row, Some(mask), self.scale, p_row);
        }
        let dropped: &[f32] = match &self.keep {
            Some(keep) => {
                rows::combine(
                    p,
                    Some(&keep[task * seq * seq..][..seq * seq]),
                    None,
                    &mut scores,
                );
                &scores
            }
            None => p,
        };
        let vh = (&qkv[at + 2 * hidden..], row, 1);
        matmul(
            (seq, head_dim, seq),
            ctx,
            false,
            (dropped, seq, 1),
            vh,
            false,
        )
    }

    /// One head's `dq`, `dk`, `dv` (each `[seq, head_dim]`).
    fn backward_head(
        &self,
        task: usize,
        saved: &Saved,
        (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    ) -> candle_core::Result<()> {
        let AttentionShape {
            seq,
            heads,
            head_dim,
            ..
        } = self.shape;
        let (hidden, sq) = (heads * head_dim, seq * seq);
        let row = 3 * hidden;
        let (_, at) = self.head_start(task, hidden);
        let (_, at_in) = self.head_start(task, row);
        let p = &saved.probs[task * sq..][..sq];
        let keep = self.keep.as_ref().map(|keep| &keep[task * sq..][..sq]);
        let (mut a, mut g) = (vec![0f32; sq], vec![0f32; sq]);
        let dctx = (&saved.dctx[at..], hidden, 1);
        // dv = dropped(p)ᵀ · dctx; g = dctx · vᵀ, the gradient of dropped(p).
        let dropped: &[f32] = match keep {
            Some(keep) => {
                rows::combine(p, Some(keep), None, &mut a);
                &a
            }
            None => p,
        };
        matmul(
            (seq, head_dim, seq),
            dv,
            false,
            (dropped, 1, seq),
            dctx,
            false,
        )?;
        let vh_t = (&saved.qkv[at_in + 2 * hidden..], 1, row);
        matmul((seq, seq, head_dim), &mut g, false, dctx, vh_t, false)?;
        // Through dropout, then the softmax: ds = scale · p ⊙ (dp − Σ dp⊙p).
        let (dp, ds) = match keep {
            Some(keep) => {
                rows::combine(&g, Some(keep), None, &mut a);
                (&a, &mut g)
            }
            None => (&g, &mut a),
        };
        let row_pairs = p.chunks_exact(seq).zip(dp.chunks_exact(seq));
        for ((p_row, dp_row), ds_row) in row_pairs.zip(ds.chunks_exact_mut(seq)) {
            rows::softmax_bwd(p_row, dp_row, self.scale, ds_row);
        }
        // dq = ds · k; dk = dsᵀ · q.
        let (kh, qh) = (
            (&saved.qkv[at_in + hidden..], row, 1),
            (&saved.qkv[at_in..], row, 1),
        );
        matmul((seq, head_dim, seq), dq, false, (ds, seq, 1), kh, false)?;
        matmul((seq, head_dim, seq), dk, false, (ds, 1, seq), qh, false)
    }

    /// `[batch, heads, seq, head_dim]` blocks → the columns `offset..offset +
    /// hidden` of `out`'s rows of `row` values.
    fn merge_heads(&self, per_head: &[f32], out: &mut [f32], row: usize, offset: usize) {
        let AttentionShape {
            seq,
            heads,
            head_dim,
            ..
        } = self.shape;
        let hidden = heads * head_dim;
        out.par_chunks_mut(seq * row)
            .enumerate()
            .for_each(|(b, block)| {
                for (i, out_row) in block.chunks_exact_mut(row).enumerate() {
                    let part = &mut out_row[offset..offset + hidden];
                    for (h, dst) in part.chunks_exact_mut(head_dim).enumerate() {
                        let at = ((b * heads + h) * seq + i) * head_dim;
                        dst.copy_from_slice(&per_head[at..at + head_dim]);
                    }
                }
            });
    }

    fn head_sizes(&self) -> (usize, usize) {
        let AttentionShape { seq, head_dim, .. } = self.shape;
        (seq * seq, seq * head_dim)
    }
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = host(s, l)?;
        self.check(qkv)?;
        let AttentionShape {
            batch,
            seq,
            heads,
            head_dim,
        } = self.shape;
        let (sq, sd) = self.head_sizes();
        let mut probs = vec![0f32; batch * heads * sq];
        let mut per_head = vec![0f32; batch * heads * sd];
        probs
            .par_chunks_mut(sq.max(1))
            .zip(per_head.par_chunks_mut(sd.max(1)))
            .enumerate()
            .try_for_each(|(task, (p, ctx))| self.forward_head(task, qkv, p, ctx))?;
        let probs = Tensor::from_vec(probs, (batch, heads, seq, seq), &Device::Cpu)?;
        if self.probs.set(probs).is_err() {
            bail!("attention: the op ran twice");
        }
        let hidden = heads * head_dim;
        let mut context = vec![0f32; batch * seq * hidden];
        self.merge_heads(&per_head, &mut context, hidden, 0);
        Ok((CpuStorage::F32(context), Shape::from((batch * seq, hidden))))
    }

    fn bwd(
        &self,
        qkv: &Tensor,
        _ctx: &Tensor,
        dctx: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(probs) = self.probs.get() else {
            bail!("attention: backward before forward")
        };
        let dctx = dctx.contiguous()?;
        let held = [qkv, &dctx, probs].map(Held::of);
        let saved = Saved {
            qkv: held[0].values()?,
            dctx: held[1].values()?,
            probs: held[2].values()?,
        };
        let n = saved.dctx.len();
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let sd = self.head_sizes().1.max(1);
        dq.par_chunks_mut(sd)
            .zip(dk.par_chunks_mut(sd))
            .zip(dv.par_chunks_mut(sd))
            .enumerate()
            .try_for_each(|(task, ((dq, dk), dv))| {
                self.backward_head(task, &saved, (dq, dk, dv))
            })?;
        let hidden = self.shape.heads * self.shape.head_dim;
        let mut dqkv = vec![0f32; 3 * n];
        for (i, part) in [dq, dk, dv].iter().enumerate() {
            self.merge_heads(part, &mut dqkv, 3 * hidden, i * hidden);
        }
        Ok(Some(tensor_like(dqkv, qkv)?))
    }
}
