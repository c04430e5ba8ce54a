//! QR code images for provisioning URIs, shaped like the seed's `qrcode.QRCode(box_size=10,
//! border=5)`: 10 px per module, a 5-module white border, black on white, error correction M,
//! the smallest version that fits.
//!
//! The `qrcode` crate gives the module matrix; the SVG and PNG are written here. The PNG
//! container is hand-written (signature, IHDR, one zlib IDAT, IEND) because the `image` crate
//! would add about 700 KB to each wasm build for what is a few dozen lines.

use crate::ErrorCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use std::fmt::Write as _;

/// Pixels per module.
pub const BOX_SIZE: usize = 10;
/// White border, in modules.
pub const BORDER: usize = 5;
/// Most input bytes considered: a version 40 code at level L holds 2953 bytes; at M, 2331.
pub const MAX_DATA_BYTES: usize = 2953;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// The module matrix: `width` × `width` booleans, row-major, `true` = dark.
struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    fn encode(data: &str) -> Result<Self, QrError> {
        if data.len() > MAX_DATA_BYTES {
            return Err(QrError::TooLong);
        }
        let code = qrcode::QrCode::new(data.as_bytes()).map_err(|e| match e {
            qrcode::types::QrError::DataTooLong => QrError::TooLong,
            _ => QrError::EncodeFailed,
        })?;
        let width = code.width();
        let dark: Vec<bool> = code
            .to_colors()
            .into_iter()
            .map(|c| c == qrcode::Color::Dark)
            .collect();
        if dark.len() != width.saturating_mul(width) {
            return Err(QrError::EncodeFailed);
        }
        Ok(Self { width, dark })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width
            && self
                .dark
                .get(y.saturating_mul(self.width).saturating_add(x))
                .copied()
                .unwrap_or(false)
    }

    /// Image side in pixels, border included.
    fn pixels(&self) -> usize {
        (self.width + 2 * BORDER) * BOX_SIZE
    }
}

/// An SVG image of `data` as a QR code.
///
/// # Errors
/// [`QrError::TooLong`] when `data` does not fit in a version 40 code at level M.
pub fn qr_svg(data: &str) -> Result<String, QrError> {
    let m = Matrix::encode(data)?;
    let px = m.pixels();
    let mut svg = String::new();
    // `write!` into a String cannot fail; the results are ignored rather than unwrapped.
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" \
         height=\"{px}\" viewBox=\"0 0 {px} {px}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{px}\" height=\"{px}\" fill=\"#ffffff\"/><path fill=\"#000000\" d=\""
    );
    for y in 0..m.width {
        let mut x = 0;
        while x < m.width {
            if !m.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < m.width && m.is_dark(x, y) {
                x += 1;
            }
            let run = (x - start) * BOX_SIZE;
            let _ = write!(
                svg,
                "M{},{}h{run}v{BOX_SIZE}h-{run}z",
                (start + BORDER) * BOX_SIZE,
                (y + BORDER) * BOX_SIZE
            );
        }
    }
    svg.push_str("\"/></svg>");
    Ok(svg)
}

/// A 1-bit grayscale PNG of `data` as a QR code.
///
/// # Errors
/// [`QrError::TooLong`] when `data` does not fit in a version 40 code at level M.
pub fn qr_png(data: &str) -> Result<Vec<u8>, QrError> {
    let m = Matrix::encode(data)?;
    let px = m.pixels();
    let side = u32::try_from(px).map_err(|_| QrError::EncodeFailed)?;
    let row_bytes = px.div_ceil(8);

    // One module row becomes BOX_SIZE identical pixel rows: filter byte 0, then bits with
    // 1 = white, most significant first; padding bits are white too.
    let mut raw = Vec::with_capacity((row_bytes + 1) * px);
    let white_row: Vec<u8> = std::iter::once(0).chain(vec![0xff; row_bytes]).collect();
    for _ in 0..BORDER * BOX_SIZE {
        raw.extend_from_slice(&white_row);
    }
    for y in 0..m.width {
        let mut row = white_row.clone();
        for x in 0..m.width {
            if !m.is_dark(x, y) {
                continue;
            }
            let first = (x + BORDER) * BOX_SIZE;
            for p in first..first + BOX_SIZE {
                if let Some(byte) = row.get_mut(1 + p / 8) {
                    *byte &= !(0x80 >> (p % 8));
                }
            }
        }
        for _ in 0..BOX_SIZE {
            raw.extend_from_slice(&row);
        }
    }
    for _ in 0..BORDER * BOX_SIZE {
        raw.extend_from_slice(&white_row);
    }

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    // Bit depth 1, colour type 0 (grayscale), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]);

    let mut png = Vec::new();
    png.extend_from_slice(&PNG_SIGNATURE);
    push_chunk(&mut png, *b"IHDR", &ihdr)?;
    push_chunk(
        &mut png,
        *b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9),
    )?;
    push_chunk(&mut png, *b"IEND", &[])?;
    Ok(png)
}

/// [`qr_png`] in standard base64 with padding, like the seed's `base64.b64encode`.
///
/// # Errors
/// As [`qr_png`].
pub fn qr_png_base64(data: &str) -> Result<String, QrError> {
    Ok(STANDARD.encode(qr_png(data)?))
}

fn push_chunk(png: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) -> Result<(), QrError> {
    let len = u32::try_from(data.len()).map_err(|_| QrError::EncodeFailed)?;
    png.extend_from_slice(&len.to_be_bytes());
    png.extend_from_slice(&kind);
    png.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&kind);
    crc.update(data);
    png.extend_from_slice(&crc.finalize().to_be_bytes());
    Ok(())
}

