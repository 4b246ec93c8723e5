//! One SVG badge per implementation, in the flat style of shields.io: `conformance | 63/65`.
//!
//! The colour follows the share of scenarios passed (OK, NON-STRICT or INFORMATIONAL):
//! 100 % bright green, ≥ 95 % green, ≥ 80 % yellow-green, ≥ 60 % yellow, ≥ 40 % orange, below
//! red; grey when the implementation could not run.
use super::doc::{Implementation, MatrixDoc};
use crate::report::html::escape;

pub const LABEL: &str = "conformance";

pub const BRIGHT_GREEN: &str = "#4c1";
pub const GREEN: &str = "#97ca00";
pub const YELLOW_GREEN: &str = "#a4a61d";
pub const YELLOW: &str = "#dfb317";
pub const ORANGE: &str = "#fe7d37";
pub const RED: &str = "#e05d44";
pub const GREY: &str = "#9f9f9f";

/// The colour of `passed` out of `total`.
pub fn colour(passed: usize, total: usize) -> &'static str {
    if total == 0 {
        return GREY;
    }
    // Integer per-mille: no rounding surprises at the thresholds.
    let per_mille = passed * 1000 / total;
    match per_mille {
        1000.. => BRIGHT_GREEN,
        950.. => GREEN,
        800.. => YELLOW_GREEN,
        600.. => YELLOW,
        400.. => ORANGE,
        _ => RED,
    }
}

/// Width in pixels of `text` in 11 px Verdana (shields' font), close enough for a badge.
fn text_width(text: &str) -> u32 {
    let tenths: u32 = text
        .chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '|' | '\'' => 30,
            '.' | ',' | ':' | ';' | '!' => 40,
            ' ' | 'f' | 't' | 'r' | 'I' | '(' | ')' | '[' | ']' => 45,
            '/' | '-' => 50,
            'c' | 's' | 'z' | 'k' | 'v' | 'x' | 'y' => 60,
            'm' | 'w' | 'M' | 'W' => 105,
            'A'..='Z' | '%' | '#' => 78,
            _ => 70,
        })
        .sum();
    tenths.div_ceil(10)
}

/// A badge `label | message` with the message on `colour`.
pub fn render(label: &str, message: &str, colour: &str) -> String {
    let lw = text_width(label) + 10;
    let mw = text_width(message) + 10;
    let w = lw + mw;
    let (label, message) = (escape(label), escape(message));
    let (lx, mx) = (lw * 10 / 2, lw * 10 + mw * 10 / 2);
    let (ltl, mtl) = ((lw - 10) * 10, (mw - 10) * 10);
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" aria-label=\"{label}: {message}\">",
            "<title>{label}: {message}</title>",
            "<linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>",
            "<clipPath id=\"r\"><rect width=\"{w}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>",
            "<g clip-path=\"url(#r)\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{mw}\" height=\"20\" fill=\"{colour}\"/><rect width=\"{w}\" height=\"20\" fill=\"url(#s)\"/></g>",
            "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" text-rendering=\"geometricPrecision\" font-size=\"110\">",
            "<text aria-hidden=\"true\" x=\"{lx}\" y=\"150\" fill=\"#010101\" fill-opacity=\".3\" transform=\"scale(.1)\" textLength=\"{ltl}\">{label}</text>",
            "<text x=\"{lx}\" y=\"140\" transform=\"scale(.1)\" fill=\"#fff\" textLength=\"{ltl}\">{label}</text>",
            "<text aria-hidden=\"true\" x=\"{mx}\" y=\"150\" fill=\"#010101\" fill-opacity=\".3\" transform=\"scale(.1)\" textLength=\"{mtl}\">{message}</text>",
            "<text x=\"{mx}\" y=\"140\" transform=\"scale(.1)\" fill=\"#fff\" textLength=\"{mtl}\">{message}</text>",
            "</g></svg>\n"
        ),
        w = w,
        lw = lw,
        mw = mw,
        lx = lx,
        mx = mx,
        ltl = ltl,
        mtl = mtl,
        label = label,
        message = message,
        colour = colour,
    )
}

/// The badge of one implementation.
pub fn of(i: &Implementation) -> String {
    if i.error.is_some() {
        return render(LABEL, "could not run", GREY);
    }
    let c = i.conformance;
    render(LABEL, &format!("{}/{}", c.passed, c.total), colour(c.passed, c.total))
}

/// `(file name, SVG)` per implementation: `NAME.svg` (names are safe file names).
pub fn badges(doc: &MatrixDoc) -> Vec<(String, String)> {
    doc.implementations.iter().map(|i| (format!("{}.svg", i.name), of(i))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_by_share_passed() {
        assert_eq!(colour(65, 65), BRIGHT_GREEN);
        assert_eq!(colour(63, 65), GREEN); // 96.9 %
        assert_eq!(colour(61, 65), YELLOW_GREEN); // 93.8 %
        assert_eq!(colour(40, 65), YELLOW); // 61.5 %
        assert_eq!(colour(30, 65), ORANGE); // 46.2 %
        assert_eq!(colour(5, 65), RED);
        assert_eq!(colour(0, 0), GREY);
    }

    #[test]
    fn a_badge_says_label_and_message_and_grows_with_its_text() {
        let short = render(LABEL, "1/2", GREEN);
        let long = render(LABEL, "1000/2000", GREEN);
        assert!(short.starts_with("<svg ") && short.contains("<title>conformance: 1/2</title>"));
        assert!(short.contains(&format!("fill=\"{GREEN}\"")));
        let width = |s: &str| {
            s.split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        };
        assert!(width(&long) > width(&short) + 30, "{} vs {}", width(&long), width(&short));
        assert!(render("a<b", "&", RED).contains("a&lt;b: &amp;"));
    }
}
