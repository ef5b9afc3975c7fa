//! Binary data: typed arrays and ArrayBuffers in (zero-copy views) and out (copies, or external
//! buffers over native memory that JavaScript then reads and writes in place).
//!
//! Aliasing rule: JavaScript memory is shared and mutable. Two views (two arguments, or a view and
//! a buffer the native side also holds) may cover the same bytes, and memory of a SharedArrayBuffer
//! may be written by other threads. So reading is safe through [`TypedArray::as_slice`] only while
//! nobody writes those bytes during the call, and writing goes through the `unsafe`
//! [`TypedArray::as_mut_slice`], whose caller promises no other live slice covers the same bytes.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

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

/// A zero-copy view of a JavaScript typed array argument, e.g. `TypedArray<f64>` for a
/// `Float64Array` (a `Uint8ClampedArray` is accepted as `TypedArray<u8>`).
///
/// Valid for the current callback only (it holds a [`Value`]); see the module docs for aliasing.
///
/// ```ignore
/// let xs: TypedArray<f64> = cx.arg_as(0)?;
/// let sum: f64 = xs.as_slice().iter().sum();
/// ```
pub struct TypedArray<T: TypedArrayElement> {
    value: Value,
    data: NonNull<T>,
    len: usize,
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
    /// The elements, read in place.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: data is aligned, non-null and points at len initialised elements of the typed
        // array's backing store, which self.value keeps alive for the callback; every bit pattern
        // is a valid T (TypedArrayElement is sealed to plain numbers).
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
    /// The elements, writable in place (JavaScript sees the writes).
    ///
    /// # Safety
    /// No other live slice (from another view of the same buffer, or another thread writing a
    /// SharedArrayBuffer) may cover these bytes while the returned slice is in use.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in as_slice; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl<T: TypedArrayElement> FromJs for TypedArray<T> {
    fn from_js(value: Value) -> JsResult<Self> {
        let env = value.env();
        let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut::<c_void>());
        // SAFETY: live handles; out-pointers valid; the arraybuffer/offset outputs are optional.
        let status = unsafe {
            sys::napi_get_typedarray_info(env.raw(), value.raw(), &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut())
        };
        let matches = T::KIND == kind || (T::KIND == ta::UINT8 && kind == ta::UINT8_CLAMPED);
        if status != sys::status::OK || !matches {
            if env.is_exception_pending() {
                return Err(JsError::pending());
            }
            return Err(JsError::invalid_argument(format!("expected a {}", T::NAME)));
        }
        Ok(TypedArray { value, data: element_ptr::<T>(data, len)?, len, _element: PhantomData })
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

/// A zero-copy view of an `ArrayBuffer` argument (not a SharedArrayBuffer).
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
    /// The bytes, read in place.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: data points at len bytes of the buffer's backing store, kept alive by self.value.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
    /// The bytes, writable in place.
    ///
    /// # Safety
    /// As [`TypedArray::as_mut_slice`]: no other live slice may cover these bytes.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl FromJs for ArrayBufferRef {
    fn from_js(value: Value) -> JsResult<Self> {
        let env = value.env();
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
