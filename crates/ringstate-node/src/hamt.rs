//! `HamtMap`: one immutable version of `crates/hamt` per JavaScript object, values as bytes.
//!
//! Thin on purpose: strings and byte arrays in, byte arrays out. Bulk work crosses in one call:
//! a transaction's writes arrive as one change buffer (`withChanges`, format documented on
//! `hamt::HamtMap::apply_changes`), and a whole version leaves as one buffer (`toBytes`, handed
//! over as an external ArrayBuffer, no copy). `ts/native/addon.ts` types these exports as
//! `NativeHamtMap`; `ts/cache/native-backend.ts` uses them.

use std::sync::Arc;

use hamt::HamtMap;
use node_api::{codes, CallContext, Env, JsError, JsResult, TypedArray, Value};

/// The wrapped value: one version, sharing nodes with the versions it was derived from.
struct Version(HamtMap<Arc<[u8]>>);

fn corrupt(error: hamt::DecodeError) -> JsError {
    JsError::new("SNAPSHOT_CORRUPT", format!("native HAMT: {error}"))
}

/// Adds the `HamtMap` class and `hamtFromBytes` to the exports.
pub fn register(env: Env, exports: Value) -> JsResult<()> {
    let class = env
        .class("HamtMap", |_cx: &CallContext| Ok(Version(HamtMap::new())))
        .method("get", |v: &mut Version, cx| {
            let key: String = cx.arg_as(0)?;
            match v.0.get(key.as_bytes()) {
                Some(value) => cx.ret(&value[..]),
                None => cx.ret(()),
            }
        })
        .method("has", |v: &mut Version, cx| {
            let key: String = cx.arg_as(0)?;
            cx.ret(v.0.contains_key(key.as_bytes()))
        })
        .method("withChanges", |v: &mut Version, cx| {
            let changes: TypedArray<u8> = cx.arg_as(0)?;
            let mut next = v.0.clone();
            next.apply_changes(changes.as_slice())
                .map_err(|e| JsError::new(codes::NATIVE_INVALID_ARGUMENT, format!("malformed change buffer: {e}")))?;
            cx.env().new_instance(Version(next))
        })
        .method("toBytes", |v: &mut Version, cx| cx.env().external_arraybuffer(v.0.to_bytes()))
        .getter("size", |v: &mut Version, cx| cx.ret(v.0.len()))
        .build()?;
    exports.set("HamtMap", class)?;
    exports.set_function("hamtFromBytes", |cx| {
        let bytes: TypedArray<u8> = cx.arg_as(0)?;
        let map = HamtMap::from_bytes(bytes.as_slice()).map_err(corrupt)?;
        cx.env().new_instance(Version(map))
    })
}
