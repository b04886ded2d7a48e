//! Where the bytes of a guest component go: code size by crate, and the largest functions.
//!
//! ```sh
//! CARGO_PROFILE_GUEST_STRIP=false cargo build --target wasm32-wasip2 --profile guest -p <plugin>
//! cargo run -p trellis-plugin-bundle --example guest_sizes -- target/wasm32-wasip2/guest/<plugin>.wasm [filter]
//! ```
//!
//! Needs an unstripped build (function names come from the name section). Measures the
//! component's main core module: wasm32-wasip2 components also hold small adapter modules.
//! Functions are attributed to the first matching group below, by their demangled name, so a
//! generic instantiation counts where its most specific crate is (e.g. k8s-openapi's serde
//! impls under k8s_openapi, not serde). Results: docs/benchmarks/guest-sizes.md.

use std::collections::BTreeMap;
use std::process::ExitCode;

use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef};

const GROUPS: &[(&str, &[&str])] = &[
    ("k8s_openapi (its types' serde impls)", &["k8s_openapi"]),
    ("trellis_guest", &["trellis_guest"]),
    ("serde_json", &["serde_json"]),
    ("serde", &["serde::", "serde_core"]),
    ("jiff (timestamps)", &["jiff"]),
    ("wit_bindgen", &["wit_bindgen"]),
    ("allocator", &["dlmalloc", "dlfree", "dlrealloc"]),
    ("core::fmt", &["core::fmt", "alloc::fmt"]),
    ("std", &["std::"]),
    ("core/alloc", &["core::", "alloc::"]),
];

struct Function {
    size: usize,
    name: String,
}

fn group(name: &str) -> &'static str {
    GROUPS
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| name.contains(n)))
        .map(|(g, _)| *g)
        .unwrap_or(if name.is_empty() {
            "(unnamed: libc, wasi)"
        } else {
            "plugin and other"
        })
}

/// One core module of the component, as far as sizes go.
#[derive(Default)]
struct Module {
    bytes: u64,
    body_sizes: Vec<usize>,
    /// Imported functions come first in the function index space.
    imported_functions: u32,
    names: BTreeMap<u32, String>,
}

/// The functions of the largest core module in the component.
fn functions(wasm: &[u8]) -> Result<Vec<Function>, wasmparser::BinaryReaderError> {
    let mut largest = Module::default();
    let mut current: Option<Module> = None;
    let mut depth = 0usize;
    let mut module_depth = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                depth += 1;
                module_depth = Some(depth);
                current = Some(Module {
                    bytes: unchecked_range.end - unchecked_range.start,
                    ..Module::default()
                });
            }
            Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if module_depth == Some(depth) {
                    module_depth = None;
                    if let Some(done) = current.take()
                        && done.bytes > largest.bytes
                    {
                        largest = done;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Payload::ImportSection(reader) => {
                if let Some(m) = current.as_mut() {
                    for import in reader.into_imports() {
                        if matches!(import?.ty, TypeRef::Func(_)) {
                            m.imported_functions += 1;
                        }
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                if let Some(m) = current.as_mut() {
                    let range = body.range();
                    m.body_sizes.push((range.end - range.start) as usize);
                }
            }
            Payload::CustomSection(section) => {
                if let (Some(m), KnownCustom::Name(reader)) = (current.as_mut(), section.as_known())
                {
                    for name in reader {
                        if let Name::Function(map) = name? {
                            for naming in map {
                                let naming = naming?;
                                let name = format!("{:#}", rustc_demangle::demangle(naming.name));
                                m.names.insert(naming.index, name);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(largest
        .body_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| Function {
            size,
            name: largest
                .names
                .get(&(largest.imported_functions + i as u32))
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: guest_sizes <component.wasm> [function-name filter]");
        return ExitCode::FAILURE;
    };
    let filter = args.next().unwrap_or_default();
    let wasm = match std::fs::read(&path) {
        Ok(wasm) => wasm,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut functions = match functions(&wasm) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path} is not a valid component: {e}");
            return ExitCode::FAILURE;
        }
    };
    if functions.iter().all(|f| f.name.is_empty()) {
        eprintln!("{path} has no function names: build with CARGO_PROFILE_GUEST_STRIP=false");
        return ExitCode::FAILURE;
    }
    let total: usize = functions.iter().map(|f| f.size).sum();
    println!(
        "{path}: {} bytes; main module code {total} bytes in {} functions",
        wasm.len(),
        functions.len()
    );
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &functions {
        *groups.entry(group(&f.name)).or_default() += f.size;
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    for (name, size) in groups {
        println!(
            "{size:>9} {:>5.1}%  {name}",
            100.0 * size as f64 / total as f64
        );
    }
    functions.sort_by_key(|f| std::cmp::Reverse(f.size));
    println!(
        "largest functions{}:",
        if filter.is_empty() {
            String::new()
        } else {
            format!(" matching {filter:?}")
        }
    );
    for f in functions
        .iter()
        .filter(|f| f.name.contains(&filter))
        .take(15)
    {
        let name: String = f.name.chars().take(140).collect();
        println!("{:>9}  {name}", f.size);
    }
    ExitCode::SUCCESS
}
