//! Planning the windows a stream reads side by side (a backfill, a long outage), one at a time as
//! a reader frees up, each as wide as the records seen so far suggest: shops grow, so a range
//! shared out evenly in time leaves the newest, densest window to be read alone at the end,
//! page after page, while the rest of the rate limit goes unused.
//!
//! Each window starts a lookback before the one before it ends (design.md). The first few,
//! planned before anything is known (a quarter as many as are read at once: each window costs
//! a partly filled last page, which a small shop would feel), are each a quarter of the range's
//! share per reader wide; the next ones wait until one of them is read. Each window read tells how many records a millisecond holds there, and the next
//! window is sized to hold about a share of what is left — so the windows in flight at the end
//! are small enough to finish together — but not fewer than [`FEWEST_PAGES`] pages, whose
//! lookback and last partial page would cost too many calls, nor more than [`MOST_PAGES`].

/// The fewest pages a window is sized for, once the density is known.
pub(super) const FEWEST_PAGES: i64 = 16;
/// The most pages a window is sized for.
pub(super) const MOST_PAGES: i64 = 60;

/// Plans the windows of `[first_begin, last_end]`.
#[derive(Debug, Clone)]
pub(super) struct Planner {
    /// Where the next window starts when none is planned yet; afterwards, a lookback before
    /// the last one's end.
    first_begin: i64,
    /// The start and end of the last window planned.
    last: Option<(i64, i64)>,
    last_end: i64,
    lookback: i64,
    /// No window narrower (four lookbacks and a minute: narrower, the overlap would be a large
    /// part of what is read) …
    narrowest: i64,
    /// … nor wider than the configured window.
    widest: i64,
    /// The width of the next window.
    width: i64,
    page_size: i64,
    at_once: i64,
    /// Windows still to plan before anything is learned.
    blind: u32,
    /// Whether a window read has told the density.
    learned_any: bool,
}

impl Planner {
    /// `at_once`: how many windows are read side by side.
    pub(super) fn new(
        first_begin: i64,
        last_end: i64,
        lookback: i64,
        widest: i64,
        page_size: u32,
        at_once: u32,
    ) -> Self {
        let narrowest = (4 * lookback + 60_000).min(widest);
        let blind = (last_end - first_begin) / (4 * i64::from(at_once.max(1)));
        Self {
            first_begin,
            last: None,
            last_end,
            lookback,
            narrowest,
            widest,
            width: blind.clamp(narrowest, widest.max(narrowest)),
            page_size: i64::from(page_size.max(1)),
            at_once: i64::from(at_once.max(1)),
            blind: (at_once / 4).max(1),
            learned_any: false,
        }
    }

    /// Continues after windows already planned, the last of them ending at `frontier`.
    pub(super) fn after(mut self, frontier: i64) -> Self {
        self.last = Some((i64::MIN, frontier));
        self
    }

    /// The window [`Planner::next_window`] would plan, without planning it.
    pub(super) fn peek(&self) -> Option<(i64, i64)> {
        self.clone().next_window()
    }

    /// The next window, or `None` when the range is covered or the next one waits for a
    /// window being read to tell the density.
    pub(super) fn next_window(&mut self) -> Option<(i64, i64)> {
        if !self.learned_any && self.blind == 0 {
            return None;
        }
        let begin = match self.last {
            Some((_, end)) if end >= self.last_end => return None,
            // A window no wider than its lookback would not move (the config refuses it).
            Some((begin, end)) if end - self.lookback <= begin => return None,
            Some((_, end)) => end - self.lookback,
            None => self.first_begin,
        };
        if begin >= self.last_end {
            return None;
        }
        let end = (begin + self.width).min(self.last_end);
        self.last = Some((begin, end));
        if !self.learned_any {
            self.blind -= 1;
        }
        Some((begin, end))
    }

