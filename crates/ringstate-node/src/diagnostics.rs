//! `diagnostics` (cargo feature `test-exports`, absent from the published addon): exports that
//! exist ONLY so the smoke tests (Bun, Node, Deno) can exercise every
//! conversion and boundary rule of the node-api layer through a real runtime: each value kind
//! round-trips, a wrapped class with an observable finalizer count, an external ArrayBuffer over
//! native memory that JavaScript writes and native code reads back, errors with a code, a caught
//! panic, and a process-global counter that shows static memory is shared by Worker threads.
//! No ringstate feature uses it; `ts/native/addon.ts` types it as `NativeDiagnostics`.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use node_api::{sys, ArrayBufferRef, BigI64, BigU64, CallContext, Env, JsError, JsResult, Null, TypedArray, TypedArrayElement, Value};

/// Process-global, so every thread's copy of the module sees the same counter.
static SHARED_COUNTER: AtomicU64 = AtomicU64::new(0);
static COUNTERS_CREATED: AtomicU64 = AtomicU64::new(0);
static COUNTERS_DROPPED: AtomicU64 = AtomicU64::new(0);
static EXTERNALS_CREATED: AtomicU64 = AtomicU64::new(0);
static EXTERNALS_DROPPED: AtomicU64 = AtomicU64::new(0);
static NEXT_EXTERNAL_ID: AtomicU32 = AtomicU32::new(1);
/// External buffers native code keeps a handle on, so it can read what JavaScript wrote.
static REGISTRY: Mutex<Option<HashMap<u32, Arc<NativeBytes>>>> = Mutex::new(None);

