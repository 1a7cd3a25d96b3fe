//! The dense layer `y = x·Wᵀ + b` of the encoder, the part that is nearly all of its
//! arithmetic, on explicit SIMD picked at run time (AVX-512, AVX2+FMA, or scalar through
//! `pulp`, without `unsafe` here).
//!
//! A query's few rows make every layer a stream through its weights (42 MB of `f32` for
//! MiniLM-L6), so the time is memory bandwidth, not arithmetic (profiled: the FMA loop
//! waits on its weight loads). On CPUs with AVX-512 the weights are therefore kept as
//! IEEE half floats and widened in registers (`vcvtph2ps`), which halves the bytes a
//! query reads; the products are still summed in `f32`. Rounding the weights to half
//! precision moves the embeddings by a cosine of about 1e-6 (checked against
//! sentence-transformers' vectors in the tests). Elsewhere the weights stay `f32`.
//!
//! Why not a general matmul: a caller's question is ten-odd tokens, so every layer is a
//! few rows against a large weight matrix. A general gemm repacks its operands and cuts
//! the work for threads on each call, which for so few rows costs as much as the
//! arithmetic. Here the weights are packed once, at load, into panels of
//! [`PANEL`] outputs laid out input by input, and the inner kernel keeps a tile of
//! `ROWS × 4` vector accumulators in registers while it streams a panel: every weight
//! is loaded once per tile of rows and used for `ROWS` fused multiply-adds.

use pulp::{Arch, Simd, WithSimd};

/// Outputs per packed panel: four AVX-512 vectors of `f32`.
pub(crate) const PANEL: usize = 64;
/// Rows (tokens) per register tile: 4 rows × 4 vectors = 16 accumulators, which fit the
/// AVX-512 register file with room for the weight vectors, and spill only a little on
/// AVX2's sixteen registers.
const ROWS: usize = 4;

/// A dense layer with weights packed for [`Dense::forward`].
pub(crate) struct Dense {
    inputs: usize,
    outputs: usize,
    /// `ceil(outputs / PANEL)` panels, each `[inputs][PANEL]`, zero past `outputs`.
    packed: Packed,
    bias: Vec<f32>,
}

/// The packed weights, in the precision the CPU's kernel reads.
enum Packed {
    /// Portable kernel (any `pulp` level).
    F32 { weights: Vec<f32>, arch: Arch },
    /// AVX-512 kernel: IEEE half floats, 16 per group.
    #[cfg(target_arch = "x86_64")]
    F16 {
        weights: Vec<[u16; 16]>,
        simd: pulp::x86::V4,
    },
}

impl Dense {
    /// Packs `weight` (`[outputs][inputs]` row-major, as PyTorch stores a `Linear`).
    ///
    /// # Panics
    ///
    /// Never on model data: the encoder checks the shapes and that no dimension is zero
    /// before packing; `weight.len()` must be `outputs * inputs` and `bias.len()`
    /// `outputs` (asserted, a programming error).
    pub(crate) fn new(weight: &[f32], bias: Vec<f32>, outputs: usize, inputs: usize) -> Self {
        Self::packed(weight, bias, outputs, inputs, true)
    }

