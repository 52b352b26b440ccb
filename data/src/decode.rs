//! Image files to RGB pixels. JPEG goes straight to `zune-jpeg` (pure Rust,
//! SIMD): measured on this project's 500x375 quality-90 test JPEGs, one
//! thread, it decoded 1151 images/s against 640 through the `image` crate's
//! generic path (which converts once more) and 1065 for libjpeg-turbo 2.1
//! (docs/benchmarks.md). Other formats (PNG, ...) go through `image`. The
//! size is read from the header and checked against the pixel limit before
//! any pixel is allocated.

use std::path::Path;

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// Decodes one file to RGB, refusing images above `max_pixels` before
/// allocating them.
pub fn decode_rgb(path: &Path, max_pixels: u64) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_rgb_bytes(&bytes, max_pixels)
}

/// [`decode_rgb`] on the bytes of a file.
pub fn decode_rgb_bytes(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg(bytes, max_pixels);
    }
    use image::ImageDecoder;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(4));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64, max_pixels)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    Ok(img.to_rgb8())
}

fn check_size(w: u64, h: u64, max_pixels: u64) -> Result<(), String> {
    if w * h > max_pixels {
        return Err(format!("{w}x{h} pixels exceed the limit of {max_pixels}"));
    }
    Ok(())
}

fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| format!("{e:?}"))?;
    let info = decoder.info().ok_or("a JPEG without a frame header")?;
    let (w, h) = (info.width as u32, info.height as u32);
    check_size(w as u64, h as u64, max_pixels)?;
    let pixels = decoder.decode().map_err(|e| format!("{e:?}"))?;
    if decoder.output_colorspace() != Some(ColorSpace::RGB) {
        return Err(format!(
            "JPEG decoded to {:?}, not RGB",
            decoder.output_colorspace()
        ));
    }
    RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| format!("a {w}x{h} JPEG decoded to the wrong number of pixels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(img: &image::DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn jpeg_grey_and_png_decode_to_rgb_like_the_image_crate() {
        let rgb = RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
        });
        let bytes = jpeg(&image::DynamicImage::ImageRgb8(rgb));
        let ours = decode_rgb_bytes(&bytes, 1 << 20).unwrap();
        let theirs = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), (40, 30));
        let max = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(max <= 2, "max difference {max}");
        let grey = image::GrayImage::from_fn(16, 8, |x, _| image::Luma([(x * 16) as u8]));
        let g = decode_rgb_bytes(&jpeg(&image::DynamicImage::ImageLuma8(grey)), 1 << 20).unwrap();
        assert_eq!(g.dimensions(), (16, 8));
        let p = g.get_pixel(15, 3).0;
        assert!(p[0] == p[1] && p[1] == p[2] && p[0] > 200, "{p:?}");
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(RgbImage::new(5, 4))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode_rgb_bytes(&png, 100).unwrap().dimensions(), (5, 4));
        let e = decode_rgb_bytes(&bytes, 100).unwrap_err();
        assert!(e.contains("40x30 pixels exceed the limit of 100"), "{e}");
        // A truncated JPEG must not panic (zune may fill the rest or refuse it).
        let _ = decode_rgb_bytes(&bytes[..200], 1 << 20);
        assert!(decode_rgb_bytes(&bytes[..3], 1 << 20).is_err());
    }
}
