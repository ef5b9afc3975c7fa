//! Errors that cross the boundary as JavaScript exceptions with a stable `code`.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

/// The stable `code`s this crate itself throws. Bindings choose their own codes for domain errors.
pub mod codes {
    /// Rust code panicked inside an entry point; the panic was caught at the boundary.
    pub const NATIVE_PANIC: &str = "NATIVE_PANIC";
    /// An argument (or `this`) had the wrong type or was out of range for its Rust type.
    pub const NATIVE_INVALID_ARGUMENT: &str = "NATIVE_INVALID_ARGUMENT";
    /// A Node-API call failed for a reason other than a pending JavaScript exception.
    pub const NATIVE_CALL_FAILED: &str = "NATIVE_CALL_FAILED";
    /// A method of a wrapped object was re-entered while an earlier call still held `&mut` to it.
    pub const NATIVE_BORROWED: &str = "NATIVE_BORROWED";
}

/// Which JavaScript constructor a [`JsError`] is thrown as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Error`
    Error,
    /// `TypeError`
    TypeError,
    /// `RangeError`
    RangeError,
    /// A JavaScript exception is already pending (thrown by JavaScript code the native side
    /// called); returning this leaves that exception in flight unchanged.
    Pending,
}

/// An error to throw into JavaScript: a kind, a stable `code` and a message.
///
/// Returning `Err(JsError)` from any entry point (function, method, getter, constructor) throws it;
/// the thrown object is a real `Error`/`TypeError`/`RangeError` whose `code` property is set, so
/// JavaScript can branch on `error.code`. Messages must not contain user payloads or secrets.
///
/// ```ignore
/// fn checked(x: f64) -> JsResult<f64> {
///     if x < 0.0 { return Err(JsError::range_error("INVALID_OPTIONS", "x must be >= 0")) }
///     Ok(x.sqrt())
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JsError {
    kind: ErrorKind,
    code: Cow<'static, str>,
    message: String,
}

/// The result type of everything that talks to JavaScript.
pub type JsResult<T> = Result<T, JsError>;

impl JsError {
    /// An `Error` with `code`.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        JsError { kind: ErrorKind::Error, code: code.into(), message: message.into() }
    }
    /// A `TypeError` with `code`.
    pub fn type_error(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        JsError { kind: ErrorKind::TypeError, code: code.into(), message: message.into() }
    }
    /// A `RangeError` with `code`.
    pub fn range_error(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        JsError { kind: ErrorKind::RangeError, code: code.into(), message: message.into() }
    }
    /// The marker for "a JavaScript exception is already pending": nothing new is thrown.
    pub fn pending() -> Self {
        JsError { kind: ErrorKind::Pending, code: Cow::Borrowed(""), message: String::new() }
    }
    /// A `TypeError` with code `NATIVE_INVALID_ARGUMENT`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::type_error(codes::NATIVE_INVALID_ARGUMENT, message)
    }
    /// The error a caught panic becomes: an `Error` with code `NATIVE_PANIC` and the panic message.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic payload".to_owned()
        };
        Self::new(codes::NATIVE_PANIC, format!("native code panicked: {text}"))
    }

    /// The JavaScript constructor this error is thrown as.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The stable `code` (empty for [`JsError::pending`]).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// True for [`JsError::pending`].
    pub fn is_pending(&self) -> bool {
        self.kind == ErrorKind::Pending
    }
}

impl fmt::Debug for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}[{}]: {}", self.kind, self.code, self.message)
    }
}
impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_pending() {
            f.write_str("a JavaScript exception is pending")
        } else {
            write!(f, "{} ({})", self.message, self.code)
        }
    }
}
impl std::error::Error for JsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_native_panic_errors_with_the_message() {
        let from_str = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
        let e = JsError::from_panic(from_str.as_ref());
        assert_eq!(e.code(), "NATIVE_PANIC");
        assert_eq!(e.message(), "native code panicked: boom");
        let from_string = std::panic::catch_unwind(|| panic!("n = {}", 3)).unwrap_err();
        assert_eq!(JsError::from_panic(from_string.as_ref()).message(), "native code panicked: n = 3");
        let opaque = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(JsError::from_panic(opaque.as_ref()).message(), "native code panicked: unknown panic payload");
    }

    #[test]
    fn constructors_set_kind_code_and_message() {
        let e = JsError::range_error("BUFFER_FULL", "full");
        assert_eq!((e.kind(), e.code(), e.message()), (ErrorKind::RangeError, "BUFFER_FULL", "full"));
        assert!(JsError::pending().is_pending());
        assert_eq!(JsError::invalid_argument("x").kind(), ErrorKind::TypeError);
        assert_eq!(JsError::new("A", "b").to_string(), "b (A)");
    }
}
