"""A real single-node SLURM cluster on localhost, for tests (Debian 12, root, no systemd).

Debian's slurmctld/slurmd/munge (SLURM 22.05) run as plain background processes with their own
munge socket and key, their own ports (free ones, picked at start) and their own state and log
directories under ``root``, so a second cluster on the same machine (another test session, a
developer's own SLURM) cannot collide with this one. Everything is stopped by PID.

Where the config lives, and why: inside a job, snakemake-executor-plugin-slurm-jobstep removes
``SLURM_CONF`` (with every other ``SLURM_*`` variable except the job ids) before its nested
``srun``, which then reads Debian's compiled-in ``/etc/slurm/slurm.conf``. So the jobs must find
this cluster's config at exactly that path. The config is written to ``<root>/etc/slurm.conf``;
slurmd is started in a private mount namespace (``unshare -m``) in which ``<root>/etc`` is
bind-mounted over ``/etc/slurm``. Jobs are children of slurmd and see that mount; the rest of
the machine keeps its own ``/etc/slurm``, and client commands outside (sbatch, squeue, and
Snakemake itself) find the config through ``SLURM_CONF``. Where mount namespaces are not
permitted (some containers), the config is written to ``/etc/slurm/slurm.conf`` itself under a
machine-wide lock, and whatever was there is put back at stop.

No accounting daemon: ``sacct`` fails, so Snakemake's profile must say
``slurm-status-command: squeue`` (the plugin's default sacct check never sees a job finish).

Usable from Python (``LocalSlurm``; the pytest fixture in ``tests/test_slurm.py``) and by hand::

    python tests/slurm_cluster.py start --root /tmp/slurm   # prints `export SLURM_CONF=...`
    python tests/slurm_cluster.py status --root /tmp/slurm
    python tests/slurm_cluster.py stop --root /tmp/slurm
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = {"slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client", "munged": "munge"}
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
LOCK_FILE = Path("/tmp/.bertja-local-slurm.lock")
MARKER = "# Written by tests/slurm_cluster.py"
DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (the reason is the message)."""


