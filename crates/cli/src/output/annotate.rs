//! Annotated copies: an image with boxes drawn around its faces, written
//! into the `--annotate` folder (`detect`, `recognize`).
//!
//! Invariant: a copy is named after its input's file name and written in
//! the input's format when Ocellus can write it and the name's extension
//! says that format; otherwise it is PNG with `.png` appended, so the
//! extension always tells the format.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_detect::Rect;
use ocellus_detect::draw::draw_rect;
use ocellus_imaging::Image;
use ocellus_protocol::face::FaceBox;

/// The colour of a detected (or recognised) face's box.
pub(crate) const GREEN: [u8; 3] = [0, 255, 0];
/// The colour of a face that was not identified.
pub(crate) const RED: [u8; 3] = [255, 0, 0];

/// A face box from the wire as the detector's rectangle.
pub(crate) fn rect(face: &FaceBox) -> Rect {
    Rect {
        x: face.x,
        y: face.y,
        width: face.width,
        height: face.height,
    }
}

/// Creates the `--annotate` folder (and its parents) if missing.
pub(crate) fn create_folder(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))
}

/// Where the annotated copy of `file` goes: OUTDIR/<file name> when its
/// format can be written, else OUTDIR/<file name>.png.
fn annotated_path(dir: &Path, file: &Path, format: ImageFormat) -> (PathBuf, ImageFormat) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string());
    let ext_ok = file
        .extension()
        .and_then(|e| ImageFormat::from_name(&e.to_string_lossy()))
        == Some(format);
    if format.can_encode() && ext_ok {
        (dir.join(name), format)
    } else {
        (dir.join(format!("{name}.png")), ImageFormat::Png)
    }
}

/// Writes a copy of `file`'s image with the boxes drawn into `dir`.
pub(crate) fn write_annotated(
    dir: &Path,
    file: &Path,
    mut image: Image,
    format: ImageFormat,
    faces: &[(Rect, [u8; 3])],
) -> anyhow::Result<()> {
    let thickness = (image.width().max(image.height()) / 400).max(2);
    for (face, rgb) in faces {
        draw_rect(&mut image, face, *rgb, thickness);
    }
    let (path, out_format) = annotated_path(dir, file, format);
    let bytes = encode(&image, out_format, &EncodeOptions::default())?;
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Decodes `bytes` (the file the node answered about) and writes its
/// annotated copy into `dir`.
pub(crate) fn write_annotated_bytes(
    dir: &Path,
    file: &Path,
    bytes: &[u8],
    faces: &[(Rect, [u8; 3])],
) -> anyhow::Result<()> {
    let (image, format) = decode(bytes, &DecodeLimits::default())?;
    write_annotated(dir, file, image, format, faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_copies_keep_writable_formats_and_fall_back_to_png() {
        let dir = Path::new("/out");
        assert_eq!(
            annotated_path(dir, Path::new("a/b/photo.jpg"), ImageFormat::Jpeg),
            (PathBuf::from("/out/photo.jpg"), ImageFormat::Jpeg)
        );
        assert_eq!(
            annotated_path(dir, Path::new("yale/subject01.glasses"), ImageFormat::Gif),
            (
                PathBuf::from("/out/subject01.glasses.png"),
                ImageFormat::Png
            )
        );
    }
}