/// Why a QR image could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrError {
    /// The data does not fit in the largest QR code.
    TooLong,
    /// The encoder failed for another reason.
    EncodeFailed,
}

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => f.write_str(
                "the data is too long for a QR code (at most about 2300 bytes); shorten the \
                 account name or issuer",
            ),
            Self::EncodeFailed => f.write_str("the QR code could not be encoded"),
        }
    }
}

impl std::error::Error for QrError {}

impl ErrorCode for QrError {
    fn code(&self) -> &'static str {
        match self {
            Self::TooLong => "qr_too_long",
            Self::EncodeFailed => "qr_failed",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const URI: &str = "otpauth://totp/MyApp:alice%40example.com?\
                       secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=MyApp";

    struct Decoded {
        width: u32,
        height: u32,
        ihdr_tail: [u8; 5],
        /// Row-major, `true` = black.
        black: Vec<bool>,
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b.try_into().unwrap())
    }

    /// A test-only decoder for exactly what `qr_png` writes; checks every CRC on the way.
    fn decode(png: &[u8]) -> Decoded {
        assert_eq!(&png[..8], &PNG_SIGNATURE);
        let mut pos = 8;
        let mut kinds = Vec::new();
        let (mut ihdr, mut idat) = (Vec::new(), Vec::new());
        while pos < png.len() {
            let len = be32(&png[pos..pos + 4]) as usize;
            let kind = &png[pos + 4..pos + 8];
            let data = &png[pos + 8..pos + 8 + len];
            let crc = be32(&png[pos + 8 + len..pos + 12 + len]);
            let mut h = crc32fast::Hasher::new();
            h.update(kind);
            h.update(data);
            assert_eq!(
                h.finalize(),
                crc,
                "CRC of {:?}",
                String::from_utf8_lossy(kind)
            );
            kinds.push(String::from_utf8(kind.to_vec()).unwrap());
            match kind {
                b"IHDR" => ihdr = data.to_vec(),
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            pos += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_eq!(ihdr.len(), 13);
        let (width, height) = (be32(&ihdr[0..4]), be32(&ihdr[4..8]));
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).unwrap();
        let row_bytes = (width as usize).div_ceil(8);
        assert_eq!(raw.len(), (row_bytes + 1) * height as usize);
        let mut black = Vec::new();
        for row in raw.chunks(row_bytes + 1) {
            assert_eq!(row[0], 0, "filter type None");
            for x in 0..width as usize {
                black.push(row[1 + x / 8] & (0x80 >> (x % 8)) == 0);
            }
        }
        Decoded {
            width,
            height,
            ihdr_tail: ihdr[8..13].try_into().unwrap(),
            black,
        }
    }

    #[test]
    fn png_header_ok() {
        let png = qr_png(URI).unwrap();
        let d = decode(&png);
        let modules = qrcode::QrCode::new(URI).unwrap().width() as u32;
        assert_eq!(d.width, (modules + 10) * 10);
        assert_eq!(d.height, d.width);
        assert_eq!(d.ihdr_tail, [1, 0, 0, 0, 0]);
        assert_eq!(&png[12..16], b"IHDR");
    }

    #[test]
    fn png_pixels_match_modules_ok() {
        for data in [URI, "a", &"x".repeat(500)] {
            let code = qrcode::QrCode::new(data).unwrap();
            assert_eq!(code.error_correction_level(), qrcode::EcLevel::M);
            let n = code.width();
            let modules: Vec<bool> = code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            let d = decode(&qr_png(data).unwrap());
            let side = d.width as usize;
            assert_eq!(side, (n + 2 * BORDER) * BOX_SIZE);
            for py in 0..side {
                for px in 0..side {
                    let (mx, my) = (px / BOX_SIZE, py / BOX_SIZE);
                    let inside =
                        (BORDER..BORDER + n).contains(&mx) && (BORDER..BORDER + n).contains(&my);
                    let expected = inside && modules[(my - BORDER) * n + (mx - BORDER)];
                    assert_eq!(d.black[py * side + px], expected, "pixel {px},{py}");
                }
            }
        }
    }

    #[test]
    fn png_base64_ok() {
        let b64 = qr_png_base64(URI).unwrap();
        assert!(b64.starts_with("iVBORw0KGgo"));
        assert_eq!(STANDARD.decode(&b64).unwrap(), qr_png(URI).unwrap());
    }

    #[test]
    fn svg_ok() {
        let svg = qr_svg(URI).unwrap();
        let n = qrcode::QrCode::new(URI).unwrap().width();
        let px = (n + 10) * 10;
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(&format!("width=\"{px}\" height=\"{px}\"")));
        assert!(svg.contains(&format!("viewBox=\"0 0 {px} {px}\"")));
        // The top-left finder pattern starts right after the border.
        assert!(svg.contains("M50,50h70v10h-70z"));
    }

    #[test]
    fn too_long_fails() {
        let long = "x".repeat(2332);
        assert_eq!(qr_png(&long), Err(QrError::TooLong));
        assert_eq!(qr_svg(&long), Err(QrError::TooLong));
        assert_eq!(qr_png_base64(&"x".repeat(100_000)), Err(QrError::TooLong));
        assert_eq!(QrError::TooLong.code(), "qr_too_long");
        assert!(qr_png(&"x".repeat(2331)).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn arbitrary_data_never_panics(data in ".{0,200}") {
            let png = qr_png(&data).unwrap();
            prop_assert_eq!(&png[..8], &PNG_SIGNATURE);
            prop_assert!(qr_svg(&data).unwrap().contains("<svg"));
        }
    }
}
