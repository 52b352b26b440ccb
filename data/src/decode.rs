//! Image files to RGB pixels.
//!
//! JPEG goes to libjpeg-turbo 3.1 (built from source with its SIMD code),
//! which can decode only the part of an image a training crop needs
//! ([`decode_region_bytes`]: the region's MCU columns, stopping after its
//! last row). Measured on 500x375 quality-90 JPEGs, one thread: a `zf`
//! crop's region at 1183 images/s, the whole image at 1031, zune-jpeg's
//! whole image at 931 to 955 (docs/benchmarks.md). libjpeg-turbo is also the
//! decoder behind PIL, so these are the pixels torchvision sees. What it
//! refuses (CMYK, some damaged streams) goes to `zune-jpeg`; other formats
//! (PNG, ...) to `image`. The size is read from the header and checked
//! against the pixel limit before any pixel is allocated.
//!
//! libjpeg-turbo's handle (one per thread) is dropped after any image it
//! fails on: a damaged header leaves it mid-header, and its next header read
//! then answers with an earlier image's size (a buffer sized from that was
//! overrun, a heap corruption found by packing hostile images on two
//! threads). The size it reports must also equal the frame header's, read
//! here, and it may decode no more pixels than that.

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
    if is_jpeg(bytes) {
        if let Some(r) = turbo::decode_region(bytes, max_pixels, |w, h| (0, 0, w, h))? {
            return Ok(r.pixels);
        }
    }
    decode_without_turbo(bytes, max_pixels)
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// What libjpeg-turbo does not decode: JPEG it refuses through zune-jpeg
/// (which also reads CMYK), other formats through `image`.
fn decode_without_turbo(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    if is_jpeg(bytes) {
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

/// A decoded part of an image.
#[derive(Debug, Clone)]
pub struct Region {
    /// Size `(w, h)` of the whole image.
    pub full: (u32, u32),
    /// Where `pixels` starts in the whole image, `(x, y)`.
    pub origin: (u32, u32),
    /// The decoded pixels: at least the asked region (JPEG widens it to
    /// whole MCU columns; other formats and fallbacks decode everything).
    pub pixels: RgbImage,
}

/// Decodes the part of an image that `region` asks for once the size is
/// known: `region(w, h)` gives `(x, y, w, h)` in whole-image pixels. JPEG
/// decodes only that part (libjpeg-turbo's cropped decoding); anything
/// libjpeg-turbo refuses or warns about (CMYK, a damaged stream) and other
/// formats are decoded whole by [`decode_rgb_bytes`], so the answer is the
/// same, only slower.
pub fn decode_region_bytes(
    bytes: &[u8],
    max_pixels: u64,
    region: impl FnOnce(u32, u32) -> (u32, u32, u32, u32),
) -> Result<Region, String> {
    if is_jpeg(bytes) {
        if let Some(r) = turbo::decode_region(bytes, max_pixels, region)? {
            return Ok(r);
        }
    }
    let pixels = decode_without_turbo(bytes, max_pixels)?;
    Ok(Region {
        full: pixels.dimensions(),
        origin: (0, 0),
        pixels,
    })
}

/// libjpeg-turbo's TurboJPEG 3 API, one handle per thread.
mod turbo {
    use std::cell::RefCell;

    use image::RgbImage;
    use turbojpeg_sys as tj;

    use super::{check_size, Region};

    struct Handle(tj::tjhandle);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from tj3Init and is destroyed once.
            unsafe { tj::tj3Destroy(self.0) }
        }
    }

    thread_local! {
        static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
    }

    /// `Ok(None)`: libjpeg-turbo could not decode it; the caller decodes the
    /// whole image another way (and reports that way's error, if any).
    pub(super) fn decode_region(
        bytes: &[u8],
        max_pixels: u64,
        region: impl FnOnce(u32, u32) -> (u32, u32, u32, u32),
    ) -> Result<Option<Region>, String> {
        HANDLE.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                // SAFETY: plain constructor; null on failure.
                let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) };
                if h.is_null() {
                    return Ok(None);
                }
                *cell = Some(Handle(h));
            }
            let h = cell.as_ref().map(|h| h.0).expect("set above");
            // SAFETY: `h` is a live decompression handle owned by this
            // thread, clean (every failure drops it below); `bytes` outlives
            // the calls; the output buffer is sized from a header whose
            // size matches the frame header read here independently.
            let answer = unsafe { decode_with(h, bytes, max_pixels, region) };
            if !matches!(answer, Ok(Some(_))) {
                // A failed header read leaves libjpeg-turbo mid-header, and
                // the next header read on the handle would then answer with
                // the size of an earlier image: a fresh handle next time.
                *cell = None;
            }
            answer
        })
    }

    unsafe fn decode_with(
        h: tj::tjhandle,
        bytes: &[u8],
        max_pixels: u64,
        region: impl FnOnce(u32, u32) -> (u32, u32, u32, u32),
    ) -> Result<Option<Region>, String> {
        let Some((w, hh, subsamp)) = read_header(h, bytes, max_pixels)? else {
            return Ok(None);
        };
        let Some((x0, y0, cw, ch)) = mcu_region(w, hh, subsamp, region(w, hh)) else {
            return Ok(None);
        };
        // A zero region is the whole image.
        let crop = match (x0, y0, cw, ch) == (0, 0, w, hh) {
            true => tj::tjregion {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            },
            false => tj::tjregion {
                x: x0 as i32,
                y: y0 as i32,
                w: cw as i32,
                h: ch as i32,
            },
        };
        if tj::tj3SetCroppingRegion(h, crop) != 0 {
            return Ok(None);
        }
        let mut pixels = vec![0u8; cw as usize * ch as usize * 3];
        let status = tj::tj3Decompress8(
            h,
            bytes.as_ptr(),
            bytes.len() as _,
            pixels.as_mut_ptr(),
            (cw * 3) as i32,
            tj::TJPF_TJPF_RGB,
        );
        if status != 0 {
            return Ok(None);
        }
        let pixels = RgbImage::from_raw(cw, ch, pixels).expect("cw x ch RGB bytes");
        Ok(Some(Region {
            full: (w, hh),
            origin: (x0, y0),
            pixels,
        }))
    }

    /// The image's `(width, height, subsampling)` from its header, with
    /// libjpeg-turbo's pixel limit set to that size; `None` for what this
    /// path does not decode (lossless, 12-bit, a header that disagrees with
    /// the frame), `Err` past `max_pixels`.
    unsafe fn read_header(
        h: tj::tjhandle,
        bytes: &[u8],
        max_pixels: u64,
    ) -> Result<Option<(u32, u32, i32)>, String> {
        if tj::tj3DecompressHeader(h, bytes.as_ptr(), bytes.len() as _) != 0 {
            return Ok(None);
        }
        let get = |p: tj::TJPARAM| tj::tj3Get(h, p as i32);
        let (w, hh) = (
            get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
            get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
        );
        let subsamp = get(tj::TJPARAM_TJPARAM_SUBSAMP);
        let lossless = get(tj::TJPARAM_TJPARAM_LOSSLESS);
        let precision = get(tj::TJPARAM_TJPARAM_PRECISION);
        if w <= 0 || hh <= 0 || lossless != 0 || precision != 8 {
            return Ok(None);
        }
        let (w, hh) = (w as u32, hh as u32);
        // The output buffer is sized from this answer, so it must be this
        // image's: checked against the frame header, read here.
        if super::frame_size(bytes) != Some((w, hh)) {
            return Ok(None);
        }
        check_size(w as u64, hh as u64, max_pixels)?;
        // And libjpeg-turbo refuses to decode more pixels than that.
        let Ok(limit) = i32::try_from(w as u64 * hh as u64) else {
            return Ok(None);
        };
        if tj::tj3Set(h, tj::TJPARAM_TJPARAM_MAXPIXELS as i32, limit) != 0 {
            return Ok(None);
        }
        Ok(Some((w, hh, subsamp)))
    }

    /// The region `(x, y, w, h)` asked of a `w` x `hh` image, clamped to it
    /// and widened to whole MCU columns on the left (libjpeg-turbo crops
    /// only there): `(x0, y0, width, height)`; `None` for an unknown
    /// subsampling.
    fn mcu_region(
        w: u32,
        hh: u32,
        subsamp: i32,
        (x, y, rw, rh): (u32, u32, u32, u32),
    ) -> Option<(u32, u32, u32, u32)> {
        let (x, y) = (x.min(w - 1), y.min(hh - 1));
        let (rw, rh) = (rw.clamp(1, w - x), rh.clamp(1, hh - y));
        // turbojpeg.h's `tjMCUWidth` (a header-only table): 4:4:4, 4:2:2,
        // 4:2:0, grey, 4:4:0, 4:1:1, 4:4:1.
        const MCU_WIDTH: [u32; 7] = [8, 16, 16, 8, 8, 32, 8];
        let mcu = *MCU_WIDTH.get(usize::try_from(subsamp).ok()?)?;
        let x0 = x / mcu * mcu;
        Some(match x0 == 0 && y == 0 && rw == w && rh == hh {
            true => (0, 0, w, hh),
            false => (x0, y, rw + (x - x0), rh),
        })
    }
}

