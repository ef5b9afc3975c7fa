//! Binary data: typed arrays and ArrayBuffers in (views of JavaScript memory) and out (copies, or
//! external buffers over native memory that JavaScript then reads and writes in place).
//!
//! Aliasing rule: JavaScript memory is mutable and may be shared. Memory of a SharedArrayBuffer
//! may be written by another thread at any moment; any buffer may be written, detached, resized
//! or transferred by JavaScript as soon as JavaScript runs again (a callback into JavaScript, a
//! getter); and two arguments may view the same bytes. A Rust slice over such memory is sound only
//! while none of that can happen, which the type system cannot see. So:
//!
//! - [`TypedArray::to_vec`] and [`ArrayBufferRef::to_vec`] are the safe way in: a copy, read so
//!   that a concurrent writer cannot make it undefined behaviour (relaxed atomic loads when the
//!   memory is shared, one `memcpy` otherwise);
//! - [`TypedArray::as_slice`] / [`TypedArray::as_mut_slice`] (and the `ArrayBufferRef` pair) are
//!   zero-copy and `unsafe`: the caller promises, in a `// SAFETY:` comment, that the memory is
//!   not shared ([`TypedArray::is_shared`] is false), that no JavaScript runs while the slice
//!   lives, and, for `&mut`, that no other slice covers the same bytes.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::convert::FromJs;
use crate::error::{JsError, JsResult};
use crate::function::drop_boxed_data;
use crate::sys::{self, typedarray as ta};
use crate::value::{Env, Value};

mod sealed {
    pub trait Sealed {}
}

/// A Rust element type with a matching JavaScript typed array (`u8` <-> `Uint8Array`, ...).
///
/// Sealed: implemented for `i8 u8 i16 u16 i32 u32 f32 f64 i64 u64`, every bit pattern of which
/// is a valid value, which is what makes viewing JavaScript memory as `[T]` sound.
pub trait TypedArrayElement: sealed::Sealed + Copy + 'static {
    /// The `napi_typedarray_type` of arrays of this element.
    const KIND: sys::napi_typedarray_type;
    /// The JavaScript constructor name, for error messages.
    const NAME: &'static str;
}

macro_rules! element {
    ($t:ty, $kind:expr, $name:literal) => {
        impl sealed::Sealed for $t {}
        impl TypedArrayElement for $t {
            const KIND: sys::napi_typedarray_type = $kind;
            const NAME: &'static str = $name;
        }
    };
}
element!(i8, ta::INT8, "Int8Array");
element!(u8, ta::UINT8, "Uint8Array");
element!(i16, ta::INT16, "Int16Array");
element!(u16, ta::UINT16, "Uint16Array");
element!(i32, ta::INT32, "Int32Array");
element!(u32, ta::UINT32, "Uint32Array");
element!(f32, ta::FLOAT32, "Float32Array");
element!(f64, ta::FLOAT64, "Float64Array");
element!(i64, ta::BIGINT64, "BigInt64Array");
element!(u64, ta::BIGUINT64, "BigUint64Array");

/// A JavaScript typed array argument, e.g. `TypedArray<f64>` for a `Float64Array` (a
/// `Uint8ClampedArray` is accepted as `TypedArray<u8>`), read by copy or, `unsafe`ly, in place.
///
/// Valid for the current callback only (it holds a [`Value`]); see the module docs for aliasing.
///
/// ```ignore
/// let xs: TypedArray<f64> = cx.arg_as(0)?;
/// let sum: f64 = xs.to_vec().iter().sum();
/// ```
pub struct TypedArray<T: TypedArrayElement> {
    value: Value,
    data: NonNull<T>,
    len: usize,
    shared: bool,
    _element: PhantomData<T>,
}

