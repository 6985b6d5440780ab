//! What the process used: peak and sampled resident memory, CPU time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A value of `/proc/<process>/status` in MiB (`VmHWM`: peak RSS; `VmRSS`: RSS now), if
/// readable; `process` is a pid or `self`.
fn status_mib(process: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peak resident memory of the process so far, in MiB (Linux only; `None` elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("self", "VmHWM:")
}

/// Peak resident memory of another process so far, in MiB, while it runs (Linux only).
pub fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    status_mib(&pid.to_string(), "VmHWM:")
}

/// Resident memory now, in MiB (Linux only; `None` elsewhere).
pub fn rss_mib() -> Option<f64> {
    status_mib("self", "VmRSS:")
}

/// CPU time used by the process so far: (user, system) seconds.
pub fn cpu_seconds() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (secs(usage.user_time()), secs(usage.system_time()))
        }
        Err(_) => (0.0, 0.0),
    }
}

/// Samples RSS once per `every` on its own thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<f64>>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start(every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    if let Some(mib) = rss_mib() {
                        samples.push((mib * 10.0).round() / 10.0);
                    }
                    std::thread::park_timeout(every);
                }
                samples
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops and returns the samples (MiB, one per interval).
    pub fn finish(mut self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join().unwrap_or_default()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_and_cpu_of_this_process() {
        if cfg!(target_os = "linux") {
            // RSS first: the peak read after it can only be higher (other tests allocate too),
            // but within the kernel's per-thread counter caches (64 pages a thread), which
            // both figures are summed from at different moments.
            let rss = rss_mib().expect("VmRSS");
            let peak = peak_rss_mib().expect("VmHWM on Linux");
            assert!(peak > 0.0);
            assert!(rss <= peak + 8.0, "VmRSS {rss} MiB above VmHWM {peak} MiB");
        }
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (user, system) = cpu_seconds();
        assert!(user + system > 0.0);
        let sampler = RssSampler::start(Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!sampler.finish().is_empty() || !cfg!(target_os = "linux"));
    }
}
