//! A vector PDF of an exported picture, for LaTeX: the picture's SVG read by
//! `usvg` with the app's own fonts, written by `svg2pdf` (text stays text,
//! its fonts embedded, so it can be searched and copied).

use std::sync::Arc;

use svg2pdf::usvg;

/// The PDF of `svg` (one page the size of the picture).
pub fn from_svg(svg: &str) -> Result<Vec<u8>, String> {
    let mut options = usvg::Options::default();
    let mut db = usvg::fontdb::Database::new();
    for face in crate::ui::support::fonts::document_fonts() {
        db.load_font_data(face);
    }
    db.set_sans_serif_family("Ubuntu");
    options.fontdb = Arc::new(db);
    let tree = usvg::Tree::from_str(svg, &options)
        .map_err(|e| format!("cannot read the picture's SVG: {e}"))?;
    svg2pdf::to_pdf(
        &tree,
        svg2pdf::ConversionOptions::default(),
        svg2pdf::PageOptions::default(),
    )
    .map_err(|e| format!("cannot write the PDF: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_with_its_text() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40" viewBox="0 0 200 40"><text x="10" y="25" font-size="14">animal street</text></svg>"#;
        let pdf = from_svg(svg).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(from_svg("not an svg").unwrap_err().contains("cannot read"));
    }
}
