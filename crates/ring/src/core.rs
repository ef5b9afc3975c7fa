//! The sequencing protocol shared by [`crate::Ring`] and [`crate::ByteRing`].
//!
//! Each slot has one 64-bit stamp `sequence << 2 | state`. A stamp only ever grows, so a stamp
//! tells at once which lap of the ring a slot is in and what is happening to it:
//!
//! ```text
//! EMPTY(s)   free, waiting for the producer of sequence s
//! WRITING(s) a drop-oldest producer owns the slot and is writing item s
//! FULL(s)    item s is published and may be taken
//! READING(s) a consumer owns the slot and is copying item s out
//! ```
//!
//! Transitions: `EMPTY(s) -> [WRITING(s) ->] FULL(s) -> READING(s) -> EMPTY(s + cap)`, and, for
//! drop-oldest only, `FULL(s) -> WRITING(s + cap)` (a producer overwrites an unread item and counts
//! it as dropped). Whoever moves a slot out of `EMPTY`/`FULL` by compare-and-swap owns its bytes
//! until it stores the next stamp, so payloads never need atomics and no reader ever sees a torn or
//! stale item.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// What a producer does when the ring has no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overrun {
    /// Producers never wait for consumers: the oldest unread item is overwritten and counted in
    /// `dropped`. (A producer may spin for the few nanoseconds a consumer needs to finish copying
    /// the one slot it wants.)
    DropOldest,
    /// The producer waits for a consumer to free a slot; the wait can be cancelled.
    Block,
    /// The producer gets its item back at once.
    Error,
}

/// Why a ring could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The capacity was zero or not a power of two.
    CapacityNotPowerOfTwo(usize),
    /// A [`crate::ByteRing`] slot size was zero or above `u32::MAX`.
    InvalidSlotSize(usize),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::CapacityNotPowerOfTwo(c) => {
                write!(f, "capacity must be a power of two greater than zero, got {c}")
            }
            ConfigError::InvalidSlotSize(s) => {
                write!(f, "slot size must be between 1 and {} bytes, got {s}", u32::MAX)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Counters of a ring. At quiescence `published == processed + dropped + pending`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Items accepted by a push.
    pub published: u64,
    /// Items handed to a consumer.
    pub processed: u64,
    /// Items overwritten before a consumer took them (drop-oldest only).
    pub dropped: u64,
    /// Items published and neither processed nor dropped yet.
    pub pending: u64,
}

/// How a push may wait: an optional cancel flag and an optional deadline. Only `Block` waits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wait<'a> {
    /// The push gives up once this flag is `true`.
    pub cancel: Option<&'a AtomicBool>,
    /// The push gives up once this instant has passed.
    pub deadline: Option<Instant>,
}

/// Why a push refused an item; the item itself travels in the caller's error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Full,
    Cancelled,
    TimedOut,
}

/// Keeps a hot word alone on its cache line (128 bytes: adjacent-line prefetch pairs lines on x86).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub T);

const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const FULL: u64 = 2;
const READING: u64 = 3;

#[inline]
const fn stamp(seq: u64, state: u64) -> u64 {
    (seq << 2) | state
}

/// Gives the protocol access to slot stamps, wherever the ring keeps them.
pub(crate) trait Stamps {
    fn stamp(&self, index: usize) -> &AtomicU64;
}

/// A slot the caller now owns: it must write (or read) the payload at `index` and then call
/// [`Core::publish`] (or [`Core::release`]).
pub(crate) struct Claim {
    pub seq: u64,
    pub index: usize,
    /// Drop-oldest overwrote an unread item; a typed ring must dispose of the old value.
    pub overwrote: bool,
}

pub(crate) struct Core {
    /// Next sequence a producer will claim.
    cursor: Padded<AtomicU64>,
    /// Next sequence a consumer will take; only consumers move it.
    head: Padded<AtomicU64>,
    published: Padded<AtomicU64>,
    processed: Padded<AtomicU64>,
    dropped: Padded<AtomicU64>,
    capacity: u64,
    mask: u64,
    overrun: Overrun,
}

