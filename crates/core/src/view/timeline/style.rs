//! Colours and class names: a run's status, a wait's kind.

/// The run statuses in the legend's order (a status the JSON names beyond these follows them).
pub(super) const RUN_STATUSES: [&str; 9] = [
    "Succeeded",
    "Failed",
    "InProgress",
    "Stopping",
    "Stopped",
    "Cancelled",
    "Superseded",
    "NotFound",
    "Skipped",
];

/// A run's bar colour.
pub(super) fn run_fill(status: &str) -> &'static str {
    match status {
        "Succeeded" => "#2f9e5f",
        "Failed" => "#d93636",
        "InProgress" => "#2f6fde",
        "Stopping" => "#f08c2e",
        "Stopped" => "#a5661c",
        "Cancelled" => "#6b7280",
        "Superseded" => "#8a55d6",
        "NotFound" => "#1f2430",
        "Skipped" => "#9aa8bd",
        _ => "#b0b0b0",
    }
}

/// The wait kinds in the legend's order.
pub(super) const WAIT_KINDS: [&str; 4] = ["approval", "gate", "bake", "halt"];

/// A wait's shading: its fill and that fill's opacity. A halt (stack-wide) is hatched.
pub(super) fn wait_fill(kind: &str) -> (&'static str, f64) {
    match kind {
        "approval" => ("#c0398a", 0.16),
        "gate" => ("#e0a800", 0.24),
        "bake" => ("#1597b8", 0.18),
        "halt" => ("url(#hatch-halt)", 1.0),
        _ => ("#808080", 0.15),
    }
}

/// A darker tone of the wait's colour, for its label.
pub(super) fn wait_ink(kind: &str) -> &'static str {
    match kind {
        "approval" => "#8e2563",
        "gate" => "#8a6500",
        "bake" => "#0c6a82",
        "halt" => "#a32020",
        _ => "#505050",
    }
}

/// The hatch of a halt, for `<defs>`.
pub(super) const DEFS: &str = "<defs>\n<pattern id=\"hatch-halt\" patternUnits=\"userSpaceOnUse\" \
width=\"8\" height=\"8\" patternTransform=\"rotate(45)\">\
<rect width=\"8\" height=\"8\" fill=\"#d93636\" fill-opacity=\"0.08\"/>\
<rect width=\"3\" height=\"8\" fill=\"#d93636\" fill-opacity=\"0.3\"/></pattern>\n</defs>\n";

/// `text` as one class name token: letters, digits, `-` and `_` kept, anything else `_`.
pub(super) fn class_token(text: &str) -> String {
    let token: String = text
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => c,
            _ => '_',
        })
        .collect();
    if token.is_empty() {
        "unknown".into()
    } else {
        token
    }
}

/// Light and lighter: the wave bands alternate.
pub(super) fn band_fill(index: usize) -> &'static str {
    if index.is_multiple_of(2) {
        "#f4f6fa"
    } else {
        "#e8ecf3"
    }
}

pub(super) const INK: &str = "#1f2937";
pub(super) const MUTED: &str = "#5b6472";
pub(super) const GRID: &str = "#d5dae3";
pub(super) const CAUSE: &str = "#b42318";
