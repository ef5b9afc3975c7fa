//! `HamtMap`: one immutable version of `crates/hamt` per JavaScript object, values as bytes.
//!
//! Thin on purpose: strings and byte arrays in, byte arrays out. Bulk work crosses in one call:
//! a transaction's writes arrive as one change buffer (`withChanges`, format documented on
//! `hamt::HamtMap::apply_changes`), and a whole version leaves as one buffer (`toBytes`, handed
//! over as an external ArrayBuffer, no copy). `ts/native/addon.ts` types these exports as
//! `NativeHamtMap`; `ts/cache/native-backend.ts` uses them.
//!
//! `release` exists because a finalizer is not enough here: Bun ran none during a load of 1M
//! entities in 100 transactions (keepVersions 1), so all 101 versions, 677 MiB of path copies,
//! were alive at the end and glibc kept the 742 MiB arena after they were finally freed (RSS
//! stayed at 663 MiB, `malloc_trim` did not lower it). The cache releases each version it drops
//! from its history and never handed out, so the superseded copies are freed at promote time (on
//! a helper thread, see `drop_soon`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};

use hamt::HamtMap;
use node_api::{codes, CallContext, Env, JsError, JsResult, TypedArray, Value};

/// Versions created and dropped (released or finalized), process-wide: `HamtMap.stats()`, so
/// tests can check that superseded versions are freed without waiting for the GC.
static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The wrapped value: one version, sharing nodes with the versions it was derived from; `None`
/// once released.
struct Version(Option<HamtMap>);

impl Version {
    fn new(map: HamtMap) -> Version {
        CREATED.fetch_add(1, Ordering::Relaxed);
        Version(Some(map))
    }

