//! The in-memory cascade: boosted stages of small decision trees over Haar or
//! LBP features, stored in flat arrays and validated once when loaded, so
//! that evaluation never has to check indices against user data again.
//!
//! Files are parsed by [`crate::xml`] (current `<cascade>` format) and
//! [`crate::legacy`] (old `opencv-haar-classifier` format); both end in
//! [`CascadeBuilder::finish`], which checks every index and rectangle.

use thiserror::Error;

/// Why a cascade file could not be loaded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CascadeError {
    /// The text is not well-formed XML (for example a truncated file).
    #[error("cascade file is not valid XML: {0}")]
    Xml(String),
    /// Well-formed XML, but not an OpenCV cascade classifier.
    #[error("not an OpenCV cascade classifier: {0}")]
    NotCascade(String),
    /// A cascade of a kind this detector does not evaluate (HOG features,
    /// non-boosted stages, ...).
    #[error("unsupported cascade: {0}")]
    Unsupported(String),
    /// A cascade whose contents are missing, inconsistent or out of range.
    #[error("malformed cascade: {0}")]
    Malformed(String),
}

/// OpenCV subtracts this from every stage threshold (in f32) when loading.
const STAGE_THRESHOLD_EPS: f32 = 1e-5;

/// Number of 32-bit words in the category subset of an LBP tree node
/// (256 categories).
pub const LBP_SUBSET_WORDS: usize = 8;

/// The kind of features a cascade evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// Haar-like features: weighted sums of 2 or 3 rectangles, normalised by
    /// the window's standard deviation.
    Haar,
    /// Local binary patterns over a 3 x 3 grid of blocks (8-bit codes).
    Lbp,
}

/// One rectangle of a Haar feature, in window coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightedRect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
    /// Weight of the rectangle's pixel sum (0 means "absent").
    pub weight: f32,
}

impl WeightedRect {
    const ABSENT: WeightedRect = WeightedRect {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
        weight: 0.0,
    };
}

/// A Haar feature: up to three weighted rectangles, upright or tilted 45
/// degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HaarFeature {
    /// The rectangles; unused ones have weight 0.
    pub rects: [WeightedRect; 3],
    /// Whether the rectangles are rotated by 45 degrees.
    pub tilted: bool,
}

/// An LBP feature: a 3 x 3 grid of `width` x `height` blocks whose top-left
/// block starts at (`x`, `y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbpFeature {
    /// Left edge of the grid.
    pub x: i32,
    /// Top edge of the grid.
    pub y: i32,
    /// Width of one block.
    pub width: i32,
    /// Height of one block.
    pub height: i32,
}

/// An internal node of a tree: compares one feature and picks a child.
///
/// A child value > 0 is the index of another node of the same tree, a value
/// <= 0 names leaf number `-value` (OpenCV's convention).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    /// Child taken when the feature value is below the threshold (Haar), or
    /// when the LBP code is in the node's subset.
    pub left: i32,
    /// The other child.
    pub right: i32,
    /// Index into the cascade's features.
    pub feature: u32,
    /// Haar threshold (f32 as OpenCV stores it); unused for LBP.
    pub threshold: f32,
}

/// A weak classifier: a small tree, as ranges into the cascade's arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tree {
    /// Index of the root in the cascade's nodes.
    pub first_node: u32,
    /// Number of internal nodes.
    pub node_count: u32,
    /// Index of leaf 0 in the cascade's leaves (there are `node_count + 1`).
    pub first_leaf: u32,
}

/// A boosted stage: the sum of its trees' leaves is compared with the
/// threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// Threshold as OpenCV uses it: f32(file value) - 1e-5.
    pub threshold: f32,
    /// Index of the stage's first tree.
    pub first_tree: u32,
    /// Number of trees.
    pub tree_count: u32,
}

/// A loaded, validated cascade classifier. Immutable, `Send + Sync`: load it
/// once and share it between threads.
#[derive(Clone, Debug)]
pub struct Cascade {
    pub(crate) kind: FeatureKind,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) stages: Vec<Stage>,
    pub(crate) trees: Vec<Tree>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) leaves: Vec<f32>,
    /// LBP only: `LBP_SUBSET_WORDS` words per node, in node order.
    pub(crate) subsets: Vec<u32>,
    pub(crate) haar: Vec<HaarFeature>,
    pub(crate) lbp: Vec<LbpFeature>,
}

