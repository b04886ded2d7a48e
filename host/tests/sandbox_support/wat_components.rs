//! Hand-written components (WebAssembly text) for what the real plugins cannot be: components
//! of another world, with foreign imports, or that overflow the stack for certain (a Rust
//! guest's recursion may be turned into a loop by the optimizer).
//!
//! [`reconcile_component`] builds a minimal component with the contract's exact `reconcile`
//! signature: a core module with a bump allocator (the host lowers the request's strings
//! through `realloc`) whose `reconcile` runs `body` and then returns `done`.

#![allow(dead_code)] // each test binary uses a different part of it

/// The contract's types, exported under their WIT names: the component model requires the
/// types of an exported function's signature to be named.
const CONTRACT_TYPES: &str = r#"
  (type $gvk (record (field "group" string) (field "version" string) (field "kind" string)))
  (export $gvk-e "gvk" (type $gvk))
  (type $key (record (field "namespace" (option string)) (field "name" string)))
  (export $key-e "object-key" (type $key))
  (type $req (record (field "kind" $gvk-e) (field "key" $key-e) (field "object" (option string))))
  (export $req-e "reconcile-request" (type $req))
  (type $err (record (field "message" string) (field "retryable" bool)))
  (export $err-e "reconcile-error" (type $err))
  (type $action (variant (case "done") (case "requeue-after" u64) (case "error" $err-e)))
  (export $action-e "action" (type $action))
"#;

/// A component exporting `reconcile` with the contract's signature. `imports` are component
/// imports placed first; `body` is core wasm run at the start of `reconcile` (it may call
/// `$recurse`, an infinite non-tail recursion).
pub fn reconcile_component(imports: &str, body: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  {imports}
  (core module $m
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      ;; align up to 8, then bump
      (local.set $at (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
      (global.set $bump (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func $recurse (param i32) (result i32)
      (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (local.get 0)))
    (func (export "reconcile")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      {body}
      ;; the result area at 16: discriminant 0, `done`
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.const 16)))
  (core instance $i (instantiate $m))
  {CONTRACT_TYPES}
  (func $reconcile (param "request" $req-e) (result $action-e)
    (canon lift (core func $i "reconcile") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (export "reconcile" (func $reconcile))
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("fixture does not assemble: {e}\n{text}"))
}

/// A component whose `reconcile` recurses until the wasm stack cap stops it.
pub fn stack_overflow() -> Vec<u8> {
    reconcile_component("", "(drop (call $recurse (i32.const 0)))")
}

/// A well-formed component of the right world that does nothing.
pub fn noop() -> Vec<u8> {
    reconcile_component("", "")
}

/// A component of another world: it exports `run: func()` and no `reconcile`.
pub fn other_world() -> Vec<u8> {
    wat::parse_str(
        r#"(component
  (core module $m (func (export "run")))
  (core instance $i (instantiate $m))
  (func $run (canon lift (core func $i "run")))
  (export "run" (func $run)))"#,
    )
    .unwrap()
}

/// A component exporting `reconcile` with the wrong signature (`func()`).
pub fn wrong_reconcile_type() -> Vec<u8> {
    wat::parse_str(
        r#"(component
  (core module $m (func (export "reconcile")))
  (core instance $i (instantiate $m))
  (func $r (canon lift (core func $i "reconcile")))
  (export "reconcile" (func $r)))"#,
    )
    .unwrap()
}

/// The right world plus one import the host does not provide.
pub fn with_import(import: &str) -> Vec<u8> {
    reconcile_component(import, "")
}

/// A core module (not a component).
pub fn core_module() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "reconcile")))"#).unwrap()
}
