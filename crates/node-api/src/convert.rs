//! Typed conversions between Rust values and JavaScript values.
//!
//! | Rust | from JavaScript ([`FromJs`]) | to JavaScript ([`IntoJs`]) |
//! |---|---|---|
//! | `f64` | number | number |
//! | `i32` `u32` `i64` `usize` | number, integral and in range (else `RangeError`) | number |
//! | [`BigI64`] [`BigU64`] | bigint that fits exactly | bigint |
//! | `bool` | boolean (no truthiness) | boolean |
//! | `String` / `&str` | string | string |
//! | `()` / [`Null`] | — | `undefined` / `null` |
//! | `Option<T>` | `undefined`/`null` -> `None` | `None` -> `undefined` |
//! | `Vec<T>`, `&[T]` of typed-array elements | — | typed array (copied) |
//! | [`TypedArray<T>`](crate::TypedArray), [`ArrayBufferRef`](crate::ArrayBufferRef) | zero-copy views | the same object |
//! | [`Value`] | anything | itself |
//!
//! Numbers are never silently truncated: `1.5` or `2**40` passed where an `i32` is expected is a
//! `RangeError` with code `NATIVE_INVALID_ARGUMENT`.

use crate::buffer::TypedArrayElement;
use crate::error::{codes, JsError, JsResult};
use crate::function::{at_position, CallContext};
use crate::value::{Env, Value};

/// Converts a JavaScript value into `Self`, checking its type and range.
pub trait FromJs: Sized {
    fn from_js(value: Value) -> JsResult<Self>;
}

/// Converts `self` into a JavaScript value.
pub trait IntoJs {
    fn into_js(self, env: Env) -> JsResult<Value>;
}

/// A bigint argument or result that must fit in `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigI64(pub i64);
/// A bigint argument or result that must fit in `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigU64(pub u64);
/// Converts to JavaScript `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Null;

fn integral(value: Value, min: f64, max: f64, what: &str) -> JsResult<f64> {
    let x = value.to_f64()?;
    if x.fract() != 0.0 || !(min..=max).contains(&x) {
        return Err(JsError::range_error(codes::NATIVE_INVALID_ARGUMENT, format!("expected {what}, got {x}")));
    }
    Ok(x)
}

/// 2^53 - 1: the largest integer every number represents exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

impl FromJs for Value {
    fn from_js(value: Value) -> JsResult<Self> {
        Ok(value)
    }
}
impl FromJs for f64 {
    fn from_js(value: Value) -> JsResult<Self> {
        value.to_f64()
    }
}
impl FromJs for i32 {
    fn from_js(value: Value) -> JsResult<Self> {
        Ok(integral(value, i32::MIN as f64, i32::MAX as f64, "a 32-bit signed integer")? as i32)
    }
}
impl FromJs for u32 {
    fn from_js(value: Value) -> JsResult<Self> {
        Ok(integral(value, 0.0, u32::MAX as f64, "a 32-bit unsigned integer")? as u32)
    }
}
impl FromJs for i64 {
    fn from_js(value: Value) -> JsResult<Self> {
        Ok(integral(value, -MAX_SAFE, MAX_SAFE, "a safe integer")? as i64)
    }
}
impl FromJs for usize {
    fn from_js(value: Value) -> JsResult<Self> {
        Ok(integral(value, 0.0, MAX_SAFE.min(usize::MAX as f64), "a non-negative safe integer")? as usize)
    }
}
impl FromJs for bool {
    fn from_js(value: Value) -> JsResult<Self> {
        value.to_bool()
    }
}
impl FromJs for String {
    fn from_js(value: Value) -> JsResult<Self> {
        value.to_string_utf8()
    }
}
impl FromJs for BigI64 {
    fn from_js(value: Value) -> JsResult<Self> {
        value.to_bigint_i64().map(BigI64)
    }
}
impl FromJs for BigU64 {
    fn from_js(value: Value) -> JsResult<Self> {
        value.to_bigint_u64().map(BigU64)
    }
}
impl<T: FromJs> FromJs for Option<T> {
    fn from_js(value: Value) -> JsResult<Self> {
        if value.is_nullish()? {
            Ok(None)
        } else {
            T::from_js(value).map(Some)
        }
    }
}

impl IntoJs for Value {
    fn into_js(self, _env: Env) -> JsResult<Value> {
        Ok(self)
    }
}
impl IntoJs for () {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.undefined()
    }
}
impl IntoJs for Null {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.null()
    }
}
impl IntoJs for f64 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.double(self)
    }
}
impl IntoJs for i32 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.int32(self)
    }
}
impl IntoJs for u32 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.uint32(self)
    }
}
impl IntoJs for i64 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.int64(self)
    }
}
impl IntoJs for usize {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.double(self as f64)
    }
}
impl IntoJs for bool {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.boolean(self)
    }
}
impl IntoJs for &str {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.string(self)
    }
}
impl IntoJs for String {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.string(&self)
    }
}
impl IntoJs for BigI64 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.bigint_i64(self.0)
    }
}
impl IntoJs for BigU64 {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.bigint_u64(self.0)
    }
}
impl<T: IntoJs> IntoJs for Option<T> {
    fn into_js(self, env: Env) -> JsResult<Value> {
        match self {
            Some(v) => v.into_js(env),
            None => env.undefined(),
        }
    }
}
impl<T: TypedArrayElement> IntoJs for &[T] {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.typed_array_from_slice(self)
    }
}
impl<T: TypedArrayElement> IntoJs for Vec<T> {
    fn into_js(self, env: Env) -> JsResult<Value> {
        env.typed_array_from_slice(&self)
    }
}

/// A tuple of leading arguments, for [`CallContext::args`].
pub trait FromArgs: Sized {
    fn from_args(cx: &CallContext) -> JsResult<Self>;
}

macro_rules! tuple_from_args {
    ($($t:ident $i:tt),+) => {
        impl<$($t: FromJs),+> FromArgs for ($($t,)+) {
            fn from_args(cx: &CallContext) -> JsResult<Self> {
                Ok(($( $t::from_js(cx.arg($i)?).map_err(|e| at_position(e, $i))?, )+))
            }
        }
    };
}
tuple_from_args!(A 0);
tuple_from_args!(A 0, B 1);
tuple_from_args!(A 0, B 1, C 2);
tuple_from_args!(A 0, B 1, C 2, D 3);
tuple_from_args!(A 0, B 1, C 2, D 3, E 4);
tuple_from_args!(A 0, B 1, C 2, D 3, E 4, F 5);
