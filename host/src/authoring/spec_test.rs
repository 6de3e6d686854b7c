//! `porthole plugin test SPEC`: a TOML file of cases, each one call of the component in the
//! daemon's sandbox with its own settings, `kv`, HTTP fixtures and clock, and what must come out.
//!
//! ```toml
//! component = "../dist/plugin.wasm"   # relative to this file
//! settings = "plugin.toml"            # the plugin's [[plugins]] keys; optional
//!
//! [[case]]
//! name = "creates an A record"
//! function = "upsert-record"
//! input = { zone = "lab.example.com", entry = { name = "vm1.lab.example.com", kind = "A", content = "192.0.2.10", ttl = 300, proxied = false } }
//! expect = { result = "vm1.lab.example.com./A" }
//!
//! [[case.http]]
//! method = "PATCH"
//! url = "http://127.0.0.1:8081/api/v1/servers/localhost/zones/lab.example.com."
//! status = 204
//! ```
//!
//! A case's requests are answered by its `http` fixtures only (never the network); a request no
//! fixture answers and a fixture nothing asked for both fail the case. `expect.result` matches
//! when every key it names matches (objects may have more keys; lists must be the same length).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use super::workbench::{CallReport, Checked, Confinement, Setup, Workbench};
use crate::config::Secret;
use crate::plugins::harness::HttpFixture;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The component, relative to the spec file.
    pub component: Option<PathBuf>,
    /// The plugin's settings file, relative to the spec file.
    pub settings: Option<PathBuf>,
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The WIT function, e.g. `upsert-record`.
    pub function: String,
    /// Its parameters by their WIT names.
    pub input: toml::Value,
    /// Settings that replace the settings file's for this case.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Unix seconds the plugin's wall clock reads.
    pub now: Option<u64>,
    /// `kv` before the call.
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    /// The only answers outgoing requests get.
    #[serde(default)]
    pub http: Vec<HttpFixture>,
    pub expect: Expect,
    /// The whole `kv` after the call, when given.
    pub kv_after: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The call succeeds with a value that matches this.
    pub result: Option<toml::Value>,
    /// The call succeeds, whatever it returns (`delete-record` returns nothing, which TOML
    /// cannot write).
    #[serde(default)]
    pub ok: bool,
    /// The call fails with this kind: the plugin's `error-kind` (`not-found`, `upstream`, …) or
    /// the sandbox's (`timeout`, `resource-limit`, `trap`, `invalid-output`, `refused`,
    /// `runner`, `unavailable`).
    pub error: Option<String>,
    /// The failure's message contains this.
    pub message_contains: Option<String>,
}

/// Reads and parses `file`; errors name the key and line.
pub fn load(file: &Path) -> anyhow::Result<Spec> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let spec: Spec = toml::from_str(&text).map_err(|err| {
        let line = err
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1);
        match line {
            Some(line) => anyhow::anyhow!("{}:{line}: {}", file.display(), err.message()),
            None => anyhow::anyhow!("{}: {}", file.display(), err.message()),
        }
    })?;
    for case in &spec.cases {
        let expect = &case.expect;
        let named = [expect.result.is_some(), expect.ok, expect.error.is_some()];
        if named.iter().filter(|named| **named).count() != 1 {
            anyhow::bail!(
                "{}: case {:?}: expect names one of `result`, `ok = true` or `error`",
                file.display(),
                case.name
            );
        }
    }
    Ok(spec)
}

/// What running a spec came to.
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// Runs every case of the spec at `file` (its component replaced by `component` when given),
/// printing a PASS or FAIL line for each.
pub async fn run(
    file: &Path,
    component: Option<&Path>,
    confinement: Confinement,
) -> anyhow::Result<Summary> {
    let spec = load(file)?;
    let base = file.parent().unwrap_or(Path::new("."));
    let component = match (component, &spec.component) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => base.join(path),
        (None, None) => anyhow::bail!(
            "{}: name the component with `component = \"…\"` or --component",
            file.display()
        ),
    };
    let settings = spec.settings.as_ref().map(|path| base.join(path));
    let checked = Checked::new(&component, settings.as_deref())?;
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let cache = Some((scratch.path().join("compiled"), rand::random::<[u8; 32]>()));
    let mut summary = Summary {
        passed: 0,
        failed: 0,
    };
    for (index, case) in spec.cases.iter().enumerate() {
        let mut plugin = checked.spec.clone();
        for (key, value) in &case.settings {
            plugin
                .settings
                .insert(key.clone(), Secret::new(value.clone()));
        }
        let kv_file = scratch.path().join(format!("kv-{index}.db"));
        let workbench = Workbench::open(Setup {
            spec: plugin,
            kv_file: &kv_file,
            confinement: confinement.clone(),
            cache: cache.clone(),
        })
        .await?;
        match run_case(&workbench, case).await {
            Ok(()) => {
                summary.passed += 1;
                println!("PASS {}", case.name);
            }
            Err(Mismatch { reason, report }) => {
                summary.failed += 1;
                println!("FAIL {}: {reason}", case.name);
                if let Some(report) = report {
                    print!("{}", indent(&super::render_report(&report)));
                }
            }
        }
    }
    println!(
        "{} passed, {} failed ({})",
        summary.passed,
        summary.failed,
        file.display()
    );
    Ok(summary)
}

