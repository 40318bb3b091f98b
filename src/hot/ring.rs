//! Bounded lock-free ring: many producers, one consumer, fixed capacity.
//!
//! The design is the sequence-numbered array queue (each slot carries the
//! position it was last published for), specialised for one consumer:
//!
//! * a producer claims position `pos` by a CAS on `tail` once `pos − head <
//!   capacity` (the consumer is done with the slot's previous lap), writes the
//!   sample, then publishes it by storing `pos + 1` into the slot's sequence;
//! * the consumer reads slot `head` once its sequence equals `head + 1`, and
//!   frees slots by advancing `head` (every [`HEAD_PUBLISH_EVERY`] samples and
//!   at the end of a drain).
//!
//! The consumer never writes a slot. A producer therefore never *loads* a
//! cache line the consumer last wrote, except `head`, which changes once per
//! [`HEAD_PUBLISH_EVERY`] drained samples: the sampled call's push does not
//! stall on a cross-core transfer per slot line, only its stores move lines,
//! and stores retire through the store buffer. (The classic variant, where
//! the consumer frees each slot by writing its sequence, made every push
//! wait for the consumer's line: about a third of the push's time.)
//!
//! A slot's sequence from its previous lap is `pos + 1 − capacity`, never
//! `pos + 1`, so the consumer cannot mistake an old sample for a new one.
//!
//! A producer never blocks: a full ring hands the sample back
//! ([`PushError::Full`]) and so does a CAS that keeps losing
//! ([`PushError::Contended`], after [`MAX_PUSH_ATTEMPTS`] tries); the caller
//! spills it (see `spill.rs`) so nothing disappears without account.
//!
//! A ring can also be *claimed* by one thread ([`Ring::try_claim`]), which
//! then pushes with [`Ring::push_owned`]: no other producer exists, so the
//! claim of a position is a plain load and store of `tail` instead of a
//! locked compare-and-swap (which is also a full barrier, draining the
//! producer's store buffer on every sampled call). The slot protocol, and so
//! the consumer, are the same.
//!
//! # Closing an owned ring
//!
//! An owned ring is closed by a flag ([`Ring::close_owned`]), not by a bit
//! its holder would have to CAS. The holder reads the flag before a push
//! (a push that sees it is refused, `Closed`), but it may read it just
//! before the close and publish after the final drain looked. So it reads
//! the flag again *after* publishing, and the final drain runs
//! [`Ring::settle_closes`] between closing and draining. That is a
//! store-then-load on each side (holder: publish, then read the flag;
//! drain: set the flag, then read `tail`), the pattern where each side
//! needs a full fence for at least one of them to see the other. The
//! holder's side is the hot path, so the pair is asymmetric
//! (`sync::light_fence`, a compiler fence, on the holder; `sync::heavy_fence`,
//! a process-wide `membarrier`, once in `settle_closes`). It gives:
//!
//! * the holder's re-read sees the ring open: then the drain's read of
//!   `tail` (after `settle_closes`) includes the sample, which it drains;
//! * the holder's re-read sees the ring closed: the drain may or may not
//!   have seen the sample. Both then settle the slot by a compare-and-swap
//!   of its sequence from `pos + 1` to `pos + 1 | CLOSED` (the holder in
//!   its cold path, every drain of a closed ring for each slot it takes):
//!   exactly one wins. A drain that wins drains the sample, and the push
//!   returns `Ok`; a holder that wins reclaims it and the push returns
//!   `Closed(sample)`, as a push that saw the flag first would (a call
//!   that lands after shutdown: its caller retries on the installed engine,
//!   if any). A drain that finds a slot settled by its holder skips it.
//!
//! So every sample is drained once or handed back once. Where the
//! process-wide barrier is missing (not Linux, old kernels, sandboxes that
//! refuse the call) the pipeline creates no owned rings, and every thread
//! uses the shared shards, whose close is a bit in `tail` (below).
//!
//! Shutdown sets [`CLOSED`] in `tail`. From then on no position can be
//! claimed (a claim CASes the whole word, closed bit included), so the
//! consumer's final drain knows exactly which positions were claimed and
//! waits for each of them to be published.

