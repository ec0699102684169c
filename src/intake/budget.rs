//! The decode memory budget: one per process, shared by every concurrent
//! decode. A decode reserves the bytes its decoded buffers will need at their
//! peak (computed from the header) before it allocates anything, and gives
//! them back when the decoded image is dropped — so many big images in flight
//! wait for room instead of exhausting memory together.
//!
//! The budget counts KiB, not bytes: a Tokio semaphore takes at most
//! `u32::MAX` permits per acquisition, and KiB keeps budgets of terabytes
//! representable.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UNIT: u64 = 1024;

/// The decoded bytes every decode in this process may hold together.
#[derive(Clone)]
pub struct DecodeBudget {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Arc<Semaphore>,
    total_units: u32,
    /// Most units ever held at once (tests, diagnostics).
    peak_units: AtomicU64,
    /// Decodes waiting for room right now.
    waiting: AtomicUsize,
}

impl std::fmt::Debug for DecodeBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DecodeBudget({} of {} bytes held)",
            self.held_bytes(),
            self.total_bytes()
        )
    }
}

impl DecodeBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> DecodeBudget {
        let total_units = u32::try_from(bytes / UNIT).unwrap_or(u32::MAX).max(1);
        DecodeBudget {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(total_units as usize)),
                total_units,
                peak_units: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Waits until `bytes` fit in the budget and reserves them.
    ///
    /// An image that needs more than the whole budget waits for the whole
    /// budget (it then decodes alone) rather than being rejected: it is under
    /// `image.max_pixels`, so it is a legitimate input, and the budget exists
    /// to serialise big decodes, not to refuse them. This cannot deadlock:
    /// a decode acquires once, never while holding another permit, and every
    /// permit is released when its image is dropped. The semaphore is fair
    /// (FIFO), so a big decode is not starved by a stream of small ones.
    pub async fn acquire(&self, bytes: u64) -> DecodePermit {
        let units = units(bytes).min(self.inner.total_units);
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let acquired = self.inner.semaphore.clone().acquire_many_owned(units).await;
        self.inner.waiting.fetch_sub(1, Ordering::SeqCst);
        // The semaphore is private and never closed.
        let permit = acquired.expect("the decode budget is never closed");
        let held =
            u64::from(self.inner.total_units) - self.inner.semaphore.available_permits() as u64;
        self.inner.peak_units.fetch_max(held, Ordering::SeqCst);
        DecodePermit { permit }
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.inner.total_units) * UNIT
    }

    /// Bytes reserved by decoded images alive now.
    pub fn held_bytes(&self) -> u64 {
        (u64::from(self.inner.total_units) - self.inner.semaphore.available_permits() as u64) * UNIT
    }

    /// The most bytes ever reserved at once.
    pub fn peak_held_bytes(&self) -> u64 {
        self.inner.peak_units.load(Ordering::SeqCst) * UNIT
    }

    /// Decodes waiting for room now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }
}

fn units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Bytes reserved in a `DecodeBudget`, given back when dropped.
#[derive(Debug)]
pub struct DecodePermit {
    permit: OwnedSemaphorePermit,
}

impl DecodePermit {
    /// Gives back what is reserved beyond `bytes`: called once the decoder's
    /// native buffer is gone and only the RGB8 image is left.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = units(bytes) as usize;
        let held = self.permit.num_permits();
        if held > keep {
            drop(self.permit.split(held - keep));
        }
    }

    pub fn bytes(&self) -> u64 {
        self.permit.num_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_given_back_on_drop_and_on_shrink() {
        let budget = DecodeBudget::new(10 * UNIT);
        let mut a = budget.acquire(4 * UNIT).await;
        let b = budget.acquire(3 * UNIT + 1).await; // rounds up to 4 KiB
        assert_eq!(budget.held_bytes(), 8 * UNIT);
        a.shrink_to(UNIT);
        assert_eq!(a.bytes(), UNIT);
        assert_eq!(budget.held_bytes(), 5 * UNIT);
        drop(b);
        drop(a);
        assert_eq!(budget.held_bytes(), 0);
        assert_eq!(budget.peak_held_bytes(), 8 * UNIT);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_takes_the_whole_budget() {
        let budget = DecodeBudget::new(4 * UNIT);
        let all = budget.acquire(100 * UNIT).await;
        assert_eq!(all.bytes(), 4 * UNIT);
        assert_eq!(budget.held_bytes(), 4 * UNIT);
        drop(all);
        // Enormous requests neither overflow nor wait forever.
        let huge = budget.acquire(u64::MAX).await;
        assert_eq!(huge.bytes(), 4 * UNIT);
    }

    #[tokio::test]
    async fn a_budget_below_one_unit_still_admits_one_decode() {
        let budget = DecodeBudget::new(0);
        let p = budget.acquire(10 * UNIT).await;
        assert_eq!(p.bytes(), UNIT);
    }
}
