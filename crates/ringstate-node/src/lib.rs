//! The ringstate Node-API addon (`ringstate.<platform>-<arch>[-<libc>].node`): a thin binding of
//! the pure-Rust crates to JavaScript. It only converts values and maps errors; the behaviour lives
//! in crates/ring and crates/hamt, and the node-api crate supplies the boundary rules.
//!
//! Adding a binding file (e.g. `ring.rs`) is a two-line change here: declare it next to the
//! others (`mod ring;`) and call its `register` in [`init`] (`ring::register(env, exports)?;`).
//! The file defines `pub fn register(env: Env, exports: Value) -> JsResult<()>`, which sets its
//! exports (functions, classes) on `exports`; then describe them in ts/native/addon.ts.

use node_api::{Env, JsResult, Value};

/// Test-only probes; built only with `--features test-exports` (scripts/build-native.mjs
/// `--test-exports`), never into the addon that is published.
#[cfg(feature = "test-exports")]
mod diagnostics;
mod ring;
mod hamt;

fn init(env: Env, exports: Value) -> JsResult<()> {
    exports.set_function("version", |cx| cx.ret(env!("CARGO_PKG_VERSION")))?;
    #[cfg(feature = "test-exports")]
    diagnostics::register(env, exports)?;
    ring::register(env, exports)?;
    hamt::register(env, exports)?;
    Ok(())
}

node_api::module!(init);
