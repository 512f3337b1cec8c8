//! Reading OpenCV's cascade XML (the `FileStorage` layout: `<opencv_storage>`
//! holding named elements, lists as `<_>` children, numbers as
//! whitespace-separated text).

use roxmltree::{Document, Node as XmlNode};

use crate::cascade::{
    Cascade, CascadeBuilder, CascadeError, FeatureKind, LBP_SUBSET_WORDS, Node, RawTree, as_int,
};

fn malformed(msg: impl Into<String>) -> CascadeError {
    CascadeError::Malformed(msg.into())
}

/// The first child element called `name`.
pub(crate) fn child<'a, 'i>(
    node: XmlNode<'a, 'i>,
    name: &str,
) -> Result<XmlNode<'a, 'i>, CascadeError> {
    find_child(node, name)
        .ok_or_else(|| malformed(format!("<{}> has no <{name}>", node.tag_name().name())))
}

/// The first child element called `name`, if any.
pub(crate) fn find_child<'a, 'i>(node: XmlNode<'a, 'i>, name: &str) -> Option<XmlNode<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The element children (list items) of a node.
pub(crate) fn items<'a, 'i>(node: XmlNode<'a, 'i>) -> impl Iterator<Item = XmlNode<'a, 'i>> {
    node.children().filter(|c| c.is_element())
}

