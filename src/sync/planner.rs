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
//!
//! A window tells its density twice: by its first page (the span of update times it holds, long
//! before the window ends) and by its end. The density nearest the next window counts. No more
//! windows wait to tell than the blind ones (see `must_wait`), and one that its first page shows
//! to hold far more than planned is shared out (see [`Planner::split`]): planned ahead from
//! older, sparser windows, the last ones of a growing shop were once read alone, 80 pages one
//! after the other, for half of a 50 ms backfill; planned one per round trip instead, the
//! readers of a small shop's backfill took a second to fill.

/// The fewest pages a window is sized for, once the density is known.
pub(super) const FEWEST_PAGES: i64 = 8;
/// The most pages a window is sized for.
pub(super) const MOST_PAGES: i64 = 60;
/// About how many pages each piece of a window shared out holds (see [`Planner::split`]).
const PIECE_PAGES: i64 = (FEWEST_PAGES + MOST_PAGES) / 2;

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
    /// Where the window whose density sizes the next ones starts.
    density_at: Option<i64>,
    /// The windows planned that have not yet told what they hold (by their first page or their
    /// end): see `must_wait`.
    untold: Vec<i64>,
    /// Records a millisecond where `density_at` starts (0 until known, or where it was empty).
    per_ms: f64,
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
            density_at: None,
            untold: Vec::new(),
            per_ms: 0.0,
        }
    }

    /// Continues after windows already planned, the last of them ending at `frontier`.
    pub(super) fn after(mut self, frontier: i64) -> Self {
        self.last = Some((i64::MIN, frontier));
        self
    }

    /// Where the windows planned so far end (the range's start before any).
    fn frontier(&self) -> i64 {
        self.last.map_or(self.first_begin, |(_, end)| end)
    }

    /// The window [`Planner::next_window`] would plan, without planning it.
    pub(super) fn peek(&self) -> Option<(i64, i64)> {
        self.clone().next_window()
    }

    /// The next window, or `None` when the range is covered or the next one waits for a
    /// window being read to tell the density.
    pub(super) fn next_window(&mut self) -> Option<(i64, i64)> {
        if self.must_wait() {
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
        self.untold.push(begin);
        Some((begin, end))
    }

    /// Learns from a window read to its end: `rows` records in `[begin, end]`.
    pub(super) fn learned(&mut self, begin: i64, end: i64, rows: u64) {
        self.told(begin);
        if rows == 0 {
            // One empty window says little: never more than four times as wide as the last.
            if self.density_at.is_none_or(|at| begin >= at) {
                self.density_at = Some(begin);
                self.per_ms = 0.0;
                self.width = self
                    .width
                    .saturating_mul(4)
                    .min(self.widest)
                    .max(self.narrowest);
            }
            return;
        }
        self.dense(begin, rows as f64 / (end - begin).max(1) as f64);
    }

    /// Learns from the first page of a window that goes on: `rows` records whose update times
    /// run from `first_ms` to `last_ms` (in either order), the window starting at `begin`.
    pub(super) fn glimpsed(&mut self, begin: i64, rows: usize, first_ms: i64, last_ms: i64) {
        self.told(begin);
        if let Some(per_ms) = density(rows, first_ms, last_ms) {
            self.dense(begin, per_ms);
        }
    }

    /// Whether a window being read should be read as several instead, told by its first page
    /// (as [`Planner::glimpsed`]): a window planned before the density was known (a blind one,
    /// or one widened four times by the empty ones before it) can hold hundreds of pages where a
    /// growing shop is dense, read one after the other at the end while the other readers have
    /// nothing left. One that holds more than twice [`MOST_PAGES`] is shared out, and so is one
    /// that holds more than twice the pages a window planned at its density would (see
    /// [`Planner::dense`]) when, read page after page at `pace` (an answer time and calls a
    /// second), it would take longer than the calls left in the whole range at that density:
    /// where the rate limit, not the distance, sets the pace, sharing it out saves no time
    /// and costs calls. It is shared out into pieces of about that many pages, or of
    /// [`PIECE_PAGES`] if fewer (at most as many as are read at once, none narrower than the
    /// narrowest window), each starting a lookback before the one before it ends, the first at
    /// the window's start and the last ending at its end. Reading it again from its start
    /// costs the one page read. (A small shop's 49 pages at 50 ms, under twice [`MOST_PAGES`]
    /// but three times what its windows held, were once the longest chain of a backfill, and
    /// where a page failed, its tail.)
    pub(super) fn split(
        &self,
        (begin, end): (i64, i64),
        rows: usize,
        (first_ms, last_ms): (i64, i64),
        pace: Option<(std::time::Duration, f64)>,
    ) -> Option<Vec<(i64, i64)>> {
        let per_ms = density(rows, first_ms, last_ms)?;
        if end <= begin {
            return None;
        }
        let pages = per_ms * (end - begin) as f64 / self.page_size as f64;
        let frontier = self.frontier();
        let left = (self.last_end - frontier).max(0) + (end - begin);
        let planned = self.rows_wanted(per_ms, left) / self.page_size as f64;
        let chain_too_long = pace.is_some_and(|(answer, per_second)| {
            let pages_left = per_ms * left as f64 / self.page_size as f64;
            pages * answer.as_secs_f64() > pages_left / per_second.max(1e-9)
        });
        let too_many = pages > (2 * MOST_PAGES) as f64 || (chain_too_long && pages > 2.0 * planned);
        if !too_many {
            return None;
        }
        let wanted = (pages / planned.min(PIECE_PAGES as f64)).ceil() as i64;
        let fit = (end - begin) / (self.narrowest + self.lookback).max(1);
        let n = wanted.min(self.at_once).min(fit);
        if n < 2 {
            return None;
        }
        Some(self.pieces((begin, end), n))
    }

    /// Whether a window whose reader waits on the platform (out a retry's delay, or for held
    /// requests) `wait` more, while no other window can start, is read again from its start
    /// instead, in pieces by up to `idle` readers that have nothing else to read: when reading
    /// its pages again (as many as `per_ms` records a millisecond, or the density known, fill;
    /// at least one), shared among them at `answer` a page, takes less than the wait. With 5 %
    /// faults, the last window of a run once waited out two throttled answers and a timeout in
    /// a row, 3 s after every other was read.
    pub(super) fn reread(
        &self,
        (begin, end): (i64, i64),
        per_ms: Option<f64>,
        idle: usize,
        wait: std::time::Duration,
        answer: std::time::Duration,
    ) -> Option<Vec<(i64, i64)>> {
        if end <= begin || idle == 0 {
            return None;
        }
        let per_ms = per_ms.unwrap_or(self.per_ms);
        let pages = (per_ms * (end - begin) as f64 / self.page_size as f64)
            .ceil()
            .max(1.0);
        let fit = ((end - begin) / (self.narrowest + self.lookback).max(1)).max(1);
        let n = (idle as i64).min(fit).min(pages as i64).max(1);
        let chain = answer.mul_f64((pages / n as f64).ceil());
        (chain < wait).then(|| self.pieces((begin, end), n))
    }

    /// `[begin, end]` in `n` pieces of equal width, each starting a lookback before the one
    /// before it ends, the first at `begin` and the last ending at `end`.
    fn pieces(&self, (begin, end): (i64, i64), n: i64) -> Vec<(i64, i64)> {
        let mut pieces = Vec::with_capacity(n as usize);
        let mut from = begin;
        for k in 1..=n {
            let to = if k == n {
                end
            } else {
                begin + (end - begin) * k / n
            };
            pieces.push((from, to));
            from = to - self.lookback;
        }
        pieces
    }

    /// The window starting at `begin` has told what it holds (see `must_wait`).
    fn told(&mut self, begin: i64) {
        self.untold.retain(|b| *b != begin);
    }

    /// Whether the next window waits for those planned to tell what they hold: no more than
    /// the blind windows may be in flight untold (empty windows end at once, and each widens the
    /// next four times: unchecked, a few would plan the whole dense end of a growing shop in
    /// windows far too wide, read page after page while the rest of the limit goes unused; one
    /// planned too wide all the same is shared out by its first page). Where a window holds a
    /// page or less, none is waited for (the next could not be narrower).
    fn must_wait(&self) -> bool {
        let pages = self.per_ms * self.width as f64 / self.page_size as f64;
        let limit = if pages <= 1.0 && self.per_ms > 0.0 {
            usize::MAX
        } else {
            (self.at_once / 4).max(1) as usize
        };
        self.untold.len() >= limit
    }

    /// Sizes the next windows from `per_ms` records a millisecond, found in the window starting
    /// at `at`. Shops grow: the part of the range nearest the next window counts, not an older
    /// window that ended later.
    fn dense(&mut self, at: i64, per_ms: f64) {
        if self.density_at.is_some_and(|known| at < known) {
            return;
        }
        self.density_at = Some(at);
        self.per_ms = per_ms;
        let grown = self.width.saturating_mul(4).min(self.widest);
        let frontier = self.frontier();
        let width = (self.rows_wanted(per_ms, self.last_end - frontier) / per_ms) as i64;
        self.width = width.clamp(self.narrowest, grown.max(self.narrowest));
    }

    /// How many records a window should hold where a millisecond holds `per_ms` and `left`
    /// milliseconds are left to read: about a share of them, so the windows in flight at the
    /// end are small enough to finish together, within [`FEWEST_PAGES`] and [`MOST_PAGES`].
    fn rows_wanted(&self, per_ms: f64, left: i64) -> f64 {
        let share = per_ms * left.max(0) as f64 / (2 * self.at_once) as f64;
        share.clamp(
            (FEWEST_PAGES * self.page_size) as f64,
            (MOST_PAGES * self.page_size) as f64,
        )
    }
}

