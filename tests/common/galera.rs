//! A 3-node MariaDB Galera cluster of this test process's own: three
//! [`PrivateServer`]s on loopback, each with its own client, group
//! communication (gcomm), IST and SST port. Node 0 bootstraps the cluster
//! (`--wsrep-new-cluster`); nodes 1 and 2 start with an empty data
//! directory and receive node 0's by state snapshot transfer (`rsync`).
//! Everything is killed and the directories removed on drop, panics
//! included (each node is a `PrivateServer`).
//!
//! Needs the Galera provider (`/usr/lib/galera/libgalera_smm.so`, Debian's
//! `galera-4`; `$GALERA_PROVIDER` overrides the path) and `rsync`; without
//! them the test FAILS saying what to install.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::private_server::{running_as_root, PrivateServer};

const NEEDS: &str = "this test starts a 3-node MariaDB Galera cluster and needs the Galera \
provider library (/usr/lib/galera/libgalera_smm.so, or $GALERA_PROVIDER) and rsync: \
apt-get install galera-4 rsync";

/// How long the cluster may take to form (bootstrap, two state transfers).
const FORM_DEADLINE: Duration = Duration::from_secs(90);

/// Galera options that make a dead node leave the group in about 4 s
/// (defaults: 5 s to suspect, 15 s to declare inactive), while staying
/// above a loaded 2-core machine's scheduling hiccups, so that a live node
/// is not evicted. A small gcache keeps the start quick.
const PROVIDER_OPTIONS: &str = "gcache.size=16M;evs.keepalive_period=PT0.5S;\
evs.inactive_check_period=PT0.5S;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT5S;\
evs.install_timeout=PT5S";

/// The ports of one node besides its client port.
struct NodePorts {
    gcomm: u16,
    ist: u16,
    sst: u16,
}

/// A running 3-node Galera cluster.
pub struct GaleraCluster {
    /// The nodes, 0 being the one that bootstrapped the cluster.
    pub nodes: Vec<PrivateServer>,
}