impl<T: TypedArrayElement> TypedArray<T> {
    /// The typed array object itself.
    pub fn value(&self) -> Value {
        self.value
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// True when the memory may be written by another thread at any time: the array views a
    /// SharedArrayBuffer (or a buffer the runtime does not call a plain `ArrayBuffer`).
    pub fn is_shared(&self) -> bool {
        self.shared
    }
    /// A copy of the elements; safe whatever the memory is and whoever writes it.
    pub fn to_vec(&self) -> Vec<T> {
        let mut out: Vec<T> = Vec::with_capacity(self.len);
        // SAFETY: data points at len initialised elements kept alive by self.value (as_slice);
        // out has room for len elements; every bit pattern is a valid T; both are aligned for T.
        unsafe {
            copy_racy(self.data.as_ptr() as *const u8, out.as_mut_ptr() as *mut u8, std::mem::size_of::<T>() * self.len, self.shared);
            out.set_len(self.len);
        }
        out
    }
    /// The elements, read in place.
    ///
    /// # Safety
    /// For as long as the slice lives, nobody writes these bytes: the memory is not shared
    /// (`!self.is_shared()`, so no other thread can write it), no JavaScript runs (it could write,
    /// detach or resize the buffer), and no `&mut` slice over the same bytes is live.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: data is aligned, non-null and points at len initialised elements of the typed
        // array's backing store, which self.value keeps alive for the callback; every bit pattern
        // is a valid T (TypedArrayElement is sealed to plain numbers); no writer is the caller's
        // contract.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
    /// The elements, writable in place (JavaScript sees the writes).
    ///
    /// # Safety
    /// As [`TypedArray::as_slice`], and no other live slice (from another view of the same buffer)
    /// covers these bytes while the returned slice is in use.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in as_slice; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
    /// `Err(NATIVE_INVALID_ARGUMENT)` when the array views shared memory: for bindings that
    /// write in place, where a copy would not do.
    pub fn require_unshared(&self) -> JsResult<()> {
        if self.shared {
            return Err(JsError::invalid_argument(format!("a {} over a SharedArrayBuffer is not accepted here", T::NAME)));
        }
        Ok(())
    }
}

impl<T: TypedArrayElement> FromJs for TypedArray<T> {
    fn from_js(value: Value) -> JsResult<Self> {
        let env = value.env();
        let (mut kind, mut len, mut data, mut buffer) = (0, 0usize, ptr::null_mut::<c_void>(), ptr::null_mut());
        // SAFETY: live handles; out-pointers valid; the offset output is optional.
        let status = unsafe {
            sys::napi_get_typedarray_info(env.raw(), value.raw(), &mut kind, &mut len, &mut data, &mut buffer, ptr::null_mut())
        };
        let matches = T::KIND == kind || (T::KIND == ta::UINT8 && kind == ta::UINT8_CLAMPED);
        if status != sys::status::OK || !matches {
            if env.is_exception_pending() {
                return Err(JsError::pending());
            }
            return Err(JsError::invalid_argument(format!("expected a {}", T::NAME)));
        }
        let shared = !is_plain_arraybuffer(env, buffer);
        Ok(TypedArray { value, data: element_ptr::<T>(data, len)?, len, shared, _element: PhantomData })
    }
}

/// True when `buffer` is an `ArrayBuffer` and not a `SharedArrayBuffer`. Node and Deno (V8) answer
/// false for a SharedArrayBuffer, as does Bun (JavaScriptCore); a failed call counts as shared,
/// the cautious answer.
fn is_plain_arraybuffer(env: Env, buffer: sys::napi_value) -> bool {
    if buffer.is_null() {
        return false;
    }
    let mut plain = false;
    // SAFETY: live handles; valid out-pointer.
    let status = unsafe { sys::napi_is_arraybuffer(env.raw(), buffer, &mut plain) };
    status == sys::status::OK && plain
}

/// Copies `len` bytes from JavaScript memory `src` to native memory `dst`. When another thread may
/// write `src` meanwhile (`shared`), each byte is read with a relaxed atomic load, which is what
/// makes that race defined behaviour; the copy may then mix old and new bytes, as a JavaScript
/// reader without `Atomics` would see. Otherwise one `memcpy`.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes, and they do not overlap.
unsafe fn copy_racy(src: *const u8, dst: *mut u8, len: usize, shared: bool) {
    if len == 0 {
        return;
    }
    if shared {
        for i in 0..len {
            // SAFETY: src + i is in bounds (caller); AtomicU8 has the size and alignment of u8,
            // and every access to shared JavaScript memory from this crate goes through atomics.
            let byte = unsafe { AtomicU8::from_ptr(src.add(i) as *mut u8) }.load(Ordering::Relaxed);
            // SAFETY: dst + i is in bounds and ours alone (caller).
            unsafe { dst.add(i).write(byte) };
        }
    } else {
        // SAFETY: caller's contract; unshared memory has no other writer during the call.
        unsafe { ptr::copy_nonoverlapping(src, dst, len) };
    }
}

/// Checks a data pointer from the runtime: empty arrays may report NULL, and a non-empty view
/// must be aligned for `T` (JavaScript requires this of typed arrays; checked, not assumed).
fn element_ptr<T>(data: *mut c_void, len: usize) -> JsResult<NonNull<T>> {
    if len == 0 {
        return Ok(NonNull::dangling());
    }
    match NonNull::new(data as *mut T) {
        Some(p) if (p.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) => Ok(p),
        _ => Err(JsError::invalid_argument("typed array memory is null or misaligned")),
    }
}

/// An `ArrayBuffer` argument (a SharedArrayBuffer is refused), read by copy or, `unsafe`ly, in
/// place.
pub struct ArrayBufferRef {
    value: Value,
    data: NonNull<u8>,
    len: usize,
}

impl ArrayBufferRef {
    /// The ArrayBuffer object itself.
    pub fn value(&self) -> Value {
        self.value
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // SAFETY: the buffer is not shared (checked in from_js) and no JavaScript runs during the
        // copy, which ends before this function returns.
        unsafe { self.as_slice() }.to_vec()
    }
    /// The bytes, read in place.
    ///
    /// # Safety
    /// No JavaScript runs while the slice lives (it could write, detach or resize the buffer) and
    /// no `&mut` slice over the same bytes is live. (Shared memory is refused on the way in.)
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: data points at len bytes of the buffer's backing store, kept alive by
        // self.value; no writer is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
    /// The bytes, writable in place.
    ///
    /// # Safety
    /// As [`ArrayBufferRef::as_slice`], and no other live slice covers these bytes.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl FromJs for ArrayBufferRef {
    fn from_js(value: Value) -> JsResult<Self> {
        let env = value.env();
        // Checked first: a runtime could describe a SharedArrayBuffer through
        // napi_get_arraybuffer_info too, and this type hands out slices of unshared memory only.
        if !is_plain_arraybuffer(env, value.raw()) {
            if env.is_exception_pending() {
                return Err(JsError::pending());
            }
            return Err(JsError::invalid_argument("expected an ArrayBuffer"));
        }
        let (mut data, mut len) = (ptr::null_mut::<c_void>(), 0usize);
        // SAFETY: live handles; valid out-pointers.
        let status = unsafe { sys::napi_get_arraybuffer_info(env.raw(), value.raw(), &mut data, &mut len) };
        if status != sys::status::OK {
            if env.is_exception_pending() {
                return Err(JsError::pending());
            }
            return Err(JsError::invalid_argument("expected an ArrayBuffer"));
        }
        Ok(ArrayBufferRef { value, data: element_ptr::<u8>(data, len)?, len })
    }
}

impl Env {
    /// A new `ArrayBuffer` holding a copy of `bytes`.
    pub fn arraybuffer_from_slice(self, bytes: &[u8]) -> JsResult<Value> {
        let mut data = ptr::null_mut::<c_void>();
        // SAFETY: env valid; data/out are valid out-pointers.
        let buffer = self.make("napi_create_arraybuffer", |out| unsafe { sys::napi_create_arraybuffer(self.raw(), bytes.len(), &mut data, out) })?;
        if !bytes.is_empty() {
            // SAFETY: the runtime allocated bytes.len() writable bytes at data, not overlapping ours.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len()) };
        }
        Ok(buffer)
    }

