//! The page at `/`: one HTML document with uPlot and the app inlined, compiled into the binary
//! (no CDN, works offline; one request, so it carries the token like every other).

use std::sync::OnceLock;

/// uPlot 1.6.32 from npm (`dist/uPlot.iife.min.js`), MIT (see `assets/uPlot.LICENSE`).
const UPLOT_JS: &str = include_str!("assets/uPlot.iife.min.js");
/// uPlot's stylesheet.
const UPLOT_CSS: &str = include_str!("assets/uPlot.min.css");
/// uPlot's license, kept beside it in the page.
const UPLOT_LICENSE: &str = include_str!("assets/uPlot.LICENSE");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const TEMPLATE: &str = include_str!("assets/index.html");

/// The whole page, assembled once.
pub fn index() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        TEMPLATE
            .replace("/*UPLOT_CSS*/", UPLOT_CSS)
            .replace("/*APP_CSS*/", APP_CSS)
            .replace("/*UPLOT_LICENSE*/", &UPLOT_LICENSE.replace("*/", "* /"))
            .replace("/*UPLOT_JS*/", UPLOT_JS)
            .replace("/*APP_JS*/", APP_JS)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_inlines_uplot_and_the_app() {
        let page = super::index();
        assert!(page.contains("uPlot"));
        assert!(page.contains("api/events"));
        assert!(!page.contains("/*APP_JS*/"));
        assert!(!page.contains("https://cdn"), "no CDN");
    }
}
