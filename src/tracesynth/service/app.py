"""The web service: a FastAPI app over the job manager (the only module that imports fastapi).

JSON API under /api (documented at /docs), and a few server-rendered pages that drive the same API with
a little JavaScript. Request handlers only read and write SQLite and files; training runs in worker
processes started by `JobManager`, so a status request never waits on a model.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator, Optional
from uuid import UUID

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .. import __version__
from .._atomic import clean_stale_parts
from ..errors import ConfigError, UserError
from .auth import COOKIE, TokenMiddleware
from .jobs import Conflict, JobManager, NotFound
from .models import JobOut, JobRequest, UploadOut
from .settings import ServiceSettings
from .store import ACTIVE_STATES, JobRecord, Store, UploadRecord
from .uploads import BadTrace, NotATrace, UploadTooLarge, accept, limited, save_stream
from .users import SOLE_USER, User, UserBook
from .views import STATIC, make_environment, render

log = logging.getLogger(__name__)


class Unauthorized(UserError):
    """No valid token on a route that acts for a user (HTTP 401)."""


_STATUS = [(Unauthorized, 401), (NotFound, 404), (Conflict, 409), (UploadTooLarge, 413), (NotATrace, 415),
           (BadTrace, 422), (ConfigError, 422), (UserError, 422)]
_MEDIA = {"pcap": "application/vnd.tcpdump.pcap", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the app; the job scheduler starts and stops with the app's lifespan."""
    for folder in (settings.data_dir, settings.uploads_dir, settings.jobs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    clean_stale_parts(settings.data_dir, recursive=True)  # uploads and job outputs a killed server left
    store = Store(settings.db_path)
    manager = JobManager(settings, store)
    book = UserBook(settings.users_path, settings.token)
    env = make_environment()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(title="tracesynth", version=__version__, lifespan=lifespan,
                  description="Upload a packet capture or flow records, train a synthetic-trace model, "
                              "download the synthetic trace and its fidelity report.")
    app.state.settings, app.state.store, app.state.manager, app.state.users = settings, store, manager, book
    app.add_middleware(TokenMiddleware, book=book,
                       login_page=lambda path: render(env, "login.html", next=path, failed=False))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app, env)
    _add_api(app, settings, store, manager)
    _add_pages(app, settings, store, manager, env, book)
    return app


async def user_of(request: Request) -> User:
    """The user the request acts for, as a dependency. Async: a sync dependency costs a thread-pool
    round trip per request (issue 14, item 10)."""
    return current_user(request)


def current_user(request: Request) -> User:
    """The user the request acts for (set by TokenMiddleware)."""
    user = request.scope.get("state", {}).get("user", SOLE_USER)
    if user is None:  # an open path (the sign-in form) reached without a token: it acts for nobody
        raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")
    return user


def _owned(user: User) -> str | None:
    """The owner filter for listings: None (everything) for an admin."""
    return None if user.admin else user.name


def _add_error_handlers(app: FastAPI, env: Any) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """422 naming each bad field. The offending input is not echoed: it may hold NaN or Infinity,
        which JSON cannot carry (FastAPI's default handler would fail on them with a 500)."""
        detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> Response:
        status = next(code for cls, code in _STATUS if isinstance(exc, cls))
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return HTMLResponse(render(env, "error.html", status=status, message=str(exc)), status_code=status)


def _upload_out(rec: UploadRecord) -> UploadOut:
    return UploadOut(id=rec.id, filename=rec.filename, size=rec.size, format=rec.format, kind=rec.kind,
                     summary=rec.summary, created=rec.created, owner=rec.owner)


def _job_out(job: JobRecord) -> JobOut:
    return JobOut(id=job.id, upload_id=job.upload_id, status=job.status, resumable=job.resumable,
                  params={k: v for k, v in job.params.items() if k != "config"}, progress=job.progress,
                  outputs=job.outputs, error=job.error, attempt=job.attempt, pid=job.pid, created=job.created,
                  started=job.started, finished=job.finished, owner=job.owner)


