//! Reading `dlib_face_recognition_resnet_model_v1.dat` (spec 2): the
//! architecture is fixed here and the file must match it record by record.
//!
//! Invariant: a parsed [`FaceNet`] has exactly the spec's layer list with
//! every parameter array of the size its layer needs, so the forward pass
//! indexes without checks failing.

use crate::serialize::{ModelError, ModelFile, Reader};

use super::FaceNet;
use super::layers::{Affine, Block, Conv};

/// Chip side the network is built for (spec 2.1, the input record).
const INPUT_SIDE: u64 = 150;
/// Descriptor length and the width of the last block (spec 2.2, fc_2).
pub(crate) const OUT: usize = 128;
pub(crate) const FEATURES: usize = 256;

/// One layer of the architecture, in data-flow order (spec 2.3).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layer {
    Con {
        filters: usize,
        inputs: usize,
        size: usize,
        stride: usize,
        pad: usize,
    },
    Affine(usize),
    Relu,
    MaxPool,
    AvgPool,
    AvgAll,
    AddPrev,
    Fc,
    Tag,
    Skip,
}

/// The residual blocks after the stem: (filters, input channels, down).
const BLOCKS: [(usize, usize, bool); 14] = [
    (32, 32, false),
    (32, 32, false),
    (32, 32, false),
    (64, 32, true),
    (64, 64, false),
    (64, 64, false),
    (64, 64, false),
    (128, 64, true),
    (128, 128, false),
    (128, 128, false),
    (256, 128, true),
    (256, 256, false),
    (256, 256, false),
    (256, 256, true),
];

fn con(filters: usize, inputs: usize, size: usize, stride: usize, pad: usize) -> Layer {
    Layer::Con {
        filters,
        inputs,
        size,
        stride,
        pad,
    }
}

/// The 130 layers between the input and the loss, input side first.
fn architecture() -> Vec<Layer> {
    let mut l = vec![
        con(32, 3, 7, 2, 0),
        Layer::Affine(32),
        Layer::Relu,
        Layer::MaxPool,
    ];
    for (n, k, down) in BLOCKS {
        if down {
            l.extend([
                Layer::Tag,
                con(n, k, 3, 2, 0),
                Layer::Affine(n),
                Layer::Relu,
                con(n, n, 3, 1, 1),
                Layer::Affine(n),
                Layer::Tag,
                Layer::Skip,
                Layer::AvgPool,
                Layer::AddPrev,
                Layer::Relu,
            ]);
        } else {
            l.extend([
                Layer::Tag,
                con(n, k, 3, 1, 1),
                Layer::Affine(n),
                Layer::Relu,
                con(n, n, 3, 1, 1),
                Layer::Affine(n),
                Layer::AddPrev,
                Layer::Relu,
            ]);
        }
    }
    l.extend([Layer::AvgAll, Layer::Fc]);
    l
}

