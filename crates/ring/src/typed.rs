use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64;

use crate::core::{ConfigError, Core, Metrics, Overrun, Refusal, Stamps, Wait};

/// A push that did not go through; the item is handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError<T> {
    /// `Overrun::Error` and no free slot.
    Full(T),
    /// `Overrun::Block` and the cancel flag was raised while waiting.
    Cancelled(T),
    /// `Overrun::Block` and the deadline passed while waiting.
    TimedOut(T),
}

impl<T> PushError<T> {
    /// The item that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(item) | PushError::Cancelled(item) | PushError::TimedOut(item) => item,
        }
    }
}

struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

struct Slots<T>(Box<[Slot<T>]>);

impl<T> Stamps for Slots<T> {
    #[inline]
    fn stamp(&self, index: usize) -> &AtomicU64 {
        &self.0[index].stamp
    }
}

/// A bounded MPMC ring of owned values.
///
/// | operation          | cost                                                     |
/// |--------------------|----------------------------------------------------------|
/// | [`Ring::push`]     | O(1); one CAS uncontended; `Block` waits for a free slot  |
/// | [`Ring::pop`]      | O(1) amortised (skips overwritten sequences one by one)  |
/// | [`Ring::drain`]    | O(n) for n items                                         |
/// | [`Ring::metrics`]  | O(1)                                                     |
/// | memory             | capacity × (8 + size_of::<T>()) + 5 cache lines          |
///
/// Invariants:
/// - every published item is delivered to exactly one consumer or counted as dropped, never both;
/// - items are delivered in sequence order; a consumer never sees a slot written for another sequence;
/// - at quiescence `published == processed + dropped + pending` (see [`Ring::metrics`]);
/// - items still inside the ring when it is dropped are dropped with it.
///
/// ```
/// use ring::{Overrun, Ring};
/// let ring = Ring::new(4, Overrun::Error).unwrap();
/// ring.push("a").unwrap();
/// assert_eq!(ring.pop(), Some("a"));
/// assert_eq!(ring.pop(), None);
/// ```
pub struct Ring<T> {
    core: Core,
    slots: Slots<T>,
}

