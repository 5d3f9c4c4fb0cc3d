"""The ERP's stock snapshot (spec 5.1) read as a stream of (sku, qty) rows, whatever its form.

    Content-Type application/json, body `[...]`       -> "json": ijson over the raw stream
    Content-Type application/json, body `{"url": ..}` -> "url": that CSV file, fetched as a stream
    Content-Type text/csv                             -> "csv": `sku,qty` rows over the raw stream

Errors: a row that is not a SKU and an integer, a row over MAX_ROW_BYTES (a CSV line, the JSON
between two items) or nested deeper than MAX_NESTING, a body cut short, an unknown form -> SnapshotBroken
(permanent); what the ERP's answers and transport failures mean (ErpUnavailable, ErpMisconfigured,
ErpRejected) is decided in workers/erp_http.py, for the orders as well. Either way the caller has
not finished reading and must change nothing.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ijson
import requests

from erp_sync.shared.decoding import NameRepeated, members_named_once
from erp_sync.shared.errors import PermanentError
from erp_sync.shared.fields import has_control_characters
from erp_sync.workers.erp_clock import IMPLAUSIBLE_CLOCK_OFFSET, WHOLE_SECOND, ErpClock, http_date
from erp_sync.workers.erp_http import (
    FILE_HINTS,
    NOT_ABOUT_THE_REQUEST,
    OWN_FILE_HINTS,
    check_answer,
    check_not_a_web_page,
    media_type,
    quick_retries,
    translated,
)

logger = logging.getLogger(__name__)

SNAPSHOT_PATH = "/api/v1/inventory/snapshot"
MAX_URL_BODY_BYTES = 64 * 1024
MAX_PEEK_BYTES = 4096
READ_CHUNK_BYTES = 64 * 1024
# A row is a SKU and a figure: a CSV line, or the JSON between two items, longer than this is no row.
# Unbounded, one line without its end (2 GB of digits, 1.5 MB gzip-compressed) took gigabytes and the
# pod was killed; a huge JSON string also parses in quadratic time.
MAX_ROW_BYTES = 64 * 1024
MAX_NESTING = 32  # the array, its object, and arrays or objects in a member the sweep does not read
# A figure in stock_levels' bigint columns must leave room for the deltas that follow it (near
# 2**63 - 1, the next receipt overflowed and was parked): at most 18 digits, |qty| < 10**18. The
# CSV's digits are checked before int(), which refuses 4,300 of them.
FIGURE_DIGITS = 18
FIGURE_MAX = 10**FIGURE_DIGITS - 1
FIGURE_MIN = -FIGURE_MAX
STALE_FILE = timedelta(days=1)  # a `{"url"}` file made longer before our request fails the run
_INTEGER = re.compile(rf"-?[0-9]{{1,{FIGURE_DIGITS}}}")
Row = tuple[str, int]


class SnapshotBroken(PermanentError):
    """The snapshot cannot be trusted as a whole; `row` is the 1-based data row at fault, if any."""

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass
class Snapshot:
    """An open snapshot: its form, its rows (read lazily from the network), what the ERP's answer
    to the snapshot request tells of its clock, and, for a `{"url"}` file, its `Last-Modified`.

    The snapshot counts what the ERP did up to some moment, on the ERP's clock, from `taken()` to
    `read_until()`. For a file made before our request (by more than the clock-skew margin, for the
    storage's clock is neither ours nor the ERP's), that moment is its making, not our request:
    otherwise the sales between the two would be taken as in the file, and undone.
    """

    form: str
    rows: Iterator[Row]
    clock: ErpClock
    file_modified: datetime | None = None

    def taken(self) -> datetime:
        """The earliest ERP time the snapshot can count up to, rounded down to the second."""
        made = self.made_before_request()
        receipt = self.clock.at_receipt()
        return receipt if made is None else min(receipt, (made - self.clock.skew).replace(microsecond=0))

    def read_until(self, local: datetime) -> datetime:
        """The latest ERP time the snapshot can count up to, once read in full at `local` (our clock)."""
        made = self.made_before_request()
        latest = self.clock.latest_at(local)
        # Last-Modified is in whole seconds, rounded down: the file was whole by the next one.
        return latest if made is None else min(latest, made + WHOLE_SECOND + self.clock.skew)

    def made_before_request(self) -> datetime | None:
        """The file's Last-Modified, if it was certainly made before our request."""
        made = self.file_modified
        if made is None or made + self.clock.skew >= self.clock.at_receipt():
            return None
        return made


def check_ijson_backend() -> str:
    """The ijson backend in use; a warning when it is not the C one (about 18x slower)."""
    backend = str(ijson.backend)
    if backend != "yajl2_c":
        logger.warning("ijson backend is %s, not yajl2_c: snapshot parsing will be slow", backend)
    return backend


