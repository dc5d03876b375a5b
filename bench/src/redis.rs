//! The cluster mode's own `redis-server`: started on a free loopback port, keeping
//! nothing on disk, and stopped at the end of the run. The nodes of the cluster meet on
//! it (`REDIS_URL`); its CPU time is part of what a cross-node delivery costs.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a fresh `redis-server` may take to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server` of this benchmark. Dropping it kills the process.
pub struct Redis {
    port: u16,
    child: Child,
    pid: u32,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port, without snapshots or an append
    /// log (the cluster only uses pub/sub, and nothing must outlive the run), its output
    /// appended to `log`; waits until it answers `PING`.
    pub async fn start(log: &Path) -> Result<Self> {
        let port = free_port()?;
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the Redis log {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting redis-server (--nodes 2 or more needs Redis 7 on the PATH, \
                 e.g. `apt-get install redis-server`)",
            )?;
        let pid = child.id().context("redis-server exited at once")?;
        let mut redis = Self { port, child, pid };
        redis.wait_for_pong(log).await?;
        Ok(redis)
    }

    /// Sends `PING` until `+PONG` comes back.
    async fn wait_for_pong(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "redis-server exited ({status}) before answering PING; see {}",
                    log.display()
                );
            }
            if ping(self.port).await {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "redis-server did not answer PING on port {} within {STARTUP_TIMEOUT:?}; see {}",
                    self.port,
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:<port>`, the nodes' `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (the servers' samples read its CPU time; and for profilers).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the process (it holds nothing worth keeping) and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        self.child.start_kill().ok();
        self.child.wait().await.context("reaping redis-server")?;
        Ok(())
    }
}

/// Whether a Redis server on the loopback `port` answers `PING` (in the inline
/// protocol, so no client library is needed for this one question).
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0_u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A free TCP port on the loopback interface, free when asked: `redis-server` cannot
/// pick its own and say which (`--port 0` turns TCP off), so it binds this one right
/// after; another process could take it in between, which on a bench machine is rare.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