use crossbeam_utils::CachePadded;

use super::sample::Sample;
use crate::sync::{heavy_fence, light_fence, spin_hint, AtomicUsize, Ordering, UnsafeCell};

/// The bit of `tail` that marks the ring closed (no more claims). Also set
/// in a slot's sequence (`pos + 1 | CLOSED`) once the sample of `pos` on a
/// closed owned ring was settled (drained or reclaimed by its holder, see
/// the module docs); positions never reach this bit.
pub(crate) const CLOSED: usize = 1 << (usize::BITS - 1);

/// How many times a producer retries a lost CAS before handing the sample
/// back. Bounds the work of one push; a lost race means another producer
/// made progress, so the ring as a whole stays lock-free. Scaled down under
/// loom so the models stay small (the bound itself is what is checked).
pub(crate) const MAX_PUSH_ATTEMPTS: u32 = if cfg!(loom) { 3 } else { 64 };

/// The consumer publishes its progress (`head`) after this many samples
/// within one drain, so producers can reuse slots before the drain ends,
/// without a shared write per sample.
pub(crate) const HEAD_PUBLISH_EVERY: usize = 64;

/// Why a push did not land; the sample comes back so the caller can account
/// for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PushError {
    /// Every slot holds an undrained sample.
    Full(Sample),
    /// Lost the claim race [`MAX_PUSH_ATTEMPTS`] times in a row.
    Contended(Sample),
    /// The ring was closed by shutdown.
    Closed(Sample),
}

#[derive(Debug)]
struct Slot {
    /// `pos + 1` once the sample of `pos` is written (published). Written
    /// only by producers, except on a closed owned ring, where the consumer
    /// and the holder settle a published slot by a CAS to `pos + 1 |
    /// CLOSED` (module docs). Starts at the slot's index, which no position
    /// publishes.
    seq: AtomicUsize,
    /// Written only by the producer that claimed the slot (after `head` showed
    /// the consumer done with its previous lap), read only by the consumer
    /// after it saw `seq == pos + 1`.
    sample: UnsafeCell<Sample>,
}

/// One ring shard. See the module docs for the protocol.
#[derive(Debug)]
pub struct Ring {
    slots: Box<[Slot]>,
    /// `capacity - 1`; capacity is a power of two.
    mask: usize,
    /// Next position to claim, plus the [`CLOSED`] bit. Written by producers
    /// (CAS) and by `close` (fetch_or).
    tail: CachePadded<AtomicUsize>,
    /// Next position to read, published by the consumer every
    /// [`HEAD_PUBLISH_EVERY`] samples and at the end of each drain (so it may
    /// lag the consumer's true position by less than that). Written only by
    /// the consumer; producers read it to know which slots are free.
    head: CachePadded<AtomicUsize>,
    /// Set while one thread drains: makes `drain` safe to call from anywhere
    /// while keeping a single consumer.
    draining: AtomicUsize,
    /// 1 while a thread holds the claim (owned rings only).
    owner: AtomicUsize,
    /// 1 once an owned ring is closed; read by its owner before each push.
    closed: AtomicUsize,
}

