//! When to stop fetching: at `max` requests running, resuming at half, and
//! for good once draining. The wanted state is the worker's, not a
//! partition's: it is applied to the whole assignment whenever it changes
//! and to every partition assigned later (a partition assigned while paused
//! must not be fetched freely, and one revoked while paused must not come
//! back paused for good).

/// The decision, updated before every poll.
#[derive(Debug)]
pub(super) struct Backpressure {
    max: usize,
    paused: bool,
    draining: bool,
}

impl Backpressure {
    pub fn new(max: usize) -> Backpressure {
        Backpressure {
            max: max.max(1),
            paused: false,
            draining: false,
        }
    }

    /// Whether to pause (`Some(true)`) or resume (`Some(false)`) now.
    pub fn update(&mut self, running: usize) -> Option<bool> {
        let want = if self.draining {
            true
        } else if self.paused {
            running > self.max / 2
        } else {
            running >= self.max
        };
        (want != self.paused).then(|| {
            self.paused = want;
            want
        })
    }

    /// Stops fetching for good (shutdown).
    pub fn drain(&mut self) {
        self.draining = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_when_full_and_resumes_at_half() {
        let mut b = Backpressure::new(8);
        let changes: Vec<Option<bool>> = [3, 8, 9, 5, 4, 4, 7, 8].map(|n| b.update(n)).into();
        assert_eq!(
            changes,
            [
                None,
                Some(true),
                None,
                None,
                Some(false),
                None,
                None,
                Some(true)
            ]
        );
    }

    #[test]
    fn draining_pauses_for_good() {
        let mut b = Backpressure::new(8);
        assert_eq!(b.update(0), None);
        b.drain();
        assert_eq!(b.update(0), Some(true));
        assert_eq!(b.update(0), None, "stays paused with nothing running");
    }
}
