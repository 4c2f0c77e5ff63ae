//! The best lines of a log query (`query_logs`), kept as they are read.

use crate::logs::LineAddr;
use crate::model::Labels;

/// The best `limit` lines by time and address (the newest when `backward`), after the
/// pipeline. Lines are gathered and cut back to the best `limit` whenever there are twice as
/// many; lines worse than the last cut's worst are not gathered (nor run through the pipeline).
pub(super) struct Best {
    limit: usize,
    backward: bool,
    hits: Vec<((i64, LineAddr), Labels, String)>,
    /// The worst line kept by the last cut, once `limit` lines are kept.
    bar: Option<(i64, LineAddr)>,
}

impl Best {
    pub(super) fn new(limit: usize, backward: bool) -> Best {
        Best {
            limit,
            backward,
            hits: Vec::new(),
            bar: None,
        }
    }

    /// Orders lines best first.
    fn order(backward: bool, a: &(i64, LineAddr), b: &(i64, LineAddr)) -> std::cmp::Ordering {
        if backward {
            b.cmp(a)
        } else {
            a.cmp(b)
        }
    }

    /// Whether a line at `key` would be kept.
    pub(super) fn wants(&self, key: (i64, LineAddr)) -> bool {
        self.limit > 0
            && self
                .bar
                .is_none_or(|bar| Self::order(self.backward, &key, &bar).is_lt())
    }

    pub(super) fn push(&mut self, key: (i64, LineAddr), labels: Labels, line: String) {
        self.hits.push((key, labels, line));
        if self.hits.len() >= 2 * self.limit {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let backward = self.backward;
        if self.hits.len() > self.limit {
            self.hits
                .select_nth_unstable_by(self.limit, |a, b| Self::order(backward, &a.0, &b.0));
            self.hits.truncate(self.limit);
        }
        if self.hits.len() == self.limit {
            self.bar = self
                .hits
                .iter()
                .map(|h| h.0)
                .max_by(|a, b| Self::order(backward, a, b));
        }
    }

    /// Whether `limit` lines are kept (after a cut).
    pub(super) fn full(&mut self) -> bool {
        self.cut();
        self.hits.len() == self.limit
    }

    /// Whether every kept line is better than any line at time `bound` or worse: then no
    /// more lines are needed from there on.
    pub(super) fn beats(&mut self, bound: i64) -> bool {
        if self.limit == 0 {
            return true;
        }
        if !self.full() {
            return false;
        }
        let Some((worst, _)) = self.bar else { return false };
        if self.backward {
            bound < worst
        } else {
            bound > worst
        }
    }

    /// The kept lines, best first.
    pub(super) fn into_sorted(mut self) -> Vec<((i64, LineAddr), Labels, String)> {
        self.cut();
        let backward = self.backward;
        self.hits
            .sort_unstable_by(|a, b| Self::order(backward, &a.0, &b.0));
        self.hits
    }
}
