"""The Ray backend: each run is a Ray task (retried if its worker or node dies); artifacts come back through Ray.

``pip install "interp[ray]"``. With ``address`` ("auto", "HOST:PORT", "ray://HOST:PORT") the sweep joins a
running cluster (``ray start --head`` on one machine, ``ray start --address HEAD:PORT`` on the others; every
node needs the same interp, torch and transformer-lens). Without it a single-node Ray is started for the
sweep, listening on 127.0.0.1 only, and stopped at the end.

Workers need not share the driver's filesystem: a task trains and measures in a temporary directory on
its node and returns the run directory as one tar archive of bytes (only the run's own safetensors,
JSON and CSV files; nothing is pickled), which the driver unpacks into ``DIR/runs/<name>/``. A run that
is resumed ships its saved state to the task the same way. Live losses travel through a small Ray queue.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from .worker import MEASURES_DIR, disk_state, run_job

__all__ = ["execute", "check_available", "check_reachable", "connect", "disconnect", "pack", "unpack", "MAX_RETRIES",
           "CONNECT_TIMEOUT_S", "reap_orphans", "token_auth_supported", "DRIVER_ENV"]

MAX_RETRIES = 2  # a task whose worker process or node dies is run again this many times
CONNECT_TIMEOUT_S = 10.0  # --address HOST:PORT must accept a TCP connection within this, or the sweep stops
_RUN_FILE = re.compile(r"^(run\.json|split\.json|metrics\.csv|resume\.safetensors|step_\d+\.safetensors|"
                       rf"{MEASURES_DIR}/(measures\.csv|measures\.json))$")


def check_available() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError('--backend ray needs Ray: pip install "interp[ray]" (Ray 2.x)') from None


# ---------------------------------------------------------------------------------------------
# artifacts: a run directory as bytes and back


def pack(run_dir: Path, include_measures: bool = True) -> bytes:
    """The run's own files (run.json, split.json, metrics.csv, checkpoints, resume state, measures) as an
    uncompressed tar archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(run_dir.rglob("*")):
            rel = path.relative_to(run_dir).as_posix()
            if path.is_file() and _RUN_FILE.match(rel) and (include_measures or not rel.startswith(MEASURES_DIR)):
                tar.add(path, arcname=rel, recursive=False)
    return buf.getvalue()