    /// As [`Dense::new`]; `allow_half: false` keeps `f32` weights on every CPU.
    fn packed(
        weight: &[f32],
        bias: Vec<f32>,
        outputs: usize,
        inputs: usize,
        allow_half: bool,
    ) -> Self {
        assert_eq!(weight.len(), outputs * inputs, "weight shape");
        assert_eq!(bias.len(), outputs, "bias shape");
        let panels = outputs.div_ceil(PANEL);
        let mut packed = vec![0f32; panels * inputs * PANEL];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            let (p, lane) = (o / PANEL, o % PANEL);
            let panel = &mut packed[p * inputs * PANEL..(p + 1) * inputs * PANEL];
            for (i, w) in row.iter().enumerate() {
                panel[i * PANEL + lane] = *w;
            }
        }
        Self {
            inputs,
            outputs,
            packed: Packed::new(packed, allow_half),
            bias,
        }
    }

    /// Input width.
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output width.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `y = x·Wᵀ + b` for `rows` rows: `x` is `[rows][inputs]`, `y` `[rows][outputs]`.
    ///
    /// # Panics
    ///
    /// When the slice lengths do not match `rows` (a programming error).
    pub(crate) fn forward(&self, x: &[f32], rows: usize, y: &mut [f32]) {
        assert_eq!(x.len(), rows * self.inputs, "input shape");
        assert_eq!(y.len(), rows * self.outputs, "output shape");
        match &self.packed {
            Packed::F32 { weights, arch } => arch.dispatch(Forward {
                d: self,
                packed: weights,
                x,
                rows,
                y,
            }),
            #[cfg(target_arch = "x86_64")]
            Packed::F16 { weights, simd } => {
                let simd = *simd;
                simd.vectorize(|| half_kernel::forward(simd, self, weights, x, rows, y));
            }
        }
    }
}

impl Packed {
    /// Picks the kernel for this CPU: half-float weights where AVX-512 can widen them in
    /// registers, unless a weight is beyond half range (no BERT's is).
    fn new(weights: Vec<f32>, allow_half: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if allow_half
            && let Some(simd) = pulp::x86::V4::try_new()
            && weights.iter().all(|w| w.abs() < 60_000.0)
        {
            let weights = weights
                .chunks_exact(16)
                .map(|c| std::array::from_fn(|k| half::f16::from_f32(c[k]).to_bits()))
                .collect();
            return Self::F16 { weights, simd };
        }
        Self::F32 {
            weights,
            arch: Arch::new(),
        }
    }
}

/// Adds the bias and writes tile row `values` (outputs `o0..`) into row `r` of `y`,
/// cut at the layer's width (the last panel may be partly padding).
#[inline(always)]
fn store_row(d: &Dense, y: &mut [f32], r: usize, o0: usize, values: &[f32]) {
    let width = (d.outputs - o0).min(values.len());
    let dst = &mut y[r * d.outputs + o0..r * d.outputs + o0 + width];
    for ((dst, v), b) in dst.iter_mut().zip(values).zip(&d.bias[o0..o0 + width]) {
        *dst = v + b;
    }
}

struct Forward<'a> {
    d: &'a Dense,
    packed: &'a [f32],
    x: &'a [f32],
    rows: usize,
    y: &'a mut [f32],
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Forward {
            d,
            packed,
            x,
            rows,
            y,
        } = self;
        let lanes = S::F32_LANES;
        // Four vectors per step; a panel is 1 step on AVX-512, 2 on AVX2, 16 on scalar.
        let step = 4 * lanes;
        debug_assert!(PANEL.is_multiple_of(step));
        let panel_len = d.inputs * PANEL;
        for (p, panel) in packed.chunks_exact(panel_len).enumerate() {
            let (vectors, _) = S::as_simd_f32s(panel);
            for sub in (0..PANEL).step_by(step) {
                let o0 = p * PANEL + sub;
                if o0 >= d.outputs {
                    break;
                }
                let mut r = 0;
                while r + ROWS <= rows {
                    tile::<S, ROWS>(simd, d, x, r, vectors, sub / lanes, o0, y);
                    r += ROWS;
                }
                match rows - r {
                    3 => tile::<S, 3>(simd, d, x, r, vectors, sub / lanes, o0, y),
                    2 => tile::<S, 2>(simd, d, x, r, vectors, sub / lanes, o0, y),
                    1 => tile::<S, 1>(simd, d, x, r, vectors, sub / lanes, o0, y),
                    _ => {}
                }
            }
        }
    }
}

