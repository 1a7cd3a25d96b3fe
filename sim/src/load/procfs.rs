//! CPU time and resident memory of a process, from Linux `/proc`.

use std::path::PathBuf;

/// `AT_CLKTCK` in the auxiliary vector: the unit of `utime`/`stime` in `/proc/*/stat`.
const AT_CLKTCK: u64 = 17;
/// The value on every mainstream Linux build, used if the auxiliary vector is unreadable.
const DEFAULT_CLK_TCK: u64 = 100;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// This process.
    SelfProc,
    /// Another process by id.
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> PathBuf {
        match self {
            Proc::SelfProc => PathBuf::from(format!("/proc/self/{file}")),
            Proc::Pid(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        }
    }

    /// User + system CPU time so far, seconds.
    pub fn cpu_seconds(self) -> Option<f64> {
        let stat = std::fs::read_to_string(self.path("stat")).ok()?;
        let ticks = cpu_ticks(&stat)?;
        Some(ticks as f64 / clock_ticks_per_second() as f64)
    }

    /// Resident set size, KiB.
    pub fn rss_kib(self) -> Option<u64> {
        let status = std::fs::read_to_string(self.path("status")).ok()?;
        vm_rss_kib(&status)
    }
}

/// CPU seconds all cores of the machine have spent busy so far (every `/proc/stat` time
/// but idle and iowait). Other processes' share of a window is this minus ours.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = busy_ticks(stat.lines().next()?)?;
    Some(ticks as f64 / clock_ticks_per_second() as f64)
}

/// Busy ticks from the aggregate `cpu` line: user nice system idle iowait irq softirq
/// steal (guest time is already inside user).
fn busy_ticks(line: &str) -> Option<u64> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = v.as_slice() else {
        return None;
    };
    Some(user + nice + system + irq + softirq + steal)
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name come state (field 3) … utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second, read from this process's auxiliary vector.
fn clock_ticks_per_second() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| clk_tck_from_auxv(&auxv))
        .unwrap_or(DEFAULT_CLK_TCK)
}

fn clk_tck_from_auxv(auxv: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |chunk: &[u8]| -> Option<u64> {
        let bytes: [u8; WORD] = chunk.try_into().ok()?;
        u64::try_from(usize::from_ne_bytes(bytes)).ok()
    };
    auxv.chunks_exact(2 * WORD)
        .find_map(|pair| {
            let (key, value) = pair.split_at(WORD);
            (word(key)? == AT_CLKTCK).then(|| word(value)).flatten()
        })
        .filter(|&hz| hz > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 9 0 99 0 0";
        assert_eq!(cpu_ticks(stat), Some(1290));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn busy_time_excludes_idle_and_iowait() {
        assert_eq!(busy_ticks("cpu  100 1 20 5000 7 2 3 4 0 0"), Some(130));
        assert_eq!(busy_ticks("cpu0 100 1 20 5000 7 2 3 4 0 0"), None);
        assert_eq!(busy_ticks("cpu  1 2"), None);
        assert!(machine_busy_seconds().is_some());
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tgateway\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(12345));
        assert_eq!(vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let hz = clock_ticks_per_second();
        assert!((10..=10_000).contains(&hz), "{hz}");
        let start = Proc::SelfProc.cpu_seconds().unwrap();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(Proc::SelfProc.cpu_seconds().unwrap() >= start);
        assert!(Proc::SelfProc.rss_kib().unwrap() > 0);
        assert_eq!(Proc::Pid(u32::MAX).rss_kib(), None);
    }
}
