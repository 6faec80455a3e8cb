"""PACS nodes: where a PACS is and how we present ourselves to it, stored in the user's settings.

A node is either DIMSE (AE title, host, port; DICOM PS3.8) or DICOMweb (a base URL; PS3.18), with our own AE title
(the calling AE title, which the PACS must know for C-FIND/C-GET/C-MOVE) and, for DICOMweb, optional HTTP basic or
bearer authentication. Secrets are never stored with the node nor logged: the node names an environment variable
that holds the password or token (default ``MEDVIEWER_PACS_SECRET``).

Nodes live in ``<data dir>/pacs_nodes.json`` (see :func:`medviewer.config.data_dir`), with the local Storage SCP
settings (our AE title and listening port for C-MOVE and for studies pushed to us).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from medviewer.config import data_dir

log = logging.getLogger(__name__)

#: Our default calling AE title.
DEFAULT_OUR_AE = "MEDVIEWER"
#: Default port of our Storage SCP (C-MOVE destination and pushes). 11112 is the IANA "dicom" alternative port.
DEFAULT_SCP_PORT = 11112
#: Environment variable holding a DICOMweb password or bearer token unless a node names another.
DEFAULT_SECRET_ENV = "MEDVIEWER_PACS_SECRET"

_AE_RE = re.compile(r"^[\x20-\x7e]{1,16}$")  # PS3.5 6.2: AE, 16 bytes max, default character repertoire, no "\"
_DIMSE_SPEC = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>\[[0-9a-fA-F:]+\]|[^:@\s]+):(?P<port>\d{1,5})$")


class PacsError(RuntimeError):
    """A PACS operation failed; the message says why in words (association rejected, AE unknown to the PACS, no
    matches, lost connection, timeout...). ``cause`` is a short machine tag: ``rejected``, ``unknown-ae``,
    ``no-matches``, ``connection``, ``timeout``, ``refused``, ``cancelled``, ``failed``, ``bad-input``."""

    def __init__(self, message: str, cause: str = "failed"):
        super().__init__(message)
        self.cause = cause


def check_ae_title(value: str, what: str = "AE title") -> str:
    """``value`` stripped, if it is a valid AE title (1-16 printable ASCII characters, not only spaces, no
    backslash; DICOM PS3.5 6.2 VR AE). Raises PacsError(cause="bad-input") otherwise."""
    text = (value or "").strip()
    if not text or not _AE_RE.match(text) or "\\" in text:
        raise PacsError(f"{what} {value!r} is not valid: 1 to 16 printable ASCII characters, no backslash",
                        "bad-input")
    return text


@dataclass(frozen=True)
class PacsNode:
    """A configured PACS.

    name: the label shown to the user. DIMSE: ``ae_title``, ``host``, ``port`` (the PACS's called AE title and its
    DICOM port). DICOMweb: ``url`` (the base URL, e.g. ``http://pacs:8042/dicom-web``), ``auth`` ("" none,
    "basic" with ``username``, "bearer") and ``secret_env`` (the environment variable holding the password or
    token). ``our_ae_title``: the calling AE title we use with this node. ``timeout_s``: connection, association
    and DIMSE/HTTP timeout in seconds.
    """

    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""
    our_ae_title: str = DEFAULT_OUR_AE
    auth: str = ""
    username: str = ""
    secret_env: str = DEFAULT_SECRET_ENV
    timeout_s: float = 30.0

    @property
    def is_dicomweb(self) -> bool:
        """True for a DICOMweb node (it has a URL)."""
        return bool(self.url)

    def describe(self) -> str:
        """``NAME (AET@HOST:PORT)`` or ``NAME (URL)``: for messages; no secret."""
        where = self.url if self.is_dicomweb else f"{self.ae_title}@{self.host}:{self.port}"
        return f"{self.name} ({where})" if self.name and self.name != where else where

    def secret(self) -> str:
        """The password or token from ``secret_env`` ("" when unset). Never log it."""
        return os.environ.get(self.secret_env or DEFAULT_SECRET_ENV, "")

    def validated(self) -> "PacsNode":
        """This node after checking its fields; raises PacsError(cause="bad-input") naming what is wrong."""
        if self.is_dicomweb:
            if not re.match(r"^https?://[^\s/]+", self.url):
                raise PacsError(f"DICOMweb URL {self.url!r} must start with http:// or https:// and name a host",
                                "bad-input")
            if self.auth not in ("", "basic", "bearer"):
                raise PacsError(f"authentication {self.auth!r} is not one of: none, basic, bearer", "bad-input")
            if self.auth == "basic" and not self.username:
                raise PacsError("basic authentication needs a user name", "bad-input")
        else:
            check_ae_title(self.ae_title, "the PACS's AE title")
            if not self.host or any(c.isspace() for c in self.host):
                raise PacsError(f"host {self.host!r} is not valid", "bad-input")
            if not 1 <= int(self.port) <= 65535:
                raise PacsError(f"port {self.port} is not in 1..65535", "bad-input")
        check_ae_title(self.our_ae_title, "our AE title")
        if not self.timeout_s > 0:
            raise PacsError(f"timeout {self.timeout_s} must be positive", "bad-input")
        return self


@dataclass
class NetSettings:
    """The saved nodes and our Storage SCP's settings (``our_ae_title``, ``scp_port``, ``cache_dir``: where
    retrieved and received studies land; "" = ``<data dir>/pacs-cache``; ``listen``: the app runs the Storage SCP
    while it is open, to receive studies pushed to us and C-MOVEs)."""

    nodes: list[PacsNode] = field(default_factory=list)
    our_ae_title: str = DEFAULT_OUR_AE
    scp_port: int = DEFAULT_SCP_PORT
    cache_dir: str = ""
    listen: bool = False

    def node(self, name: str) -> PacsNode | None:
        """The node called ``name`` (case-insensitive), or None."""
        for n in self.nodes:
            if n.name.lower() == name.lower():
                return n
        return None

    def cache_path(self) -> Path:
        """The cache folder (created)."""
        path = Path(self.cache_dir).expanduser() if self.cache_dir else data_dir() / "pacs-cache"
        path.mkdir(parents=True, exist_ok=True)
        return path


def settings_path() -> Path:
    """``<data dir>/pacs_nodes.json``."""
    return data_dir() / "pacs_nodes.json"


def load_settings(path: str | Path | None = None) -> NetSettings:
    """The saved settings (defaults when there is no file). A damaged file is logged and ignored (the defaults are
    returned; the file is left untouched so nothing is lost)."""
    p = Path(path) if path is not None else settings_path()
    if not p.exists():
        return NetSettings()
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        known = {f.name for f in fields(PacsNode)}
        nodes = [PacsNode(**{k: v for k, v in d.items() if k in known}) for d in raw.get("nodes", [])]
        return NetSettings(nodes=nodes, our_ae_title=str(raw.get("our_ae_title") or DEFAULT_OUR_AE),
                           scp_port=int(raw.get("scp_port") or DEFAULT_SCP_PORT),
                           cache_dir=str(raw.get("cache_dir") or ""), listen=bool(raw.get("listen", False)))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("PACS settings %s cannot be read (%s): using defaults; the file is kept", p, exc)
        return NetSettings()


def save_settings(settings: NetSettings, path: str | Path | None = None) -> Path:
    """Write the settings atomically (no secrets are part of them). Returns the path."""
    p = Path(path) if path is not None else settings_path()
    data = {"nodes": [asdict(n) for n in settings.nodes], "our_ae_title": settings.our_ae_title,
            "scp_port": settings.scp_port, "cache_dir": settings.cache_dir, "listen": settings.listen}
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, p)
    return p


def parse_node(spec: str, settings: NetSettings | None = None) -> PacsNode:
    """A node from a command-line spec: a configured node's name, ``AET@HOST:PORT`` (DIMSE) or an http(s)
    DICOMweb base URL. Our AE title comes from the settings. Raises PacsError(cause="bad-input") for anything else.
    """
    settings = settings if settings is not None else load_settings()
    spec = (spec or "").strip()
    named = settings.node(spec) if spec else None
    if named is not None:
        return named.validated()
    if spec.lower().startswith(("http://", "https://")):
        return PacsNode(name=spec, url=spec.rstrip("/"), our_ae_title=settings.our_ae_title).validated()
    m = _DIMSE_SPEC.match(spec)
    if m:
        host = m["host"].strip("[]")
        return PacsNode(name=spec, ae_title=m["aet"], host=host, port=int(m["port"]),
                        our_ae_title=settings.our_ae_title).validated()
    names = ", ".join(n.name for n in settings.nodes) or "none configured"
    raise PacsError(f"{spec!r} is not a configured node ({names}), AET@HOST:PORT or an http(s) DICOMweb URL",
                    "bad-input")


__all__ = ["PacsError", "PacsNode", "NetSettings", "parse_node", "load_settings", "save_settings",
           "check_ae_title", "DEFAULT_OUR_AE", "DEFAULT_SCP_PORT", "replace"]