/// `R` rows starting at `r0` × four vectors of outputs starting at `o0` (vector `v0` of
/// each panel row), accumulated over every input.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the tile's coordinates; a struct would only rename them
fn tile<S: Simd, const R: usize>(
    simd: S,
    d: &Dense,
    x: &[f32],
    r0: usize,
    vectors: &[S::f32s],
    v0: usize,
    o0: usize,
    y: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let per_input = PANEL / lanes;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 4]; R];
    let xs: [&[f32]; R] = std::array::from_fn(|k| {
        let r = r0 + k;
        &x[r * d.inputs..(r + 1) * d.inputs]
    });
    for i in 0..d.inputs {
        let w = &vectors[i * per_input + v0..i * per_input + v0 + 4];
        for k in 0..R {
            let b = simd.splat_f32s(xs[k][i]);
            for v in 0..4 {
                acc[k][v] = simd.mul_add_f32s(w[v], b, acc[k][v]);
            }
        }
    }
    let mut buf = [0f32; PANEL];
    for (k, row_acc) in acc.iter().enumerate() {
        let (out, _) = S::as_mut_simd_f32s(&mut buf[..4 * lanes]);
        out.copy_from_slice(row_acc);
        store_row(d, y, r0 + k, o0, &buf[..4 * lanes]);
    }
}

/// The AVX-512 kernel over half-float weights: the same tiling as the portable one with
/// [`PANEL`] = four 16-lane vectors, each widened from 16 halves as it is loaded.
#[cfg(target_arch = "x86_64")]
mod half_kernel {
    use pulp::x86::V4;
    use pulp::{Simd, cast, f32x16};

    use super::{Dense, PANEL, store_row};

    /// Rows per tile: 6 rows × 4 vectors = 24 accumulators of AVX-512's 32 registers.
    const ROWS: usize = 6;
    /// 16-half groups per panel row.
    const GROUPS: usize = PANEL / 16;

    #[inline(always)]
    pub(super) fn forward(
        simd: V4,
        d: &Dense,
        packed: &[[u16; 16]],
        x: &[f32],
        rows: usize,
        y: &mut [f32],
    ) {
        for (p, panel) in packed.chunks_exact(d.inputs * GROUPS).enumerate() {
            let o0 = p * PANEL;
            let mut r = 0;
            while r + ROWS <= rows {
                tile::<ROWS>(simd, d, x, r, panel, o0, y);
                r += ROWS;
            }
            match rows - r {
                5 => tile::<5>(simd, d, x, r, panel, o0, y),
                4 => tile::<4>(simd, d, x, r, panel, o0, y),
                3 => tile::<3>(simd, d, x, r, panel, o0, y),
                2 => tile::<2>(simd, d, x, r, panel, o0, y),
                1 => tile::<1>(simd, d, x, r, panel, o0, y),
                _ => {}
            }
        }
    }

