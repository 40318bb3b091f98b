//! Model checks of the concurrent pieces exactly as they ship (`crate::sync`
//! maps to loom under `--cfg loom`).
//!
//! Run:
//! `RUSTFLAGS="--cfg loom -C debug-assertions" LOOM_MAX_PREEMPTIONS=2
//! CARGO_TARGET_DIR=target/loom cargo test --release --test loom`
//!
//! The models assert conservation, not timing: every accepted sample is
//! drained exactly once, refused samples are handed back whole, no slot is
//! read before it is published (a torn or early read shows as a sample whose
//! fields disagree), spill folds are all accounted for, a sampler's
//! sample carries a rate that was really published, and an exact call in a
//! thread's own cell is read once, before or after the thread's fold at
//! exit, and never by the next engine; a retired series' cell is recycled
//! only after its last holder and its last sample, and its exact totals
//! restart without losing or leaking a call. The `metrics` facade's key
//! cache gives one entry per key and never one entry for two keys whose
//! hashes collide, publishes entries whole, and stays within its bound.
#![cfg(loom)]

use std::collections::HashSet;

use hotmetrics::loom_api::{sample, PushError, RateCell, Ring, Sample, Sampler, Spill};
use loom::sync::Arc;
use loom::thread;

/// A sample whose three fields all encode the same tag, so a read of a
/// half-written slot cannot pass `check`.
fn tagged(tag: u32) -> Sample {
    sample(tag, 1.0 / (tag as f32 + 1.0), f64::from(tag) * 10.0)
}

fn check(sample: &Sample) -> u32 {
    let tag = sample.id.index() as u32;
    assert_eq!(sample.inclusion_prob, 1.0 / (tag as f32 + 1.0), "torn read");
    assert_eq!(sample.value, f64::from(tag) * 10.0, "torn read");
    tag
}

/// Pushes `tags`, returning those the ring refused (full or contended).
fn push_all(ring: &Ring, tags: &[u32]) -> Vec<u32> {
    let mut refused = Vec::new();
    for &tag in tags {
        match ring.push(tagged(tag)) {
            Ok(_) => {}
            Err(PushError::Full(back)) | Err(PushError::Contended(back)) => {
                refused.push(check(&back));
            }
            Err(PushError::Closed(_)) => panic!("ring closed unexpectedly"),
        }
    }
    refused
}

fn assert_conserved(pushed: &[u32], drained: &[u32], refused: &[u32]) {
    let mut seen = HashSet::new();
    for tag in drained.iter().chain(refused) {
        assert!(seen.insert(*tag), "sample {tag} accounted twice");
    }
    let all: HashSet<u32> = pushed.iter().copied().collect();
    assert_eq!(seen, all, "every pushed sample drained or refused, once");
}

#[test]
fn two_producers_and_the_consumer_wrap_a_two_slot_ring() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producers: Vec<_> = [[0, 1], [2, 3]]
            .into_iter()
            .map(|tags| {
                let ring = ring.clone();
                thread::spawn(move || push_all(&ring, &tags))
            })
            .collect();
        let mut drained = Vec::new();
        for _ in 0..2 {
            ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
            thread::yield_now();
        }
        let mut refused = Vec::new();
        for producer in producers {
            refused.extend(producer.join().unwrap());
        }
        ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
        assert_conserved(&[0, 1, 2, 3], &drained, &refused);
        assert!(ring.is_empty());
    });
}

#[test]
fn three_producers_fill_the_ring_and_the_overflow_is_handed_back() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producers: Vec<_> = (0..3u32)
            .map(|tag| {
                let ring = ring.clone();
                thread::spawn(move || push_all(&ring, &[tag]))
            })
            .collect();
        let mut refused = Vec::new();
        for producer in producers {
            refused.extend(producer.join().unwrap());
        }
        let mut drained = Vec::new();
        ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
        assert_conserved(&[0, 1, 2], &drained, &refused);
        // Three samples, two slots, nothing drained while they pushed: two
        // are in the ring and exactly one came back (`Full`, or `Contended`
        // after losing the claim race `MAX_PUSH_ATTEMPTS` times while the
        // others made progress). With a drain running beside the pushes a
        // producer may see a stale `head` and refuse more: that case is
        // `two_producers_and_the_consumer_wrap_a_two_slot_ring`, where only
        // conservation is claimed.
        assert_eq!(drained.len(), 2, "both slots filled");
        assert_eq!(refused.len(), 1, "exactly one sample handed back");
    });
}

