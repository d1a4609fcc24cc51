"""A throwaway PostgreSQL cluster for Strata's cluster tests.

Each test gets its own data directory under /tmp/strata-cluster, its own
loopback port and its own socket directory, all owned by the `postgres` OS
user (Postgres refuses to run as root). The helpers here start, stop and
`kill -9` the postmaster, clear the `postmaster.pid` and socket lock that a
killed (possibly zombie) postmaster leaves behind, and take a streaming base
backup for a standby.

Nothing here knows about Strata beyond `CREATE EXTENSION strata`.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import psycopg

ROOT = "/tmp/strata-cluster"


def log(msg):
    print(f"[cluster] {msg}", flush=True)


def as_postgres(argv):
    """argv run as the postgres OS user (directly when we already are it)."""
    if os.getuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    if os.environ.get("USER") == "postgres":
        return argv
    return ["sudo", "-u", "postgres"] + argv


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_dead(pid):
    """True when the process is gone or a zombie (nothing reaps it here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


class Cluster:
    def __init__(self, pg_home, name):
        self.bindir = os.path.join(pg_home, "bin")
        self.name = name
        self.base = os.path.join(ROOT, name)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "server.log")
        self.port = free_port()

    # -- process control -------------------------------------------------
    def _run(self, argv, check=True, **kw):
        return subprocess.run(as_postgres(argv), check=check, capture_output=True, text=True, **kw)

    def _prepare_base(self):
        if os.path.exists(self.base):
            self.kill9(quiet=True)
            shutil.rmtree(self.base)
        os.makedirs(self.sockdir)
        shutil.chown(self.base, "postgres", "postgres")
        shutil.chown(self.sockdir, "postgres", "postgres")

    def _write_conf(self, extra):
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "fsync": "on",
            "max_connections": "40",
            "shared_buffers": "64MB",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            "log_min_messages": "warning",
            # Strata's WAL resource manager (a test may turn it off: "''")
            "shared_preload_libraries": "'strata'",
        }
        conf.update(extra or {})
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    def initdb(self, conf=None):
        self._prepare_base()
        self._run([f"{self.bindir}/initdb", "-D", self.datadir, "-U", "postgres",
                   "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        self._write_conf(conf)
        return self

    def base_backup_of(self, primary, conf=None):
        """This cluster becomes a streaming standby of `primary` (pg_basebackup -R)."""
        self._prepare_base()
        self._run([f"{self.bindir}/pg_basebackup", "-D", self.datadir, "-h", "127.0.0.1",
                   "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream",
                   "--checkpoint=fast"])
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {self.port}\nunix_socket_directories = '{self.sockdir}'\n")
            for k, v in (conf or {}).items():
                f.write(f"{k} = {v}\n")
        return self

    def start(self):
        self.clear_stale_pid()
        r = self._run([f"{self.bindir}/pg_ctl", "-D", self.datadir, "-l", self.logfile,
                       "-w", "-t", "300", "start"], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: pg_ctl start failed:\n{r.stdout}{r.stderr}\n"
                               f"{self.tail_log()}")
        return self

    def stop(self):
        if self.postmaster_pid() is None:
            return
        self._run([f"{self.bindir}/pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "stop"],
                  check=False)

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (FileNotFoundError, ValueError):
            return None
        return None if pid_dead(pid) else pid

    def kill9(self, quiet=False):
        """SIGKILL the postmaster and every backend at once, then wait for all to die."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        victims = [pid] + children_of(pid)
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 60
        while not all(pid_dead(p) for p in victims):
            if time.time() > deadline:
                raise RuntimeError(f"{self.name}: processes survived SIGKILL: {victims}")
            time.sleep(0.05)
        if not quiet:
            log(f"{self.name}: killed postmaster {pid} and {len(victims) - 1} children")
        self.clear_stale_pid()

    def clear_stale_pid(self):
        pidfile = os.path.join(self.datadir, "postmaster.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.readline())
        except (FileNotFoundError, ValueError):
            return
        if pid_dead(pid):
            os.remove(pidfile)
            lock = os.path.join(self.sockdir, f".s.PGSQL.{self.port}.lock")
            if os.path.exists(lock):
                os.remove(lock)

    def tail_log(self, n=40):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except FileNotFoundError:
            return "(no server log)"

    def destroy(self):
        self.kill9(quiet=True)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- SQL -------------------------------------------------------------
    def connect(self, dbname="postgres", autocommit=True):
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname=dbname, autocommit=autocommit)

    def sql(self, query, dbname="postgres", params=None):
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def wait_replayed(self, standby, timeout=120):
        """Waits until `standby` has replayed everything this primary has written."""
        lsn = self.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
        deadline = time.time() + timeout
        while True:
            done = standby.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", params=(lsn,))[0][0]
            if done:
                return
            if time.time() > deadline:
                raise RuntimeError(f"standby did not replay up to {lsn}\n{standby.tail_log()}")
            time.sleep(0.1)


@contextlib.contextmanager
def test_servers(*clusters, name):
    """Runs a test body; on success stops and removes the servers, on failure
    prints their logs' tails and stops them (the data stays for a post-mortem)."""
    try:
        yield
    except BaseException:
        for c in clusters:
            print(f"--- {c.name} server log\n{c.tail_log()}", file=sys.stderr)
            c.stop()
        raise
    for c in clusters:
        c.destroy()
    log(f"{name} passed")
