"""The web UI's pages: server-rendered HTML (Jinja2, autoescaped) over the public `Memory` API.

`install(app, backend)` adds the routes under /ui to a FastAPI app: the REST server's (behind its API keys)
or the local one of `engramdb ui`. Handlers read their input by hand and refuse bad input with a 4xx page;
every Memory call runs in a worker thread.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ..api.memory import Memory
from ..errors import (
    AuthError,
    EngramError,
    ForbiddenError,
    ModelMismatchError,
    NotFoundError,
    RateLimited,
    StoreError,
    ValidationError,
)
from ..ingest.normalize import check_id
from ..model import BUILTIN_KINDS, check_kind
from ..procedural.model import TIP_TYPES
from ..resources import ScopeDict
from ..timeutil import now, parse_time
from . import render
from .auth import PRESESSION_COOKIE, SESSION_COOKIE, SESSION_TTL_S, KeyBackend, UIBackend, Viewer

HERE = Path(__file__).parent
PAGE = 50
LEFT_OUT_SHOWN = 12
# A memory's page shows at most this much of what hangs off it: a tip is rewritten each time it is served, so
# its history grows with use; links and sources have no fixed bound either.
HISTORY_SHOWN = 50
RELATED_SHOWN = 200
MAX_FORM_BYTES = 256 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_time(t: datetime | None, full: bool = False) -> str:
    if t is None:
        return "—"
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if full else "%Y-%m-%d %H:%M")


def _fmt_bytes(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


_env.filters["t"] = _fmt_time
_env.filters["bytes"] = _fmt_bytes
_env.filters["short"] = lambda s, n=160: s if len(s) <= n else s[: n - 1] + "…"
_env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=2, sort_keys=True, default=str)
_env.filters["jsontext"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True)  # escaped like any text
_env.filters["num"] = lambda v, d=3: "" if v is None else f"{v:.{d}f}"


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Aggregates (counts by kind and scope, growth, the scope pickers) scan every row, which on a 100k store costs
# hundreds of milliseconds: they are kept per store until it changes, and while writes keep arriving they are
# recomputed at most every AGG_MAX_AGE_S seconds (the pages say how old they are).
AGG_MAX_AGE_S = 15.0
_agg: weakref.WeakKeyDictionary[Memory, dict[str, tuple[int, float, Any]]] = weakref.WeakKeyDictionary()
_agg_lock = threading.Lock()


def aggregate(mem: Memory, name: str, compute: Callable[[], Any]) -> tuple[Any, float]:
    """(value, age in seconds) of a cached aggregate of this store."""
    version = mem.version()
    with _agg_lock:
        hit = _agg.get(mem, {}).get(name)
    if hit is not None and (hit[0] == version or time.monotonic() - hit[1] < AGG_MAX_AGE_S):
        return hit[2], time.monotonic() - hit[1]
    value = compute()
    with _agg_lock:
        _agg.setdefault(mem, {})[name] = (version, time.monotonic(), value)
    return value, 0.0


@dataclass
class Ctx:
    request: Request
    viewer: Viewer
    mem: Memory
    backend: UIBackend
    form: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, max_len: int = 256) -> str | None:
        raw = self.form.get(name) if name in self.form else self.request.query_params.get(name)
        if raw is None or not raw.strip():
            return None
        if len(raw) > max_len:
            raise PageError(422, f"{name} is longer than {max_len} characters")
        return raw.strip()

    def scope_arg(self, name: str) -> str | None:
        value = self.arg(name)
        try:
            return check_id(value, where=name)
        except ValidationError as exc:
            raise PageError(422, str(exc)) from exc

    def int_arg(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.arg(name, 16)
        if raw is None:
            return default
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise PageError(422, f"{name} must be a whole number between {lo} and {hi}")
        return int(raw)

    def time_arg(self, name: str, *, end_of_day: bool = False) -> datetime | None:
        raw = self.arg(name, 64)
        if raw is None:
            return None
        if len(raw) == 10:  # a date from <input type=date>: midnight UTC (the end of the day for 'until')
            raw += "T23:59:59+00:00" if end_of_day else "T00:00:00+00:00"
        try:
            return parse_time(raw, field=name)
        except ValidationError as exc:
            raise PageError(422, str(exc)) from exc

    def page(self, template: str, status: int = 200, **data: Any) -> HTMLResponse:
        return html(self.request, self.backend, template, status=status, viewer=self.viewer, **data)


def html(request: Request, backend: UIBackend, template: str, *, status: int = 200, viewer: Viewer | None = None,
         **data: Any) -> HTMLResponse:
    csrf = backend.signer.csrf(viewer.session) if viewer else data.pop("csrf", "")
    body = _env.get_template(template).render(
        viewer=viewer, csrf=csrf, local=backend.local, backend=backend.backend, path=request.url.path,
        qs=request.query_params, urlencode=urlencode, **data,
    )
    return HTMLResponse(body, status_code=status, headers=_headers())


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send Origin: null on our own forms
        "Cache-Control": "no-store",
    }


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_headers())


def _same_origin(request: Request) -> bool:
    """A POST's Origin (when the browser sends one) must be this server."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PageError(413, "form too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, "malformed form") from exc
    return {k: v[-1] for k, v in parsed.items()}


