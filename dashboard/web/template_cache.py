"""Compiled templates shared by every app in one process.

A served dashboard builds one app and compiles each template once either way; the test suite builds hundreds
of apps, and each compiled every template it rendered again (13 ms a template). Jinja keys a bucket by the
template's name and checks the source's checksum on load, so an edited template is compiled afresh.
"""

from __future__ import annotations

import threading

from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class SharedTemplateCode(BytecodeCache):
    """Jinja's bytecode cache in this process's memory (no files: nothing to clean up or to trust)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # a stale checksum resets the bucket: Jinja compiles again

    def dump_bytecode(self, bucket: Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = code


TEMPLATE_CODE = SharedTemplateCode()