// SAFETY: items move between threads (so T: Send); every access to a slot's value happens while
// the accessing thread owns the slot through its stamp, so sharing `&Ring<T>` is sound.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: see above; no `&T` is ever handed out, so T need not be Sync.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// Builds a ring of `capacity` slots (a power of two) with the given overrun policy.
    ///
    /// ```
    /// use ring::{ConfigError, Overrun, Ring};
    /// assert!(Ring::<u32>::new(8, Overrun::Block).is_ok());
    /// assert_eq!(Ring::<u32>::new(6, Overrun::Block).err(), Some(ConfigError::CapacityNotPowerOfTwo(6)));
    /// ```
    pub fn new(capacity: usize, overrun: Overrun) -> Result<Ring<T>, ConfigError> {
        let core = Core::new(capacity, overrun)?;
        let slots = (0..capacity)
            .map(|i| Slot {
                stamp: AtomicU64::new(Core::initial_stamp(i)),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ok(Ring { core, slots: Slots(slots) })
    }

    /// The number of slots.
    ///
    /// ```
    /// # use ring::{Overrun, Ring};
    /// assert_eq!(Ring::<u8>::new(16, Overrun::Error).unwrap().capacity(), 16);
    /// ```
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The overrun policy chosen at construction.
    ///
    /// ```
    /// # use ring::{Overrun, Ring};
    /// assert_eq!(Ring::<u8>::new(2, Overrun::DropOldest).unwrap().overrun(), Overrun::DropOldest);
    /// ```
    pub fn overrun(&self) -> Overrun {
        self.core.overrun()
    }

    /// Pushes an item; under `Block` waits as long as it takes.
    ///
    /// ```
    /// # use ring::{Overrun, PushError, Ring};
    /// let ring = Ring::new(1, Overrun::Error).unwrap();
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.push(2), Err(PushError::Full(2)));
    /// let lossy = Ring::new(1, Overrun::DropOldest).unwrap();
    /// lossy.push(1).unwrap();
    /// lossy.push(2).unwrap();
    /// assert_eq!(lossy.pop(), Some(2));
    /// assert_eq!(lossy.metrics().dropped, 1);
    /// ```
    pub fn push(&self, item: T) -> Result<(), PushError<T>> {
        self.push_with(item, Wait::default())
    }

    /// Pushes an item; under `Block` gives up when `wait.cancel` is raised or `wait.deadline`
    /// passes, and hands the item back.
    ///
    /// ```
    /// # use ring::{Overrun, PushError, Ring, Wait};
    /// # use std::time::{Duration, Instant};
    /// let ring = Ring::new(1, Overrun::Block).unwrap();
    /// ring.push(1).unwrap();
    /// let wait = Wait { cancel: None, deadline: Some(Instant::now() + Duration::from_millis(1)) };
    /// assert_eq!(ring.push_with(2, wait), Err(PushError::TimedOut(2)));
    /// ```
    pub fn push_with(&self, item: T, wait: Wait<'_>) -> Result<(), PushError<T>> {
        let claim = match self.core.claim(&self.slots, wait) {
            Ok(claim) => claim,
            Err(Refusal::Full) => return Err(PushError::Full(item)),
            Err(Refusal::Cancelled) => return Err(PushError::Cancelled(item)),
            Err(Refusal::TimedOut) => return Err(PushError::TimedOut(item)),
        };
        let cell = self.slots.0[claim.index].value.get();
        // SAFETY: the claim gives this thread exclusive ownership of the slot until `publish`.
        // When `overwrote` is set the slot holds an initialised, unread item that nobody else can
        // reach any more; we move it out before writing the new one.
        let evicted = unsafe {
            let old = if claim.overwrote { Some((*cell).assume_init_read()) } else { None };
            (*cell).write(item);
            old
        };
        self.core.publish(&self.slots, &claim);
        // Dropped after publishing so that a slow destructor never holds a slot.
        drop(evicted);
        Ok(())
    }

    /// Takes the oldest item, or `None` when nothing is published yet.
    ///
    /// ```
    /// # use ring::{Overrun, Ring};
    /// let ring = Ring::new(2, Overrun::Error).unwrap();
    /// assert_eq!(ring.pop(), None::<u8>);
    /// ring.push(7).unwrap();
    /// assert_eq!(ring.pop(), Some(7));
    /// ```
    pub fn pop(&self) -> Option<T> {
        let claim = self.core.take(&self.slots)?;
        let cell = self.slots.0[claim.index].value.get();
        // SAFETY: `take` moved the slot from FULL to READING, so it holds an initialised item and
        // this thread owns it until `release`, which marks the slot empty (moved out).
        let item = unsafe { (*cell).assume_init_read() };
        self.core.release(&self.slots, &claim);
        Some(item)
    }

    /// Moves up to `max` ready items into `out` and returns how many it moved.
    ///
    /// ```
    /// # use ring::{Overrun, Ring};
    /// let ring = Ring::new(4, Overrun::Error).unwrap();
    /// for i in 0..3 { ring.push(i).unwrap(); }
    /// let mut out = Vec::new();
    /// assert_eq!(ring.drain(&mut out, 10), 3);
    /// assert_eq!(out, [0, 1, 2]);
    /// ```
    pub fn drain(&self, out: &mut Vec<T>, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            match self.pop() {
                Some(item) => {
                    out.push(item);
                    moved += 1;
                }
                None => break,
            }
        }
        moved
    }

    /// Counters; exact at quiescence, and `pending` never negative while threads run.
    ///
    /// ```
    /// # use ring::{Metrics, Overrun, Ring};
    /// let ring = Ring::new(2, Overrun::Error).unwrap();
    /// ring.push(1).unwrap();
    /// ring.push(2).unwrap();
    /// ring.pop();
    /// assert_eq!(ring.metrics(), Metrics { published: 2, processed: 1, dropped: 0, pending: 1 });
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.core.metrics()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        for slot in self.slots.0.iter_mut() {
            if Core::holds_item(*slot.stamp.get_mut()) {
                // SAFETY: `&mut self` means no thread is inside the protocol; a FULL stamp means
                // the slot holds an initialised item nobody took.
                unsafe { slot.value.get_mut().assume_init_drop() };
            }
        }
    }
}
