//! JavaScript classes whose instances own a Rust value (`napi_define_class` + `napi_wrap`).
//!
//! Each instance owns one `T`, dropped by its finalizer when the object is garbage-collected.
//! Methods and getters receive `&mut T`. Calls are checked: a method called on an object that is
//! not an instance of this class is a `TypeError` (`NATIVE_INVALID_ARGUMENT`), and re-entering a
//! method of the same object while an earlier call holds `&mut T` (possible only if the method
//! calls back into JavaScript) is an `Error` with code `NATIVE_BORROWED`, never aliasing.
//!
//! How "an instance of this class" is decided: every instance is type-tagged
//! (`napi_type_tag_object`, Node-API 8) with a tag unique to `T` and to this copy of the library,
//! and a call first asks the runtime whether `this` carries that tag
//! (`napi_check_object_type_tag`). Only then is the pointer from `napi_unwrap` used. `napi_unwrap`
//! alone proves nothing: it returns whatever pointer any addon in the process wrapped the object
//! with, so reading through it before the tag check would read another library's memory.
//!
//! ```ignore
//! struct Counter { n: i64 }
//! let ctor = env
//!     .class("Counter", |cx| Ok(Counter { n: cx.arg_as::<Option<i64>>(0)?.unwrap_or(0) }))
//!     .method("increment", |c: &mut Counter, cx| { c.n += 1; cx.ret(c.n) })
//!     .getter("value", |c: &mut Counter, cx| cx.ret(c.n))
//!     .static_method("zero", |cx| cx.env().new_instance(Counter { n: 0 }))
//!     .build()?;
//! exports.set("Counter", ctor)?;
//! // later, from any callback on the same thread:
//! let obj = env.new_instance(Counter { n: 5 })?;
//! ```
//!
//! One class per Rust type and thread: [`Env::new_instance`] finds the constructor by `T`.
//! The method closures live as long as the thread's environment (a few per class).

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Mutex;

use crate::error::{codes, JsError, JsResult};
use crate::function::{call_trampoline, guarded, guarded_finalizer, CallContext};
use crate::sys;
use crate::value::{Env, Value, ValueType};

type Constructor<T> = Box<dyn Fn(&CallContext) -> JsResult<T>>;
type Method<T> = Box<dyn Fn(&mut T, &CallContext) -> JsResult<Value>>;

/// What every object of a class built for `T` is wrapped with.
struct Wrapper<T> {
    borrowed: Cell<bool>,
    value: UnsafeCell<T>,
}

struct ClassData<T> {
    name: String,
    tag: sys::napi_type_tag,
    constructor: Constructor<T>,
}

struct MethodData<T> {
    class_name: String,
    tag: sys::napi_type_tag,
    f: Method<T>,
}

/// The type tag of objects wrapping a `T`: unique per Rust type and per copy of this library in
/// the process.
///
/// `upper` names this copy of the library: a constant mixed with the address of a static it owns,
/// so two copies (two builds, or one file loaded twice under different names) never share a tag,
/// although their `TypeId`s may coincide. `lower` numbers the types in the order their tags were
/// first asked for, so two types of this library never share one either.
fn type_tag<T: 'static>() -> sys::napi_type_tag {
    static ANCHOR: u8 = 0;
    static TYPES: Mutex<Vec<TypeId>> = Mutex::new(Vec::new());
    let id = TypeId::of::<T>();
    let mut types = TYPES.lock().unwrap_or_else(|e| e.into_inner());
    let index = match types.iter().position(|t| *t == id) {
        Some(index) => index,
        None => {
            types.push(id);
            types.len() - 1
        }
    };
    sys::napi_type_tag { lower: index as u64 + 1, upper: 0x7269_6e67_7374_6174 ^ (&ANCHOR as *const u8 as usize as u64) }
}

