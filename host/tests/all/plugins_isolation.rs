//! Where the plugin suites run their plugins: each in a runner process of its own, as the
//! daemon does by default, or in the test's own process when `PORTHOLE_TEST_PLUGINS` is
//! `in-process` (`cargo xtask test` runs the suites both ways).

use porthole::plugins::RuntimeOptions;
use porthole::plugins::isolation::{Isolation, RunnerCommand};

/// `options`, with the isolation this run of the suite asks for.
pub fn isolated(options: RuntimeOptions) -> RuntimeOptions {
    let isolation = match std::env::var("PORTHOLE_TEST_PLUGINS").as_deref() {
        Ok("in-process") => Isolation::InProcess,
        _ => Isolation::Process(runner_command()),
    };
    RuntimeOptions {
        isolation,
        ..options
    }
}

/// The daemon's binary, as a plugin runner.
pub fn runner_command() -> RunnerCommand {
    RunnerCommand {
        program: env!("CARGO_BIN_EXE_porthole").into(),
        args: vec!["plugin-runner".into()],
    }
}
