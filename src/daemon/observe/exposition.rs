//! The Prometheus text exposition format, version 0.0.4: per family a `# HELP` and a `# TYPE`
//! line, then its samples together, one `name{label="value",…} value` line each.

use std::fmt::Write;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// A family whose samples are being written; samples of one family stay together, as the
/// format requires.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    /// Starts a family: writes its HELP and TYPE lines.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// A family with one sample and no labels.
    pub fn single(&mut self, name: &'static str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample with these labels (names are fixed identifiers; values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }
}

/// A label value with `\`, `"` and line feeds escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text with `\` and line feeds escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A value as the format spells it (Go's `ParseFloat` syntax, with `+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust prints the shortest text that reads back as the same f64, never an exponent.
        format!("{v}")
    }
}

/// Epoch milliseconds as Prometheus seconds.
pub fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_labels_and_values_follow_the_format() {
        let mut text = Exposition::default();
        text.family("x_total", Kind::Counter, "A \\ help\nline.")
            .sample(&[("shop", "a\"b\\c\nd"), ("stream", "orders")], 3.0)
            .sample(&[], f64::INFINITY);
        text.single("y", Kind::Gauge, "Y.", 1.5);
        assert_eq!(
            text.finish(),
            "# HELP x_total A \\\\ help\\nline.\n# TYPE x_total counter\n\
             x_total{shop=\"a\\\"b\\\\c\\nd\",stream=\"orders\"} 3\n\
             x_total +Inf\n# HELP y Y.\n# TYPE y gauge\ny 1.5\n"
        );
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1_700_000_000.123), "1700000000.123");
        assert_eq!(seconds(-1_500), -1.5);
    }
}
