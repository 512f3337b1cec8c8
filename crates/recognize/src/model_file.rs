//! The model file format: compact, versioned, checksummed binary.
//!
//! Layout (all integers and floats little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `OCELFACE` |
//! | 2 | format version (currently 1) |
//! | 1 | algorithm: 1 Eigenfaces, 2 Fisherfaces, 3 LBPH |
//! | 1 | reserved, 0 |
//! | 8 | payload length P |
//! | P | payload (below) |
//! | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Payload, common part: threshold (f64), face width and height (u32 each),
//! N samples (u32), N labels (i32), then the label names: count (u32) and for
//! each a label (i32), a byte length (u32) and UTF-8 bytes.
//!
//! Eigen/Fisher then store: requested components (u32), D (u32), K (u32),
//! the mean (D x f64), K eigenvalues (f64), the projector kind (u8), then
//! for kind 0 the projection matrix W column by column (D x K f64), for
//! kind 1 (W = A^T C, see `subspace`) the N x D training pixels (bytes) and
//! C column by column (N x K f64); finally the N x K training projections
//! (f64, row by row). f64 is kept so that a loaded model answers exactly
//! like the one saved.
//!
//! LBPH stores: radius, neighbours, grid_x, grid_y (u32 each), the histogram
//! length (u32), then per sample its non-zero bins only, as a count (u32) of
//! (gap, count) pairs in LEB128 varints, gap = bin index minus previous
//! non-zero index plus one (so the first gap is index + 1). Bin values are
//! integer counts (the f32 value OpenCV stores is count / cell area, which
//! is recomputed exactly).
//!
//! Reading checks magic, version, checksum and every length against the
//! bytes present, so a truncated, corrupt or foreign file gives a
//! [`ModelFileError`], never a panic or a huge allocation.

use faer::Mat;
use thiserror::Error;

use crate::common::Common;
use crate::lbph::LbphModel;
use crate::lbph::index::HistogramIndex;
use crate::subspace::panel_matrix::PanelMatrix;
use crate::subspace::{GramProjector, Projector, SubspaceModel};
use crate::{Algorithm, EigenFaces, FisherFaces, Label, Lbph, LbphParams, Recognizer};

/// The eight bytes every model file starts with.
pub const MAGIC: &[u8; 8] = b"OCELFACE";
/// The format version this crate writes (and the only one it reads).
pub const VERSION: u16 = 1;

const HEADER_LEN: usize = 8 + 2 + 1 + 1 + 8;
const CRC_LEN: usize = 4;

/// Why bytes could not be read as a model.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelFileError {
    /// The data does not start with [`MAGIC`]: not an Ocellus model.
    #[error("not an Ocellus face model (bad magic bytes)")]
    BadMagic,
    /// Written by a newer (or unknown) format version.
    #[error("unsupported model format version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u16),
    /// Unknown algorithm code.
    #[error("unknown algorithm code {0} in model file")]
    UnknownAlgorithm(u8),
    /// Fewer bytes than the header declares.
    #[error("model file truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the header says the file has.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Trailing bytes after the checksum.
    #[error("{0} unexpected bytes after the end of the model")]
    TrailingBytes(usize),
    /// The checksum does not match: the file is corrupt.
    #[error("model file corrupt: checksum {stored:08x} stored, {computed:08x} computed")]
    Checksum {
        /// CRC stored in the file.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The payload is inconsistent (lengths that do not add up, bad values).
    #[error("model file invalid: {0}")]
    Invalid(String),
    /// The file holds another algorithm than the one asked for.
    #[error("model file holds a {found} model, not {expected}")]
    WrongAlgorithm {
        /// Asked for.
        expected: Algorithm,
        /// Found in the file.
        found: Algorithm,
    },
}

fn algorithm_code(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::Eigen => 1,
        Algorithm::Fisher => 2,
        Algorithm::Lbph => 3,
        // Never written: resnet has no model file (its descriptors are in
        // the store); the code is reserved.
        Algorithm::Resnet => 4,
    }
}

fn algorithm_from_code(code: u8) -> Result<Algorithm, ModelFileError> {
    match code {
        1 => Ok(Algorithm::Eigen),
        2 => Ok(Algorithm::Fisher),
        3 => Ok(Algorithm::Lbph),
        other => Err(ModelFileError::UnknownAlgorithm(other)),
    }
}