def install(app: FastAPI, backend: UIBackend) -> None:
    """Add the UI under /ui to `app`."""
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    def route(path: str, view: Callable[[Ctx], Response], *, method: str = "GET", perm: str = "read") -> None:
        async def endpoint(request: Request) -> Response:
            form: dict[str, str] = {}
            try:
                if method == "POST":
                    form = await _read_form(request)
                return await run_in_threadpool(_run, request, form)
            except PageError as exc:
                return _error_page(request, backend, None, exc.status, str(exc))

        def _run(request: Request, form: dict[str, str]) -> Response:
            viewer: Viewer | None = None
            try:
                viewer = backend.viewer(request)
                if viewer is None:
                    if backend.local:
                        return _error_page(request, backend, None, 403, "the local UI answers only on 127.0.0.1")
                    if method == "GET":
                        return _redirect("/ui/login?" + urlencode({"next": _next(request)}))
                    raise PageError(401, "signed out: sign in again")
                if method == "POST":
                    if not _same_origin(request) or not _csrf_ok(backend, viewer, form.get("csrf")):
                        raise PageError(403, "this form has expired or did not come from this page: reload it")
                if not viewer.can(perm):
                    raise PageError(403, f"this key lacks the '{perm}' permission")
                ctx = Ctx(request, viewer, backend.memory(viewer), backend, form)
                t0 = time.perf_counter()
                resp = view(ctx)
                resp.headers["Server-Timing"] = f"view;dur={(time.perf_counter() - t0) * 1000:.1f}"
                return resp
            except PageError as exc:
                return _error_page(request, backend, viewer, exc.status, str(exc))
            except NotFoundError as exc:
                return _error_page(request, backend, viewer, 404, str(exc))
            except (ValidationError, ValueError) as exc:
                return _error_page(request, backend, viewer, 422, str(exc))
            except ForbiddenError as exc:
                return _error_page(request, backend, viewer, 403, str(exc))
            except AuthError as exc:
                return _error_page(request, backend, viewer, 401, str(exc))
            except StoreError as exc:
                return _error_page(request, backend, viewer, 503, f"storage unavailable: {exc}")
            except ModelMismatchError as exc:
                return _error_page(request, backend, viewer, 409, str(exc))
            except EngramError as exc:
                return _error_page(request, backend, viewer, 400, str(exc))
            except RateLimited as exc:
                resp = _error_page(request, backend, viewer, 429, str(exc))
                resp.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
                return resp

        endpoint.__name__ = "ui_" + view.__name__
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> Response:
        return _redirect("/ui/overview")

    if isinstance(backend, KeyBackend):
        _install_sign_in(app, backend)

    route("/ui/overview", overview)
    route("/ui/memories", memories)
    route("/ui/trace", trace)
    route("/ui/facts", facts)
    route("/ui/procedures", procedures)
    route("/ui/procedures/{tip_id}", tip_detail)
    route("/ui/m/{memory_id}", detail)
    route("/ui/m/{memory_id}/edit", edit, method="POST", perm="write")
    route("/ui/m/{memory_id}/forget", forget_confirm, perm="write")
    route("/ui/m/{memory_id}/forget", forget, method="POST", perm="write")
    route("/ui/purge", purge_confirm, perm="admin")
    route("/ui/purge", purge, method="POST", perm="admin")


