//! Compiled components, cached on disk so a restart does not recompile every plugin.
//!
//! An entry's name is the SHA-256 of the engine's compatibility hash (wasmtime version, target,
//! compiler flags, tunables, wasm features) and of the component's bytes, so a changed plugin
//! or a changed engine configuration can never pick up a stale artifact. The file holds a
//! magic line, the SHA-256 of the artifact, then the artifact: wasmtime trusts what it
//! deserializes (it is native code), so a truncated or bit-flipped file is detected and
//! recompiled rather than mapped. The digest guards against corruption, not against an
//! attacker who can write the directory: that directory must be writable only by the host.
//!
//! Entries are written to a temporary name and renamed into place, so a concurrent reader sees
//! a whole entry or none. A cache that cannot be read or written is logged and bypassed: a
//! slower start is better than no start.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"trellis-cwasm-1\n";
const DIGEST_LEN: usize = 32;

/// Where an entry came from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Compiled now (no cache, a miss, or an unusable entry).
    Compiled,
    /// Deserialized from the cache directory.
    Cached,
}

/// The on-disk cache, or none.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
}

/// Feeds `Hash` output into SHA-256, so a `std::hash::Hash` value (the engine's compatibility
/// hash) can be part of a stable, collision-resistant key.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }
}

impl ArtifactCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The cache key of `bytes` compiled by `engine`, as hex.
    pub fn key(engine: &Engine, bytes: &[u8]) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        hasher.write(&Sha256::digest(bytes));
        hex(&hasher.0.finalize())
    }

    /// The path of the entry for `key`, when caching is on.
    pub fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.cwasm")))
    }

    /// Returns the compiled component, from the cache when it holds a good entry. Compilation
    /// errors are returned as they are (the caller names the plugin file).
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Source)> {
        let Some(path) = self.entry_path(&Self::key(engine, bytes)) else {
            return Ok((Component::from_binary(engine, bytes)?, Source::Compiled));
        };
        match read_entry(&path) {
            Ok(Some(artifact)) => {
                // SAFETY: the artifact was produced by `Engine::precompile_component` for an
                // engine with the same compatibility hash (it is in the file name), and its
                // digest matched, so these are the bytes we wrote. wasmtime additionally checks
                // the engine compatibility recorded inside the artifact.
                match unsafe { Component::deserialize(engine, &artifact) } {
                    Ok(component) => return Ok((component, Source::Cached)),
                    Err(error) => tracing::warn!(
                        path = %path.display(),
                        %error,
                        "cached component unusable; recompiling"
                    ),
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "cached component unreadable; recompiling"
            ),
        }
        let artifact = engine.precompile_component(bytes)?;
        // SAFETY: produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        if let Err(error) = write_entry(&path, &artifact) {
            tracing::warn!(
                path = %path.display(),
                %error,
                "could not cache the compiled component; the next start compiles it again"
            );
        }
        Ok((component, Source::Compiled))
    }
}

/// Reads an entry: `Ok(None)` when absent, an error when present but damaged.
fn read_entry(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let damaged =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let rest = data
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| damaged("not a trellis compiled-component entry"))?;
    if rest.len() < DIGEST_LEN {
        return Err(damaged("entry truncated before its digest"));
    }
    let (digest, artifact) = rest.split_at(DIGEST_LEN);
    if Sha256::digest(artifact).as_slice() != digest {
        return Err(damaged("entry digest mismatch (truncated or corrupted)"));
    }
    Ok(Some(artifact.to_vec()))
}

fn write_entry(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("entry paths are inside the cache dir");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(artifact))?;
        file.write_all(artifact)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.cwasm");
        assert!(read_entry(&path).unwrap().is_none());
        write_entry(&path, b"artifact bytes").unwrap();
        assert_eq!(read_entry(&path).unwrap().unwrap(), b"artifact bytes");

        let mut data = std::fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &data).unwrap();
        let err = read_entry(&path).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");

        std::fs::write(&path, &data[..MAGIC.len() + 4]).unwrap();
        assert!(
            read_entry(&path)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );

        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(
            read_entry(&path)
                .unwrap_err()
                .to_string()
                .contains("not a trellis")
        );
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        write_entry(&dir.path().join("a.cwasm"), b"x").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["a.cwasm".to_string()]);
    }

    #[test]
    fn the_key_depends_on_the_bytes_and_on_the_engine_config() {
        let a = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let b = Engine::new(&config).unwrap();
        let k = ArtifactCache::key(&a, b"one");
        assert_eq!(k, ArtifactCache::key(&a, b"one"));
        assert_eq!(k.len(), 64);
        assert_ne!(k, ArtifactCache::key(&a, b"two"));
        assert_ne!(k, ArtifactCache::key(&b, b"one"));
    }
}
