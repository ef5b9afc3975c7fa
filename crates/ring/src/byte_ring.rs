use std::cell::UnsafeCell;
use std::sync::atomic::AtomicU64;

use crate::core::{ConfigError, Core, Metrics, Overrun, Refusal, Stamps, Wait};

/// Why [`ByteRing::write`] did not take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The message is longer than the slot size.
    TooLarge { len: usize, max: usize },
    /// `Overrun::Error` and no free slot.
    Full,
    /// `Overrun::Block` and the cancel flag was raised while waiting.
    Cancelled,
    /// `Overrun::Block` and the deadline passed while waiting.
    TimedOut,
}

/// What one [`ByteRing::read_batch`] or [`ByteRing::write_batch`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Messages moved.
    pub count: usize,
    /// Bytes of the packed buffer used (records are `u32` little-endian length, then the bytes).
    pub bytes: usize,
}

struct StampArray(Box<[AtomicU64]>);

impl Stamps for StampArray {
    #[inline]
    fn stamp(&self, index: usize) -> &AtomicU64 {
        &self.0[index]
    }
}

const LEN_BYTES: usize = 4;

/// A bounded MPMC ring of byte messages in fixed-size slots of one contiguous allocation.
///
/// Each slot holds a `u32` length and up to `slot_size` bytes. Batches use a packed format:
/// records of a `u32` little-endian length followed by that many bytes, back to back.
///
/// | operation                 | cost                                               |
/// |---------------------------|----------------------------------------------------|
/// | [`ByteRing::write`]       | O(len); one CAS uncontended; `Block` may wait       |
/// | [`ByteRing::read`]        | O(len)                                             |
/// | [`ByteRing::read_batch`]  | O(total bytes)                                     |
/// | [`ByteRing::write_batch`] | O(total bytes)                                     |
/// | memory                    | capacity × (8 + round8(4 + slot_size)) + 5 lines   |
///
/// Invariants: those of [`crate::Ring`]; in addition a reader copies a message out while it owns
/// the slot, so a message is never torn, even under drop-oldest.
///
/// ```
/// use ring::{ByteRing, Overrun};
/// let ring = ByteRing::new(64, 8, Overrun::Error).unwrap();
/// ring.write(b"hello").unwrap();
/// let mut out = [0u8; 64];
/// assert_eq!(ring.read(&mut out), Some(5));
/// assert_eq!(&out[..5], b"hello");
/// ```
pub struct ByteRing {
    core: Core,
    stamps: StampArray,
    data: Box<[UnsafeCell<u8>]>,
    slot_size: usize,
    stride: usize,
}

// SAFETY: slot bytes are only touched by the thread that owns the slot through its stamp.
unsafe impl Send for ByteRing {}
// SAFETY: as above.
unsafe impl Sync for ByteRing {}

impl ByteRing {
    /// Builds a ring of `capacity` slots (a power of two) of up to `slot_size` bytes each.
    ///
    /// ```
    /// # use ring::{ByteRing, ConfigError, Overrun};
    /// assert!(ByteRing::new(256, 1024, Overrun::DropOldest).is_ok());
    /// assert_eq!(ByteRing::new(0, 8, Overrun::Error).err(), Some(ConfigError::InvalidSlotSize(0)));
    /// ```
    pub fn new(slot_size: usize, capacity: usize, overrun: Overrun) -> Result<ByteRing, ConfigError> {
        if slot_size == 0 || slot_size > u32::MAX as usize {
            return Err(ConfigError::InvalidSlotSize(slot_size));
        }
        let core = Core::new(capacity, overrun)?;
        let stride = (LEN_BYTES + slot_size).next_multiple_of(8);
        let stamps = (0..capacity).map(|i| AtomicU64::new(Core::initial_stamp(i))).collect();
        let data = (0..stride * capacity).map(|_| UnsafeCell::new(0)).collect();
        Ok(ByteRing { core, stamps: StampArray(stamps), data, slot_size, stride })
    }