// ---------------------------------------------------------------- writing

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn len32(&mut self, v: usize) {
        // Every length written fits: models are built in memory first.
        self.u32(u32::try_from(v).unwrap_or(u32::MAX));
    }
    fn varint(&mut self, mut v: u32) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
}

fn write_common(w: &mut Writer, common: &Common, width: u32, height: u32, labels: &[Label]) {
    w.f64(common.threshold);
    w.u32(width);
    w.u32(height);
    w.len32(labels.len());
    for &l in labels {
        w.i32(l);
    }
    w.len32(common.names.len());
    for (&label, name) in &common.names {
        w.i32(label);
        w.len32(name.len());
        w.buf.extend_from_slice(name.as_bytes());
    }
}

fn finish(algorithm: Algorithm, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CRC_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(algorithm_code(algorithm));
    out.push(0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn write_subspace(
    algorithm: Algorithm,
    requested: usize,
    common: &Common,
    model: &SubspaceModel,
) -> Vec<u8> {
    let d = model.mean.len();
    let k = model.components();
    let mut w = Writer {
        buf: Vec::with_capacity(64 + 8 * (d * (k + 1) + model.projections.len())),
    };
    write_common(&mut w, common, model.width, model.height, &model.labels);
    w.len32(requested);
    w.len32(d);
    w.len32(k);
    for &v in &model.mean {
        w.f64(v);
    }
    for &v in &model.eigenvalues {
        w.f64(v);
    }
    match &model.projector {
        Projector::Dense(basis) => {
            w.buf.push(0);
            for c in 0..k {
                for i in 0..d {
                    w.f64(basis.get(i, c));
                }
            }
        }
        Projector::Gram(g) => {
            w.buf.push(1);
            w.len32(g.coeffs.ncols());
            w.buf.extend_from_slice(&g.pixels);
            for c in 0..g.coeffs.ncols() {
                let col = g.coeffs.col(c);
                for i in 0..col.nrows() {
                    w.f64(col[i]);
                }
            }
            for c in 0..g.tail.cols() {
                for i in 0..d {
                    w.f64(g.tail.get(i, c));
                }
            }
        }
    }
    for &v in &model.projections {
        w.f64(v);
    }
    finish(algorithm, w.buf)
}

pub(crate) fn write_lbph(params: &LbphParams, common: &Common, model: &LbphModel) -> Vec<u8> {
    let mut w = Writer { buf: Vec::new() };
    write_common(&mut w, common, model.width, model.height, &model.labels);
    w.u32(params.radius);
    w.u32(params.neighbors);
    w.u32(params.grid_x);
    w.u32(params.grid_y);
    w.len32(params.histogram_len());
    for h in model.histograms.samples() {
        w.len32(h.len());
        let mut next = 0usize;
        for &(k, c) in h {
            let k = k as usize;
            w.varint((k - next + 1) as u32);
            w.varint(u32::from(c));
            next = k + 1;
        }
    }
    finish(Algorithm::Lbph, w.buf)
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn invalid(msg: impl Into<String>) -> ModelFileError {
    ModelFileError::Invalid(msg.into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelFileError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| invalid(format!("payload ends inside {what}")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn u32(&mut self, what: &str) -> Result<u32, ModelFileError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self, what: &str) -> Result<i32, ModelFileError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f64(&mut self, what: &str) -> Result<f64, ModelFileError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    /// A count of items of `item_size` bytes each, checked against the bytes left.
    fn count(&mut self, item_size: usize, what: &str) -> Result<usize, ModelFileError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_size) > self.remaining() {
            return Err(invalid(format!("{what} = {n} does not fit in the file")));
        }
        Ok(n)
    }
    fn f64s(&mut self, n: usize, what: &str) -> Result<Vec<f64>, ModelFileError> {
        let bytes = self.take(n.checked_mul(8).ok_or_else(|| invalid(what))?, what)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a)
            })
            .collect())
    }
    fn varint(&mut self, what: &str) -> Result<u32, ModelFileError> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1, what)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| invalid(format!("{what} too large")));
            }
        }
        Err(invalid(format!("{what}: varint too long")))
    }
}

struct CommonPart {
    common: Common,
    width: u32,
    height: u32,
    labels: Vec<Label>,
}

