//! A 3-server NATS JetStream cluster on 127.0.0.1 for tests and examples, started
//! through `cluster/scripts/nats-cluster.sh` (which installs Debian's nats-server
//! where it is missing). Each server is a child process of the caller: killing one
//! and starting it again is what the failure tests do, and dropping the handle kills
//! them all and removes their data.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The script that installs nats-server and runs the servers.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nats-cluster.sh");

/// A directory for a test's or an example's servers and nodes: under the workspace's
/// `target/cluster-runs/`, named by `name` and the process id, emptied first.
pub fn run_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/cluster-runs")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Three NATS servers clustered on loopback, each with JetStream and its own data
/// directory. Dropping it kills the servers and removes the directory.
pub struct NatsCluster {
    dir: PathBuf,
    client_ports: [u16; 3],
    servers: [Option<Child>; 3],
}

fn free_ports() -> Result<[u16; 6], String> {
    // Bound all at once so they differ; released just before the servers bind them.
    let listeners: Vec<TcpListener> = (0..6)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot bind a port on 127.0.0.1: {e}"))?;
    let mut ports = [0u16; 6];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| format!("cannot read a bound port: {e}"))?
            .port();
    }
    Ok(ports)
}

impl NatsCluster {
    /// Prepares and starts the three servers in `dir` (see [`run_dir`]) on free
    /// ports, and waits until each accepts connections. `Err` says why it cannot
    /// (nats-server missing and not installable, a server that does not start): the
    /// caller skips.
    pub fn start(dir: impl Into<PathBuf>) -> Result<NatsCluster, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let ports = free_ports()?;
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("prepare")
            .arg(&dir)
            .args(ports.iter().map(u16::to_string))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {SCRIPT}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let line = stdout
                .lines()
                .find(|l| l.starts_with("SKIP:"))
                .unwrap_or("");
            return Err(format!("{SCRIPT} prepare failed ({}): {line}", out.status));
        }
        let mut cluster = NatsCluster {
            dir,
            client_ports: [ports[0], ports[1], ports[2]],
            servers: [None, None, None],
        };
        for i in 0..3 {
            cluster.spawn(i)?;
        }
        for i in 0..3 {
            cluster.wait_accepting(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join(format!("n{}.log", i + 1)))
            .map_err(|e| format!("creating server log: {e}"))?;
        let child = Command::new("bash")
            .arg(SCRIPT)
            .arg("server")
            .arg(&self.dir)
            .arg((i + 1).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting server {}: {e}", i + 1))?;
        self.servers[i] = Some(child);
        Ok(())
    }

    fn wait_accepting(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = format!("127.0.0.1:{}", self.client_ports[i]);
        loop {
            if TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.servers[i].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "server {} exited ({status}); see {}",
                    i + 1,
                    self.dir.join(format!("n{}.log", i + 1)).display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("server {} does not accept on {addr}", i + 1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The servers' client urls, `nats://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }

    /// Kills server `i` (0 to 2) with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on its ports and data, and waits until it accepts.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_accepting(i)
    }

    /// The directory holding the servers' configurations, data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
