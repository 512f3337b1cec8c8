//! Eigenvalues and eigenvectors of a real, non-symmetric square matrix, with
//! the eigenvector scaling of the classic EISPACK / JAMA algorithm that
//! OpenCV's LDA uses (spec section 3).
//!
//! The steps:
//!
//! 1. reduction to upper Hessenberg form H = Q^T A Q by Householder
//!    reflections, accumulating the orthogonal Q;
//! 2. Francis double-shift QR iterations on H until it is in real Schur form
//!    (1 x 1 and 2 x 2 diagonal blocks), with the "exceptional" ad hoc shifts
//!    after 10 and 30 iterations without deflation; the transformations are
//!    accumulated into Q;
//! 3. back-substitution in the triangular Schur form, giving eigenvector k
//!    with coordinate 1 along Schur vector k and 0 along the later ones;
//! 4. back-transformation by Q.
//!
//! The eigenvectors are *not* normalised: each one's length depends on where
//! its eigenvalue sits on the diagonal of the Schur form. Fisherfaces must
//! keep exactly this scaling to give OpenCV's distances, which is why this
//! module exists instead of a library solver (they normalise).
//!
//! Written for this crate from the published algorithm (Wilkinson & Reinsch,
//! "Handbook for Automatic Computation" vol. II, procedures orthes and hqr2).

use thiserror::Error;

/// Why the decomposition failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RealEigenError {
    /// The matrix holds NaN or infinite values.
    #[error("matrix contains NaN or infinite values")]
    NotFinite,
    /// The slice length is not n * n.
    #[error("expected {expected} values for a square matrix, got {got}")]
    NotSquare {
        /// n * n.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// The QR iteration did not converge.
    #[error("QR iteration did not converge")]
    NoConvergence,
}

/// The result of [`decompose`].
#[derive(Clone, Debug)]
pub struct RealEigen {
    /// Order of the matrix.
    pub n: usize,
    /// Real parts of the eigenvalues, in Schur-form order.
    pub real: Vec<f64>,
    /// Imaginary parts (complex pairs appear as +im then -im).
    pub imag: Vec<f64>,
    /// Eigenvectors as columns of an n x n row-major matrix. For a complex
    /// pair at (k, k+1), column k holds the real part and column k+1 the
    /// imaginary part of the eigenvector of the first eigenvalue.
    pub vectors: Vec<f64>,
}

impl RealEigen {
    /// Element (row, col) of the eigenvector matrix.
    pub fn vector(&self, row: usize, col: usize) -> f64 {
        self.vectors[row * self.n + col]
    }
}

/// A square row-major matrix with (row, col) indexing.
struct Square {
    n: usize,
    data: Vec<f64>,
}

impl Square {
    fn identity(n: usize) -> Self {
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            data[i * n + i] = 1.0;
        }
        Square { n, data }
    }
}

impl std::ops::Index<(usize, usize)> for Square {
    type Output = f64;
    #[inline]
    fn index(&self, (r, c): (usize, usize)) -> &f64 {
        &self.data[r * self.n + c]
    }
}

impl std::ops::IndexMut<(usize, usize)> for Square {
    #[inline]
    fn index_mut(&mut self, (r, c): (usize, usize)) -> &mut f64 {
        &mut self.data[r * self.n + c]
    }
}

/// Decomposes the n x n row-major `matrix`.
pub fn decompose(matrix: &[f64], n: usize) -> Result<RealEigen, RealEigenError> {
    if matrix.len() != n * n {
        return Err(RealEigenError::NotSquare {
            expected: n * n,
            got: matrix.len(),
        });
    }
    if matrix.iter().any(|v| !v.is_finite()) {
        return Err(RealEigenError::NotFinite);
    }
    let mut h = Square {
        n,
        data: matrix.to_vec(),
    };
    let mut v = Square::identity(n);
    if n == 0 {
        return Ok(RealEigen {
            n,
            real: Vec::new(),
            imag: Vec::new(),
            vectors: Vec::new(),
        });
    }
    to_hessenberg(&mut h, &mut v);
    let mut real = vec![0.0; n];
    let mut imag = vec![0.0; n];
    schur_and_vectors(&mut h, &mut v, &mut real, &mut imag)?;
    Ok(RealEigen {
        n,
        real,
        imag,
        vectors: v.data,
    })
}

