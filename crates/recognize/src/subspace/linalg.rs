//! The linear-algebra plumbing of the subspace recognizers: how many
//! threads faer may use, and the matrix product every training step uses.
//!
//! Invariant: faer's parallelism follows rayon's global pool, so
//! `RAYON_NUM_THREADS=1` makes the whole crate single-threaded.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// faer parallelism that follows rayon's global pool.
fn faer_par() -> Par {
    let threads = rayon::current_num_threads();
    if threads <= 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    }
}

/// The new matrix `alpha * lhs * rhs`.
pub(super) fn product(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, alpha: f64) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, alpha, faer_par());
    out
}