impl Cascade {
    /// Parses an OpenCV cascade XML file (either the current `<cascade>`
    /// format or the old `opencv-haar-classifier` format).
    pub fn from_xml(text: &str) -> Result<Cascade, CascadeError> {
        crate::xml::parse(text)
    }

    /// The feature kind.
    pub fn kind(&self) -> FeatureKind {
        self.kind
    }

    /// The training window size (width, height) in pixels.
    pub fn window_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Number of stages.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// Number of features.
    pub fn feature_count(&self) -> usize {
        match self.kind {
            FeatureKind::Haar => self.haar.len(),
            FeatureKind::Lbp => self.lbp.len(),
        }
    }

    /// Whether every tree is a single node (a "stump"): OpenCV then takes a
    /// faster path that reads leaves 0 and 1 directly.
    pub fn is_stump_based(&self) -> bool {
        self.trees.iter().all(|t| t.node_count == 1)
    }

    /// Whether any Haar feature is tilted (needs the rotated integral image).
    pub fn has_tilted_features(&self) -> bool {
        self.haar.iter().any(|f| f.tilted)
    }
}

/// One tree as read from a file, before validation.
pub(crate) struct RawTree {
    pub nodes: Vec<Node>,
    pub subsets: Vec<u32>,
    pub leaves: Vec<f32>,
}

/// Collects stages, trees and features from a parser and checks them.
pub(crate) struct CascadeBuilder {
    kind: FeatureKind,
    width: i64,
    height: i64,
    stages: Vec<Stage>,
    trees: Vec<Tree>,
    nodes: Vec<Node>,
    leaves: Vec<f32>,
    subsets: Vec<u32>,
    haar: Vec<HaarFeature>,
    lbp: Vec<LbpFeature>,
}

fn malformed(msg: impl Into<String>) -> CascadeError {
    CascadeError::Malformed(msg.into())
}

fn to_u32(v: usize, what: &str) -> Result<u32, CascadeError> {
    u32::try_from(v).map_err(|_| malformed(format!("too many {what}")))
}

impl CascadeBuilder {
    /// Starts a cascade with a window of `width` x `height`.
    pub fn new(kind: FeatureKind, width: i64, height: i64) -> Result<Self, CascadeError> {
        // The variance window is the window shrunk by one pixel per side.
        if !(3..=4096).contains(&width) || !(3..=4096).contains(&height) {
            return Err(malformed(format!(
                "window size {width}x{height} is out of range (3..4096)"
            )));
        }
        Ok(CascadeBuilder {
            kind,
            width,
            height,
            stages: Vec::new(),
            trees: Vec::new(),
            nodes: Vec::new(),
            leaves: Vec::new(),
            subsets: Vec::new(),
            haar: Vec::new(),
            lbp: Vec::new(),
        })
    }

    /// Appends a stage made of `trees`, with the threshold as written in the
    /// file.
    pub fn add_stage(&mut self, threshold: f64, trees: Vec<RawTree>) -> Result<(), CascadeError> {
        let stage_index = self.stages.len();
        let first_tree = to_u32(self.trees.len(), "trees")?;
        let tree_count = to_u32(trees.len(), "trees")?;
        for (ti, tree) in trees.into_iter().enumerate() {
            let n = tree.nodes.len();
            let at = || format!("stage {stage_index}, tree {ti}");
            if n == 0 {
                return Err(malformed(format!("{}: tree without nodes", at())));
            }
            if tree.leaves.len() != n + 1 {
                return Err(malformed(format!(
                    "{}: {} leaves for {} nodes (expected {})",
                    at(),
                    tree.leaves.len(),
                    n,
                    n + 1
                )));
            }
            for (ni, node) in tree.nodes.iter().enumerate() {
                for child in [node.left, node.right] {
                    let ok = if child > 0 {
                        // Children after their parent: rules out cycles.
                        (child as usize) > ni && (child as usize) < n
                    } else {
                        (child.unsigned_abs() as usize) <= n
                    };
                    if !ok {
                        return Err(malformed(format!(
                            "{}, node {ni}: child {child} out of range",
                            at()
                        )));
                    }
                }
            }
            let expected_subsets = match self.kind {
                FeatureKind::Lbp => n * LBP_SUBSET_WORDS,
                FeatureKind::Haar => 0,
            };
            if tree.subsets.len() != expected_subsets {
                return Err(malformed(format!("{}: wrong subset size", at())));
            }
            self.trees.push(Tree {
                first_node: to_u32(self.nodes.len(), "nodes")?,
                node_count: to_u32(n, "nodes")?,
                first_leaf: to_u32(self.leaves.len(), "leaves")?,
            });
            self.nodes.extend_from_slice(&tree.nodes);
            self.leaves.extend_from_slice(&tree.leaves);
            self.subsets.extend_from_slice(&tree.subsets);
        }
        if !threshold.is_finite() {
            return Err(malformed(format!(
                "stage {stage_index}: threshold is not a finite number"
            )));
        }
        self.stages.push(Stage {
            threshold: threshold as f32 - STAGE_THRESHOLD_EPS,
            first_tree,
            tree_count,
        });
        Ok(())
    }