def unpack(data: bytes, run_dir: Path) -> None:
    """Replace ``run_dir`` with the archive's files. Only the run's own file names are accepted (no links,
    no paths outside the run); the new directory is complete on disk before it takes the old one's place."""
    run_dir = Path(run_dir)
    staging = run_dir.with_name(f".{run_dir.name}.incoming")
    old = run_dir.with_name(f".{run_dir.name}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not _RUN_FILE.match(member.name):
                shutil.rmtree(staging, ignore_errors=True)
                raise ConfigError(f"artifacts of run {run_dir.name}: unexpected entry {member.name!r} in the archive")
            target = staging / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
    shutil.rmtree(old, ignore_errors=True)
    if run_dir.exists():
        os.replace(run_dir, old)
    os.replace(staging, run_dir)
    shutil.rmtree(old, ignore_errors=True)


def recover(runs_dir: Path) -> None:
    """Finish or undo an unpack cut short by a kill (a run directory is never left half-replaced)."""
    if not runs_dir.is_dir():
        return
    for p in runs_dir.iterdir():
        if p.name.startswith(".") and p.name.endswith(".incoming"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(".") and p.name.endswith(".old"):
            live = runs_dir / p.name[1:-len(".old")]
            if live.exists():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.replace(p, live)


# ---------------------------------------------------------------------------------------------
# the task


def sweep_run(job: dict[str, Any], state: bytes | None, threads: int, queue) -> dict[str, Any]:
    """One run on a Ray worker: unpack any saved state, train/resume, measure, and return the result
    with the run directory packed as ``artifacts`` (bytes)."""
    import socket

    def send(item) -> None:
        try:
            queue.put_nowait(item)
        except Exception:  # the queue is only for the display; a full or lost queue never fails a run
            pass

    send(("started", job["name"], f"pid {os.getpid()} on {socket.gethostname()}"))
    with tempfile.TemporaryDirectory(prefix="interp-sweep-") as tmp:
        run_dir = Path(tmp) / "run"
        if state is not None:
            unpack(state, run_dir)
        result = run_job(job, run_dir, threads, on_progress=lambda row: send(("progress", job["name"], row)))
        result["artifacts"] = pack(run_dir) if run_dir.is_dir() else None
    return result


# ---------------------------------------------------------------------------------------------
# the driver side


def execute(jobs: list[dict[str, Any]], events, *, workers: int | None, threads: int, runs_dir: Path,
            address: str | None) -> None:
    """Submit every job as a Ray task (at most ``workers`` at a time) and collect the results."""
    import ray
    from ray.util.queue import Queue

    recover(runs_dir)
    started_here = _connect(address, workers, threads)
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
        task = ray.remote(num_cpus=threads, max_retries=MAX_RETRIES)(sweep_run)
        pending = list(jobs)
        in_flight: dict[Any, str] = {}
        while pending or in_flight:
            while pending and len(in_flight) < workers:
                job = pending.pop(0)
                run_dir = runs_dir / job["name"]
                state = pack(run_dir, include_measures=False) if disk_state(run_dir) in ("resume", "measure") else None
                in_flight[task.remote(job, state, threads, queue)] = job["name"]
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            _drain(queue, events)
            for ref in ready:
                name = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # the task's worker or node died more than MAX_RETRIES times, ...
                    result = {"status": "failed", "error": f"Ray task failed: {_one_line(e)}", "final": None,
                              "seconds": None}
                artifacts = result.pop("artifacts", None)
                if artifacts:
                    unpack(artifacts, runs_dir / name)
                events.finished(name, result)
    finally:
        if started_here:
            _shutdown_ours()


_QUIET = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}


def connect(address: str) -> bool:
    """Join the cluster at ``address`` ("auto", "HOST:PORT", "ray://HOST:PORT"); True if joined here (False if
    this process was already connected). A failure is a ConfigError naming the address."""
    import ray

    if ray.is_initialized():
        return False
    check_reachable(address)  # Ray itself retries an unreachable address for minutes
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what ray[client] adds to Ray)
        except ImportError:
            raise ConfigError(f"--address {address}: a ray:// address needs Ray Client: "
                              'pip install "interp[ray]" (which installs ray[client])') from None
    try:
        ray.init(address=address, **_QUIET)
    except Exception as e:
        raise ConfigError(f"--address {address}: cannot connect to a Ray cluster ({_one_line(e)})") from None
    return True


def disconnect() -> None:
    import ray

    ray.shutdown()


