//! `GET /nodes/{node}/qemu/{vmid}/rrddata`: a VM's statistics as `PVE::RRD::create_rrd_data`
//! returns them — 70 rows at the timeframe's resolution, the last one at the current step. The
//! values are made up but stable: a function of the VM and the time only, a daily rhythm plus
//! smooth noise, so repeated calls and neighbouring timeframes agree.

use super::Call;
use crate::cluster::{PowerState, Vm};
use crate::error::ApiError;
use serde_json::{Value, json};

/// Rows per answer, as PVE asks rrdcached for.
const ROWS: u64 = 70;

/// Seconds per row: hour 1 min, day 30 min, week 3 h, month 12 h, year 1 week.
fn resolution(timeframe: &str) -> u64 {
    match timeframe {
        "hour" => 60,
        "day" => 30 * 60,
        "week" => 180 * 60,
        "month" => 720 * 60,
        _ => 10_080 * 60,
    }
}

pub fn rrddata(call: &Call<'_>) -> Result<Value, ApiError> {
    let vmid = call.number("vmid")?;
    let step = resolution(call.param("timeframe").unwrap_or("hour"));
    let max = call.param("cf") == Some("MAX");
    // The call is not proxied: RRD files are kept on every node for every guest.
    let cluster = call.cluster();
    let Some(vm) = cluster.vms.get(&vmid) else {
        return Err(ApiError::internal(format!(
            "RRD error: opening '/var/lib/rrdcached/db/pve2-vm/{vmid}': No such file or directory"
        )));
    };
    let now = call.state.now();
    let last = now - now % step;
    let rows = (0..ROWS)
        .map(|i| last - (ROWS - 1 - i) * step)
        .map(|time| row(vm, time, max))
        .collect();
    Ok(Value::Array(rows))
}

/// One row. A VM that is not running uses nothing; `cf=MAX` shows the peaks above the averages.
fn row(vm: &Vm, time: u64, max: bool) -> Value {
    let maxmem = vm.maxmem() as f64;
    let mut row = json!({
        "time": time, "maxcpu": vm.cores(), "maxmem": vm.maxmem(), "maxdisk": vm.maxdisk(),
        "disk": 0, "cpu": 0.0, "mem": 0.0,
        "netin": 0.0, "netout": 0.0, "diskread": 0.0, "diskwrite": 0.0,
    });
    if vm.power != PowerState::Running {
        return row;
    }
    let peak = |channel: u64| {
        if max {
            1.2 + 0.8 * noise(vm.vmid, channel + 100, time)
        } else {
            1.0
        }
    };
    let load = |channel: u64| 0.6 * daily(time) + 0.4 * noise(vm.vmid, channel, time);
    let cpu = ((0.02 + 0.3 * load(0)) * peak(0)).min(1.0);
    let mem = ((0.3 + 0.4 * load(1)) * peak(1) * maxmem).min(maxmem);
    let rate = |channel: u64, base: f64, span: f64| {
        ((base + span * load(channel)) * peak(channel) * 100.0).round() / 100.0
    };
    row["cpu"] = json!(cpu);
    row["mem"] = json!(mem.round());
    row["netin"] = json!(rate(2, 2_000.0, 400_000.0));
    row["netout"] = json!(rate(3, 1_000.0, 150_000.0));
    row["diskread"] = json!(rate(4, 0.0, 2_000_000.0));
    row["diskwrite"] = json!(rate(5, 5_000.0, 1_000_000.0));
    row
}

/// 0 at 03:00 UTC, 1 at 15:00.
fn daily(time: u64) -> f64 {
    let phase = (time % 86_400) as f64 / 86_400.0;
    0.5 - 0.5 * (std::f64::consts::TAU * (phase - 0.125)).cos()
}

/// Smooth noise in [0, 1): random values per VM, channel and hour, eased between.
fn noise(vmid: u32, channel: u64, time: u64) -> f64 {
    let (hour, within) = (time / 3600, (time % 3600) as f64 / 3600.0);
    let at = |h: u64| unit(splitmix((u64::from(vmid) << 40) ^ (channel << 32) ^ h));
    let ease = within * within * (3.0 - 2.0 * within);
    at(hour) + (at(hour + 1) - at(hour)) * ease
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64: a fixed, well-mixed hash of the seed.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn values_are_stable_and_within_their_limits() {
        let config = BTreeMap::from([("memory".to_owned(), "2048".to_owned())]);
        let mut vm = Vm::new(100, "pve1", config);
        vm.set_power(PowerState::Running);
        for time in (1_700_000_000..1_700_100_000).step_by(977) {
            for max in [false, true] {
                let row = row(&vm, time, max);
                assert_eq!(row, super::row(&vm, time, max));
                let cpu = row["cpu"].as_f64().unwrap_or(-1.0);
                assert!((0.0..=1.0).contains(&cpu), "{row}");
                assert!(row["mem"].as_f64() <= row["maxmem"].as_f64(), "{row}");
            }
        }
        let average = row(&vm, 1_700_000_000, false);
        let peak = row(&vm, 1_700_000_000, true);
        assert!(peak["netin"].as_f64() > average["netin"].as_f64());
    }
}
