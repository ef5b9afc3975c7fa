//! Native functions callable from JavaScript, and the one guarded entry path every callback uses.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Once;

use crate::convert::{FromArgs, FromJs, IntoJs};
use crate::error::{JsError, JsResult};
use crate::sys;
use crate::value::{Env, Value};

/// Arguments fetched by the first `napi_get_cb_info`; more cost a second call. Runtimes fill every
/// requested slot past the real count with `undefined` (Bun measurably so: about 4 ns a slot), so
/// this is kept to what most bindings take rather than rounded up.
const INLINE_ARGS: usize = 4;

/// What a native function sees of its call: the environment, `this`, and the arguments.
///
/// Missing arguments read as `undefined`, as in JavaScript. Typed access converts with the
/// [`FromJs`] rules and fails with a `TypeError` (code `NATIVE_INVALID_ARGUMENT`) naming the
/// argument position.
///
/// ```ignore
/// exports.set_function("add", |cx| {
///     let (a, b): (f64, f64) = cx.args()?;
///     cx.ret(a + b)
/// })?;
/// ```
pub struct CallContext {
    env: Env,
    this: sys::napi_value,
    argc: usize,
    inline: [sys::napi_value; INLINE_ARGS],
    spilled: Vec<sys::napi_value>,
}

impl CallContext {
    /// Reads the call description; returns the context and the callback's data pointer.
    ///
    /// # Safety
    /// `info` must be the `napi_callback_info` of the callback currently running on `env`.
    pub(crate) unsafe fn new(env: Env, info: sys::napi_callback_info) -> JsResult<(CallContext, *mut c_void)> {
        let mut cx = CallContext {
            env,
            this: ptr::null_mut(),
            argc: INLINE_ARGS,
            inline: [ptr::null_mut(); INLINE_ARGS],
            spilled: Vec::new(),
        };
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: info belongs to the running callback (caller's contract); argv has room for argc
        // values; on return argc holds the real count, which may exceed the room we gave.
        let status = unsafe { sys::napi_get_cb_info(env.raw(), info, &mut cx.argc, cx.inline.as_mut_ptr(), &mut cx.this, &mut data) };
        env.check(status, "napi_get_cb_info")?;
        if cx.argc > INLINE_ARGS {
            let mut argc = cx.argc;
            cx.spilled = vec![ptr::null_mut(); argc];
            // SAFETY: as above, with a buffer sized for every argument.
            let status = unsafe {
                sys::napi_get_cb_info(env.raw(), info, &mut argc, cx.spilled.as_mut_ptr(), ptr::null_mut(), ptr::null_mut())
            };
            env.check(status, "napi_get_cb_info")?;
        }
        Ok((cx, data))
    }

    /// The environment.
    pub fn env(&self) -> Env {
        self.env
    }
    /// `this` of the call.
    pub fn this(&self) -> Value {
        self.env.value(self.this)
    }
    /// How many arguments were passed.
    pub fn len(&self) -> usize {
        self.argc
    }
    /// True when no argument was passed.
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }
    /// Argument `index` as a raw [`Value`]; `undefined` when not passed.
    pub fn arg(&self, index: usize) -> JsResult<Value> {
        if index >= self.argc {
            return self.env.undefined();
        }
        let raw = if self.spilled.is_empty() { self.inline[index] } else { self.spilled[index] };
        Ok(self.env.value(raw))
    }
    /// Argument `index` converted to `T`; the error names the position.
    pub fn arg_as<T: FromJs>(&self, index: usize) -> JsResult<T> {
        T::from_js(self.arg(index)?).map_err(|e| at_position(e, index))
    }
    /// The leading arguments as a tuple: `let (a, b): (f64, String) = cx.args()?`.
    pub fn args<T: FromArgs>(&self) -> JsResult<T> {
        T::from_args(self)
    }
    /// Converts a Rust value into the function's return value.
    pub fn ret(&self, value: impl IntoJs) -> JsResult<Value> {
        value.into_js(self.env)
    }
}

/// Prefixes a conversion error with the argument position, keeping its kind and code.
pub(crate) fn at_position(error: JsError, index: usize) -> JsError {
    use crate::error::ErrorKind;
    let message = format!("argument {index}: {}", error.message());
    match error.kind() {
        ErrorKind::Pending => error,
        ErrorKind::TypeError => JsError::type_error(error.code().to_owned(), message),
        ErrorKind::RangeError => JsError::range_error(error.code().to_owned(), message),
        ErrorKind::Error => JsError::new(error.code().to_owned(), message),
    }
}