    fn map(&self) -> JsResult<&HamtMap> {
        self.0.as_ref().ok_or_else(|| JsError::new(codes::NATIVE_INVALID_ARGUMENT, "HamtMap version used after release()"))
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        if self.0.is_some() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Released versions waiting for the drop thread. Bounded, so a burst of releases cannot pile up
/// memory: when the queue is full, the releasing thread drops the version itself.
const DROP_QUEUE: usize = 4;
static DROP_THREAD: OnceLock<Option<Mutex<SyncSender<HamtMap>>>> = OnceLock::new();

/// Frees `map` on a helper thread, or here when the queue is full or no thread could be started.
///
/// Freeing a version dropped from a history of 16 touches the cold reference count of every
/// child and entry its path copies share. At 1M entities, keepVersions 16, a 1,000-change
/// transaction took 8,900-9,300 µs (median of 400) freeing inline and 6,500-7,400 µs with this
/// thread (3 runs each, 2 shared cores; bench/cache.bench.ts bulk 9,100 -> 7,200-8,000 µs/tx).
/// The transaction that drops a version need not wait for it. Reference counts are atomic, so
/// versions sharing those nodes stay usable meanwhile.
fn drop_soon(map: HamtMap) {
    let queue = DROP_THREAD.get_or_init(|| {
        let (sender, receiver) = mpsc::sync_channel::<HamtMap>(DROP_QUEUE);
        let thread = std::thread::Builder::new().name("ringstate-hamt-drop".into()).spawn(move || receiver.into_iter().for_each(drop));
        thread.ok().map(|_| Mutex::new(sender))
    });
    let Some(queue) = queue else { return drop(map) };
    match queue.lock().unwrap_or_else(|e| e.into_inner()).try_send(map) {
        Ok(()) => {}
        Err(TrySendError::Full(map) | TrySendError::Disconnected(map)) => drop(map),
    }
}

fn corrupt(error: hamt::DecodeError) -> JsError {
    JsError::new("SNAPSHOT_CORRUPT", format!("native HAMT: {error}"))
}

/// Adds the `HamtMap` class and `hamtFromBytes` to the exports.
pub fn register(env: Env, exports: Value) -> JsResult<()> {
    let class = env
        .class("HamtMap", |_cx: &CallContext| Ok(Version::new(HamtMap::new())))
        .method("get", |v: &mut Version, cx| {
            let key: String = cx.arg_as(0)?;
            match v.map()?.get(key.as_bytes()) {
                Some(value) => cx.ret(value),
                None => cx.ret(()),
            }
        })
        // `get` without a new ArrayBuffer per call (~260 of its ~450 ns when the path is cached):
        // copies the value into the caller's buffer when it fits; returns its length, or -1.
        .method("getInto", |v: &mut Version, cx| {
            let (key, mut out): (String, TypedArray<u8>) = cx.args()?;
            out.require_unshared()?;
            let Some(value) = v.map()?.get(key.as_bytes()) else { return cx.ret(-1i32) };
            // SAFETY: `out` is not shared (checked above), so no other thread touches it; no
            // JavaScript runs until the copy below is done; it is the only slice of it.
            let out = unsafe { out.as_mut_slice() };
            if let Some(target) = out.get_mut(..value.len()) {
                target.copy_from_slice(value);
            }
            cx.ret(value.len())
        })
        .method("has", |v: &mut Version, cx| {
            let key: String = cx.arg_as(0)?;
            cx.ret(v.map()?.contains_key(key.as_bytes()))
        })
        .method("withChanges", |v: &mut Version, cx| {
            let (changes, consume): (TypedArray<u8>, Option<bool>) = cx.args()?;
            let mut next = v.map()?.clone();
            if consume == Some(true) {
                // Dropping this handle first leaves `next` the only owner of every node this
                // version did not share, so the batch edits them in place: no path copies now
                // and none to free later (see the note at the top of this file).
                v.0 = None;
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            let applied = if changes.is_shared() {
                // Another thread may be writing these bytes: parse a copy, never a moving target.
                next.apply_changes(&changes.to_vec())
            } else {
                // SAFETY: not shared, so no other thread writes it; apply_changes is pure Rust and
                // returns before any JavaScript runs; no &mut view of it exists in this call.
                next.apply_changes(unsafe { changes.as_slice() })
            };
            if let Err(e) = applied {
                // All or nothing: `next` is still this version, so a consumed one is given back.
                if v.0.is_none() {
                    v.0 = Some(next);
                    DROPPED.fetch_sub(1, Ordering::Relaxed);
                }
                return Err(JsError::new(codes::NATIVE_INVALID_ARGUMENT, format!("malformed change buffer: {e}")));
            }
            cx.env().new_instance(Version::new(next))
        })
        .method("toBytes", |v: &mut Version, cx| cx.env().external_arraybuffer(v.map()?.to_bytes()))
        .method("release", |v: &mut Version, cx| {
            // Nodes shared with other versions stay alive; only what this version alone held goes.
            if let Some(map) = v.0.take() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                drop_soon(map);
            }
            cx.ret(())
        })
        .getter("size", |v: &mut Version, cx| cx.ret(v.map()?.len()))
        .static_method("stats", |cx| {
            let env = cx.env();
            let stats = env.object()?;
            stats.set("created", env.double(CREATED.load(Ordering::Relaxed) as f64)?)?;
            stats.set("dropped", env.double(DROPPED.load(Ordering::Relaxed) as f64)?)?;
            Ok(stats)
        })
        .build()?;
    exports.set("HamtMap", class)?;
    exports.set_function("hamtFromBytes", |cx| {
        let bytes: TypedArray<u8> = cx.arg_as(0)?;
        let map = if bytes.is_shared() {
            HamtMap::from_bytes(&bytes.to_vec())
        } else {
            // SAFETY: not shared, so no other thread writes it; from_bytes is pure Rust and
            // returns before any JavaScript runs; no &mut view of it exists in this call.
            HamtMap::from_bytes(unsafe { bytes.as_slice() })
        }
        .map_err(corrupt)?;
        cx.env().new_instance(Version::new(map))
    })
}