def _connect(address: str | None, workers: int | None, threads: int) -> bool:
    """Join the cluster at ``address``, or start a single-node one on 127.0.0.1. True if started here."""
    import ray

    if ray.is_initialized():
        return False
    quiet = _QUIET
    if address is not None:
        return connect(address)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only, for what Ray reads later
    reap_orphans()  # what a killed earlier sweep's cluster left behind
    global _restore_auth
    restore_auth = _token_auth_for_our_cluster()
    restore_loopback = _loopback_for_our_cluster()

    def restore() -> None:
        restore_loopback()
        restore_auth()

    _restore_auth = restore
    try:
        ray.init(num_cpus=(workers or 1) * threads, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    except BaseException:
        _shutdown_ours()
        raise
    _note_our_cluster()
    return True


_restore_auth: Callable[[], None] | None = None


def _shutdown_ours() -> None:
    """Stop the cluster started by :func:`_connect` and restore the token settings it replaced."""
    import ray

    global _restore_auth
    ray.shutdown()
    _forget_our_cluster()
    if _restore_auth is not None:
        _restore_auth()
        _restore_auth = None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """``HOST:PORT`` or ``ray://HOST:PORT`` must accept a TCP connection within ``timeout`` seconds (Ray itself
    retries an unreachable address for minutes). "auto" is looked up by Ray locally and fails at once."""
    import socket

    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    if address == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise ConfigError(f"--address {address}: the port {port!r} is not a number (use HOST:PORT)") from None
    try:
        with socket.create_connection((host.strip("[]"), port_n), timeout=timeout) as conn:
            # (a cluster with TLS (RAY_USE_TLS) speaks TLS first: the plain handshake does not apply there)
            answer = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") or \
                _http2_answer(conn, HANDSHAKE_TIMEOUT_S)
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster reachable there within {timeout:g} s "
                          f"({e.strerror or _one_line(e)}); is `ray start --head` running on it?") from None
    if not answer:
        raise ConfigError(f"--address {address}: not a Ray cluster (something listens there but does not answer "
                          f"the gRPC handshake within {HANDSHAKE_TIMEOUT_S:g} s); give the head node's GCS address, "
                          "printed by `ray start --head`")


