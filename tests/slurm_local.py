"""A private one-node Slurm cluster on localhost for tests (Debian's slurm-wlm 22.05 + munge).

Everything lives in one temporary folder: its own munge key and socket, a slurm.conf on free ports,
state, spool and logs, so it can run beside another munged/slurmctld on the same machine. The
daemons are stopped by the PIDs they wrote, never by name. `start()` returns the environment to use
with sbatch/squeue, or raises `Unavailable` with the reason (no root, apt-get cannot install the
packages, a daemon does not come up); tests turn that into a skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munged", "mungekey"]


class Unavailable(Exception):
    """Slurm cannot be run here; the message says why."""


def _missing() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_installed(timeout: int = 150) -> None:
    """Install Debian's Slurm and munge with apt-get when they are missing (root only)."""
    if not _missing():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"Slurm binaries missing ({', '.join(_missing())}) and no root apt-get to install "
                          f"{' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{' '.join(cmd)} did not finish in {timeout}s") from None
        if p.returncode != 0:
            tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1:] or [f"exit {p.returncode}"]
            raise Unavailable(f"{' '.join(cmd)} failed: {tail[0]}")
    if _missing():
        raise Unavailable(f"still missing after apt-get install: {', '.join(_missing())}")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _sbin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def slurm_version(env: dict[str, str]) -> str:
    """'slurm-wlm 22.05.8' (the client needs SLURM_CONF in `env` even for --version)."""
    p = subprocess.run([_sbin("sbatch"), "--version"], capture_output=True, text=True, env=env)
    return p.stdout.strip() or p.stderr.strip()


class LocalSlurm:
    """One slurmctld + one slurmd (2 CPUs, no GPU) + munged, under `base`."""

    def __init__(self, base: Path, cpus: int = 2):
        self.base, self.cpus = Path(base), cpus
        self.conf = self.base / "slurm.conf"
        self.env: dict[str, str] = {}
        self._pidfiles: list[Path] = []

    def _run(self, *cmd: str, what: str) -> None:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Unavailable(f"{what} failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-300:]}")

    def start(self, timeout: float = 60) -> dict[str, str]:
        if os.geteuid() != 0:
            raise Unavailable("a local slurmd must run as root (SlurmdUser=root); this test is not root")
        ensure_installed()
        b, host = self.base, socket.gethostname().split(".")[0]
        m = b / "munge"
        for d in (m, b / "state", b / "spool", b / "log"):
            d.mkdir(parents=True, exist_ok=True)
        m.chmod(0o700)
        self._run(_sbin("mungekey"), "-c", "-k", str(m / "munge.key"), what="mungekey")
        self._pidfiles.append(m / "munged.pid")
        self._run(_sbin("munged"), "--force", f"--socket={m / 'sock'}", f"--key-file={m / 'munge.key'}",
                  f"--log-file={m / 'munged.log'}", f"--pid-file={m / 'munged.pid'}", f"--seed-file={m / 'seed'}",
                  what="munged")
        ctld_port, d_port = _free_ports(2)
        self.conf.write_text("\n".join([
            "ClusterName=local", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
            f"SlurmctldPort={ctld_port}", f"SlurmdPort={d_port}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={m / 'sock'}",
            f"StateSaveLocation={b / 'state'}", f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'slurmctld.pid'}", f"SlurmdPidFile={b / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
            f"NodeName={host} CPUs={self.cpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._pidfiles.append(b / "slurmctld.pid")
        self._run(_sbin("slurmctld"), "-f", str(self.conf), what="slurmctld")
        time.sleep(1)
        self._pidfiles.append(b / "slurmd.pid")
        self._run(_sbin("slurmd"), "-f", str(self.conf), what="slurmd")
        t0 = time.time()
        while time.time() - t0 < timeout:
            p = subprocess.run([_sbin("sinfo"), "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if p.returncode == 0 and p.stdout.strip() == "idle":
                return self.env
            time.sleep(0.5)
        log = (b / "log" / "slurmctld.log")
        tail = log.read_text().splitlines()[-3:] if log.exists() else []
        raise Unavailable(f"the local Slurm node did not become idle in {timeout:.0f}s: {' | '.join(tail)}")

    def stop(self) -> None:
        """Stop slurmd, slurmctld and munged by their PID files (in that order)."""
        for pf in reversed(self._pidfiles):
            try:
                pid = int(pf.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):  # up to 5 s for a clean exit
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                if Path(f"/proc/{pid}/stat").exists() and ") Z " in Path(f"/proc/{pid}/stat").read_text():
                    break  # exited, waiting to be reaped by its parent
                time.sleep(0.1)
        self._pidfiles.clear()