fn read_common(r: &mut Reader<'_>) -> Result<CommonPart, ModelFileError> {
    let threshold = r.f64("threshold")?;
    if threshold.is_nan() {
        return Err(invalid("threshold is NaN"));
    }
    let width = r.u32("width")?;
    let height = r.u32("height")?;
    if width == 0 || height == 0 {
        return Err(invalid(format!("face size {width}x{height}")));
    }
    let n = r.count(4, "sample count")?;
    if n == 0 {
        return Err(invalid("model has no samples"));
    }
    let labels = (0..n)
        .map(|_| r.i32("labels"))
        .collect::<Result<Vec<_>, _>>()?;
    let name_count = r.count(8, "label name count")?;
    let mut names = std::collections::BTreeMap::new();
    for _ in 0..name_count {
        let label = r.i32("label name")?;
        let len = r.count(1, "label name length")?;
        let text = std::str::from_utf8(r.take(len, "label name")?)
            .map_err(|_| invalid("label name is not UTF-8"))?;
        names.insert(label, text.to_owned());
    }
    Ok(CommonPart {
        common: Common { threshold, names },
        width,
        height,
        labels,
    })
}

fn read_subspace(r: &mut Reader<'_>) -> Result<(usize, Common, SubspaceModel), ModelFileError> {
    let c = read_common(r)?;
    let requested = r.u32("requested components")? as usize;
    let d = r.u32("dimension")? as usize;
    let k = r.u32("components")? as usize;
    if d as u64 != u64::from(c.width) * u64::from(c.height) {
        return Err(invalid(format!(
            "dimension {d} does not match face size {}x{}",
            c.width, c.height
        )));
    }
    if k == 0 {
        return Err(invalid("model has no components"));
    }
    let n = c.labels.len();
    let fixed = (d as u64 + k as u64 + n as u64 * k as u64) * 8 + 1;
    if fixed > r.remaining() as u64 {
        return Err(invalid(format!(
            "vectors of D={d}, K={k}, N={n} need {fixed} bytes, {} left",
            r.remaining()
        )));
    }
    let mean = r.f64s(d, "mean")?;
    let eigenvalues = r.f64s(k, "eigenvalues")?;
    let kind = r.take(1, "projector kind")?[0];
    let projector = match kind {
        0 => {
            let needed = d as u64 * k as u64 * 8;
            if needed > r.remaining() as u64 {
                return Err(invalid("projection matrix does not fit in the file"));
            }
            let flat = r.f64s(d * k, "projection matrix")?;
            Projector::Dense(PanelMatrix::from_fn(d, k, |i, j| flat[j * d + i]))
        }
        1 => {
            let k1 = r.u32("Gram components")? as usize;
            if k1 > k {
                return Err(invalid(format!("{k1} Gram components of {k}")));
            }
            let tail = k - k1;
            let needed = n as u64 * d as u64 + (n * k1) as u64 * 8 + (d * tail) as u64 * 8;
            if needed > r.remaining() as u64 {
                return Err(invalid("training pixels do not fit in the file"));
            }
            let pixels = r.take(n * d, "training pixels")?.to_vec();
            let flat = r.f64s(n * k1, "projection coefficients")?;
            let coeffs = Mat::from_fn(n, k1, |i, j| flat[j * n + i]);
            let flat = r.f64s(d * tail, "projection columns")?;
            let tail = PanelMatrix::from_fn(d, tail, |i, j| flat[j * d + i]);
            Projector::Gram(GramProjector::new(pixels, d, &mean, coeffs, tail))
        }
        other => return Err(invalid(format!("unknown projector kind {other}"))),
    };
    let projections = r.f64s(n * k, "projections")?;
    Ok((
        requested,
        c.common,
        SubspaceModel {
            width: c.width,
            height: c.height,
            mean,
            eigenvalues,
            projector,
            projections,
            labels: c.labels,
        },
    ))
}

