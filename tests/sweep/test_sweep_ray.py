"""The Ray backend against a real local cluster (`ray start --head` on 127.0.0.1, token auth): a worker
process is killed mid-sweep and the sweep still completes with the local backend's results, bit for bit. And the
cluster a sweep starts for itself: token auth enforced, loopback only, its leftovers reaped after a killed driver."""

import io
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import psutil
import pytest

from interp.errors import ConfigError
from interp.sweep.ray_backend import pack, unpack
from tests.sweep.sweep_helpers import ROOT, TINY_NAMES, TINY_TOML, sweep_statuses, wait_until

RAY_CLI = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(temp: str, mark: str) -> set[psutil.Process]:
    """Every process of the cluster started for this test: those naming its temp dir or carrying its marker
    in their environment, and all their descendants. Nothing else on the machine is touched."""
    roots = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        if p.pid == os.getpid():
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        if temp in cmd or (p.info["environ"] or {}).get("INTERP_TEST_RAY_CLUSTER") == mark:
            roots.append(p)
    procs = set(roots)
    for r in roots:
        try:
            procs.update(r.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return procs


def _stop(temp: str, mark: str) -> None:
    """`ray stop`, limited to this cluster's processes (other Ray clusters on the machine keep running)."""
    procs = _cluster(temp, mark)
    for sig in ("terminate", "kill"):
        for p in procs:
            try:
                getattr(p, sig)()
            except psutil.NoSuchProcess:
                pass
        t0 = time.time()
        while time.time() - t0 < 3 and any(_running(p) for p in procs):
            time.sleep(0.05)
        procs = {p for p in procs if _running(p)}
        if not procs:
            return


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; its parent (or init) reaps it
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def ray_head(request):
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    mark = secrets.token_hex(8)
    port = _free_port()
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # bind to 127.0.0.1 only
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), INTERP_TEST_RAY_CLUSTER=mark,
               # Ray runs its workers at nice 15; beside the suite's other pytest worker (nice 0) they got ~3 % of a
               # core, and this file took 6 minutes of the suite's wall time for 4 runs of 200 steps
               RAY_worker_niceness="0",
               # under `uv run pytest`, Ray would rebuild the project's environment for its workers in a copy of the
               # project (166 packages, 21,530 files compiled: about 70 s per cluster here); they share this one
               RAY_ENABLE_UV_RUN_RUNTIME_ENV="0",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    def stop() -> None:
        _stop(temp, mark)
        shutil.rmtree(temp, ignore_errors=True)

    request.addfinalizer(stop)  # registered first: runs even if the start fails
    subprocess.run([*RAY_CLI, "start", "--head", "--port", str(port), "--num-cpus", "2", "--temp-dir", temp,
                    "--include-dashboard", "false", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=600)  # a hung head, not a slow one
    return {"address": f"127.0.0.1:{port}", "env": env, "temp": temp, "mark": mark}


@pytest.mark.ci
def test_cluster_listens_on_loopback_only(ray_head):
    listening = []
    for p in _cluster(ray_head["temp"], ray_head["mark"]):
        try:
            listening += [c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in listening), listening


@pytest.mark.ci
def test_ray_sweep_survives_a_killed_worker_and_matches_local(ray_head, reference_sweep, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_TOML)
    out = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-m", "interp.cli", "sweep", str(spec), "--out", str(out),
                             "--backend", "ray", "--address", ray_head["address"], "--quiet"],
                            env=ray_head["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def busy_worker():
            if "running" not in sweep_statuses(out).values():
                return None
            for p in _cluster(ray_head["temp"], ray_head["mark"]):
                try:
                    if p.name().startswith("ray::sweep_run") or " ".join(p.cmdline()).startswith("ray::sweep_run"):
                        return p
                except psutil.NoSuchProcess:
                    pass
            return None

        victim = wait_until(busy_worker, what="a Ray worker running a sweep task", proc=proc)
        victim.kill()  # mid-task: its title is ray::sweep_run only while it executes one
        victim.wait(timeout=30)
        stdout, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "4 runs: 4 complete" in stdout
    # the killed task was run again; everything came back through Ray into --out, equal to the local sweep
    ref = reference_sweep.path
    for n in TINY_NAMES:
        for f in sorted((ref / "runs" / n).glob("step_*.safetensors")) + [ref / "runs" / n / "metrics.csv"]:
            assert (out / "runs" / n / f.name).read_bytes() == f.read_bytes(), (n, f.name)
    assert (out / "results.csv").read_bytes() == (ref / "results.csv").read_bytes()
    assert (out / "summary.csv").read_bytes() == (ref / "summary.csv").read_bytes()


def test_artifacts_round_trip_and_foreign_entries_are_refused(reference_sweep, tmp_path):
    src = reference_sweep.path / "runs" / TINY_NAMES[0]
    data = pack(src)
    unpack(data, tmp_path / "copy")
    names = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert "measures/measures.csv" in names and "step_000200.safetensors" in names and ".lock" not in names
    for n in names:
        assert (tmp_path / "copy" / n).read_bytes() == (src / n).read_bytes()
    for evil in ("../escape.json", "notes.txt", "step_1.safetensors/../../x.csv"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(evil)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        with pytest.raises(ConfigError, match="unexpected entry"):
            unpack(buf.getvalue(), tmp_path / "evil")
        assert not (tmp_path / "escape.json").exists() and not (tmp_path / "evil").exists()


def test_a_failed_connection_names_the_address_and_leaves_no_sweep_behind(tmp_path):
    pytest.importorskip("ray")
    port = _free_port()  # closed again: nothing listens there
    out, spec = tmp_path / "sweep", tmp_path / "tiny.toml"
    spec.write_text(TINY_TOML)
    env = dict(os.environ, RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S="1")  # 1 + 2 + 4 s of Ray Client retries
    r = subprocess.run([sys.executable, "-m", "interp.cli", "sweep", str(spec), "--out", str(out),
                        "--backend", "ray", "--address", f"ray://127.0.0.1:{port}", "--quiet"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 1
    assert r.stderr.startswith(f"interp sweep: error: --address ray://127.0.0.1:{port}: ")
    assert len(r.stderr.splitlines()) == 1 and ("ray[client]" in r.stderr or "cannot connect" in r.stderr
                                             or "no Ray cluster reachable there" in r.stderr)
    assert not out.exists(), "a sweep that never connected leaves no directory and no sweep.json"


_OWNER = """
import os, sys
import ray
from interp.sweep import ray_backend
ray_backend._connect(None, 1, 1)  # what `interp sweep --backend ray` without --address does
where = ray.remote(num_cpus=0)(lambda: os.getpid())
print("CLUSTER", ray.get_runtime_context().gcs_address, ray.get(where.remote()), flush=True)
sys.stdin.readline()
"""
_INTRUDER = """
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
    print("RAN", ray.get(ray.remote(num_cpus=0)(lambda: 1).remote(), timeout=60))
except Exception as e:
    print("REFUSED", type(e).__name__)
"""


@pytest.mark.ci
def test_the_cluster_a_sweep_starts_refuses_drivers_without_its_token_and_leaves_no_agents(tmp_path):
    """Our own cluster (no --address) is started with a random token: our driver runs a task, a driver with no
    token or another token is refused by the GCS. SIGKILLed, its driver leaves Ray agents behind; the next sweep's
    start reaps them."""
    pytest.importorskip("ray")
    from interp.sweep import ray_backend

    if not ray_backend.token_auth_supported():
        pytest.skip("this Ray has no token authentication (Ray >= 2.52 has)")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    mark = secrets.token_hex(8)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_TMPDIR=temp, HOME=str(tmp_path),  # no ~/.ray token
                RAY_ENABLE_UV_RUN_RUNTIME_ENV="0",  # as in ray_head: the workers share this environment
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], env=dict(base, INTERP_TEST_RAY_CLUSTER=mark),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = owner.stdout.readline().split()
        assert line[:1] == ["CLUSTER"], f"the sweep's own cluster did not start (exit {owner.poll()})"
        address, task_pid = line[1], int(line[2])
        assert address.startswith("127.0.0.1:") and task_pid != owner.pid  # our driver ran a task on it
        listening = []
        for p in _cluster(temp, mark):
            try:
                listening += [c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in listening), listening
        for auth in ({}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}):
            r = subprocess.run([sys.executable, "-c", _INTRUDER, address], capture_output=True, text=True,
                               env=dict(base, RAY_gcs_server_port_wait_time_s="2", **auth), timeout=120)
            assert r.stdout.startswith("REFUSED") and "RAN" not in r.stdout, (auth, r.stdout, r.stderr[-2000:])
            assert "InvalidAuthToken" in r.stderr, r.stderr[-2000:]  # refused for the token, not for anything else
        # the driver killed: its GCS server and raylet exit with it, its agents stay until the next start reaps them
        procs = _cluster(temp, mark)
        owner.kill()
        owner.wait()
        deadline = time.time() + 60
        while time.time() < deadline and any(_running(p) and any(s in " ".join(p.cmdline()) for s in
                                                                 ("gcs_server", "raylet")) for p in procs
                                             if _running(p)):
            time.sleep(0.5)
        left = {p for p in procs if _running(p)}
        reaped = set(ray_backend.reap_orphans())
        assert {p.pid for p in left} <= reaped, ([(p.pid, p.name()) for p in left], reaped)
        for p in left:
            try:
                p.wait(timeout=10)
            except psutil.NoSuchProcess:
                pass
        assert not any(_running(p) for p in procs)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        _stop(temp, mark)
        shutil.rmtree(temp, ignore_errors=True)