thread_local! {
    /// Constructors by Rust type, for `new_instance`. Node, Bun and Deno run one environment per
    /// JavaScript thread (main or Worker), so per-thread is per-environment.
    static CONSTRUCTORS: RefCell<HashMap<TypeId, sys::napi_ref>> = RefCell::new(HashMap::new());
    /// A value `new_instance` hands to the constructor callback instead of calling the user's
    /// constructor. Set and consumed within one synchronous `napi_new_instance`.
    static PENDING: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Builds a class; see the module docs. Created by [`Env::class`].
pub struct ClassBuilder<T: 'static> {
    env: Env,
    name: String,
    constructor: Constructor<T>,
    methods: Vec<(String, Method<T>)>,
    getters: Vec<(String, Method<T>)>,
    /// Static methods: (name, trampoline, leaked closure).
    statics: Vec<(String, sys::napi_callback, *mut c_void)>,
}

impl Env {
    /// Starts a class named `name` whose `new` runs `constructor` to make the wrapped `T`.
    pub fn class<T: 'static>(self, name: &str, constructor: impl Fn(&CallContext) -> JsResult<T> + 'static) -> ClassBuilder<T> {
        ClassBuilder { env: self, name: name.to_owned(), constructor: Box::new(constructor), methods: Vec::new(), getters: Vec::new(), statics: Vec::new() }
    }

    /// A new instance of the class registered for `T` on this thread, wrapping `value` (the
    /// class's JavaScript-facing constructor closure is not run). Errors if no class was built for `T`.
    pub fn new_instance<T: 'static>(self, value: T) -> JsResult<Value> {
        let reference = CONSTRUCTORS.with(|c| c.borrow().get(&TypeId::of::<T>()).copied());
        let Some(reference) = reference else {
            return Err(JsError::new(codes::NATIVE_CALL_FAILED, format!("no class registered for {}", std::any::type_name::<T>())));
        };
        // SAFETY: the reference was created on this thread's env with refcount 1 and never deleted.
        let constructor = self.make("napi_get_reference_value", |out| unsafe { sys::napi_get_reference_value(self.raw(), reference, out) })?;
        PENDING.with(|p| *p.borrow_mut() = Some(Box::new(value)));
        // SAFETY: constructor is a live function handle; no arguments.
        let result = self.make("napi_new_instance", |out| unsafe { sys::napi_new_instance(self.raw(), constructor.raw(), 0, ptr::null(), out) });
        // Normally consumed by the constructor; cleared here if construction failed before that.
        PENDING.with(|p| p.borrow_mut().take());
        result
    }
}

