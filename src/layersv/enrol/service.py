"""``layersv serve``: a FastAPI app (JSON API + one web page) over a :class:`~layersv.enrol.Recognizer`.

Routes (all ``/api/*`` need the ``X-API-Key`` header when a key is set):

* ``GET /``: the web page (record from the microphone or upload a file; see the decision);
* ``GET /api/info``: model, scoring stage, operating point, limits, number of speakers;
* ``GET /api/speakers``; ``DELETE /api/speakers/{name}``;
* ``POST /api/enroll`` (form ``name``, files ``audio`` ×N), ``POST /api/verify`` (``name``,
  ``audio``), ``POST /api/identify`` (``audio``, ``top``).

Limits: a request body over ``max_bytes`` (enrol: ``MAX_FILES · max_bytes``) is refused
before it is parsed, or while it streams (413); each
upload over ``max_bytes`` (413), each recording over ``max_sec`` seconds (413); unreadable,
silent or too short audio is a 422 whose ``detail`` names the uploaded file.  Uploads are
written only to a private temporary folder (removed after each request and at shutdown) and
read with the same loaders as every other command; nothing else is written but the database.
"""

# no `from __future__ import annotations`: FastAPI resolves the route annotations at definition time

import hmac
import json
import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import torch

from ..data.audio import AudioError, audio_info
from .db import DatabaseError, EmptyDatabase, UnknownSpeaker
from .recognizer import Recognizer