/// All text inside an element (comments excluded), concatenated.
fn text_of(node: XmlNode) -> String {
    node.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The whitespace-separated numbers inside an element.
pub(crate) fn numbers(node: XmlNode) -> Result<Vec<f64>, CascadeError> {
    text_of(node)
        .split_ascii_whitespace()
        .map(|t| {
            t.parse::<f64>().map_err(|_| {
                malformed(format!(
                    "<{}>: '{t}' is not a number",
                    node.tag_name().name()
                ))
            })
        })
        .collect()
}

/// The single number inside an element.
pub(crate) fn number(node: XmlNode) -> Result<f64, CascadeError> {
    match numbers(node)?.as_slice() {
        [v] => Ok(*v),
        other => Err(malformed(format!(
            "<{}>: expected one number, found {}",
            node.tag_name().name(),
            other.len()
        ))),
    }
}

/// The single integer inside an element.
pub(crate) fn integer(node: XmlNode) -> Result<i64, CascadeError> {
    as_int(number(node)?)
        .ok_or_else(|| malformed(format!("<{}>: expected an integer", node.tag_name().name())))
}

fn word(node: XmlNode) -> String {
    text_of(node).trim().to_string()
}

/// Parses a cascade file in either format.
pub(crate) fn parse(text: &str) -> Result<Cascade, CascadeError> {
    let doc = Document::parse(text).map_err(|e| CascadeError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "opencv_storage" {
        return Err(CascadeError::NotCascade(format!(
            "the root element is <{}>, expected <opencv_storage>",
            root.tag_name().name()
        )));
    }
    if let Some(cascade) = find_child(root, "cascade") {
        return parse_current(cascade);
    }
    if let Some(old) =
        items(root).find(|n| n.attribute("type_id") == Some("opencv-haar-classifier"))
    {
        return crate::legacy::parse(old);
    }
    Err(CascadeError::NotCascade(
        "no <cascade> element and no element of type opencv-haar-classifier".into(),
    ))
}

/// The current format (`<cascade>`, written by opencv_traincascade).
fn parse_current(cascade: XmlNode) -> Result<Cascade, CascadeError> {
    let stage_type = word(child(cascade, "stageType")?);
    if stage_type != "BOOST" {
        return Err(CascadeError::Unsupported(format!(
            "stage type {stage_type} (only BOOST is supported)"
        )));
    }
    let feature_type = word(child(cascade, "featureType")?);
    let kind = match feature_type.as_str() {
        "HAAR" => FeatureKind::Haar,
        "LBP" => FeatureKind::Lbp,
        other => {
            return Err(CascadeError::Unsupported(format!(
                "feature type {other} (only HAAR and LBP are supported)"
            )));
        }
    };
    let width = integer(child(cascade, "width")?)?;
    let height = integer(child(cascade, "height")?)?;
    let max_cat_count =
        match find_child(cascade, "featureParams").and_then(|p| find_child(p, "maxCatCount")) {
            Some(n) => integer(n)?,
            None => 0,
        };
    match (kind, max_cat_count) {
        (FeatureKind::Haar, 0) => {}
        (FeatureKind::Lbp, 256) => {}
        (_, n) => {
            return Err(CascadeError::Unsupported(format!(
                "{feature_type} features with maxCatCount {n}"
            )));
        }
    }
    let mut builder = CascadeBuilder::new(kind, width, height)?;

    for (si, stage) in items(child(cascade, "stages")?).enumerate() {
        let threshold = number(child(stage, "stageThreshold")?)?;
        let mut trees = Vec::new();
        for (wi, weak) in items(child(stage, "weakClassifiers")?).enumerate() {
            let values = numbers(child(weak, "internalNodes")?)?;
            let leaves = numbers(child(weak, "leafValues")?)?;
            trees.push(
                read_tree(kind, &values, &leaves)
                    .map_err(|e| malformed(format!("stage {si}, tree {wi}: {e}")))?,
            );
        }
        builder.add_stage(threshold, trees)?;
    }

    for (fi, feature) in items(child(cascade, "features")?).enumerate() {
        match kind {
            FeatureKind::Haar => {
                let mut rects = Vec::new();
                for r in items(child(feature, "rects")?) {
                    let v = numbers(r)?;
                    let arr: [f64; 5] = v.as_slice().try_into().map_err(|_| {
                        malformed(format!(
                            "feature {fi}: a rectangle needs 5 numbers, found {}",
                            v.len()
                        ))
                    })?;
                    rects.push(arr);
                }
                let tilted = match find_child(feature, "tilted") {
                    Some(t) => integer(t)? != 0,
                    None => false,
                };
                builder.add_haar_feature(&rects, tilted)?;
            }
            FeatureKind::Lbp => {
                let v = numbers(child(feature, "rect")?)?;
                let arr: [f64; 4] = v.as_slice().try_into().map_err(|_| {
                    malformed(format!(
                        "feature {fi}: an LBP rectangle needs 4 numbers, found {}",
                        v.len()
                    ))
                })?;
                builder.add_lbp_feature(arr)?;
            }
        }
    }
    builder.finish()
}

/// Splits a flat `internalNodes` list into nodes (and LBP subsets).
fn read_tree(kind: FeatureKind, values: &[f64], leaves: &[f64]) -> Result<RawTree, String> {
    let node_len = match kind {
        FeatureKind::Haar => 4,
        FeatureKind::Lbp => 3 + LBP_SUBSET_WORDS,
    };
    if values.is_empty() || !values.len().is_multiple_of(node_len) {
        return Err(format!(
            "internalNodes has {} numbers, not a multiple of {node_len}",
            values.len()
        ));
    }
    let int = |v: f64| as_int(v).ok_or_else(|| format!("{v} is not an integer"));
    let mut tree = RawTree {
        nodes: Vec::new(),
        subsets: Vec::new(),
        leaves: leaves.iter().map(|&v| v as f32).collect(),
    };
    for chunk in values.chunks_exact(node_len) {
        let left = int(chunk[0])?;
        let right = int(chunk[1])?;
        let feature = int(chunk[2])?;
        if feature < 0 {
            return Err(format!("negative feature index {feature}"));
        }
        let threshold = match kind {
            FeatureKind::Haar => chunk[3] as f32,
            FeatureKind::Lbp => {
                for &w in &chunk[3..] {
                    let w = int(w)?;
                    if !(i32::MIN as i64..=u32::MAX as i64).contains(&w) {
                        return Err(format!("subset word {w} does not fit in 32 bits"));
                    }
                    tree.subsets.push(w as i32 as u32);
                }
                0.0
            }
        };
        tree.nodes.push(Node {
            left: left.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            right: right.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            feature: feature.min(u32::MAX as i64) as u32,
            threshold,
        });
    }
    Ok(tree)
}
