//! A MariaDB server of a test's own: its own data directory under the cargo
//! target dir, its own loopback port and socket. For tests that restart the
//! server or change GLOBAL variables, which must never happen on the shared
//! server at DATABASE_URL.
//!
//! These need MariaDB's server binaries (`mariadbd`, `mariadb-install-db`);
//! without them the test FAILS saying so, never skips.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use orm::Engine;

const NEEDS: &str = "this test starts a private MariaDB server and needs its binaries: \
`mariadbd` (looked for in $MARIADBD, /usr/sbin, /usr/local/sbin, /usr/libexec, $PATH) and \
`mariadb-install-db` or `mysql_install_db` (in $MARIADB_INSTALL_DB, /usr/bin, /usr/local/bin, /usr/local/scripts, $PATH). \
On Debian/Ubuntu: apt-get install mariadb-server";

/// How long a server may take to start answering, or to exit after SHUTDOWN.
const SERVER_DEADLINE: Duration = Duration::from_secs(30);

/// Server options that keep a throwaway instance small and quick to start:
/// a tiny buffer pool and redo log, no binary log, and no fsync at all (the
/// data directory is deleted afterwards; durability across a crash is not
/// what these tests are about, a clean restart keeps committed rows).
/// A server started with a `--log-bin` option of its own keeps its binary
/// log (see [`PrivateServer::fast_options`]).
const FAST_OPTIONS: &[&str] = &[
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-data-file-path=ibdata1:10M:autoextend",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-flush-method=nosync",
    "--skip-log-bin",
    "--skip-name-resolve",
];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prefix of the private servers' directories under the target tmp dir.
const DIR_PREFIX: &str = "mariadbd-";

/// A MariaDB server of this test process's own. Killed and its directory
/// removed on drop, panics included.
pub struct PrivateServer {
    dir: PathBuf,
    /// The loopback TCP port it listens on.
    pub port: u16,
    mariadbd: PathBuf,
    /// Server options of this test's own, given at every boot.
    options: Vec<String>,
    child: Option<Child>,
}

impl PrivateServer {
    /// Initialises a fresh data directory, starts the server on a free
    /// loopback port and creates the database `test`.
    pub fn start(tag: &str) -> PrivateServer {
        PrivateServer::start_with(tag, &[])
    }

    /// [`start`](Self::start) with extra server options (`--name=value`),
    /// for settings that cannot change at runtime.
    pub fn start_with(tag: &str, options: &[&str]) -> PrivateServer {
        let mut server = PrivateServer::prepare(tag, options);
        server.boot();
        server
            .admin()
            .query_drop("CREATE DATABASE test CHARACTER SET utf8mb4")
            .expect("create database test");
        server
    }

    /// A server with an initialised data directory and a free port, not
    /// started: add options with [`add_option`](Self::add_option), then
    /// [`boot`](Self::boot) it. No database `test` is created.
    pub fn prepare(tag: &str, options: &[&str]) -> PrivateServer {
        let server = PrivateServer::prepare_empty(tag, options);
        let install = find_binary(
            "MARIADB_INSTALL_DB",
            &["mariadb-install-db", "mysql_install_db"],
            &["/usr/bin", "/usr/local/bin", "/usr/local/scripts"],
        )
        .unwrap_or_else(|| panic!("mariadb-install-db not found; {NEEDS}"));
        let log = server.dir.join("install.log");
        let log_file = fs::File::create(&log).expect("create install.log");
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", server.datadir().display()))
            .arg(format!("--tmpdir={}", server.tmpdir().display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(FAST_OPTIONS)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file);
        if running_as_root() {
            // mariadbd refuses root unless told; the files stay root's.
            cmd.arg("--user=root");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {NEEDS}", install.display()));
        assert!(
            status.success(),
            "{} failed ({status}):\n{}",
            install.display(),
            tail(&log)
        );
        server
    }

    /// [`FAST_OPTIONS`], without `--skip-log-bin` when this server's own
    /// options turn the binary log on (a replication primary).
    fn fast_options(&self) -> Vec<&'static str> {
        let log_bin = self.options.iter().any(|o| o.starts_with("--log-bin"));
        FAST_OPTIONS
            .iter()
            .copied()
            .filter(|o| !(log_bin && *o == "--skip-log-bin"))
            .collect()
    }

    /// [`prepare`](Self::prepare) without initialising the data directory:
    /// it is created empty, for a server that receives its data from
    /// elsewhere (a Galera node joining by state snapshot transfer).
    pub fn prepare_empty(tag: &str, options: &[&str]) -> PrivateServer {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        reap_stale_servers(&base);
        let mariadbd = find_binary(
            "MARIADBD",
            &["mariadbd"],
            &[
                "/usr/sbin",
                "/usr/local/sbin",
                "/usr/libexec",
                "/usr/local/libexec",
            ],
        )
        .unwrap_or_else(|| panic!("mariadbd not found; {NEEDS}"));

        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let server = PrivateServer {
            dir,
            port: free_port(),
            mariadbd,
            options: options.iter().map(|o| o.to_string()).collect(),
            child: None,
        };
        fs::create_dir_all(server.tmpdir()).expect("create the server's tmpdir");
        server
    }

    /// Adds a server option (`--name=value`), given from the next boot on.
    pub fn add_option(&mut self, option: impl Into<String>) {
        self.options.push(option.into());
    }

    /// The server's own directory (data directory, logs, tmpdir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Whether the server process was started and has not been stopped or killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL (a crash: no shutdown, clients' sockets
    /// closed by the kernel) and waits for the process to be gone.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("the private server is not running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The last lines of the server's error log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.error_log())
    }

