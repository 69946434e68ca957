"""Files that are either written whole or not at all."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def write_atomic(path, write) -> None:
    """Call write(binary file) on a temporary file beside path, then rename it to path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())    # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        pause = os.environ.get("CHARRNN_TEST_SAVE_PAUSE")  # test hook: hold between write and rename
        if pause:
            print(f"charrnn-test: wrote {tmp}, renaming in {pause}s", file=sys.stderr, flush=True)
            time.sleep(float(pause))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path, obj) -> None:
    """Write obj as indented JSON to path atomically."""
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=1).encode("utf-8")))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory) -> list[Path]:
    """Delete the temporary files a killed writer left in directory (`.NAME.*.tmp`); returns them."""
    stale = sorted(Path(directory).glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def check_writable_dir(path) -> Path:
    """Create path if needed and prove a file can be written there; OSError with one line if not."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"cannot write to output directory {path}: {exc.strerror or exc}") from None
    return p
