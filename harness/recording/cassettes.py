"""The REST half of a recording as vcrpy interactions: for the replay's matching, and to/from cassettes.

vcrpy already defines what a recorded HTTP exchange is, how a new request is matched against recorded
ones (``vcr.matchers``: method, path, order-insensitive query, JSON-aware body) and what the record
modes mean. The replay uses its ``Cassette`` for all of that instead of a matcher of its own; this
module is the translation between the two vocabularies:

* a recorded ``http_request`` and the ``http_response`` (or ``transport_error``) with its ``c`` are one
  interaction: a ``vcr.request.Request`` (``uri`` = URL + query in recorded order) and a vcrpy response
  dict (``status``, ``headers`` as lists, ``body.string``);
* what vcrpy has no field for travels in the response under the extra key ``backpack`` (vcrpy keeps
  unknown keys): ``c`` (the exchange id), ``t_request`` / ``t`` (the events' ``t``), ``index`` (the response event's position in
  the recording), ``receipt`` (``r``) and, for a request that failed below HTTP, ``transport_error``
  (``{"e": class name, "msg": message}``; ``status`` is then ``0``). A cassette written elsewhere lacks
  the key: its interactions import at ``t = 0`` with the header's ``start_us`` as receipt;
  ``index``/``request_index`` (positions in the recording) order events of equal ``t`` on import;
* a request that never got an answer (cancelled) is not an interaction.

``export_cassette`` / ``import_cassette`` read and write cassette files with vcrpy's own persister and
serializers (YAML for ``.yaml``/``.yml``, JSON for ``.json``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vcr import matchers
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.request import Request as VcrRequest
from vcr.serializers import jsonserializer, yamlserializer

from .format import Event, Header, HttpRequestEvent, HttpResponseEvent, TransportErrorEvent
from .reader import read_recording
from .writer import RecordingWriter

EXTENSION = "backpack"
"""The response key that carries what vcrpy has no field for (times, receipt, transport errors)."""

MATCH_ON = (matchers.method, matchers.path, matchers.query, matchers.body)
"""How a request finds its recorded answer: method, path, canonical query and canonical body."""

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


class CassetteError(ValueError):
    """A cassette file that cannot be read or does not hold HTTP interactions; one line."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One completed REST exchange of a recording, with where its events sit in the timeline."""

    request: HttpRequestEvent
    answer: HttpResponseEvent | TransportErrorEvent
    request_index: int
    answer_index: int


def interactions(events: Sequence[Event]) -> tuple[list[Interaction], list[tuple[int, HttpRequestEvent]]]:
    """Completed exchanges in request order, and the requests that never completed (index, event)."""
    return indexed_interactions(enumerate(events))


def indexed_interactions(
    pairs: Iterable[tuple[int, Event]],
) -> tuple[list[Interaction], list[tuple[int, HttpRequestEvent]]]:
    """``interactions`` of ``(timeline index, event)`` pairs: the REST half kept apart from the frames."""
    open_requests: dict[str, tuple[int, HttpRequestEvent]] = {}
    done: list[Interaction] = []
    for index, event in pairs:
        if isinstance(event, HttpRequestEvent):
            open_requests[event.conn] = (index, event)
        elif isinstance(event, HttpResponseEvent) or (
            isinstance(event, TransportErrorEvent) and event.op == "request" and event.conn is not None
        ):
            opened = open_requests.pop(event.conn, None)  # type: ignore[arg-type]
            if opened is not None:
                done.append(Interaction(opened[1], event, opened[0], index))
    done.sort(key=lambda i: i.request_index)
    return done, sorted(open_requests.values(), key=lambda p: p[0])


# -- recording <-> vcrpy ----------------------------------------------------------------------------


def request_uri(url: str, params: Iterable[tuple[str, str]]) -> str:
    pairs = list(params)
    return f"{url}?{urlencode(pairs)}" if pairs else url


def vcr_request(method: str, url: str, params: Iterable[tuple[str, str]] = (),
                headers: Mapping[str, str] | None = None, body: bytes | None = None) -> VcrRequest:
    return VcrRequest(method.upper(), request_uri(url, params), body, dict(headers or {}))


def vcr_response(answer: HttpResponseEvent | TransportErrorEvent, *, t_request: int | None = None,
                 index: int | None = None, request_index: int | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"c": answer.conn, "t": answer.t}
    if t_request is not None:
        extra["t_request"] = t_request
    if index is not None:
        extra["index"] = index
    if request_index is not None:
        extra["request_index"] = request_index
    if isinstance(answer, TransportErrorEvent):
        extra["transport_error"] = {"e": answer.error, "msg": answer.message}
        return {"status": {"code": 0, "message": "transport error"}, "headers": {}, "body": {"string": b""},
                EXTENSION: extra}
    extra["receipt"] = answer.receipt
    return {
        "status": {"code": answer.status, "message": _REASONS.get(answer.status, "")},
        "headers": {k: [v] for k, v in answer.headers.items()},
        "body": {"string": answer.body},
        EXTENSION: extra,
    }


