//! Pictures of the views without a window: egui runs headless (`frame`), its
//! shapes become SVG (`svg`), its tessellated meshes a PNG (`raster`), the
//! SVG a vector PDF (`pdf`). By default a picture is the figure alone,
//! cropped to what the view marked (`crate::ui::support::figure`).

mod caption;
pub mod frame;
pub mod pdf;
pub mod raster;
pub mod svg;

pub use caption::{caption, model_name, CaptionParts};

use std::io::Read;
use std::path::Path;

use crate::error::{BertError, Result};
use crate::write_guard::{self, Protected};

/// What an exported picture is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
    Pdf,
}

impl Format {
    /// From a file name's extension.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }
}

/// The picture's bytes in `format`.
pub fn encode(picture: &frame::Picture, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Svg => Ok(picture.svg().into_bytes()),
        Format::Png => picture.png().map_err(BertError::Input),
        Format::Pdf => pdf::from_svg(&picture.svg()).map_err(BertError::Input),
    }
}

/// Write `bytes` to `output` (through a temporary file and a rename). A
/// file already there is replaced only when it is a picture — an SVG, a
/// PNG or a PDF, as bertscope writes them — and never when it is protected.
pub fn write(output: &Path, bytes: &[u8], protected: &Protected) -> Result<()> {
    write_guard::check_output_file(output, protected)?;
    if output.exists() && !is_picture(output) {
        return Err(BertError::file(
            output,
            "exists and is not an SVG, PNG or PDF picture; choose another output (bertscope only replaces pictures)",
        ));
    }
    write_guard::write_file_atomically(output, |w| std::io::Write::write_all(w, bytes))
}

/// Whether the file starts like a PNG, a PDF or an SVG document.
fn is_picture(path: &Path) -> bool {
    let mut head = [0u8; 256];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let n = file.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(b"\x89PNG\r\n\x1a\n") || head.starts_with(b"%PDF-") {
        return true;
    }
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pictures_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let protected = Protected::default();
        let notes = dir.path().join("notes.png");
        std::fs::write(&notes, "my notes, not a picture").unwrap();
        let err = write(&notes, b"<svg/>", &protected)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an SVG, PNG or PDF"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            "my notes, not a picture"
        );

        let svg = dir.path().join("view.svg");
        write(&svg, b"<svg>1</svg>", &protected).unwrap();
        write(&svg, b"<svg>2</svg>", &protected).unwrap();
        assert_eq!(std::fs::read_to_string(&svg).unwrap(), "<svg>2</svg>");
        let png = dir.path().join("view.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\nold").unwrap();
        write(&png, b"\x89PNG\r\n\x1a\nnew", &protected).unwrap();
        assert!(
            write(dir.path(), b"<svg/>", &protected).is_err(),
            "a directory"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("bertscope-tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn formats_come_from_names() {
        assert_eq!(Format::of(Path::new("a/b.SVG")), Some(Format::Svg));
        assert_eq!(Format::of(Path::new("b.png")), Some(Format::Png));
        assert_eq!(Format::of(Path::new("b.PDF")), Some(Format::Pdf));
        assert_eq!(Format::of(Path::new("b.jpg")), None);
    }
}
