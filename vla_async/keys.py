"""`vla-async keys --dir D --name N`: make a CurveZMQ key pair (N.key public, N.key_secret mode 600).

Copy a client's N.key into the server's authorized-keys folder to let that client in; give
clients the server's public key file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import zmq.auth


def make_key_pair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Create (public, secret) key files; the secret one is readable by its owner only."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = (Path(p) for p in zmq.auth.create_certificates(str(folder), name))
    os.chmod(secret, 0o600)
    return public, secret


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-async keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="folder to write the key files into")
    parser.add_argument("--name", required=True, help="key name, e.g. server or robot1")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.name.replace("-", "").replace("_", "").isalnum():
        print("vla-async keys: --name may contain letters, digits, - and _ only", file=sys.stderr)
        return 2
    public, secret = make_key_pair(args.dir, args.name)
    print(f"public key: {public}\nsecret key: {secret} (mode 600; keep it private)")
    return 0
