"""One local control plane: etcd + kube-apiserver on free loopback ports, started as background processes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from e2e.binaries import Binaries
from e2e.cluster.kubeconfig import client_cert_user, write_kubeconfig
from e2e.cluster.pki import CertificateAuthority, service_account_keys

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LOOPBACK = "127.0.0.1"


LOWEST_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default range starts here


def free_port() -> int:
    """A free loopback port for a server we start later, below the kernel's ephemeral range when there is room.

    A port from bind(0) comes from that range, and between our release and the server's bind an outgoing
    connection (an apiserver has hundreds to etcd) may take it: "address already in use" in a CI run.
    """
    floor = _ephemeral_floor()
    if floor - LOWEST_PORT >= 1000:
        for _ in range(200):
            port = random.randrange(LOWEST_PORT, floor)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    # No room below the range, or nothing free there: let the kernel choose.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class PlaneState:
    """What cluster.json records of one control plane: enough to restart or stop it later."""

    name: str
    root: str
    apiserver_port: int
    etcd_client_port: int
    etcd_peer_port: int
    service_cidrs: str
    etcd_data_dir: str = ""
    etcd_pid: int = 0
    apiserver_pid: int = 0
    etcd_cmd: list[str] = field(default_factory=list)
    apiserver_cmd: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.etcd_client_port}"

    @property
    def kubeconfig(self) -> Path:
        return Path(self.root).parent / f"{self.name}.kubeconfig"

    @property
    def pki(self) -> Path:
        return Path(self.root) / "pki"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def prepare(name: str, root: Path, binaries: Binaries, service_cidrs: str) -> PlaneState:
    """Generate PKI, kubeconfig and the command lines of one control plane (nothing is started yet)."""
    pki = root / "pki"
    pki.mkdir(parents=True)
    (root / "logs").mkdir()
    state = PlaneState(
        name=name,
        root=str(root),
        apiserver_port=free_port(),
        etcd_client_port=free_port(),
        etcd_peer_port=free_port(),
        service_cidrs=service_cidrs,
    )
    ca = CertificateAuthority(f"{name}-ca")
    ca_cert, _ = ca.pair.write(pki, "ca")
    serving_cert, serving_key = ca.issue(
        "kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ips=(LOOPBACK,),
        server=True,
    ).write(pki, "apiserver")
    admin = ca.issue("tenant-cloud-admin", organizations=("system:masters",), client=True)
    admin.write(pki, "admin")
    front_proxy = CertificateAuthority(f"{name}-front-proxy-ca")
    front_proxy_ca, _ = front_proxy.pair.write(pki, "front-proxy-ca")
    proxy_cert, proxy_key = front_proxy.issue("front-proxy-client", client=True).write(pki, "front-proxy-client")
    sa_key, sa_pub = service_account_keys(pki)
    write_kubeconfig(
        state.kubeconfig,
        name=name,
        server=state.server,
        ca_pem=ca.pair.cert_pem,
        user=client_cert_user(admin.cert_pem, admin.key_pem),
    )
    state.etcd_data_dir = _etcd_data_dir(name)
    peer_url = f"http://{LOOPBACK}:{state.etcd_peer_port}"
    state.etcd_cmd = [
        str(binaries.etcd),
        f"--name={name}",
        f"--data-dir={state.etcd_data_dir}",
        f"--listen-client-urls={state.etcd_url}",
        f"--advertise-client-urls={state.etcd_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        "--log-level=warn",
    ]
    state.apiserver_cmd = [
        str(binaries.kube_apiserver),
        f"--etcd-servers={state.etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={state.apiserver_port}",
        f"--tls-cert-file={serving_cert}",
        f"--tls-private-key-file={serving_key}",
        f"--client-ca-file={ca_cert}",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,ValidatingAdmissionPolicy",
        f"--service-cluster-ip-range={service_cidrs}",
        "--allow-privileged=true",
        f"--requestheader-client-ca-file={front_proxy_ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={proxy_cert}",
        f"--proxy-client-key-file={proxy_key}",
        "--profiling=false",
        "--v=1",
    ]
    return state


def _etcd_data_dir(name: str) -> str:
    # etcd fsyncs every write; on tmpfs that costs nothing, and test data need not survive a reboot.
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix=f"tenant-cloud-{name}-etcd-", dir=parent)


def _spawn(cmd: list[str], log_path: Path) -> int:
    with log_path.open("ab") as log:
        # A session of its own: the process outlives `up` and a Ctrl-C in the caller's terminal.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def start_etcd(state: PlaneState) -> None:
    state.etcd_pid = _spawn(state.etcd_cmd, Path(state.root) / "logs" / "etcd.log")


def start_apiserver(state: PlaneState) -> None:
    state.apiserver_pid = _spawn(state.apiserver_cmd, Path(state.root) / "logs" / "kube-apiserver.log")


def _ssl_context(state: PlaneState) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(state.pki / "ca.crt"))
    context.load_cert_chain(str(state.pki / "admin.crt"), str(state.pki / "admin.key"))
    return context


def wait_ready(state: PlaneState, timeout: float = 90.0) -> None:
    """Block until /readyz answers ok; fail early, with the log tail, if the apiserver died."""
    context = _ssl_context(state)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{state.server}/readyz", context=context, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if not pid_alive(state.apiserver_pid):
            raise RuntimeError(f"{state.name} kube-apiserver exited:\n{log_tail(state, 'kube-apiserver.log')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{state.name} kube-apiserver not ready after {timeout:.0f}s")
        time.sleep(0.1)


def log_tail(state: PlaneState, log_name: str, lines: int = 30) -> str:
    path = Path(state.root) / "logs" / log_name
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def port_open(port: int) -> bool:
    """Something accepts connections on this loopback port."""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone; reap it.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
    return done == 0 and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _owns(pid: int, binary: str) -> bool:
    """True when pid still runs `binary`, so a recycled PID is never signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == binary


def stop_process(pid: int, binary: str, timeout: float = 10.0) -> None:
    if pid <= 0 or not _owns(pid, binary):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def stop(state: PlaneState) -> None:
    if state.apiserver_cmd:
        stop_process(state.apiserver_pid, state.apiserver_cmd[0])
    if state.etcd_cmd:
        stop_process(state.etcd_pid, state.etcd_cmd[0])
    if state.etcd_data_dir:
        shutil.rmtree(state.etcd_data_dir, ignore_errors=True)
