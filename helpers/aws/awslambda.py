"""Lambda: the deployment packages of the transformation function and the real-time consumer.

Each handler module goes into its own zip unchanged, alone: ``helpers/transform.py`` as
``transform.py`` (handler ``transform.lambda_handler``), ``helpers/realtime.py`` as
``realtime.py`` (handler ``realtime.lambda_handler``). A zip is byte-for-byte reproducible
(fixed timestamps and permissions), so its hash names the upload and a stack update happens
only when the code changed.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from helpers import realtime, transform

SOURCE = Path(transform.__file__)
HANDLER = "transform.lambda_handler"
CONSUMER_SOURCE = Path(realtime.__file__)
CONSUMER_HANDLER = "realtime.lambda_handler"
CODE_PARAMETERS = {"LambdaCodeKey": SOURCE, "ConsumerCodeKey": CONSUMER_SOURCE}
"""The stack parameter that names each package's key -> the module it packages."""


def package_module(source: Path = SOURCE) -> bytes:
    """The deployment package of a handler module: a zip holding that file only, at its root.

    Examples
    --------
    >>> import io, zipfile
    >>> zipfile.ZipFile(io.BytesIO(package_module(CONSUMER_SOURCE))).namelist()
    ['realtime.py']
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(source.name, date_time=(1980, 1, 1, 0, 0, 0))
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, source.read_bytes())
    return buffer.getvalue()


def code_key(package: bytes, source: Path = SOURCE) -> str:
    """The artifact key of a package of ``source``, named by the module and the content hash."""
    return f"lambda/{source.stem}-{hashlib.sha256(package).hexdigest()[:16]}.zip"
