//! The face-recognition ResNet (spec 2 and 3): 29 convolutions in 14
//! residual blocks, average pooling and a 256 -> 128 fc layer.
//!
//! Invariant: a [`FaceNet`] is immutable once parsed (`Send + Sync`, shared
//! by every worker); each face is computed on its own, so a batch gives
//! exactly the descriptors of single calls.

mod conv;
mod gemm;
mod layers;
mod model;

use rayon::prelude::*;

use crate::chip::{CHIP_SIZE, Chip};
use crate::serialize::ModelError;
use conv::{Epilogue, conv};
use layers::{
    Affine, Block, Conv, Planes, avg_pool_2x2_s2, max_pool_3x3_s2, mean_planes, padded_add_relu,
};
use model::{FEATURES, OUT};

/// A 128-d face descriptor, not normalised (L2 norms about 1.3-1.6).
pub type Descriptor = [f32; 128];

/// dlib's face-recognition network (`dlib_face_recognition_resnet_model_v1.dat`).
#[derive(Debug)]
pub struct FaceNet {
    /// Per-channel means subtracted from the chip's R, G, B.
    mean: [f32; 3],
    stem: Conv,
    stem_affine: Affine,
    blocks: Vec<Block>,
    /// fc weights, W[i][j] for input i and output j.
    fc: Vec<f32>,
    /// The matrix-product kernel this CPU runs (all give the same bits).
    isa: gemm::Isa,
}

impl FaceNet {
    /// Parses the model file (spec 2). The whole slice must be the model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        model::parse(bytes)
    }

    /// The descriptor of one chip, on the calling thread.
    pub fn descriptor(&self, chip: &Chip) -> Descriptor {
        let mut cols = Vec::new();
        self.forward(chip, &mut cols)
    }

    /// The descriptors of many chips, in order, spread over rayon's threads.
    pub fn descriptors(&self, chips: &[Chip]) -> Vec<Descriptor> {
        chips
            .par_iter()
            .map_init(Vec::new, |cols, chip| self.forward(chip, cols))
            .collect()
    }

    fn forward(&self, chip: &Chip, cols: &mut Vec<f32>) -> Descriptor {
        let isa = self.isa;
        let x = self.input(chip);
        let x = conv(
            isa,
            &self.stem,
            &x,
            Epilogue::AffineRelu(&self.stem_affine),
            cols,
        );
        let mut x = max_pool_3x3_s2(&x);
        for b in &self.blocks {
            let t = conv(isa, &b.conv1, &x, Epilogue::AffineRelu(&b.affine1), cols);
            x = if b.down {
                let f = conv(isa, &b.conv2, &t, Epilogue::Affine(&b.affine2), cols);
                padded_add_relu(&avg_pool_2x2_s2(&x), &f)
            } else {
                conv(
                    isa,
                    &b.conv2,
                    &t,
                    Epilogue::AffineAddRelu(&b.affine2, &x),
                    cols,
                )
            };
        }
        let v = mean_planes(&x);
        let mut out = [0f32; OUT];
        for (i, &vi) in v.iter().enumerate().take(FEATURES) {
            let w = &self.fc[i * OUT..(i + 1) * OUT];
            for (o, &wij) in out.iter_mut().zip(w) {
                *o += vi * wij;
            }
        }
        out
    }

    /// The chip as network input: (value - mean) / 256, planes R, G, B.
    fn input(&self, chip: &Chip) -> Planes {
        let n = CHIP_SIZE * CHIP_SIZE;
        let mut x = Planes::zeros(3, CHIP_SIZE, CHIP_SIZE);
        for (p, rgb) in chip.as_bytes().chunks_exact(3).enumerate() {
            for (ch, (&v, &m)) in rgb.iter().zip(&self.mean).enumerate() {
                x.data[ch * n + p] = (f32::from(v) - m) / 256.0;
            }
        }
        x
    }
}