impl GaleraCluster {
    /// Starts the cluster and waits until every node reports
    /// `wsrep_cluster_size = 3` and `wsrep_ready = ON`; creates database `test`.
    pub fn start() -> GaleraCluster {
        let provider = provider();
        assert!(
            Path::new("/usr/bin/rsync").is_file() || which("rsync"),
            "rsync not found; {NEEDS}"
        );
        // The group ports are picked while the others are still bound, and
        // held until the nodes have picked their client ports: none repeats.
        let held: Vec<std::net::TcpListener> = (0..9)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
            .collect();
        let port = |i: usize| held[i].local_addr().expect("local address").port();
        let ports: Vec<NodePorts> = (0..3)
            .map(|n| NodePorts {
                gcomm: port(3 * n),
                ist: port(3 * n + 1),
                sst: port(3 * n + 2),
            })
            .collect();
        let address = ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.gcomm))
            .collect::<Vec<_>>()
            .join(",");

        let mut nodes = Vec::new();
        for (n, p) in ports.iter().enumerate() {
            let tag = format!("galera{n}");
            let mut node = if n == 0 {
                PrivateServer::prepare(&tag, &[])
            } else {
                let node = PrivateServer::prepare_empty(&tag, &[]);
                make_sst_target(&node.datadir());
                node
            };
            for option in [
                "--wsrep-on=ON".to_string(),
                format!("--wsrep-provider={}", provider.display()),
                "--wsrep-cluster-name=orm_test".to_string(),
                format!("--wsrep-cluster-address=gcomm://{address}"),
                format!(
                    "--wsrep-provider-options=base_host=127.0.0.1;base_port={g};\
                     gmcast.listen_addr=tcp://127.0.0.1:{g};ist.recv_addr=127.0.0.1:{ist};{PROVIDER_OPTIONS}",
                    g = p.gcomm,
                    ist = p.ist
                ),
                format!("--wsrep-node-name=node{n}"),
                format!("--wsrep-node-address=127.0.0.1:{}", p.gcomm),
                format!("--wsrep-node-incoming-address=127.0.0.1:{}", node.port),
                format!("--wsrep-sst-receive-address=127.0.0.1:{}", p.sst),
                "--wsrep-sst-method=rsync".to_string(),
                "--binlog-format=ROW".to_string(),
                "--innodb-autoinc-lock-mode=2".to_string(),
                "--default-storage-engine=InnoDB".to_string(),
            ] {
                node.add_option(option);
            }
            nodes.push(node);
        }
        drop(held);
        let started = Instant::now();
        let mut cluster = GaleraCluster { nodes };
        // The bootstrap option is for the first boot only: a restart joins.
        cluster.nodes[0].add_option("--wsrep-new-cluster");
        cluster.nodes[0].boot();
        cluster.wait_ready(0, 1);
        // The joiners boot one after the other: each `boot` returns when the
        // node answers, i.e. after its state transfer.
        for n in 1..3 {
            cluster.nodes[n].boot();
        }
        for n in 0..3 {
            cluster.wait_ready(n, 3);
        }
        cluster.nodes[0]
            .admin()
            .query_drop("CREATE DATABASE test CHARACTER SET utf8mb4")
            .expect("create database test");
        eprintln!(
            "galera: the 3-node cluster formed in {:?}",
            started.elapsed()
        );
        cluster
    }

    /// Waits until node `n` reports `wsrep_ready = ON` in a primary
    /// component of `size` nodes.
    pub fn wait_ready(&self, n: usize, size: u32) {
        let deadline = Instant::now() + FORM_DEADLINE;
        loop {
            let ready = self.status(n, "wsrep_ready");
            let members = self.status(n, "wsrep_cluster_size");
            let state = self.status(n, "wsrep_local_state_comment");
            if ready.as_deref() == Some("ON")
                && members.as_deref() == Some(size.to_string().as_str())
                && state.as_deref() == Some("Synced")
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Galera node {n} was not ready in a cluster of {size} within {FORM_DEADLINE:?} \
                     (wsrep_ready {ready:?}, wsrep_cluster_size {members:?}, state {state:?}):\n{}",
                    self.nodes[n].log_tail()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until node `n` has left the primary component (`wsrep_ready = OFF`).
    pub fn wait_not_ready(&self, n: usize) {
        let deadline = Instant::now() + FORM_DEADLINE;
        while self.status(n, "wsrep_ready").as_deref() != Some("OFF") {
            assert!(
                Instant::now() < deadline,
                "Galera node {n} still ready after {FORM_DEADLINE:?}:\n{}",
                self.nodes[n].log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A status variable of node `n` (`None` if the node does not answer).
    pub fn status(&self, n: usize, name: &str) -> Option<String> {
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.nodes[n].port)
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(1)));
        let mut conn = mysql::Conn::new(opts).ok()?;
        // SHOW takes no placeholders; `name` is one of this file's literals.
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .ok()?;
        row.map(|(_, v)| v)
    }

    /// A raw connection to node `n` whose reads wait until every write the
    /// cluster committed before them is applied on that node
    /// (`wsrep_sync_wait = 1`), so what one node committed is seen on another.
    pub fn causal(&self, n: usize) -> mysql::Conn {
        let mut conn = self.nodes[n].admin();
        conn.query_drop("SET SESSION wsrep_sync_wait = 1")
            .expect("SET wsrep_sync_wait");
        conn
    }

    /// The URL of database `test` listing every node as a failover host,
    /// starting with node `first`, then the others in order; with `options`.
    pub fn url(&self, first: usize, options: &str) -> String {
        let hosts: Vec<String> = (0..self.nodes.len())
            .map(|k| (first + k) % self.nodes.len())
            .map(|n| format!("127.0.0.1:{}", self.nodes[n].port))
            .collect();
        let mut url = format!("mysql://root@{}/test", hosts.join(","));
        if !options.is_empty() {
            url.push('?');
            url.push_str(options);
        }
        url
    }

    /// The URL of database `test` on node `n` alone.
    pub fn node_url(&self, n: usize, options: &str) -> String {
        self.nodes[n].url(options)
    }

    /// Cuts node `n` off the group (`gmcast.isolate=1`): it stays up but
    /// becomes a non-primary component of its own, which refuses queries on
    /// tables with error 1047; `false` reconnects it.
    pub fn isolate(&self, n: usize, isolated: bool) {
        let value = if isolated { 1 } else { 0 };
        self.nodes[n]
            .admin()
            .query_drop(format!(
                "SET GLOBAL wsrep_provider_options = 'gmcast.isolate={value}'"
            ))
            .expect("set gmcast.isolate");
    }
}

/// The Galera provider library, or a failure saying how to install it.
fn provider() -> PathBuf {
    let path = std::env::var_os("GALERA_PROVIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/galera/libgalera_smm.so"));
    assert!(path.is_file(), "{} not found; {NEEDS}", path.display());
    path
}

fn which(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

/// Lets the `rsync` daemon of a joiner's state transfer write into its data
/// directory: run as root, it drops to `nobody`, so the directory must be
/// that user's (mariadbd, as root, still reads and writes everything).
fn make_sst_target(datadir: &Path) {
    std::fs::create_dir_all(datadir)
        .unwrap_or_else(|e| panic!("create {}: {e}", datadir.display()));
    if !running_as_root() {
        return;
    }
    let nobody = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                (fields.next() == Some("nobody"))
                    .then(|| fields.nth(1).and_then(|uid| uid.parse::<u32>().ok()))
                    .flatten()
            })
        })
        .unwrap_or(65534);
    std::os::unix::fs::chown(datadir, Some(nobody), None)
        .unwrap_or_else(|e| panic!("chown {} to nobody: {e}", datadir.display()));
}