# A Ray cluster's address (its GCS, or a Ray Client server for ray://) speaks gRPC over HTTP/2: sent the HTTP/2
# connection preface and an empty SETTINGS frame, it answers with a SETTINGS frame of its own.
HANDSHAKE_TIMEOUT_S = 5.0
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _http2_answer(conn, timeout: float) -> bool:
    """True when the peer on ``conn`` answers the HTTP/2 preface with a SETTINGS frame within ``timeout`` seconds
    (in all: a peer that trickles bytes cannot hold it longer)."""
    import time

    deadline = time.monotonic() + timeout
    try:
        conn.settimeout(timeout)
        conn.sendall(_HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            conn.settimeout(left)
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # a timeout, a reset: no answer
        return False
    return head[3] == 4 and head[4] & 1 == 0  # a SETTINGS frame (not an ACK) on stream 0


def _token_auth_for_our_cluster() -> Callable[[], None]:
    """The cluster this sweep starts for itself requires a token that only this driver (and the processes Ray
    starts for it, which inherit its environment) knows: a driver without it is refused by every Ray service.

    Needs Ray >= 2.52 (its token authentication; RAY_AUTH_MODE/RAY_AUTH_TOKEN are ignored before). Ray reads the
    mode and token once, when it is imported, so its cached copy is refreshed here. Returns the function that
    restores this process's previous settings after ``ray.shutdown()`` (a later ``--address`` sweep in the same
    process must not present this cluster's token to another one)."""
    import secrets

    before = {k: os.environ.get(k) for k in (*_AUTH_ENV, DRIVER_ENV)}
    os.environ[DRIVER_ENV] = _process_tag(os.getpid()) or str(os.getpid())  # inherited by every Ray process
    if not (os.environ.get("RAY_AUTH_MODE") == "token" and os.environ.get("RAY_AUTH_TOKEN")):  # else: the caller's
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    _refresh_ray_auth()

    def restore() -> None:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _refresh_ray_auth()

    return restore


_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _refresh_ray_auth() -> None:
    """Make an imported Ray (>= 2.52) re-read RAY_AUTH_MODE and the token from the environment."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # Ray before 2.52: no token authentication to refresh
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _loopback_for_our_cluster() -> Callable[[], None]:
    """Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is imported; set after that (a driver that
    imported Ray first, as the sweep's own checks do), it would be ignored and the cluster would listen on every
    interface. Its cached copy is updated too; returns the function that puts it back."""
    try:
        from ray._private import ray_constants
    except ImportError:
        return lambda: None
    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0" or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        return lambda: None
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False

    def restore() -> None:
        ray_constants.ENABLE_RAY_CLUSTER = before

    return restore


DRIVER_ENV = "INTERP_SWEEP_RAY_DRIVER"  # "PID:START" of the sweep whose own cluster a Ray process belongs to


def _process_tag(pid: int) -> str | None:
    """"PID:START" (start time in clock ticks since boot: a reused pid gets another) of a live process, or None.
    Linux only (/proc); elsewhere None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] == "Z":  # a zombie has exited
        return None
    return f"{pid}:{fields[19]}"


def _orphan_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"interp-ray-{os.getuid()}"


def _descendants(root: int) -> list[int]:
    """The pids of every live descendant of ``root`` (Linux: /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _note_our_cluster() -> None:
    """Write down the processes of the cluster just started (``PID:START`` a line, this driver's first), for
    :func:`reap_orphans` of a later sweep should this driver be killed."""
    me = _process_tag(os.getpid())
    if me is None:
        return
    tags = [t for t in (_process_tag(p) for p in _descendants(os.getpid())) if t]
    try:
        _orphan_dir().mkdir(mode=0o700, exist_ok=True)
        (_orphan_dir() / f"{os.getpid()}.pids").write_text("\n".join([me, *tags]) + "\n")
    except OSError:
        pass  # only the clean-up after a kill is lost


def _forget_our_cluster() -> None:
    try:
        (_orphan_dir() / f"{os.getpid()}.pids").unlink()
    except OSError:
        pass


def reap_orphans() -> list[int]:
    """SIGKILL the processes left by a cluster that an earlier sweep started for itself and whose driver is gone.

    Killed with SIGKILL, such a driver takes its GCS server and raylet with it, but Ray leaves its agents
    (ray::DashboardAgent, ray::RuntimeEnvAgent) and idle workers running, reparented to init. The processes of
    our cluster are known two ways: those running when ray.init returned are listed (with their start times,
    so a reused pid is never mistaken for one) in a file of this user's temporary directory, removed at a
    normal shutdown; those started later carry ``INTERP_SWEEP_RAY_DRIVER=PID:START`` of their driver in their
    environment. Linux only (reads /proc); returns the pids killed."""
    import signal

    proc = Path("/proc")
    if not proc.is_dir():
        return []
    doomed: set[str] = set()
    if _orphan_dir().is_dir():
        for f in _orphan_dir().glob("*.pids"):
            try:
                driver, *tags = f.read_text().split()
            except (OSError, ValueError):
                continue
            if _process_tag(int(driver.partition(":")[0]) if driver.partition(":")[0].isdigit() else 0) != driver:
                doomed.update(tags)
                f.unlink(missing_ok=True)
    prefix = (DRIVER_ENV + "=").encode()
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if d.stat().st_uid != os.getuid():
                continue
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        tag = next((item[len(prefix):].decode(errors="replace") for item in env.split(b"\0")
                    if item.startswith(prefix)), None)
        if tag and tag.partition(":")[0].isdigit() and _process_tag(int(tag.partition(":")[0])) != tag:
            doomed.add(_process_tag(int(d.name)) or "")  # its driver has exited (or the pid is another's now)
    killed = []
    for tag in sorted(doomed):
        pid = tag.partition(":")[0]
        if pid.isdigit() and int(pid) != os.getpid() and _process_tag(int(pid)) == tag:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
            except OSError:
                pass
    return killed


def token_auth_supported() -> bool:
    """Whether the installed Ray can enforce token authentication (Ray >= 2.52)."""
    try:
        from ray._raylet import AuthenticationTokenLoader  # noqa: F401
    except ImportError:
        return False
    return True


def _drain(queue, events) -> None:
    try:
        items = queue.get_nowait_batch(queue.qsize())
    except Exception:
        return
    for kind, name, payload in items:
        if kind == "started":
            events.started(name, payload)
        elif kind == "progress":
            events.progress(name, payload)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:300] + " ...") if len(text) > 300 else text or type(e).__name__

