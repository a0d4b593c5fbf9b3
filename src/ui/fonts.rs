//! Fonts: egui's defaults plus a CJK font found on the system, so Chinese and
//! Japanese render (egui ships none).

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

/// Install the fonts; returns the CJK font's path, or `None` when none was found
/// (Chinese then renders as boxes and the app says so).
pub fn install(ctx: &egui::Context) -> Option<String> {
    let mut fonts = FontDefinitions::default();
    let found = CJK_FONTS.iter().find_map(|path| {
        std::fs::read(path)
            .ok()
            .map(|bytes| (path.to_string(), bytes))
    });
    if let Some((_, bytes)) = &found {
        fonts
            .font_data
            .insert("cjk".into(), Arc::new(FontData::from_owned(bytes.clone())));
        for family in [FontFamily::Proportional, FontFamily::Monospace] {
            fonts.families.entry(family).or_default().push("cjk".into());
        }
    }
    ctx.set_fonts(fonts);
    found.map(|(path, _)| path)
}
