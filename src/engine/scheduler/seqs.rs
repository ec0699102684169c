//! Sequence-id and KV-cell accounting, kept apart from llama.cpp so it can be
//! tested on its own. Each running job leases one block of
//! `SEQS_PER_REQUEST` consecutive sequence ids (its root plus the branches)
//! and reserves an upper bound of the KV cells it will use; the lease comes
//! back whole when the job retires.

use std::ops::Range;

use crate::engine::SEQS_PER_REQUEST;

const BLOCK: i32 = SEQS_PER_REQUEST as i32;

/// Decides which prepared jobs may start: a free sequence block and room in
/// the KV cache for the job's worst case.
pub(super) struct Admission {
    free_blocks: Vec<usize>,
    kv_capacity: usize,
    kv_used: usize,
}

/// One running job's claim: its sequence block and its reserved KV cells.
/// Deliberately not `Clone`: a lease is returned exactly once.
#[derive(Debug)]
pub(super) struct Lease {
    block: usize,
    cells: usize,
}

impl Admission {
    /// `max_jobs` blocks of sequence ids over a KV cache of `kv_capacity` cells.
    pub fn new(max_jobs: usize, kv_capacity: usize) -> Admission {
        Admission {
            // Reversed so that block 0 is handed out first.
            free_blocks: (0..max_jobs).rev().collect(),
            kv_capacity,
            kv_used: 0,
        }
    }

    /// Whether a job needing `cells` KV cells fits now.
    pub fn can_start(&self, cells: usize) -> bool {
        !self.free_blocks.is_empty() && self.kv_used + cells <= self.kv_capacity
    }

    /// Leases a block and reserves `cells`; `None` (and nothing taken) when
    /// the job does not fit.
    pub fn start(&mut self, cells: usize) -> Option<Lease> {
        if !self.can_start(cells) {
            return None;
        }
        let block = self.free_blocks.pop()?;
        self.kv_used += cells;
        Some(Lease { block, cells })
    }

    /// Returns a retired job's block and cells.
    pub fn finish(&mut self, lease: Lease) {
        debug_assert!(!self.free_blocks.contains(&lease.block));
        self.free_blocks.push(lease.block);
        self.kv_used -= lease.cells;
    }

    #[cfg(test)]
    pub fn kv_used(&self) -> usize {
        self.kv_used
    }

    #[cfg(test)]
    pub fn free_blocks(&self) -> usize {
        self.free_blocks.len()
    }
}

impl Lease {
    /// Every sequence id of the block (the root first), to clear on retire.
    pub fn all_seqs(&self) -> Range<i32> {
        let base = self.root();
        base..base + BLOCK
    }

    /// The sequence that holds the job's shared prefix (system prompt, image).
    pub fn root(&self) -> i32 {
        self.block as i32 * BLOCK
    }

    /// The branch sequences of the block, all free.
    pub fn branch_seqs(&self) -> BranchSeqs {
        let root = self.root();
        BranchSeqs {
            root,
            // Reversed so that the lowest id is handed out first.
            free: (root + 1..root + BLOCK).rev().collect(),
        }
    }
}

/// The free branch sequences of one job. The root is never among them.
#[derive(Debug, Default)]
pub(super) struct BranchSeqs {
    root: i32,
    free: Vec<i32>,
}

impl BranchSeqs {
    pub fn take(&mut self) -> Option<i32> {
        self.free.pop()
    }

    /// Returns a finished branch's sequence for reuse.
    pub fn give_back(&mut self, seq: i32) {
        debug_assert!(seq > self.root && seq < self.root + BLOCK);
        debug_assert!(!self.free.contains(&seq), "sequence {seq} returned twice");
        self.free.push(seq);
    }