def _next(request: Request) -> str:
    q = request.url.query
    return request.url.path + (f"?{q}" if q else "")


def _safe_next(value: str | None) -> str:
    """Only a path inside the UI: never another site (open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/overview"


def _csrf_ok(backend: UIBackend, viewer: Viewer, token: str | None) -> bool:
    import hmac

    return bool(token) and hmac.compare_digest(token or "", backend.signer.csrf(viewer.session))


def _error_page(request: Request, backend: UIBackend, viewer: Viewer | None, status: int, message: str
                ) -> HTMLResponse:
    return html(request, backend, "error.html", status=status, viewer=viewer, status_code=status, message=message)


def _install_sign_in(app: FastAPI, backend: KeyBackend) -> None:
    import secrets

    def cookie_flags(request: Request) -> dict[str, Any]:
        return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/ui"}

    @app.get("/ui/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        pre = backend.signer.sign("pre|" + secrets.token_urlsafe(12))
        resp = html(request, backend, "login.html", csrf=backend.signer.csrf(pre),
                    next=_safe_next(request.query_params.get("next")), error=None)
        resp.set_cookie(PRESESSION_COOKIE, pre, max_age=3600, **cookie_flags(request))
        return resp

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        try:
            form = await _read_form(request)
        except PageError as exc:
            return _error_page(request, backend, None, exc.status, str(exc))
        pre = request.cookies.get(PRESESSION_COOKIE)
        token = form.get("csrf") or ""
        import hmac

        if (not _same_origin(request) or backend.signer.unsign(pre) is None or pre is None
                or not hmac.compare_digest(token, backend.signer.csrf(pre))):
            return _error_page(request, backend, None, 403, "the sign-in form expired: reload the page")
        try:
            _, cookie = await run_in_threadpool(backend.sign_in, (form.get("key") or "").strip())
        except AuthError as exc:
            resp = html(request, backend, "login.html", status=401, csrf=token, next=_safe_next(form.get("next")),
                        error=str(exc))
            return resp
        ok = _redirect(_safe_next(form.get("next")))
        ok.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_TTL_S, **cookie_flags(request))
        ok.delete_cookie(PRESESSION_COOKIE, path="/ui")
        return ok

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await _read_form(request)
        viewer = await run_in_threadpool(backend.viewer, request)
        if viewer is not None and not _csrf_ok(backend, viewer, form.get("csrf")):
            return _error_page(request, backend, viewer, 403, "this form has expired: reload the page")
        resp = _redirect("/ui/login")
        resp.delete_cookie(SESSION_COOKIE, path="/ui")
        return resp


# -- pages ---------------------------------------------------------------------------------------


def overview(ctx: Ctx) -> Response:
    mem = ctx.mem

    def compute() -> dict[str, Any]:
        return {
            "stats": mem.stats(),
            "scopes": {f: mem.scopes(f, limit=8) for f in ("user_id", "agent_id", "session_id")},
            "growth": mem.growth(period="month"),
        }

    data, age = aggregate(mem, "overview", compute)
    st = data["stats"]
    return ctx.page(
        "overview.html",
        stats=st,
        scopes=data["scopes"],
        chart=render.bar_chart(data["growth"]),
        model=st.get("embed_model") or mem.model_name,
        dim=st.get("embed_dim"),
        age=age,
    )


def _pickers(mem: Memory, field: str, **kw: Any) -> list[tuple[str, int]]:
    """The busiest scope ids, offered as you type."""
    return aggregate(mem, f"pick:{field}:{sorted(kw.items())}", lambda: mem.scopes(field, limit=200, **kw)[1])[0]


def _scope(ctx: Ctx) -> ScopeDict:
    return {"user_id": ctx.scope_arg("user_id"), "agent_id": ctx.scope_arg("agent_id"),
            "session_id": ctx.scope_arg("session_id")}


def memories(ctx: Ctx) -> Response:
    mem = ctx.mem
    scope = _scope(ctx)
    kind = ctx.arg("kind", 32)
    if kind is not None:
        try:
            check_kind(kind)
        except ValueError as exc:
            raise PageError(422, str(exc)) from exc
    since, until = ctx.time_arg("since"), ctx.time_arg("until", end_of_day=True)
    q = ctx.arg("q", 2000)
    # unscoped, newest-stored first walks the primary key; a scope's time order walks its (scope, time) index
    order = ctx.arg("order", 16) or ("-occurred_at" if any(scope.values()) else "-recorded_at")
    if order not in ("occurred_at", "-occurred_at", "recorded_at", "-recorded_at"):
        raise PageError(422, "order must be occurred_at, -occurred_at, recorded_at or -recorded_at")
    offset = ctx.int_arg("offset", 0, 0, 10_000_000)
    kinds = [kind] if kind else None
    hits, page, total_age = None, None, 0.0
    if q:
        hits = mem.search(q, **scope, kinds=kinds, since=since, until=until, limit=PAGE)
    else:
        # a scope's index counts its matches cheaply; without one, counting scans every row: skip it
        page = mem.list(**scope, kinds=kinds, since=since, until=until, limit=PAGE, offset=offset, order=order,
                        count=any(scope.values()))
        if page.total < 0 and not (kinds or since or until):
            page.total, total_age = aggregate(mem, "overview-total", lambda: mem.list(limit=1).total)
    users, agents = _pickers(mem, "user_id"), _pickers(mem, "agent_id")
    sessions = mem.scopes("session_id", user_id=scope["user_id"], limit=200)[1] if scope["user_id"] else []
    params = {k: v for k, v in ctx.request.query_params.items() if k != "offset" and v}
    return ctx.page(
        "memories.html", scope=scope, kind=kind, q=q, order=order, offset=offset, hits=hits, page=page,
        since=ctx.arg("since", 64), until=ctx.arg("until", 64), kinds=BUILTIN_KINDS, users=users, agents=agents,
        sessions=sessions, params=params, page_size=PAGE, total_age=total_age,
        trace_params={k: v for k, v in params.items() if k in ("q", "user_id", "agent_id", "session_id")},
    )


def trace(ctx: Ctx) -> Response:
    from ..retrieve.context import format_line
    from ..retrieve.tokens import get_counter

    mem = ctx.mem
    scope = _scope(ctx)
    q = ctx.arg("q", 2000)
    max_tokens = ctx.int_arg("max_tokens", 300, 16, 100_000)
    as_of = ctx.time_arg("as_of")
    limit = ctx.int_arg("limit", 12, 1, 50)
    rows: list[dict[str, Any]] = []
    block, left_out = None, []
    if q:
        # the search context() packed its block from (limit 50), handed back by the same call: one search
        hits: list[Any] = []
        block = mem.context(q, **scope, max_tokens=max_tokens, as_of=as_of, hits=hits)
        counter = get_counter(mem.config.tokenizer)
        chosen = set(block.memory_ids)
        by_id = {h.memory.id: h for h in hits}
        for i, h in enumerate(hits[:limit]):
            state, sup = render.currency(h, as_of)
            rows.append({"rank": i + 1, "hit": h, "cost": counter.count(format_line(h)) + 1,
                         "in_context": h.memory.id in chosen, "state": state, "superseded_by": sup,
                         "why": render.why(i + 1, h, hits[i - 1] if i else None),
                         "links": len(mem.links(h.memory.id))})
        omitted = getattr(block, "omitted_ids", None)
        if omitted is None:  # an engine without the list: every hit that is not in the block
            omitted = [h.memory.id for h in hits if h.memory.id not in chosen]
        rank = {h.memory.id: i + 1 for i, h in enumerate(hits)}
        others = {r.id: r for r in mem.records([i for i in omitted if i not in by_id])}
        for mid in omitted[:LEFT_OUT_SHOWN]:
            rec = by_id[mid].memory if mid in by_id else others.get(mid)
            if rec is not None:
                cost = counter.count(format_line(by_id[mid])) + 1 if mid in by_id else None
                left_out.append({"rank": rank.get(mid), "memory": rec, "cost": cost})
    return ctx.page("trace.html", scope=scope, q=q, max_tokens=max_tokens, as_of=ctx.arg("as_of", 64), rows=rows,
                    block=block, left_out=left_out, limit=limit,
                    more_left_out=len(getattr(block, "omitted_ids", None) or []) - len(left_out) if block else 0,
                    more_hits=(len(hits) - len(rows)) if q else 0)


def facts(ctx: Ctx) -> Response:
    mem = ctx.mem
    user = ctx.scope_arg("user_id")
    agent = ctx.scope_arg("agent_id")
    as_of = ctx.time_arg("as_of")
    users = _pickers(mem, "user_id", kinds=["fact"])
    groups: list[dict[str, Any]] = []
    episodes: dict[str, Any] = {}
    if user or agent:
        recs = mem.facts(user_id=user, agent_id=agent, include_history=True, limit=1000)
        by_attr: dict[tuple[str, str], list[Any]] = {}
        for r in recs:
            key = (str(r.metadata.get("subject") or r.metadata.get("subject_key") or "?"),
                   str(r.metadata.get("attribute") or "?"))
            by_attr.setdefault(key, []).append(r)
        src_ids = list(dict.fromkeys(s for r in recs for s in r.source_ids))[:2000]
        episodes = {e.id: e for e in mem.records(src_ids, include_deleted=True)}
        for (subject, attr), rs in sorted(by_attr.items()):
            rs.sort(key=lambda r: (r.valid_from or r.occurred_at or now(), r.id))
            groups.append({
                "subject": subject,
                "attribute": attr,
                "facts": [
                    {"id": r.id, "value": str(r.metadata.get("value") or r.text), "text": r.text,
                     "valid_from": r.valid_from or r.occurred_at, "valid_to": r.valid_to,
                     "sources": [episodes[s] for s in r.source_ids if s in episodes],
                     "forgotten": r.deleted_at is not None}
                    for r in rs
                ],
            })
    at = as_of or now()
    state = []
    for g in groups:
        live = [f for f in g["facts"] if not f["forgotten"] and (f["valid_from"] is None or f["valid_from"] <= at)
                and (f["valid_to"] is None or f["valid_to"] > at)]
        state.append({"subject": g["subject"], "attribute": g["attribute"],
                      "value": live[-1]["value"] if live else None})
    return ctx.page("facts.html", user=user, agent=agent, users=users, groups=groups, state=state,
                    tl=render.timeline(groups, now()), as_of=at, as_of_given=as_of is not None)


def procedures(ctx: Ctx) -> Response:
    mem = ctx.mem
    agent = ctx.scope_arg("agent_id")
    status = ctx.arg("status", 16) or "all"
    if status not in ("all", "active", "retired"):
        raise PageError(422, "status must be all, active or retired")
    tip_type = ctx.arg("type", 16)
    if tip_type is not None and tip_type not in TIP_TYPES:
        raise PageError(422, f"type must be one of {', '.join(TIP_TYPES)}")
    offset = ctx.int_arg("offset", 0, 0, 10_000_000)
    # one page of tips, most useful first, and a count query: never every tip of the store
    sel: dict[str, Any] = {"agent_id": agent, "status": None if status == "all" else status, "tip_type": tip_type}
    tips = mem.list_tips(**sel, order="-utility", limit=PAGE, offset=offset)
    total = mem.count_tips(**sel)
    agents = _pickers(mem, "agent_id")
    return ctx.page("procedures.html", tips=tips, total=total, offset=offset, agent=agent, tip_status=status,
                    tip_type=tip_type, tip_types=TIP_TYPES, agents=agents, page_size=PAGE,
                    pages=_page_links(offset, total),
                    params={k: v for k, v in ctx.request.query_params.items() if k != "offset" and v})


def _page_links(offset: int, total: int, around: int = 2) -> list[tuple[int, int] | None]:
    """Numbered pages [(number, offset)], None for a gap: the first, the last, and `around` either side of
    the current one."""
    last = max(0, (total - 1) // PAGE)
    here = offset // PAGE
    wanted = sorted({0, last, *range(max(0, here - around), min(last, here + around) + 1)})
    out: list[tuple[int, int] | None] = []
    for i, n in enumerate(wanted):
        if i and n > wanted[i - 1] + 1:
            out.append(None)
        out.append((n + 1, n * PAGE))
    return out if last else []


def tip_detail(ctx: Ctx) -> Response:
    tip_id = _path_id(ctx, "tip_id")
    prov = ctx.mem.tip_provenance(tip_id)
    return ctx.page("tip.html", tip=prov["tip"], trajectories=prov["trajectories"])


def _path_id(ctx: Ctx, name: str) -> str:
    value = ctx.request.path_params.get(name, "")
    try:
        out = check_id(value, where=name)
    except ValidationError as exc:
        raise PageError(422, str(exc)) from exc
    if not out:
        raise PageError(404, "no such memory")
    return out


def _record(ctx: Ctx, memory_id: str) -> Any:
    got = ctx.mem.records([memory_id], include_deleted=True)
    if not got:
        raise NotFoundError(f"no memory with id {memory_id!r}")
    return got[0]


def detail(ctx: Ctx) -> Response:
    mem = ctx.mem
    memory_id = _path_id(ctx, "memory_id")
    rec = _record(ctx, memory_id)
    history = mem.history(memory_id, limit=HISTORY_SHOWN)  # the newest changes
    changes = [{"entry": h, "changes": render.history_changes(h.before, h.after)} for h in history]
    sources = mem.records(rec.source_ids[:RELATED_SHOWN], include_deleted=True)
    derived = mem.derived(memory_id, limit=RELATED_SHOWN)
    all_links = mem.links(memory_id)  # small rows (ids, type, reason); only the first RELATED_SHOWN are shown
    links = all_links[:RELATED_SHOWN]
    others = {r.id: r for r in mem.records(
        [lk["dst_id"] if lk["src_id"] == memory_id else lk["src_id"] for lk in links], include_deleted=True)}
    chain = mem.fact_history(memory_id) if rec.kind == "fact" else []
    return ctx.page("detail.html", m=rec, history=changes, sources=sources, derived=derived, links=links,
                    others=others, chain=chain, saved=ctx.arg("saved", 8),
                    older_history=len(history) == HISTORY_SHOWN and history[0].action != "add",
                    more_sources=len(rec.source_ids) - len(rec.source_ids[:RELATED_SHOWN]),
                    more_links=len(all_links) - len(links))


def edit(ctx: Ctx) -> Response:
    mem = ctx.mem
    memory_id = _path_id(ctx, "memory_id")
    changes: dict[str, Any] = {}
    text = ctx.form.get("text")
    rec = _record(ctx, memory_id)
    if rec.deleted_at is not None:
        raise PageError(409, "this memory was forgotten: it cannot be edited")
    if text is not None and text.replace("\r\n", "\n") != rec.text:
        changes["text"] = text.replace("\r\n", "\n")
    imp = ctx.arg("importance", 16)
    if imp is not None:
        try:
            value = float(imp)
        except ValueError as exc:
            raise PageError(422, "importance must be a number between 0 and 1") from exc
        if value != rec.importance:
            changes["importance"] = value
    meta = ctx.form.get("metadata")
    if meta is not None and meta.strip():
        try:
            parsed = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise PageError(422, f"metadata is not valid JSON: {exc.msg}") from exc
        if not isinstance(parsed, dict):
            raise PageError(422, "metadata must be a JSON object")
        if parsed != rec.metadata:
            changes["metadata"] = parsed
    expires = ctx.form.get("expires_at")  # absent: not on the form; emptied: it no longer expires
    if expires is not None:
        if len(expires) > 64:
            raise PageError(422, "expires_at is longer than 64 characters")
        expires = expires.strip()
        if expires != (rec.expires_at.isoformat() if rec.expires_at else ""):
            if expires:
                changes["expires_at"] = expires  # read by Memory.update: a bad time is a 422
            else:
                changes["clear"] = ["expires_at"]
    if changes:
        mem.update(memory_id, **changes)
    return _redirect(f"/ui/m/{memory_id}?saved={'1' if changes else '0'}")


def forget_confirm(ctx: Ctx) -> Response:
    rec = _record(ctx, _path_id(ctx, "memory_id"))
    derived = [d for d in ctx.mem.derived(rec.id) if d.deleted_at is None]
    return ctx.page("forget.html", m=rec, derived=derived)


def forget(ctx: Ctx) -> Response:
    memory_id = _path_id(ctx, "memory_id")
    rep = ctx.mem.forget(memory_id)
    return ctx.page("done.html", title="Forgotten",
                    message=f"Forgot {len(rep.forgotten)} memor{'y' if len(rep.forgotten) == 1 else 'ies'} "
                            f"({rep.cascaded} derived only from it). History keeps the record; search no longer "
                            "returns it.", back=f"/ui/m/{memory_id}")


class _PurgeScope(TypedDict):
    user_id: str | None
    agent_id: str | None


def _purge_scope(ctx: Ctx) -> _PurgeScope:
    scope: _PurgeScope = {"user_id": ctx.scope_arg("user_id"), "agent_id": ctx.scope_arg("agent_id")}
    if not any(scope.values()):
        raise PageError(422, "choose a user_id or an agent_id to purge")
    return scope


def purge_confirm(ctx: Ctx) -> Response:
    mem = ctx.mem
    if not (ctx.arg("user_id") or ctx.arg("agent_id")):
        return ctx.page("purge.html", scope=None, users=_pickers(mem, "user_id"))
    scope = _purge_scope(ctx)
    by_kind = {}
    for k in BUILTIN_KINDS:
        n = mem.list(**scope, kinds=[k], limit=1).total
        if n:
            by_kind[k] = n
    rest = mem.list(**scope, limit=1).total - sum(by_kind.values())
    if rest:
        by_kind["other kinds"] = rest
    sessions, _ = mem.scopes("session_id", **scope, limit=1)
    return ctx.page("purge.html", scope=scope, by_kind=by_kind, total=sum(by_kind.values()), sessions=sessions,
                    users=[])


def purge(ctx: Ctx) -> Response:
    scope = _purge_scope(ctx)
    typed = ctx.arg("confirm")
    name = scope["user_id"] or scope["agent_id"]
    if typed != name:
        raise PageError(422, "type the exact id to confirm the purge")
    rep = ctx.mem.purge(**scope)
    return ctx.page("done.html", title="Purged",
                    message=f"Erased {rep.memories} memories of {name} with their history, vectors and links "
                            f"({_fmt_bytes(rep.bytes_before)} → {_fmt_bytes(rep.bytes_after)} on disk).",
                    back="/ui/overview")