class SnapshotSource:
    """Where the snapshot comes from: the ERP's base URL, its token, timeouts and CA bundle.

    Opening a snapshot gets `tries` quick tries while the ERP is unavailable (not once reading has
    begun, nor when it is misconfigured or refuses: the run fails, with the reason). The ERP's own
    URL takes no redirect: requests would drop the token on a hop to another host, and the ERP's
    401 there would blame ERP_API_TOKEN; a 3xx fails the run naming where it points.
    """

    def __init__(self, http: requests.Session, base_url: str, token: str, *, connect_timeout_s: float,
                 read_timeout_s: float, ca_bundle: Path | str | None = None, tries: int = 1,
                 backoff_base_s: float = 0.2, clock_skew: timedelta = timedelta(seconds=1),
                 max_clock_ahead: timedelta = IMPLAUSIBLE_CLOCK_OFFSET) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._verify: bool | str = str(ca_bundle) if ca_bundle else True
        self._clock_skew = clock_skew
        self._max_clock_ahead = max_clock_ahead
        self._answer = quick_retries(tries, backoff_base_s)(self._answer_once)

    @contextmanager
    def open(self) -> Iterator[Snapshot]:
        """GET the snapshot and yield its rows; the responses are closed on leaving."""
        snapshot_url = f"{self._base_url}{SNAPSHOT_PATH}"
        sent_at = datetime.now(UTC)  # before any quick retry: the marks only widen
        with self._get(snapshot_url, with_token=True, of_file=False) as response:
            clock = ErpClock(sent_at, datetime.now(UTC), http_date(response.headers.get("Date")), self._clock_skew,
                             self._max_clock_ahead)
            if (ignored := clock.date_ignored()) is not None:
                logger.warning("snapshot: %s", ignored)
            check_not_a_web_page("snapshot", snapshot_url, response.status_code, response.headers, None)
            kind = media_type(response.headers)
            if kind in ("text/csv", "application/csv"):
                yield Snapshot("csv", _guarded(csv_rows(response.raw), snapshot_url), clock)
                return
            if kind != "application/json" and not kind.endswith("+json"):
                raise SnapshotBroken(f"snapshot: unexpected Content-Type {kind or 'none'!r}")
            with translated("snapshot", snapshot_url):
                stream = _Prefixed(response.raw, _peek(response.raw))
            if stream.first == b"[":
                yield Snapshot("json", _guarded(json_rows(stream), snapshot_url), clock)
                return
            with translated("snapshot", snapshot_url):
                url = _export_url(stream)
        with self._get(url, with_token=_same_origin(url, self._base_url), of_file=True) as export:
            snapshot = Snapshot("url", _guarded(csv_rows(export.raw), url), clock,
                                http_date(export.headers.get("Last-Modified")))
            if (made := snapshot.made_before_request()) is not None:
                if clock.at_receipt() - made > STALE_FILE:
                    # Its figures may still be right, but the ERP's export is not being made: a person must look.
                    raise SnapshotBroken(f"snapshot: the file at the URL the ERP gave was last modified "
                                         f"{made.isoformat()}, over {STALE_FILE.days} day before the request: "
                                         "the ERP's export is not being made")
                logger.info("snapshot file last modified %s, %.0f s before the request: it counts what the ERP "
                            "did up to then, and the stock changes since are added to it", made.isoformat(),
                            (clock.at_receipt() - made).total_seconds())
            yield snapshot

    @contextmanager
    def _get(self, url: str, *, with_token: bool, of_file: bool) -> Iterator[requests.Response]:
        with self._answer(url, with_token, of_file) as response:
            response.raw.decode_content = True  # gzip or deflate, undone while streaming
            yield response

    def _answer_once(self, url: str, with_token: bool, of_file: bool) -> requests.Response:
        """The answer to a GET of `url`: the ERP's snapshot endpoint, or the file at a URL it gave.

        A presigned storage URL may redirect (to a region, a mirror): taken for a file. The ERP's own
        redirect is an answer (check_answer: misconfigured).
        """
        headers = {"Accept": "application/json, text/csv"}
        if with_token:
            # Only to the ERP itself: a presigned storage URL must not receive (nor would accept) it.
            headers["Authorization"] = f"Bearer {self._token}"
        # The hints of a refusal (ERP_API_TOKEN, ERP_BASE_URL) are about the ERP's own URL, not a file's.
        what = "snapshot file (at the URL the ERP gave)" if of_file else "snapshot"
        with translated(what, url):
            response = self._http.get(url, headers=headers, timeout=self._timeout, verify=self._verify,
                                      stream=True, allow_redirects=of_file)
        try:
            check_answer(what, response, _hints(of_file, with_token))
        except Exception:
            response.close()
            raise
        return response


