//! Hostile on cue: misbehaves in the way the render context's hostname names, and renders like a
//! well-behaved template otherwise, so one plugin can fail, recover and fail again in one test.
//!
//! - `trap`: panics, which ends in a wasm trap.
//! - `slow-<ms>`: computes for that many milliseconds, then renders.
//! - `hog`: hands the host one log message of 9 MiB, past the data one host call may carry.
//! - `shout`: prints 32 MiB to stdout as one line with no newline, then renders.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use std::io::Write as _;
use std::time::{Duration, Instant};

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};
use porthole::plugin::host::{LogLevel, log};

struct Plugin;

impl Guest for Plugin {
    fn render(context: RenderContext) -> Result<Rendered, PluginError> {
        let cue = context.hostname.as_str();
        if cue == "trap" {
            panic!("trapping on cue");
        } else if let Some(ms) = cue.strip_prefix("slow-") {
            let until = Instant::now() + Duration::from_millis(ms.parse().unwrap_or(1_000));
            let mut counter = 0u64;
            while Instant::now() < until {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        } else if cue == "hog" {
            log(LogLevel::Info, &"h".repeat(9 << 20));
        } else if cue == "shout" {
            let chunk = "a".repeat(1 << 20);
            let mut stdout = std::io::stdout();
            for _ in 0..32 {
                let _ = stdout.write_all(chunk.as_bytes());
            }
            let _ = stdout.flush();
        }
        Ok(Rendered {
            user_data: format!("#cloud-config\nhostname: {cue}\n"),
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
