//! Exact nearest-neighbour search over a row-major matrix of unit vectors.

use std::cmp::Ordering;

/// A row index with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Row of the matrix.
    pub row: usize,
    /// Dot product with the query (cosine when both are unit length).
    pub score: f32,
}

/// Dot product written with independent accumulators so the compiler keeps several
/// SIMD lanes busy instead of one serial chain of adds.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let xs = a.chunks_exact(LANES);
    let ys = b.chunks_exact(LANES);
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in xs.zip(ys) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn by_score_desc(a: &Scored, b: &Scored) -> Ordering {
    b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal)
}

/// The `k` rows of `matrix` (rows of `dim` floats) with the highest dot product with
/// `query`, at least `min_score`, best first. NaN scores are never returned.
pub fn top_k(matrix: &[f32], dim: usize, query: &[f32], k: usize, min_score: f32) -> Vec<Scored> {
    if k == 0 || dim == 0 || query.len() != dim {
        return Vec::new();
    }
    let mut scored: Vec<Scored> = matrix
        .chunks_exact(dim)
        .enumerate()
        .filter_map(|(row, v)| {
            let score = dot(v, query);
            (score >= min_score).then_some(Scored { row, score })
        })
        .collect();
    if scored.len() > k {
        // Partition around the k-th best, then sort only the winners.
        scored.select_nth_unstable_by(k - 1, by_score_desc);
        scored.truncate(k);
    }
    scored.sort_by(by_score_desc);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_best_rows_in_order() {
        let dim = 3;
        let m = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.6, 0.8, 0.0, -1.0, 0.0, 0.0];
        let hits = top_k(&m, dim, &[1.0, 0.0, 0.0], 2, -1.0);
        assert_eq!(hits.iter().map(|h| h.row).collect::<Vec<_>>(), vec![0, 2]);
        let all = top_k(&m, dim, &[1.0, 0.0, 0.0], 10, -1.0);
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].row, 3);
        let filtered = top_k(&m, dim, &[1.0, 0.0, 0.0], 10, 0.5);
        assert_eq!(filtered.len(), 2);
        assert!(top_k(&m, dim, &[1.0, 0.0], 10, -1.0).is_empty());
    }

    #[test]
    fn dot_matches_naive_for_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn matches_full_sort_on_random_data() {
        let dim = 24;
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let m: Vec<f32> = (0..dim * 500).map(|_| next()).collect();
        let q: Vec<f32> = (0..dim).map(|_| next()).collect();
        let got = top_k(&m, dim, &q, 7, f32::MIN);
        let mut all: Vec<(usize, f32)> = m
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, r)| (i, r.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        let want: Vec<usize> = all[..7].iter().map(|x| x.0).collect();
        assert_eq!(got.iter().map(|s| s.row).collect::<Vec<_>>(), want);
    }
}
