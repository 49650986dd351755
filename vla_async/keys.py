"""`vla-async keys --dir D --name N [--force]`: make a CurveZMQ key pair (N.key public, N.key_secret mode 600).

Copy a client's N.key into the server's authorized-keys folder to let that client in; give
clients the server's public key file. Existing key files are never replaced without --force.
The secret file is created with mode 600 from its first byte (never written, then chmod'ed), and
every file appears atomically (written to a private temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import zmq


class KeyExistsError(FileExistsError):
    """A key file is already there and --force was not given."""


def _certificate(public: str, secret: str | None) -> str:
    kind = "Secret" if secret else "Public"
    lines = [f"#   ZeroMQ CURVE {kind} Certificate (vla-async keys)",
             "#   " + ("Keep this file private (mode 600)." if secret else "Give this file to peers."),
             "", "metadata", "curve", f'    public-key = "{public}"']
    if secret:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` via a temporary file created with `mode` (O_EXCL), then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600 by mkstemp
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_key_pair(directory: str | Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Create (public, secret) key files; the secret one is readable by its owner only.

    Raises KeyExistsError when either file exists, unless `force`.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
    existing = [str(p) for p in (public_path, secret_path) if p.exists()]
    if existing and not force:
        raise KeyExistsError(f"{' and '.join(existing)} already exist; use --force to replace them "
                             "(clients or servers holding the old keys will be locked out)")
    public, secret = (k.decode("ascii") for k in zmq.curve_keypair())
    _write_atomically(secret_path, _certificate(public, secret), 0o600)
    _write_atomically(public_path, _certificate(public, None), 0o644)
    return public_path, secret_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-async keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="folder to write the key files into")
    parser.add_argument("--name", required=True, help="key name, e.g. server or robot1")
    parser.add_argument("--force", action="store_true", help="replace existing key files of that name")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.name.replace("-", "").replace("_", "").isalnum():
        print("vla-async keys: --name may contain letters, digits, - and _ only", file=sys.stderr)
        return 2
    try:
        public, secret = make_key_pair(args.dir, args.name, force=args.force)
    except KeyExistsError as exc:
        print(f"vla-async keys: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}\nsecret key: {secret} (mode 600; keep it private)")
    return 0
