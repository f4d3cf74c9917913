"""Writes a lock with hashes for `pip install --require-hashes` (the images of docker-compose.yml).

    python scripts/lock-hashes.py IN CONSTRAINTS OUT

Resolves IN (the runtime requirements) with pip itself, pinned to the versions of CONSTRAINTS (the
environment's lock, so the images run exactly what .venv runs), and writes every package of the
resolution as `name==version --hash=sha256:...`: the hash of the file pip chose for this platform,
Python 3.11 on Linux x86_64 (glibc), the images' platform. Nothing is installed (`--dry-run`).

An exception, said in IN with a comment: a requirement of IN that the constraint lock's version does
not satisfy (e.g. superset-runtime.in's `kombu<5.7`: the worker's Redis transport needs it) drops that
package from the constraints; every other package keeps the lock's version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def overrides(req: Path, pinned: dict[str, str]) -> set[str]:
    """The packages whose requirement in req excludes the constraint lock's version."""
    from packaging.requirements import Requirement

    out = set()
    for line in req.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        r = Requirement(line)
        name = normal(r.name)
        if name in pinned and r.specifier and not r.specifier.contains(pinned[name], prereleases=True):
            out.add(name)
    return out


def resolve(req: Path, constraints: Path, skip: set[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report, cons = Path(tmp) / "report.json", Path(tmp) / "constraints.txt"
        cons.write_text("".join(line + "\n" for line in constraints.read_text().splitlines()
                                if not ("==" in line and normal(line.split("==", 1)[0]) in skip)))
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-r", str(req), "-c", str(cons)], check=True)
        return json.loads(report.read_text())["install"]


def pins(lock: Path) -> dict[str, str]:
    out = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            out[normal(name)] = version.strip()
    return out


def normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def main(req: str, constraints: str, out: str) -> None:
    req_p, con_p, out_p = Path(req), Path(constraints), Path(out)
    pinned = pins(con_p)
    skip = overrides(req_p, pinned)
    lines = []
    for item in sorted(resolve(req_p, con_p, skip), key=lambda i: normal(i["metadata"]["name"])):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if normal(name) in skip:
            print(f"lock-hashes: {name}=={version} instead of {con_p.name}'s {pinned[normal(name)]} ({req_p.name})")
        elif pinned.get(normal(name)) != version:
            sys.exit(f"lock-hashes: {name}=={version} is not {con_p}'s version ({pinned.get(normal(name))})")
        digest = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            sys.exit(f"lock-hashes: no sha256 for {name}=={version} ({item['download_info'].get('url')})")
        lines.append(f"{normal(name)}=={version} \\\n    --hash=sha256:{digest}")
    header = (f"# Runtime lock with hashes, resolved from {req_p.name} at the versions of {con_p.name}, for\n"
              "# `pip install --require-hashes` in the images (Python 3.11, Linux x86_64).\n"
              "# Regenerate: make lock-hashes (after make lock / make lock-superset).\n")
    out_p.write_text(header + "\n".join(lines) + "\n")
    print(f"lock-hashes: {len(lines)} packages with hashes -> {out_p}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