    /// Appends a Haar feature given as `(x, y, w, h, weight)` rectangles.
    pub fn add_haar_feature(
        &mut self,
        rects: &[[f64; 5]],
        tilted: bool,
    ) -> Result<(), CascadeError> {
        let index = self.haar.len();
        if rects.is_empty() || rects.len() > 3 {
            return Err(malformed(format!(
                "feature {index}: {} rectangles (expected 1 to 3)",
                rects.len()
            )));
        }
        let mut out = [WeightedRect::ABSENT; 3];
        for (slot, r) in out.iter_mut().zip(rects) {
            let [x, y, w, h] = [r[0], r[1], r[2], r[3]].map(as_int);
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
                return Err(malformed(format!(
                    "feature {index}: rectangle coordinates must be integers"
                )));
            };
            let inside = if tilted {
                // Corners (x, y), (x - h, y + h), (x + w, y + w), (x + w - h, y + w + h).
                w >= 0
                    && h >= 0
                    && y >= 0
                    && x - h >= 0
                    && x + w <= self.width
                    && y + w + h <= self.height
            } else {
                w >= 0 && h >= 0 && x >= 0 && y >= 0 && x + w <= self.width && y + h <= self.height
            };
            if !inside {
                return Err(malformed(format!(
                    "feature {index}: rectangle {x} {y} {w} {h} lies outside the {}x{} window",
                    self.width, self.height
                )));
            }
            if !r[4].is_finite() {
                return Err(malformed(format!("feature {index}: weight is not finite")));
            }
            *slot = WeightedRect {
                x: x as i32,
                y: y as i32,
                width: w as i32,
                height: h as i32,
                weight: r[4] as f32,
            };
        }
        self.haar.push(HaarFeature { rects: out, tilted });
        Ok(())
    }

    /// Appends an LBP feature (block grid origin and block size).
    pub fn add_lbp_feature(&mut self, rect: [f64; 4]) -> Result<(), CascadeError> {
        let index = self.lbp.len();
        let [x, y, w, h] = rect.map(as_int);
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
            return Err(malformed(format!(
                "feature {index}: rectangle coordinates must be integers"
            )));
        };
        if x < 0 || y < 0 || w < 0 || h < 0 || x + 3 * w > self.width || y + 3 * h > self.height {
            return Err(malformed(format!(
                "feature {index}: 3x3 block grid {x} {y} {w} {h} lies outside the {}x{} window",
                self.width, self.height
            )));
        }
        self.lbp.push(LbpFeature {
            x: x as i32,
            y: y as i32,
            width: w as i32,
            height: h as i32,
        });
        Ok(())
    }

    /// Checks feature references and returns the cascade.
    pub fn finish(self) -> Result<Cascade, CascadeError> {
        let feature_count = match self.kind {
            FeatureKind::Haar => self.haar.len(),
            FeatureKind::Lbp => self.lbp.len(),
        };
        if self.stages.is_empty() {
            return Err(malformed("no stages"));
        }
        if let Some((i, node)) = self
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.feature as usize >= feature_count)
        {
            return Err(malformed(format!(
                "node {i} uses feature {} but there are only {feature_count} features",
                node.feature
            )));
        }
        if self.leaves.iter().any(|v| !v.is_finite())
            || self.nodes.iter().any(|n| !n.threshold.is_finite())
        {
            return Err(malformed("a threshold or leaf value is not finite"));
        }
        Ok(Cascade {
            kind: self.kind,
            width: self.width as u32,
            height: self.height as u32,
            stages: self.stages,
            trees: self.trees,
            nodes: self.nodes,
            leaves: self.leaves,
            subsets: self.subsets,
            haar: self.haar,
            lbp: self.lbp,
        })
    }
}

/// `v` as an integer if it is one (and of a sane size).
pub(crate) fn as_int(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v.abs() <= 4_294_967_296.0).then_some(v as i64)
}