fn read_lbph(r: &mut Reader<'_>) -> Result<Lbph, ModelFileError> {
    let c = read_common(r)?;
    let params = LbphParams {
        radius: r.u32("radius")?,
        neighbors: r.u32("neighbors")?,
        grid_x: r.u32("grid_x")?,
        grid_y: r.u32("grid_y")?,
    };
    params
        .validate()
        .map_err(|e| invalid(format!("LBPH parameters: {e}")))?;
    let len = r.u32("histogram length")? as usize;
    if len != params.histogram_len() {
        return Err(invalid(format!(
            "histogram length {len} does not match the parameters ({})",
            params.histogram_len()
        )));
    }
    let mut histograms = Vec::with_capacity(c.labels.len());
    for _ in 0..c.labels.len() {
        let nonzero = r.count(2, "non-zero bin count")?;
        let mut bins = Vec::with_capacity(nonzero);
        let mut next = 0usize;
        for _ in 0..nonzero {
            let gap = r.varint("bin gap")? as usize;
            let count = r.varint("bin count")?;
            if gap == 0 {
                return Err(invalid("zero bin gap"));
            }
            let k = next + gap - 1;
            if k >= len {
                return Err(invalid(format!("bin {k} beyond histogram length {len}")));
            }
            let count = u16::try_from(count)
                .ok()
                .filter(|&c| c != 0)
                .ok_or_else(|| invalid(format!("bin count {count} out of range")))?;
            bins.push((k as u32, count));
            next = k + 1;
        }
        histograms.push(bins);
    }
    let mut index = HistogramIndex::new(len);
    index.push(histograms);
    let model = LbphModel {
        width: c.width,
        height: c.height,
        histograms: index,
        labels: c.labels,
    };
    let lbph = Lbph::from_parts(params, c.common, model);
    lbph.check_loaded()
        .map_err(|e| invalid(format!("LBPH model unusable: {e}")))?;
    Ok(lbph)
}

/// Checks header, length and checksum; returns the algorithm and payload.
fn open(bytes: &[u8]) -> Result<(Algorithm, &[u8]), ModelFileError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ModelFileError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ModelFileError::Truncated {
            needed: HEADER_LEN + CRC_LEN,
            available: bytes.len(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(ModelFileError::UnsupportedVersion(version));
    }
    let algorithm = algorithm_from_code(bytes[10])?;
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[12..20]);
    let payload_len = u64::from_le_bytes(len_bytes);
    let total = usize::try_from(payload_len)
        .ok()
        .and_then(|p| p.checked_add(HEADER_LEN + CRC_LEN))
        .ok_or(ModelFileError::Truncated {
            needed: usize::MAX,
            available: bytes.len(),
        })?;
    if bytes.len() < total {
        return Err(ModelFileError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    if bytes.len() > total {
        return Err(ModelFileError::TrailingBytes(bytes.len() - total));
    }
    let body_end = total - CRC_LEN;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    let computed = crc32fast::hash(&bytes[..body_end]);
    if stored != computed {
        return Err(ModelFileError::Checksum { stored, computed });
    }
    Ok((algorithm, &bytes[HEADER_LEN..body_end]))
}

fn expect_end(r: &Reader<'_>) -> Result<(), ModelFileError> {
    if r.remaining() != 0 {
        return Err(invalid(format!("{} unread payload bytes", r.remaining())));
    }
    Ok(())
}

/// Reads the algorithm named in a model file's header, without decoding it.
pub fn peek_algorithm(bytes: &[u8]) -> Result<Algorithm, ModelFileError> {
    open(bytes).map(|(a, _)| a)
}

/// Loads any model written by [`Recognizer::to_bytes`].
pub fn model_from_bytes(bytes: &[u8]) -> Result<Box<dyn Recognizer>, ModelFileError> {
    let (algorithm, payload) = open(bytes)?;
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let model: Box<dyn Recognizer> = match algorithm {
        Algorithm::Eigen => {
            let (req, common, m) = read_subspace(&mut r)?;
            Box::new(EigenFaces::from_parts(req, common, m))
        }
        Algorithm::Fisher => {
            let (req, common, m) = read_subspace(&mut r)?;
            Box::new(FisherFaces::from_parts(req, common, m))
        }
        Algorithm::Lbph => Box::new(read_lbph(&mut r)?),
        Algorithm::Resnet => return Err(ModelFileError::UnknownAlgorithm(4)),
    };
    expect_end(&r)?;
    Ok(model)
}

fn typed_payload(bytes: &[u8], expected: Algorithm) -> Result<Reader<'_>, ModelFileError> {
    let (found, payload) = open(bytes)?;
    if found != expected {
        return Err(ModelFileError::WrongAlgorithm { expected, found });
    }
    Ok(Reader {
        bytes: payload,
        pos: 0,
    })
}

/// A whole Eigen or Fisher model file of the `expected` algorithm.
fn typed_subspace(
    bytes: &[u8],
    expected: Algorithm,
) -> Result<(usize, Common, SubspaceModel), ModelFileError> {
    let mut r = typed_payload(bytes, expected)?;
    let parts = read_subspace(&mut r)?;
    expect_end(&r)?;
    Ok(parts)
}

