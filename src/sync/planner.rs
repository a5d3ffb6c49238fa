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
mod tests;
