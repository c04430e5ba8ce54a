//! A small stderr logger; the level comes from `KEYGATE_LOG` (default `info`).

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        // Only this crate logs; the libraries' own chatter stays out.
        m.target().starts_with("keygate_ratelimit")
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                Level::Error => "error",
                Level::Warn => "warn",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            eprintln!("keygate-ratelimit {level}: {}", r.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger.
///
/// # Errors
/// A message naming `KEYGATE_LOG` when it holds an unknown level.
pub fn init() -> Result<(), String> {
    let level = match std::env::var("KEYGATE_LOG").as_deref() {
        Err(_) | Ok("") | Ok("info") => LevelFilter::Info,
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        Ok("off") => LevelFilter::Off,
        Ok(other) => {
            return Err(format!(
                "KEYGATE_LOG={other:?}: expected error, warn, info, debug or off"
            ))
        }
    };
    log::set_logger(&LOGGER).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}
