//! Memory and CPU time, measured, and memory estimated: the process's resident anonymous memory (from
//! `/proc/self/statm`), the machine's total (from `/proc/meminfo`), and an estimate of
//! what a simulation of a given size needs, so that one that cannot fit is refused
//! before any work starts.

/// Bytes of a page, as `/proc/self/statm` counts them.
fn page_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name only.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// Resident memory of this process that is not backed by a file: `resident - shared`
/// of `/proc/self/statm`, in bytes. Mapped files (the notice log, graph snapshots)
/// are not counted; heap, rings and anonymous maps are. `None` off Linux.
pub fn resident_anon_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let fields: Vec<u64> = statm
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let resident = *fields.get(1)?;
    let shared = *fields.get(2)?;
    Some(resident.saturating_sub(shared) * page_bytes())
}

/// Resident memory of this process, all of it (`VmRSS` of `/proc/self/status`):
/// heap, rings and the mapped files' resident pages. `None` off Linux.
pub fn resident_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// The most resident memory this process has had (`VmHWM` of `/proc/self/status`).
/// `None` off Linux.
pub fn resident_peak_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), seconds.
pub fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for clock_gettime to write.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    if ok {
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    } else {
        0.0
    }
}

/// CPU time of the whole process, user plus system (`getrusage(RUSAGE_SELF)`), seconds.
pub fn process_cpu_s() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage for getrusage to write.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Gives freed heap memory back to the system, so that a later
/// [`resident_anon_bytes`] delta measures what is live, not what the allocator kept.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The machine's memory: `MemTotal` of `/proc/meminfo`, in bytes.
pub fn mem_total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Estimated peak memory of a simulation, in bytes: the generator's edge lists
/// (about 24 bytes a follow while it sorts), the follow graph (CSR both ways and the
/// per-user overlay: about 16 bytes a follow and 40 a user), the engine's per-user
/// state (about 100 bytes), the home timelines (4 bytes an entry, doubled for ring
/// growth, each user holding at most `timeline_capacity` and all of them at most
/// `posts * follows_mean`), and an in-memory follower list for a Redis baseline (8
/// bytes a follow). Conservative by design: it only has to tell "fits" from "cannot".
pub fn estimate_bytes(users: u64, follows_mean: f64, timeline_capacity: u64, posts: u64) -> u64 {
    let follows = (users as f64 * follows_mean) as u64;
    let generator = 24 * follows;
    let graph = 16 * follows + 40 * users;
    let engine = 100 * users;
    let entries = (users * timeline_capacity).min((posts as f64 * (follows_mean + 1.0)) as u64);
    let timelines = 8 * entries;
    let baseline = 8 * follows;
    generator + graph + engine + timelines + baseline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read() {
        if cfg!(target_os = "linux") {
            assert!(mem_total_bytes().unwrap() > 1 << 20);
            let before = resident_anon_bytes().unwrap();
            let v = std::hint::black_box(vec![1u8; 64 << 20]);
            let after = resident_anon_bytes().unwrap();
            assert!(after >= before + (32 << 20), "{before} -> {after}");
            drop(v);
            assert!(resident_peak_bytes().unwrap() >= resident_bytes().unwrap() / 2);
        }
        let t = thread_cpu_s();
        let spin: u64 = (0..2_000_000u64).map(std::hint::black_box).sum();
        assert!(spin > 0 && thread_cpu_s() >= t && process_cpu_s() >= thread_cpu_s() / 2.0);
    }

    #[test]
    fn ten_billion_users_do_not_fit() {
        assert!(estimate_bytes(10_000_000_000, 35.0, 800, 1_000_000) > 1 << 40);
    }
}
