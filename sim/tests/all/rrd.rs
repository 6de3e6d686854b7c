use crate::fixture::start;
use porthole_sim::VmSeed;
use reqwest::Method;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_timeframe_has_seventy_rows_at_its_resolution() {
    let sim = start().await;
    let seed = VmSeed {
        vmid: 200,
        running: true,
        ..VmSeed::default()
    };
    sim.handle
        .add_vm(seed)
        .unwrap_or_else(|err| panic!("{err}"));
    let path = "/nodes/pve1/qemu/200/rrddata";
    for (timeframe, step) in [
        ("hour", 60),
        ("day", 1800),
        ("week", 10_800),
        ("month", 43_200),
        ("year", 604_800),
    ] {
        let before = now();
        let rows = sim.ok(Method::GET, path, &[("timeframe", timeframe)]).await;
        let after = now();
        let rows = rows.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 70, "{timeframe}");
        let times: Vec<u64> = rows.iter().filter_map(|r| r["time"].as_u64()).collect();
        assert!(times.windows(2).all(|w| w[1] - w[0] == step), "{timeframe}");
        let last = times.last().copied().unwrap_or_default();
        assert_eq!(last % step, 0, "{timeframe}");
        assert!(last <= after && last + step > before, "{timeframe}: {last}");
        for row in &rows {
            let cpu = row["cpu"].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&cpu), "{row}");
            assert!(row["mem"].as_f64() <= row["maxmem"].as_f64(), "{row}");
            assert_eq!(row["maxcpu"], 1, "{row}");
            assert_eq!(row["maxdisk"], 8u64 << 30, "{row}");
            for field in ["netin", "netout", "diskread", "diskwrite", "disk"] {
                assert!(row[field].as_f64().is_some_and(|v| v >= 0.0), "{row}");
            }
        }
    }
    let peaks = sim
        .ok(Method::GET, path, &[("timeframe", "day"), ("cf", "MAX")])
        .await;
    assert_eq!(peaks.as_array().map(Vec::len), Some(70));

    // A stopped template uses nothing; an unknown VMID has no RRD file at all.
    let idle = sim
        .ok(
            Method::GET,
            "/nodes/pve1/qemu/9000/rrddata",
            &[("timeframe", "hour")],
        )
        .await;
    assert!(
        idle.as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["cpu"] == 0.0))
    );
    assert_eq!(
        sim.fails(
            Method::GET,
            "/nodes/pve1/qemu/777/rrddata",
            &[("timeframe", "hour")]
        )
        .await,
        (
            500,
            "RRD error: opening '/var/lib/rrdcached/db/pve2-vm/777': No such file or directory"
                .to_owned()
        )
    );
}