def cassette_lists(events: Sequence[Event]) -> tuple[list[VcrRequest], list[dict[str, Any]]]:
    """The recording's interactions as vcrpy's ``(requests, responses)`` lists, in request order."""
    return _cassette_lists(interactions(events)[0])


def _cassette_lists(done: Iterable[Interaction]) -> tuple[list[VcrRequest], list[dict[str, Any]]]:
    requests, responses = [], []
    for item in done:
        r = item.request
        requests.append(vcr_request(r.method, r.url, r.params, r.headers, r.body))
        responses.append(vcr_response(item.answer, t_request=r.t, index=item.answer_index,
                                      request_index=item.request_index))
    return requests, responses


class RecordingPersister:
    """A vcrpy persister whose "file" is the REST half of a recording already in memory.

    Having no interactions is reported as a missing cassette, so vcrpy's ``once`` mode records into it
    exactly as it would into a cassette file that does not exist yet. It never writes: new episodes stay
    in the ``Cassette`` until the owner saves them (``save_cassette``).
    """

    def __init__(self, events: Sequence[Event]) -> None:
        self.requests, self.responses = cassette_lists(events)

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[int, Event]]) -> RecordingPersister:
        """From ``(timeline index, event)`` pairs (the REST half of a streamed timeline)."""
        persister = cls(())
        persister.requests, persister.responses = _cassette_lists(indexed_interactions(pairs)[0])
        return persister

    def load_cassette(self, cassette_path: Any, serializer: Any) -> tuple[list[VcrRequest], list[dict[str, Any]]]:
        if not self.requests:
            raise CassetteNotFoundError()
        return list(self.requests), list(self.responses)

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        raise NotImplementedError("a recording is not rewritten in place; save the cassette to a file")


def _serializer(path: str | os.PathLike[str]) -> Any:
    name = os.fspath(path).lower()
    if name.endswith((".yaml", ".yml")):
        return yamlserializer
    if name.endswith(".json"):
        return jsonserializer
    raise CassetteError(f"cassette file name must end in .yaml, .yml or .json: {os.fspath(path)!r}")


def save_cassette(path: str | os.PathLike[str], requests: Sequence[VcrRequest],
                  responses: Sequence[Mapping[str, Any]]) -> None:
    """Write interactions with vcrpy's persister and the serializer the file name asks for."""
    serializer = _serializer(path)
    try:
        FilesystemPersister.save_cassette(Path(path), {"requests": list(requests), "responses": list(responses)},
                                          serializer=serializer)
    except TypeError:  # vcrpy's JSON serializer refuses bodies that are not text
        raise CassetteError(f"{os.fspath(path)}: a JSON cassette cannot hold a binary body; "
                            "write a .yaml cassette instead") from None


def load_cassette(path: str | os.PathLike[str]) -> tuple[list[VcrRequest], list[dict[str, Any]]]:
    """Read a cassette file with vcrpy's persister; every failure is one ``CassetteError`` line."""
    serializer = _serializer(path)
    try:
        loaded = FilesystemPersister.load_cassette(Path(path), serializer=serializer)
    except CassetteNotFoundError:
        raise CassetteError(f"{os.fspath(path)}: no such cassette, or it is empty") from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:  # yaml/json errors are ValueErrors
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CassetteError(f"{os.fspath(path)}: not a vcrpy cassette ({first})") from None
    except Exception as exc:  # noqa: BLE001 - yaml's own errors are not ValueErrors
        raise CassetteError(f"{os.fspath(path)}: not a vcrpy cassette ({type(exc).__name__})") from None
    requests, responses = loaded[0], loaded[1]
    for number, response in enumerate(responses, 1):
        if not isinstance(response, dict) or not isinstance(response.get("status"), dict):
            raise CassetteError(f"{os.fspath(path)}: interaction {number} has no response status")
    return list(requests), list(responses)


