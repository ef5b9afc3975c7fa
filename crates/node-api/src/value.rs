//! [`Env`] (creates values, throws) and [`Value`] (reads and edits one value).

use std::ffi::{c_char, CStr};
use std::ptr;

use crate::error::{codes, JsError, JsResult};
use crate::sys;

/// The JavaScript environment of the current thread, as handed to a native callback.
///
/// `Env` is a copyable handle; it is only meaningful on the thread (and inside the callback) it
/// was given to. Every method that can fail returns [`JsResult`]; a failure caused by a pending
/// JavaScript exception comes back as [`JsError::pending`] so that exception propagates unchanged.
///
/// | method family | creates |
/// |---|---|
/// | `undefined` `null` `boolean` `double` `int32` `uint32` `int64` | primitives |
/// | `bigint_i64` `bigint_u64` `string` | bigints, strings |
/// | `object` `array` | containers |
/// | `function` (see `function.rs`), `class` (see `class.rs`) | callables |
/// | `arraybuffer_*`, `typed_array_*`, `external_arraybuffer` (see `buffer.rs`) | binary data |
#[derive(Clone, Copy, Debug)]
pub struct Env {
    raw: sys::napi_env,
}

/// A handle to one JavaScript value, together with the [`Env`] it belongs to.
///
/// Lifetime rule (as in napi-rs, not enforced by the type system): a `Value` is valid only until
/// the native callback that produced it returns. Never keep one in a static, a wrapped object or
/// another thread; keep Rust data there instead.
#[derive(Clone, Copy, Debug)]
pub struct Value {
    env: sys::napi_env,
    raw: sys::napi_value,
}

/// What `typeof` would say, refined with `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Symbol,
    Object,
    Function,
    External,
    BigInt,
}

impl ValueType {
    /// The JavaScript `typeof` spelling (`null` is spelt `"null"`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Undefined => "undefined",
            ValueType::Null => "null",
            ValueType::Boolean => "boolean",
            ValueType::Number => "number",
            ValueType::String => "string",
            ValueType::Symbol => "symbol",
            ValueType::Object => "object",
            ValueType::Function => "function",
            ValueType::External => "external",
            ValueType::BigInt => "bigint",
        }
    }
}

impl Env {
    /// Wraps a raw environment pointer.
    ///
    /// # Safety
    /// `raw` must be the `napi_env` passed to the native callback currently running on this thread.
    pub unsafe fn from_raw(raw: sys::napi_env) -> Env {
        Env { raw }
    }

    /// The raw pointer, for calling a `sys` function this crate does not wrap.
    pub fn raw(self) -> sys::napi_env {
        self.raw
    }

    /// Turns a `napi_status` into a result. Must be called right after the call that returned it,
    /// because the error text lives in per-env "last error" state.
    pub(crate) fn check(self, status: sys::napi_status, what: &str) -> JsResult<()> {
        if status == sys::status::OK {
            return Ok(());
        }
        let mut message = String::from("unknown error");
        let mut info: *const sys::napi_extended_error_info = ptr::null();
        // SAFETY: env is valid for this callback; info is an out-pointer the runtime fills with a
        // pointer to its own per-env struct, read immediately below before any other napi call.
        let info_status = unsafe { sys::napi_get_last_error_info(self.raw, &mut info) };
        if info_status == sys::status::OK && !info.is_null() {
            // SAFETY: the runtime returned a valid pointer; error_message is NULL or a C string.
            let text = unsafe { (*info).error_message };
            if !text.is_null() {
                // SAFETY: non-null error_message is a NUL-terminated static string per node_api.h.
                message = unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned();
            }
        }
        if status == sys::status::PENDING_EXCEPTION || self.is_exception_pending() {
            return Err(JsError::pending());
        }
        Err(JsError::new(codes::NATIVE_CALL_FAILED, format!("{what} failed (napi status {status}): {message}")))
    }

    /// True when a JavaScript exception is waiting to propagate.
    pub fn is_exception_pending(self) -> bool {
        let mut pending = false;
        // SAFETY: env is valid; pending is a valid out-pointer.
        unsafe { sys::napi_is_exception_pending(self.raw, &mut pending) };
        pending
    }

    pub(crate) fn value(self, raw: sys::napi_value) -> Value {
        Value { env: self.raw, raw }
    }

    /// Runs a `napi_*` constructor that writes one value through an out-pointer.
    pub(crate) fn make(self, what: &str, f: impl FnOnce(*mut sys::napi_value) -> sys::napi_status) -> JsResult<Value> {
        let mut raw = ptr::null_mut();
        let status = f(&mut raw);
        self.check(status, what)?;
        Ok(self.value(raw))
    }