    #[inline(always)]
    fn tile<const R: usize>(
        simd: V4,
        d: &Dense,
        x: &[f32],
        r0: usize,
        panel: &[[u16; 16]],
        o0: usize,
        y: &mut [f32],
    ) {
        let zero = simd.splat_f32s(0.0);
        let mut acc = [[zero; GROUPS]; R];
        let xs: [&[f32]; R] = std::array::from_fn(|k| {
            let r = r0 + k;
            &x[r * d.inputs..(r + 1) * d.inputs]
        });
        for (i, groups) in panel.chunks_exact(GROUPS).enumerate() {
            let w: [f32x16; GROUPS] =
                std::array::from_fn(|v| cast!(simd.avx512f._mm512_cvtph_ps(cast!(groups[v]))));
            for k in 0..R {
                let b = simd.splat_f32s(xs[k][i]);
                for v in 0..GROUPS {
                    acc[k][v] = simd.mul_add_f32s(w[v], b, acc[k][v]);
                }
            }
        }
        for (k, row_acc) in acc.iter().enumerate() {
            let values: [f32; PANEL] = cast!(*row_acc);
            store_row(d, y, r0 + k, o0, &values);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Not;

    use super::*;

    /// The naive definition, in f64.
    fn reference(w: &[f32], b: &[f32], x: &[f32], rows: usize, o: usize, i: usize) -> Vec<f64> {
        let mut y = vec![0f64; rows * o];
        for r in 0..rows {
            for out in 0..o {
                let mut s = f64::from(b[out]);
                for inp in 0..i {
                    s += f64::from(w[out * i + inp]) * f64::from(x[r * i + inp]);
                }
                y[r * o + out] = s;
            }
        }
        y
    }

    /// Whether this CPU runs the half-float kernel.
    fn half_kernel() -> bool {
        matches!(
            Dense::new(&[0.0], vec![0.0], 1, 1).packed,
            Packed::F32 { .. }
        )
        .not()
    }

    #[test]
    fn portable_kernel_matches_the_definition_for_every_tail() {
        check(false, |w| w);
    }

    /// The portable kernel at each SIMD width this CPU can run, not only the widest one
    /// `Arch::dispatch` picks: other machines (AVX2-only, ARM) take the other paths.
    #[test]
    fn portable_kernel_is_right_at_every_simd_width() {
        type RunAt = Box<dyn Fn(Forward<'_>)>;
        let levels: Vec<(&str, RunAt)> = vec![
            (
                "scalar",
                Box::new(|op: Forward<'_>| op.with_simd(pulp::Scalar)),
            ),
            #[cfg(target_arch = "x86_64")]
            (
                "avx2",
                Box::new(|op: Forward<'_>| {
                    if let Some(v3) = pulp::x86::V3::try_new() {
                        pulp::Simd::vectorize(v3, op);
                    }
                }),
            ),
        ];
        for (name, run) in levels {
            #[cfg(target_arch = "x86_64")]
            if name == "avx2" && pulp::x86::V3::try_new().is_none() {
                continue;
            }
            for (o, i, rows) in [(130, 40, 7), (64, 8, 5), (7, 3, 1)] {
                let w: Vec<f32> = (0..o * i)
                    .map(|k| ((k * 37 % 101) as f32 - 50.0) / 37.0)
                    .collect();
                let b: Vec<f32> = (0..o).map(|k| k as f32 / 10.0).collect();
                let x: Vec<f32> = (0..rows * i)
                    .map(|k| ((k * 13 % 29) as f32 - 14.0) / 7.0)
                    .collect();
                let d = Dense::packed(&w, b.clone(), o, i, false);
                let Packed::F32 { weights, .. } = &d.packed else {
                    unreachable!("allow_half false packs f32");
                };
                let mut y = vec![f32::NAN; rows * o];
                run(Forward {
                    d: &d,
                    packed: weights,
                    x: &x,
                    rows,
                    y: &mut y,
                });
                let want = reference(&w, &b, &x, rows, o, i);
                for (k, (got, want)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-3,
                        "{name}: o {o} i {i} rows {rows} at {k}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn half_kernel_matches_the_definition_with_rounded_weights() {
        if !half_kernel() {
            eprintln!("no AVX-512 here: the half-float kernel is not used on this CPU");
            return;
        }
        // Exact against the same weights rounded to half precision: the only difference
        // the kernel may make is that rounding.
        check(true, |w| half::f16::from_f32(w).to_f32());
    }

    fn check(allow_half: bool, round: fn(f32) -> f32) {
        // Shapes that leave partial panels, partial 4-vector steps and every row tail.
        for (o, i) in [(64, 8), (100, 17), (7, 3), (130, 40)] {
            for rows in 0..=13 {
                let w: Vec<f32> = (0..o * i)
                    .map(|k| ((k * 37 % 101) as f32 - 50.0) / 37.0)
                    .collect();
                let b: Vec<f32> = (0..o).map(|k| k as f32 / 10.0).collect();
                let x: Vec<f32> = (0..rows * i)
                    .map(|k| ((k * 13 % 29) as f32 - 14.0) / 7.0)
                    .collect();
                let d = Dense::packed(&w, b.clone(), o, i, allow_half);
                let mut y = vec![f32::NAN; rows * o];
                d.forward(&x, rows, &mut y);
                let rounded: Vec<f32> = w.iter().map(|&v| round(v)).collect();
                let want = reference(&rounded, &b, &x, rows, o, i);
                for (k, (got, want)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-3,
                        "o {o} i {i} rows {rows} at {k}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
