"""What soilsuite wrote in a folder, and who is writing into it now.

Every folder soilsuite writes outputs into (a composite run, a simulated archive, a FORCE
export, a soil-map or validation-report folder) holds two small files of its own:

``.soilsuite-manifest.json``
    the exact files soilsuite wrote there (path relative to the folder, size in bytes,
    modification time in ns, SHA-256), the kind of output (``composite``, ``simulate``,
    ``export-force``, ``dsm``...), the hash of the parameters that change the outputs, and the
    state: ``running`` until the last file is written, then ``complete``. Written atomically
    (temporary file + rename), so it is never half written.
``.soilsuite.lock``
    while a run writes: its pid, host, process start time and command. A second run into the
    same folder is refused. A lock whose process is gone (same host, and the pid is not running
    or belongs to a process started later) is stale and is taken over; a lock of another host
    is never broken automatically (the message says which file to remove).

The rules (DESIGN.md: "nothing is deleted that soilsuite did not write"):

- A folder without a manifest is not a soilsuite output, whatever it holds: a ``run.json`` of
  another tool is just a file. soilsuite refuses to write into a non-empty folder that is not
  one of its own outputs.
- ``overwrite`` removes only the files the manifest lists, and only if none of them changed
  since soilsuite wrote it (size, mtime, then SHA-256) and no other file is in the folder;
  otherwise it refuses and lists them.
- ``force_clean`` (with ``overwrite``) also removes soilsuite's files that were changed, and lets
  the run write beside files soilsuite did not write. Those are never removed or replaced,
  whatever the options: a file of the user's that stands where an output goes makes the run
  refuse.
- Sub-folders soilsuite creates for its own scratch work (``owned_dirs``, e.g. ``.work``) are
  soilsuite's as a whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError

MANIFEST = ".soilsuite-manifest.json"
LOCK = ".soilsuite.lock"
#: scratch folder inside an output folder where :meth:`OutputFolder.build` writes the new files
SCRATCH = ".soilsuite-tmp"
_FORMAT = 1
#: files listed in a refusal message at the most
_SHOW = 8


def _rel(p: str | os.PathLike, base: Path) -> str:
    """A file's path relative to ``base`` (POSIX): a ``str`` is taken as relative to ``base``
    already; a ``Path`` is a file-system path (absolute, or relative to the working directory)."""
    if isinstance(p, str):
        return Path(p).as_posix()
    return Path(os.path.relpath(os.path.abspath(p), os.path.abspath(base))).as_posix()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def _show(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOW} more" if len(paths) > _SHOW else ""
    return ", ".join(paths[:_SHOW]) + more


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _process_start(pid: int) -> float | None:
    """Start time (s since epoch) of a running process, None if no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


@dataclass
class Survey:
    """What a folder holds, measured against its manifest (relative POSIX paths)."""

    owned: list[str] = field(default_factory=list)  # soilsuite's files, unchanged
    changed: list[str] = field(default_factory=list)  # soilsuite's files, changed since written
    foreign: list[str] = field(default_factory=list)  # files soilsuite did not write
    missing: list[str] = field(default_factory=list)  # listed but gone


