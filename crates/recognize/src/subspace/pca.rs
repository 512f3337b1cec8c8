//! Principal component analysis as OpenCV's `cv::PCA` does it for face
//! images (spec section 2): mean, then the eigen-decomposition of the small
//! N x N Gram matrix (1/N) A A^T of the centred samples, mapped back to pixel
//! space and normalised.

use faer::{Mat, MatRef, Side};

use super::linalg::product;
use crate::RecognizeError;

/// A fitted PCA: the mean sample and the kept principal axes.
pub(crate) struct Pca {
    /// Mean of the samples (length D).
    pub mean: Vec<f64>,
    /// Eigenvalues of the covariance, decreasing (length K).
    pub eigenvalues: Vec<f64>,
    /// Principal axes as unit columns (D x K).
    pub basis: Mat<f64>,
    /// When the Gram path was used: C (N x K) with basis = A^T C, A the
    /// centred samples (C = Gram eigenvectors divided by the column norms).
    pub gram_coeffs: Option<Mat<f64>>,
}

/// Mean of the rows of `data`.
pub(crate) fn row_mean(data: MatRef<'_, f64>) -> Vec<f64> {
    let n = data.nrows();
    let scale = 1.0 / n as f64;
    (0..data.ncols())
        .map(|j| {
            let col = data.col(j);
            let mut sum = 0.0;
            for i in 0..n {
                sum += col[i];
            }
            sum * scale
        })
        .collect()
}

/// `data` (N x D) with `mean` subtracted from every row.
pub(crate) fn centred(data: MatRef<'_, f64>, mean: &[f64]) -> Mat<f64> {
    Mat::from_fn(data.nrows(), data.ncols(), |i, j| data[(i, j)] - mean[j])
}

/// Symmetric eigen-decomposition, eigenvalues sorted decreasing, the first
/// `keep` pairs returned as (values, vectors as columns).
fn top_symmetric_eigen(
    matrix: MatRef<'_, f64>,
    keep: usize,
) -> Result<(Vec<f64>, Mat<f64>), RecognizeError> {
    let evd = matrix
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| RecognizeError::Numerical(format!("symmetric eigen-solver: {e:?}")))?;
    let values = evd.S().column_vector();
    let vectors = evd.U();
    let n = matrix.nrows();
    // faer sorts increasing; OpenCV's Jacobi result is sorted decreasing.
    let order: Vec<usize> = (0..n).rev().take(keep).collect();
    let eigenvalues = order.iter().map(|&i| values[i]).collect();
    let basis = Mat::from_fn(n, order.len(), |r, c| vectors[(r, order[c])]);
    Ok((eigenvalues, basis))
}

/// Fits a PCA with `components` axes to the rows of `data` (N x D).
/// `components` must be in 1..=min(N, D) when D <= N, and in 1..=N otherwise.
pub(crate) fn fit(data: MatRef<'_, f64>, components: usize) -> Result<Pca, RecognizeError> {
    let n = data.nrows();
    let d = data.ncols();
    let mean = row_mean(data);
    let a = centred(data, &mean);
    if d <= n {
        // Small samples: the D x D covariance directly.
        let keep = components.min(d);
        let cov = product(a.transpose(), a.as_ref(), 1.0 / n as f64);
        let (eigenvalues, basis) = top_symmetric_eigen(cov.as_ref(), keep)?;
        return Ok(Pca {
            mean,
            eigenvalues,
            basis,
            gram_coeffs: None,
        });
    }
    let keep = components.min(n);
    let gram = product(a.as_ref(), a.transpose(), 1.0 / n as f64);
    let (eigenvalues, small) = top_symmetric_eigen(gram.as_ref(), keep)?;
    // u_i = A^T v_i, then unit length.
    let mut basis = product(a.transpose(), small.as_ref(), 1.0);
    let mut coeffs = small;
    for c in 0..keep {
        let mut col = basis.col_mut(c);
        let norm = col.norm_l2();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            for i in 0..d {
                col[i] *= inv;
            }
            for i in 0..n {
                coeffs[(i, c)] *= inv;
            }
        }
    }
    Ok(Pca {
        mean,
        eigenvalues,
        basis,
        gram_coeffs: Some(coeffs),
    })
}

/// Projects the rows of `data` (N x D) onto `basis` (D x K) after subtracting
/// `mean`: returns the N x K matrix (X - mu) W.
pub(crate) fn project_rows(
    data: MatRef<'_, f64>,
    mean: &[f64],
    basis: MatRef<'_, f64>,
) -> Mat<f64> {
    let a = centred(data, mean);
    product(a.as_ref(), basis, 1.0)
}
