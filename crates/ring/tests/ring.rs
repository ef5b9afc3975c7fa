use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ring::{ByteRing, ConfigError, Metrics, Overrun, PushError, Ring, Wait, WriteError};

/// Items per producer; Miri runs the same tests with far fewer.
const PER_PRODUCER: u64 = if cfg!(miri) { 50 } else { 20_000 };

/// A payload whose every field is derived from its sequence, so a torn or stale read shows.
fn payload(producer: u64, index: u64) -> [u64; 4] {
    let id = (producer << 32) | index;
    [id, id.wrapping_mul(0x9E37_79B9_7F4A_7C15), !id, id ^ 0xDEAD_BEEF]
}

fn check(p: &[u64; 4]) -> u64 {
    assert_eq!(p, &payload(p[0] >> 32, p[0] & 0xFFFF_FFFF), "torn or stale payload");
    p[0]
}

fn encode(producer: u64, index: u64) -> Vec<u8> {
    // Variable length so a reader that mixes two messages also gets the length wrong.
    let len = 8 + (index % 40) as usize;
    let mut bytes = vec![0u8; len];
    bytes[..8].copy_from_slice(&((producer << 32) | index).to_le_bytes());
    let mut sum: u8 = 0;
    for (i, byte) in bytes.iter_mut().enumerate().skip(8) {
        *byte = (index as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    for byte in &bytes[..len - 1] {
        sum = sum.wrapping_add(*byte);
    }
    bytes[len - 1] = sum;
    bytes
}

fn decode(bytes: &[u8]) -> u64 {
    let id = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(bytes, encode(id >> 32, id & 0xFFFF_FFFF).as_slice(), "torn or stale message");
    id
}

/// Runs `producers` threads pushing `per` payloads each and `consumers` threads popping until all
/// producers are done and the ring is empty; returns every delivered id and the final metrics.
fn run_typed(ring: Arc<Ring<[u64; 4]>>, producers: u64, consumers: usize, per: u64) -> (Vec<u64>, Vec<[u64; 4]>) {
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(producers as usize + consumers));
    let mut rejected = Vec::new();
    let consumer_handles: Vec<_> = (0..consumers)
        .map(|_| {
            let (ring, done, start) = (ring.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut seen = Vec::new();
                loop {
                    match ring.pop() {
                        Some(p) => seen.push(check(&p)),
                        None if done.load(Ordering::Acquire) == producers as usize => {
                            // Producers are finished; whatever is left is ready now.
                            while let Some(p) = ring.pop() {
                                seen.push(check(&p));
                            }
                            return seen;
                        }
                        None => thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    let producer_handles: Vec<_> = (0..producers)
        .map(|producer| {
            let (ring, done, start) = (ring.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut rejected = Vec::new();
                for index in 0..per {
                    if let Err(error) = ring.push(payload(producer, index)) {
                        rejected.push(error.into_inner());
                    }
                }
                done.fetch_add(1, Ordering::Release);
                rejected
            })
        })
        .collect();
    for handle in producer_handles {
        rejected.extend(handle.join().unwrap());
    }
    let mut delivered = Vec::new();
    for handle in consumer_handles {
        delivered.extend(handle.join().unwrap());
    }
    (delivered, rejected)
}

fn assert_unique(ids: &[u64]) -> HashSet<u64> {
    let set: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "an event was delivered twice");
    set
}

#[test]
fn capacity_must_be_a_power_of_two() {
    assert_eq!(Ring::<u8>::new(0, Overrun::Error).err(), Some(ConfigError::CapacityNotPowerOfTwo(0)));
    assert_eq!(Ring::<u8>::new(12, Overrun::Error).err(), Some(ConfigError::CapacityNotPowerOfTwo(12)));
    assert_eq!(
        ConfigError::CapacityNotPowerOfTwo(12).to_string(),
        "capacity must be a power of two greater than zero, got 12"
    );
    assert!(Ring::<u8>::new(1, Overrun::Error).is_ok());
}

#[test]
fn spsc_delivers_every_item_in_order() {
    let ring = Arc::new(Ring::new(64, Overrun::Block).unwrap());
    let producer = {
        let ring = ring.clone();
        thread::spawn(move || {
            for i in 0..PER_PRODUCER {
                ring.push(i).unwrap();
            }
        })
    };
    let mut next = 0;
    while next < PER_PRODUCER {
        if let Some(value) = ring.pop() {
            assert_eq!(value, next);
            next += 1;
        } else {
            thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert_eq!(ring.metrics(), Metrics { published: PER_PRODUCER, processed: PER_PRODUCER, dropped: 0, pending: 0 });
}

#[test]
fn mpmc_with_four_producers_and_three_consumers_delivers_each_item_once() {
    let ring = Arc::new(Ring::new(128, Overrun::Block).unwrap());
    let (delivered, rejected) = run_typed(ring.clone(), 4, 3, PER_PRODUCER);
    assert!(rejected.is_empty());
    let set = assert_unique(&delivered);
    for producer in 0..4 {
        for index in 0..PER_PRODUCER {
            assert!(set.contains(&((producer << 32) | index)), "an event was lost");
        }
    }
    let total = 4 * PER_PRODUCER;
    assert_eq!(ring.metrics(), Metrics { published: total, processed: total, dropped: 0, pending: 0 });
}

#[test]
fn each_producer_s_items_arrive_in_order_per_consumer() {
    let ring = Arc::new(Ring::new(32, Overrun::Block).unwrap());
    let (delivered, _) = run_typed(ring, 4, 1, PER_PRODUCER);
    let mut last = [None::<u64>; 4];
    for id in delivered {
        let (producer, index) = ((id >> 32) as usize, id & 0xFFFF_FFFF);
        if let Some(previous) = last[producer] {
            assert!(index > previous, "items of one producer arrived out of order");
        }
        last[producer] = Some(index);
    }
}

#[test]
fn counts_add_up_at_quiescence_under_every_policy() {
    for overrun in [Overrun::DropOldest, Overrun::Block, Overrun::Error] {
        let ring = Arc::new(Ring::new(16, overrun).unwrap());
        let (delivered, rejected) = run_typed(ring.clone(), 4, 2, PER_PRODUCER / 4);
        let m = ring.metrics();
        assert_eq!(m.pending, 0);
        assert_eq!(m.published, m.processed + m.dropped + m.pending, "{overrun:?}");
        assert_eq!(m.processed, delivered.len() as u64, "{overrun:?}");
        assert_eq!(m.published + rejected.len() as u64, 4 * (PER_PRODUCER / 4), "{overrun:?}");
        assert_unique(&delivered);
    }
}

#[test]
fn no_event_is_delivered_twice_with_many_consumers_on_a_tiny_ring() {
    let ring = Arc::new(Ring::new(2, Overrun::Block).unwrap());
    let (delivered, _) = run_typed(ring, 4, 4, PER_PRODUCER / 2);
    assert_eq!(assert_unique(&delivered).len() as u64, 4 * (PER_PRODUCER / 2));
}

#[test]
fn no_torn_event_in_byte_ring_under_drop_oldest_contention() {
    let ring = Arc::new(ByteRing::new(48, 8, Overrun::DropOldest).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4u64)
        .map(|producer| {
            let (ring, done) = (ring.clone(), done.clone());
            thread::spawn(move || {
                for index in 0..PER_PRODUCER {
                    ring.write(&encode(producer, index)).unwrap();
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (ring, done) = (ring.clone(), done.clone());
            thread::spawn(move || {
                let mut out = vec![0u8; 48];
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire) == 4;
                    match ring.read(&mut out) {
                        Some(len) => seen.push(decode(&out[..len])),
                        None if finished => return seen,
                        None => thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut delivered = Vec::new();
    for c in consumers {
        delivered.extend(c.join().unwrap());
    }
    assert_unique(&delivered);
    let m = ring.metrics();
    assert_eq!(m.published, 4 * PER_PRODUCER);
    assert_eq!(m.processed, delivered.len() as u64);
    assert_eq!(m.published, m.processed + m.dropped + m.pending);
    assert_eq!(m.pending, 0);
}

#[test]
fn byte_ring_batches_round_trip_packed_records() {
    let ring = ByteRing::new(16, 8, Overrun::Error).unwrap();
    let mut records = Vec::new();
    for i in 0..5u8 {
        let msg = vec![i; i as usize];
        records.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        records.extend_from_slice(&msg);
    }
    let (written, error) = ring.write_batch(&records);
    assert_eq!((written.count, written.bytes, error), (5, records.len(), None));
    let mut out = vec![0u8; 1024];
    let read = ring.read_batch(&mut out);
    assert_eq!((read.count, &out[..read.bytes]), (5, records.as_slice()));
    assert_eq!(ring.write(&[0; 17]), Err(WriteError::TooLarge { len: 17, max: 16 }));
}

#[test]
#[should_panic(expected = "output buffer must hold a whole slot")]
fn byte_ring_read_into_a_short_buffer_is_misuse() {
    let ring = ByteRing::new(16, 2, Overrun::Error).unwrap();
    ring.read(&mut [0u8; 8]);
}

#[test]
fn drop_oldest_under_contention_keeps_the_newest_and_counts_the_rest() {
    let ring = Arc::new(Ring::new(8, Overrun::DropOldest).unwrap());
    let (delivered, rejected) = run_typed(ring.clone(), 4, 1, PER_PRODUCER);
    assert!(rejected.is_empty(), "drop-oldest never refuses");
    assert_unique(&delivered);
    let m = ring.metrics();
    assert_eq!(m.published, 4 * PER_PRODUCER);
    assert_eq!(m.published, m.processed + m.dropped);
    // Single-threaded, the survivors are exactly the newest `capacity` items.
    let lone = Ring::new(8, Overrun::DropOldest).unwrap();
    for i in 0..100u32 {
        lone.push(i).unwrap();
    }
    let mut out = Vec::new();
    lone.drain(&mut out, usize::MAX);
    assert_eq!(out, (92..100).collect::<Vec<_>>());
    assert_eq!(lone.metrics(), Metrics { published: 100, processed: 8, dropped: 92, pending: 0 });
}

#[test]
fn block_waits_for_room_and_can_be_cancelled_or_timed_out() {
    let ring = Arc::new(Ring::new(1, Overrun::Block).unwrap());
    ring.push(0u32).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let blocked = {
        let (ring, cancel) = (ring.clone(), cancel.clone());
        thread::spawn(move || ring.push_with(1, Wait { cancel: Some(&cancel), deadline: None }))
    };
    cancel.store(true, Ordering::Relaxed);
    assert_eq!(blocked.join().unwrap(), Err(PushError::Cancelled(1)));
    let deadline = Some(Instant::now() + Duration::from_millis(5));
    assert_eq!(ring.push_with(2, Wait { cancel: None, deadline }), Err(PushError::TimedOut(2)));
    // A consumer frees the slot: a blocked producer gets in.
    let waiting = {
        let ring = ring.clone();
        thread::spawn(move || ring.push(3))
    };
    while ring.pop().is_none() {
        thread::yield_now();
    }
    waiting.join().unwrap().unwrap();
    assert_eq!(ring.pop(), Some(3));
    assert_eq!(ring.metrics(), Metrics { published: 2, processed: 2, dropped: 0, pending: 0 });
}

#[test]
fn drops_items_left_in_the_ring_and_evicted_ones() {
    let counter = Arc::new(());
    {
        let ring = Ring::new(4, Overrun::DropOldest).unwrap();
        for _ in 0..10 {
            ring.push(counter.clone()).unwrap();
        }
        assert_eq!(Arc::strong_count(&counter), 5);
        drop(ring.pop());
        assert_eq!(Arc::strong_count(&counter), 4);
    }
    assert_eq!(Arc::strong_count(&counter), 1);
}

// One test per GoEventBus race (see the crate docs).

/// (a) GoEventBus checks for room and increments the head in two steps, so two producers both
/// pass the check and overwrite unread slots.
#[test]
fn race_a_check_then_increment_many_producers_on_a_tiny_error_ring_never_overwrite() {
    let ring = Arc::new(Ring::new(2, Overrun::Error).unwrap());
    let (delivered, rejected) = run_typed(ring.clone(), 6, 1, PER_PRODUCER / 2);
    let delivered_set = assert_unique(&delivered);
    let rejected_ids: Vec<u64> = rejected.iter().map(check).collect();
    let rejected_set = assert_unique(&rejected_ids);
    assert!(delivered_set.is_disjoint(&rejected_set), "a rejected item was also delivered");
    assert_eq!(delivered.len() + rejected.len(), 6 * (PER_PRODUCER / 2) as usize, "an item was lost");
    let m = ring.metrics();
    assert_eq!(m, Metrics { published: delivered.len() as u64, processed: delivered.len() as u64, dropped: 0, pending: 0 });
}

/// (b) GoEventBus moves the head before writing the slot, so a consumer can read a stale slot.
#[test]
fn race_b_head_before_write_a_racing_consumer_never_sees_a_slot_of_another_sequence() {
    // Each producer pushes its own counter; the consumer checks the payload matches the id and
    // that it never sees an index of a producer go backwards (which a stale slot would show).
    let ring = Arc::new(Ring::new(4, Overrun::Block).unwrap());
    let (delivered, _) = run_typed(ring, 4, 1, PER_PRODUCER);
    let mut last = [None::<u64>; 4];
    for id in &delivered {
        let (producer, index) = ((id >> 32) as usize, id & 0xFFFF_FFFF);
        assert!(last[producer].is_none_or(|prev| index == prev + 1), "stale or skipped slot");
        last[producer] = Some(index);
    }
    assert_eq!(delivered.len() as u64, 4 * PER_PRODUCER);
}

/// (c) GoEventBus's consumer stores the tail after a drain, erasing drop-oldest's increments.
#[test]
fn race_c_tail_after_drop_oldest_counts_stay_exact_with_a_slow_consumer() {
    let ring = Arc::new(Ring::new(4, Overrun::DropOldest).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4u64)
        .map(|producer| {
            let (ring, done) = (ring.clone(), done.clone());
            thread::spawn(move || {
                for index in 0..PER_PRODUCER {
                    ring.push(payload(producer, index)).unwrap();
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    // A slow consumer: it drains a few items, then dawdles while producers lap it.
    let mut delivered = Vec::new();
    loop {
        let finished = done.load(Ordering::Acquire) == 4;
        let mut batch = Vec::new();
        ring.drain(&mut batch, 3);
        delivered.extend(batch.iter().map(check));
        if batch.is_empty() && finished {
            break;
        }
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        let m = ring.metrics();
        assert!(m.processed + m.dropped <= m.published, "counters went backwards");
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_unique(&delivered);
    let m = ring.metrics();
    assert_eq!(m.published, 4 * PER_PRODUCER);
    assert_eq!(m.published, m.processed + m.dropped + m.pending);
    assert_eq!((m.pending, m.processed), (0, delivered.len() as u64));
    assert!(m.dropped > 0, "the consumer was meant to be lapped");
}
