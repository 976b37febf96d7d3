"""Lambda: the transformation function's deployment package.

``helpers/transform.py`` goes into the zip unchanged, alone, as ``transform.py``; the stack's
function uses the handler ``transform.lambda_handler``. The zip is byte-for-byte reproducible
(fixed timestamps and permissions), so its hash names the upload and a stack update happens
only when the code changed.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from helpers import transform

SOURCE = Path(transform.__file__)
MODULE = "transform.py"
HANDLER = "transform.lambda_handler"


def package_transform() -> bytes:
    """The deployment package: a zip holding ``transform.py`` only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(MODULE, date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, SOURCE.read_bytes())
    return buffer.getvalue()


def code_key(package: bytes) -> str:
    """The artifact key of a package, named by its content hash."""
    return f"lambda/transform-{hashlib.sha256(package).hexdigest()[:16]}.zip"