#[test]
fn close_then_final_drain_takes_every_claimed_sample() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut accepted = Vec::new();
                for tag in 0..2u32 {
                    match ring.push(tagged(tag)) {
                        Ok(_) => accepted.push(tag),
                        Err(PushError::Closed(_)) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                accepted
            })
        };
        let final_tail = ring.close();
        let mut drained = Vec::new();
        while ring.head() != final_tail {
            ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
            thread::yield_now();
        }
        let accepted = producer.join().unwrap();
        assert_eq!(drained, accepted, "exactly the accepted samples, in order");
        assert!(ring.push(tagged(9)).is_err(), "closed rings refuse");
    });
}

#[test]
fn a_take_racing_a_fold_conserves_the_totals() {
    loom::model(|| {
        let spill = Arc::new(Spill::new());
        let folder = {
            let spill = spill.clone();
            thread::spawn(move || spill.fold(&sample(0, 0.5, 2.0)))
        };
        let first = spill.take();
        folder.join().unwrap();
        let rest = spill.take();
        // Whichever take saw each field of the fold, nothing is lost or
        // counted twice: Σ 1/p = 2, Σ v/p = 4.
        assert_eq!(first.samples + rest.samples, 1);
        assert_eq!(first.weight + rest.weight, 2.0);
        assert_eq!(first.value + rest.value, 4.0);
        assert_eq!(first.max.max(rest.max), 2.0);
    });
}

#[test]
fn concurrent_folds_add_up() {
    loom::model(|| {
        let spill = Arc::new(Spill::new());
        let folder = {
            let spill = spill.clone();
            thread::spawn(move || spill.fold(&sample(0, 0.25, 1.0)))
        };
        spill.fold(&sample(0, 0.5, 3.0));
        folder.join().unwrap();
        let totals = spill.take();
        assert_eq!(totals.samples, 2);
        assert_eq!(totals.weight, 6.0);
        assert_eq!(totals.value, 10.0);
        assert_eq!((totals.min, totals.max), (1.0, 3.0));
        assert!(totals.inexact);
    });
}

#[test]
fn a_sample_carries_a_rate_that_was_published() {
    loom::model(|| {
        let rate = Arc::new(RateCell::new(1.0));
        let publisher = {
            let rate = rate.clone();
            thread::spawn(move || {
                rate.publish(0.5);
                rate.publish(0.25);
            })
        };
        let sampler = Sampler::with_seed(7);
        let mut epochs = Vec::new();
        for _ in 0..3 {
            let word = rate.load();
            epochs.push(word.epoch());
            let expected = match word.epoch() {
                0 => 1.0,
                1 => 0.5,
                2 => 0.25,
                other => panic!("epoch {other} never published"),
            };
            assert_eq!(word.rate(), expected, "rate and epoch from one publish");
            if let Some(p) = sampler.decide(&rate, 1) {
                assert!([1.0, 0.5, 0.25].contains(&p), "p {p} was never published");
            }
        }
        assert!(
            epochs.windows(2).all(|pair| pair[0] <= pair[1]),
            "epochs go forward"
        );
        publisher.join().unwrap();
    });
}