def log(msg: str) -> None:
    print(f"[local-slurm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Installation
# ---------------------------------------------------------------------------------------------


def missing_packages() -> list[str]:
    return [pkg for exe, pkg in PACKAGES.items() if not _which(exe)]


def _which(exe: str) -> str | None:
    return shutil.which(exe) or shutil.which(exe, path="/usr/sbin:/sbin:/usr/bin:/bin")


def install_packages(log_file: Path | None = None, timeout: int = 600) -> None:
    """apt-get install the missing SLURM/munge packages (no recommends); SlurmUnavailable if
    that is impossible (not root, no apt-get, no network)."""
    need = missing_packages()
    if not need:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM packages missing ({' '.join(need)}) and not root to install them")
    if not _which("apt-get"):
        raise SlurmUnavailable(f"SLURM packages missing ({' '.join(need)}) and no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    out = open(log_file, "a") if log_file else subprocess.DEVNULL
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *need]
    log(f"apt-get install {' '.join(need)}")
    try:
        # The package scripts try to start the services; without an init system that is refused
        # ("policy-rc.d denied execution of start"), which is what we want.
        if subprocess.run(install, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout)
            rc = subprocess.run(install, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
            if rc:
                raise SlurmUnavailable(f"apt-get install {' '.join(need)} failed (exit {rc}; see {log_file})")
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"apt-get install {' '.join(need)} timed out after {timeout}s") from None
    finally:
        if log_file:
            out.close()
    if missing_packages():
        raise SlurmUnavailable(f"still missing after apt-get: {' '.join(missing_packages())}")


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_unshare_mounts() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LocalSlurm:
    """One single-node cluster: ``start()``, then ``env()`` for client commands, ``stop()``."""

    def __init__(self, root: str | os.PathLike, partition: str = "debug", cluster: str = "bertjaci",
                 private_etc: bool | None = None, lock_timeout: float = 1200):
        self.root = Path(root).resolve()
        self.partition = partition
        self.cluster = cluster
        self.etc = self.root / "etc"
        self.conf = self.etc / "slurm.conf"
        self.run_dir = self.root / "run"
        self.log_dir = self.root / "log"
        self.munge_socket = self.root / "munge" / "munge.socket.2"
        self.private_etc = can_unshare_mounts() if private_etc is None else private_etc
        self.lock_timeout = lock_timeout
        self._lock_fh = None
        if len(str(self.munge_socket)) > 100:
            raise ValueError(f"root path too long for a unix socket: {self.munge_socket}")

    # -- paths and environment ----------------------------------------------------------------

    @property
    def slurmctld_log(self) -> Path:
        return self.log_dir / "slurmctld.log"

    @property
    def client_conf(self) -> Path:
        return self.conf if self.private_etc else SYSTEM_CONF

    def env(self, base: dict | None = None) -> dict:
        """Environment for client commands (sbatch, squeue, snakemake) talking to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.client_conf)
        return env

    def run(self, *cmd, check: bool = True, timeout: int = 30) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    # -- configuration ------------------------------------------------------------------------

    def node_hardware(self) -> dict[str, int]:
        line = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
        hw = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.splitlines()[0] if line else "")}
        if "CPUs" not in hw or "RealMemory" not in hw:
            raise SlurmUnavailable(f"cannot parse `slurmd -C`: {line!r}")
        return hw

    def render_config(self, ctld_port: int, slurmd_port: int) -> str:
        hw = self.node_hardware()
        return f"""{MARKER}: single-node SLURM on localhost for tests.
ClusterName={self.cluster}
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.run_dir}/slurmctld.daemon.pid
SlurmdPidFile={self.run_dir}/slurmd.daemon.pid
SlurmctldLogFile={self.log_dir}/slurmctld.log
SlurmdLogFile={self.log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd, no cgroups: track processes by /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job with no --mem gets the whole node
DefMemPerCPU=1000
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=60
CommunicationParameters=NoInAddrAny
# finished jobs stay visible to `squeue --states=all` this long (the executor plugin's squeue
# status check needs >= 3 x slurm-init-seconds-before-status-checks)
MinJobAge=300
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={hw['CPUs']} Boards={hw.get('Boards', 1)} SocketsPerBoard={hw.get('SocketsPerBoard', 1)} CoresPerSocket={hw.get('CoresPerSocket', hw['CPUs'])} ThreadsPerCore={hw.get('ThreadsPerCore', 1)} RealMemory={hw['RealMemory']} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

    # -- daemons --------------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """PID of our daemon `name` if it is alive and still that program (guards PID reuse)."""
        try:
            pid = int(self._pid_file(name).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if name.encode() in cmdline and str(self.root).encode() in cmdline else None

    def _spawn(self, name: str, cmd: list[str]) -> int:
        out = open(self.log_dir / f"{name}.out", "ab")
        # own session: survives the caller, gets no terminal signals; cmd stays in the foreground
        # (or execs into the daemon), so the PID is the daemon's
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=self.env())
        out.close()
        self._pid_file(name).write_text(str(proc.pid))
        log(f"started {name} (pid {proc.pid})")
        return proc.pid

    def _wait(self, what: str, ok, timeout: float, name: str) -> None:
        t0 = time.monotonic()
        while not ok():
            if self.pid(name) is None:
                raise SlurmUnavailable(f"{name} exited during start-up:\n{self._tail(name)}")
            if time.monotonic() - t0 > timeout:
                raise SlurmUnavailable(f"{what}: not after {timeout:.0f}s\n{self._tail(name)}")
            time.sleep(0.3)
        log(f"{what} after {time.monotonic() - t0:.1f}s")

    def _tail(self, name: str, n: int = 25) -> str:
        parts = []
        for f in (self.log_dir / f"{name}.out", self.log_dir / f"{name}.log"):
            if f.exists():
                parts.append(f"--- {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(parts)

    def _ok(self, *cmd) -> bool:
        try:
            return subprocess.run(list(cmd), env=self.env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def node_state(self) -> str:
        try:
            return self.run("sinfo", "-h", "-n", "localhost", "-o", "%T", check=False, timeout=10).stdout.strip()
        except subprocess.TimeoutExpired:
            return ""

    def start(self, timeout: float = 60) -> None:
        """Install if needed, write the config, start munged, slurmctld, slurmd; wait until the
        node is idle. Raises SlurmUnavailable (with the daemons' log tails) on failure."""
        if os.geteuid() != 0:
            raise SlurmUnavailable("a local SLURM cluster needs root (daemons run as root)")
        for d in (self.etc, self.run_dir, self.log_dir, self.root / "state", self.root / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        (self.root / "munge").mkdir(mode=0o700, exist_ok=True)
        install_packages(self.log_dir / "apt.log")
        if any(self.pid(n) for n in DAEMONS):
            raise SlurmUnavailable(f"a cluster is already running from {self.root}; stop it first")
        ctld_port, slurmd_port = free_port(), free_port()
        self.conf.write_text(self.render_config(ctld_port, slurmd_port))
        if not self.private_etc:
            self._take_system_conf()

        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, timeout=30)
            key.chmod(0o400)
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={self.run_dir}/munged.daemon.pid",
                               f"--log-file={self.log_dir}/munged.log",
                               f"--seed-file={self.root}/munge/munged.seed"])
        self._wait("munged answers", lambda: self._munge_ok(), 20, "munged")

        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait("slurmctld answers", lambda: self._ok("scontrol", "ping"), 30, "slurmctld")

        # -N: the node is `localhost` in slurm.conf, whatever the hostname
        slurmd = [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)]
        if self.private_etc:
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)  # the mount point
            script = f'mount --bind "$1" /etc/slurm && shift && exec "$@"'
            slurmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(self.etc), *slurmd]
        self._spawn("slurmd", slurmd)
        t0 = time.monotonic()

        def idle() -> bool:
            state = self.node_state()
            if state.startswith(("down", "drain")) and time.monotonic() - t0 > 5:
                self._ok("scontrol", "update", "nodename=localhost", "state=resume")
            return state in ("idle", "mixed", "allocated")

        self._wait("node localhost idle", idle, timeout, "slurmd")

    def _munge_ok(self) -> bool:
        try:
            cred = subprocess.run([_which("munge"), "-S", str(self.munge_socket), "-n"], capture_output=True,
                                  timeout=5)
            return cred.returncode == 0 and subprocess.run(
                [_which("unmunge"), "-S", str(self.munge_socket)], input=cred.stdout, capture_output=True,
                timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _take_system_conf(self) -> None:
        """Fallback without mount namespaces: hold a machine-wide lock (for the life of this
        process), put our config at /etc/slurm/slurm.conf, keep a previous one aside for stop()."""
        self._lock_fh = open(LOCK_FILE, "w")
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > self.lock_timeout:
                    self._lock_fh.close()
                    self._lock_fh = None
                    raise SlurmUnavailable(f"another local test cluster held {LOCK_FILE} for "
                                           f"{self.lock_timeout:.0f}s (no mount namespaces here)") from None
                if time.monotonic() - t0 < 1.5:  # say it once
                    log(f"waiting for {LOCK_FILE}: another local test cluster uses /etc/slurm")
                time.sleep(1)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text(errors="replace").startswith(MARKER):
            saved = SYSTEM_CONF.with_name(f"slurm.conf.saved-{int(time.time())}")
            os.replace(SYSTEM_CONF, saved)
            (self.run_dir / "saved-system-conf").write_text(str(saved))
            log(f"moved {SYSTEM_CONF} to {saved} (put back at stop)")
        shutil.copyfile(self.conf, SYSTEM_CONF)

    def _give_back_system_conf(self) -> None:
        with contextlib.suppress(OSError):
            if str(self.munge_socket) in SYSTEM_CONF.read_text(errors="replace"):  # ours
                SYSTEM_CONF.unlink()
        record = self.run_dir / "saved-system-conf"
        if record.exists():
            os.replace(record.read_text().strip(), SYSTEM_CONF)
            record.unlink()
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def cancel_all_jobs(self, timeout: float = 30) -> None:
        """scancel every job of this cluster and wait until none is left (bounded)."""
        if self.pid("slurmctld") is None:
            return
        with contextlib.suppress(Exception):
            self.run("scancel", "--full", "--user=root", check=False, timeout=15)
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                left = self.run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING,CONFIGURING", "-o", "%i",
                                check=False, timeout=10).stdout.split()
                if not left:
                    return
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop our daemons, by PID (SIGTERM, then SIGKILL after 15 s); undo the fallback."""
        self.cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pid(name)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 15 and Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
                time.sleep(0.2)
            if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
                log(f"{name} (pid {pid}) ignored SIGTERM; SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            self._pid_file(name).unlink(missing_ok=True)
            log(f"stopped {name} (pid {pid})")
        if not self.private_etc:
            self._give_back_system_conf()

    def job_ids_in_log(self) -> dict[str, set[int]]:
        """Job ids slurmctld logged as submitted, started and completed with exit status 0."""
        text = self.slurmctld_log.read_text(errors="replace") if self.slurmctld_log.exists() else ""
        grab = lambda pat: {int(m) for m in re.findall(pat, text)}  # noqa: E731
        return {
            "submitted": grab(r"_slurm_rpc_submit_batch_job: JobId=(\d+)"),
            "started": grab(r"(?:Started|Allocate) JobId=(\d+)"),
            "completed_ok": grab(r"_job_complete: JobId=(\d+) WEXITSTATUS 0"),
        }


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="single-node SLURM on localhost for tests")
    ap.add_argument("command", choices=["start", "stop", "status"])
    ap.add_argument("--root", required=True, help="state/log/config directory of this cluster")
    ap.add_argument("--partition", default="debug")
    a = ap.parse_args(argv)
    cluster = LocalSlurm(a.root, partition=a.partition)
    if a.command == "start":
        try:
            cluster.start()
        except SlurmUnavailable as e:
            log(f"ERROR: {e}")
            cluster.stop()
            return 1
        if not cluster.private_etc:
            log("no mount namespaces: /etc/slurm/slurm.conf is this cluster's until `stop`")
        print(f"export SLURM_CONF={cluster.client_conf}")
    elif a.command == "stop":
        cluster.stop()
    else:
        for n in DAEMONS:
            print(f"{n}: pid {cluster.pid(n)}")
        print(cluster.run("sinfo", check=False).stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
