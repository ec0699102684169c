//! Which offsets may be stored: per partition, only up to the first message
//! that is not finished, so a crash never skips unfinished work even though
//! messages finish out of order.

use std::collections::{BTreeMap, HashMap};

pub type Partition = (String, i32);

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<Partition, BTreeMap<i64, bool>>,
}

impl OffsetTracker {
    /// Records a message taken for processing.
    pub fn begin(&mut self, partition: &Partition, offset: i64) {
        self.partitions
            .entry(partition.clone())
            .or_default()
            .insert(offset, false);
    }

    /// Marks a message finished. Returns the offset to store (the next one to
    /// consume) when the finished prefix of the partition grew.
    pub fn finish(&mut self, partition: &Partition, offset: i64) -> Option<i64> {
        let pending = self.partitions.get_mut(partition)?;
        *pending.get_mut(&offset)? = true;
        let mut next = None;
        while let Some(entry) = pending.first_entry() {
            if !*entry.get() {
                break;
            }
            next = Some(*entry.key() + 1);
            entry.remove();
        }
        next
    }

    /// Messages begun and not yet finished, over all partitions or one.
    pub fn in_flight(&self, partition: Option<&Partition>) -> usize {
        let count = |m: &BTreeMap<i64, bool>| m.values().filter(|done| !**done).count();
        match partition {
            Some(p) => self.partitions.get(p).map_or(0, count),
            None => self.partitions.values().map(count).sum(),
        }
    }

    /// Forgets a partition (revoked): its unfinished messages will be
    /// redelivered to whoever owns it next.
    pub fn forget(&mut self, partition: &Partition) {
        self.partitions.remove(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_string(), n)
    }

    #[test]
    fn stores_only_the_finished_prefix() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.begin(&p(0), o);
        }
        assert_eq!(t.finish(&p(0), 12), None, "10 and 11 are still running");
        assert_eq!(t.finish(&p(0), 11), None);
        assert_eq!(t.finish(&p(0), 10), Some(13), "10..=12 are done");
        assert_eq!(t.in_flight(None), 1);
        assert_eq!(t.finish(&p(0), 13), Some(14));
        assert_eq!(t.in_flight(Some(&p(0))), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.begin(&p(0), 5);
        t.begin(&p(1), 7);
        assert_eq!(t.finish(&p(1), 7), Some(8));
        assert_eq!(t.in_flight(Some(&p(0))), 1);
        t.forget(&p(0));
        assert_eq!(
            t.finish(&p(0), 5),
            None,
            "a forgotten partition stores nothing"
        );
        assert_eq!(t.in_flight(None), 0);
    }
}