    /// Learns from a window read to its end: `rows` records in `[begin, end]`.
    pub(super) fn learned(&mut self, begin: i64, end: i64, rows: u64) {
        self.learned_any = true;
        let span = (end - begin).max(1);
        // Never more than four times as wide as the last: one empty window says little.
        let grown = self.width.saturating_mul(4).min(self.widest);
        if rows == 0 {
            self.width = grown.max(self.narrowest);
            return;
        }
        let per_ms = rows as f64 / span as f64;
        let frontier = self.last.map_or(self.first_begin, |(_, end)| end);
        let left = (self.last_end - frontier).max(0) as f64;
        // About a share of what is left at this density, so the windows in flight at the end
        // are small enough to finish together.
        let share = per_ms * left / (2 * self.at_once) as f64;
        let rows_wanted = share.clamp(
            (FEWEST_PAGES * self.page_size) as f64,
            (MOST_PAGES * self.page_size) as f64,
        );
        let width = (rows_wanted / per_ms) as i64;
        self.width = width.clamp(self.narrowest, grown.max(self.narrowest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn planner() -> Planner {
        Planner::new(0, 60 * DAY, 10 * MIN, DAY, 50, 16)
    }

    #[test]
    fn windows_overlap_by_the_lookback_and_end_at_the_last_end() {
        let mut p = planner();
        // Blind: a quarter of the range shared out, 60 days / 64.
        let blind = 60 * DAY / 64;
        let first = p.next_window().expect("first");
        assert_eq!(first, (0, blind));
        let second = p.next_window().expect("second");
        assert_eq!(second, (blind - 10 * MIN, 2 * blind - 10 * MIN));
        // Four of them (16 read at once), then the next waits for one to be read.
        p.next_window().expect("third");
        p.next_window().expect("fourth");
        assert_eq!(p.next_window(), None);
        p.learned(first.0, first.1, 0);
        let mut last = p.last.expect("planned");
        while let Some(w) = p.next_window() {
            assert_eq!(w.0, last.1 - 10 * MIN);
            assert!(w.1 > w.0);
            last = w;
        }
        assert_eq!(last.1, 60 * DAY);
        assert_eq!(p.next_window(), None);
    }

    #[test]
    fn widths_follow_the_density_within_bounds() {
        let mut p = planner();
        let (b, e) = (0, 41 * MIN);
        p.width = 41 * MIN;
        // Empty: four times as wide, not wider than the configured window.
        p.learned(b, e, 0);
        assert_eq!(p.width, 164 * MIN);
        for _ in 0..5 {
            p.learned(b, e, 0);
        }
        assert_eq!(p.width, DAY);
        // Dense: 1,000 records in 41 minutes; a share of what is left would be far more than
        // sixty pages, so sixty pages' worth of time.
        p.next_window();
        p.learned(b, e, 1_000);
        let per_ms = 1_000.0 / (41 * MIN) as f64;
        assert_eq!(p.width, (3_000.0 / per_ms) as i64);
        // Very dense: never narrower than four lookbacks and a minute.
        p.learned(b, e, 1_000_000);
        assert_eq!(p.width, 41 * MIN);
        // Sparse near the end: at least sixteen pages' worth.
        let mut p = planner().after(60 * DAY - 2 * DAY);
        p.learned(0, DAY, 8_000);
        assert_eq!(p.width, (800.0 / (8_000.0 / DAY as f64)) as i64);
    }

    #[test]
    fn a_window_no_wider_than_its_lookback_is_planned_once() {
        let mut p = Planner::new(0, DAY, 10 * MIN, 10 * MIN, 50, 16);
        assert_eq!(p.next_window(), Some((0, 10 * MIN)));
        p.learned(0, 10 * MIN, 0);
        assert_eq!(p.next_window(), None);
    }

    #[test]
    fn continuing_after_planned_windows() {
        let mut p = planner().after(10 * DAY);
        let blind = 60 * DAY / 64;
        assert_eq!(
            p.next_window(),
            Some((10 * DAY - 10 * MIN, 10 * DAY - 10 * MIN + blind))
        );
        let mut p = planner().after(60 * DAY);
        assert_eq!(p.next_window(), None);
    }
}
