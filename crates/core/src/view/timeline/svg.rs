//! A small SVG writer: elements one a line, every attribute and text escaped, numbers written
//! the same way every time (so the same release gives the same bytes).

use std::fmt::{self, Display, Write};

/// An SVG document under construction (its root element is written by [`Svg::finish`]).
#[derive(Default)]
pub(super) struct Svg {
    out: String,
}

/// An attribute: its name and its value, escaped when written.
pub(super) type Attr<'a> = (&'a str, &'a dyn Display);

impl Svg {
    /// `<tag a="v" …>`.
    pub fn open(&mut self, tag: &str, attrs: &[Attr]) {
        self.start(tag, attrs);
        self.out.push('>');
    }

    pub fn close(&mut self, tag: &str) {
        let _ = writeln!(self.out, "</{tag}>");
    }

    /// `<tag a="v" …/>`.
    pub fn empty(&mut self, tag: &str, attrs: &[Attr]) {
        self.start(tag, attrs);
        self.out.push_str("/>\n");
    }

    /// `<tag …>text</tag>`.
    pub fn text(&mut self, tag: &str, attrs: &[Attr], text: &str) {
        self.open(tag, attrs);
        self.out.push_str(&escape(text));
        self.close(tag);
    }

    /// `<tag …><title>tooltip</title></tag>`: an element with its tooltip.
    pub fn titled(&mut self, tag: &str, attrs: &[Attr], tooltip: &str) {
        self.open(tag, attrs);
        self.text("title", &[], tooltip);
        self.close(tag);
    }

    /// Raw markup written by this module (never text from the release JSON).
    pub fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    fn start(&mut self, tag: &str, attrs: &[Attr]) {
        self.out.push('<');
        self.out.push_str(tag);
        for (name, value) in attrs {
            let _ = write!(self.out, " {name}=\"{}\"", escape(&value.to_string()));
        }
    }

    /// The document: the root `<svg>` of `width` × `height` around what was written.
    pub fn finish(self, width: f64, height: f64, title: &str) -> String {
        let (w, h) = (Px(width), Px(height));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"'DejaVu Sans', sans-serif\" \
             font-size=\"12\" role=\"img\">\n<title>{}</title>\n{}</svg>\n",
            escape(title),
            self.out
        )
    }
}

/// Text made safe for XML: markup characters escaped, characters XML 1.0 does not allow
/// replaced by U+FFFD.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate or length: at most two decimals, no trailing zeros.
#[derive(Debug, Clone, Copy)]
pub(super) struct Px(pub f64);

impl Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        f.write_str(if s == "-0" { "0" } else { s })
    }
}

/// About how wide `text` is in DejaVu Sans at `size` px (from the font's advance widths, by
/// kind of character): enough to shorten a label before it overflows.
pub(super) fn text_width(text: &str, size: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.28,
            ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' | '/' => 0.38,
            'm' | 'w' | 'M' | 'W' | '—' | '@' | '%' => 0.9,
            c if c.is_ascii_uppercase() => 0.7,
            c if c.is_ascii_digit() => 0.64,
            c if c.is_ascii() => 0.6,
            _ => 0.8,
        })
        .sum();
    em * size
}

/// `text`, cut with an ellipsis so that it fits in `width` px at `size` px.
pub(super) fn fit(text: &str, size: f64, width: f64) -> String {
    if text_width(text, size) <= width {
        return text.to_owned();
    }
    let budget = width - text_width("…", size);
    let mut out = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let w = text_width(c.encode_utf8(&mut [0; 4]), size);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_cleaned_for_xml() {
        assert_eq!(
            escape("a<b>&\"c\"'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;\u{FFFD}"
        );
    }

    #[test]
    fn numbers_are_written_short() {
        let s: Vec<String> = [1.0, 1.5, 1.256, -0.001, f64::NAN]
            .into_iter()
            .map(|v| Px(v).to_string())
            .collect();
        assert_eq!(s, ["1", "1.5", "1.26", "0", "0"]);
    }

    #[test]
    fn long_labels_are_cut_with_an_ellipsis() {
        let cut = fit(&"payments-api-".repeat(10), 12.0, 100.0);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(text_width(&cut, 12.0) <= 100.0, "{cut}");
        assert_eq!(fit("short", 12.0, 100.0), "short");
    }
}
