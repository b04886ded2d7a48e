//! Structured log macros.
//!
//! `info!(namespace = ns, replicas = n, "scaled {}", name)`: optional `key = value` fields
//! first (values use `Display`), then a format string and its arguments, as in `tracing`. The
//! host writes the line to its own tracing output with the plugin, kind and key attached; in
//! native tests the harness records it. Logging never fails: past the plugin's log budget the
//! host drops lines and counts them.

/// Logs at an explicit [`Level`](crate::Level): `log!(Level::Info, key = v, "message")`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($key:ident = $value:expr,)* $message:literal $(, $arg:expr)* $(,)?) => {
        $crate::raw::log(
            $level,
            &::std::format!($message $(, $arg)*),
            &[$((
                ::std::string::String::from(::std::stringify!($key)),
                ::std::string::ToString::to_string(&$value),
            )),*],
        )
    };
}

/// Logs at trace level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! trace {
    ($($t:tt)+) => { $crate::log!($crate::Level::Trace, $($t)+) };
}

/// Logs at debug level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! debug {
    ($($t:tt)+) => { $crate::log!($crate::Level::Debug, $($t)+) };
}

/// Logs at info level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! info {
    ($($t:tt)+) => { $crate::log!($crate::Level::Info, $($t)+) };
}

/// Logs at warn level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! warn {
    ($($t:tt)+) => { $crate::log!($crate::Level::Warn, $($t)+) };
}

/// Logs at error level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! error {
    ($($t:tt)+) => { $crate::log!($crate::Level::Error, $($t)+) };
}