    /// A new typed array (`Float64Array` for `f64`, ...) holding a copy of `items`.
    pub fn typed_array_from_slice<T: TypedArrayElement>(self, items: &[T]) -> JsResult<Value> {
        // SAFETY: T is a plain number type with no padding, so its bytes are initialised.
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr() as *const u8, std::mem::size_of_val(items)) };
        let buffer = self.arraybuffer_from_slice(bytes)?;
        self.typed_array_over::<T>(buffer, 0, items.len())
    }

    /// A typed array of `len` `T`s viewing `arraybuffer` from `byte_offset` (no copy): the way to
    /// hand JavaScript a typed window onto an external buffer.
    pub fn typed_array_over<T: TypedArrayElement>(self, arraybuffer: Value, byte_offset: usize, len: usize) -> JsResult<Value> {
        // SAFETY: live handles; the runtime validates offset/length against the buffer and fails
        // with a RangeError-carrying status if they do not fit.
        self.make("napi_create_typedarray", |out| unsafe {
            sys::napi_create_typedarray(self.raw(), T::KIND, len, arraybuffer.raw(), byte_offset, out)
        })
    }

    /// An `ArrayBuffer` over native memory owned by `owner` (no copy). JavaScript reads and writes
    /// the bytes in place; `owner` is dropped when the buffer is garbage-collected.
    ///
    /// `owner.as_mut()` is called once, here; the bytes must stay where they are until `owner` is
    /// dropped (true of `Vec<u8>`, `Box<[u8]>`, arrays, and any owner of a heap allocation it
    /// never reallocates). A zero-length owner yields an ordinary empty `ArrayBuffer`.
    ///
    /// ```ignore
    /// let shared = env.external_arraybuffer(vec![0u8; 4096])?;
    /// let ints = env.typed_array_over::<i32>(shared, 0, 1024)?;
    /// ```
    pub fn external_arraybuffer<B: AsMut<[u8]> + 'static>(self, owner: B) -> JsResult<Value> {
        let mut boxed = Box::new(owner);
        let bytes = (*boxed).as_mut();
        let (data, len) = (bytes.as_mut_ptr(), bytes.len());
        if len == 0 {
            return self.arraybuffer_from_slice(&[]);
        }
        let hint = Box::into_raw(boxed);
        let mut raw = ptr::null_mut();
        // SAFETY: data/len describe memory owned by *hint, which stays put until the finalizer drops
        // it; the finalizer receives hint as its third argument (drop_boxed_hint).
        let status = unsafe {
            sys::napi_create_external_arraybuffer(self.raw(), data as *mut c_void, len, Some(drop_boxed_hint::<B>), hint as *mut c_void, &mut raw)
        };
        if let Err(e) = self.check(status, "napi_create_external_arraybuffer") {
            // SAFETY: creation failed, so the runtime will not call the finalizer; we still own hint.
            drop(unsafe { Box::from_raw(hint) });
            return Err(e);
        }
        Ok(self.value(raw))
    }
}

/// Finalizer of external buffers: the owner travels as the hint, the data pointer is not ours.
unsafe extern "C" fn drop_boxed_hint<B: 'static>(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: hint is the Box<B> passed to napi_create_external_arraybuffer; called once.
    unsafe { drop_boxed_data::<B>(env, hint, ptr::null_mut()) }
}

#[cfg(test)]
mod tests {
    use super::copy_racy;

    #[test]
    fn copies_are_exact_whether_read_as_shared_or_not() {
        let source: Vec<u8> = (0..=255).collect();
        for shared in [false, true] {
            let mut target = vec![0u8; source.len()];
            // SAFETY: both buffers hold source.len() bytes and do not overlap.
            unsafe { copy_racy(source.as_ptr(), target.as_mut_ptr(), source.len(), shared) };
            assert_eq!(target, source);
        }
        // SAFETY: a zero-length copy touches nothing, even through dangling pointers.
        unsafe { copy_racy(std::ptr::NonNull::dangling().as_ptr(), std::ptr::NonNull::dangling().as_ptr(), 0, true) };
    }
}