def _hints(of_file: bool, with_token: bool) -> Mapping[int, str]:
    if not of_file:
        return NOT_ABOUT_THE_REQUEST
    return OWN_FILE_HINTS if with_token else FILE_HINTS


def json_rows(stream: Any) -> Iterator[Row]:
    """Rows of a JSON array of `{"sku", "qty"}` objects, parsed incrementally.

    Read from yajl's events, not built by ijson.items: its prefixes ("item.item.item...") grow with
    the nesting, and 20 KB of `[` took a gigabyte. A row's other members are skipped, nested up to
    MAX_NESTING deep; a member named twice in a row breaks the snapshot.
    """
    bounded = _ItemBytes(stream)
    # use_float: an integer is read as a C long long, and one beyond it is a parse error. Without
    # it, yajl2_c hands the digits to Python's int(), and past its 4,300 digits the process crashed.
    events = ijson.basic_parse(bounded, buf_size=READ_CHUNK_BYTES, use_float=True)
    depth, number, key = 0, 0, ""
    item: dict[str, object] = {}
    for event, value in events:
        if depth == 2:  # in a row
            if event == "map_key":
                if value in item:  # which of the two counts is not defined: the webhook door refuses it too
                    raise SnapshotBroken(f"snapshot row {number}: names the member {value!r:.40} twice", row=number)
                key = value
            elif event == "end_map":
                depth, bounded.since_item = 1, 0
                yield _row(number, item.get("sku"), item.get("qty"))
            elif event == "start_map" or event == "start_array":
                depth, item[key] = 3, _NESTED
            else:
                item[key] = value
        elif depth == 1:  # in the array
            if event != "start_map":
                if event == "end_array":
                    depth = 0
                    continue
                raise SnapshotBroken(f"snapshot row {number + 1}: not an object", row=number + 1)
            depth, number, item = 2, number + 1, {}
        elif depth == 0:
            if event != "start_array" or number:
                raise SnapshotBroken("snapshot JSON: not an array")
            depth = 1
        elif event == "start_map" or event == "start_array":  # in a member skipped
            depth += 1
            if depth > MAX_NESTING:
                raise SnapshotBroken(f"snapshot row {number}: nested deeper than {MAX_NESTING}", row=number)
        elif event == "end_map" or event == "end_array":
            depth -= 1


class _Nested:
    """A row's member that is an array or object."""

    def __repr__(self) -> str:
        return "an array or object"


_NESTED = _Nested()


def csv_rows(raw: Any) -> Iterator[Row]:
    """Rows of a `sku,qty` CSV file with a header line; a last line without its line end is a cut.

    A file cut mid-line ends in a row that may read as a row (`SKU-1,12` of `SKU-1,120`): only the
    last line's end tells a whole file from one cut short. Any end the reader splits lines at will do,
    `\n`, `\r\n` or a lone `\r` (old Mac exports): a file cut between a `\r` and its `\n` lost no
    part of a row.
    """
    text = io.TextIOWrapper(io.BufferedReader(_Prefixed(raw, b""), READ_CHUNK_BYTES), encoding="utf-8-sig", newline="")
    lines = _Lines(text)
    reader = csv.reader(lines, strict=True)
    # Blank lines before the header are passed over: a page may open with some before its doctype.
    header = [name.strip().lower() for name in next((row for row in reader if any(map(str.strip, row))), [])]
    if header and header[0].startswith("<"):  # no header names a column so: a page's doctype, tag or comment
        raise SnapshotBroken("snapshot CSV: a web page (or other markup), not a sku,qty file (a login or error page "
                             "of where the file is kept: has the link the ERP gave expired, or does it need a login?)")
    if "sku" not in header or "qty" not in header:
        raise SnapshotBroken(f"snapshot CSV: header must name sku and qty, got {header!r}")
    sku_at, qty_at = header.index("sku"), header.index("qty")
    width = max(sku_at, qty_at) + 1
    lines.since_row = 0
    for number, fields in enumerate(reader, start=1):
        lines.since_row = 0
        if not fields:
            continue
        if len(fields) < width:
            raise SnapshotBroken(f"snapshot row {number}: {len(fields)} fields", row=number)
        qty = fields[qty_at].strip()
        yield _row(number, fields[sku_at], int(qty) if _INTEGER.fullmatch(qty) else qty)
    if not lines.ended_cleanly:
        raise SnapshotBroken("snapshot CSV: the last line has no line end: the file was cut short (truncated), or the "
                             "export does not end its last line; every line, the last too, must end with a line end")