    /// The server's own tmpdir: a starting server deletes every `#sql*`
    /// file in its tmpdir, so servers sharing /tmp (each other, or the
    /// system's server) would delete each other's temporary tables.
    fn tmpdir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// Starts mariadbd on this server's port and data directory and waits
    /// until it answers over TCP.
    pub fn boot(&mut self) {
        assert!(
            self.child.is_none(),
            "the private server is already running"
        );
        let socket = self.dir.join("mysqld.sock");
        // A Unix socket path must fit in sun_path (108 bytes); nothing here
        // uses the socket, it only must not collide with the system server's.
        let socket = if socket.as_os_str().len() < 100 {
            socket
        } else {
            std::env::temp_dir().join(format!(
                "orm-restart-{}-{}.sock",
                std::process::id(),
                self.port
            ))
        };
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir().display()))
            .arg(format!("--tmpdir={}", self.tmpdir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", self.error_log().display()))
            // The port was free when picked; on a restart, wait for it
            // rather than fail if something briefly holds it.
            .arg("--port-open-timeout=10")
            .args(self.fast_options())
            .args(&self.options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {NEEDS}", self.mariadbd.display()));
        self.child = Some(child);

        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "the private mariadbd exited during startup ({status}):\n{}",
                    tail(&self.error_log())
                );
            }
            if self.try_admin().is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the private mariadbd on port {} did not answer within {SERVER_DEADLINE:?}:\n{}",
                    self.port,
                    tail(&self.error_log())
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Shuts the server down cleanly (like a service stop) and waits for
    /// the process to exit. Clients' connections are closed by the server.
    pub fn stop(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("the private server is not running");
        if let Ok(mut admin) = self.try_admin() {
            // The server may answer or just close the connection.
            let _ = admin.query_drop("SHUTDOWN");
        }
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the private mariadbd did not exit within {SERVER_DEADLINE:?} of SHUTDOWN:\n{}",
                        tail(&self.error_log())
                    );
                }
            }
        }
    }

    /// Stop, then start again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    fn admin_opts(&self) -> mysql::OptsBuilder {
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(1)))
    }

    fn try_admin(&self) -> Result<mysql::Conn, mysql::Error> {
        mysql::Conn::new(self.admin_opts())
    }

    /// A raw `mysql` crate connection as root, over TCP.
    pub fn admin(&self) -> mysql::Conn {
        self.try_admin()
            .unwrap_or_else(|e| panic!("admin connection to the private server: {e}"))
    }

    /// The ids in `test.t`, read through a fresh admin connection.
    pub fn ids(&self) -> Vec<i64> {
        self.admin()
            .query("SELECT id FROM test.t ORDER BY id")
            .expect("read test.t")
    }

    /// The URL of database `test` on this server, with query options.
    pub fn url(&self, options: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/test?{options}", self.port)
    }

    pub fn engine(&self, options: &str) -> Engine {
        orm::create_engine(&self.url(options)).expect("create engine")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: nothing on disk matters any more.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Whether this test process runs as root (mariadbd then needs `--user=root`).
pub fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn find_binary(env: &str, names: &[&str], dirs: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Removes what a test process killed before its destructors ran (SIGKILL,
/// a timeout) left behind: its private server, only if that process is
/// still running from that very directory, and the directory.
fn reap_stale_servers(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
            continue; // ours, or its test process is alive
        }
        let dir = entry.path();
        if let Some(pid) = fs::read_to_string(dir.join("mariadbd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let datadir = format!("--datadir={}", dir.join("data").display());
            if String::from_utf8_lossy(&cmdline).contains(&datadir) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