/// The shutdown hand-shake between a producer spilling on a full ring and
/// the final drain (`Pipeline::spill` against `flusher::final_drain`):
/// close the ring, wait until no producer is inside a spill, drain, collect
/// the spill. A fold either lands before the collection (and is counted in
/// `samples_dropped`) or is refused because the ring was closed; it never
/// lands in an engine that was already drained.
#[test]
fn a_spill_racing_shutdown_is_collected_or_refused_never_lost_after() {
    use hotmetrics::loom_api::{pipeline, ring, samples_dropped, spilling, submit};
    loom::model(|| {
        let pipeline = Arc::new(pipeline(2, 0.5));
        let spill = Arc::new(Spill::new());
        // Fill the ring so the producer's push is refused.
        assert!(submit(&pipeline, tagged(0), &spill));
        assert!(submit(&pipeline, tagged(1), &spill));
        let producer = {
            let (pipeline, spill) = (pipeline.clone(), spill.clone());
            thread::spawn(move || submit(&pipeline, tagged(2), &spill))
        };
        // Shutdown: close, wait for producers inside a spill, drain, collect.
        let final_tail = ring(&pipeline).close();
        while spilling(&pipeline) != 0 {
            thread::yield_now();
        }
        let mut drained = Vec::new();
        ring(&pipeline).drain(usize::MAX, |sample| drained.push(check(&sample)));
        assert_eq!(ring(&pipeline).head(), final_tail);
        let collected = spill.take();
        let dropped_at_collection = samples_dropped(&pipeline);
        producer.join().unwrap();
        assert_eq!(drained, [0, 1], "the accepted samples, drained once");
        assert!(collected.samples <= 1);
        assert_eq!(
            collected.samples, dropped_at_collection,
            "every collected fold was counted, and only those"
        );
        let late = spill.take();
        assert_eq!(late.samples, 0, "a fold landed after the final collection");
        assert_eq!(samples_dropped(&pipeline), dropped_at_collection);
    });
}

/// An owned ring handed from one thread to another while the consumer
/// drains: the claim's release/acquire carries `tail` over, so the second
/// holder goes on from where the first stopped; every accepted sample is
/// drained once, in order, and every refused one came back.
#[test]
fn an_owned_ring_handed_over_loses_nothing() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        assert!(ring.try_claim());
        // SAFETY: this thread holds the claim.
        assert!(unsafe { ring.push_owned(tagged(0)) }.is_ok());
        ring.release();
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut refused = Vec::new();
                assert!(ring.try_claim(), "released before the spawn");
                for tag in [1, 2] {
                    // SAFETY: this thread holds the claim.
                    match unsafe { ring.push_owned(tagged(tag)) } {
                        Ok(_) => {}
                        Err(PushError::Full(back)) => refused.push(check(&back)),
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                ring.release();
                refused
            })
        };
        let mut drained = Vec::new();
        ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
        let refused = producer.join().unwrap();
        ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
        assert_eq!(ring.head(), ring.published_tail());
        assert!(drained.windows(2).all(|pair| pair[0] < pair[1]), "in order");
        assert_conserved(&[0, 1, 2], &drained, &refused);
    });
}

/// The shutdown hand-shake for an owned ring: its holder spilling on a
/// full ring against `close_owned`, the wait for spills and the final
/// drain. As for the shared shards, a fold is collected or refused, never
/// landed after the final collection.
#[test]
fn an_owned_ring_spill_racing_shutdown_is_collected_or_refused() {
    use hotmetrics::loom_api::{owned_ring, pipeline, samples_dropped, spilling, submit_owned};
    loom::model(|| {
        let pipeline = Arc::new(pipeline(2, 0.5));
        let spill = Arc::new(Spill::new());
        assert!(owned_ring(&pipeline).try_claim());
        for tag in [0, 1] {
            // SAFETY: this thread holds the claim.
            assert!(unsafe { submit_owned(&pipeline, tagged(tag), &spill) });
        }
        owned_ring(&pipeline).release();
        let producer = {
            let (pipeline, spill) = (pipeline.clone(), spill.clone());
            thread::spawn(move || {
                assert!(owned_ring(&pipeline).try_claim());
                // SAFETY: this thread holds the claim.
                let accepted = unsafe { submit_owned(&pipeline, tagged(2), &spill) };
                owned_ring(&pipeline).release();
                accepted
            })
        };
        owned_ring(&pipeline).close_owned();
        while spilling(&pipeline) != 0 {
            thread::yield_now();
        }
        let mut drained = Vec::new();
        owned_ring(&pipeline).drain(usize::MAX, |sample| drained.push(check(&sample)));
        let collected = spill.take();
        let dropped_at_collection = samples_dropped(&pipeline);
        producer.join().unwrap();
        assert_eq!(drained, [0, 1], "the accepted samples, drained once");
        assert!(collected.samples <= 1);
        assert_eq!(collected.samples, dropped_at_collection);
        let late = spill.take();
        assert_eq!(late.samples, 0, "a fold landed after the final collection");
        assert_eq!(samples_dropped(&pipeline), dropped_at_collection);
    });
}

