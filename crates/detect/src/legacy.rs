//! The old `opencv-haar-classifier` format (written by the original
//! `haartraining`), converted on load to the same structure as the current
//! format, as OpenCV itself does: every tree node carries its own feature,
//! `left_val`/`right_val` become leaves, `left_node`/`right_node` become
//! node references, and the stage list is read in order (`parent`/`next` are
//! ignored).

use roxmltree::Node as XmlNode;

use crate::cascade::{Cascade, CascadeBuilder, CascadeError, FeatureKind, Node, RawTree, as_int};
use crate::xml::{child, find_child, integer, items, number, numbers};

fn malformed(msg: impl Into<String>) -> CascadeError {
    CascadeError::Malformed(msg.into())
}

/// Parses the element whose `type_id` is `opencv-haar-classifier`.
pub(crate) fn parse(root: XmlNode) -> Result<Cascade, CascadeError> {
    let size = numbers(child(root, "size")?)?;
    let [w, h] = size.as_slice() else {
        return Err(malformed(
            "old-format (opencv-haar-classifier) cascade: <size> needs 2 numbers",
        ));
    };
    let (Some(w), Some(h)) = (as_int(*w), as_int(*h)) else {
        return Err(malformed("<size> must hold integers"));
    };
    let mut builder = CascadeBuilder::new(FeatureKind::Haar, w, h)?;
    let mut feature_count: u32 = 0;
    for (si, stage) in items(child(root, "stages")?).enumerate() {
        let threshold = number(child(stage, "stage_threshold")?)?;
        let mut trees = Vec::new();
        for (ti, tree) in items(child(stage, "trees")?).enumerate() {
            let at = |e: CascadeError| match e {
                CascadeError::Malformed(m) => malformed(format!("stage {si}, tree {ti}: {m}")),
                other => other,
            };
            trees.push(read_tree(tree, &mut builder, &mut feature_count).map_err(at)?);
        }
        builder.add_stage(threshold, trees)?;
    }
    builder.finish()
}

/// One side of a node: either a leaf value or a node reference.
fn branch(node: XmlNode, side: &str, tree: &mut RawTree) -> Result<i32, CascadeError> {
    if let Some(v) = find_child(node, &format!("{side}_val")) {
        let leaf = tree.leaves.len() as i32;
        tree.leaves.push(number(v)? as f32);
        return Ok(-leaf);
    }
    if let Some(n) = find_child(node, &format!("{side}_node")) {
        let index = integer(n)?;
        return i32::try_from(index).map_err(|_| malformed(format!("{side}_node out of range")));
    }
    Err(malformed(format!(
        "node has neither {side}_val nor {side}_node"
    )))
}

fn read_tree(
    tree: XmlNode,
    builder: &mut CascadeBuilder,
    feature_count: &mut u32,
) -> Result<RawTree, CascadeError> {
    let mut raw = RawTree {
        nodes: Vec::new(),
        subsets: Vec::new(),
        leaves: Vec::new(),
    };
    for node in items(tree) {
        let feature = child(node, "feature")?;
        let mut rects = Vec::new();
        for r in items(child(feature, "rects")?) {
            let v = numbers(r)?;
            let arr: [f64; 5] = v
                .as_slice()
                .try_into()
                .map_err(|_| malformed("a rectangle needs 5 numbers"))?;
            rects.push(arr);
        }
        let tilted = match find_child(feature, "tilted") {
            Some(t) => integer(t)? != 0,
            None => false,
        };
        builder.add_haar_feature(&rects, tilted)?;
        let threshold = number(child(node, "threshold")?)? as f32;
        let left = branch(node, "left", &mut raw)?;
        let right = branch(node, "right", &mut raw)?;
        raw.nodes.push(Node {
            left,
            right,
            feature: *feature_count,
            threshold,
        });
        *feature_count += 1;
    }
    Ok(raw)
}
