"""Rows an earlier call delivered through other requests (a pack, tiles): read, not bought again.

A row's own request lives in ``<root>/<token[:24]>``. When an earlier call bought the row
inside a pack (``pack=True``) or as tiles (``max_request_px``), that folder never exists, but
the call's manifest (``<root>/_xasync/``) lists the row, by its own token, with the windows it
was read from (its :class:`~xasync.planned.Source` list). :func:`plan_reusing` plans such a row
as those windows again when its own plan would buy something, so asking for it alone (or in a
subset, or in other packs) buys nothing.

When the reuse is exact (the values equal those of the row bought alone):

- **tiles**: always (tiles are cut on the row's own pixel grid and carry its geometry);
- **a pack**: with ``mask=True`` (everything outside the row's own geometry is NaN, as it is
  for the row bought alone with ``mask=True``), or with ``bounds="bbox"`` (no geometry is
  sent: the pack's pixels are those of the row's bbox). With ``mask=False`` and
  ``bounds="geometry"`` the service writes, outside a request's geometry, what the evalscript
  returns for zero inputs with ``dataMask`` 0, while a pack holds its other members' values
  there: such a row is not read from a pack but bought as planned.

A row bought alone before and tiled now (a smaller ``max_request_px``) is read from its own
request. A pack or tile is used while its request exists and has not failed (delivered,
running, or being bought by this process); a failed one is ignored. One that is only claimed
(its buyer is creating it, or died doing so) is used too, rebuilt so that the submitter may buy
it once the claim is stale (:mod:`xasync.reuse_rebuild`); so is a pack that another call
planned but has not claimed yet, when this call asks for all its rows (two calls of the same
rows buy the pack once, whichever process gets to it first).

The lookup happens before anything is paid and stays cheap: nothing past an empty listing of
the root (:class:`~xasync.bought_alone.Bought`); the manifests are read only when some row
would be bought, and only those with tiles or packs are parsed; the candidate requests are
probed with one listing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xasync.manifests import MANIFEST_DIR
from xasync.planned import PlannedSpecs, Source, plan_call, source_from_dict
from xasync.request import RequestSpec
from xasync.reuse_rebuild import Claimed

if TYPE_CHECKING:
    from xasync.bought_alone import Bought

logger = logging.getLogger(__name__)

__all__ = ["ReusedRequest", "earlier_sources", "own_source", "plan_reusing", "request_states"]


class ReusedRequest(RequestSpec):
    """A request bought by an earlier call, which a row reads from: never created again.

    Its ``grid``, ``token`` and ``row_url`` are the earlier request's (so its cost and status
    are its own); its geometry is the row's, so :meth:`body` refuses to build a body (the
    submitter gets none and only follows it).
    """

    reused = True

    def body(self, delivery: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Never: a reused request is followed, not created."""
        raise RuntimeError(f"{self.row_url} was bought by an earlier call; it is not created")


def _reused_request(spec: RequestSpec, source: Source) -> ReusedRequest:
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    fields["grid"] = source.grid
    req = ReusedRequest(**fields)
    req.__dict__["token"] = source.token  # the earlier request's identity (cached properties)
    req.__dict__["row_url"] = source.row_url
    return req


def own_source(spec: RequestSpec) -> Source:
    """The whole of a row's own request, as a :class:`~xasync.planned.Source`."""
    full = (0, 0, spec.grid.height, spec.grid.width)
    return Source(spec.token, spec.row_url, spec.grid, full, full, "request")


def _exact(spec: RequestSpec, sources: Sequence[Source]) -> bool:
    """Reading ``sources`` gives the row's own values (see the module docstring)."""
    if all(s.name.startswith("tile") or s.row_url == spec.row_url for s in sources):
        return True  # tiles of the row, or the row's own request
    return spec.mask or spec.bounds_mode == "bbox"


def _planned_manifests(fs: Any, root: str) -> list[dict[str, Any]]:
    """The call manifests under ``root`` that have tiles or packs, oldest first.

    As :func:`xasync.manifests.read_manifests`, but a manifest whose text has no ``"sources"``
    (a call of one request per row) is not parsed: the look stays cheap beside big plain calls.
    """
    import gzip
    import json

    from xasync.manifests import MANIFEST_VERSION, forget_listings, manifest_dir

    mdir = manifest_dir(root)
    forget_listings(fs, fs._strip_protocol(mdir))
    try:
        names = [p for p in fs.ls(mdir, detail=False) if p.endswith((".json", ".json.gz"))]
    except FileNotFoundError:
        return []
    got = fs.cat(names, on_error="return") if names else {}
    got = got if isinstance(got, dict) else {names[0]: got}
    docs = []
    for name, raw in sorted(got.items()):
        if isinstance(raw, Exception):
            logger.warning("manifest %s could not be read: %s", name, type(raw).__name__)
            continue
        try:
            text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
            doc = json.loads(text) if b'"sources"' in text else None
        except (ValueError, OSError, EOFError):
            logger.warning("manifest %s is not JSON; skipped", name)
            continue
        if isinstance(doc, dict) and doc.get("version") == MANIFEST_VERSION:
            docs.append(doc)
    docs.sort(key=lambda d: (str(d.get("created", "")), str(d.get("call_token", ""))))
    return docs