/// Step 1: Householder reduction of `h` to upper Hessenberg form; `v`
/// (identity on entry) receives the accumulated orthogonal transformation.
fn to_hessenberg(h: &mut Square, v: &mut Square) {
    let n = h.n;
    if n < 3 {
        return;
    }
    let high = n - 1;
    let mut ort = vec![0.0; n];
    for m in 1..high {
        // Scale column m-1 below the subdiagonal to avoid under/overflow.
        let scale: f64 = (m..=high).map(|i| h[(i, m - 1)].abs()).sum();
        if scale == 0.0 {
            continue;
        }
        let mut norm_sq = 0.0;
        for i in (m..=high).rev() {
            ort[i] = h[(i, m - 1)] / scale;
            norm_sq += ort[i] * ort[i];
        }
        let mut g = norm_sq.sqrt();
        if ort[m] > 0.0 {
            g = -g;
        }
        let hh = norm_sq - ort[m] * g;
        ort[m] -= g;
        // H <- (I - u u^T / hh) H (I - u u^T / hh), u = ort[m..=high].
        for j in m..n {
            let mut f = 0.0;
            for i in (m..=high).rev() {
                f += ort[i] * h[(i, j)];
            }
            f /= hh;
            for i in m..=high {
                h[(i, j)] -= f * ort[i];
            }
        }
        for i in 0..=high {
            let mut f = 0.0;
            for j in (m..=high).rev() {
                f += ort[j] * h[(i, j)];
            }
            f /= hh;
            for j in m..=high {
                h[(i, j)] -= f * ort[j];
            }
        }
        ort[m] *= scale;
        h[(m, m - 1)] = scale * g;
    }
    // Accumulate the reflections into v, last one first.
    for m in (1..high).rev() {
        if h[(m, m - 1)] == 0.0 {
            continue;
        }
        for i in m + 1..=high {
            ort[i] = h[(i, m - 1)];
        }
        for j in m..=high {
            let mut g = 0.0;
            for i in m..=high {
                g += ort[i] * v[(i, j)];
            }
            // Two divisions in a row avoid a possible underflow.
            g = (g / ort[m]) / h[(m, m - 1)];
            for i in m..=high {
                v[(i, j)] += g * ort[i];
            }
        }
    }
}

/// Complex division (xr + i xi) / (yr + i yi), scaled to avoid overflow.
fn complex_div(xr: f64, xi: f64, yr: f64, yi: f64) -> (f64, f64) {
    if yr.abs() > yi.abs() {
        let r = yi / yr;
        let d = yr + r * yi;
        ((xr + r * xi) / d, (xi - r * xr) / d)
    } else {
        let r = yr / yi;
        let d = yi + r * yr;
        ((r * xr + xi) / d, (r * xi - xr) / d)
    }
}