    /// `undefined`.
    pub fn undefined(self) -> JsResult<Value> {
        // SAFETY: env is valid; the out-pointer is valid.
        self.make("napi_get_undefined", |out| unsafe { sys::napi_get_undefined(self.raw, out) })
    }
    /// `null`.
    pub fn null(self) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_get_null", |out| unsafe { sys::napi_get_null(self.raw, out) })
    }
    /// `globalThis`.
    pub fn global(self) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_get_global", |out| unsafe { sys::napi_get_global(self.raw, out) })
    }
    /// `true` or `false`.
    pub fn boolean(self, value: bool) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_get_boolean", |out| unsafe { sys::napi_get_boolean(self.raw, value, out) })
    }
    /// A number.
    pub fn double(self, value: f64) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_double", |out| unsafe { sys::napi_create_double(self.raw, value, out) })
    }
    /// A number from an `i32` (exact).
    pub fn int32(self, value: i32) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_int32", |out| unsafe { sys::napi_create_int32(self.raw, value, out) })
    }
    /// A number from a `u32` (exact).
    pub fn uint32(self, value: u32) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_uint32", |out| unsafe { sys::napi_create_uint32(self.raw, value, out) })
    }
    /// A number from an `i64`: exact up to ±(2^53 - 1), rounded beyond (use [`Env::bigint_i64`]).
    pub fn int64(self, value: i64) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_int64", |out| unsafe { sys::napi_create_int64(self.raw, value, out) })
    }
    /// A bigint from an `i64` (exact).
    pub fn bigint_i64(self, value: i64) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_bigint_int64", |out| unsafe { sys::napi_create_bigint_int64(self.raw, value, out) })
    }
    /// A bigint from a `u64` (exact).
    pub fn bigint_u64(self, value: u64) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_bigint_uint64", |out| unsafe { sys::napi_create_bigint_uint64(self.raw, value, out) })
    }
    /// A string (UTF-8 in, any content including NUL).
    pub fn string(self, value: &str) -> JsResult<Value> {
        // SAFETY: the pointer and length describe a live UTF-8 buffer; length is explicit so no
        // NUL terminator is needed.
        self.make("napi_create_string_utf8", |out| unsafe {
            sys::napi_create_string_utf8(self.raw, value.as_ptr() as *const c_char, value.len(), out)
        })
    }
    /// `{}`.
    pub fn object(self) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_object", |out| unsafe { sys::napi_create_object(self.raw, out) })
    }
    /// `new Array(len)` (holes until set).
    pub fn array(self, len: usize) -> JsResult<Value> {
        // SAFETY: as above.
        self.make("napi_create_array_with_length", |out| unsafe { sys::napi_create_array_with_length(self.raw, len, out) })
    }
    /// An array holding `values` in order.
    pub fn array_from(self, values: &[Value]) -> JsResult<Value> {
        let array = self.array(values.len())?;
        for (i, v) in values.iter().enumerate() {
            array.set_index(index_u32(i)?, *v)?;
        }
        Ok(array)
    }

    /// Tells the garbage collector that `delta` bytes of native memory are now kept alive (or freed,
    /// when negative) by JavaScript objects, so it schedules collections accordingly.
    pub fn adjust_external_memory(self, delta: i64) -> JsResult<i64> {
        let mut total = 0i64;
        // SAFETY: env is valid; total is a valid out-pointer.
        let status = unsafe { sys::napi_adjust_external_memory(self.raw, delta, &mut total) };
        self.check(status, "napi_adjust_external_memory")?;
        Ok(total)
    }

    /// Throws `error` unless it is [`JsError::pending`] or an exception is already pending.
    /// The thrown object is an `Error` (or `TypeError`/`RangeError`) with `code` set.
    pub fn throw(self, error: &JsError) {
        if error.is_pending() || self.is_exception_pending() {
            return;
        }
        if self.throw_with_code(error).is_err() && !self.is_exception_pending() {
            // Building the error object failed (out of memory?): fall back to the C convenience.
            let code = std::ffi::CString::new(error.code().replace('\0', "")).unwrap_or_default();
            let msg = std::ffi::CString::new(error.message().replace('\0', "")).unwrap_or_default();
            // SAFETY: env is valid; both pointers are NUL-terminated strings alive for the call.
            unsafe { sys::napi_throw_error(self.raw, code.as_ptr(), msg.as_ptr()) };
        }
    }

    fn throw_with_code(self, error: &JsError) -> JsResult<()> {
        use crate::error::ErrorKind;
        let message = self.string(error.message())?;
        let code = self.string(error.code())?;
        let create = match error.kind() {
            ErrorKind::TypeError => sys::napi_create_type_error,
            ErrorKind::RangeError => sys::napi_create_range_error,
            _ => sys::napi_create_error,
        };
        // SAFETY: env is valid; message is a string value created above; code is NULL (we set the
        // property ourselves below, because not every runtime honours the code argument).
        let object = self.make("napi_create_error", |out| unsafe { create(self.raw, ptr::null_mut(), message.raw, out) })?;
        object.set("code", code)?;
        // SAFETY: env is valid; object is an error value created in this callback.
        let status = unsafe { sys::napi_throw(self.raw, object.raw) };
        self.check(status, "napi_throw")
    }
}

