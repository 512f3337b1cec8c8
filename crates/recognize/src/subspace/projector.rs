//! How a subspace model projects a face, q = (x - mu) W, with W (D x K)
//! built by both algorithms from the centred training samples A (N x D) as
//! W = A^T C, C a small N x K matrix (Gram-matrix PCA).
//!
//! W itself is D x K f64: 16 MB for 200 ORL faces, read from memory on
//! every prediction. When N < D the model keeps instead the 8-bit training
//! pixels (N x D bytes) and C ([`Projector::Gram`]), and projects with
//! q = C^T g, g_j = (x - mu).(x_j - mu) = x.x_j - x.mu - mu.x_j + mu.mu,
//! where x.x_j is an exact integer dot product: a tenth of the memory
//! traffic. Otherwise (Fisherfaces, Eigenfaces with few components) W is
//! kept in column panels streamed by a tight kernel
//! ([`Projector::Dense`], [`super::panel_matrix`]).
//!
//! Invariant: both forms give the same projection to about 1e-13
//! relative; components whose eigenvalue is zero up to rounding, whose
//! direction is rounding noise that the Gram form would amplify, are always
//! kept as explicit columns of W.

use faer::Mat;
use ocellus_imaging::Image;

use super::panel_matrix::PanelMatrix;

/// The projection (x - mu) W, explicit or through the training samples.
#[derive(Clone, Debug)]
pub(crate) enum Projector {
    /// W itself, D x K, laid out for the product.
    Dense(PanelMatrix),
    /// W = A^T C, kept as the training pixels and C (see the module docs).
    Gram(GramProjector),
}

/// W = A^T C through the training pixels, for the leading components; the
/// trailing components whose eigenvalue is zero up to rounding (their
/// direction is rounding noise, which the Gram form would amplify) are kept
/// as explicit columns of W.
#[derive(Clone, Debug)]
pub(crate) struct GramProjector {
    /// Training pixels, N rows of D bytes.
    pub pixels: Vec<u8>,
    /// C, N x K1 (the leading K1 components).
    pub coeffs: Mat<f64>,
    /// The last K - K1 columns of W, D x (K - K1).
    pub tail: PanelMatrix,
    /// mu . x_j for every training sample.
    pub mean_dot: Vec<f64>,
    /// mu . mu.
    pub mean_sq: f64,
}

/// Exact dot product of two byte vectors.
fn dot_u8(a: &[u8], b: &[u8]) -> u64 {
    // Blocks of 32768 keep the u32 partial sums below 2^31.
    a.chunks(32768)
        .zip(b.chunks(32768))
        .map(|(x, y)| {
            // i16 operands let the compiler use 16-bit multiply-add.
            let s: i32 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| i32::from(i16::from(p)) * i32::from(i16::from(q)))
                .sum();
            s as u64
        })
        .sum()
}

fn dot_f64_u8(a: &[f64], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(&m, &p)| m * f64::from(p)).sum()
}

impl GramProjector {
    /// Builds the projector from the training faces (N x D pixels), the mean
    /// and C.
    pub fn new(
        pixels: Vec<u8>,
        d: usize,
        mean: &[f64],
        coeffs: Mat<f64>,
        tail: PanelMatrix,
    ) -> Self {
        let mean_dot = pixels
            .chunks_exact(d.max(1))
            .map(|x| dot_f64_u8(mean, x))
            .collect();
        let mean_sq = mean.iter().map(|m| m * m).sum();
        GramProjector {
            pixels,
            coeffs,
            tail,
            mean_dot,
            mean_sq,
        }
    }

    fn project(&self, x: &[u8], mean: &[f64]) -> Vec<f64> {
        let d = x.len();
        let x_mean = dot_f64_u8(mean, x);
        let g: Vec<f64> = self
            .pixels
            .chunks_exact(d.max(1))
            .zip(&self.mean_dot)
            .map(|(train, &md)| dot_u8(x, train) as f64 - x_mean - md + self.mean_sq)
            .collect();
        let mut q: Vec<f64> = (0..self.coeffs.ncols())
            .map(|c| {
                let col = self.coeffs.col(c);
                let mut sum = 0.0;
                for (j, &gj) in g.iter().enumerate() {
                    sum += col[j] * gj;
                }
                sum
            })
            .collect();
        if self.tail.cols() > 0 {
            q.extend(self.tail.project(x, mean));
        }
        q
    }
}

impl Projector {
    /// The projector for a trained model: Gram form when the PCA went
    /// through the Gram matrix (N < D) and reading N x D bytes is cheaper
    /// than D x K f64 (N <= 2K: Eigenfaces with many components), else W.
    /// `gram_columns` is how many leading components may use the Gram form
    /// (the others have a zero eigenvalue and stay explicit).
    pub fn choose(
        faces: &[Image],
        mean: &[f64],
        basis: Mat<f64>,
        gram_coeffs: Option<Mat<f64>>,
        gram_columns: usize,
    ) -> Projector {
        match gram_coeffs {
            Some(coeffs) if gram_columns > 0 && coeffs.nrows() <= 2 * coeffs.ncols() => {
                let d = mean.len();
                let k = coeffs.ncols();
                let k1 = gram_columns.min(k);
                let mut pixels = Vec::with_capacity(faces.len() * d);
                for f in faces {
                    pixels.extend_from_slice(f.as_bytes());
                }
                let lead = Mat::from_fn(coeffs.nrows(), k1, |i, j| coeffs[(i, j)]);
                let tail = PanelMatrix::from_fn(d, k - k1, |i, j| basis[(i, k1 + j)]);
                Projector::Gram(GramProjector::new(pixels, d, mean, lead, tail))
            }
            _ => Projector::Dense(PanelMatrix::from_fn(
                basis.nrows(),
                basis.ncols(),
                |i, j| basis[(i, j)],
            )),
        }
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        match self {
            Projector::Dense(w) => w.cols(),
            Projector::Gram(g) => g.coeffs.ncols() + g.tail.cols(),
        }
    }

    /// (x - mu) W for the 8-bit pixels x of one face.
    #[inline]
    pub fn project(&self, pixels: &[u8], mean: &[f64]) -> Vec<f64> {
        match self {
            Projector::Dense(w) => w.project(pixels, mean),
            Projector::Gram(g) => g.project(pixels, mean),
        }
    }
}

/// Number of leading eigenvalues that are not zero up to rounding
/// (above 1e-9 of the largest).
pub(super) fn well_conditioned(eigenvalues: &[f64]) -> usize {
    let largest = eigenvalues.first().copied().unwrap_or(0.0);
    eigenvalues
        .iter()
        .take_while(|&&v| v > 1e-9 * largest)
        .count()
}