struct Mismatch {
    reason: String,
    report: Option<CallReport>,
}

async fn run_case(workbench: &Workbench, case: &Case) -> Result<(), Mismatch> {
    let plain = |reason: String| Mismatch {
        reason,
        report: None,
    };
    workbench
        .seed_kv(&case.kv)
        .await
        .map_err(|err| plain(format!("cannot seed kv: {err:#}")))?;
    workbench.harness.answer_with(Some(case.http.clone()));
    workbench.harness.set_clock(case.now);
    let input = json(&case.input);
    let report = workbench
        .call(&case.function, input)
        .await
        .map_err(|err| plain(format!("{err:#}")))?;
    let unused = workbench.harness.unused_fixtures();
    let verdict = judge(&case.expect, &report).and_then(|()| match unused.first() {
        Some(fixture) => Err(format!(
            "nothing requested {} {} (fixture unused)",
            fixture.method, fixture.url
        )),
        None => Ok(()),
    });
    let verdict = match (verdict, &case.kv_after) {
        (Ok(()), Some(expected)) => match workbench.kv_entries().await {
            Ok(actual) if &actual == expected => Ok(()),
            Ok(actual) => Err(format!("kv after the call is {actual:?}, not {expected:?}")),
            Err(err) => Err(format!("cannot read kv: {err:#}")),
        },
        (verdict, _) => verdict,
    };
    verdict.map_err(|reason| Mismatch {
        reason,
        report: Some(report),
    })
}

fn judge(expect: &Expect, report: &CallReport) -> Result<(), String> {
    match (&report.result, expect) {
        (
            Ok(actual),
            Expect {
                result: Some(expected),
                ..
            },
        ) => {
            let expected = json(expected);
            if matches(&expected, actual) {
                Ok(())
            } else {
                Err(format!("returned {actual}, expected {expected}"))
            }
        }
        (Ok(_), Expect { ok: true, .. }) => Ok(()),
        (Ok(actual), _) => Err(format!(
            "returned {actual}, expected a failure of kind {}",
            expect.error.as_deref().unwrap_or("(any)")
        )),
        (
            Err(failure),
            Expect {
                error: Some(kind),
                message_contains,
                ..
            },
        ) => {
            if &failure.kind != kind {
                return Err(format!(
                    "failed with {}, expected {kind}: {}",
                    failure.kind, failure.message
                ));
            }
            match message_contains {
                Some(part) if !failure.message.contains(part.as_str()) => Err(format!(
                    "the failure's message {:?} does not contain {part:?}",
                    failure.message
                )),
                _ => Ok(()),
            }
        }
        (Err(failure), _) => Err(format!("failed ({}): {}", failure.kind, failure.message)),
    }
}

/// Whether `actual` has everything `expected` names: objects may hold more keys, lists match
/// item by item, everything else is equal.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => expected
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|a| matches(value, a))),
        (Value::Array(expected), Value::Array(actual)) => {
            expected.len() == actual.len()
                && expected.iter().zip(actual).all(|(e, a)| matches(e, a))
        }
        // Integers exactly; a float against an integer by value (TOML's `300.0` is JSON's `300`).
        (Value::Number(expected), Value::Number(actual)) => {
            match (expected.as_i64(), actual.as_i64()) {
                (Some(expected), Some(actual)) => expected == actual,
                _ => match (expected.as_u64(), actual.as_u64()) {
                    (Some(expected), Some(actual)) => expected == actual,
                    _ => expected.as_f64() == actual.as_f64(),
                },
            }
        }
        _ => expected == actual,
    }
}

/// TOML as JSON (a datetime becomes its text).
fn json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    #[test]
    fn a_result_matches_on_the_keys_it_names() {
        let actual = j!({"response": {"status": 200, "headers": [], "body": ""}, "events": []});
        assert!(matches(&j!({"response": {"status": 200}}), &actual));
        assert!(!matches(&j!({"response": {"status": 400}}), &actual));
        assert!(!matches(&j!({"events": [{"type": "suspend"}]}), &actual));
        assert!(matches(&j!(300), &j!(300.0)));
        assert!(!matches(
            &j!(9_007_199_254_740_993_u64),
            &j!(9_007_199_254_740_992_u64)
        ));
    }

    #[test]
    fn a_case_says_what_it_expects_once() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("spec.toml");
        std::fs::write(
            &file,
            "component = \"x.wasm\"\n[[case]]\nname = \"a\"\nfunction = \"render\"\ninput = {}\nexpect = {}\n",
        )?;
        let err = load(&file).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("one of `result`, `ok = true` or `error`"),
            "{err}"
        );
        std::fs::write(&file, "component = \"x.wasm\"\n\n[[case]]\nnme = \"a\"\n")?;
        let err = load(&file).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("spec.toml:4"), "{err}");
        Ok(())
    }
}
