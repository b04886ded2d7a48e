//! Host-side bindings of the `trellis:plugin/plugin` world, generated from `wit/` at build time.
//!
//! Imports are async so a host call can wait on the cache or the API server without holding a
//! runtime thread; the export is async so the call runs on a fiber that yields on every epoch
//! tick. Only the sandbox sees the generated module names; the rest of the host uses the
//! re-exports in [`super`].

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [PartialEq, Eq, Hash],
});