class OutputFolder:
    """A folder soilsuite writes into: its manifest and its lock.

    Parameters
    ----------
    path : path
        The folder.
    kind : str
        Kind of output (``"composite"``, ``"simulate"``, ``"export-force"``, ``"dsm"``...): a
        folder holding another kind of soilsuite output is refused.
    owned_dirs : iterable of str
        Sub-folders that are soilsuite's as a whole (scratch space), relative.
    namespace : callable, optional
        ``namespace(relpath) -> bool``: the paths an unfinished run of this kind may have
        written before it could list them (a run killed while writing its products). They
        count as soilsuite's only while the manifest says ``running``.
    """

    def __init__(self, path: str | os.PathLike, kind: str, *, owned_dirs: Iterable[str] = (),
                 namespace: Callable[[str], bool] | None = None):
        self.path = Path(path)
        self.kind = kind
        self.owned_dirs = (*tuple(owned_dirs), SCRATCH)
        self.namespace = namespace

    # ------------------------------------------------------------------ reading
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def read(self) -> dict[str, Any] | None:
        """The manifest, or None if the folder has none (then it is not a soilsuite output)."""
        try:
            text = self.manifest_path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputExistsError(f"cannot read {self.manifest_path}: {exc.strerror or exc}") from None
        try:
            m = json.loads(text)
            if not isinstance(m, dict) or m.get("soilsuite_manifest") != _FORMAT or not isinstance(m.get("files"), dict):
                raise ValueError("not a soilsuite manifest")
        except ValueError:
            raise OutputExistsError(
                f"{self.manifest_path} is damaged or not soilsuite's; soilsuite cannot tell which files it "
                "wrote in that folder, so it changes nothing there: choose another output folder") from None
        return m

    def files(self) -> list[str]:
        """Every file below the folder (relative POSIX paths), without the manifest, the lock
        and the owned sub-folders."""
        out = []
        if not self.path.is_dir():
            return out
        for root, dirs, names in os.walk(self.path):
            rel_root = Path(root).relative_to(self.path)
            if rel_root == Path("."):
                dirs[:] = [d for d in dirs if d not in self.owned_dirs]
            for n in names:
                rel = (rel_root / n).as_posix()
                if rel in (MANIFEST, LOCK) or (rel_root == Path(".") and n.startswith(f"{MANIFEST}.tmp-")):
                    continue
                out.append(rel)
        return sorted(out)

    def is_empty(self) -> bool:
        """Missing, or nothing in it but a lock."""
        return not self.path.exists() or (self.path.is_dir() and
                                          not any(e.name != LOCK for e in self.path.iterdir()))

    def survey(self, manifest: dict[str, Any] | None = None) -> Survey:
        """Which files are soilsuite's (unchanged or changed), which are not, which are gone."""
        m = manifest if manifest is not None else (self.read() or {"files": {}, "state": "complete"})
        listed: dict[str, dict] = m["files"]
        unfinished = m.get("state") != "complete"
        s = Survey()
        present = self.files()
        for rel in present:
            e = listed.get(rel)
            if e is None:
                if unfinished and self.namespace is not None and self.namespace(rel):
                    s.owned.append(rel)
                else:
                    s.foreign.append(rel)
                continue
            p = self.path / rel
            st = p.stat()
            if st.st_size != e.get("size"):
                s.changed.append(rel)
            elif st.st_mtime_ns == e.get("mtime_ns") or _sha256(p) == e.get("sha256"):
                s.owned.append(rel)
            else:
                s.changed.append(rel)
        have = set(present)
        s.missing = sorted(r for r in listed if r not in have)
        return s

    # ------------------------------------------------------------------ deciding
    def check(self, *, overwrite: bool, force_clean: bool = False, params_hash: str | None = None,
              resumable: bool = False, what: str = "run") -> str:
        """Decide what a new run may do with the folder; changes nothing.

        Returns
        -------
        str
            ``"new"`` (missing or empty folder, or beside files soilsuite did not write with
            ``force_clean``), ``"resume"`` (an unfinished run of the same parameters and
            ``resumable``), ``"complete"`` (a finished run of the same parameters; nothing to
            do unless ``overwrite``), ``"replace"`` (soilsuite's earlier outputs are to be
            removed first: :meth:`clear`).

        Raises
        ------
        OutputExistsError
            The folder may not be used; the message says why and what to do.
        """
        p = self.path
        if p.exists() and not p.is_dir():
            raise OutputExistsError(f"output {p} is a file, not a folder")
        self.check_lock()
        if self.is_empty():
            return "new"
        m = self.read()
        if m is None:
            if force_clean:
                self._refuse_collisions(self.files())
                return "new"
            raise OutputExistsError(
                f"output folder {p} is not empty and is not a soilsuite output (no {MANIFEST}); soilsuite only "
                f"replaces files it wrote itself. Choose an empty or new folder, or add --force-clean to write "
                f"beside the files there (they are kept)")
        if m.get("kind") != self.kind:
            raise OutputExistsError(
                f"output folder {p} holds a soilsuite {m.get('kind')} output, not a {self.kind} {what}; "
                "choose another folder")
        same = params_hash is None or m.get("params_hash") == params_hash
        complete = m.get("state") == "complete"
        if not overwrite:
            if complete and same:
                return "complete"
            if complete:
                raise OutputExistsError(
                    f"output folder {p} holds a finished {self.kind} {what} with other parameters; "
                    "use --overwrite to replace it, or another folder")
            if resumable and same:
                return "resume"
            raise OutputExistsError(
                f"output folder {p} holds an unfinished {self.kind} {what} with other parameters; "
                + ("run the same command to resume it, or " if resumable else "")
                + "use --overwrite to start again")
        s = self.survey(m)
        if (s.foreign or s.changed) and not force_clean:
            parts = []
            if s.foreign:
                parts.append(f"{len(s.foreign)} file(s) soilsuite did not write: {_show(s.foreign)}")
            if s.changed:
                parts.append(f"{len(s.changed)} file(s) changed since soilsuite wrote them: {_show(s.changed)}")
            raise OutputExistsError(
                f"--overwrite refused: output folder {p} holds " + "; ".join(parts)
                + ". Move them elsewhere, or add --force-clean to replace soilsuite's files and keep the others")
        self._refuse_collisions(s.foreign)
        return "replace"

    def _refuse_collisions(self, foreign: list[str]) -> None:
        hits = [r for r in foreign if self.namespace is not None and self.namespace(r)]
        if hits:
            raise OutputExistsError(
                f"output folder {self.path}: {_show(hits)} {'was' if len(hits) == 1 else 'were'} not written by "
                "soilsuite and stand(s) where its outputs go; move them away (soilsuite never replaces a file it did "
                "not write)")

    def check_lock(self) -> None:
        """Raise if another live process holds the folder's lock."""
        info = self._lock_info()
        if info is None or self._stale(info) or self._mine(info):
            return
        raise OutputExistsError(
            f"another soilsuite run is writing into {self.path} (pid {info.get('pid')} on {info.get('host')}, "
            f"started {info.get('started')}): wait for it to finish"
            + ("" if info.get("host") == socket.gethostname() else
               f", or if it is gone, remove {self.lock_path}"))

    def _lock_info(self) -> dict | None:
        try:
            return json.loads(self.lock_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"pid": None, "host": socket.gethostname(), "started": "?", "damaged": True}

    @staticmethod
    def _mine(info: dict) -> bool:
        return info.get("pid") == os.getpid() and info.get("host") == socket.gethostname()

    @staticmethod
    def _stale(info: dict) -> bool:
        if info.get("damaged"):
            return True
        if info.get("host") != socket.gethostname():
            return False
        pid = info.get("pid")
        if not isinstance(pid, int):
            return True
        t = _process_start(pid)
        # gone, or the pid was reused by a process started after the lock was taken
        return t is None or t > float(info.get("process_start", 0)) + 1.0

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock (created atomically) for the duration of a run."""
        self.path.mkdir(parents=True, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "process_start": _process_start(os.getpid()) or 0.0,
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)[:500]}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                self.check_lock()  # raises unless stale
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()  # stale: take it over
        else:  # pragma: no cover - lost a race twice
            self.check_lock()
            raise OutputExistsError(f"cannot lock {self.path}: another run took it")
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    def start(self, *, params_hash: str | None = None, extra: dict | None = None, keep: bool = True) -> dict:
        """Write the manifest of a run that starts (state ``running``); ``keep`` keeps what an
        earlier attempt recorded (its files, and any progress it noted: a resume)."""
        old = (self.read() or {}) if keep else {}
        m = {**old, "soilsuite_manifest": _FORMAT, "kind": self.kind, "state": "running",
             "params_hash": params_hash, "owned_dirs": list(self.owned_dirs),
             "software": _software(), "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "files": dict(old.get("files", {})), **(extra or {})}
        self._write(m)
        return m

    def record(self, paths: Iterable[str | os.PathLike], *, state: str | None = None,
               manifest: dict | None = None, extra: dict | None = None, source: Path | None = None) -> dict:
        """Add files soilsuite wrote to the manifest: ``str`` paths relative to the folder (as
        :meth:`survey` and :func:`tree_files` give them), or ``Path`` objects (file-system paths,
        absolute or relative to the working directory).

        Checksums are computed here, in threads (file reads release the GIL). With ``source``,
        the files are measured in that folder (a finished temporary tree about to be moved in
        with :func:`install_tree`; a rename keeps size and mtime)."""
        from concurrent.futures import ThreadPoolExecutor

        m = manifest if manifest is not None else (self.read() or self.start())
        base = source if source is not None else self.path
        rels = [r for r in (_rel(p, base) for p in paths) if r not in (MANIFEST, LOCK)]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for rel, e in zip(rels, pool.map(lambda r: _entry(base / r), rels), strict=True):
                m["files"][rel] = e
        if state is not None:
            m["state"] = state
            if state == "complete":
                m["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if extra:
            m.update(extra)
        self._write(m)
        return m

    def clear(self, *, force_clean: bool = False, owned_dirs: bool = True) -> list[str]:
        """Remove soilsuite's files from the folder (``replace``); returns what was removed.

        Re-surveys first (the caller holds the lock): a file changed since :meth:`check` is
        removed only with ``force_clean``. Files soilsuite did not write stay. Owned
        sub-folders are removed whole (unless ``owned_dirs=False``: a scratch folder in use)."""
        import shutil

        m = self.read()
        if m is None:
            return []
        s = self.survey(m)
        if s.changed and not force_clean:
            raise OutputExistsError(f"{_show(s.changed)} changed while soilsuite checked the folder; nothing removed")
        gone = []
        for rel in s.owned + (s.changed if force_clean else []):
            p = self.path / rel
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            gone.append(rel)
            self._prune(p.parent)
        for d in self.owned_dirs if owned_dirs else ():
            shutil.rmtree(self.path / d, ignore_errors=True)
        m["files"] = {}
        self._write(m)
        return gone

    def check_build(self, *, overwrite: bool, force_clean: bool = False, what: str = "output") -> str:
        """:meth:`check` for an output written whole (:meth:`build`): a finished one of the same
        kind is replaced only with ``overwrite``. Call it before long work, to refuse early."""
        action = self.check(overwrite=overwrite, force_clean=force_clean, what=what)
        if action == "complete":
            raise OutputExistsError(
                f"{self.path} holds a soilsuite {self.kind} {what} already; use overwrite "
                "(--overwrite) to replace it, or another folder")
        return action

    def build(self, fill: Callable[[Path], Any], *, overwrite: bool, force_clean: bool = False,
              what: str = "output") -> Any:
        """Write a whole output folder at once, never losing a file.

        ``fill(tmp)`` writes every new file into a scratch folder inside the output folder;
        then, under the lock, the files of soilsuite's earlier output (if ``overwrite``) are
        removed, the new files are listed in the manifest and moved in. Files soilsuite did not
        write stay (with ``force_clean``; without it their presence refuses). Returns what
        ``fill`` returns.
        """
        import shutil

        self.check_build(overwrite=overwrite, force_clean=force_clean, what=what)  # refuse before any work
        with self.lock():
            action = self.check_build(overwrite=overwrite, force_clean=force_clean, what=what)
            self.start(keep=True)  # an earlier output's files stay listed until removed
            tmp = self.path / SCRATCH
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                result = fill(tmp)
                if action == "replace":
                    self.clear(force_clean=force_clean, owned_dirs=False)
                # list the new files first, then move them in: an interruption leaves nothing unlisted
                m = self.record(tree_files(tmp), source=tmp, manifest=self.read())
                install_tree(tmp, self)
                self.record([], state="complete", manifest=m)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return result

    def claim(self, targets: Iterable[str | os.PathLike], *, overwrite: bool, force_clean: bool = False) -> None:
        """Check that files about to be written into a shared folder may be (``targets``: file-system
        paths, or ``str`` relative to the folder): a target that
        exists must have been written by soilsuite (and be unchanged, unless ``force_clean``),
        and is replaced only with ``overwrite``. Record the files with :meth:`record` once
        written."""
        m = self.read() or {"files": {}, "state": "complete"}
        exists, foreign, changed = [], [], []
        for t in targets:
            rel = _rel(t, self.path)
            q = self.path / rel
            if not q.exists():
                continue
            exists.append(rel)
            e = m["files"].get(rel)
            if e is None:
                foreign.append(rel)
            elif q.stat().st_size != e.get("size") or (q.stat().st_mtime_ns != e.get("mtime_ns")
                                                       and _sha256(q) != e.get("sha256")):
                changed.append(rel)
        if exists and not overwrite:
            raise OutputExistsError(f"outputs exist in {self.path}: {_show(exists)}; pass overwrite=True "
                                    "(CLI: --overwrite) to replace them")
        if foreign:
            raise OutputExistsError(f"{_show(foreign)} in {self.path} {'was' if len(foreign) == 1 else 'were'} not "
                                    "written by soilsuite; soilsuite never replaces such a file: move it away or "
                                    "choose another output folder")
        if changed and not force_clean:
            raise OutputExistsError(f"{_show(changed)} in {self.path} changed since soilsuite wrote "
                                    f"{'it' if len(changed) == 1 else 'them'}; move it away, or force_clean")

    def _prune(self, d: Path) -> None:
        """Remove folders left empty up to the output folder itself."""
        while d != self.path and self.path in d.parents:
            try:
                d.rmdir()
            except OSError:
                return
            d = d.parent

    def _write(self, m: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.manifest_path, json.dumps(m, indent=1, sort_keys=True))


def _software() -> str:
    from .. import __version__

    return f"soilsuite {__version__}"


def tree_files(src: Path) -> list[str]:
    """Every file below ``src`` (relative POSIX paths, sorted)."""
    rels = []
    for root, _, names in os.walk(src):
        for n in names:
            rels.append((Path(root).relative_to(src) / n).as_posix())
    return sorted(rels)


def install_tree(src: Path, folder: OutputFolder) -> list[str]:
    """Move every file of ``src`` (a finished temporary tree) into ``folder``, merging
    sub-folders; refuses before moving anything if a file would replace one that is there.
    Returns the relative paths moved. ``src`` is removed."""
    import shutil

    dst = folder.path
    rels = tree_files(src)
    clash = [r for r in rels if (dst / r).exists()]
    if clash:
        raise OutputExistsError(
            f"output folder {dst}: {_show(clash)} would replace file(s) soilsuite did not write; move them away")
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        _move(entry, dst / entry.name)
    shutil.rmtree(src, ignore_errors=True)
    return sorted(rels)


def _move(src: Path, dst: Path) -> None:
    if src.is_dir() and dst.is_dir():
        for e in sorted(src.iterdir()):
            _move(e, dst / e.name)
        src.rmdir()
    else:
        os.replace(src, dst)