impl EigenFaces {
    /// Loads an Eigenfaces model written by [`Recognizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        let (req, common, m) = typed_subspace(bytes, Algorithm::Eigen)?;
        Ok(EigenFaces::from_parts(req, common, m))
    }
}

impl FisherFaces {
    /// Loads a Fisherfaces model written by [`Recognizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        let (req, common, m) = typed_subspace(bytes, Algorithm::Fisher)?;
        Ok(FisherFaces::from_parts(req, common, m))
    }
}

impl Lbph {
    /// Loads an LBPH model written by [`Recognizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelFileError> {
        let mut r = typed_payload(bytes, Algorithm::Lbph)?;
        let lbph = read_lbph(&mut r)?;
        expect_end(&r)?;
        Ok(lbph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::{Image, PixelLayout};
    use ocellus_testdata::Noise;

    fn faces() -> (Vec<Image>, Vec<Label>) {
        let mut faces = Vec::new();
        let mut labels = Vec::new();
        let mut noise = Noise::new(12345);
        for person in 0..3 {
            for _ in 0..3 {
                // Noise of 0..64 over a pattern that differs per person.
                let data = (0..24 * 20)
                    .map(|i| {
                        (noise.byte() >> 2).wrapping_add((i as u8 / 7).wrapping_mul(person + 1))
                    })
                    .collect();
                faces.push(Image::from_vec(20, 24, PixelLayout::Gray, data).unwrap());
                labels.push(i32::from(person) + 10);
            }
        }
        (faces, labels)
    }

    fn trained() -> Vec<Box<dyn Recognizer>> {
        let (f, l) = faces();
        let mut all: Vec<Box<dyn Recognizer>> = vec![
            Box::new(EigenFaces::new(0)),
            Box::new(FisherFaces::new(0)),
            Box::new(Lbph::new(LbphParams::default())),
        ];
        for r in &mut all {
            r.train(&f, &l).unwrap();
            r.set_threshold(f64::INFINITY);
            r.set_label_names([(10, "ann".to_string()), (11, "bo".to_string())].into());
        }
        all
    }

    #[test]
    fn round_trip_gives_identical_predictions() {
        let (f, _) = faces();
        for r in trained() {
            let bytes = r.to_bytes().unwrap();
            let loaded = model_from_bytes(&bytes).unwrap();
            assert_eq!(loaded.algorithm(), r.algorithm());
            assert_eq!(loaded.label_names(), r.label_names());
            assert_eq!(loaded.threshold(), f64::INFINITY);
            for face in &f {
                assert_eq!(loaded.predict(face).unwrap(), r.predict(face).unwrap());
            }
            assert_eq!(loaded.to_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        for r in trained() {
            let bytes = r.to_bytes().unwrap();
            for len in 0..bytes.len() {
                assert!(model_from_bytes(&bytes[..len]).is_err(), "len {len}");
            }
            for pos in (0..bytes.len()).step_by(7) {
                let mut bad = bytes.clone();
                bad[pos] ^= 0x10;
                assert!(model_from_bytes(&bad).is_err(), "flip at {pos}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                model_from_bytes(&longer).err(),
                Some(ModelFileError::TrailingBytes(1))
            );
        }
    }

    #[test]
    fn foreign_and_wrong_files_are_clear_errors() {
        assert_eq!(
            model_from_bytes(b"%YAML:1.0\nopencv_lbphfaces:").err(),
            Some(ModelFileError::BadMagic)
        );
        let all = trained();
        let lbph_bytes = all[2].to_bytes().unwrap();
        assert!(matches!(
            EigenFaces::from_bytes(&lbph_bytes),
            Err(ModelFileError::WrongAlgorithm { .. })
        ));
        let mut future = lbph_bytes.clone();
        future[8] = 9;
        assert_eq!(
            model_from_bytes(&future).err(),
            Some(ModelFileError::UnsupportedVersion(9))
        );
    }

    #[test]
    fn valid_checksum_over_inconsistent_payload_is_an_error() {
        // Re-sign a payload whose declared dimension is wrong.
        let all = trained();
        let mut bytes = all[0].to_bytes().unwrap();
        let body_end = bytes.len() - CRC_LEN;
        // The dimension D follows the common part; corrupt the sample count
        // instead (first field after width/height) to something huge.
        let pos = HEADER_LEN + 8 + 4 + 4;
        bytes[pos..pos + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            model_from_bytes(&bytes),
            Err(ModelFileError::Invalid(_))
        ));
    }
}