/// The flusher and a `snapshot()` caller both drain the same ring while a
/// producer pushes: the `draining` flag hands the consumer role from one to
/// the other, and every sample is drained exactly once, in order.
#[test]
fn two_drainers_hand_off_the_consumer_role() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || push_all(&ring, &[0, 1]))
        };
        let other = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut drained = Vec::new();
                ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
                drained
            })
        };
        let mut mine = Vec::new();
        ring.drain(usize::MAX, |sample| mine.push(check(&sample)));
        let refused = producer.join().unwrap();
        let theirs = other.join().unwrap();
        let mut rest = Vec::new();
        ring.drain(usize::MAX, |sample| rest.push(check(&sample)));
        let all: Vec<u32> = mine.iter().chain(&theirs).chain(&rest).copied().collect();
        assert_conserved(&[0, 1], &all, &refused);
        for part in [&mine, &theirs, &rest] {
            assert!(part.windows(2).all(|pair| pair[0] < pair[1]), "order");
        }
    });
}

/// A rate published by the controller while a producer samples and pushes
/// through the pipeline: each drained sample carries a rate that was
/// published, and Σ 1/p over drained and spilled samples is what the
/// producer decided.
#[test]
fn rates_published_mid_push_travel_with_their_samples() {
    use hotmetrics::loom_api::{pipeline, submit};
    loom::model(|| {
        let pipeline = Arc::new(pipeline(2, 1.0));
        let spill = Spill::new();
        let publisher = {
            let pipeline = pipeline.clone();
            thread::spawn(move || pipeline_rate(&pipeline).publish(0.5))
        };
        let sampler = Sampler::with_seed(11);
        let mut decided_weight = 0.0;
        for tag in 0..2u32 {
            if let Some(p) = sampler.decide(pipeline_rate(&pipeline), 1) {
                assert!(p == 1.0 || p == 0.5, "p {p} was never published");
                decided_weight += 1.0 / f64::from(p);
                assert!(submit(&pipeline, sample(tag, p, 1.0), &spill));
            }
        }
        publisher.join().unwrap();
        let mut drained_weight = 0.0;
        hotmetrics::loom_api::ring(&pipeline).drain(usize::MAX, |sample| {
            assert!([1.0, 0.5].contains(&sample.inclusion_prob));
            drained_weight += sample.weight();
        });
        assert_eq!(drained_weight + spill.take().weight, decided_weight);
    });
}

fn pipeline_rate(pipeline: &hotmetrics::loom_api::Pipeline) -> &RateCell {
    hotmetrics::loom_api::rate(pipeline)
}

/// Exact cells (`hot/exact.rs`): a thread's fold at exit racing snapshot
/// reads. Each read sums the base and the live slots under the tables'
/// lock, the fold moves the slots into the base under the same lock: no
/// read counts a call twice (more than was added) or loses one it had seen
/// (less than an earlier read), and after the exit everything is in.
#[test]
fn a_fold_at_exit_racing_reads_counts_each_call_once() {
    use hotmetrics::loom_api::{exact_add, exact_exit, series, Amount, Kind, Slots, Tables};
    loom::model(|| {
        let tables = Arc::new(Tables::new(4));
        let cell = series(0, Kind::Counter);
        let owner = {
            let tables = tables.clone();
            thread::spawn(move || {
                let (slots, mut table) = (Slots::new(), None);
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(1));
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(1));
                exact_exit(&tables, &slots, table);
            })
        };
        let first = tables.totals(cell);
        let second = tables.totals(cell);
        owner.join().unwrap();
        let last = tables.totals(cell);
        for (earlier, later) in [(first, second), (second, last)] {
            assert!(earlier.int <= later.int, "{earlier:?} then {later:?}");
            assert!(earlier.calls <= later.calls, "{earlier:?} then {later:?}");
        }
        assert_eq!((last.int, last.calls), (2, 2), "every call, once");
    });
}