/// The wrapped class: a number whose creations and drops are counted.
struct Counter {
    value: i64,
}
impl Counter {
    fn new(value: i64) -> Counter {
        COUNTERS_CREATED.fetch_add(1, Ordering::Relaxed);
        Counter { value }
    }
}
impl Drop for Counter {
    fn drop(&mut self) {
        COUNTERS_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A heap block shared between an external ArrayBuffer and (optionally) the registry.
struct NativeBytes {
    ptr: *mut u8,
    len: usize,
}
// SAFETY: NativeBytes owns a heap block and frees it once, on whichever thread drops the last Arc.
unsafe impl Send for NativeBytes {}
// SAFETY: through a shared NativeBytes, native code only reads the block, with atomic byte loads
// (readExternal), so a JavaScript write on the owning thread meanwhile is not a data race.
unsafe impl Sync for NativeBytes {}
impl NativeBytes {
    fn new(len: usize, fill: u8) -> NativeBytes {
        EXTERNALS_CREATED.fetch_add(1, Ordering::Relaxed);
        let block: Box<[u8]> = vec![fill; len].into_boxed_slice();
        NativeBytes { len, ptr: Box::into_raw(block) as *mut u8 }
    }
}
impl Drop for NativeBytes {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from Box::<[u8]>::into_raw in new(); dropped once (last Arc).
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
        EXTERNALS_DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}
/// The owner handed to `external_arraybuffer`: one Arc reference, dropped by the buffer's finalizer.
struct ExternalOwner(Arc<NativeBytes>);
impl AsMut<[u8]> for ExternalOwner {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the block is live while this Arc is; node-api calls as_mut once, only to learn
        // the address, before JavaScript can touch the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr, self.0.len) }
    }
}

fn echo_typed<T: TypedArrayElement>(exports: Value) -> JsResult<()> {
    let name = format!("echo{}", T::NAME);
    exports.set_function(&name, |cx| {
        let input: TypedArray<T> = cx.arg_as(0)?;
        cx.ret(&input.to_vec()[..])
    })
}

fn stats(env: Env, created: &AtomicU64, dropped: &AtomicU64) -> JsResult<Value> {
    let object = env.object()?;
    object.set("created", env.double(created.load(Ordering::Relaxed) as f64)?)?;
    object.set("dropped", env.double(dropped.load(Ordering::Relaxed) as f64)?)?;
    Ok(object)
}

fn counter_class(env: Env) -> JsResult<Value> {
    env.class("Counter", |cx: &CallContext| Ok(Counter::new(cx.arg_as::<Option<i64>>(0)?.unwrap_or(0))))
        .method("increment", |c: &mut Counter, cx| {
            c.value += 1;
            cx.ret(c.value)
        })
        .method("fork", |c: &mut Counter, cx| cx.env().new_instance(Counter::new(c.value)))
        // Calls back into JavaScript while holding &mut Counter: lets tests see NATIVE_BORROWED.
        .method("visit", |_c: &mut Counter, cx| {
            let callback = cx.arg(0)?;
            callback.call(cx.this(), &[])
        })
        .getter("value", |c: &mut Counter, cx| cx.ret(c.value))
        .static_method("zero", |cx| cx.env().new_instance(Counter::new(0)))
        .build()
}

/// Wraps `object` the way another addon would: `napi_wrap` with a pointer to memory that is not
/// a node-api `Wrapper` (one byte) and no type tag. Passing such an object to a method of ours
/// must be refused before that pointer is read.
fn wrap_foreign(env: Env, object: Value) -> JsResult<()> {
    unsafe extern "C" fn free_byte(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
        // SAFETY: data is the Box<u8> leaked below; the runtime finalizes each wrap once.
        drop(unsafe { Box::from_raw(data as *mut u8) });
    }
    let data = Box::into_raw(Box::new(0xA5u8));
    // SAFETY: live handles; data is freed by free_byte, or below if wrapping fails.
    let status = unsafe { sys::napi_wrap(env.raw(), object.raw(), data as *mut c_void, Some(free_byte), ptr::null_mut(), ptr::null_mut()) };
    if status != sys::status::OK {
        // SAFETY: the runtime did not take data.
        drop(unsafe { Box::from_raw(data) });
        return Err(JsError::invalid_argument("napi_wrap refused the object (already wrapped, or not an object)"));
    }
    Ok(())
}

/// Adds `diagnostics` to the exports.
pub fn register(env: Env, exports: Value) -> JsResult<()> {
    let d = env.object()?;
    d.set_function("echoNumber", |cx| cx.ret(cx.arg_as::<f64>(0)?))?;
    d.set_function("echoInt32", |cx| cx.ret(cx.arg_as::<i32>(0)?))?;
    d.set_function("echoUint32", |cx| cx.ret(cx.arg_as::<u32>(0)?))?;
    d.set_function("echoInt64", |cx| cx.ret(cx.arg_as::<i64>(0)?))?;
    d.set_function("echoBigInt64", |cx| cx.ret(cx.arg_as::<BigI64>(0)?))?;
    d.set_function("echoBigUint64", |cx| cx.ret(cx.arg_as::<BigU64>(0)?))?;
    d.set_function("echoString", |cx| cx.ret(cx.arg_as::<String>(0)?))?;
    d.set_function("echoBoolean", |cx| cx.ret(cx.arg_as::<bool>(0)?))?;
    d.set_function("echoOptionalNumber", |cx| cx.ret(cx.arg_as::<Option<f64>>(0)?))?;
    d.set_function("makeUndefined", |cx| cx.ret(()))?;
    d.set_function("makeNull", |cx| cx.ret(Null))?;
    d.set_function("typeOf", |cx| cx.ret(cx.arg(0)?.value_type()?.name()))?;
    d.set_function("echoArray", |cx| {
        let input = cx.arg(0)?;
        if !input.is_array()? {
            return Err(JsError::invalid_argument("expected an array"));
        }
        let out = cx.env().array(input.array_len()? as usize)?;
        for i in 0..input.array_len()? {
            out.set_index(i, input.get_index(i)?)?;
        }
        Ok(out)
    })?;
    d.set_function("copyProperties", |cx| {
        let (source, names): (Value, Value) = cx.args()?;
        let out = cx.env().object()?;
        for i in 0..names.array_len()? {
            let name = names.get_index(i)?.to_string_utf8()?;
            if source.has(&name)? {
                out.set(&name, source.get(&name)?)?;
            }
        }
        Ok(out)
    })?;
    d.set_function("sumArgs", |cx| {
        let mut sum = 0.0;
        for i in 0..cx.len() {
            sum += cx.arg_as::<f64>(i)?;
        }
        cx.ret(sum)
    })?;
    d.set_function("callFunction", |cx| {
        let function = cx.arg(0)?;
        let args: Vec<Value> = (1..cx.len()).map(|i| cx.arg(i)).collect::<JsResult<_>>()?;
        function.call(cx.env().undefined()?, &args)
    })?;

    echo_typed::<i8>(d)?;
    echo_typed::<u8>(d)?;
    echo_typed::<i16>(d)?;
    echo_typed::<u16>(d)?;
    echo_typed::<i32>(d)?;
    echo_typed::<u32>(d)?;
    echo_typed::<f32>(d)?;
    echo_typed::<f64>(d)?;
    echo_typed::<i64>(d)?;
    echo_typed::<u64>(d)?;
    d.set_function("sumFloat64Array", |cx| {
        let input: TypedArray<f64> = cx.arg_as(0)?;
        if input.is_shared() {
            return cx.ret(input.to_vec().iter().sum::<f64>());
        }
        // SAFETY: not shared, so no other thread writes it; the sum is pure Rust and no
        // JavaScript runs before it is done; no &mut view of it exists in this call.
        cx.ret(unsafe { input.as_slice() }.iter().sum::<f64>())
    })?;
    d.set_function("fillInt32Array", |cx| {
        let (mut view, value): (TypedArray<i32>, i32) = cx.args()?;
        view.require_unshared()?;
        // SAFETY: not shared (checked above); no JavaScript runs during the fill; the only slice.
        unsafe { view.as_mut_slice() }.fill(value);
        cx.ret(())
    })?;
    d.set_function("isShared", |cx| cx.ret(cx.arg_as::<TypedArray<u8>>(0)?.is_shared()))?;
    d.set_function("echoArrayBuffer", |cx| {
        let input: ArrayBufferRef = cx.arg_as(0)?;
        // SAFETY: ArrayBufferRef refuses shared memory; arraybuffer_from_slice creates a new
        // buffer and copies without running JavaScript; no &mut view of the input exists.
        cx.env().arraybuffer_from_slice(unsafe { input.as_slice() })
    })?;
    d.set_function("wrapForeign", |cx| {
        let object = cx.arg(0)?;
        wrap_foreign(cx.env(), object)?;
        Ok(object)
    })?;

    d.set("Counter", counter_class(env)?)?;
    d.set_function("counterStats", |cx| stats(cx.env(), &COUNTERS_CREATED, &COUNTERS_DROPPED))?;

    d.set_function("externalBuffer", |cx| {
        let (len, fill): (usize, Option<u32>) = cx.args()?;
        let fill = u8::try_from(fill.unwrap_or(0)).map_err(|_| JsError::range_error("NATIVE_INVALID_ARGUMENT", "fill must be a byte"))?;
        cx.env().external_arraybuffer(ExternalOwner(Arc::new(NativeBytes::new(len, fill))))
    })?;
    d.set_function("registeredExternalBuffer", |cx| {
        let len: usize = cx.arg_as(0)?;
        let bytes = Arc::new(NativeBytes::new(len, 0));
        let id = NEXT_EXTERNAL_ID.fetch_add(1, Ordering::Relaxed);
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(id, bytes.clone());
        let out = cx.env().object()?;
        out.set("id", cx.env().uint32(id)?)?;
        out.set("buffer", cx.env().external_arraybuffer(ExternalOwner(bytes))?)?;
        Ok(out)
    })?;
    d.set_function("readExternal", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = registry.as_ref().and_then(|r| r.get(&id)).ok_or_else(|| JsError::range_error("NATIVE_INVALID_ARGUMENT", "unknown external buffer id"))?;
        // The registry is process-global, so the thread whose JavaScript owns the buffer may be
        // writing it while another thread reads it here: read each byte atomically.
        let copy: Vec<u8> = (0..bytes.len)
            .map(|i| {
                // SAFETY: i < len, and the registry's Arc keeps the block alive for this call;
                // AtomicU8 has the size and alignment of u8.
                unsafe { AtomicU8::from_ptr(bytes.ptr.add(i)) }.load(Ordering::Relaxed)
            })
            .collect();
        cx.ret(&copy[..])
    })?;
    d.set_function("releaseExternal", |cx| {
        let id: u32 = cx.arg_as(0)?;
        let removed = REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).as_mut().and_then(|r| r.remove(&id));
        cx.ret(removed.is_some())
    })?;
    d.set_function("externalStats", |cx| stats(cx.env(), &EXTERNALS_CREATED, &EXTERNALS_DROPPED))?;

    d.set_function("throwError", |cx| {
        let (kind, code, message): (String, String, String) = cx.args()?;
        Err(match kind.as_str() {
            "TypeError" => JsError::type_error(code, message),
            "RangeError" => JsError::range_error(code, message),
            _ => JsError::new(code, message),
        })
    })?;
    d.set_function("panic", |cx| -> JsResult<Value> {
        let message: String = cx.arg_as(0)?;
        panic!("{message}")
    })?;
    d.set_function("sharedCounterAdd", |cx| {
        let n: u32 = cx.arg_as(0)?;
        cx.ret((SHARED_COUNTER.fetch_add(u64::from(n), Ordering::SeqCst) + u64::from(n)) as f64)
    })?;
    exports.set("diagnostics", d)
}
