//! Command-line flags. Anything wrong is refused with a message naming the flag (exit 2).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run.
pub const USAGE: &str = "\
usage: keygate-ratelimit --listen ADDR:PORT (--redis redis://HOST:PORT[/DB] | --memory) [--limits FILE]

Envoy's rate-limit service (RLS v3, gRPC) deciding with keygate's GCRA.
  --listen ADDR:PORT  where to serve gRPC, e.g. 127.0.0.1:8089
  --redis URL         keep descriptor state in Redis, shared by every replica
  --memory            keep descriptor state in this process (one node only)
  --limits FILE       JSON limits for descriptors sent without a `limit` override
Log level: KEYGATE_LOG=error|warn|info|debug (default info; descriptor values only at debug).";

/// Where descriptor state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `--redis URL`.
    Redis(String),
    /// `--memory`.
    Memory,
}

/// The parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--redis` or `--memory`.
    pub backend: Backend,
    /// `--limits`.
    pub limits: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve.
    Run(Args),
    /// `--help`.
    Help,
}

/// Parses the flags (without the program name). `--flag value` and `--flag=value` both work.
///
/// # Errors
/// A message naming the flag that is missing, repeated, unknown or bad.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut listen = None;
    let mut redis = None;
    let mut memory = false;
    let mut limits = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => {
                let v = value("--listen")?;
                let addr = v.parse::<SocketAddr>().map_err(|_| {
                    format!("--listen {v:?}: expected an IP address and port like 127.0.0.1:8089")
                })?;
                set_once(&mut listen, addr, "--listen")?;
            }
            "--redis" => {
                let v = value("--redis")?;
                if !v.starts_with("redis://") {
                    return Err(format!(
                        "--redis {v:?}: expected a URL like redis://127.0.0.1:6379"
                    ));
                }
                set_once(&mut redis, v, "--redis")?;
            }
            "--memory" => {
                if inline.is_some() {
                    return Err("--memory takes no value".to_owned());
                }
                if memory {
                    return Err("--memory given twice".to_owned());
                }
                memory = true;
            }
            "--limits" => {
                let v = value("--limits")?;
                if v.is_empty() {
                    return Err("--limits needs a file name".to_owned());
                }
                set_once(&mut limits, PathBuf::from(v), "--limits")?;
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required (e.g. --listen 127.0.0.1:8089)")?;
    let backend = match (redis, memory) {
        (Some(url), false) => Backend::Redis(url),
        (None, true) => Backend::Memory,
        (Some(_), true) => return Err("give either --redis or --memory, not both".to_owned()),
        (None, false) => {
            return Err("one of --redis URL or --memory is required".to_owned());
        }
    };
    Ok(Command::Run(Args {
        listen,
        backend,
        limits,
    }))
}

fn set_once<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{name} given twice"));
    }
    *slot = Some(v);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_ok() {
        let Command::Run(a) = p(&[
            "--listen",
            "127.0.0.1:8089",
            "--redis",
            "redis://127.0.0.1:6379",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.listen.port(), 8089);
        assert_eq!(a.backend, Backend::Redis("redis://127.0.0.1:6379".into()));
        assert_eq!(a.limits, None);
        let Command::Run(a) = p(&["--memory", "--listen=[::1]:9", "--limits", "l.json"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.backend, Backend::Memory);
        assert_eq!(a.limits.unwrap(), PathBuf::from("l.json"));
        assert_eq!(p(&["--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn bad_flags_fail() {
        for (args, names) in [
            (&[][..], "--listen"),
            (&["--memory"][..], "--listen"),
            (&["--listen", "127.0.0.1:1"][..], "--redis"),
            (&["--listen", "localhost"][..], "--listen"),
            (&["--listen"][..], "--listen"),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--memory",
                    "--redis",
                    "redis://x",
                ][..],
                "--redis",
            ),
            (
                &["--listen", "127.0.0.1:1", "--redis", "http://x"][..],
                "--redis",
            ),
            (
                &["--listen", "127.0.0.1:1", "--memory", "--memory"][..],
                "--memory",
            ),
            (
                &["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"][..],
                "--listen",
            ),
            (
                &["--listen", "127.0.0.1:1", "--memory", "--limit", "x"][..],
                "--limit",
            ),
            (&["--listen", "127.0.0.1:1", "--memory=1"][..], "--memory"),
            (
                &["--listen", "127.0.0.1:1", "--memory", "--limits="][..],
                "--limits",
            ),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.contains(names), "{args:?}: {e}");
        }
    }
}
