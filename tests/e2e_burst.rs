//! A burst: 1,000 QingCloud volumes due at the same second. The provider's
//! `requests_per_second` and `max_in_flight` hold, measured from the
//! simulator's request journal (receive timestamps).

mod util;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use snapwarden::state::LedgerState;
use util::*;

const TARGETS: usize = 1000;
const RPS: u32 = 100;
const MAX_IN_FLIGHT: usize = 20;
const JOB_MS: i64 = 100;

/// Most requests inside any window of `window` (half-open) over `times`
/// (sorted).
fn peak(times: &[DateTime<Utc>], window: chrono::Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

fn times(records: &[serde_json::Value]) -> Vec<DateTime<Utc>> {
    let mut t: Vec<DateTime<Utc>> = records
        .iter()
        .map(|r| {
            r["time"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("journal entry without a time: {r}"))
        })
        .collect();
    t.sort();
    t
}

#[test]
fn a_thousand_targets_due_at_once_respect_rate_and_in_flight_limits() {
    let started = Instant::now();
    let (sim, wd) = sim_with_volumes(&format!("{JOB_MS}ms"), &[]);
    let vols: Vec<String> = (0..TARGETS).map(|i| format!("vol-b{i:07}")).collect();
    for v in &vols {
        sim.volume(v);
    }
    let targets: Vec<String> = vols.iter().map(|v| format!("\"{v}\"")).collect();
    let policy = format!(
        r#"name = "burst"
provider = "qc"
resource = "volume"
targets = [{}]
schedule = "{}"
retain = 5
poll_interval = "100ms"
poll_max_interval = "200ms"
timeout = "120s"
"#,
        targets.join(", "),
        seconds_from_now(&[3]),
    );
    let text = wd.qingcloud_config(&sim, SECRET, &policy).replace(
        "requests_per_second = 50",
        &format!("requests_per_second = {RPS}\nmax_in_flight = {MAX_IN_FLIGHT}"),
    );
    let cfg = wd.write_config(&text);
    let daemon = Daemon::start(&cfg, SECRET);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = wd.try_state().and_then(|st| {
            let snaps = st.all_snapshots().ok()?;
            Some(
                snaps
                    .iter()
                    .filter(|s| s.state == LedgerState::Available)
                    .count(),
            )
        });
        if done == Some(TARGETS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done:?} of {TARGETS} snapshots available in time"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    let all = sim.journal("qingcloud", None);
    let creates: Vec<serde_json::Value> = all
        .iter()
        .filter(|r| r["action"] == "CreateSnapshots")
        .cloned()
        .collect();
    assert_eq!(creates.len(), TARGETS, "one create per target, no more");
    let all_times = times(&all);
    let create_times = times(&creates);

    // The governor lets a full bucket (RPS) go at once and refills RPS per
    // second: at most RPS + RPS × W requests leave the client in any window
    // of W seconds. The simulator stamps them on receipt, and on a loaded
    // 2-core CI machine a request can sit up to SKEW between leaving the
    // limiter and reaching the simulator, which stretches a window by that
    // much; one more for the window's edges.
    const SKEW_MS: u64 = 250;
    let limit = |w_secs: u64| -> usize {
        (RPS as u64 + RPS as u64 * (w_secs * 1000 + SKEW_MS) / 1000 + 1) as usize
    };
    let peak_1s = peak(&all_times, chrono::Duration::seconds(1));
    let peak_5s = peak(&all_times, chrono::Duration::seconds(5));
    let limit_1s = limit(1);
    let limit_5s = limit(5);

    // A create's job runs JOB_MS in the simulator; the daemon holds its
    // in-flight slot at least that long, so jobs running at once in the
    // simulator is a lower bound of the daemon's operations in flight.
    let job = chrono::Duration::milliseconds(JOB_MS);
    let in_flight_peak = peak(&create_times, job);
    let span = all_times
        .last()
        .zip(all_times.first())
        .map(|(l, f)| (*l - *f).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    println!(
        "burst figures: {TARGETS} targets, {} requests ({} creates) in {span:.1} s; \
         peak {peak_1s} requests in any 1 s (limit {limit_1s}), {peak_5s} in any 5 s (limit {limit_5s}), \
         mean {:.1}/s; peak jobs running at once {in_flight_peak} (max_in_flight {MAX_IN_FLIGHT}); test took {:.1?}",
        all.len(),
        creates.len(),
        all.len() as f64 / span.max(0.001),
        started.elapsed()
    );
    assert!(peak_1s <= limit_1s, "rate limit broken: {peak_1s} in 1 s");
    assert!(peak_5s <= limit_5s, "rate limit broken: {peak_5s} in 5 s");
    assert!(
        in_flight_peak <= MAX_IN_FLIGHT,
        "max_in_flight broken: {in_flight_peak} jobs at once"
    );
    // The limits were nearly reached, or the test proves nothing.
    assert!(
        peak_1s >= RPS as usize * 3 / 4,
        "the burst never came near the rate: {peak_1s}"
    );
    assert!(
        in_flight_peak >= MAX_IN_FLIGHT / 2,
        "the burst never came near max_in_flight: {in_flight_peak}"
    );
}
