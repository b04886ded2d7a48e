//! The Trellis guest SDK.
