"""A throwaway Slurm cluster on this machine: munged, slurmctld and one or two slurmd, all from Debian's packages,
run as plain processes (no systemd in a container), configured in one temporary folder, stopped by `stop()`.

    python tests/slurm_cluster.py /tmp/slurm      # start one, print the `export SLURM_CONF=...` line, wait for Enter

Every daemon gets its own ports, sockets, pid and log files under the folder, so several test sessions on one
machine never meet; nothing is read from /etc/slurm or /etc/munge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

DAEMONS = ("munged", "mungekey", "mariadb-install-db", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "setsid")
CLIENTS = ("sbatch", "squeue", "scancel", "sacct", "sinfo", "srun")
START_TIMEOUT_S = 60.0
CLUSTER_ENV = "HARNESS_SLURM_REQUIRED"  # set (to 1) by .ci/run: there a missing Slurm fails the tests, never skips


def missing() -> list[str]:
    """The Slurm and munge programs this machine lacks (empty: a cluster can start)."""
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=_path()) is None]


def _path() -> str:
    # the daemons live in /usr/sbin, which a non-login root shell may leave off PATH
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_memory_mb() -> int:
    # a little under the machine's total: slurmd drains a node whose RealMemory exceeds what it finds
    return int(psutil.virtual_memory().total / 2**20 * 0.9)


@dataclass
class Cluster:
    root: Path
    nodes: list[str]
    cpus: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client (sbatch, squeue, submitit) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf), "PATH": _path()}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True, check=check)

    def log_tails(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.root.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM every daemon (slurmd first: it ends its jobs' steps), then SIGKILL what is left."""
        order = [n for n in self.pids if n.startswith("slurmd:")] + ["slurmctld", "slurmdbd", "mariadbd", "munged"]
        for name in order:
            pid = self.pids.get(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name in order:
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # whatever else this cluster started and no pid file named yet (a daemon that failed half-way, a job's
        # slurmstepd still running when slurmd went): its folder is in its command line or its SLURM_CONF
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.pid != os.getpid() and _in_root(proc, self.root):
                    proc.kill()


def _in_root(proc: psutil.Process, root: Path) -> bool:
    """A daemon of the cluster at `root`: not a client (sbatch, squeue) or a job, which end by themselves."""
    with contextlib.suppress(psutil.Error):
        cmdline = proc.info["cmdline"] or []
        name = Path(cmdline[0]).name if cmdline else ""
        ours = any(str(root) in arg for arg in cmdline) or proc.environ().get("SLURM_CONF", "").startswith(str(root))
        return ours and name.startswith(("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "slurmstepd"))
    return False


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _conf(root: Path, nodes: list[str], cpus: int, ports: dict[str, int]) -> str:
    host = socket.gethostname()
    lines = [
        "ClusterName=harness",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ports['ctld']}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}/%n",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd'}-%n.pid",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd'}-%n.log",
        "ProctrackType=proctrack/linuxproc",  # no cgroups in a container
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        # submitit reads job states with sacct, which needs the accounting daemon (slurmdbd, on MariaDB)
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        f"AccountingStoragePort={ports['dbd']}",
        f"AccountingStoragePass={root / 'munge.socket'}",  # the munge socket for talking to slurmdbd
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=1",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        "KillWait=10",  # seconds between a cancelled job's SIGTERM and SIGKILL
        "MinJobAge=600",  # a finished job stays in squeue / scontrol this long
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
    ]
    for name in nodes:
        port = ports[name]
        lines.append(
            f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} "
            f"RealMemory={_real_memory_mb()} State=UNKNOWN"
        )
    lines.append(f"PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def _dbd_conf(root: Path, ports: dict[str, int]) -> str:
    return (
        f"AuthType=auth/munge\nAuthInfo=socket={root / 'munge.socket'}\n"
        f"DbdHost=localhost\nDbdPort={ports['dbd']}\nSlurmUser=root\n"
        f"StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={ports['db']}\n"
        f"StorageUser=root\nStorageLoc=slurm_acct_db\n"
        f"PidFile={root / 'slurmdbd.pid'}\nLogFile={root / 'slurmdbd.log'}\nDebugLevel=info\n"
    )


def _database(cluster: Cluster, port: int, env: dict[str, str]) -> None:
    """A MariaDB server of its own (data, socket and port under the folder) for slurmdbd."""
    root = cluster.root
    data = root / "db"
    base = ["--no-defaults", f"--datadir={data}", "--user=root"]
    subprocess.run(
        ["mariadb-install-db", *base, "--auth-root-authentication-method=normal", "--skip-test-db"],
        env=env,
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_S,
    )
    server = [
        "mariadbd",
        *base,
        f"--socket={root / 'mariadb.sock'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={root / 'mariadb.pid'}",
        f"--log-error={root / 'mariadb.log'}",
        "--skip-log-bin",
    ]
    # mariadbd has no daemon mode of its own: setsid -f forks it off, so it is nobody's child
    _daemon(cluster, "mariadbd", ["setsid", "-f", *server], root / "mariadb.pid", env)
    _wait_port(cluster, "mariadbd", port)


def _wait_port(cluster: Cluster, name: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        _check_alive(cluster)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} is not listening on port {port} after {START_TIMEOUT_S:g} s\n{cluster.log_tails()}")


def _check_alive(cluster: Cluster) -> None:
    dead = [name for name, pid in cluster.pids.items() if not _running(pid)]
    if dead:
        raise RuntimeError(f"{', '.join(dead)} stopped while the cluster started\n{cluster.log_tails()}")


def start(root: Path, n_nodes: int = 1) -> Cluster:
    """munged, slurmctld and `n_nodes` slurmd (one per node name, all on this host), configured under `root`;
    returns once every node is idle. A failure stops what started and raises with the daemons' logs."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # munged refuses a key or socket in a folder others can write
    (root / "state").mkdir(exist_ok=True)
    nodes = [f"harness{i}" for i in range(n_nodes)]
    for name in nodes:
        (root / "spool" / name).mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    ports = {"ctld": _free_port(), "dbd": _free_port(), "db": _free_port(), **{name: _free_port() for name in nodes}}
    (root / "slurm.conf").write_text(_conf(root, nodes, cpus, ports))
    cluster = Cluster(root, nodes, cpus)
    # the daemons fork into the background (they outlive the process that starts them, as on a real machine)
    # with an environment of their own: no test's token (tests/conftest.py), no SLURM_* of an enclosing job
    env = {"PATH": _path(), "SLURM_CONF": str(root / "slurm.conf"), "LANG": "C.UTF-8"}
    try:
        key = root / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], env=env, check=True, capture_output=True)
        os.chmod(key, 0o600)
        munged = [
            "munged",
            f"--key-file={key}",
            f"--socket={root / 'munge.socket'}",
            f"--pid-file={root / 'munged.pid'}",
            f"--log-file={root / 'munged.log'}",
            f"--seed-file={root / 'munged.seed'}",
            "--force",  # as root, and with /tmp's sticky bit above the folder
        ]
        _daemon(cluster, "munged", munged, root / "munged.pid", env)
        _database(cluster, ports["db"], env)
        dbd_conf = root / "slurmdbd.conf"  # slurmdbd reads it beside $SLURM_CONF; it holds a password: 0600
        dbd_conf.write_text(_dbd_conf(root, ports))
        os.chmod(dbd_conf, 0o600)
        _daemon(cluster, "slurmdbd", ["slurmdbd"], root / "slurmdbd.pid", env)
        _wait_port(cluster, "slurmdbd", ports["dbd"])  # slurmctld stops for good if it finds no slurmdbd
        _daemon(cluster, "slurmctld", ["slurmctld", "-f", str(cluster.conf)], root / "slurmctld.pid", env)
        for name in nodes:
            cmd = ["slurmd", "-f", str(cluster.conf), "-N", name]
            _daemon(cluster, f"slurmd:{name}", cmd, root / f"slurmd-{name}.pid", env)
        _wait_idle(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _daemon(cluster: Cluster, name: str, cmd: list[str], pid_file: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}\n{cluster.log_tails()}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, IndexError):  # IndexError: not written yet
            cluster.pids[name] = int(pid_file.read_text().split()[0])
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} wrote no pid file {pid_file}\n{cluster.log_tails()}")


def _wait_idle(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    states = ""
    while time.monotonic() < deadline:
        _check_alive(cluster)
        proc = cluster.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        states = proc.stdout.strip() or proc.stderr.strip()
        lines = [line.split() for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode == 0 and len(lines) == len(cluster.nodes) and all(s == "idle" for _, s in lines):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the nodes did not become idle within {START_TIMEOUT_S:g} s: {states}\n{cluster.log_tails()}")


if __name__ == "__main__":
    cluster = start(Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    print(f"export SLURM_CONF={cluster.conf}")
    try:
        input("cluster up; Enter stops it ")
    finally:
        cluster.stop()