/// Exact cells racing the final drain: a reader that sums after the
/// owner's last add (here: after seeing the owner's Release flag, as
/// `shutdown()` runs after the calls it must count) sees every add exactly
/// once, whether the owner's fold at exit has run, is running or has not.
#[test]
fn a_read_after_the_last_add_sees_every_add_once_while_the_owner_exits() {
    use hotmetrics::loom_api::{exact_add, exact_exit, series, Amount, Kind, Slots, Tables};
    use loom::sync::atomic::{AtomicBool, Ordering};
    loom::model(|| {
        let tables = Arc::new(Tables::new(4));
        let cell = series(0, Kind::UpDown);
        let added = Arc::new(AtomicBool::new(false));
        let owner = {
            let (tables, added) = (tables.clone(), added.clone());
            thread::spawn(move || {
                let (slots, mut table) = (Slots::new(), None);
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(-3));
                exact_add(&tables, &slots, &mut table, cell, Amount::Float(0.5));
                // Release: pairs with the reader's Acquire below.
                added.store(true, Ordering::Release);
                exact_exit(&tables, &slots, table);
            })
        };
        while !added.load(Ordering::Acquire) {
            thread::yield_now();
        }
        let seen = tables.totals(cell);
        assert_eq!(
            (seen.value(Kind::UpDown), seen.calls),
            (-2.5, 2),
            "{seen:?}"
        );
        owner.join().unwrap();
        assert_eq!(tables.totals(cell), seen, "the fold changed no total");
    });
}

/// A new engine's epoch racing a thread's exit: what the thread counted
/// for the old engine never reaches the new one, whether its fold lands
/// before the restart (and is cleared) or after (and is dropped as stale).
#[test]
fn a_restart_racing_an_exit_leaks_nothing_into_the_new_epoch() {
    use hotmetrics::loom_api::{exact_add, exact_exit, series, Amount, Kind, Slots, Tables};
    use loom::sync::atomic::{AtomicBool, Ordering};
    loom::model(|| {
        let tables = Arc::new(Tables::new(4));
        let cell = series(0, Kind::Counter);
        let added = Arc::new(AtomicBool::new(false));
        let owner = {
            let (tables, added) = (tables.clone(), added.clone());
            thread::spawn(move || {
                let (slots, mut table) = (Slots::new(), None);
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(5));
                // Release: pairs with the Acquire below.
                added.store(true, Ordering::Release);
                exact_exit(&tables, &slots, table);
            })
        };
        while !added.load(Ordering::Acquire) {
            thread::yield_now();
        }
        tables.restart();
        assert_eq!(tables.totals(cell).calls, 0, "nothing of the old epoch");
        owner.join().unwrap();
        assert_eq!(tables.totals(cell).calls, 0, "nothing of the old epoch");
    });
}

/// A push on an owned ring racing its close and the final drain (close,
/// then drain until the published tail, as `flusher::final_drain` does):
/// every sample is either drained exactly once, or handed back to its
/// caller as refused (`Closed`) exactly once, never both and never neither.
/// Its holder pushes twice, so one push can read the closed flag just
/// before the close and publish after the drain looked.
#[test]
fn an_owned_push_racing_the_final_drain_is_drained_or_handed_back() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                assert!(ring.try_claim());
                let (mut accepted, mut refused) = (Vec::new(), Vec::new());
                for tag in [0, 1] {
                    // SAFETY: this thread holds the claim.
                    match unsafe { ring.push_owned(tagged(tag)) } {
                        Ok(_) => accepted.push(tag),
                        Err(PushError::Closed(back)) => refused.push(check(&back)),
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                ring.release();
                (accepted, refused)
            })
        };
        // The final drain's steps for an owned ring.
        ring.close_owned();
        Ring::settle_closes();
        let mut drained = Vec::new();
        loop {
            ring.drain(usize::MAX, |sample| drained.push(check(&sample)));
            if ring.head() == ring.published_tail() {
                break;
            }
            thread::yield_now();
        }
        let (accepted, refused) = producer.join().unwrap();
        assert_eq!(
            drained, accepted,
            "what the drain took, the push reported taken"
        );
        assert_conserved(&[0, 1], &drained, &refused);
    });
}