impl<T: 'static> ClassBuilder<T> {
    /// Adds a prototype method.
    pub fn method(mut self, name: &str, f: impl Fn(&mut T, &CallContext) -> JsResult<Value> + 'static) -> Self {
        self.methods.push((name.to_owned(), Box::new(f)));
        self
    }
    /// Adds a read-only accessor on the prototype.
    pub fn getter(mut self, name: &str, f: impl Fn(&mut T, &CallContext) -> JsResult<Value> + 'static) -> Self {
        self.getters.push((name.to_owned(), Box::new(f)));
        self
    }

    /// Adds a static method (`Class.name(...)`); it has no wrapped `this`.
    pub fn static_method<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&CallContext) -> JsResult<Value> + 'static,
    {
        // Leaked like the other method data: it lives as long as the class.
        let data = Box::into_raw(Box::new(f)) as *mut c_void;
        self.statics.push((name.to_owned(), Some(call_trampoline::<F>), data));
        self
    }

    /// Defines the class and returns its constructor function.
    pub fn build(self) -> JsResult<Value> {
        let env = self.env;
        let class_name = self.name.clone();
        let tag = type_tag::<T>();
        let mut descriptors = Vec::with_capacity(self.methods.len() + self.getters.len());
        let entries = self.methods.into_iter().map(|m| (m, true)).chain(self.getters.into_iter().map(|g| (g, false)));
        for ((name, f), is_method) in entries {
            let key = env.string(&name)?;
            // Leaked on purpose: the prototype may outlive any object we could hang a finalizer
            // on, and there are a handful per class per thread.
            let data = Box::into_raw(Box::new(MethodData { class_name: class_name.clone(), tag, f })) as *mut c_void;
            let (method, getter, attributes) = if is_method {
                (Some(method_trampoline::<T> as _), None, sys::attributes::WRITABLE | sys::attributes::CONFIGURABLE)
            } else {
                (None, Some(method_trampoline::<T> as _), sys::attributes::CONFIGURABLE)
            };
            descriptors.push(sys::napi_property_descriptor {
                utf8name: ptr::null(),
                name: key.raw(),
                method,
                getter,
                setter: None,
                value: ptr::null_mut(),
                attributes,
                data,
            });
        }
        for (name, callback, data) in self.statics {
            descriptors.push(sys::napi_property_descriptor {
                utf8name: ptr::null(),
                name: env.string(&name)?.raw(),
                method: callback,
                getter: None,
                setter: None,
                value: ptr::null_mut(),
                attributes: sys::attributes::WRITABLE | sys::attributes::CONFIGURABLE | sys::attributes::STATIC,
                data,
            });
        }
        // Leaked for the same reason as the method data.
        let data = Box::into_raw(Box::new(ClassData { name: self.name, tag, constructor: self.constructor }));
        // SAFETY: data and descriptors are valid for the call; names are napi string values; the
        // name pointer/length describe live UTF-8.
        let constructor = env.make("napi_define_class", |out| unsafe {
            let name = &(*data).name;
            sys::napi_define_class(
                env.raw(),
                name.as_ptr() as *const c_char,
                name.len(),
                Some(construct_trampoline::<T>),
                data as *mut c_void,
                descriptors.len(),
                descriptors.as_ptr(),
                out,
            )
        })?;
        let mut reference = ptr::null_mut();
        // SAFETY: constructor is live; refcount 1 keeps it alive for the life of the env.
        let status = unsafe { sys::napi_create_reference(env.raw(), constructor.raw(), 1, &mut reference) };
        env.check(status, "napi_create_reference")?;
        CONSTRUCTORS.with(|c| c.borrow_mut().insert(TypeId::of::<T>(), reference));
        Ok(constructor)
    }
}

unsafe extern "C" fn construct_trampoline<T: 'static>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: env/info are the running callback's; data is the leaked ClassData<T> of this class.
    unsafe {
        guarded(env, |env| {
            let (cx, data) = CallContext::new(env, info)?;
            let class = &*(data as *const ClassData<T>);
            let mut new_target = ptr::null_mut();
            let status = sys::napi_get_new_target(env.raw(), info, &mut new_target);
            env.check(status, "napi_get_new_target")?;
            // Deno reports a non-NULL handle to `undefined` for plain calls, so check the value too.
            if new_target.is_null() || env.value(new_target).value_type()? == ValueType::Undefined {
                return Err(JsError::type_error(codes::NATIVE_INVALID_ARGUMENT, format!("class constructor {} cannot be invoked without 'new'", class.name)));
            }
            let pending = PENDING.with(|p| p.borrow_mut().take());
            let value = match pending.map(|b| b.downcast::<T>()) {
                Some(Ok(v)) => *v,
                Some(Err(_)) => return Err(JsError::new(codes::NATIVE_CALL_FAILED, "new_instance value of the wrong type")),
                None => (class.constructor)(&cx)?,
            };
            wrap(env, cx.this(), value, &class.tag)?;
            Ok(cx.this())
        })
    }
}

fn wrap<T: 'static>(env: Env, object: Value, value: T, tag: &sys::napi_type_tag) -> JsResult<()> {
    let boxed = Box::into_raw(Box::new(Wrapper { borrowed: Cell::new(false), value: UnsafeCell::new(value) }));
    // SAFETY: object is the fresh `this`; boxed is freed exactly once by finalize_wrapper.
    let status = unsafe { sys::napi_wrap(env.raw(), object.raw(), boxed as *mut c_void, Some(finalize_wrapper::<T>), ptr::null_mut(), ptr::null_mut()) };
    if let Err(e) = env.check(status, "napi_wrap") {
        // SAFETY: wrapping failed, the runtime does not own boxed.
        drop(unsafe { Box::from_raw(boxed) });
        return Err(e);
    }
    // Tagged only once wrapped, so a tagged object always has a Wrapper<T>. Should tagging fail,
    // the object stays wrapped (the finalizer frees the Wrapper) but every method refuses it.
    // SAFETY: live handles; the runtime copies the 16 bytes of the tag.
    let status = unsafe { sys::napi_type_tag_object(env.raw(), object.raw(), tag) };
    env.check(status, "napi_type_tag_object")
}