    /// The largest message a slot holds.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun};
    /// assert_eq!(ByteRing::new(100, 2, Overrun::Error).unwrap().slot_size(), 100);
    /// ```
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The number of slots.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun};
    /// assert_eq!(ByteRing::new(8, 32, Overrun::Error).unwrap().capacity(), 32);
    /// ```
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The overrun policy chosen at construction.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun};
    /// assert_eq!(ByteRing::new(8, 2, Overrun::Block).unwrap().overrun(), Overrun::Block);
    /// ```
    pub fn overrun(&self) -> Overrun {
        self.core.overrun()
    }

    fn slot_ptr(&self, index: usize) -> *mut u8 {
        UnsafeCell::raw_get(self.data[index * self.stride..].as_ptr())
    }

    /// Writes one message; under `Block` waits as long as it takes.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun, WriteError};
    /// let ring = ByteRing::new(4, 1, Overrun::Error).unwrap();
    /// assert_eq!(ring.write(b"too long"), Err(WriteError::TooLarge { len: 8, max: 4 }));
    /// ring.write(b"ok").unwrap();
    /// assert_eq!(ring.write(b"no"), Err(WriteError::Full));
    /// ```
    pub fn write(&self, message: &[u8]) -> Result<(), WriteError> {
        self.write_with(message, Wait::default())
    }

    /// Writes one message; under `Block` gives up when `wait.cancel` is raised or `wait.deadline`
    /// passes.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun, Wait, WriteError};
    /// # use std::sync::atomic::AtomicBool;
    /// let ring = ByteRing::new(4, 1, Overrun::Block).unwrap();
    /// ring.write(b"a").unwrap();
    /// let stop = AtomicBool::new(true);
    /// let wait = Wait { cancel: Some(&stop), deadline: None };
    /// assert_eq!(ring.write_with(b"b", wait), Err(WriteError::Cancelled));
    /// ```
    pub fn write_with(&self, message: &[u8], wait: Wait<'_>) -> Result<(), WriteError> {
        if message.len() > self.slot_size {
            return Err(WriteError::TooLarge { len: message.len(), max: self.slot_size });
        }
        let claim = self.core.claim(&self.stamps, wait).map_err(|refusal| match refusal {
            Refusal::Full => WriteError::Full,
            Refusal::Cancelled => WriteError::Cancelled,
            Refusal::TimedOut => WriteError::TimedOut,
        })?;
        let slot = self.slot_ptr(claim.index);
        // SAFETY: the claim gives this thread exclusive ownership of the slot's `stride` bytes
        // until `publish`; `message.len() <= slot_size` so the copy stays inside the slot.
        unsafe {
            std::ptr::copy_nonoverlapping((message.len() as u32).to_le_bytes().as_ptr(), slot, LEN_BYTES);
            std::ptr::copy_nonoverlapping(message.as_ptr(), slot.add(LEN_BYTES), message.len());
        }
        self.core.publish(&self.stamps, &claim);
        Ok(())
    }

    /// Copies the oldest message into `out` and returns its length, or `None` when nothing is ready.
    ///
    /// Panics with "output buffer must hold a whole slot" when `out` is shorter than `slot_size`,
    /// because the message is claimed before its length is known.
    ///
    /// ```
    /// # use ring::{ByteRing, Overrun};
    /// let ring = ByteRing::new(8, 2, Overrun::Error).unwrap();
    /// let mut out = [0u8; 8];
    /// assert_eq!(ring.read(&mut out), None);
    /// ring.write(&[1, 2, 3]).unwrap();
    /// assert_eq!(ring.read(&mut out), Some(3));
    /// ```
    pub fn read(&self, out: &mut [u8]) -> Option<usize> {
        assert!(out.len() >= self.slot_size, "output buffer must hold a whole slot");
        let claim = self.core.take(&self.stamps)?;
        let slot = self.slot_ptr(claim.index);
        let mut len = [0u8; LEN_BYTES];
        // SAFETY: `take` gives this thread ownership of the slot until `release`; the length was
        // written by the producer before it published and is at most `slot_size <= out.len()`.
        let len = unsafe {
            std::ptr::copy_nonoverlapping(slot, len.as_mut_ptr(), LEN_BYTES);
            let len = u32::from_le_bytes(len) as usize;
            std::ptr::copy_nonoverlapping(slot.add(LEN_BYTES), out.as_mut_ptr(), len);
            len
        };
        self.core.release(&self.stamps, &claim);
        Some(len)
    }

    /// Reads ready messages into `out` as packed records while a whole slot still fits.
    ///
    /// ```
    /// # use ring::{Batch, ByteRing, Overrun};
    /// let ring = ByteRing::new(4, 4, Overrun::Error).unwrap();
    /// ring.write(b"ab").unwrap();
    /// ring.write(b"c").unwrap();
    /// let mut out = [0u8; 64];
    /// assert_eq!(ring.read_batch(&mut out), Batch { count: 2, bytes: 4 + 2 + 4 + 1 });
    /// assert_eq!(&out[..6], &[2, 0, 0, 0, b'a', b'b']);
    /// ```
    pub fn read_batch(&self, out: &mut [u8]) -> Batch {
        let mut batch = Batch::default();
        while out.len() - batch.bytes >= LEN_BYTES + self.slot_size {
            let record = &mut out[batch.bytes..];
            let (head, body) = record.split_at_mut(LEN_BYTES);
            match self.read(body) {
                Some(len) => {
                    head.copy_from_slice(&(len as u32).to_le_bytes());
                    batch.count += 1;
                    batch.bytes += LEN_BYTES + len;
                }
                None => break,
            }
        }
        batch
    }

    /// Writes packed records from `records` until one is refused, and reports what went in.
    /// Stops with the error of the first refused record (the records before it are in).
    ///
    /// ```
    /// # use ring::{Batch, ByteRing, Overrun, WriteError};
    /// let ring = ByteRing::new(4, 1, Overrun::Error).unwrap();
    /// let records = [1, 0, 0, 0, b'x', 1, 0, 0, 0, b'y'];
    /// assert_eq!(ring.write_batch(&records), (Batch { count: 1, bytes: 5 }, Some(WriteError::Full)));
    /// ```
    pub fn write_batch(&self, records: &[u8]) -> (Batch, Option<WriteError>) {
        self.write_batch_with(records, Wait::default())
    }

    /// [`ByteRing::write_batch`] with a way to stop waiting under `Block`.
    ///
    /// Panics with "truncated record in batch" when a record's length runs past the buffer.
    ///
    /// ```
    /// # use ring::{Batch, ByteRing, Overrun, Wait};
    /// let ring = ByteRing::new(4, 2, Overrun::Block).unwrap();
    /// let records = [1, 0, 0, 0, b'x'];
    /// assert_eq!(ring.write_batch_with(&records, Wait::default()), (Batch { count: 1, bytes: 5 }, None));
    /// ```
    pub fn write_batch_with(&self, records: &[u8], wait: Wait<'_>) -> (Batch, Option<WriteError>) {
        let mut batch = Batch::default();
        while batch.bytes < records.len() {
            let rest = &records[batch.bytes..];
            assert!(rest.len() >= LEN_BYTES, "truncated record in batch");
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(rest.len() >= LEN_BYTES + len, "truncated record in batch");
            if let Err(error) = self.write_with(&rest[LEN_BYTES..LEN_BYTES + len], wait) {
                return (batch, Some(error));
            }
            batch.count += 1;
            batch.bytes += LEN_BYTES + len;
        }
        (batch, None)
    }

    /// Counters; exact at quiescence.
    ///
    /// ```
    /// # use ring::{ByteRing, Metrics, Overrun};
    /// let ring = ByteRing::new(4, 1, Overrun::DropOldest).unwrap();
    /// ring.write(b"a").unwrap();
    /// ring.write(b"b").unwrap();
    /// assert_eq!(ring.metrics(), Metrics { published: 2, processed: 0, dropped: 1, pending: 1 });
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.core.metrics()
    }
}
