//! The status page's two charts as inline SVG (no script, no external file): the platform's
//! answers per hour over the last day, and per method, each split into ok and failed.

use super::format::{china_hour, escape, grouped, percent};
use super::status::{HourCalls, MethodCalls};

/// The charts' width in SVG units; about their width on the page, so text keeps its size.
const WIDTH: f64 = 560.0;

/// A round number at or above `n` (1, 2 or 5 times a power of ten), for an axis's top.
fn axis_top(n: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if step * m >= n {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// Stacked bars, one per hour: ok below, failed above, the hour's China-time start under
/// every third bar, a tooltip (`<title>`) on each.
pub(super) fn hourly_chart(hours: &[HourCalls]) -> String {
    let (left, top, plot_w, plot_h) = (40.0, 24.0, WIDTH - 44.0, 130.0);
    let max = axis_top(
        hours
            .iter()
            .map(|h| h.ok + h.failed)
            .max()
            .unwrap_or(0)
            .max(1),
    );
    let slot = plot_w / hours.len().max(1) as f64;
    let y = |v: i64| top + plot_h - plot_h * v as f64 / max as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} 180\" role=\"img\" \
         aria-label=\"API calls per hour, last 24 hours\">"
    );
    svg.push_str(&legend(WIDTH - 110.0, 4.0));
    for v in [0, max / 2, max] {
        svg.push_str(&format!(
            "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y(v) + 4.0,
            grouped(v),
            y = y(v),
        ));
    }
    for (i, h) in hours.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let w = slot * 0.7;
        let label = china_hour(h.hour_ms);
        svg.push_str(&format!(
            "<g><title>{label}: {} ok, {} failed</title>",
            grouped(h.ok),
            grouped(h.failed)
        ));
        for (class, from, to) in [("ok", 0, h.ok), ("failed", h.ok, h.ok + h.failed)] {
            if to > from {
                svg.push_str(&format!(
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
                     height=\"{:.1}\"/>",
                    y(to),
                    y(from) - y(to)
                ));
            }
        }
        svg.push_str("</g>");
        if i % 3 == 0 {
            svg.push_str(&format!(
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                x + w / 2.0,
                top + plot_h + 16.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One horizontal bar per method, ok then failed, under the method's name, with the calls and
/// the success rate at its right end.
pub(super) fn method_chart(methods: &[MethodCalls]) -> String {
    let (row_h, top) = (34.0, 26.0);
    let height = top + row_h * methods.len() as f64;
    let max = methods.iter().map(|m| m.calls).max().unwrap_or(0).max(1);
    let scale = |v: i64| WIDTH * v as f64 / max as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"API calls per method, last 24 hours\">"
    );
    svg.push_str(&legend(WIDTH - 110.0, 4.0));
    for (i, m) in methods.iter().enumerate() {
        let y = top + row_h * i as f64;
        let name = escape(&m.method);
        let value = match m.success_rate {
            Some(rate) => format!("{} calls · {} ok", grouped(m.calls), percent(rate)),
            None => "no calls".into(),
        };
        svg.push_str(&format!(
            "<g><title>{name}: {} ok, {} failed</title>\
             <text class=\"label\" x=\"0\" y=\"{:.1}\">{name}</text>\
             <text class=\"value\" x=\"{WIDTH}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>\
             <rect class=\"track\" x=\"0\" y=\"{:.1}\" width=\"{WIDTH}\" height=\"10\"/>",
            grouped(m.ok),
            grouped(m.failed),
            y + 10.0,
            y + 10.0,
            y + 15.0,
        ));
        let ok_w = scale(m.ok);
        for (class, x, w) in [("ok", 0.0, ok_w), ("failed", ok_w, scale(m.failed))] {
            if w > 0.0 {
                svg.push_str(&format!(
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
                     height=\"10\"/>",
                    y + 15.0
                ));
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

fn legend(x: f64, y: f64) -> String {
    format!(
        "<rect class=\"ok\" x=\"{x}\" y=\"{y}\" width=\"10\" height=\"10\"/>\
         <text class=\"axis\" x=\"{}\" y=\"{}\">ok</text>\
         <rect class=\"failed\" x=\"{}\" y=\"{y}\" width=\"10\" height=\"10\"/>\
         <text class=\"axis\" x=\"{}\" y=\"{}\">failed</text>",
        x + 14.0,
        y + 9.0,
        x + 50.0,
        x + 64.0,
        y + 9.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(1), 1);
        assert_eq!(axis_top(3), 5);
        assert_eq!(axis_top(7), 10);
        assert_eq!(axis_top(11), 20);
        assert_eq!(axis_top(1_234), 2_000);
    }

    #[test]
    fn method_names_are_escaped_in_the_chart() {
        let m = MethodCalls {
            method: "<b>&".into(),
            calls: 2,
            ok: 1,
            failed: 1,
            success_rate: Some(0.5),
            ..MethodCalls::default()
        };
        let svg = method_chart(&[m]);
        assert!(svg.contains("&lt;b&gt;&amp;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
    }
}
