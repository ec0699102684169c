//! Which offsets may be stored: per partition, only up to the first message
//! that is not finished, so a crash never skips unfinished work even though
//! messages finish out of order. A message is running (a task works on it),
//! finished, or abandoned (its task gave up at shutdown: not running, yet
//! it still holds the partition's offset back so it is redelivered).

use std::collections::{BTreeMap, HashMap};

pub type Partition = (String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Finished,
    Abandoned,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<Partition, BTreeMap<i64, State>>,
}

impl OffsetTracker {
    /// Records a message taken for processing.
    pub fn begin(&mut self, partition: &Partition, offset: i64) {
        self.partitions
            .entry(partition.clone())
            .or_default()
            .insert(offset, State::Running);
    }

    /// Marks a message finished. Returns the offset to store (the next one to
    /// consume) when the finished prefix of the partition grew.
    pub fn finish(&mut self, partition: &Partition, offset: i64) -> Option<i64> {
        let pending = self.partitions.get_mut(partition)?;
        *pending.get_mut(&offset)? = State::Finished;
        let mut next = None;
        while let Some(entry) = pending.first_entry() {
            if *entry.get() != State::Finished {
                break;
            }
            next = Some(*entry.key() + 1);
            entry.remove();
        }
        next
    }

    /// Marks a message given up on: no task runs it any more, and no offset
    /// at or after it will be stored.
    pub fn abandon(&mut self, partition: &Partition, offset: i64) {
        if let Some(state) = self
            .partitions
            .get_mut(partition)
            .and_then(|p| p.get_mut(&offset))
        {
            *state = State::Abandoned;
        }
    }

    /// Messages a task is working on now, in the given partitions.
    pub fn running_in(&self, partitions: &[Partition]) -> usize {
        partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|m| m.values().filter(|s| **s == State::Running).count())
            .sum()
    }

    /// Messages taken and not finished (running or abandoned), over all
    /// partitions.
    pub fn unfinished(&self) -> usize {
        self.partitions
            .values()
            .map(|m| m.values().filter(|s| **s != State::Finished).count())
            .sum()
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
        assert_eq!(t.unfinished(), 1);
        assert_eq!(t.finish(&p(0), 13), Some(14));
        assert_eq!(t.running_in(&[p(0)]), 0);
    }

    #[test]
    fn an_abandoned_message_is_not_running_but_holds_its_offset_back() {
        let mut t = OffsetTracker::default();
        t.begin(&p(0), 1);
        t.begin(&p(0), 2);
        t.abandon(&p(0), 1);
        assert_eq!(t.running_in(&[p(0)]), 1, "only 2 is running");
        assert_eq!(t.finish(&p(0), 2), None, "1 was never finished");
        assert_eq!(t.unfinished(), 1);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.begin(&p(0), 5);
        t.begin(&p(1), 7);
        assert_eq!(t.finish(&p(1), 7), Some(8));
        assert_eq!(t.running_in(&[p(0), p(1)]), 1);
        t.forget(&p(0));
        assert_eq!(
            t.finish(&p(0), 5),
            None,
            "a forgotten partition stores nothing"
        );
        assert_eq!(t.unfinished(), 0);
    }
}