/// Steps 2-4: QR iterations to real Schur form, eigenvalues into
/// `real`/`imag`, eigenvectors by back-substitution, then back-transformed
/// into `v`.
fn schur_and_vectors(
    h: &mut Square,
    v: &mut Square,
    real: &mut [f64],
    imag: &mut [f64],
) -> Result<(), RealEigenError> {
    let nn = h.n;
    let low: isize = 0;
    let high: isize = nn as isize - 1;
    let eps = f64::EPSILON;
    let mut exshift = 0.0;
    let (mut p, mut q, mut r, mut s, mut z) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut t, mut w, mut x, mut y);

    // Norm of H (sum of absolute values in the Hessenberg band).
    let mut norm = 0.0;
    for i in 0..nn {
        for j in i.saturating_sub(1)..nn {
            norm += h[(i, j)].abs();
        }
    }

    let at = |i: isize, j: isize| (i as usize, j as usize);
    let mut n: isize = high;
    let mut iter = 0usize;
    let mut total_iter = 0usize;
    let max_total = 100 * nn.max(1) + 1000;
    while n >= low {
        // Find a negligible subdiagonal element.
        let mut l = n;
        while l > low {
            s = h[at(l - 1, l - 1)].abs() + h[at(l, l)].abs();
            if s == 0.0 {
                s = norm;
            }
            if h[at(l, l - 1)].abs() < eps * s {
                break;
            }
            l -= 1;
        }

        if l == n {
            // One real eigenvalue has converged.
            h[at(n, n)] += exshift;
            real[n as usize] = h[at(n, n)];
            imag[n as usize] = 0.0;
            n -= 1;
            iter = 0;
        } else if l == n - 1 {
            // A 2 x 2 block has converged.
            w = h[at(n, n - 1)] * h[at(n - 1, n)];
            p = (h[at(n - 1, n - 1)] - h[at(n, n)]) / 2.0;
            q = p * p + w;
            z = q.abs().sqrt();
            h[at(n, n)] += exshift;
            h[at(n - 1, n - 1)] += exshift;
            x = h[at(n, n)];
            if q >= 0.0 {
                // Two real eigenvalues: split the block with a rotation.
                z = if p >= 0.0 { p + z } else { p - z };
                real[(n - 1) as usize] = x + z;
                real[n as usize] = real[(n - 1) as usize];
                if z != 0.0 {
                    real[n as usize] = x - w / z;
                }
                imag[(n - 1) as usize] = 0.0;
                imag[n as usize] = 0.0;
                x = h[at(n, n - 1)];
                s = x.abs() + z.abs();
                p = x / s;
                q = z / s;
                r = (p * p + q * q).sqrt();
                p /= r;
                q /= r;
                for j in (n - 1) as usize..nn {
                    z = h[((n - 1) as usize, j)];
                    h[((n - 1) as usize, j)] = q * z + p * h[(n as usize, j)];
                    h[(n as usize, j)] = q * h[(n as usize, j)] - p * z;
                }
                for i in 0..=n as usize {
                    z = h[(i, (n - 1) as usize)];
                    h[(i, (n - 1) as usize)] = q * z + p * h[(i, n as usize)];
                    h[(i, n as usize)] = q * h[(i, n as usize)] - p * z;
                }
                for i in low as usize..=high as usize {
                    z = v[(i, (n - 1) as usize)];
                    v[(i, (n - 1) as usize)] = q * z + p * v[(i, n as usize)];
                    v[(i, n as usize)] = q * v[(i, n as usize)] - p * z;
                }
            } else {
                // A complex conjugate pair.
                real[(n - 1) as usize] = x + p;
                real[n as usize] = x + p;
                imag[(n - 1) as usize] = z;
                imag[n as usize] = -z;
            }
            n -= 2;
            iter = 0;
        } else {
            // No convergence yet: one double-shift QR step.
            x = h[at(n, n)];
            y = 0.0;
            w = 0.0;
            if l < n {
                y = h[at(n - 1, n - 1)];
                w = h[at(n, n - 1)] * h[at(n - 1, n)];
            }
            if iter == 10 {
                // Wilkinson's exceptional shift.
                exshift += x;
                for i in low..=n {
                    h[at(i, i)] -= x;
                }
                s = h[at(n, n - 1)].abs() + h[at(n - 1, n - 2)].abs();
                x = 0.75 * s;
                y = x;
                w = -0.4375 * s * s;
            }
            if iter == 30 {
                // The second exceptional shift (as in MATLAB / JAMA).
                s = (y - x) / 2.0;
                s = s * s + w;
                if s > 0.0 {
                    s = s.sqrt();
                    if y < x {
                        s = -s;
                    }
                    s = x - w / ((y - x) / 2.0 + s);
                    for i in low..=n {
                        h[at(i, i)] -= s;
                    }
                    exshift += s;
                    x = 0.964;
                    y = x;
                    w = x;
                }
            }
            iter += 1;
            total_iter += 1;
            if total_iter > max_total {
                return Err(RealEigenError::NoConvergence);
            }

            // Look for two consecutive small subdiagonal elements.
            let mut m = n - 2;
            while m >= l {
                z = h[at(m, m)];
                r = x - z;
                s = y - z;
                p = (r * s - w) / h[at(m + 1, m)] + h[at(m, m + 1)];
                q = h[at(m + 1, m + 1)] - z - r - s;
                r = h[at(m + 2, m + 1)];
                s = p.abs() + q.abs() + r.abs();
                p /= s;
                q /= s;
                r /= s;
                if m == l {
                    break;
                }
                if h[at(m, m - 1)].abs() * (q.abs() + r.abs())
                    < eps
                        * (p.abs()
                            * (h[at(m - 1, m - 1)].abs() + z.abs() + h[at(m + 1, m + 1)].abs()))
                {
                    break;
                }
                m -= 1;
            }
            for i in m + 2..=n {
                h[at(i, i - 2)] = 0.0;
                if i > m + 2 {
                    h[at(i, i - 3)] = 0.0;
                }
            }

            // Double QR step on rows l..=n and columns m..=n.
            let mut k = m;
            while k < n {
                let notlast = k != n - 1;
                if k != m {
                    p = h[at(k, k - 1)];
                    q = h[at(k + 1, k - 1)];
                    r = if notlast { h[at(k + 2, k - 1)] } else { 0.0 };
                    x = p.abs() + q.abs() + r.abs();
                    if x == 0.0 {
                        k += 1;
                        continue;
                    }
                    p /= x;
                    q /= x;
                    r /= x;
                }
                s = (p * p + q * q + r * r).sqrt();
                if p < 0.0 {
                    s = -s;
                }
                if s != 0.0 {
                    if k != m {
                        h[at(k, k - 1)] = -s * x;
                    } else if l != m {
                        h[at(k, k - 1)] = -h[at(k, k - 1)];
                    }
                    p += s;
                    x = p / s;
                    y = q / s;
                    z = r / s;
                    q /= p;
                    r /= p;
                    let (ku, k1, k2) = (k as usize, (k + 1) as usize, (k + 2) as usize);
                    // Row modification.
                    for j in ku..nn {
                        let mut pp = h[(ku, j)] + q * h[(k1, j)];
                        if notlast {
                            pp += r * h[(k2, j)];
                            h[(k2, j)] -= pp * z;
                        }
                        h[(ku, j)] -= pp * x;
                        h[(k1, j)] -= pp * y;
                        p = pp;
                    }
                    // Column modification.
                    let last = (n.min(k + 3)) as usize;
                    for i in 0..=last {
                        let mut pp = x * h[(i, ku)] + y * h[(i, k1)];
                        if notlast {
                            pp += z * h[(i, k2)];
                            h[(i, k2)] -= pp * r;
                        }
                        h[(i, ku)] -= pp;
                        h[(i, k1)] -= pp * q;
                        p = pp;
                    }
                    // Accumulate the transformation.
                    for i in low as usize..=high as usize {
                        let mut pp = x * v[(i, ku)] + y * v[(i, k1)];
                        if notlast {
                            pp += z * v[(i, k2)];
                            v[(i, k2)] -= pp * r;
                        }
                        v[(i, ku)] -= pp;
                        v[(i, k1)] -= pp * q;
                        p = pp;
                    }
                }
                k += 1;
            }
        }
    }

    // Back-substitution: eigenvectors of the quasi-triangular Schur form.
    if norm == 0.0 {
        return Ok(());
    }
    for n in (0..nn).rev() {
        p = real[n];
        q = imag[n];
        if q == 0.0 {
            // Real eigenvector: coordinate n is 1, later ones 0.
            let mut l = n;
            h[(n, n)] = 1.0;
            for i in (0..n).rev() {
                w = h[(i, i)] - p;
                r = 0.0;
                for j in l..=n {
                    r += h[(i, j)] * h[(j, n)];
                }
                if imag[i] < 0.0 {
                    z = w;
                    s = r;
                } else {
                    l = i;
                    if imag[i] == 0.0 {
                        h[(i, n)] = if w != 0.0 { -r / w } else { -r / (eps * norm) };
                    } else {
                        // Solve the 2 x 2 real system of a complex block.
                        x = h[(i, i + 1)];
                        y = h[(i + 1, i)];
                        q = (real[i] - p) * (real[i] - p) + imag[i] * imag[i];
                        t = (x * s - z * r) / q;
                        h[(i, n)] = t;
                        h[(i + 1, n)] = if x.abs() > z.abs() {
                            (-r - w * t) / x
                        } else {
                            (-s - y * t) / z
                        };
                    }
                    // Overflow control.
                    t = h[(i, n)].abs();
                    if (eps * t) * t > 1.0 {
                        for j in i..=n {
                            h[(j, n)] /= t;
                        }
                    }
                }
            }
        } else if q < 0.0 {
            // Complex eigenvector of the pair (n-1, n).
            let mut l = n - 1;
            if h[(n, n - 1)].abs() > h[(n - 1, n)].abs() {
                h[(n - 1, n - 1)] = q / h[(n, n - 1)];
                h[(n - 1, n)] = -(h[(n, n)] - p) / h[(n, n - 1)];
            } else {
                let (cr, ci) = complex_div(0.0, -h[(n - 1, n)], h[(n - 1, n - 1)] - p, q);
                h[(n - 1, n - 1)] = cr;
                h[(n - 1, n)] = ci;
            }
            h[(n, n - 1)] = 0.0;
            h[(n, n)] = 1.0;
            for i in (0..n.saturating_sub(1)).rev() {
                let mut ra = 0.0;
                let mut sa = 0.0;
                for j in l..=n {
                    ra += h[(i, j)] * h[(j, n - 1)];
                    sa += h[(i, j)] * h[(j, n)];
                }
                w = h[(i, i)] - p;
                if imag[i] < 0.0 {
                    z = w;
                    r = ra;
                    s = sa;
                } else {
                    l = i;
                    if imag[i] == 0.0 {
                        let (cr, ci) = complex_div(-ra, -sa, w, q);
                        h[(i, n - 1)] = cr;
                        h[(i, n)] = ci;
                    } else {
                        x = h[(i, i + 1)];
                        y = h[(i + 1, i)];
                        let mut vr = (real[i] - p) * (real[i] - p) + imag[i] * imag[i] - q * q;
                        let vi = (real[i] - p) * 2.0 * q;
                        if vr == 0.0 && vi == 0.0 {
                            vr = eps * norm * (w.abs() + q.abs() + x.abs() + y.abs() + z.abs());
                        }
                        let (cr, ci) =
                            complex_div(x * r - z * ra + q * sa, x * s - z * sa - q * ra, vr, vi);
                        h[(i, n - 1)] = cr;
                        h[(i, n)] = ci;
                        if x.abs() > z.abs() + q.abs() {
                            h[(i + 1, n - 1)] = (-ra - w * h[(i, n - 1)] + q * h[(i, n)]) / x;
                            h[(i + 1, n)] = (-sa - w * h[(i, n)] - q * h[(i, n - 1)]) / x;
                        } else {
                            let (cr, ci) =
                                complex_div(-r - y * h[(i, n - 1)], -s - y * h[(i, n)], z, q);
                            h[(i + 1, n - 1)] = cr;
                            h[(i + 1, n)] = ci;
                        }
                    }
                    // Overflow control.
                    t = h[(i, n - 1)].abs().max(h[(i, n)].abs());
                    if (eps * t) * t > 1.0 {
                        for j in i..=n {
                            h[(j, n - 1)] /= t;
                            h[(j, n)] /= t;
                        }
                    }
                }
            }
        }
    }

    // Back-transformation: eigenvectors of the original matrix, V * (Schur
    // eigenvectors), computed column by column from the last.
    for j in (0..nn).rev() {
        for i in 0..nn {
            let mut sum = 0.0;
            for k in 0..=j {
                sum += v[(i, k)] * h[(k, j)];
            }
            v[(i, j)] = sum;
        }
    }
    let _ = p;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residual(a: &[f64], n: usize, e: &RealEigen, k: usize) -> f64 {
        // |A v - lambda v| for a real eigenpair.
        let mut worst: f64 = 0.0;
        for i in 0..n {
            let mut av = 0.0;
            for j in 0..n {
                av += a[i * n + j] * e.vector(j, k);
            }
            worst = worst.max((av - e.real[k] * e.vector(i, k)).abs());
        }
        worst
    }

    #[test]
    fn diagonal_matrix_gives_its_diagonal() {
        let a = [3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0];
        let e = decompose(&a, 3).unwrap();
        let mut got = e.real.clone();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, vec![-1.0, 2.0, 3.0]);
        assert!(e.imag.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn nonsymmetric_real_eigenpairs_satisfy_a_v_equals_lambda_v() {
        // A matrix with known eigenvalues 1, 2, 3, 4 (similar to a diagonal).
        let n = 4;
        let a = [
            4.0, 1.0, -2.0, 0.5, 0.0, 3.0, 1.5, -1.0, 0.0, 0.0, 2.0, 0.25, 0.0, 0.0, 0.0, 1.0,
        ];
        // Conjugate by a fixed non-orthogonal matrix to make it dense.
        let s = [
            1.0, 0.2, 0.0, 0.1, 0.3, 1.0, 0.1, 0.0, 0.0, 0.4, 1.0, 0.2, 0.1, 0.0, 0.3, 1.0,
        ];
        let s_inv = invert(&s, n);
        let dense = mul(&mul(&s, &a, n), &s_inv, n);
        let e = decompose(&dense, n).unwrap();
        let mut got = e.real.clone();
        got.sort_by(f64::total_cmp);
        for (g, want) in got.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((g - want).abs() < 1e-10, "{got:?}");
        }
        for k in 0..n {
            assert!(residual(&dense, n, &e, k) < 1e-10);
        }
    }

    #[test]
    fn eigenvector_has_unit_coordinate_along_its_schur_vector() {
        // For an upper triangular matrix the Schur basis is the identity, so
        // eigenvector k has a 1 in row k and zeros below it.
        let a = [2.0, 1.0, 1.0, 0.0, 3.0, 1.0, 0.0, 0.0, 5.0];
        let e = decompose(&a, 3).unwrap();
        for k in 0..3 {
            assert_eq!(e.vector(k, k), 1.0);
            for row in k + 1..3 {
                assert_eq!(e.vector(row, k), 0.0);
            }
        }
    }

    #[test]
    fn rotation_gives_a_complex_pair() {
        let a = [0.0, -1.0, 1.0, 0.0];
        let e = decompose(&a, 2).unwrap();
        assert_eq!(e.real, vec![0.0, 0.0]);
        assert_eq!(e.imag, vec![1.0, -1.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            decompose(&[1.0, f64::NAN, 0.0, 1.0], 2).unwrap_err(),
            RealEigenError::NotFinite
        );
        assert!(matches!(
            decompose(&[1.0, 2.0, 3.0], 2),
            Err(RealEigenError::NotSquare { .. })
        ));
    }

    fn mul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                for k in 0..n {
                    out[i * n + j] += a[i * n + k] * b[k * n + j];
                }
            }
        }
        out
    }

    fn invert(a: &[f64], n: usize) -> Vec<f64> {
        // Gauss-Jordan, fine for a well-conditioned test matrix.
        let mut m = a.to_vec();
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            inv[i * n + i] = 1.0;
        }
        for c in 0..n {
            let piv = m[c * n + c];
            for j in 0..n {
                m[c * n + j] /= piv;
                inv[c * n + j] /= piv;
            }
            for r in 0..n {
                if r != c {
                    let f = m[r * n + c];
                    for j in 0..n {
                        m[r * n + j] -= f * m[c * n + j];
                        inv[r * n + j] -= f * inv[c * n + j];
                    }
                }
            }
        }
        inv
    }
}