def _json(model: JobOut) -> Response:
    """A response model serialised once by pydantic (FastAPI would validate it again first)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _add_api(app: FastAPI, settings: ServiceSettings, store: Store, manager: JobManager) -> None:
    def upload_or_404(upload_id: UUID, user: User) -> UploadRecord:
        rec = store.get_upload(str(upload_id))
        if rec is None or not user.may_see(rec.owner):
            raise NotFound(f"no upload {upload_id}")
        return rec

    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and queue figures (sync: `running()` waits for the scheduler's lock, which must
        never stall the event loop)."""
        return {"status": "ok", "version": __version__, "running": manager.running(),
                "max_jobs": settings.max_jobs, "jobs": store.count_by_status()}

    @app.post("/api/uploads", status_code=201, response_model=UploadOut, tags=["uploads"],
              openapi_extra=_UPLOAD_BODY)
    async def create_upload(request: Request, user: User = Depends(user_of),
                            filename: Optional[str] = Query(None, max_length=255,
                                                            description="original file name (display only)")
                            ) -> UploadOut:
        """Upload a pcap/pcapng capture or a flow-record CSV, as the raw body or a multipart `file` field.

        The type is checked by content: 415 for a file that is no trace, 422 for a trace that cannot be
        read, 413 past the size limit.
        """
        limit = settings.max_upload_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit + 65536:
            raise UploadTooLarge(f"upload of {int(length) // 2**20} MiB is larger than the limit of "
                                 f"{settings.max_upload_mb} MiB; start the server with a larger --max-upload-mb")
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            tmp, size, name = await _receive_multipart(request, settings, limit)
        else:
            tmp, size = await save_stream(request.stream(), settings.uploads_dir, limit)
            name = filename or request.headers.get("x-filename")
        if size == 0:
            tmp.unlink(missing_ok=True)
            raise BadTrace("the upload is empty; send a pcap/pcapng capture or a flow-record CSV")
        rec = await run_in_threadpool(accept, tmp, size, name, settings.uploads_dir)
        rec.owner = user.name
        store.add_upload(rec)
        return _upload_out(rec)

    @app.get("/api/uploads", response_model=list[UploadOut], tags=["uploads"])
    def list_uploads(user: User = Depends(user_of)) -> list[UploadOut]:
        """Your uploads (an admin sees everyone's)."""
        return [_upload_out(r) for r in store.list_uploads(owner=_owned(user))]

    @app.get("/api/uploads/{upload_id}", response_model=UploadOut, tags=["uploads"])
    def get_upload(upload_id: UUID, user: User = Depends(user_of)) -> UploadOut:
        return _upload_out(upload_or_404(upload_id, user))

    @app.delete("/api/uploads/{upload_id}", status_code=204, tags=["uploads"])
    def delete_upload(upload_id: UUID, user: User = Depends(user_of)) -> Response:
        """Delete an uploaded trace (refused while a job on it is queued or running)."""
        rec = upload_or_404(upload_id, user)
        if any(j.status in ACTIVE_STATES for j in store.list_jobs(upload_id=rec.id)):
            raise Conflict(f"upload {upload_id} has a queued or running job; cancel it first")
        (settings.uploads_dir / rec.stored_name).unlink(missing_ok=True)
        store.delete_upload(rec.id)
        return Response(status_code=204)

    @app.post("/api/jobs", status_code=201, response_model=JobOut, tags=["jobs"])
    def create_job(request: JobRequest, user: User = Depends(user_of)) -> JobOut:
        """Queue a job: fit a model on the upload, generate the synthetic trace, write the report."""
        return _job_out(manager.submit(request, user))

    @app.get("/api/jobs", response_model=list[JobOut], tags=["jobs"])
    def list_jobs(status: Optional[str] = Query(None, pattern="^[a-z]+$"),
                  user: User = Depends(user_of)) -> list[JobOut]:
        """Your jobs (an admin sees everyone's)."""
        return [_job_out(j) for j in store.list_jobs(status=status, owner=_owned(user), config=False)]

    @app.get("/api/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    async def get_job(job_id: UUID, request: Request) -> JobOut:
        """Status and live progress (step, chunk, epoch, ETA); poll it.

        The hot path of the service (issue 14, item 10): it runs on the event loop, as one indexed
        SQLite read (WAL: never blocked by the worker's writes) is cheaper than the thread-pool hop a
        sync route pays, and it takes the user from the request, not as a sub-dependency (whose
        resolution cost more than the read)."""
        return _json(_job_out(manager.get(str(job_id), current_user(request), config=False)))

    @app.post("/api/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
    def cancel_job(job_id: UUID, user: User = Depends(user_of)) -> JobOut:
        return _job_out(manager.cancel(manager.get(str(job_id), user).id))

    @app.post("/api/jobs/{job_id}/resume", response_model=JobOut, tags=["jobs"])
    def resume_job(job_id: UUID, user: User = Depends(user_of)) -> JobOut:
        """Queue an interrupted, failed or cancelled job again; training continues from its checkpoints."""
        return _job_out(manager.resume(manager.get(str(job_id), user).id))

    @app.delete("/api/jobs/{job_id}", status_code=204, tags=["jobs"])
    def delete_job(job_id: UUID, user: User = Depends(user_of)) -> Response:
        manager.delete(manager.get(str(job_id), user).id)
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/synthetic", tags=["jobs"], response_class=FileResponse)
    def download_synthetic(job_id: UUID, user: User = Depends(user_of)) -> FileResponse:
        """The synthetic trace (pcap, csv or parquet)."""
        job = manager.get(str(job_id), user)
        name = job.outputs.get("synthetic")
        if not name:
            raise Conflict(f"job {job_id} is {job.status}; the synthetic trace is ready when it is done")
        fmt = name.rsplit(".", 1)[-1]
        return FileResponse(manager.job_dir(job.id) / name, media_type=_MEDIA.get(fmt),
                            filename=f"synthetic-{job.id[:8]}.{fmt}")

    @app.get("/api/jobs/{job_id}/report", tags=["jobs"], response_class=HTMLResponse)
    def open_report(job_id: UUID, user: User = Depends(user_of)) -> FileResponse:
        """The self-contained HTML fidelity report."""
        job = manager.get(str(job_id), user)
        if not job.outputs.get("report"):
            raise Conflict(f"job {job_id} has no report ({job.error or job.status})")
        return FileResponse(manager.job_dir(job.id) / "report.html", media_type="text/html")

    @app.get("/api/jobs/{job_id}/log", tags=["jobs"], response_class=PlainTextResponse)
    def job_log(job_id: UUID, user: User = Depends(user_of)) -> PlainTextResponse:
        """The worker's log (diagnostics of a failed job)."""
        job = manager.get(str(job_id), user)
        path = manager.job_dir(job.id) / "job.log"
        return PlainTextResponse(path.read_text(errors="replace")[-200_000:] if path.exists() else "")


async def _receive_multipart(request: Request, settings: ServiceSettings, limit: int):
    """Stream a multipart body through the size limit; return the stored temporary file of field `file`."""
    parser = MultiPartParser(request.headers, limited(request.stream(), limit), max_files=1, max_fields=5)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadTrace(f"malformed multipart upload: {exc.message}") from None
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise BadTrace("multipart upload needs the trace in a field named 'file'")

        async def chunks() -> AsyncIterator[bytes]:
            while block := await part.read(1 << 20):
                yield block

        tmp, size = await save_stream(chunks(), settings.uploads_dir, limit)
        return tmp, size, part.filename
    finally:
        await form.close()


def _add_pages(app: FastAPI, settings: ServiceSettings, store: Store, manager: JobManager, env: Any,
               book: UserBook) -> None:
    def page(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(render(env, name, **context))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(user: User = Depends(user_of)) -> HTMLResponse:
        uploads = {u.id: u for u in store.list_uploads(owner=_owned(user))}
        return page("index.html", uploads=list(uploads.values()), jobs=store.list_jobs(owner=_owned(user), config=False),
                    upload_names=uploads, max_upload_mb=settings.max_upload_mb)

    @app.get("/uploads/{upload_id}", response_class=HTMLResponse, include_in_schema=False)
    def upload_page(upload_id: UUID, user: User = Depends(user_of)) -> HTMLResponse:
        rec = store.get_upload(str(upload_id))
        if rec is None or not user.may_see(rec.owner):
            raise NotFound(f"no upload {upload_id}")
        return page("upload.html", upload=rec, jobs=store.list_jobs(upload_id=rec.id, owner=_owned(user), config=False),
                    default_preset="pcap" if rec.kind == "packets" else "netflow")

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def job_page(job_id: UUID, user: User = Depends(user_of)) -> HTMLResponse:
        job = manager.get(str(job_id), user)
        return page("job.html", job=job, upload=store.get_upload(job.upload_id))

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(next: str = "/") -> HTMLResponse:
        return page("login.html", next=next, failed=False)

    @app.post("/login", include_in_schema=False)
    def login(token: str = Form(...), next: str = Form("/")) -> Response:
        if not book.required:
            return RedirectResponse("/", status_code=303)
        if book.authenticate(token) is None:
            return HTMLResponse(render(env, "login.html", next=next, failed=True), status_code=401)
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