// SAFETY: the only non-`Sync` field is the slots' `UnsafeCell<Sample>`.
// Access to each cell is serialised: a producer writes slot `pos` only after
// winning the CAS on `tail` for `pos` (or, on an owned ring, as the one
// thread holding the claim, see `push_owned`) and seeing (Acquire) a published `head`
// above `pos − capacity`, which the consumer stored (Release) after its read
// of that slot's previous lap; the consumer reads only after the producer's
// Release store of `pos + 1`, which its Acquire load observed. `Sample` is
// `Copy` and owns nothing.
unsafe impl Sync for Ring {}
// SAFETY: `Sample` is plain data; moving the ring moves no thread-bound state.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring with `capacity` slots, rounded up to a power of two (at least 2).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity)
            .map(|pos| Slot {
                seq: AtomicUsize::new(pos),
                sample: UnsafeCell::new(Sample::EMPTY),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self {
            slots,
            mask: capacity - 1,
            tail: CachePadded::new(AtomicUsize::new(0)),
            head: CachePadded::new(AtomicUsize::new(0)),
            draining: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        }
    }

    /// Claims the ring for the calling thread; false if another thread holds
    /// it. The holder may use [`Ring::push_owned`] until [`Ring::release`].
    pub fn try_claim(&self) -> bool {
        // Acquire: pairs with the previous holder's Release in `release`, so
        // its last `tail` store is seen.
        self.owner
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives the claim up (after the holder's last push).
    pub fn release(&self) {
        // Release: the next holder sees every `tail` store of this one.
        self.owner.store(0, Ordering::Release);
    }

    /// [`Ring::push`] for the thread holding the claim: the same slot
    /// protocol, with the position taken by a plain load and store of
    /// `tail` (no other producer exists), and the closed flag of
    /// [`Ring::close_owned`] instead of the bit in `tail`.
    ///
    /// # Errors
    ///
    /// Hands the sample back when the ring is full or closed.
    ///
    /// # Safety
    ///
    /// The caller holds the claim ([`Ring::try_claim`] returned true and
    /// [`Ring::release`] has not been called since), and only ever pushes to
    /// this ring with this method: no other thread writes `tail` or a slot.
    #[inline]
    pub unsafe fn push_owned(&self, sample: Sample) -> Result<usize, PushError> {
        if self.closed.load(Ordering::Relaxed) != 0 {
            return Err(PushError::Closed(sample));
        }
        // Relaxed: only this thread writes `tail` (the claim's Acquire made
        // the previous holder's stores visible).
        let pos = self.tail.load(Ordering::Relaxed);
        // Acquire: as in `push`, pairs with the consumer's Release of `head`.
        let head = self.head.load(Ordering::Acquire);
        if pos.wrapping_sub(head) >= self.capacity() {
            return Err(PushError::Full(sample));
        }
        let slot = &self.slots[pos & self.mask];
        // The claim makes this thread the only producer of `pos`, and the
        // `head` check shows the consumer finished with the slot's last lap.
        // SAFETY: sole writer of a slot nobody reads before `pos + 1` is published.
        slot.sample.with_mut(|ptr| unsafe { ptr.write(sample) });
        // Release: pairs with the consumer's Acquire load in `drain`.
        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
        // Release: a reader of `tail` (the final drain) also sees the slot.
        self.tail.store(pos.wrapping_add(1), Ordering::Release);
        // The holder's half of the asymmetric fence: pairs with the
        // `heavy_fence` in `settle_closes`, so either the read below sees the
        // close or the final drain sees the `tail` store above.
        light_fence();
        // Relaxed: the fence pair orders it; nothing is read through it.
        if self.closed.load(Ordering::Relaxed) != 0 {
            return self.reclaim(pos, sample);
        }
        Ok(pos)
    }

    /// The holder's side of settling `pos` after it saw the ring closed
    /// just after publishing: reclaim the sample unless a drain took it.
    #[cold]
    #[inline(never)]
    fn reclaim(&self, pos: usize, sample: Sample) -> Result<usize, PushError> {
        let slot = &self.slots[pos & self.mask];
        let published = pos.wrapping_add(1);
        // Relaxed: the CAS only decides who owns the sample (RMWs on one
        // word are totally ordered); the holder reads nothing the drain wrote.
        match slot.seq.compare_exchange(
            published,
            published | CLOSED,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => Err(PushError::Closed(sample)),
            Err(seen) => {
                debug_assert_eq!(seen, published | CLOSED, "only a drain settles the slot");
                Ok(pos)
            }
        }
    }

    /// Closes an owned ring: its holder's next push is refused.
    pub fn close_owned(&self) {
        // SeqCst RMW: the spill hand-shake, as in `close`.
        self.closed.swap(1, Ordering::SeqCst);
    }

    /// Run once by the final drain after [`Ring::close_owned`] on every
    /// owned ring (one barrier covers them all) and before it reads their
    /// `tail`: the drain's half of the asymmetric fence (see the module
    /// docs). Pairs with the `light_fence` in `push_owned`.
    pub fn settle_closes() {
        heavy_fence();
    }

    /// Position one past the last sample published on an owned ring.
    pub fn published_tail(&self) -> usize {
        // Acquire: pairs with the Release store in `push_owned`.
        self.tail.load(Ordering::Acquire)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Pushes one sample; never blocks. Returns the position it took.
    ///
    /// # Errors
    ///
    /// Hands the sample back when the ring is full, when the claim kept
    /// losing races, or when the ring is closed.
    #[inline]
    pub fn push(&self, sample: Sample) -> Result<usize, PushError> {
        let capacity = self.capacity();
        let mut pos = self.tail.load(Ordering::Relaxed);
        for _ in 0..MAX_PUSH_ATTEMPTS {
            if pos & CLOSED != 0 {
                return Err(PushError::Closed(sample));
            }
            // Acquire: pairs with the consumer's Release stores of `head` in
            // `drain`, made after it read every slot below `head`; seeing
            // `pos − head < capacity` means it is done with this slot's
            // previous lap, so our write below cannot overlap its read.
            let head = self.head.load(Ordering::Acquire);
            if pos.wrapping_sub(head) >= capacity {
                // The slot still holds the sample of `pos - capacity`.
                return Err(PushError::Full(sample));
            }
            match self.tail.compare_exchange_weak(
                pos,
                pos + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let slot = &self.slots[pos & self.mask];
                    debug_assert_ne!(
                        slot.seq.load(Ordering::Relaxed),
                        pos.wrapping_add(1),
                        "slot already published for this position"
                    );
                    // Winning the CAS for `pos` makes this thread the only
                    // producer of `pos`, and the `head` check above shows the
                    // consumer finished with the slot's previous lap.
                    // SAFETY: sole writer of a slot nobody reads before `pos + 1` is published.
                    slot.sample.with_mut(|ptr| unsafe { ptr.write(sample) });
                    // Release: pairs with the consumer's Acquire load in
                    // `drain`, publishing the write above.
                    slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                    return Ok(pos);
                }
                // Another producer claimed `pos` (or the ring was closed):
                // try again from what `tail` holds now.
                Err(seen) => pos = seen,
            }
            spin_hint();
        }
        Err(PushError::Contended(sample))
    }

    /// Drains up to `max` published samples into `sink`, in position order,
    /// and returns how many were drained.
    ///
    /// Only one thread drains at a time: a call made while another is
    /// draining returns 0 at once.
    pub fn drain(&self, max: usize, mut sink: impl FnMut(Sample)) -> usize {
        if self
            .draining
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return 0;
        }
        let mut head = self.head.load(Ordering::Relaxed);
        // Acquire: pairs with the SeqCst swap in `close_owned`. A holder
        // reclaims a slot only after it saw the flag; every drain that may
        // race it runs after the final drain (behind the aggregator lock
        // that `close_owned`'s caller holds), so it sees the flag too.
        let settle = self.closed.load(Ordering::Acquire) != 0;
        let mut drained = 0;
        while drained < max {
            let slot = &self.slots[head & self.mask];
            let published = head.wrapping_add(1);
            // Acquire: pairs with the producer's Release store of `pos + 1`.
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == published | CLOSED {
                // Reclaimed by its holder (handed back to its caller): a
                // slot a drain settled is behind that drain's `head`.
                head = published;
                continue;
            }
            if seq != published {
                break;
            }
            // Closed owned ring: the holder may be reclaiming this slot
            // (module docs); one CAS decides. Relaxed: the Acquire load
            // above already carries the producer's write of the sample.
            if settle
                && slot
                    .seq
                    .compare_exchange(published, published | CLOSED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                // The holder reclaimed it: not ours to drain.
                head = published;
                continue;
            }
            // seq == head + 1 means the producer of `head` finished its
            // write, and no producer may write the slot again until a
            // published `head` passes it (below).
            // SAFETY: published slot, sole consumer (`draining`), no concurrent writer.
            let sample = slot.sample.with(|ptr| unsafe { *ptr });
            head = published;
            drained += 1;
            if drained % HEAD_PUBLISH_EVERY == 0 {
                // Release: pairs with the producers' Acquire load of `head`
                // in `push`; the slot reads above happen before any reuse.
                self.head.store(head, Ordering::Release);
            }
            sink(sample);
        }
        // Release: as above, for the rest of this drain's reads.
        self.head.store(head, Ordering::Release);
        // Release: pairs with the Acquire of the next drainer's CAS.
        self.draining.store(0, Ordering::Release);
        drained
    }

    /// Samples claimed but not yet drained (a racy figure, for utilisation).
    pub fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Relaxed) & !CLOSED;
        let head = self.head.load(Ordering::Relaxed);
        tail.wrapping_sub(head).min(self.capacity())
    }

    /// True when no sample is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the ring: no claim succeeds afterwards. Returns the final tail
    /// position; every position below it was claimed and will be published.
    pub fn close(&self) -> usize {
        // SeqCst RMW: part of the spill hand-shake (`Pipeline::spill` reads
        // the bit with an RMW after announcing itself, see
        // `is_closed_seqcst`); the returned tail is the final claim count.
        self.tail.fetch_or(CLOSED, Ordering::SeqCst) & !CLOSED
    }

    /// True once [`Ring::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// [`Ring::is_closed`] for the spill hand-shake (see `Pipeline::spill`
    /// and `flusher::final_drain`).
    ///
    /// The hand-shake is a store-then-load on each side (producer: count
    /// itself in `spilling`, then look at `tail`; shutdown: close `tail`,
    /// then look at `spilling`). Each look is a read-modify-write that
    /// changes nothing, not a plain load: RMWs on one location are totally
    /// ordered and each reads the latest value, so with acquire-release
    /// alone (no reliance on SeqCst loads, which loom models as acquire)
    /// at least one side sees the other. A CAS claim racing this RMW
    /// still succeeds: the value it compares is unchanged.
    pub(crate) fn is_closed_seqcst(&self) -> bool {
        // SeqCst RMWs: pair with `close`'s RMW on `tail` (or `close_owned`'s
        // on `closed`) and with the RMW reads of `spilling` (see above).
        self.tail.fetch_or(0, Ordering::SeqCst) & CLOSED != 0
            || self.closed.fetch_or(0, Ordering::SeqCst) != 0
    }

    /// Positions claimed so far: every sample pushed before this read is
    /// below it (the idle series' recycling waits for `head` to pass it).
    pub fn claimed(&self) -> usize {
        self.tail.load(Ordering::Relaxed) & !CLOSED
    }

    /// Position of the next sample the consumer will read.
    pub fn head(&self) -> usize {
        self.head.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;
    use crate::sync::Arc;
    use std::thread;

    use super::*;
    use crate::hot::sample::MetricId;

    fn sample(producer: u32, seq: u32) -> Sample {
        Sample {
            id: MetricId(producer),
            inclusion_prob: 1.0,
            value: f64::from(seq),
        }
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two() {
        assert_eq!(Ring::new(0).capacity(), 2);
        assert_eq!(Ring::new(3).capacity(), 4);
        assert_eq!(Ring::new(2048).capacity(), 2048);
    }

    #[test]
    fn full_ring_hands_the_sample_back_and_wraps_after_a_drain() {
        let ring = Ring::new(4);
        for seq in 0..4 {
            assert!(ring.push(sample(0, seq)).is_ok());
        }
        assert_eq!(ring.push(sample(0, 4)), Err(PushError::Full(sample(0, 4))));
        let mut drained = Vec::new();
        assert_eq!(ring.drain(2, |s| drained.push(s.value)), 2);
        for seq in 4..6 {
            assert!(ring.push(sample(0, seq)).is_ok());
        }
        ring.drain(usize::MAX, |s| drained.push(s.value));
        assert_eq!(drained, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(ring.is_empty());
    }

    #[test]
    fn closed_ring_refuses_and_reports_its_final_tail() {
        let ring = Ring::new(4);
        ring.push(sample(0, 0)).unwrap();
        assert_eq!(ring.close(), 1);
        assert!(ring.is_closed());
        assert!(matches!(ring.push(sample(0, 1)), Err(PushError::Closed(_))));
        let mut count = 0;
        ring.drain(usize::MAX, |_| count += 1);
        assert_eq!((count, ring.head()), (1, 1));
    }

    #[test]
    fn an_owned_ring_takes_plain_pushes_hands_over_and_closes() {
        let ring = Arc::new(Ring::new(4));
        assert!(ring.try_claim());
        assert!(!ring.try_claim(), "one holder at a time");
        for seq in 0..4 {
            // SAFETY: this thread holds the claim.
            assert_eq!(unsafe { ring.push_owned(sample(0, seq)) }, Ok(seq as usize));
        }
        // SAFETY: as above.
        let full = unsafe { ring.push_owned(sample(0, 4)) };
        assert_eq!(full, Err(PushError::Full(sample(0, 4))));
        ring.release();
        let mut drained = Vec::new();
        ring.drain(usize::MAX, |s| drained.push(s.value));
        // Another thread takes the claim over and goes on from `tail`.
        let other = ring.clone();
        thread::spawn(move || {
            assert!(other.try_claim());
            // SAFETY: this thread holds the claim.
            assert_eq!(unsafe { other.push_owned(sample(1, 5)) }, Ok(4));
            other.close_owned();
            // SAFETY: as above.
            let refused = unsafe { other.push_owned(sample(1, 6)) };
            assert!(matches!(refused, Err(PushError::Closed(_))));
            other.release();
        })
        .join()
        .unwrap();
        assert!(ring.is_closed_seqcst());
        ring.drain(usize::MAX, |s| drained.push(s.value));
        assert_eq!(drained, [0.0, 1.0, 2.0, 3.0, 5.0]);
        assert_eq!(ring.head(), ring.published_tail());
    }

    /// Four producers against one consumer through a small ring: every
    /// accepted sample arrives once, in per-producer order, and every
    /// refused one came back.
    #[test]
    fn concurrent_producers_lose_nothing() {
        let ring = Arc::new(Ring::new(64));
        let per_producer = 20_000u32;
        let producers: Vec<_> = (0..4u32)
            .map(|producer| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut refused = HashSet::new();
                    for seq in 0..per_producer {
                        if let Err(PushError::Full(back) | PushError::Contended(back)) =
                            ring.push(sample(producer, seq))
                        {
                            refused.insert(back.value as u32);
                        }
                    }
                    refused
                })
            })
            .collect();
        let mut last_seen = [-1.0f64; 4];
        let mut accepted = [
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
            HashSet::new(),
        ];
        let mut record = |s: Sample| {
            let producer = s.id.index();
            assert!(s.value > last_seen[producer], "per-producer order");
            last_seen[producer] = s.value;
            assert!(accepted[producer].insert(s.value as u32));
        };
        while producers.iter().any(|p| !p.is_finished()) {
            ring.drain(usize::MAX, &mut record);
        }
        ring.drain(usize::MAX, &mut record);
        for (producer, handle) in producers.into_iter().enumerate() {
            let refused = handle.join().unwrap();
            assert!(refused.is_disjoint(&accepted[producer]));
            assert_eq!(
                refused.len() + accepted[producer].len(),
                per_producer as usize
            );
        }
    }
}
