//! `ring*` exports: the cross-thread [`ring::ByteRing`], kept in a process-global registry so every
//! thread (the main one and each Worker) reaches the same ring by its numeric id.
//!
//! One call moves a whole batch of packed records (`u32` little-endian length, then the bytes), so
//! the boundary is crossed once per batch, never per event. Blocking is done by the JavaScript
//! side (a ring built for `block` refuses like `error`, and the caller yields and retries), so no
//! native call ever parks a JavaScript thread.
//!
//! Lifetime: every JavaScript `SharedRing` attached to a ring holds one reference (`ringRetain`)
//! and gives it back when it is garbage-collected (`ringDrop`, from a FinalizationRegistry); the
//! ring is freed when the last reference goes, or at once by `ringRelease`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use node_api::{Env, JsError, JsResult, TypedArray, Value};
use ring::{ByteRing, Overrun};

static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static RINGS: Mutex<Option<HashMap<u32, Entry>>> = Mutex::new(None);

/// A registered ring and the number of JavaScript objects (in any thread) attached to it.
struct Entry {
    ring: Arc<ByteRing>,
    refs: usize,
}

fn registry() -> std::sync::MutexGuard<'static, Option<HashMap<u32, Entry>>> {
    RINGS.lock().unwrap_or_else(|e| e.into_inner())
}

fn lookup(id: u32) -> JsResult<Arc<ByteRing>> {
    // The lock is held only to clone the Arc; the batch itself runs without it (a batch that is
    // running when the ring is released finishes on its own Arc).
    registry()
        .as_ref()
        .and_then(|r| r.get(&id))
        .map(|entry| entry.ring.clone())
        .ok_or_else(|| JsError::new("STORE_CLOSED", format!("ring {id} is released or was never created")))
}

/// Adds `ringCreate`, `ringRetain`, `ringDrop`, `ringWrite`, `ringRead`, `ringMetrics`,
/// `ringRelease` and `ringCount` to the exports.
pub fn register(_env: Env, exports: Value) -> JsResult<()> {
    exports.set_function("ringCreate", |cx| {
        let (slot_size, capacity, overrun): (usize, usize, String) = cx.args()?;
        let overrun = match overrun.as_str() {
            "drop-oldest" => Overrun::DropOldest,
            "error" | "block" => Overrun::Error,
            other => {
                return Err(JsError::range_error("INVALID_OPTIONS", format!("unknown overrun {other:?}")));
            }
        };
        let ring = ByteRing::new(slot_size, capacity, overrun)
            .map_err(|e| JsError::range_error("INVALID_OPTIONS", e.to_string()))?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Starts with no references: the creating thread attaches (ringRetain) right away.
        registry().get_or_insert_with(HashMap::new).insert(id, Entry { ring: Arc::new(ring), refs: 0 });
        cx.ret(id)
    })?;
    exports.set_function("ringRetain", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let mut rings = registry();
        let entry = rings.as_mut().and_then(|r| r.get_mut(&id));
        cx.ret(entry.map(|entry| entry.refs += 1).is_some())
    })?;
    exports.set_function("ringDrop", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let mut rings = registry();
        let mut freed = false;
        if let Some(r) = rings.as_mut() {
            if let Some(entry) = r.get_mut(&id) {
                entry.refs = entry.refs.saturating_sub(1);
                if entry.refs == 0 {
                    r.remove(&id);
                    freed = true;
                }
            }
        }
        cx.ret(freed)
    })?;
    exports.set_function("ringCount", |cx| {
        let count = registry().as_ref().map_or(0, |r| r.len());
        cx.ret(count as u32)
    })?;
    exports.set_function("ringWrite", |cx| {
        let (id, records, length): (u32, TypedArray<u8>, usize) = cx.args()?;
        if length > records.len() {
            return Err(JsError::range_error("NATIVE_INVALID_ARGUMENT", "length exceeds the records array"));
        }
        let ring = lookup(id)?;
        let (batch, _refused) = if records.is_shared() {
            // Another thread may be writing these bytes: work on a copy.
            ring.write_batch(&records.to_vec()[..length])
        } else {
            // SAFETY: the memory is not shared, so no other thread writes it; write_batch is pure
            // Rust and returns before any JavaScript runs; no &mut view of it exists in this call.
            ring.write_batch(unsafe { &records.as_slice()[..length] })
        };
        cx.ret(batch.count as u32)
    })?;
    exports.set_function("ringRead", |cx| {
        let (id, mut out): (u32, TypedArray<u8>) = cx.args()?;
        out.require_unshared()?;
        let ring = lookup(id)?;
        // SAFETY: `out` is not shared (checked above), so no other thread touches it; read_batch
        // is pure Rust and returns before any JavaScript runs; it is the only slice of it.
        let batch = ring.read_batch(unsafe { out.as_mut_slice() });
        cx.ret(batch.bytes as u32)
    })?;
    exports.set_function("ringMetrics", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let m = lookup(id)?.metrics();
        cx.ret(&[m.published as f64, m.processed as f64, m.dropped as f64, m.pending as f64][..])
    })?;
    exports.set_function("ringRelease", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let removed = registry().as_mut().and_then(|r| r.remove(&id));
        cx.ret(removed.is_some())
    })?;
    Ok(())
}