def _candidates(manifests: Sequence[Mapping[str, Any]], tokens: set[str]) -> dict[str, list]:
    """``{row token: [source lists]}`` from the manifests, newest call first, each list once."""
    out: dict[str, list[tuple[Source, ...]]] = {}
    for manifest in reversed(manifests):
        for row in manifest.get("rows", []):
            plan, raw = row.get("plan") or {}, row.get("sources")
            token = plan.get("token")
            if token not in tokens or not raw or row.get("series"):
                continue
            try:
                sources = tuple(source_from_dict(s) for s in raw)
            except (KeyError, TypeError, ValueError):
                logger.warning(
                    "a manifest row of %s has unreadable sources", manifest.get("call_token")
                )
                continue
            if any(s.row_url == plan.get("row_url") for s in sources):
                continue  # the row's own request: not planned here
            if sources not in out.setdefault(token, []):
                out[token].append(sources)
    return out


def request_states(
    bought: Bought, urls: Sequence[str], identifiers: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """What each request is, from S3 (one listing) and this process's ledger.

    Parameters
    ----------
    bought : xasync.bought_alone.Bought
        The listing of the delivery root, with its filesystem.
    urls : sequence of str
        Request URLs (``<root>/<token[:24]>``).
    identifiers : mapping
        ``{url: output identifiers}`` (what a complete delivery holds).

    Returns
    -------
    dict
        ``{url: "done" | "pending" | "failed" | "none"}``: delivered, running (or claimed: its
        folder holds only another process's claim), failed, or not created.
    """
    return _request_states(bought, urls, identifiers)[0]


def _request_states(
    bought: Bought, urls: Sequence[str], identifiers: Mapping[str, Sequence[str]]
) -> tuple[dict[str, str], set[str]]:
    """:func:`request_states`, and the URLs whose folder holds only a claim (not created)."""
    from xasync.delivery import probe_rows
    from xasync.ledger import LEDGER, Stage

    urls = list(dict.fromkeys(urls))
    in_s3 = [u for u in urls if u.rsplit("/", 1)[-1] in bought.folders]
    probed = probe_rows(bought.fs, {u: identifiers[u] for u in in_s3}, read_cost=False)
    out, claimed = {}, set()
    for url, entry in zip(urls, LEDGER.entries(urls), strict=True):
        seen = probed[url].state if url in probed else None  # None: no folder at all
        if entry is not None and entry.stage in (Stage.QUEUED, Stage.CLAIMED, Stage.RUNNING):
            out[url] = "done" if seen == "done" else "pending"  # this process is on it
        elif entry is not None and entry.is_final and not entry.bought_nothing:
            out[url] = "done" if entry.stage is Stage.DONE else "failed"
        else:  # a folder with nothing but another process's claim: being bought
            out[url] = "none" if seen is None else "pending" if seen == "none" else seen
            if seen == "none":
                claimed.add(url)
    return out, claimed


def earlier_sources(
    specs: Sequence[RequestSpec], rows: Sequence[int], bought: Bought
) -> dict[int, tuple[Source, ...]]:
    """Rows (of ``rows``) that earlier calls delivered through other requests still usable.

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row.
    rows : sequence of int
        The rows to look up (those the call would buy something for).
    bought : xasync.bought_alone.Bought
        What exists under the delivery root, with its filesystem.

    Returns
    -------
    dict
        ``{row: sources}``: the windows to read the row from, each request done or running
        (a fully delivered set preferred, then the newest call's), or only claimed and rebuilt
        exactly (:mod:`xasync.reuse_rebuild`).
    """
    return _earlier(specs, rows, bought)[0]


def _earlier(
    specs: Sequence[RequestSpec],
    rows: Sequence[int],
    bought: Bought,
    known: Mapping[str, RequestSpec] | None = None,
) -> tuple[dict[int, tuple[Source, ...]], dict[str, RequestSpec]]:
    """:func:`earlier_sources`, and the requests not created yet it uses, rebuilt (``{url:
    spec}``; ``known``: the specs of the requests this call plans, used as they are)."""
    wanted = {specs[i].token: i for i in rows if not specs[i].userdata}
    if not wanted or bought.fs is None or bought.root is None:
        return {}, {}
    found: dict[str, list[tuple[Source, ...]]] = {}
    manifests: list[dict[str, Any]] = []
    if MANIFEST_DIR in bought.folders:  # else no call left a manifest here: nothing to read
        manifests = _planned_manifests(bought.fs, bought.root)
        found = _candidates(manifests, set(wanted))
    for token, i in wanted.items():  # bought alone before (e.g. tiled now): its own request
        if specs[i].row_url.rsplit("/", 1)[-1] in bought.folders:
            found.setdefault(token, []).insert(0, (own_source(specs[i]),))
    asked = {s.token for s in specs}
    return _usable(specs, wanted, found, bought, manifests, asked, known)


def _usable(
    specs: Sequence[RequestSpec],
    wanted: Mapping[str, int],
    found: Mapping[str, list[tuple[Source, ...]]],
    bought: Bought,
    manifests: Sequence[Mapping[str, Any]],
    asked: set[str],
    known: Mapping[str, RequestSpec] | None,
) -> tuple[dict[int, tuple[Source, ...]], dict[str, RequestSpec]]:
    """Per row, the first candidate whose requests are all usable (delivered first, then
    running, then not created yet: those rebuilt, see :class:`~xasync.reuse_rebuild.Claimed`)."""
    if not found:
        return {}, {}
    ids: dict[str, tuple[str, ...]] = {}
    for token, lists in found.items():
        spec = specs[wanted[token]]
        for s in (s for sources in lists for s in sources):
            ids[s.row_url] = spec.responses
    states, claimed = _request_states(bought, list(ids), ids)
    unbought = {url for url, state in states.items() if state == "none"}
    rebuilt = Claimed(claimed, unbought, found, manifests, asked, known)
    rank = {"done": 0, "pending": 1, "none": 2}  # delivered, then running, then to be bought
    out: dict[int, tuple[Source, ...]] = {}
    for token, lists in found.items():
        i = wanted[token]
        usable = [
            src
            for src in lists
            if _exact(specs[i], src)
            and all(states[s.row_url] in rank for s in src)
            and rebuilt.all_of(specs[i], src)
        ]
        usable.sort(key=lambda src: max(rank[states[s.row_url]] for s in src))
        if usable:
            out[i] = usable[0]
    if out:
        logger.info("%d rows read from requests bought by earlier calls", len(out))
    used = {s.row_url for src in out.values() for s in src}
    return out, {url: spec for url, spec in rebuilt.specs.items() if url in used}


def _needs_buying(
    specs: Sequence[RequestSpec], planned: PlannedSpecs | None, bought: Bought
) -> list[int]:
    """Rows whose planned requests do not all exist yet."""
    urls: list[tuple[str, ...]]
    if planned is None:
        urls = [(s.row_url,) for s in specs]
    else:
        urls = [tuple(s.row_url for s in src) for src in planned.sources]
    flat = list(dict.fromkeys(u for row in urls for u in row))
    exists = dict(zip(flat, bought.existing(flat), strict=True))
    return [i for i, row in enumerate(urls) if not all(exists[u] for u in row)]


def _merge(
    specs: Sequence[RequestSpec],
    rest: Sequence[int],
    sub: PlannedSpecs | None,
    reused: Mapping[int, tuple[Source, ...]],
    rebuilt: Mapping[str, RequestSpec],
) -> PlannedSpecs:
    """One plan: the re-planned rows ``rest`` (``sub``) and the reused rows' earlier sources
    (a request only claimed so far as its ``rebuilt`` spec, which the submitter may create)."""
    requests: list[RequestSpec] = []
    at: dict[str, int] = {}
    sources: list[tuple[Source, ...]] = [()] * len(specs)
    row_requests: list[tuple[int, ...]] = [()] * len(specs)

    def add(req: RequestSpec) -> int:
        if req.row_url not in at:
            at[req.row_url] = len(requests)
            requests.append(req)
        return at[req.row_url]

    for j, i in enumerate(rest):
        if sub is None:
            sources[i], row_requests[i] = (own_source(specs[i]),), (add(specs[i]),)
        else:
            sources[i] = sub.sources[j]
            row_requests[i] = tuple(add(sub.requests[k]) for k in sub.row_requests[j])
    for i, src in reused.items():
        sources[i] = src
        row_requests[i] = tuple(
            add(rebuilt.get(s.row_url) or _reused_request(specs[i], s)) for s in src
        )
    return PlannedSpecs(requests, sources, row_requests)


def plan_reusing(
    specs: Sequence[RequestSpec], *, bought: Bought | None = None, **keywords: Any
) -> PlannedSpecs | None:
    """:func:`xasync.planned.plan_call`, with rows delivered earlier read from their requests.

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row.
    bought : xasync.bought_alone.Bought, optional
        What exists under the delivery root (:func:`xasync.bought_alone.bought_requests`);
        None plans without looking (``plan_call``).
    **keywords
        ``max_request_px``, ``pack``, ``pack_max_px``, ``storage_options`` of ``plan_call``.

    Returns
    -------
    PlannedSpecs or None
        None when each row is its own request and no row is read from an earlier request.
        Rows read from earlier requests are not part of the packs planned for the others.
    """
    specs = list(specs)
    planned = plan_call(specs, bought=bought, **keywords)
    if bought is None or not bought.folders:  # a new root: no manifest, no request to read
        return planned
    known = {r.row_url: r for r in planned.requests} if planned is not None else {}
    reused, rebuilt = _earlier(specs, _needs_buying(specs, planned, bought), bought, known)
    if not reused:
        return planned
    rest = [i for i in range(len(specs)) if i not in reused]
    sub = plan_call([specs[i] for i in rest], bought=bought, **keywords) if rest else None
    return _merge(specs, rest, sub, reused, rebuilt)