pub(crate) fn index_u32(i: usize) -> JsResult<u32> {
    u32::try_from(i).map_err(|_| JsError::range_error(codes::NATIVE_INVALID_ARGUMENT, "array index exceeds 2^32 - 1"))
}

impl Value {
    /// Wraps a raw value handle.
    ///
    /// # Safety
    /// `raw` must be a live handle created in the current callback of `env`.
    pub unsafe fn from_raw(env: Env, raw: sys::napi_value) -> Value {
        Value { env: env.raw, raw }
    }
    /// The environment this value belongs to.
    pub fn env(self) -> Env {
        Env { raw: self.env }
    }
    /// The raw handle, for calling a `sys` function this crate does not wrap.
    pub fn raw(self) -> sys::napi_value {
        self.raw
    }

    /// `typeof`, with `null` told apart from objects.
    pub fn value_type(self) -> JsResult<ValueType> {
        let mut t = 0;
        // SAFETY: env and value are live handles of this callback; t is a valid out-pointer.
        let status = unsafe { sys::napi_typeof(self.env, self.raw, &mut t) };
        self.env().check(status, "napi_typeof")?;
        use sys::valuetype as vt;
        Ok(match t {
            vt::UNDEFINED => ValueType::Undefined,
            vt::NULL => ValueType::Null,
            vt::BOOLEAN => ValueType::Boolean,
            vt::NUMBER => ValueType::Number,
            vt::STRING => ValueType::String,
            vt::SYMBOL => ValueType::Symbol,
            vt::FUNCTION => ValueType::Function,
            vt::EXTERNAL => ValueType::External,
            vt::BIGINT => ValueType::BigInt,
            _ => ValueType::Object,
        })
    }
    /// True for `undefined` and `null`.
    pub fn is_nullish(self) -> JsResult<bool> {
        Ok(matches!(self.value_type()?, ValueType::Undefined | ValueType::Null))
    }

    /// Maps a type-mismatch status to a `TypeError` naming what was expected.
    fn expect(self, status: sys::napi_status, expected: &str) -> JsResult<()> {
        if status == sys::status::OK {
            return Ok(());
        }
        if status == sys::status::PENDING_EXCEPTION || self.env().is_exception_pending() {
            return Err(JsError::pending());
        }
        let got = self.value_type().map(ValueType::name).unwrap_or("unknown");
        Err(JsError::invalid_argument(format!("expected {expected}, got {got}")))
    }