def events_from_cassette(requests: Sequence[VcrRequest], responses: Sequence[Mapping[str, Any]], *,
                         start_us: int | None) -> list[tuple[int, Event]]:
    """Interactions as recording events, each with a merge rank (its original position, if known)."""
    out: list[tuple[int, Event]] = []
    far = 1 << 62
    for number, (request, response) in enumerate(zip(requests, responses, strict=True), 1):
        extra = response.get(EXTENSION) if isinstance(response.get(EXTENSION), dict) else {}
        t = _nonneg_int(extra.get("t"), 0)
        t_request = min(_nonneg_int(extra.get("t_request"), t), t)
        index = _nonneg_int(extra.get("index"), None)
        conn = extra.get("c") if isinstance(extra.get("c"), str) and extra.get("c") else f"http-{number}"
        split = urlsplit(request.uri)
        url = urlunsplit((split.scheme, split.netloc, split.path, "", ""))
        params = tuple(parse_qsl(split.query, keep_blank_values=True))
        body = request.body if isinstance(request.body, bytes) else None
        headers = {str(k): str(v) for k, v in dict(request.headers).items()}
        req_event = HttpRequestEvent(t_request, conn, str(request.method).upper(), url, params, headers, body)
        error = extra.get("transport_error")
        answer: Event
        if isinstance(error, dict):
            answer = TransportErrorEvent(t, conn, "request", str(error.get("e") or "TransportError"),
                                         str(error.get("msg") or ""), url)
        else:
            status = response["status"].get("code")
            if isinstance(status, bool) or not isinstance(status, int):
                raise CassetteError(f"interaction {number}: response status code must be an integer")
            raw = response.get("headers") or {}
            headers_out = {str(k): ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)
                           for k, v in raw.items()}
            body_out = (response.get("body") or {}).get("string") or b""
            if isinstance(body_out, str):
                body_out = body_out.encode("utf-8")
            receipt = _nonneg_int(extra.get("receipt"), None)
            if receipt is None:
                receipt = (start_us or 0) + t // 1000
            answer = HttpResponseEvent(t, conn, status, headers_out, bytes(body_out), receipt)
        request_index = _nonneg_int(extra.get("request_index"), None)
        if index is None or request_index is None:  # foreign: after everything recorded at the same t
            out += [(far + 2 * number, req_event), (far + 2 * number + 1, answer)]
        else:
            out += [(request_index, req_event), (index, answer)]
    return out


def _nonneg_int(value: Any, default: int | None) -> int | None:
    return value if type(value) is int and value >= 0 else default


def _is_rest(event: Event) -> bool:
    return isinstance(event, HttpRequestEvent | HttpResponseEvent) or (
        isinstance(event, TransportErrorEvent) and event.op == "request"
    )


# -- files ------------------------------------------------------------------------------------------


def export_cassette(recording: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write the REST half of ``recording`` to a vcrpy cassette; returns the interaction count.

    Raises ``RecordingError`` subclasses for an unreadable recording (a damaged one raises its damage:
    a partial cassette would pass for a complete one).
    """
    _serializer(out)
    rec = read_recording(recording)
    if rec.damage is not None:
        raise rec.damage
    requests, responses = cassette_lists(rec.events)
    save_cassette(out, requests, responses)
    return len(requests)


def import_cassette(cassette: str | os.PathLike[str], into: str | os.PathLike[str],
                    out: str | os.PathLike[str]) -> tuple[int, int]:
    """Write ``out``: the recording ``into`` with its REST half replaced by the cassette's interactions.

    Events are merged by ``t``; among equal ``t`` the original positions (kept by ``export``) decide, so
    exporting a recording and importing the cassette back into it gives the same events. Returns
    ``(interactions imported, REST events dropped from the recording)``.
    """
    if Path(out).resolve() == Path(into).resolve():
        raise CassetteError("--out must be a new file, not the recording being imported into")
    requests, responses = load_cassette(cassette)
    rec = read_recording(into)
    if rec.damage is not None:
        raise rec.damage
    kept = [(i, e) for i, e in enumerate(rec.events) if not _is_rest(e)]
    dropped = len(rec.events) - len(kept)
    rest = events_from_cassette(requests, responses, start_us=rec.header.start_us)
    merged = sorted([(e.t, i, e) for i, e in kept] + [(e.t, rank, e) for rank, e in rest],
                    key=lambda item: (item[0], item[1]))
    events = [e for _, _, e in merged]
    header: Header = rec.header
    with RecordingWriter(out, header) as writer:
        for event in events:
            writer.write(event)
        writer.close(end=False)
    return len(requests), dropped


__all__ = [
    "EXTENSION", "MATCH_ON", "CassetteError", "Interaction", "RecordingPersister", "cassette_lists",
    "events_from_cassette", "export_cassette", "import_cassette", "indexed_interactions", "interactions",
    "load_cassette", "request_uri", "save_cassette", "vcr_request", "vcr_response",
]