/// The `(width, height)` of a JPEG's frame header (its first SOF marker),
/// found by walking the marker segments from SOI the way libjpeg's marker
/// reader does (bytes between markers skipped, fill bytes and stuffed zeros
/// passed over); `None` if there is none before the scan, the end of the
/// image or the end of the bytes.
fn frame_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let be16 = |at: usize| -> Option<usize> {
        Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize)
    };
    let mut i = 2;
    loop {
        while *bytes.get(i)? != 0xFF {
            i += 1;
        }
        while *bytes.get(i)? == 0xFF {
            i += 1;
        }
        let marker = bytes[i];
        i += 1;
        match marker {
            // A stuffed zero, TEM and RSTn: no segment follows.
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            // SOFn (not DHT, JPG or DAC): length, precision, height, width.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Some((be16(i + 5)? as u32, be16(i + 3)? as u32));
            }
            // SOI again, EOI, SOS: no frame header before them.
            0xD8..=0xDA => return None,
            _ => {
                let len = be16(i)?;
                if len < 2 {
                    return None;
                }
                i += len;
            }
        }
    }
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

    /// A textured 4:2:0 JPEG of `w` x `h` (the synthetic set's renderer).
    fn textured_jpeg(w: u32, h: u32, seed: u64) -> Vec<u8> {
        let img = crate::synth::render(3, w, h, &mut crate::rng::SplitMix64::new(seed));
        jpeg(&image::DynamicImage::ImageRgb8(img))
    }

    #[test]
    fn a_crop_from_the_decoded_region_equals_the_crop_from_the_whole_image() {
        use crate::rng::SplitMix64;
        use crate::{Augment, Transform};
        for (w, h) in [(500, 375), (333, 500), (1024, 700)] {
            let bytes = textured_jpeg(w, h, w as u64);
            let whole = decode_rgb_bytes(&bytes, 1 << 24).unwrap();
            let augments = [
                Augment::Zf,
                Augment::ZfFixed,
                Augment::Rrc,
                Augment::Eval,
                Augment::TenCrop,
            ];
            for augment in augments {
                let t = Transform {
                    augment,
                    lighting: if augment.is_training() { 0.1 } else { 0.0 },
                    ..Transform::default()
                };
                for seed in 0..6 {
                    let mut expected = vec![0f32; t.sample_len()];
                    t.apply(&whole, &mut SplitMix64::new(seed), &mut expected);
                    let mut rng = SplitMix64::new(seed);
                    let mut g = None;
                    let part = decode_region_bytes(&bytes, 1 << 24, |w, h| {
                        let drawn = t.geometry(w, h, &mut rng);
                        g = Some(drawn);
                        t.source_region(w, h, &drawn)
                    })
                    .unwrap();
                    let (pw, ph) = part.pixels.dimensions();
                    assert_eq!(part.full, (w, h));
                    if augment != Augment::Eval || w < 1000 {
                        assert!(pw * ph < w * h, "{augment:?} {w}x{h}: decoded it all");
                    }
                    let mut got = vec![0f32; t.sample_len()];
                    t.render(&part.pixels, part.full, part.origin, &g.unwrap(), &mut got);
                    let worst = got
                        .iter()
                        .zip(&expected)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    // One level of 255 is 0.017 after normalization.
                    assert!(worst < 1e-4, "{augment:?} {w}x{h} seed {seed}: {worst}");
                }
            }
        }
    }

    #[test]
    fn regions_outside_the_image_are_clamped_and_huge_images_refused_first() {
        let bytes = textured_jpeg(120, 90, 1);
        let r = decode_region_bytes(&bytes, 1 << 20, |_, _| (500, 500, 50, 50)).unwrap();
        assert_eq!(r.full, (120, 90));
        assert!(r.origin.0 <= 119 && r.origin.1 <= 89, "{:?}", r.origin);
        assert!(r.pixels.width() >= 1 && r.pixels.height() >= 1);
        let mut asked = false;
        let e = decode_region_bytes(&bytes, 1000, |w, h| {
            asked = true;
            (0, 0, w, h)
        })
        .unwrap_err();
        assert!(e.contains("120x90 pixels exceed the limit of 1000"), "{e}");
        assert!(
            !asked,
            "the region was asked for before the size was checked"
        );
    }

    /// A damaged header (a JPEG cut inside its Huffman tables) leaves
    /// libjpeg-turbo's handle mid-header; the next image on the same thread
    /// must still be read with its own size (it was once read with the size
    /// of the image before the damaged one, and decoded past its buffer).
    #[test]
    fn an_image_after_a_damaged_header_is_decoded_at_its_own_size() {
        let small = jpeg(&image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(
            64,
            48,
            |x, _| image::Luma([(x * 4) as u8]),
        )));
        let big_rgb = RgbImage::from_fn(80, 60, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 4) as u8, 90])
        });
        let big = jpeg(&image::DynamicImage::ImageRgb8(big_rgb.clone()));
        let header_end = big
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("a start of scan");
        // Cut inside the last Huffman table, before the start of scan.
        let damaged = &big[..header_end - 20];
        for round in 0..4 {
            assert_eq!(
                decode_rgb_bytes(&small, 1 << 20).unwrap().dimensions(),
                (64, 48)
            );
            assert!(decode_rgb_bytes(damaged, 1 << 20).is_err(), "round {round}");
            // Straight after the damaged header: libjpeg-turbo (a fresh
            // handle) decodes the next one, only the asked part of it, not
            // the whole-image fallback.
            let part = decode_region_bytes(&big, 1 << 20, |_, _| (40, 30, 16, 16)).unwrap();
            assert_eq!(part.full, (80, 60), "round {round}");
            assert!(part.pixels.width() < 80, "round {round}: decoded it all");
            assert!(decode_rgb_bytes(damaged, 1 << 20).is_err(), "round {round}");
            let got = decode_rgb_bytes(&big, 1 << 20).unwrap();
            assert_eq!(got.dimensions(), (80, 60), "round {round}");
            let worst = got
                .as_raw()
                .iter()
                .zip(big_rgb.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst < 40, "round {round}: {worst}");
        }
    }

    #[test]
    fn the_frame_header_gives_the_size_and_streams_without_one_give_none() {
        let img = jpeg(&image::DynamicImage::ImageRgb8(RgbImage::new(123, 45)));
        assert_eq!(frame_size(&img), Some((123, 45)));
        let sof = img.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(frame_size(&img[..sof]), None);
        assert_eq!(frame_size(&img[..sof + 6]), None);
        assert_eq!(frame_size(b"\x89PNG\r\n"), None);
        // Bytes between segments and fill bytes are passed over, as libjpeg does.
        let mut padded = img[..sof].to_vec();
        padded.extend_from_slice(&[0x12, 0x34, 0xFF, 0xFF]);
        padded.extend_from_slice(&img[sof..]);
        assert_eq!(frame_size(&padded), Some((123, 45)));
    }
}
