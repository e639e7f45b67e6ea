"""Uploaded traces: streamed to disk under a server-chosen name, size-limited, type-checked by content.

The client's file name is kept for display only; the stored file is `<uuid>.<ext>` where the extension
comes from the sniffed content, so no path is ever built from user input. A file is accepted only if
`tracesynth.io.read_trace` reads it; its summary (what `tracesynth inspect` shows) is computed once here.
"""
from __future__ import annotations

import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

from .._atomic import temporary_path
from ..errors import UserError
from ..io import read_trace, sniff_format
from .store import UploadRecord

log = logging.getLogger(__name__)

_EXTENSION = {"pcap": ".pcap", "pcapng": ".pcapng", "gzip": ".pcap.gz", "parquet": ".parquet", "text": ".csv"}


class UploadTooLarge(UserError):
    """The request body passed the configured limit (HTTP 413)."""


class NotATrace(UserError):
    """The content is not a capture or flow-record file at all (HTTP 415)."""


class BadTrace(UserError):
    """The content looks like a trace format but cannot be read (HTTP 422)."""


def display_name(name: str | None) -> str:
    """A harmless label from the client's file name: last path part, printable, at most 120 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ()+]", "_", base).strip() or "trace"
    return base[:120]


async def save_stream(chunks: AsyncIterator[bytes], folder: Path, limit: int) -> tuple[Path, int]:
    """Write `chunks` to a fresh temporary file in `folder`, stopping with 413 once `limit` bytes pass."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(folder, "incoming")  # owner-tagged: a restarted server removes it (clean_stale_parts)
    size = 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"upload is larger than the limit of {limit // 2**20} MiB; "
                                         "send a smaller trace or start the server with a larger --max-upload-mb")
                fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size


async def limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass `chunks` through, raising UploadTooLarge as soon as more than `limit` bytes went by."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"upload is larger than the limit of {limit // 2**20} MiB; "
                                 "send a smaller trace or start the server with a larger --max-upload-mb")
        yield chunk


def accept(tmp: Path, size: int, client_name: str | None, folder: Path) -> UploadRecord:
    """Check the content of a received file, summarise it and move it to its final server-chosen name.

    Raises NotATrace (415) or BadTrace (422); the temporary file is removed in every failure case.
    """
    try:
        fmt = _sniff(tmp)
        try:
            trace = read_trace(tmp)
        except UserError as exc:
            raise BadTrace(f"{display_name(client_name)}: {_strip_path(str(exc), tmp)}") from None
        if len(trace.table) == 0:
            raise BadTrace(f"{display_name(client_name)}: no IPv4 packets or flow records in this file")
        upload_id = str(uuid.uuid4())
        stored = f"{upload_id}{_EXTENSION[fmt]}"
        os.replace(tmp, folder / stored)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    from ..api import summarize

    summary = summarize(trace)
    summary.pop("path", None)  # the temporary server path means nothing to the client
    return UploadRecord(id=upload_id, filename=display_name(client_name), stored_name=stored, size=size,
                        format=fmt if fmt != "text" else "csv", kind=trace.kind, summary=summary,
                        created=time.time())


def _sniff(path: Path) -> str:
    """Magic bytes first; anything else must at least be text (a flow-record file) to be tried."""
    fmt = sniff_format(path)
    if fmt == "text":
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if b"\x00" in head or not _is_text(head):
            raise NotATrace("the upload is neither a pcap/pcapng capture nor a text flow-record file "
                            "(CSV, Zeek conn.log); check that you picked the right file")
    return fmt


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the 4096-byte boundary is fine
        return exc.start >= len(head) - 3


def _strip_path(message: str, tmp: Path) -> str:
    """Reader messages name the file; the temporary server path means nothing to the client."""
    return message.replace(str(tmp) + ": ", "").replace(str(tmp), "the upload")