thread_local! {
    /// How many guarded entry points are running on this thread (callbacks nest through JS).
    static GUARD_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last caught panic happened, recorded by the panic hook.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that, for panics inside a guarded entry point, records
/// the location for the thrown error instead of printing: the panic is reported to JavaScript as
/// an error, so printing it too would be noise. Panics elsewhere reach the previous hook unchanged.
/// The hook belongs to this library's copy of std, so the host process is unaffected.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARD_DEPTH.with(Cell::get) > 0 {
                let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body` under catch_unwind with the guard depth raised; a panic becomes a `NATIVE_PANIC`
/// error carrying its location when the hook recorded one.
fn catch_panic<R>(body: impl FnOnce() -> R) -> Result<R, JsError> {
    GUARD_DEPTH.with(|d| d.set(d.get() + 1));
    // AssertUnwindSafe: after a panic nothing observes the closure's captures again except through
    // wrapped objects, whose borrow guard is released during unwinding.
    let result = catch_unwind(AssertUnwindSafe(body));
    GUARD_DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        let error = JsError::from_panic(payload.as_ref());
        match PANIC_LOCATION.with(|slot| slot.borrow_mut().take()) {
            Some(at) => JsError::new(crate::error::codes::NATIVE_PANIC, format!("{} (at {at})", error.message())),
            None => error,
        }
    })
}

/// Runs one native entry point: catches panics, throws `Err`s, and returns the raw result
/// (NULL, which JavaScript sees as `undefined`, when something was thrown).
///
/// # Safety
/// `env` must be the environment passed to the running callback.
pub(crate) unsafe fn guarded(env: sys::napi_env, body: impl FnOnce(Env) -> JsResult<Value>) -> sys::napi_value {
    // SAFETY: forwarded caller contract.
    let env = unsafe { Env::from_raw(env) };
    match catch_panic(|| body(env)) {
        Ok(Ok(value)) => value.raw(),
        Ok(Err(error)) | Err(error) => {
            env.throw(&error);
            ptr::null_mut()
        }
    }
}

/// Runs a finalizer body. A panic here cannot be thrown (finalizers may run inside garbage
/// collection, where no JavaScript can run), so it is caught and reported on stderr instead of
/// unwinding into the runtime, which would abort the process.
pub(crate) fn guarded_finalizer(what: &str, body: impl FnOnce()) {
    if let Err(error) = catch_panic(body) {
        eprintln!("node-api: panic in the finalizer of {what}: {}", error.message());
    }
}

/// The C callback behind every function made by [`Env::function`]; `F` is the closure type.
pub(crate) unsafe extern "C" fn call_trampoline<F>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value
where
    F: Fn(&CallContext) -> JsResult<Value> + 'static,
{
    // SAFETY: env and info are the running callback's; data was set by Env::function to a
    // Box<F> that the function's finalizer frees only after the function itself is unreachable.
    unsafe {
        guarded(env, |env| {
            let (cx, data) = CallContext::new(env, info)?;
            let f = &*(data as *const F);
            f(&cx)
        })
    }
}

/// Frees a boxed `T` handed to the runtime as finalize data.
pub(crate) unsafe extern "C" fn drop_boxed_data<T>(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    guarded_finalizer(std::any::type_name::<T>(), || {
        // SAFETY: data came from Box::<T>::into_raw and the runtime calls each finalizer once.
        drop(unsafe { Box::from_raw(data as *mut T) });
    });
}

impl Env {
    /// Creates a JavaScript function backed by a Rust closure (or `fn`).
    ///
    /// The closure is freed when the function object is garbage-collected. Panics inside it become
    /// `NATIVE_PANIC` errors; `Err` values are thrown.
    ///
    /// ```ignore
    /// let double = env.function("double", |cx| cx.ret(cx.arg_as::<f64>(0)? * 2.0))?;
    /// ```
    pub fn function<F>(self, name: &str, f: F) -> JsResult<Value>
    where
        F: Fn(&CallContext) -> JsResult<Value> + 'static,
    {
        let data = Box::into_raw(Box::new(f));
        let mut raw = ptr::null_mut();
        // SAFETY: name pointer/length describe live UTF-8; the trampoline matches F; data stays
        // valid until the finalizer registered below (or the error path) frees it.
        let status = unsafe {
            sys::napi_create_function(self.raw(), name.as_ptr() as *const c_char, name.len(), Some(call_trampoline::<F>), data as *mut c_void, &mut raw)
        };
        if let Err(e) = self.check(status, "napi_create_function") {
            // SAFETY: the runtime did not take ownership; data is still our Box<F>.
            drop(unsafe { Box::from_raw(data) });
            return Err(e);
        }
        // SAFETY: raw is the function just created; its finalizer frees data exactly once. If this
        // fails the closure leaks, which is safe.
        let status = unsafe { sys::napi_add_finalizer(self.raw(), raw, data as *mut c_void, Some(drop_boxed_data::<F>), ptr::null_mut(), ptr::null_mut()) };
        self.check(status, "napi_add_finalizer")?;
        Ok(self.value(raw))
    }
}

impl Value {
    /// `value[name] = function` — the usual way to export a function.
    pub fn set_function<F>(self, name: &str, f: F) -> JsResult<()>
    where
        F: Fn(&CallContext) -> JsResult<Value> + 'static,
    {
        let function = self.env().function(name, f)?;
        self.set(name, function)
    }
}