/// Records a millisecond on a first page of `rows` records whose update times run from
/// `first_ms` to `last_ms` (in either order); unknown from fewer than two.
pub(super) fn density(rows: usize, first_ms: i64, last_ms: i64) -> Option<f64> {
    (rows >= 2).then(|| (rows - 1) as f64 / (last_ms - first_ms).abs().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            p.learned(w.0, w.1, 0);
        }
        assert_eq!(last.1, 60 * DAY);
        assert_eq!(p.next_window(), None);
    }

    #[test]
    fn no_more_windows_wait_to_tell_what_they_hold_than_the_blind_ones() {
        let mut p = planner();
        let blind: Vec<_> = std::iter::from_fn(|| p.next_window()).collect();
        assert_eq!(blind.len(), 4);
        // Empty so far: as many in flight as the blind windows, no more.
        p.learned(blind[0].0, blind[0].1, 0);
        let a = p.next_window().expect("replaces the empty one");
        assert_eq!(
            p.next_window(),
            None,
            "three blind and one more are in flight"
        );
        // Then a's first page (a window's end and first page may come in any order): 50 orders
        // in ten minutes, dense. It sizes the next window (60 pages at most), which waits.
        for w in &blind[1..] {
            p.learned(w.0, w.1, 0);
        }
        p.learned(a.0, a.1, 0);
        p.glimpsed(a.0, 50, a.0, a.0 + 10 * MIN);
        let b = p.next_window().expect("sized from the dense glimpse");
        // 49 records in ten minutes a millisecond apart each: 60 pages are 612 minutes.
        assert_eq!(
            b.1 - b.0,
            (3_000.0 / (49.0 / (10 * MIN) as f64)) as i64,
            "{b:?}"
        );
        // Dense: three more planned ahead of what b holds, sized from a's density; b and
        // they wait to tell, as many as the blind windows.
        let ahead: Vec<_> = std::iter::from_fn(|| p.next_window()).collect();
        assert_eq!(ahead.len(), 3, "{ahead:?}");
        assert_eq!(ahead[0].0, b.1 - 10 * MIN);
        assert_eq!(ahead[2].1 - ahead[2].0, b.1 - b.0);
        // An older window's glimpse does not unblock, nor size the next from its density.
        p.glimpsed(blind[3].0, 2, 0, DAY);
        assert_eq!(p.next_window(), None);
        p.glimpsed(b.0, 50, b.0, b.0 + 10 * MIN);
        let c = p.next_window().expect("b told");
        assert_eq!(c.0, ahead[2].1 - 10 * MIN);
        assert_eq!(p.next_window(), None, "four untold again");
        // Sparse: a window holds a page or less, and none is waited for.
        p.learned(c.0, c.1, 3);
        let (e, f) = (p.next_window().expect("e"), p.next_window().expect("f"));
        assert_eq!(f.0, e.1 - 10 * MIN);
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
        // Near the end: a share of what is left (two days, 16,000 records: 500, ten pages) …
        let mut p = planner().after(60 * DAY - 2 * DAY);
        p.learned(0, DAY, 8_000);
        assert_eq!(p.width, (500.0 / (8_000.0 / DAY as f64)) as i64);
        // … and at least eight pages' worth.
        let mut p = planner().after(60 * DAY - DAY);
        p.learned(0, DAY, 8_000);
        assert_eq!(p.width, (400.0 / (8_000.0 / DAY as f64)) as i64);
    }

    #[test]
    fn a_window_waiting_longer_than_reading_it_again_takes_is_read_again() {
        let p = planner();
        let (wait, answer) = (Duration::from_millis(1_500), Duration::from_millis(60));
        // Six hours holding 12 pages: four idle readers read three pages each in 180 ms.
        let six_hours = (DAY, DAY + 360 * MIN);
        let per_ms = Some(600.0 / (360 * MIN) as f64);
        let pieces = p
            .reread(six_hours, per_ms, 4, wait, answer)
            .expect("read again");
        assert_eq!(pieces.len(), 4, "{pieces:?}");
        assert_eq!(pieces[0].0, six_hours.0);
        assert_eq!(pieces.last().expect("pieces").1, six_hours.1);
        for pair in pieces.windows(2) {
            assert_eq!(pair[1].0, pair[0].1 - 10 * MIN, "{pair:?}");
        }
        // A wait shorter than those three pages, or no reader idle: it waits.
        let short = Duration::from_millis(150);
        assert_eq!(p.reread(six_hours, per_ms, 4, short, answer), None);
        assert_eq!(p.reread(six_hours, per_ms, 0, wait, answer), None);
        // No more pieces than pages, nor narrower than the narrowest window (41 minutes and a
        // lookback): a window too narrow to share is read again whole, if that is quicker.
        let two_pages = Some(100.0 / (360 * MIN) as f64);
        assert_eq!(
            p.reread(six_hours, two_pages, 8, wait, answer)
                .map(|v| v.len()),
            Some(2)
        );
        let half_hour = (DAY, DAY + 30 * MIN);
        assert_eq!(
            p.reread(half_hour, per_ms, 8, wait, answer),
            Some(vec![half_hour])
        );
        let dense = Some(2_000.0 / (30 * MIN) as f64);
        assert_eq!(
            p.reread(half_hour, dense, 8, wait, answer),
            None,
            "40 pages: 2.4 s"
        );
        // The density unknown (none learned yet): read again as one page would be.
        assert_eq!(
            p.reread(half_hour, None, 8, wait, answer),
            Some(vec![half_hour])
        );
    }

    #[test]
    fn a_window_far_denser_than_planned_is_shared_out() {
        let p = planner();
        // Answered in 55 ms, 270 calls a second; in 1 ms; in 1 ms at 20 calls a second.
        let far = Some((Duration::from_millis(55), 270.0));
        let near = Some((Duration::from_millis(1), 270.0));
        let slow_limit = Some((Duration::from_millis(55), 20.0));
        // A week read blind; its first page: 50 orders in 20 minutes, about 504 pages a week:
        // more than twice the most a window is planned for, whatever the pace.
        let week = (DAY, 8 * DAY);
        let pieces = p
            .split(week, 50, (DAY, DAY + 20 * MIN), None)
            .expect("shared out");
        assert_eq!(pieces.len(), 15, "about 34 pages each: {pieces:?}");
        assert_eq!(pieces[0].0, DAY);
        assert_eq!(pieces.last().expect("pieces").1, 8 * DAY);
        for pair in pieces.windows(2) {
            assert_eq!(pair[1].0, pair[0].1 - 10 * MIN, "{pair:?}");
            assert!(pair[1].1 > pair[1].0);
        }
        // Denser still: no more pieces than windows read at once.
        let many = p
            .split(week, 50, (DAY, DAY + MIN), near)
            .expect("shared out");
        assert_eq!(many.len(), 16);
        // 82 pages, where a window planned at that density would hold 25, read in 4.5 s while
        // the range's 790 pages take 2.9 s at the limit: four pieces. Answered in a
        // millisecond, or at 20 calls a second, it is read as it is.
        let two_hours = (DAY, DAY + 2 * 60 * MIN);
        let four = p.split(week, 50, two_hours, far).expect("shared out");
        assert_eq!(four.len(), 4, "{four:?}");
        assert_eq!(p.split(week, 50, two_hours, near), None);
        assert_eq!(p.split(week, 50, two_hours, slow_limit), None);
        assert_eq!(p.split(week, 50, two_hours, None), None, "pace unknown");
        // A page with one record, or an empty window, tells nothing.
        assert_eq!(p.split(week, 1, (DAY, DAY), far), None);
        // A small shop: 49 pages in a week, three times the fifteen a window planned at its
        // density would hold (a 32nd of the 470 pages the range would hold at that density).
        let small = p
            .split(week, 50, (DAY, DAY + 7 * DAY / 50), far)
            .expect("shared out");
        assert_eq!(small.len(), 4, "about 12 pages each: {small:?}");
        // 16 pages: twice what a window would hold (the fewest, 8), or less: read as it is.
        let sixteen = (DAY, DAY + 7 * DAY * 49 / 800);
        assert_eq!(p.split(week, 50, sixteen, far), None);
        // Pieces are never narrower than the narrowest window.
        let narrow = (0, 120 * MIN);
        let few = p.split(narrow, 50, (0, 1), None).expect("shared out");
        assert_eq!(few.len(), 2, "{few:?}");
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
