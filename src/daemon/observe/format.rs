//! Text for the status page: HTML escaping (every value from the database or the config goes
//! through [`escape`]), China-time dates, spans of time, grouped numbers and percentages.

use chrono::{DateTime, FixedOffset};

use crate::clock::BEIJING_OFFSET_MS;

/// `text` safe inside an element or a quoted attribute: `& < > " '` become entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn china(ms: i64) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt((BEIJING_OFFSET_MS / 1000) as i32)?;
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&offset))
}

/// `2024-05-01 08:30:00`: an instant in China time (the platform's and the merchant's).
pub fn china_time(ms: i64) -> String {
    china(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `08:00`: the China-time hour of an instant.
pub fn china_hour(ms: i64) -> String {
    china(ms)
        .map(|t| t.format("%H:00").to_string())
        .unwrap_or_default()
}

pub use crate::clock::human_span as span;

/// `in 2 h 5 min` or `12 min ago`, from `now_ms`.
pub fn relative(ms: i64, now_ms: i64) -> String {
    if ms >= now_ms {
        format!("in {}", span(ms - now_ms))
    } else {
        format!("{} ago", span(now_ms - ms))
    }
}

/// `1,234,567`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `99.5%` (one decimal, none for whole numbers); `rate` is 0..=1.
pub fn percent(rate: f64) -> String {
    let p = (rate * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_elements_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("店铺-1 ok"), "店铺-1 ok");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn times_are_china_time() {
        // 2024-01-01T15:59:59Z is 23:59:59 in Beijing.
        assert_eq!(china_time(1_704_124_799_000), "2024-01-01 23:59:59");
        assert_eq!(china_hour(1_704_124_799_000), "23:00");
        assert_eq!(china_hour(1_704_124_800_000), "00:00");
    }

    #[test]
    fn spans_read_like_people_say_them() {
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(-5), "0 ms");
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(12 * 60_000 + 5_000), "12 min");
        assert_eq!(span(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
        assert_eq!(span(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(relative(10_000, 0), "in 10 s");
        assert_eq!(relative(0, 120_000), "2 min ago");
    }

    #[test]
    fn numbers_are_grouped_and_rates_rounded() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(-1_234_567), "-1,234,567");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.9954), "99.5%");
        assert_eq!(percent(0.0), "0%");
    }
}
