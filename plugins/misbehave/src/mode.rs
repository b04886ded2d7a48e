//! The modes, by the name `data.mode` gives them.

use trellis_guest::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Loop,
    Memory,
    Recursion,
    Trap,
    Panic,
    HostCallFlood,
    SlowHostCall,
    HugeLog,
    InvalidWrite,
    StaticState,
    WasiEscape,
    Requeue,
    Error,
}

impl Mode {
    pub const ALL: [Mode; 14] = [
        Mode::Ok,
        Mode::Loop,
        Mode::Memory,
        Mode::Recursion,
        Mode::Trap,
        Mode::Panic,
        Mode::HostCallFlood,
        Mode::SlowHostCall,
        Mode::HugeLog,
        Mode::InvalidWrite,
        Mode::StaticState,
        Mode::WasiEscape,
        Mode::Requeue,
        Mode::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Ok => "ok",
            Mode::Loop => "loop",
            Mode::Memory => "memory",
            Mode::Recursion => "recursion",
            Mode::Trap => "trap",
            Mode::Panic => "panic",
            Mode::HostCallFlood => "host-call-flood",
            Mode::SlowHostCall => "slow-host-call",
            Mode::HugeLog => "huge-log",
            Mode::InvalidWrite => "invalid-write",
            Mode::StaticState => "static-state",
            Mode::WasiEscape => "wasi-escape",
            Mode::Requeue => "requeue",
            Mode::Error => "error",
        }
    }

    pub fn parse(name: &str) -> Result<Mode, Error> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Mode::ALL.iter().map(|m| m.name()).collect();
                Error::permanent(format!(
                    "data.mode: unknown mode {name:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_from_its_name() {
        for mode in Mode::ALL {
            assert_eq!(Mode::parse(mode.name()).unwrap(), mode);
        }
        let err = Mode::parse("explode").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("data.mode: unknown mode \"explode\" (known: ok, loop,"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
}
