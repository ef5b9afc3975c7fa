//! The addon calls `napi_*` functions that the JavaScript runtime loading it provides. GNU ld
//! allows undefined symbols in a shared library by default; Apple's ld64 does not, so on macOS we
//! ask it to resolve them when the runtime loads the library.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