/// Spin briefly, then yield the CPU: waits here are short unless a ring is full in block mode.
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        if self.0 < 6 {
            for _ in 0..(1u32 << self.0) {
                std::hint::spin_loop();
            }
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

impl Core {
    pub fn new(capacity: usize, overrun: Overrun) -> Result<Core, ConfigError> {
        if capacity == 0 || !capacity.is_power_of_two() {
            return Err(ConfigError::CapacityNotPowerOfTwo(capacity));
        }
        Ok(Core {
            cursor: Padded::default(),
            head: Padded::default(),
            published: Padded::default(),
            processed: Padded::default(),
            dropped: Padded::default(),
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            overrun,
        })
    }

    /// The stamp every slot starts with: slot `i` waits for the producer of sequence `i`.
    pub fn initial_stamp(index: usize) -> u64 {
        stamp(index as u64, EMPTY)
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    pub fn overrun(&self) -> Overrun {
        self.overrun
    }

    /// Claims the next slot for a producer. The full check and the claim are one compare-and-swap
    /// on the cursor, conditioned on the slot being free for that very sequence, so two producers
    /// can never both pass the check and share or overrun a slot.
    pub fn claim(&self, stamps: &impl Stamps, wait: Wait<'_>) -> Result<Claim, Refusal> {
        if self.overrun == Overrun::DropOldest {
            return Ok(self.claim_overwriting(stamps));
        }
        let mut backoff = Backoff(0);
        loop {
            let seq = self.cursor.0.load(Ordering::Relaxed);
            let index = (seq & self.mask) as usize;
            // Acquire: the consumer that freed this slot finished reading before we write.
            let current = stamps.stamp(index).load(Ordering::Acquire);
            let free = stamp(seq, EMPTY);
            if current == free {
                if self
                    .cursor
                    .0
                    .compare_exchange_weak(seq, seq + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Claim { seq, index, overwrote: false });
                }
            } else if current < free {
                // The slot still holds item `seq - capacity`: the ring is full.
                if self.overrun == Overrun::Error {
                    return Err(Refusal::Full);
                }
                if let Some(flag) = wait.cancel {
                    if flag.load(Ordering::Relaxed) {
                        return Err(Refusal::Cancelled);
                    }
                }
                if let Some(deadline) = wait.deadline {
                    if backoff.0 >= 6 && Instant::now() >= deadline {
                        return Err(Refusal::TimedOut);
                    }
                }
                backoff.snooze();
            }
            // Otherwise another producer claimed `seq` first; reload the cursor.
        }
    }

    /// Drop-oldest: every producer gets a sequence at once; if its slot still holds an unread item
    /// of the previous lap it takes the slot over and counts that item as dropped.
    fn claim_overwriting(&self, stamps: &impl Stamps) -> Claim {
        let seq = self.cursor.0.fetch_add(1, Ordering::Relaxed);
        let index = (seq & self.mask) as usize;
        let slot = stamps.stamp(index);
        let mut backoff = Backoff(0);
        loop {
            let current = slot.load(Ordering::Acquire);
            if current == stamp(seq, EMPTY) {
                if slot
                    .compare_exchange(current, stamp(seq, WRITING), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Claim { seq, index, overwrote: false };
                }
            } else if seq >= self.capacity && current == stamp(seq - self.capacity, FULL) {
                // A consumer may win this slot at the same instant (FULL -> READING); exactly one
                // compare-and-swap succeeds, so the item is either processed or dropped, never both.
                if slot
                    .compare_exchange(current, stamp(seq, WRITING), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.dropped.0.fetch_add(1, Ordering::Relaxed);
                    return Claim { seq, index, overwrote: true };
                }
            }
            // The previous lap is still being written or read; that lasts one payload copy.
            backoff.snooze();
        }
    }

    /// Makes a claimed slot visible to consumers.
    pub fn publish(&self, stamps: &impl Stamps, claim: &Claim) {
        // Counted before the stamp so that readers of the metrics never see processed > published.
        self.published.0.fetch_add(1, Ordering::Relaxed);
        stamps.stamp(claim.index).store(stamp(claim.seq, FULL), Ordering::Release);
    }

    /// Takes the oldest published item for a consumer, or `None` when nothing is ready.
    pub fn take(&self, stamps: &impl Stamps) -> Option<Claim> {
        loop {
            let head = self.head.0.load(Ordering::Acquire);
            let index = (head & self.mask) as usize;
            let slot = stamps.stamp(index);
            let current = slot.load(Ordering::Acquire);
            if current == stamp(head, FULL) {
                if self
                    .head
                    .0
                    .compare_exchange_weak(head, head + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    // A drop-oldest producer may have taken the slot since we looked; then the
                    // item was counted as dropped by that producer and we move on.
                    if slot
                        .compare_exchange(current, stamp(head, READING), Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Some(Claim { seq: head, index, overwrote: false });
                    }
                }
            } else if current >= stamp(head, READING) {
                if current >= stamp(head + 1, EMPTY) && self.overrun == Overrun::DropOldest {
                    // Item `head` was overwritten (and counted) before any consumer reached it.
                    let _ = self.head.0.compare_exchange(
                        head,
                        head + 1,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                // Otherwise another consumer took `head` already; reload.
            } else if self.head.0.load(Ordering::Acquire) == head {
                return None;
            }
        }
    }

    /// Frees a slot taken with [`Core::take`] for the producer one lap ahead.
    pub fn release(&self, stamps: &impl Stamps, claim: &Claim) {
        self.processed.0.fetch_add(1, Ordering::Relaxed);
        stamps
            .stamp(claim.index)
            .store(stamp(claim.seq + self.capacity, EMPTY), Ordering::Release);
    }

    pub fn metrics(&self) -> Metrics {
        // Read the consumer-side counters first: each item is published before it is processed
        // or dropped, so pending never goes negative even while threads are running.
        let processed = self.processed.0.load(Ordering::Acquire);
        let dropped = self.dropped.0.load(Ordering::Acquire);
        let published = self.published.0.load(Ordering::Acquire);
        Metrics {
            published,
            processed,
            dropped,
            pending: published.saturating_sub(processed + dropped),
        }
    }

    /// True when the stamp says the slot holds a published, unread item (used on drop).
    pub fn holds_item(stamp_value: u64) -> bool {
        stamp_value & 3 == FULL
    }
}