/// A parsed layer with parameters.
enum Params {
    Con(Conv),
    Affine(Affine),
    Fc(Vec<f32>),
    None,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<FaceNet, ModelError> {
    let arch = architecture();
    let mut r = Reader::new(bytes, ModelFile::Resnet);
    r.expect_u64(1, "loss wrapper version")?;
    r.expect_string("loss_metric_2", "loss layer")?;
    r.finite_f32("loss margin")?;
    r.finite_f32("loss distance threshold")?;
    // Wrapper versions of layers 1..130 (loss side first).
    for (i, layer) in arch.iter().rev().enumerate() {
        let expected = match layer {
            Layer::Tag | Layer::Skip => 1,
            _ if i == arch.len() - 1 => 3,
            _ => 2,
        };
        r.expect_u64(expected, "layer wrapper version")?;
    }
    r.expect_string("input_rgb_image_sized", "input layer")?;
    let mean = [
        r.finite_f32("avg_red")?,
        r.finite_f32("avg_green")?,
        r.finite_f32("avg_blue")?,
    ];
    r.expect_u64(INPUT_SIDE, "input rows")?;
    r.expect_u64(INPUT_SIDE, "input columns")?;

    let mut params = Vec::new();
    let mut first = true;
    for layer in &arch {
        let p = match *layer {
            Layer::Tag | Layer::Skip => continue,
            Layer::Con {
                filters,
                inputs,
                size,
                stride,
                pad,
            } => Params::Con(conv_record(&mut r, filters, inputs, size, stride, pad)?),
            Layer::Affine(c) => Params::Affine(affine_record(&mut r, c)?),
            Layer::Relu => {
                r.expect_string("relu_", "relu layer")?;
                Params::None
            }
            Layer::MaxPool => {
                r.expect_string("max_pool_2", "max_pool layer")?;
                pool_fields(&mut r, [3, 3, 2, 2, 0, 0])?;
                Params::None
            }
            Layer::AvgPool => {
                r.expect_string("avg_pool_2", "avg_pool layer")?;
                pool_fields(&mut r, [2, 2, 2, 2, 0, 0])?;
                Params::None
            }
            Layer::AvgAll => {
                r.expect_string("avg_pool_2", "avg_pool_everything layer")?;
                pool_fields(&mut r, [0, 0, 1, 1, 0, 0])?;
                Params::None
            }
            Layer::AddPrev => {
                r.expect_string("add_prev_", "add_prev layer")?;
                Params::None
            }
            Layer::Fc => Params::Fc(fc_record(&mut r)?),
        };
        // Trailer: 3 bools, 3 empty tensors; the layer on the input adds the
        // sample expansion factor.
        for _ in 0..3 {
            r.bool("layer flag")?;
        }
        for _ in 0..3 {
            r.empty_tensor("layer state tensor")?;
        }
        if first {
            r.expect_u64(1, "sample expansion factor")?;
            first = false;
        }
        params.push(p);
    }
    r.finish()?;
    assemble(mean, params).ok_or_else(|| r.unexpected("layer list", "inconsistent", "the spec's"))
}

fn conv_record(
    r: &mut Reader<'_>,
    filters: usize,
    inputs: usize,
    size: usize,
    stride: usize,
    pad: usize,
) -> Result<Conv, ModelError> {
    r.expect_string("con_4", "con layer")?;
    let n_weights = filters * inputs * size * size;
    let t = r.tensor("con parameters")?;
    if t.dims != [n_weights + filters, 1, 1, 1] {
        return Err(r.unexpected(
            "con parameter shape",
            format!("{:?}", t.dims),
            format!("[{}, 1, 1, 1]", n_weights + filters),
        ));
    }
    for (v, what) in [
        (filters, "con filters"),
        (size, "con rows"),
        (size, "con columns"),
        (stride, "con stride y"),
        (stride, "con stride x"),
        (pad, "con pad y"),
        (pad, "con pad x"),
    ] {
        r.expect_signed(v as i64, what)?;
    }
    r.expect_alias([filters, inputs, size, size], "con filter alias")?;
    r.expect_alias([1, filters, 1, 1], "con bias alias")?;
    for _ in 0..4 {
        r.f64("con learning-rate multiplier")?;
    }
    let mut data = t.data;
    let bias = data.split_off(n_weights);
    Ok(Conv::new(filters, inputs, size, stride, pad, data, bias))
}

fn affine_record(r: &mut Reader<'_>, c: usize) -> Result<Affine, ModelError> {
    r.expect_string("affine_", "affine layer")?;
    let t = r.tensor("affine parameters")?;
    if t.dims != [2 * c, 1, 1, 1] {
        return Err(r.unexpected(
            "affine parameter shape",
            format!("{:?}", t.dims),
            format!("[{}, 1, 1, 1]", 2 * c),
        ));
    }
    r.expect_alias([1, c, 1, 1], "affine gamma alias")?;
    r.expect_alias([1, c, 1, 1], "affine beta alias")?;
    r.expect_signed(0, "affine mode")?;
    let mut gamma = t.data;
    let beta = gamma.split_off(c);
    Ok(Affine { gamma, beta })
}

fn pool_fields(r: &mut Reader<'_>, fields: [i64; 6]) -> Result<(), ModelError> {
    for v in fields {
        r.expect_signed(v, "pool geometry")?;
    }
    Ok(())
}

fn fc_record(r: &mut Reader<'_>) -> Result<Vec<f32>, ModelError> {
    r.expect_string("fc_2", "fc layer")?;
    r.expect_u64(OUT as u64, "fc outputs")?;
    r.expect_u64(FEATURES as u64, "fc inputs")?;
    let t = r.tensor("fc parameters")?;
    if t.dims != [FEATURES, OUT, 1, 1] {
        return Err(r.unexpected(
            "fc parameter shape",
            format!("{:?}", t.dims),
            format!("[{FEATURES}, {OUT}, 1, 1]"),
        ));
    }
    r.expect_alias([FEATURES, OUT, 1, 1], "fc weight alias")?;
    r.expect_alias([0, 0, 0, 0], "fc bias alias")?;
    r.expect_signed(1, "fc bias mode")?;
    for _ in 0..4 {
        r.f64("fc learning-rate multiplier")?;
    }
    Ok(t.data)
}

/// Groups the parsed layers into the stem, the blocks and the fc layer.
fn assemble(mean: [f32; 3], params: Vec<Params>) -> Option<FaceNet> {
    let mut it = params.into_iter().filter(|p| !matches!(p, Params::None));
    let next_conv = |it: &mut dyn Iterator<Item = Params>| match it.next() {
        Some(Params::Con(c)) => Some(c),
        _ => None,
    };
    let next_affine = |it: &mut dyn Iterator<Item = Params>| match it.next() {
        Some(Params::Affine(a)) => Some(a),
        _ => None,
    };
    let stem = next_conv(&mut it)?;
    let stem_affine = next_affine(&mut it)?;
    let mut blocks = Vec::with_capacity(BLOCKS.len());
    for (_, _, down) in BLOCKS {
        let conv1 = next_conv(&mut it)?;
        let affine1 = next_affine(&mut it)?;
        let conv2 = next_conv(&mut it)?;
        let affine2 = next_affine(&mut it)?;
        blocks.push(Block {
            down,
            conv1,
            affine1,
            conv2,
            affine2,
        });
    }
    let fc = match it.next() {
        Some(Params::Fc(w)) => w,
        _ => return None,
    };
    Some(FaceNet {
        mean,
        stem,
        stem_affine,
        blocks,
        fc,
        isa: super::gemm::detect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_has_the_spec_counts() {
        let a = architecture();
        assert_eq!(a.len(), 130);
        let count = |f: fn(&Layer) -> bool| a.iter().filter(|l| f(l)).count();
        assert_eq!(count(|l| matches!(l, Layer::Con { .. })), 29);
        assert_eq!(count(|l| matches!(l, Layer::Affine(_))), 29);
        assert_eq!(count(|l| matches!(l, Layer::Relu)), 29);
        assert_eq!(count(|l| matches!(l, Layer::AddPrev)), 14);
        assert_eq!(count(|l| matches!(l, Layer::AvgPool)), 4);
        assert_eq!(count(|l| matches!(l, Layer::Tag)), 18);
        assert_eq!(count(|l| matches!(l, Layer::Skip)), 4);
    }
}
