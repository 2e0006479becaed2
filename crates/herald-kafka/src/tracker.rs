//! Offset tracking for records that complete out of order.
//!
//! The delivery worker hands records of one partition to many lanes at once, and they finish
//! in any order. A partition's offset may only advance past records whose outcome is durable,
//! so the tracker keeps, per partition, every dispatched offset with its outputs once it is
//! done, and releases the longest done prefix: its outputs are written and its last offset + 1
//! committed in one transaction. Records after a gap (one still in flight) wait, so a crash
//! re-reads exactly the records whose outcome was not yet written.
//!
//! Each partition has an epoch, bumped when its records are given up (revoked, or rewound after
//! an aborted transaction); completions from an older epoch are ignored, because those records
//! are read again.

use std::collections::{BTreeMap, HashMap};

use crate::transaction::{NextOffsets, OutRecord};

/// A topic and partition.
pub type TopicPartition = (String, i32);

#[derive(Debug, Default)]
struct PartitionTrack {
    epoch: u64,
    /// The next offset the group has committed (or will read from), once known.
    position: Option<i64>,
    /// Dispatched offsets: `None` while in flight, `Some(outputs)` once done.
    pending: BTreeMap<i64, Option<Vec<OutRecord>>>,
}

/// What may be committed now.
#[derive(Debug, Default)]
pub struct Committable {
    /// Per partition, the offset to commit (last released + 1).
    pub offsets: NextOffsets,
    /// The outputs of the released records, partition by partition in offset order.
    pub outputs: Vec<OutRecord>,
    /// How many input records are released.
    pub records: usize,
    /// Per partition, where to read again if the transaction aborts.
    pub rewind_to: BTreeMap<TopicPartition, i64>,
}

impl Committable {
    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Per-partition tracking of dispatched and completed offsets.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionTrack>,
    epochs: u64,
}

impl OffsetTracker {
    /// Records that `offset` was handed out; returns the epoch its completion must carry.
    pub fn dispatched(&mut self, tp: &TopicPartition, offset: i64) -> u64 {
        let epochs = &mut self.epochs;
        let track = self.partitions.entry(tp.clone()).or_insert_with(|| {
            *epochs += 1;
            PartitionTrack {
                epoch: *epochs,
                ..PartitionTrack::default()
            }
        });
        track.position.get_or_insert(offset);
        track.pending.insert(offset, None);
        track.epoch
    }