MAX_FILES = 20  # recordings per enrol request
CHUNK = 1 << 20


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes (by Content-Length, or while streaming).

    ``limits``: a larger limit for some paths (``{"/api/enroll": bytes}``, several files).
    """

    def __init__(self, app, limit: int, limits: dict | None = None):
        self.app, self.default, self.limits = app, limit, dict(limits or {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope.get("path", ""), self.default)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _send_413(send, f"request body of {int(length)} bytes exceeds {limit}")
        seen, over = 0, False

        async def counted():
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:  # stop reading: the body ends here; the app's answer is replaced below
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return msg

        async def replaced(msg):
            if not over:
                await send(msg)
            elif msg["type"] == "http.response.start":
                await _send_413(send, f"request body exceeds {limit} bytes")

        await self.app(scope, counted, replaced)


async def _send_413(send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def page_html() -> str:
    return resources.files("layersv.enrol").joinpath("page.html").read_text(encoding="utf-8")


def _safe_label(name: str | None, i: int) -> str:
    base = Path(name or f"upload{i}").name
    return re.sub(r"[^\w.\- ]", "_", base)[:100] or f"upload{i}"


def create_app(recognizer, api_key: str | None = None, max_bytes: int = 20 << 20, max_sec: float = 120.0,
               tmp_dir: str | os.PathLike | None = None):
    """The FastAPI application; ``api_key`` None/"" means no key is required."""
    from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse

    tmp_root = Path(tempfile.mkdtemp(prefix="layersv-serve-", dir=tmp_dir))

    @asynccontextmanager
    async def lifespan(app):
        yield
        shutil.rmtree(tmp_root, ignore_errors=True)

    app = FastAPI(title="layersv speaker service", lifespan=lifespan, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.tmp_root = tmp_root
    slack = 64 << 10  # multipart headers and form fields
    app.add_middleware(BodyLimit, limit=max_bytes + slack, limits={"/api/enroll": MAX_FILES * max_bytes + slack})

    def check_key(request: Request) -> None:
        if api_key and not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    for exc, code in ((AudioError, 422), (UnknownSpeaker, 404), (EmptyDatabase, 409), (DatabaseError, 400),
                      (ValueError, 400)):
        app.add_exception_handler(exc, lambda req, e, code=code: JSONResponse({"detail": str(e)}, code))

    class Uploads:
        """Uploads saved to a fresh folder under ``tmp_root``; error messages name the uploaded files."""

        def __init__(self, files: list[UploadFile]):
            self.files = files

        def __enter__(self) -> list[tuple[Path, str]]:
            self.dir = Path(tempfile.mkdtemp(dir=tmp_root))
            try:
                return self._save()
            except BaseException:
                self.__exit__()
                raise

        def _save(self) -> list[tuple[Path, str]]:
            out = []
            for i, f in enumerate(self.files):
                label = _safe_label(f.filename, i)
                suffix = re.sub(r"[^A-Za-z0-9.]", "", Path(label).suffix)[:8]
                path, size = self.dir / f"upload{i}{suffix}", 0
                with open(path, "wb") as g:
                    while block := f.file.read(CHUNK):
                        size += len(block)
                        if size > max_bytes:
                            raise HTTPException(413, f"{label}: larger than the {max_bytes / 2**20:g} MB limit")
                        g.write(block)
                if size == 0:
                    raise HTTPException(422, f"{label}: empty upload")
                try:
                    dur = audio_info(path).duration
                except AudioError as e:
                    raise HTTPException(422, str(e).replace(str(path), label)) from None
                if dur > max_sec:
                    raise HTTPException(413, f"{label}: {dur:.1f} s is longer than the {max_sec:g} s limit")
                out.append((path, label))
            return out

        def __exit__(self, *exc):
            shutil.rmtree(self.dir, ignore_errors=True)

    def relabel(e: AudioError, files: list[tuple[Path, str]]) -> HTTPException:
        msg = str(e)
        for p, label in files:
            msg = msg.replace(str(p), label)
        return HTTPException(422, msg)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return page_html()

    @app.get("/api/info", dependencies=[Depends(check_key)])
    def info():
        r = recognizer
        return {"model": r.db.model_id[:12], "run": "/".join(r.run.resolve().parts[-2:]), "stage": r.pipe.final_stage,
                "calibrated": r.pipe.calibrator is not None, "p_target": r.p_target, "speakers": len(r.db),
                "limits": {"max_mb": max_bytes / 2**20, "max_sec": max_sec, "max_files": MAX_FILES},
                "api_key_required": bool(api_key)}

    @app.get("/api/speakers", dependencies=[Depends(check_key)])
    def speakers():
        return {"speakers": recognizer.speakers()}

    @app.delete("/api/speakers/{name:path}", dependencies=[Depends(check_key)])
    def delete(name: str):
        return recognizer.delete(name)

    @app.post("/api/enroll", dependencies=[Depends(check_key)])
    def enroll(name: str = Form(...), audio: list[UploadFile] = File(...)):
        if len(audio) > MAX_FILES:
            raise HTTPException(413, f"{len(audio)} files; at most {MAX_FILES} per request")
        with Uploads(audio) as files:
            try:
                return recognizer.enroll(name, [p for p, _ in files], [lab for _, lab in files])
            except AudioError as e:
                raise relabel(e, files) from None

    @app.post("/api/verify", dependencies=[Depends(check_key)])
    def verify(name: str = Form(...), audio: UploadFile = File(...)):
        recognizer.db.speaker(name)  # 404 before any audio work
        with Uploads([audio]) as files:
            try:
                return recognizer.verify(name, files[0][0])
            except AudioError as e:
                raise relabel(e, files) from None

    @app.post("/api/identify", dependencies=[Depends(check_key)])
    def identify(audio: UploadFile = File(...), top: int = Form(5)):
        if not 1 <= top <= 100:
            raise HTTPException(422, "top must be between 1 and 100")
        with Uploads([audio]) as files:
            try:
                return recognizer.identify(files[0][0], top=top)
            except AudioError as e:
                raise relabel(e, files) from None

    return app


def serve(run, db, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, max_mb: float = 20.0,
          max_sec: float = 120.0, p_target: float = 0.01, threads: int = 0, device: str = "cpu") -> None:
    """Load the run and the database, then serve until interrupted (uvicorn, one process)."""
    try:
        import uvicorn
    except ImportError:
        raise ValueError("`layersv serve` needs the serve extra: pip install 'layersv[serve]'") from None

    if threads:
        torch.set_num_threads(threads)
    rec = Recognizer(run, db, device=device, p_target=p_target)
    key = api_key if api_key is not None else os.environ.get("LAYERSV_API_KEY") or None
    app = create_app(rec, api_key=key, max_bytes=int(max_mb * 2**20), max_sec=max_sec)
    print(f"[layersv] serving {len(rec.db)} enrolled speakers from {db} on http://{host}:{port}/"
          + (" (X-API-Key required)" if key else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