    #[cfg(test)]
    pub fn free(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const BRANCHES: usize = SEQS_PER_REQUEST as usize - 1;

    #[test]
    fn each_lease_gets_its_own_block_of_sequence_ids() {
        let mut admission = Admission::new(4, 1000);
        let leases: Vec<Lease> = (0..4).map(|_| admission.start(10).unwrap()).collect();
        let mut seen = HashSet::new();
        for lease in &leases {
            assert_eq!(lease.all_seqs().len(), SEQS_PER_REQUEST as usize);
            assert_eq!(lease.all_seqs().start, lease.root());
            for seq in lease.all_seqs() {
                assert!(seen.insert(seq), "sequence {seq} is in two leases");
            }
        }
        assert_eq!(seen.len(), 4 * SEQS_PER_REQUEST as usize);
        assert_eq!(admission.free_blocks(), 0);
        assert!(!admission.can_start(0), "no block is free");
        assert!(admission.start(0).is_none());
    }

    #[test]
    fn first_lease_starts_at_sequence_zero() {
        let mut admission = Admission::new(2, 100);
        assert_eq!(admission.start(1).unwrap().root(), 0);
        assert_eq!(admission.start(1).unwrap().root(), BLOCK);
    }

    #[test]
    fn kv_cells_are_reserved_and_returned() {
        let mut admission = Admission::new(8, 100);
        let a = admission.start(60).unwrap();
        assert_eq!(admission.kv_used(), 60);
        assert!(!admission.can_start(41), "60 + 41 > 100");
        assert!(admission.can_start(40), "60 + 40 fits exactly");
        let b = admission.start(40).unwrap();
        assert_eq!(admission.kv_used(), 100);
        assert!(!admission.can_start(1));
        admission.finish(a);
        assert_eq!(admission.kv_used(), 40);
        assert!(admission.can_start(60));
        assert!(!admission.can_start(61));
        admission.finish(b);
        assert_eq!(admission.kv_used(), 0);
        assert_eq!(admission.free_blocks(), 8);
    }

    #[test]
    fn a_refused_start_takes_nothing() {
        let mut admission = Admission::new(2, 100);
        let _a = admission.start(90).unwrap();
        assert!(admission.start(11).is_none());
        assert_eq!(admission.kv_used(), 90);
        assert_eq!(admission.free_blocks(), 1);
    }

    #[test]
    fn a_job_larger_than_the_cache_never_fits() {
        let admission = Admission::new(4, 100);
        assert!(!admission.can_start(101));
        assert!(admission.can_start(100));
    }

    #[test]
    fn a_finished_block_is_reused_and_never_doubly_leased() {
        let mut admission = Admission::new(2, 100);
        let a = admission.start(10).unwrap();
        let b = admission.start(10).unwrap();
        let freed = a.root();
        admission.finish(a);
        let c = admission.start(10).unwrap();
        assert_eq!(c.root(), freed, "the freed block comes back");
        assert_ne!(c.root(), b.root());
        assert!(admission.start(10).is_none(), "both blocks are leased");
    }

    #[test]
    fn leases_and_cells_balance_over_many_starts_and_finishes() {
        let (blocks, capacity) = (5, 200);
        let mut admission = Admission::new(blocks, capacity);
        let mut live: Vec<Lease> = Vec::new();
        let mut state = 12345u64;
        for step in 0..2000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let cells = (state >> 33) as usize % 80;
            if !(state >> 20).is_multiple_of(3) {
                let fits = live.len() < blocks
                    && live.iter().map(|l| l.cells).sum::<usize>() + cells <= capacity;
                assert_eq!(admission.can_start(cells), fits, "step {step}");
                if let Some(lease) = admission.start(cells) {
                    live.push(lease);
                }
            } else if !live.is_empty() {
                let i = (state >> 40) as usize % live.len();
                admission.finish(live.swap_remove(i));
            }
            let roots: HashSet<i32> = live.iter().map(Lease::root).collect();
            assert_eq!(
                roots.len(),
                live.len(),
                "step {step}: a block is leased twice"
            );
            assert_eq!(admission.free_blocks() + live.len(), blocks, "step {step}");
            assert_eq!(
                admission.kv_used(),
                live.iter().map(|l| l.cells).sum::<usize>(),
                "step {step}"
            );
        }
        for lease in live.drain(..) {
            admission.finish(lease);
        }
        assert_eq!(admission.kv_used(), 0);
        assert_eq!(admission.free_blocks(), blocks);
    }

    #[test]
    fn branch_sequences_stay_inside_the_block_and_exclude_the_root() {
        let mut admission = Admission::new(3, 100);
        let _first = admission.start(1).unwrap();
        let lease = admission.start(1).unwrap();
        let mut seqs = lease.branch_seqs();
        assert_eq!(seqs.free(), BRANCHES);
        let taken: Vec<i32> = std::iter::from_fn(|| seqs.take()).collect();
        assert_eq!(taken.len(), BRANCHES);
        assert_eq!(taken[0], lease.root() + 1, "lowest id first");
        let distinct: HashSet<i32> = taken.iter().copied().collect();
        assert_eq!(distinct.len(), BRANCHES);
        for seq in &taken {
            assert!(lease.all_seqs().contains(seq));
            assert_ne!(*seq, lease.root());
        }
        assert!(seqs.take().is_none(), "only {BRANCHES} branches per job");
    }

    #[test]
    fn a_returned_branch_sequence_is_reused() {
        let lease = Admission::new(1, 10).start(0).unwrap();
        let mut seqs = lease.branch_seqs();
        let a = seqs.take().unwrap();
        let _b = seqs.take().unwrap();
        assert_eq!(seqs.free(), BRANCHES - 2);
        seqs.give_back(a);
        assert_eq!(seqs.free(), BRANCHES - 1);
        assert_eq!(seqs.take(), Some(a));
    }

    #[test]
    #[should_panic(expected = "returned twice")]
    #[cfg(debug_assertions)]
    fn returning_a_branch_sequence_twice_is_caught() {
        let lease = Admission::new(1, 10).start(0).unwrap();
        let mut seqs = lease.branch_seqs();
        let a = seqs.take().unwrap();
        seqs.give_back(a);
        seqs.give_back(a);
    }
}