    /// Records that `offset` is done with `outputs`. Returns false (and keeps nothing) when the
    /// completion belongs to an epoch that was given up.
    pub fn completed(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        epoch: u64,
        outputs: Vec<OutRecord>,
    ) -> bool {
        match self.partitions.get_mut(tp) {
            Some(track) if track.epoch == epoch => match track.pending.get_mut(&offset) {
                Some(slot @ None) => {
                    *slot = Some(outputs);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The epoch `tp`'s completions carry now, if it is tracked.
    pub fn epoch(&self, tp: &TopicPartition) -> Option<u64> {
        self.partitions.get(tp).map(|t| t.epoch)
    }

    /// Records of `tp` dispatched and not yet released.
    pub fn pending(&self, tp: &TopicPartition) -> usize {
        self.partitions.get(tp).map_or(0, |t| t.pending.len())
    }

    /// Records dispatched and not yet released, over all partitions.
    pub fn pending_total(&self) -> usize {
        self.partitions.values().map(|t| t.pending.len()).sum()
    }

    /// Records dispatched and still in flight, over all partitions.
    pub fn in_flight_total(&self) -> usize {
        self.partitions
            .values()
            .map(|t| t.pending.values().filter(|v| v.is_none()).count())
            .sum()
    }

    /// Releases the done prefix of every partition.
    pub fn take_committable(&mut self) -> Committable {
        let mut out = Committable::default();
        for (tp, track) in &mut self.partitions {
            let before = track.position;
            let mut next = None;
            while let Some(entry) = track.pending.first_entry() {
                if entry.get().is_none() {
                    break;
                }
                let offset = *entry.key();
                let outputs = entry.remove().unwrap_or_default();
                out.outputs.extend(outputs);
                out.records += 1;
                next = Some(offset + 1);
            }
            if let Some(next) = next {
                out.offsets.insert(tp.clone(), next);
                if let Some(before) = before {
                    out.rewind_to.insert(tp.clone(), before);
                }
                track.position = Some(next);
            }
        }
        out
    }

    /// Gives up `tp`'s records: completions still to come are ignored. Returns the offset to
    /// read again from, when one is known.
    pub fn reset(&mut self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.remove(tp).and_then(|t| t.position)
    }

    /// Sets where `tp` is known to resume (after a rewind), so a later abort can rewind there.
    pub fn resume_at(&mut self, tp: &TopicPartition, offset: i64) {
        let epochs = &mut self.epochs;
        let track = self.partitions.entry(tp.clone()).or_insert_with(|| {
            *epochs += 1;
            PartitionTrack {
                epoch: *epochs,
                ..PartitionTrack::default()
            }
        });
        if track.pending.is_empty() {
            track.position = Some(offset);
        }
    }

    /// The partitions tracked.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.partitions.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    fn out(tag: i64) -> Vec<OutRecord> {
        vec![OutRecord {
            topic: "o".into(),
            key: None,
            value: Some(tag.to_string().into_bytes()),
            headers: vec![],
        }]
    }

    #[test]
    fn only_the_done_prefix_is_released() {
        let mut tracker = OffsetTracker::default();
        let epoch = tracker.dispatched(&tp(0), 5);
        tracker.dispatched(&tp(0), 6);
        tracker.dispatched(&tp(0), 8);
        assert!(tracker.completed(&tp(0), 6, epoch, out(6)));
        assert!(
            tracker.take_committable().is_empty(),
            "5 is still in flight"
        );
        assert!(tracker.completed(&tp(0), 5, epoch, out(5)));
        let c = tracker.take_committable();
        assert_eq!(c.offsets[&tp(0)], 7);
        assert_eq!(c.records, 2);
        assert_eq!(c.rewind_to[&tp(0)], 5);
        let tags: Vec<String> = c
            .outputs
            .iter()
            .map(|o| String::from_utf8(o.value.clone().unwrap()).unwrap())
            .collect();
        assert_eq!(tags, ["5", "6"]);
        assert_eq!(tracker.pending(&tp(0)), 1);
        assert!(tracker.completed(&tp(0), 8, epoch, out(8)));
        let c = tracker.take_committable();
        assert_eq!(c.offsets[&tp(0)], 9);
        assert_eq!(c.rewind_to[&tp(0)], 7);
    }

    #[test]
    fn completions_of_a_given_up_epoch_are_ignored() {
        let mut tracker = OffsetTracker::default();
        let old = tracker.dispatched(&tp(1), 10);
        assert_eq!(tracker.reset(&tp(1)), Some(10));
        let new = tracker.dispatched(&tp(1), 10);
        assert_ne!(old, new);
        assert!(!tracker.completed(&tp(1), 10, old, out(10)));
        assert!(tracker.take_committable().is_empty());
        assert!(tracker.completed(&tp(1), 10, new, out(10)));
        assert!(
            !tracker.completed(&tp(1), 10, new, out(10)),
            "a second completion"
        );
        assert_eq!(tracker.take_committable().offsets[&tp(1)], 11);
    }

    proptest! {
        /// Whatever order records complete in, the committed offset never passes a record that
        /// is not done, and once all are done it is the last offset + 1 with every output once.
        #[test]
        fn commits_never_pass_an_unfinished_record(
            gaps in proptest::collection::vec(1_i64..4, 1..60),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 60),
        ) {
            let mut tracker = OffsetTracker::default();
            let mut offsets = Vec::new();
            let mut at = 0;
            let mut epoch = 0;
            for gap in gaps {
                at += gap;
                epoch = tracker.dispatched(&tp(0), at);
                offsets.push(at);
            }
            let mut open = offsets.clone();
            let mut committed = None;
            let mut released = Vec::new();
            for pick in order.iter().take(offsets.len()) {
                let offset = open.remove(pick.index(open.len()));
                tracker.completed(&tp(0), offset, epoch, out(offset));
                let c = tracker.take_committable();
                if let Some(next) = c.offsets.get(&tp(0)) {
                    committed = Some(*next);
                }
                released.extend(c.outputs);
                if let (Some(next), Some(lowest_open)) = (committed, open.iter().min()) {
                    prop_assert!(next <= *lowest_open);
                }
            }
            while let Some(offset) = open.pop() {
                tracker.completed(&tp(0), offset, epoch, out(offset));
            }
            let c = tracker.take_committable();
            if let Some(next) = c.offsets.get(&tp(0)) {
                committed = Some(*next);
            }
            released.extend(c.outputs);
            prop_assert_eq!(committed, Some(at + 1));
            prop_assert_eq!(released.len(), offsets.len());
        }
    }
}
