//! Fonts: egui's defaults plus a CJK font, so Chinese and Japanese render
//! (egui ships none). A full system CJK font is preferred; the bundled subset
//! (`assets/fonts/cjk-subset.ttf`: the examples', fixtures' and demo data's characters) is the fallback and
//! what tests use, for identical rendering everywhere.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// Where Debian/Ubuntu/Fedora/macOS/Windows keep a CJK font, best first.
const CJK_FONTS: [&str; 8] = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:\\Windows\\Fonts\\msyh.ttc",
];

const BUNDLED_CJK: &[u8] = include_bytes!("../../../assets/fonts/cjk-subset.ttf");

/// Which CJK font was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CjkFont {
    System(String),
    /// Only the bundled subset: other CJK characters render as boxes.
    BundledSubset,
}

/// A full CJK font of this machine: its path and bytes.
fn system_cjk() -> Option<(String, Vec<u8>)> {
    CJK_FONTS.iter().find_map(|path| {
        std::fs::read(path)
            .ok()
            .map(|bytes| (path.to_string(), bytes))
    })
}

/// The faces a document drawn from the app's pictures needs (a PDF): egui's
/// own, a full CJK font when this machine has one, the bundled subset.
pub fn document_fonts() -> Vec<Vec<u8>> {
    let mut faces: Vec<Vec<u8>> = FontDefinitions::default()
        .font_data
        .values()
        .map(|data| (*data.font).as_ref().to_vec())
        .collect();
    faces.extend(system_cjk().map(|(_, bytes)| bytes));
    faces.push(BUNDLED_CJK.to_vec());
    faces
}

/// Install the fonts. `system`: look for a full CJK font on this machine first.
pub fn install(ctx: &egui::Context, system: bool) -> CjkFont {
    let mut fonts = FontDefinitions::default();
    let found = system.then(system_cjk).flatten();
    let (choice, data) = match found {
        Some((path, bytes)) => (CjkFont::System(path), FontData::from_owned(bytes)),
        None => (CjkFont::BundledSubset, FontData::from_static(BUNDLED_CJK)),
    };
    fonts.font_data.insert("cjk".into(), Arc::new(data));
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts.families.entry(family).or_default().push("cjk".into());
    }
    ctx.set_fonts(fonts);
    choice
}