def _row(number: int, sku: object, qty: object) -> Row:
    if not isinstance(sku, str) or not sku.strip() or has_control_characters(sku):
        raise SnapshotBroken(f"snapshot row {number}: sku must be a non-empty string without control characters, "
                             f"got {sku!r:.120}", row=number)
    if type(qty) is not int or not FIGURE_MIN <= qty <= FIGURE_MAX:
        raise SnapshotBroken(f"snapshot row {number} ({sku}): qty must be an integer of at most {FIGURE_DIGITS} "
                             f"digits, got {qty!r:.40}", row=number)
    return sku, qty


def _guarded(rows: Iterator[Row], url: str) -> Iterator[Row]:
    """The rows, with every way a stream can break mapped onto our tree."""
    with translated("snapshot", url):
        try:
            yield from rows
        except ijson.JSONError as exc:
            raise SnapshotBroken(f"snapshot JSON: {_one_line(exc)} (truncated or malformed)") from exc
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SnapshotBroken(f"snapshot CSV: {exc}") from exc


def _one_line(error: ijson.JSONError) -> str:
    """yajl's message on one line (an alert's, a run's error): the message, then the text it quotes,
    without its line pointing "(right here) ------^"; its first characters, as the text quoted may be
    a 5,000-digit number."""
    parts = [part.strip() for part in str(error).splitlines() if part.strip() and "(right here)" not in part]
    return " near ".join(parts[:2])[:300]


def _peek(raw: Any) -> bytes:
    """The body's first bytes, up to and including its first non-space byte; a UTF-8 BOM before them
    is dropped (as the CSV forms' utf-8-sig does: Windows tools write one), the parsers refuse it."""
    seen = b""
    while len(seen) < MAX_PEEK_BYTES:
        chunk: bytes = raw.read(1)
        if not chunk:
            break
        seen += chunk
        if seen == codecs.BOM_UTF8:
            seen = b""
        elif not chunk.isspace() and not codecs.BOM_UTF8.startswith(seen):
            return seen
    raise SnapshotBroken("snapshot JSON: empty body")


def _export_url(stream: _Prefixed) -> str:
    body = b""
    while len(body) <= MAX_URL_BODY_BYTES:
        chunk = bytes(stream.read(READ_CHUNK_BYTES) or b"")
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_URL_BODY_BYTES:
        raise SnapshotBroken("snapshot JSON: an object, but too large to be a {\"url\": ...} reply")
    try:
        url = json.loads(body, object_pairs_hook=members_named_once).get("url")
    except NameRepeated as exc:  # which of the two files to read is not said: the door refuses it too
        raise SnapshotBroken(f"snapshot JSON: {exc}") from exc
    except (ValueError, AttributeError, RecursionError) as exc:  # RecursionError: nesting deeper than the stack
        raise SnapshotBroken(f"snapshot JSON: not an array nor a {{\"url\": ...}} object ({exc})") from exc
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise SnapshotBroken(f"snapshot JSON: url must be an http(s) URL, got {url!r}")
    return url


def _same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


class _Prefixed(io.RawIOBase):
    """A raw byte stream with bytes already read put back in front of it."""

    def __init__(self, raw: Any, prefix: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._prefix = prefix
        self.first = prefix.strip()[:1]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ItemBytes(io.RawIOBase):
    """A raw byte stream that refuses to be read on past MAX_ROW_BYTES without a whole JSON item:
    the reader sets `since_item` to 0 at each item (reads come READ_CHUNK_BYTES at a time)."""

    def __init__(self, raw: io.RawIOBase) -> None:
        super().__init__()
        self._raw = raw
        self.since_item = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.since_item > MAX_ROW_BYTES + READ_CHUNK_BYTES:
            raise SnapshotBroken(f"snapshot JSON: more than {MAX_ROW_BYTES // 1024} KiB without a whole item: "
                                 'is it an array of {"sku", "qty"} objects?')
        size = self._raw.readinto(buffer) or 0
        self.since_item += size
        return size


_LINE_ENDS = ("\n", "\r")


class _Lines(Iterable[str]):
    """The lines of a text stream, remembering whether the last one ended with a line end; at most
    MAX_ROW_BYTES characters from one row to the next (the reader sets `since_row` to 0 at each)."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self.ended_cleanly = True
        self.since_row = 0

    def __iter__(self) -> Iterator[str]:
        readline = self._text.readline
        while line := readline(MAX_ROW_BYTES + 1):
            self.since_row += len(line)
            if self.since_row > MAX_ROW_BYTES:
                raise SnapshotBroken(f"snapshot CSV: a line longer than {MAX_ROW_BYTES // 1024} KiB: is it CSV?")
            self.ended_cleanly = line.endswith(_LINE_ENDS)
            yield line
