//! What plugin authors run: the contract (`plugin wit`), one call in the daemon's sandbox
//! (`plugin call`) and declarative tests (`plugin test`).

pub mod contract;
pub mod scaffold;
pub mod spec_test;
pub mod workbench;

use workbench::CallReport;

/// A call's report as a person reads it: the result, the plugin's log, then every request.
pub fn render_report(report: &CallReport) -> String {
    let mut out = String::new();
    match &report.result {
        Ok(value) => {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            out.push_str(&format!("result: {pretty}\n"));
        }
        Err(failure) => out.push_str(&format!("error ({}): {}\n", failure.kind, failure.message)),
    }
    for line in &report.logs {
        out.push_str(&format!(
            "log {} {:<5} {}\n",
            line.source, line.level, line.message
        ));
    }
    for exchange in &report.http {
        let outcome = match (&exchange.refused, &exchange.failed, exchange.status) {
            (Some(reason), _, _) => format!("refused: {reason}"),
            (None, Some(reason), _) => format!("failed: {reason}"),
            (None, None, Some(status)) => format!(
                "{status} in {} ms from the {}",
                exchange.elapsed_ms, exchange.answered_by
            ),
            (None, None, None) => "no answer".to_owned(),
        };
        out.push_str(&format!(
            "http {} {} -> {outcome}\n",
            exchange.method, exchange.url
        ));
    }
    out
}
