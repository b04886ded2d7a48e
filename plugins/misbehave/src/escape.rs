//! `wasi-escape`: tries what a sandboxed plugin must not be able to do, and reports each
//! attempt.

use std::io::Read;
use std::net::{TcpStream, UdpSocket};

use trellis_guest::{Action, Error};

use crate::params::Params;

/// What one attempt got: `Err` (denied) with the error, or `Ok` (allowed) with what it saw.
fn attempt(name: &str, outcome: Result<String, String>, allowed: &mut Vec<String>) {
    match outcome {
        Ok(seen) => {
            trellis_guest::warn!(
                attempt = name,
                outcome = "allowed",
                detail = seen,
                "wasi-escape"
            );
            allowed.push(format!("{name} ({seen})"));
        }
        Err(error) => trellis_guest::info!(
            attempt = name,
            outcome = "denied",
            detail = error,
            "wasi-escape"
        ),
    }
}

/// Tries, in order: `file-read` (open and read `path`, default `/etc/passwd`), `file-write`
/// (create `write-path`, default `/tmp/trellis-escape`), `dir-list` (list `/`), `env` (any
/// environment variable), `args` (any argument, program name included), `tcp-connect`
/// (`address`, default `127.0.0.1:80`), `udp-bind` (`0.0.0.0:0`). Each attempt is logged with
/// `attempt`, `outcome` (`denied`/`allowed`) and `detail` fields. `done` when every attempt was
/// denied; otherwise a permanent error listing what was allowed.
pub fn wasi_escape(params: &Params) -> Result<Action, Error> {
    let path = params.text_or("path", "/etc/passwd")?;
    let write_path = params.text_or("write-path", "/tmp/trellis-escape")?;
    let address = params.text_or("address", "127.0.0.1:80")?;
    let mut allowed = Vec::new();

    let read = std::fs::File::open(path).and_then(|mut f| {
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map(|n| format!("read {n} bytes of {path}"))
    });
    attempt("file-read", read.map_err(|e| e.to_string()), &mut allowed);

    let write = std::fs::File::create(write_path).map(|_| format!("created {write_path}"));
    attempt("file-write", write.map_err(|e| e.to_string()), &mut allowed);

    let list = std::fs::read_dir("/").map(|entries| format!("{} entries in /", entries.count()));
    attempt("dir-list", list.map_err(|e| e.to_string()), &mut allowed);

    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let env = if vars.is_empty() {
        Err("no variables".to_owned())
    } else {
        Ok(format!("variables {}", vars.join(",")))
    };
    attempt("env", env, &mut allowed);

    let args: Vec<String> = std::env::args().collect();
    let args = if args.is_empty() {
        Err("no arguments".to_owned())
    } else {
        Ok(format!("arguments {args:?}"))
    };
    attempt("args", args, &mut allowed);

    let tcp = TcpStream::connect(address).map(|_| format!("connected to {address}"));
    attempt("tcp-connect", tcp.map_err(|e| e.to_string()), &mut allowed);

    let udp = UdpSocket::bind("0.0.0.0:0").map(|s| format!("bound {:?}", s.local_addr().ok()));
    attempt("udp-bind", udp.map_err(|e| e.to_string()), &mut allowed);

    if allowed.is_empty() {
        Ok(Action::done())
    } else {
        Err(Error::permanent(format!(
            "wasi-escape: allowed: {}",
            allowed.join("; ")
        )))
    }
}