    /// The number, as `f64`. `TypeError` for non-numbers.
    pub fn to_f64(self) -> JsResult<f64> {
        let mut out = 0.0;
        // SAFETY: live handles; valid out-pointer.
        let status = unsafe { sys::napi_get_value_double(self.env, self.raw, &mut out) };
        self.expect(status, "a number")?;
        Ok(out)
    }
    /// The boolean. `TypeError` for non-booleans (no truthiness coercion).
    pub fn to_bool(self) -> JsResult<bool> {
        let mut out = false;
        // SAFETY: live handles; valid out-pointer.
        let status = unsafe { sys::napi_get_value_bool(self.env, self.raw, &mut out) };
        self.expect(status, "a boolean")?;
        Ok(out)
    }
    /// The bigint as `i64`; `RangeError` if it does not fit exactly.
    pub fn to_bigint_i64(self) -> JsResult<i64> {
        let (mut out, mut lossless) = (0i64, false);
        // SAFETY: live handles; valid out-pointers.
        let status = unsafe { sys::napi_get_value_bigint_int64(self.env, self.raw, &mut out, &mut lossless) };
        self.expect(status, "a bigint")?;
        if !lossless {
            return Err(JsError::range_error(codes::NATIVE_INVALID_ARGUMENT, "bigint does not fit in a signed 64-bit integer"));
        }
        Ok(out)
    }
    /// The bigint as `u64`; `RangeError` if it is negative or too large.
    pub fn to_bigint_u64(self) -> JsResult<u64> {
        let (mut out, mut lossless) = (0u64, false);
        // SAFETY: live handles; valid out-pointers.
        let status = unsafe { sys::napi_get_value_bigint_uint64(self.env, self.raw, &mut out, &mut lossless) };
        self.expect(status, "a bigint")?;
        if !lossless {
            return Err(JsError::range_error(codes::NATIVE_INVALID_ARGUMENT, "bigint does not fit in an unsigned 64-bit integer"));
        }
        Ok(out)
    }
    /// The string, as UTF-8 (lone surrogates become U+FFFD, as the runtime encodes them).
    pub fn to_string_utf8(self) -> JsResult<String> {
        let mut len = 0usize;
        // SAFETY: a NULL buffer asks only for the length in bytes, written to len.
        let status = unsafe { sys::napi_get_value_string_utf8(self.env, self.raw, ptr::null_mut(), 0, &mut len) };
        self.expect(status, "a string")?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0usize;
        // SAFETY: buf has len + 1 bytes (room for the NUL the runtime always writes).
        let status = unsafe {
            sys::napi_get_value_string_utf8(self.env, self.raw, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut written)
        };
        self.expect(status, "a string")?;
        buf.truncate(written);
        // The runtime emits UTF-8; from_utf8_lossy only guards against a runtime bug.
        Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// `Array.isArray(value)`.
    pub fn is_array(self) -> JsResult<bool> {
        let mut out = false;
        // SAFETY: live handles; valid out-pointer.
        let status = unsafe { sys::napi_is_array(self.env, self.raw, &mut out) };
        self.env().check(status, "napi_is_array")?;
        Ok(out)
    }
    /// `array.length`; `TypeError` for non-arrays.
    pub fn array_len(self) -> JsResult<u32> {
        let mut out = 0u32;
        // SAFETY: live handles; valid out-pointer.
        let status = unsafe { sys::napi_get_array_length(self.env, self.raw, &mut out) };
        self.expect(status, "an array")?;
        Ok(out)
    }
    /// `value[index]`.
    pub fn get_index(self, index: u32) -> JsResult<Value> {
        // SAFETY: live handles; valid out-pointer.
        self.env().make("napi_get_element", |out| unsafe { sys::napi_get_element(self.env, self.raw, index, out) })
    }
    /// `value[index] = item`.
    pub fn set_index(self, index: u32, item: Value) -> JsResult<()> {
        // SAFETY: live handles of the same env.
        let status = unsafe { sys::napi_set_element(self.env, self.raw, index, item.raw) };
        self.env().check(status, "napi_set_element")
    }
    /// `value[name]` (runs getters; `TypeError` for `undefined`/`null`).
    pub fn get(self, name: &str) -> JsResult<Value> {
        let key = self.env().string(name)?;
        // SAFETY: live handles; valid out-pointer.
        self.env().make("napi_get_property", |out| unsafe { sys::napi_get_property(self.env, self.raw, key.raw, out) })
    }
    /// `value[name] = item`.
    pub fn set(self, name: &str, item: Value) -> JsResult<()> {
        let key = self.env().string(name)?;
        // SAFETY: live handles of the same env.
        let status = unsafe { sys::napi_set_property(self.env, self.raw, key.raw, item.raw) };
        self.env().check(status, "napi_set_property")
    }
    /// `name in value`.
    pub fn has(self, name: &str) -> JsResult<bool> {
        let key = self.env().string(name)?;
        let mut out = false;
        // SAFETY: live handles; valid out-pointer.
        let status = unsafe { sys::napi_has_property(self.env, self.raw, key.raw, &mut out) };
        self.env().check(status, "napi_has_property")?;
        Ok(out)
    }

    /// Calls this function with `this` and `args`. A JavaScript exception comes back as
    /// [`JsError::pending`]; return it with `?` and it propagates to the caller unchanged.
    pub fn call(self, this: Value, args: &[Value]) -> JsResult<Value> {
        let raw_args: Vec<sys::napi_value> = args.iter().map(|a| a.raw).collect();
        // SAFETY: live handles; raw_args outlives the call; argc matches its length.
        self.env().make("napi_call_function", |out| unsafe {
            sys::napi_call_function(self.env, this.raw, self.raw, raw_args.len(), raw_args.as_ptr(), out)
        })
    }
}