unsafe extern "C" fn finalize_wrapper<T: 'static>(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    guarded_finalizer(std::any::type_name::<T>(), || {
        // SAFETY: data is the Box<Wrapper<T>> from wrap(); the runtime finalizes each wrap once,
        // after the object is unreachable, so no method holds a borrow.
        drop(unsafe { Box::from_raw(data as *mut Wrapper<T>) });
    });
}

unsafe extern "C" fn method_trampoline<T: 'static>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: env/info are the running callback's; data is the leaked MethodData<T>.
    unsafe {
        guarded(env, |env| {
            let (cx, data) = CallContext::new(env, info)?;
            let method = &*(data as *const MethodData<T>);
            with_wrapped::<T, _>(cx.this(), &method.tag, &method.class_name, |value| (method.f)(value, &cx))?
        })
    }
}

/// Resets the borrow flag even when the method panics.
struct BorrowGuard<'a>(&'a Cell<bool>);
impl Drop for BorrowGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

fn with_wrapped<T: 'static, R>(object: Value, tag: &sys::napi_type_tag, class_name: &str, f: impl FnOnce(&mut T) -> R) -> JsResult<R> {
    let env = object.env();
    let refuse = || {
        if env.is_exception_pending() {
            return JsError::pending();
        }
        JsError::type_error(codes::NATIVE_INVALID_ARGUMENT, format!("expected a {class_name} instance"))
    };
    let mut tagged = false;
    // SAFETY: live handles; valid out-pointer. A non-object fails with a status, an object without
    // this exact tag (a plain object, another class's instance, another addon's wrap) gives false.
    let status = unsafe { sys::napi_check_object_type_tag(env.raw(), object.raw(), tag, &mut tagged) };
    if status != sys::status::OK || !tagged {
        return Err(refuse());
    }
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: live handles; valid out-pointer.
    let status = unsafe { sys::napi_unwrap(env.raw(), object.raw(), &mut data) };
    if status != sys::status::OK || data.is_null() {
        return Err(refuse());
    }
    // SAFETY: only wrap() gives out this tag, and only to an object it has wrapped with a
    // Box<Wrapper<T>> (the tag is unique to T and to this library); an object is wrapped at most
    // once, so the pointer napi_unwrap returns is that Wrapper<T>, kept alive by `object`.
    let wrapper = unsafe { &*(data as *const Wrapper<T>) };
    if wrapper.borrowed.replace(true) {
        return Err(JsError::new(codes::NATIVE_BORROWED, format!("{class_name} method re-entered while a call on the same object is running")));
    }
    let _guard = BorrowGuard(&wrapper.borrowed);
    // SAFETY: the borrow flag guarantees this is the only &mut T alive.
    Ok(f(unsafe { &mut *wrapper.value.get() }))
}

impl Value {
    /// Runs `f` with `&mut T` wrapped by this object, e.g. for a wrapped object passed as an
    /// argument. `TypeError` if it is not an instance of `T`'s class.
    pub fn with_wrapped<T: 'static, R>(self, f: impl FnOnce(&mut T) -> R) -> JsResult<R> {
        let type_name = std::any::type_name::<T>();
        with_wrapped::<T, R>(self, &type_tag::<T>(), type_name.rsplit("::").next().unwrap_or(type_name), f)
    }
}

#[cfg(test)]
mod tests {
    use super::type_tag;

    struct A;
    struct B;

    #[test]
    fn each_type_has_its_own_tag_and_keeps_it() {
        let (a, b) = (type_tag::<A>(), type_tag::<B>());
        assert_ne!(a, b);
        assert_eq!(a, type_tag::<A>());
        assert_eq!(a.upper, b.upper, "one copy of the library, one upper word");
        assert_ne!(a.lower, 0);
    }
}
