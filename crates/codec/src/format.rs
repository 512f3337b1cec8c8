//! The file formats Ocellus reads and writes.

use std::fmt;

/// An encoded image format Ocellus knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (read and write).
    Jpeg,
    /// PNG (read and write).
    Png,
    /// WebP (read; lossless write).
    WebP,
    /// GIF (read, first frame).
    Gif,
    /// Windows bitmap (read).
    Bmp,
    /// TIFF (read).
    Tiff,
    /// PGM/PPM/PBM/PAM (read).
    Pnm,
}

impl ImageFormat {
    /// Guesses the format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        image::guess_format(bytes).ok().and_then(Self::from_image)
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            ImageFormat::Gif => "gif",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Tiff => "tiff",
            ImageFormat::Pnm => "pnm",
        }
    }

    /// Its media type (`Content-Type`).
    pub fn mime(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::WebP => "image/webp",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Bmp => "image/bmp",
            ImageFormat::Tiff => "image/tiff",
            ImageFormat::Pnm => "image/x-portable-anymap",
        }
    }

    /// Whether Ocellus can write this format.
    pub fn can_encode(self) -> bool {
        matches!(
            self,
            ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
        )
    }

    /// Parses a user-facing name: `jpeg`/`jpg`, `png`, `webp`, ...
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => ImageFormat::Jpeg,
            "png" => ImageFormat::Png,
            "webp" => ImageFormat::WebP,
            "gif" => ImageFormat::Gif,
            "bmp" => ImageFormat::Bmp,
            "tif" | "tiff" => ImageFormat::Tiff,
            "pnm" | "pgm" | "ppm" | "pbm" | "pam" => ImageFormat::Pnm,
            _ => return None,
        })
    }

    pub(crate) fn from_image(format: image::ImageFormat) -> Option<Self> {
        Some(match format {
            image::ImageFormat::Jpeg => ImageFormat::Jpeg,
            image::ImageFormat::Png => ImageFormat::Png,
            image::ImageFormat::WebP => ImageFormat::WebP,
            image::ImageFormat::Gif => ImageFormat::Gif,
            image::ImageFormat::Bmp => ImageFormat::Bmp,
            image::ImageFormat::Tiff => ImageFormat::Tiff,
            image::ImageFormat::Pnm => ImageFormat::Pnm,
            _ => return None,
        })
    }

    pub(crate) fn to_image(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Gif => image::ImageFormat::Gif,
            ImageFormat::Bmp => image::ImageFormat::Bmp,
            ImageFormat::Tiff => image::ImageFormat::Tiff,
            ImageFormat::Pnm => image::ImageFormat::Pnm,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::WebP => "WebP",
            ImageFormat::Gif => "GIF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Pnm => "PNM",
        })
    }
}
