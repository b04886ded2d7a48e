//! The example plugins as built components (build.rs builds them).
