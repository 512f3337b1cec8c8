//! Linear discriminant analysis as OpenCV's `cv::LDA` computes it for
//! Fisherfaces (spec section 3, step 4): unweighted between-class scatter,
//! S_w inverted by LU, and the non-symmetric eigen-decomposition of
//! S_w^-1 S_b with unnormalised eigenvectors ([`super::real_eigen`]).

use faer::{Mat, MatRef};

use super::linalg::product;
use super::real_eigen;
use crate::{Label, RecognizeError};

/// The kept discriminant axes.
pub(crate) struct Lda {
    /// Real parts of the kept eigenvalues, decreasing.
    pub eigenvalues: Vec<f64>,
    /// Kept eigenvectors as columns (M x K), with the eigen-solver's scaling.
    pub vectors: Mat<f64>,
}

/// Inverse by LU with partial pivoting; all zeros when a pivot is exactly
/// zero (what OpenCV's `Mat::inv()` returns for a singular matrix).
fn lu_inverse(matrix: MatRef<'_, f64>) -> Mat<f64> {
    use faer::linalg::solvers::DenseSolveCore;
    let m = matrix.nrows();
    let lu = matrix.partial_piv_lu();
    let u = lu.U();
    if (0..m).any(|i| u[(i, i)] == 0.0) {
        return Mat::zeros(m, m);
    }
    lu.inverse()
}

/// Fits the LDA on the rows of `data` (N x M) with their `labels`, keeping
/// `components` axes (must be >= 1).
pub(crate) fn fit(
    data: MatRef<'_, f64>,
    labels: &[Label],
    classes: &[Label],
    components: usize,
) -> Result<Lda, RecognizeError> {
    let n = data.nrows();
    let m = data.ncols();
    let c = classes.len();
    let class_of: Vec<usize> = labels
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0))
        .collect();

    // Class means and the total mean (sums scaled by the reciprocal count).
    let mut total = vec![0.0; m];
    let mut class_sum = vec![vec![0.0; m]; c];
    let mut class_count = vec![0usize; c];
    for i in 0..n {
        let k = class_of[i];
        class_count[k] += 1;
        for j in 0..m {
            let v = data[(i, j)];
            total[j] += v;
            class_sum[k][j] += v;
        }
    }
    let inv_n = 1.0 / n as f64;
    for t in &mut total {
        *t *= inv_n;
    }
    for (sum, &count) in class_sum.iter_mut().zip(&class_count) {
        let inv = 1.0 / count.max(1) as f64;
        for v in sum.iter_mut() {
            *v *= inv;
        }
    }

    // S_b = B^T B, B = class means minus total mean (one row per class).
    let between = Mat::from_fn(c, m, |k, j| class_sum[k][j] - total[j]);
    // S_w = Z^T Z, Z = samples minus their class mean.
    let within = Mat::from_fn(n, m, |i, j| data[(i, j)] - class_sum[class_of[i]][j]);
    let sb = product(between.transpose(), between.as_ref(), 1.0);
    let sw = product(within.transpose(), within.as_ref(), 1.0);
    let sw_inv = lu_inverse(sw.as_ref());
    let sw_inv_sb = product(sw_inv.as_ref(), sb.as_ref(), 1.0);

    let row_major: Vec<f64> = (0..m * m)
        .map(|idx| sw_inv_sb[(idx / m, idx % m)])
        .collect();
    let eig = real_eigen::decompose(&row_major, m)
        .map_err(|e| RecognizeError::Numerical(format!("LDA eigen-decomposition: {e}")))?;

    // Decreasing real part; stable, so equal values keep solver order.
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| eig.real[b].total_cmp(&eig.real[a]));
    let keep = components.min(m);
    order.truncate(keep);
    let eigenvalues = order.iter().map(|&k| eig.real[k]).collect();
    let vectors = Mat::from_fn(m, keep, |r, col| eig.vector(r, order[col]));
    Ok(Lda {
        eigenvalues,
        vectors,
    })
}
