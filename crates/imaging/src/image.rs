//! The 8-bit interleaved pixel buffer that every Ocellus algorithm works on.

use thiserror::Error;

/// How the channels of one pixel are laid out in an [`Image`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelLayout {
    /// One luma byte per pixel.
    Gray,
    /// Luma then alpha.
    GrayAlpha,
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue, alpha (straight, not premultiplied).
    Rgba,
}

impl PixelLayout {
    /// Bytes per pixel.
    pub const fn channels(self) -> usize {
        match self {
            PixelLayout::Gray => 1,
            PixelLayout::GrayAlpha => 2,
            PixelLayout::Rgb => 3,
            PixelLayout::Rgba => 4,
        }
    }

    /// Whether the last channel is alpha.
    pub const fn has_alpha(self) -> bool {
        matches!(self, PixelLayout::GrayAlpha | PixelLayout::Rgba)
    }

    /// Number of colour channels (alpha excluded).
    pub const fn color_channels(self) -> usize {
        match self {
            PixelLayout::Gray | PixelLayout::GrayAlpha => 1,
            PixelLayout::Rgb | PixelLayout::Rgba => 3,
        }
    }
}

/// Why an [`Image`] could not be built from its parts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    /// The buffer length does not match width x height x channels.
    #[error(
        "buffer of {len} bytes does not hold a {width}x{height} image with {channels} channels"
    )]
    BufferSize {
        /// Given buffer length.
        len: usize,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Channels of the requested layout.
        channels: usize,
    },
    /// Zero width or height.
    #[error("an image must be at least 1x1 (got {width}x{height})")]
    Empty {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
}

/// An 8-bit image stored row by row, channels interleaved, rows packed
/// (no padding), so that a row is `width * channels` bytes.
///
/// Every filter, the detector and the recognizers take this one type, so that
/// data flows between them without conversions.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    layout: PixelLayout,
    data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl Image {
    /// Wraps an existing buffer; fails unless it holds exactly
    /// `width * height * layout.channels()` bytes.
    pub fn from_vec(
        width: u32,
        height: u32,
        layout: PixelLayout,
        data: Vec<u8>,
    ) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(layout.channels()));
        if expected != Some(data.len()) {
            return Err(ImageError::BufferSize {
                len: data.len(),
                width,
                height,
                channels: layout.channels(),
            });
        }
        Ok(Image {
            width,
            height,
            layout,
            data,
        })
    }

    /// A new image with every byte set to `value`.
    ///
    /// # Panics
    /// If `width` or `height` is zero (a programming error, not input).
    pub fn filled(width: u32, height: u32, layout: PixelLayout, value: u8) -> Self {
        assert!(width > 0 && height > 0, "image must be at least 1x1");
        let len = width as usize * height as usize * layout.channels();
        Image {
            width,
            height,
            layout,
            data: vec![value; len],
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Channel layout.
    pub fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// Bytes per pixel.
    pub fn channels(&self) -> usize {
        self.layout.channels()
    }

    /// Bytes per row.
    pub fn row_len(&self) -> usize {
        self.width as usize * self.layout.channels()
    }

    /// All pixel bytes, row-major.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// All pixel bytes, row-major, mutable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Gives back the pixel buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    /// Row `y` as bytes.
    ///
    /// # Panics
    /// If `y >= height`.
    pub fn row(&self, y: u32) -> &[u8] {
        let len = self.row_len();
        let start = y as usize * len;
        &self.data[start..start + len]
    }

    /// The bytes of pixel (x, y).
    ///
    /// # Panics
    /// If the pixel lies outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> &[u8] {
        assert!(x < self.width && y < self.height, "pixel out of bounds");
        let c = self.channels();
        let start = (y as usize * self.width as usize + x as usize) * c;
        &self.data[start..start + c]
    }
}
