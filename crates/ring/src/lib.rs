//! Bounded multi-producer, multi-consumer ring buffers after the LMAX Disruptor.
//!
//! A producer claims a sequence, writes its slot, then publishes it; only consumers move the
//! consumer sequence; the cursor, the consumer sequence and every counter sit on their own cache
//! line. Two rings share one protocol (see `core.rs`):
//!
//! - [`Ring<T>`] carries owned values of any `T: Send`.
//! - [`ByteRing`] carries byte messages in fixed-size slots of one contiguous allocation, the shape
//!   JavaScript Workers exchange encoded events through.
//!
//! Both are safe with any number of producer threads and any number of consumer threads at once.
//!
//! GoEventBus, the system this replaces, has three races this design rules out:
//! 1. it checks for room and increments the head in two steps, so two producers can both pass the
//!    check; here the check and the claim are one compare-and-swap on the cursor;
//! 2. it moves the head before the slot is written, so a consumer can read a stale slot; here a slot
//!    becomes visible only when its stamp says `FULL` for exactly the consumer's sequence;
//! 3. its consumer stores the tail after a drain, erasing drop-oldest's increments; here producers
//!    never move the consumer sequence, and an overwritten item is counted once, by the producer
//!    that won the slot.

mod byte_ring;
mod core;
mod typed;

pub use crate::byte_ring::{Batch, ByteRing, WriteError};
pub use crate::core::{ConfigError, Metrics, Overrun, Wait};
pub use crate::typed::{PushError, Ring};
