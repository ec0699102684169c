//! Exponential backoff for transient failures.

use std::time::Duration;

/// Failures a retry can cure (an outage), as opposed to bad input.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for crate::store::StoreError {
    fn is_transient(&self) -> bool {
        crate::store::StoreError::is_transient(self)
    }
}

/// Image store failures are storage outages (disk full, volume gone): work
/// pauses until the store is back rather than dropping requests.
impl Transient for crate::image_store::ImageStoreError {
    fn is_transient(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
        }
    }

    pub fn first(&self) -> Duration {
        self.initial
    }

    /// Doubles the delay up to the maximum.
    pub fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d1 = b.first();
        let d2 = b.next(d1);
        let d3 = b.next(d2);
        assert_eq!([d1, d2, d3].map(|d| d.as_millis()), [100, 200, 350]);
    }
}