/// Recycling an idle series' cell (`registry::quiescent`/`recycle`, the
/// flusher's `drained_past`): once the last holder let go and the ring was
/// drained past the positions claimed then, no sample of the old series is
/// left to reach the cell's next series, and the holder's exact value,
/// whether its thread folds it before or after, stays out of it.
#[test]
fn a_cell_is_recycled_after_its_last_holder_and_its_samples() {
    use hotmetrics::loom_api::{
        exact_add, exact_exit, hold, series, unheld, Amount, Kind, Slots, Tables,
    };

    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let tables = Arc::new(Tables::new(2));
        let cell = series(0, Kind::Counter);
        let holder = hold(cell);
        let producer = {
            let (ring, tables) = (ring.clone(), tables.clone());
            thread::spawn(move || {
                let slots = Slots::new();
                let mut table = None;
                exact_add(&tables, &slots, &mut table, holder.cell(), Amount::Int(10));
                let pushed = ring.push(tagged(0)).is_ok();
                drop(holder);
                exact_exit(&tables, &slots, table);
                pushed
            })
        };
        let mut drained = 0;
        let mut drain = |ring: &Ring| {
            ring.drain(usize::MAX, |sample| {
                drained += usize::from(check(&sample) == 0)
            })
        };
        while !unheld(cell) {
            drain(&ring);
            thread::yield_now();
        }
        let mark = ring.claimed();
        while (ring.head().wrapping_sub(mark) as isize) < 0 {
            drain(&ring);
            thread::yield_now();
        }
        // Recycled: the totals restart, and nothing of the old series may
        // arrive from here on.
        let before = tables.rebase(cell);
        let late = ring.drain(usize::MAX, |_| {});
        assert_eq!(
            late, 0,
            "a sample of the recycled series was still in the ring"
        );
        let pushed = producer.join().unwrap();
        assert_eq!(drained, usize::from(pushed));
        assert_eq!((before.int, before.calls), (10, 1));
        let after = tables.totals(cell);
        assert_eq!(
            (after.int, after.calls),
            (0, 0),
            "the old series' slot leaked"
        );
    });
}

/// Retiring and reviving a series in place (`Tables::rebase`, twice)
/// while a thread adds to its own slot for it: each call is counted once,
/// in the totals before the retirement, between the two, or after the
/// revival, before or after the thread's fold at exit.
#[test]
fn retire_and_revive_count_each_exact_call_once() {
    use hotmetrics::loom_api::{exact_add, exact_exit, series, Amount, Kind, Slots, Tables};

    loom::model(|| {
        let tables = Arc::new(Tables::new(2));
        let cell = series(0, Kind::Counter);
        let adder = {
            let tables = tables.clone();
            thread::spawn(move || {
                let slots = Slots::new();
                let mut table = None;
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(1));
                exact_add(&tables, &slots, &mut table, cell, Amount::Int(2));
                exact_exit(&tables, &slots, table);
            })
        };
        let retired = tables.rebase(cell);
        let revived = tables.rebase(cell);
        adder.join().unwrap();
        let now = tables.totals(cell);
        assert_eq!(retired.int + revived.int + now.int, 3);
        assert_eq!(retired.calls + revived.calls + now.calls, 2);
    });
}

/// A value the `metrics` facade's key cache must publish whole: written
/// through a loom cell before the entry is published, read after the
/// lookup found it, so loom flags a read that does not happen after the
/// write (a Relaxed publication).
struct Published(loom::cell::UnsafeCell<u64>);

impl Published {
    fn new(value: u64) -> Self {
        let cell = loom::cell::UnsafeCell::new(0);
        // SAFETY: the cell is not shared yet.
        cell.with_mut(|value_ptr| unsafe { *value_ptr = value });
        Self(cell)
    }

    fn read(&self) -> u64 {
        // SAFETY: written once, before publication; only read after.
        self.0.with(|value_ptr| unsafe { *value_ptr })
    }
}

// SAFETY: the cell is written only before the entry holding it is
// published, and only read after; loom checks that order.
unsafe impl Sync for Published {}

type FacadeCache = hotmetrics::loom_api::KeyCache<u64, Published>;

