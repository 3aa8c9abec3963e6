"""The default front end (detection, 68 landmarks, identity embedding; paper sections 3.3-3.4) of one
photo file, run in a helper process.

A fresh command spends about half a second loading dlib's models (the 68-point predictor is a 100 MB
file) with the GIL held, and about as long importing JAX and the texture stage's libraries: on one
process these add up, on two cores they can overlap.  :class:`FrontEndProcess` forks a child *before*
the caller imports JAX (the front end does not need it; a fork of a process without threads is
safe), the child reads the photo, runs :func:`~.api.detect_faces` and :func:`~.api.identity_embedding`
and sends the faces and the embedding back through a pipe, while the caller goes on with its imports
and model loading.  :meth:`FrontEndProcess.stages` gives the pipeline's ``detect`` / ``embed`` stages
that return the child's results: the same functions on the same pixels, so the same numbers (the
tests compare them with an in-process run).

Errors are the front end's own: the child's exception (``NoFaceError``, ``FaceTooSmallError``, an
unreadable photo) is re-raised by ``detect``, an embedding failure by ``embed``.  A child that ends
without an answer (killed, out of memory) is reported in :attr:`FrontEndProcess.fallback` and the
stages run the front end in the caller's process instead; nothing is silently different.  Only where
the ``fork`` start method exists (Linux); elsewhere :func:`start` returns None and the caller runs
the front end itself.
"""
from __future__ import annotations

import os
import time

__all__ = ["FrontEndProcess", "start"]


def _child(conn, photo_path: str, face_index: int, landmarks: str | None = None) -> None:
    """The helper process: read, detect, embed, send ``("ok", faces, embedding, embed_error, timings)``
    or ``("error", exception)``, then leave without interpreter teardown."""
    try:
        try:
            from digitaltwin_jax.frontend.api import detect_faces, identity_embedding
            from digitaltwin_jax.io.images import read_image

            t0 = time.perf_counter()
            image = read_image(photo_path)
            t1 = time.perf_counter()
            faces = detect_faces(image, landmarks=landmarks)
            t2 = time.perf_counter()
            embedding, embed_error = None, None
            if 0 <= face_index < len(faces):
                try:
                    embedding = identity_embedding(image, faces[face_index])
                except (ValueError, RuntimeError) as exc:
                    embed_error = exc
            t3 = time.perf_counter()
            msg = ("ok", _fingerprint(image), faces, embedding, embed_error,
                   {"read": t1 - t0, "detect": t2 - t1, "embed": t3 - t2})
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            msg = ("error", exc)
        try:
            conn.send(msg)
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(msg[1]).__name__}: {msg[1]}") if msg[0] == "error" else exc))
        conn.close()
    finally:
        os._exit(0)  # no teardown: dlib's models take ~0.15 s to free, and the caller owns stdio


class FrontEndProcess:
    """A running helper process for one photo (see the module docstring); use :func:`start`.

    Attributes:
      fallback: None, or why the front end ran in the caller's process after all.
      timings: the child's ``read`` / ``detect`` / ``embed`` seconds (after :meth:`result`).
    """

    def __init__(self, photo_path, face_index: int = 0, landmarks: str | None = None):
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self.face_index = int(face_index)
        self.photo_path = str(photo_path)
        self.landmarks = landmarks
        self._proc = ctx.Process(target=_child, args=(send, self.photo_path, self.face_index, landmarks), daemon=True,
                                 name="digitaltwin-frontend")
        self._proc.start()
        send.close()
        self._msg = None
        self.fallback = None
        self.timings: dict = {}

    def result(self):
        """The child's message (waits for it); ``None`` when the child ended without one (then
        :attr:`fallback` says why)."""
        if self._msg is None and self.fallback is None:
            from multiprocessing.connection import wait

            wait([self._recv, self._proc.sentinel])
            try:
                self._msg = self._recv.recv()
            except (EOFError, OSError):
                self._proc.join(5)
                self.fallback = (f"the front-end helper process ended without a result (exit code "
                                 f"{self._proc.exitcode}); the front end ran in this process")
            finally:
                self._recv.close()
            self._proc.join(5)
            if self._msg is not None and self._msg[0] == "ok":
                self.timings = dict(self._msg[5])
        return self._msg

    def stages(self, stages):
        """``stages`` (a :class:`~digitaltwin_jax.pipeline.Stages`) with ``detect`` and ``embed``
        answered by the child (falling back to ``stages``' own where the child gave no answer, or was
        asked about another image or face)."""
        import dataclasses

        return dataclasses.replace(stages, detect=_Detect(self, stages.detect), embed=_Embed(self, stages.embed))


class _Stage:
    """A detect / embed stage answered by the child; its ``name`` (the report's stage name) says where
    it ran and, for the child, how long it took there (the pipeline's own timing of the stage is
    only the wait for the answer)."""

    seconds = ()

    def __init__(self, proc: FrontEndProcess, own):
        self.proc, self.own = proc, own

    @property
    def name(self) -> str:
        own = getattr(self.own, "name", getattr(self.own, "__name__", type(self.own).__name__))
        if self.proc.fallback is not None or not self.proc.timings:
            return f"{own} (in this process)"
        return f"{own} (in a helper process: {sum(self.proc.timings[k] for k in self.seconds):.2f} s there)"


class _Detect(_Stage):
    seconds = ("read", "detect")

    def __call__(self, image):
        msg = self.proc.result()
        if msg is None:
            return self.own(image)
        if msg[0] == "error":
            raise msg[1]
        if _fingerprint(image) != msg[1]:  # another image than the child's photo
            return self.own(image)
        return list(msg[2])


class _Embed(_Stage):
    seconds = ("embed",)

    def __call__(self, image, face):
        msg = self.proc.result()
        if msg is None or msg[0] != "ok" or _fingerprint(image) != msg[1]:
            return self.own(image, face)
        faces = msg[2]
        i = self.proc.face_index
        if not (0 <= i < len(faces)) or faces[i] is not face and not _same_face(faces[i], face):
            return self.own(image, face)
        if msg[4] is not None:
            raise msg[4]
        return msg[3]


def _fingerprint(image) -> tuple:
    """Shape, dtype and CRC-32 of the pixels: the stages answer only for the child's own photo
    (~1 ms for a 512 x 512 photo)."""
    import zlib

    import numpy as np

    a = np.ascontiguousarray(image)
    return tuple(a.shape), a.dtype.str, zlib.crc32(a)


def _same_face(a, b) -> bool:
    import numpy as np

    return np.array_equal(np.asarray(a.landmarks), np.asarray(b.landmarks)) and np.array_equal(
        np.asarray(a.box), np.asarray(b.box))


def start(photo_path, face_index: int = 0, landmarks: str | None = None) -> FrontEndProcess | None:
    """Fork the helper for ``photo_path`` (``landmarks``: the 68-point route, None = the default); None (the caller runs the front end itself) where there
    is nothing to gain or forking is not safe: JAX is already imported (nothing left to overlap, and
    XLA's threads are running), the process has other threads, ``fork`` is not available (not
    Linux), or ``$DIGITALTWIN_FRONTEND_PROCESS`` is ``0``."""
    import multiprocessing as mp
    import sys
    import threading

    if (os.environ.get("DIGITALTWIN_FRONTEND_PROCESS", "1") == "0" or "jax" in sys.modules
            or threading.active_count() > 1 or "fork" not in mp.get_all_start_methods()):
        return None
    return FrontEndProcess(photo_path, face_index, landmarks)
