"""A throw-away local Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) for tests, benchmarks and trying the
PACS features: started from ``/usr/sbin/Orthanc`` with a temporary JSON configuration on free loopback ports, our AE
title listed in ``DicomModalities``, stopped by PID. Never the system service.

    with LocalOrthanc(tmp_path, our_ae="MEDVIEWER", our_port=scp_port) as pacs:
        pacs.upload(paths)             # REST upload (POST /instances)
        node = pacs.node()             # a PacsNode for DIMSE;  pacs.web_node() for DICOMweb
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from medviewer.net.nodes import PacsNode

log = logging.getLogger(__name__)

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dicomweb_plugin() -> str | None:
    """Path of the Orthanc DICOMweb plugin, or None when ``orthanc-dicomweb`` is not installed."""
    for d in PLUGIN_DIRS:
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.startswith("libOrthancDicomWeb.so"):
                return str(Path(d) / name)
    return None


def available() -> bool:
    """Whether Orthanc can be started here."""
    return os.access(ORTHANC, os.X_OK)


class LocalOrthanc:
    """A private Orthanc. ``folder``: its storage and configuration (created). ``our_ae``/``our_host``/
    ``our_port``: the modality it knows us as (the C-MOVE destination). ``aet``: its own AE title. ``users``:
    HTTP basic users for the REST/DICOMweb API ({} = no authentication). ``allow_unknown``: accept C-FIND/C-GET/
    C-MOVE from AE titles it does not know (default False: like a hospital PACS, it only serves known modalities).
    """

    def __init__(self, folder: str | Path, *, our_ae: str = "MEDVIEWER", our_host: str = "127.0.0.1",
                 our_port: int = 11112, aet: str = "ORTHANC", users: dict[str, str] | None = None,
                 allow_unknown: bool = False):
        self.folder = Path(folder)
        self.aet = aet
        self.our_ae, self.our_host, self.our_port = our_ae, our_host, our_port
        self.users = dict(users or {})
        self.allow_unknown = allow_unknown
        self.dicom_port = 0
        self.http_port = 0
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ life cycle
    def config(self) -> dict:
        plugin = dicomweb_plugin()
        cfg = {
            "Name": "medviewer-test", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"), "DicomAet": self.aet, "DicomPort": self.dicom_port,
            "HttpPort": self.http_port, "RemoteAccessAllowed": False, "HttpServerEnabled": True,
            "AuthenticationEnabled": bool(self.users), "RegisteredUsers": self.users,
            "DicomCheckCalledAet": True, "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": self.allow_unknown, "DicomAlwaysAllowGet": self.allow_unknown,
            "DicomAlwaysAllowMove": self.allow_unknown,
            "DicomModalities": {"medviewer": {"AET": self.our_ae, "Host": self.our_host, "Port": self.our_port}},
            "DicomScpTimeout": 30, "StableAge": 1, "ConcurrentJobs": 2, "HttpTimeout": 60,
            "Plugins": [plugin] if plugin else [], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StorageCompression": False, "SaveJobs": False, "DeidentifyLogs": True,
            "OverwriteInstances": True, "DefaultEncoding": "Utf8",
        }
        return cfg

    def start(self, timeout: float = 30.0) -> "LocalOrthanc":
        """Start Orthanc and wait until its REST API answers. Raises RuntimeError (with its log) otherwise."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dicom_port = self.dicom_port or free_port()
        self.http_port = self.http_port or free_port()
        cfg_path = self.folder / "orthanc.json"
        cfg_path.write_text(json.dumps(self.config(), indent=1), encoding="utf-8")
        self._log = open(self.folder / "orthanc.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([ORTHANC, str(cfg_path)], stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.folder, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                self.rest("GET", "/system")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not start: {(self.folder / 'orthanc.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop Orthanc by PID (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL Orthanc now (a PACS that goes away mid-transfer)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> "LocalOrthanc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ access
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def node(self, our_ae: str | None = None, **kw: object) -> PacsNode:
        """A DIMSE node for this Orthanc (calling AE title ``our_ae``, default the one it knows)."""
        return PacsNode(name="orthanc", ae_title=self.aet, host="127.0.0.1", port=self.dicom_port,
                        our_ae_title=our_ae or self.our_ae, **kw)  # type: ignore[arg-type]

    def web_node(self, **kw: object) -> PacsNode:
        """A DICOMweb node for this Orthanc."""
        return PacsNode(name="orthanc-web", url=self.dicomweb_url, our_ae_title=self.our_ae,
                        **kw)  # type: ignore[arg-type]

    def rest(self, method: str, path: str, body: bytes | None = None) -> object:
        """Call the REST API (with the first registered user); returns the decoded JSON."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method)
        if self.users:
            user, pw = next(iter(self.users.items()))
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as rsp:  # noqa: S310 - loopback test server
            data = rsp.read()
        return json.loads(data) if data else None

    def upload(self, paths) -> int:  # noqa: ANN001 - iterable of paths
        """POST each file to /instances; returns how many Orthanc stored (files it refuses are logged)."""
        n = 0
        for p in paths:
            try:
                self.rest("POST", "/instances", Path(p).read_bytes())
                n += 1
            except urllib.error.HTTPError as exc:
                log.info("Orthanc refused %s: %s", p, exc)
        return n

    def instances(self) -> list[str]:
        """Orthanc's instance ids."""
        return list(self.rest("GET", "/instances") or [])  # type: ignore[arg-type]

    def clear(self) -> None:
        """Delete every patient."""
        for pid in self.rest("GET", "/patients") or []:  # type: ignore[union-attr]
            self.rest("DELETE", f"/patients/{pid}")


def copy_binary_present() -> bool:
    """Whether DCMTK's getscu is on PATH (the benchmark's reference)."""
    return shutil.which("getscu") is not None


__all__ = ["LocalOrthanc", "free_port", "available", "dicomweb_plugin"]