/// Inserts key `key` (hash `hash`) with value `value`; the entry's address
/// and value, or `None` if the cache was full.
fn insert_key(cache: &FacadeCache, hash: u64, key: u64, value: u64) -> Option<(usize, u64)> {
    cache
        .insert(hash, |k| *k == key, || (key, Published::new(value)))
        .ok()
        .map(|entry| (entry as *const _ as usize, entry.value.read()))
}

fn lookup(cache: &FacadeCache, hash: u64, key: u64) -> Option<(usize, u64)> {
    cache
        .get(hash, |k| *k == key)
        .map(|entry| (entry as *const _ as usize, entry.value.read()))
}

/// Two threads register one key at once while a third looks it up: one
/// entry wins, both registrations return it, and a lookup finds nothing
/// or that entry, whole. (The lookup runs on a spawned thread: loom then
/// explores it after the other's publication, and flags the read of the
/// entry's value if the publication is made Relaxed.)
#[test]
fn facade_cache_one_key_registered_twice_is_one_entry() {
    loom::model(|| {
        let cache = Arc::new(FacadeCache::new(4));
        let inserter = {
            let cache = cache.clone();
            thread::spawn(move || insert_key(&cache, 1, 7, 10).unwrap())
        };
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || lookup(&cache, 1, 7))
        };
        let mine = insert_key(&cache, 1, 7, 20).unwrap();
        let theirs = inserter.join().unwrap();
        let seen = reader.join().unwrap();
        assert_eq!(mine, theirs, "one entry for one key");
        assert!(mine.1 == 10 || mine.1 == 20);
        if let Some(seen) = seen {
            assert_eq!(seen, mine, "a lookup finds the one entry, whole");
        }
        assert_eq!(lookup(&cache, 1, 7), Some(mine));
        assert_eq!(cache.len(), 1);
    });
}

/// Two keys whose hashes collide, registered at once, with a lookup of
/// one racing them: two entries, each found under its own key only.
#[test]
fn facade_cache_colliding_hashes_never_share_an_entry() {
    loom::model(|| {
        let cache = Arc::new(FacadeCache::new(4));
        let inserter = {
            let cache = cache.clone();
            thread::spawn(move || insert_key(&cache, 3, 1, 100).unwrap())
        };
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || lookup(&cache, 3, 2))
        };
        let two = insert_key(&cache, 3, 2, 200).unwrap();
        let one = inserter.join().unwrap();
        if let Some(seen) = reader.join().unwrap() {
            assert_eq!(seen, two, "key 2 never finds key 1's entry");
        }
        assert_ne!(one.0, two.0);
        assert_eq!((one.1, two.1), (100, 200));
        assert_eq!(lookup(&cache, 3, 1), Some(one));
        assert_eq!(lookup(&cache, 3, 2), Some(two));
    });
}

/// The last free place taken by one of two registrations at once: the
/// other is refused (its caller resolves uncached), the cache never holds
/// more than its bound, and every cached key is still found, the probe
/// sequences wrapping around the end of the slots.
#[test]
fn facade_cache_a_full_table_refuses_one_of_two_racing_inserts() {
    loom::model(|| {
        let cache = Arc::new(FacadeCache::new(4));
        assert_eq!(cache.max_entries(), 3);
        insert_key(&cache, 3, 1, 10).unwrap();
        insert_key(&cache, 3, 2, 20).unwrap();
        let threads: Vec<_> = [(3u64, 30u64), (4, 40)]
            .into_iter()
            .map(|(key, value)| {
                let cache = cache.clone();
                thread::spawn(move || insert_key(&cache, 3, key, value))
            })
            .collect();
        let got: Vec<Option<(usize, u64)>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got.iter().flatten().count(), 1, "{got:?}");
        assert_eq!(cache.len(), 3);
        for (key, value) in [(1, 10), (2, 20)] {
            assert_eq!(lookup(&cache, 3, key).map(|(_, v)| v), Some(value));
        }
        for (key, inserted) in [(3, &got[0]), (4, &got[1])] {
            assert_eq!(lookup(&cache, 3, key), *inserted);
        }
    });
}
