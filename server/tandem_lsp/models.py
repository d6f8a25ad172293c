"""``tandem-lsp models``: list, download (``pull``), locate (``path``) and delete (``remove``) GGUF models
for the embedded backend.

Where models live
    ``$TANDEM_DATA_DIR`` if set, else ``$XDG_DATA_HOME/tandem``, else ``~/.local/share/tandem``; models are
    in ``<data>/models/<name>.gguf`` (``--dir`` overrides the models directory). ``<models>/default.txt``
    records pulled model names, most recent first; :func:`default_model_path` returns the first one that is
    present, so the default is "the most recently pulled model that is still there"; with none, a GGUF
    copied there by hand is the default (``tandem_lsp.model_files`` says which).

A file already in place
    ``pull NAME`` for a file already at ``<models>/<name>.gguf`` (a finished pull, or a file copied by
    hand) hashes it (progress on stderr) before making it the default. A file whose sha256 is not the
    expected one is refused (exit 1): it is kept, recorded in ``<models>/rejected.txt`` so that it is not
    used as the default while unchanged, and the message says how to replace it or to accept it anyway
    (``--sha256 HEX``). With no digest known (no catalogue pin, no ``--sha256``, the server unreachable
    or silent) it prints the digest and asks for ``--sha256`` or ``--no-verify``.

Downloads
    ``pull`` streams into ``<name>.gguf.part``, resumes a leftover ``.part`` with ``Range: bytes=N-`` (a 206
    whose ``Content-Range`` starts at N appends; a 200, i.e. a server that ignores Range, restarts from
    zero; a 416 whose ``Content-Range: bytes */N`` equals the ``.part`` size means it is already complete),
    hashes the whole file with sha256 and only then ``os.replace``-s it to ``<name>.gguf``. A broken or
    unverified download never leaves a file under the final name. A sha256 mismatch deletes the ``.part``.
    Progress (bytes, %, speed) is plain text on stderr. The connect timeout is short, so being offline fails
    at once with a hint on placing a GGUF by hand.

The catalogue and its digests
    Every entry is pinned to a Hugging Face commit, so the bytes behind a URL cannot change. All but one
    are *base* (not instruct) Qwen2.5-Coder GGUFs for fill-in-the-middle, named
    ``qwen2.5-coder-<params>-<quant>``: the Q8_0 files are ggml-org's (the ones llama.cpp's own
    ``--fim-qwen-*-default`` presets use); the Q4_K_M files come from bartowski and QuantFactory. The
    other, ``sweep-next-edit-1.5b``, is Sweep's next-edit model (``sweepai/sweep-next-edit-1.5B``, a
    Qwen2.5-Coder 1.5B fine-tune that rewrites the lines around the cursor from the recent edits), the
    Q8_0 GGUF Sweep publishes in that repository.
    Hugging Face itself was not reachable when this was written; the revisions, sizes and sha256
    digests were taken from public projects that pin the same files and check them (the 1.5B Q8_0 and
    the Sweep digests from two independent ones each), so each is recorded in the entry with
    ``sha256_source``.

    ``pull`` asks the server first (one HEAD request, redirects not followed): Hugging Face answers a
    ``/resolve/`` URL with ``X-Linked-Etag``, the sha256 of the LFS file, and ``X-Linked-Size``; where
    that header is missing it asks ``/api/models/<repo>/tree/<revision>`` (``lfs.oid``). Then:
    - catalogue digest and server digest agree, or only one is known: that digest is checked;
    - they disagree: nothing is downloaded and the message shows both (run again with ``--sha256``
      to choose one);
    - neither is known (a mirror that sends no metadata): ``pull`` downloads, prints the digest and
      refuses to install it (the complete ``.part`` is kept, exit 1) unless ``--no-verify`` or
      ``--sha256 HEX`` is given; re-running does not download again.
    A 404 from the HEAD request fails at once, before any download, with the URL that was asked.

Tests
    ``TANDEM_MODELS_URL=http://127.0.0.1:PORT/`` replaces the scheme and host of every catalogue URL (the
    path is kept, appended to any path in the override), and ``CATALOGUE`` may be monkeypatched.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tandem_lsp.model_files import (  # noqa: F401  (part of this module's interface)
    DEFAULT_FILE,
    RECOMMENDED,
    REJECTED_FILE,
    _read_defaults,
    data_dir,
    default_model_path,
    is_gguf,
    model_path,
    models_dir,
    read_rejected,
    signature,
)

PART_SUFFIX = ".part"
CHUNK = 1 << 16
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class ModelEntry:
    name: str  # catalogue name, also the local file stem: <models>/<name>.gguf
    file: str  # file name in the upstream repository
    url: str  # download URL
    size: int  # size in bytes (exact where known; display and the free-space check only)
    sha256: str | None  # expected digest; None = not pinned (taken from the server's metadata)
    quant: str  # e.g. "Q8_0"
    params: str  # e.g. "1.5B"
    repo: str = ""  # Hugging Face repository, e.g. "ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF"
    revision: str = ""  # the commit the URL is pinned to
    sha256_source: str = ""  # where the pinned digest was read


def _hf(params: str, quant: str, repo: str, revision: str, file: str, size: int, sha256: str | None,
        source: str, *, name: str | None = None) -> ModelEntry:
    """A Hugging Face file pinned to ``revision``; named ``qwen2.5-coder-<params>-<quant>`` unless ``name``
    is given."""
    return ModelEntry(
        name=name or f"qwen2.5-coder-{params.lower()}-{quant.lower()}",
        file=file,
        url=f"https://huggingface.co/{repo}/resolve/{revision}/{file}",
        size=size,
        sha256=sha256,
        quant=quant,
        params=params,
        repo=repo,
        revision=revision,
        sha256_source=source,
    )


SMALLEST = "qwen2.5-coder-0.5b-q8_0"
SWEEP_NEXT_EDIT = "sweep-next-edit-1.5b"  # Sweep's next-edit model, the one entry not named qwen2.5-coder-*

CATALOGUE: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        _hf("0.5B", "Q8_0", "ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF", "5788aee90e725673490be18f553d234feaa8303d",
            "qwen2.5-coder-0.5b-q8_0.gguf", 531_068_128,
            "d0f8cd6c49bab52a0abdbe47948518b1f4d9b1a8a2a6825099cea31cea10ac56",
            "a public project pinning this revision (size and digest)"),
        _hf("0.5B", "Q4_K_M", "bartowski/Qwen2.5-Coder-0.5B-GGUF", "01c1b8072277dfbfd0d051ec95b7a43bb23d2f6a",
            "Qwen2.5-Coder-0.5B-Q4_K_M.gguf", 398_000_000,
            "fefe9d34df79d3ad3db33519d81112be76096626a5fdb87a98092035dc79ad68",
            "a public project pinning this revision (digest; size approximate)"),
        _hf("1.5B", "Q8_0", "ggml-org/Qwen2.5-Coder-1.5B-Q8_0-GGUF", "8be1b8a895a84beea772817caaa71eba6b6e0d07",
            "qwen2.5-coder-1.5b-q8_0.gguf", 1_646_573_056,
            "29871c94d15727a6e243f79a37113d4ae625a6215b5e800bf41a23af2da32832",
            "two independent public projects pinning this revision"),
        _hf("1.5B", "Q4_K_M", "QuantFactory/Qwen2.5-Coder-1.5B-GGUF", "73c3c696087d8d57a3005e31f2afe78f43059739",
            "Qwen2.5-Coder-1.5B.Q4_K_M.gguf", 986_048_352,
            "a9ccb6be802412e61e1acbee6287a23b11e56e94718560f910075c64b6194910",
            "a public Nix derivation pinning this revision (fetchurl hash)"),
        _hf("3B", "Q8_0", "ggml-org/Qwen2.5-Coder-3B-Q8_0-GGUF", "9c1de162ae417c9c3aacde97c729c4128de047d8",
            "qwen2.5-coder-3b-q8_0.gguf", 3_285_476_160,
            "a522a906e299ed34db738b9626b2cd0da9e446c14674468a22fc2eae3dbd344d",
            "a public project pinning this revision (size and digest)"),
        _hf("3B", "Q4_K_M", "bartowski/Qwen2.5-Coder-3B-GGUF", "465c183318f1fcb5774394eee76f1b7f224494ec",
            "Qwen2.5-Coder-3B-Q4_K_M.gguf", 1_929_903_200, None,
            "not pinned: taken from Hugging Face's LFS metadata at pull time"),
        _hf("1.5B", "Q8_0", "sweepai/sweep-next-edit-1.5B", "409016591c6c1a94f545f22328a85a3516118f34",
            "sweep-next-edit-1.5b.q8_0.v2.gguf", 1_537_269_856,
            "1321ea5e5d7529e60f9770c6a0b3a965f89542d16cf4ae51bab267f6a88150da",
            "two independent public projects pinning this revision (size and digest); public Nix "
            "derivations' fetchurl hash of the same file agrees",
            name=SWEEP_NEXT_EDIT),
    )
}


# --------------------------------------------------------------------------------------------- paths

def _part_path(name: str, directory=None) -> Path:
    return model_path(name, directory).with_name(f"{name}.gguf{PART_SUFFIX}")


def _write_defaults(names: list[str], directory=None) -> None:
    target = models_dir(directory) / DEFAULT_FILE
    if not names:
        target.unlink(missing_ok=True)
        return
    tmp = target.with_name(f"{DEFAULT_FILE}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    os.replace(tmp, target)


def _default_name(directory=None) -> str | None:
    path = default_model_path(directory)
    return path.name[: -len(".gguf")] if path else None


def _rewrite(url: str) -> str:
    """``url`` with scheme and host replaced by ``$TANDEM_MODELS_URL`` when set (its path is prepended)."""
    override = os.environ.get("TANDEM_MODELS_URL")
    if not override:
        return url
    base, orig = urlsplit(override), urlsplit(url)
    path = base.path.rstrip("/") + orig.path
    return urlunsplit((base.scheme, base.netloc, path, orig.query, ""))


def download_url(entry: ModelEntry) -> str:
    """The entry's URL, with scheme and host replaced by ``$TANDEM_MODELS_URL`` when set."""
    return _rewrite(entry.url)


# ------------------------------------------------------------------------------------------ formatting

def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class Progress:
    """Plain-text progress on stderr: ``\\r`` updates on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream, total: int | None, done: int, label: str = ""):
        self.stream, self.total, self.done, self.label = stream, total, done, label
        self.start_done, self.start = done, time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = 0.2 if self.tty else 2.0
        self.last = 0.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        speed = (self.done - self.start_done) / elapsed
        text = f"  {self.label + ' ' if self.label else ''}{human_size(self.done)}"
        if self.total:
            pct = 100.0 * self.done / self.total
            text += f" / {human_size(self.total)}  {pct:5.1f}%"
        text += f"  {human_size(speed)}/s"
        if self.total and speed > 0 and self.done < self.total:
            text += f"  ETA {int((self.total - self.done) / speed)}s"
        return text

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._emit()

    def _emit(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line().ljust(70))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        self._emit()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------------------------------------ pull

class PullError(Exception):
    pass


class OfflineError(PullError):
    pass


def _hand_placement_hint(name: str, directory=None) -> str:
    dir_opt = f" --dir {directory}" if directory else ""
    return (
        f"To install it by hand, download\n    {download_url(CATALOGUE[name])}\non another machine and copy it to\n"
        f"    {model_path(name, directory)}\n"
        f"(`tandem-lsp models{dir_opt} path {name}` prints this path); Tandem uses a model file there as soon "
        f"as it is in place, and `tandem-lsp models{dir_opt} pull {name}` run again then checks its sha256. "
        f"Or point the setting `local.modelPath` (or `--model-path` of doctor and demo) at any GGUF file."
    )


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` -> (start, total); None where absent or ``*``."""
    if not value:
        return None, None
    try:
        unit, _, spec = value.strip().partition(" ")
        if unit.lower() != "bytes":
            return None, None
        rng, _, total = spec.partition("/")
        start = None if rng.strip() == "*" else int(rng.split("-")[0])
        return start, (None if total.strip() in ("", "*") else int(total))
    except ValueError:
        return None, None


HASH_PROGRESS_MIN = 64 << 20  # files smaller than this hash in well under a second: no progress shown


def sha256_file(path: Path, err=None) -> str:
    """The sha256 of ``path``; with ``err``, progress on it while hashing a large file (1.6 GB takes
    seconds: it must not look frozen)."""
    import hashlib  # here, not at the top: the server imports this module's paths

    hasher = hashlib.sha256()
    size = path.stat().st_size
    progress = Progress(err, size, 0, label="sha256") if err is not None and size >= HASH_PROGRESS_MIN else None
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
            if progress is not None:
                progress.update(len(chunk))
    if progress is not None:
        progress.finish()
    return hasher.hexdigest()


_HEX = frozenset("0123456789abcdef")


def _as_sha256(value: str | None) -> str | None:
    """An ETag-like header value (``"hex"``, ``W/"hex"``) -> the sha256 it names, or None."""
    if not value:
        return None
    value = value.strip()
    if value[:2].upper() == "W/":
        value = value[2:]
    value = value.strip().strip('"').lower()
    return value if len(value) == 64 and set(value) <= _HEX else None


@dataclass
class Remote:
    sha256: str | None = None
    size: int | None = None
    source: str = ""


def _remote_metadata(entry: ModelEntry, url: str) -> Remote:
    """What the server says of the file before it is downloaded (see the module docstring).

    Raises OfflineError when the host cannot be reached and PullError when it says the file is not there;
    anything else (no HEAD support, no metadata, a broken API answer) just gives an empty Remote."""
    import httpx

    timeout = httpx.Timeout(READ_TIMEOUT / 4, connect=CONNECT_TIMEOUT)
    headers = {"User-Agent": "tandem-lsp-models", "Accept-Encoding": "identity"}
    try:
        with httpx.Client(follow_redirects=False, trust_env=True, timeout=timeout) as client:
            resp = client.head(url, headers=headers)
            if resp.status_code in (401, 403, 404, 410):
                raise PullError(f"HTTP {resp.status_code} for {url}: the file is not there (the catalogue may "
                                "be out of date)")
            if resp.status_code >= 400:
                return Remote()
            size = resp.headers.get("x-linked-size") or (
                resp.headers.get("content-length") if resp.status_code < 300 else None)
            remote = Remote(size=int(size) if size and size.isdigit() else None)
            digest = _as_sha256(resp.headers.get("x-linked-etag"))
            if digest:
                remote.sha256, remote.source = digest, "the server's X-Linked-Etag"
                return remote
            if entry.repo and entry.revision:
                digest = _tree_digest(client, entry, headers)
                if digest:
                    remote.sha256, remote.source = digest, "the Hugging Face API (lfs.oid)"
            return remote
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
        raise OfflineError(f"cannot reach {urlsplit(url).netloc} ({exc.__class__.__name__}: {exc})") from exc
    except httpx.HTTPError:
        return Remote()


def _tree_digest(client, entry: ModelEntry, headers: dict) -> str | None:
    api = _rewrite(f"https://huggingface.co/api/models/{entry.repo}/tree/{entry.revision}")
    try:
        resp = client.get(api, headers=headers)
        if resp.status_code != 200:
            return None
        for item in resp.json():
            if isinstance(item, dict) and item.get("path") == entry.file:
                lfs = item.get("lfs")
                return _as_sha256(lfs.get("oid") or lfs.get("sha256")) if isinstance(lfs, dict) else None
    except (ValueError, AttributeError):
        return None
    return None


def _download(url: str, part: Path, err, entry: ModelEntry) -> None:
    """Download ``url`` into ``part`` completely (resuming when it exists); raises PullError."""
    import httpx

    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    headers = {"User-Agent": "tandem-lsp-models", "Accept-Encoding": "identity"}
    for _attempt in range(2):  # the second attempt only after a stale / unusable .part was discarded
        have = part.stat().st_size if part.exists() else 0
        req_headers = dict(headers)
        if have:
            req_headers["Range"] = f"bytes={have}-"
        try:
            with (
                httpx.Client(follow_redirects=True, trust_env=True, timeout=timeout) as client,
                client.stream("GET", url, headers=req_headers) as resp,
            ):
                if resp.status_code == 416 and have:
                    _, total = _content_range(resp.headers.get("content-range"))
                    if total == have:
                        err.write(f"{part.name} is already complete ({human_size(have)}).\n")
                        return
                    err.write("The partial download does not match the server's file; starting again.\n")
                    part.unlink(missing_ok=True)
                    continue
                if resp.status_code >= 400:
                    raise PullError(f"download failed: HTTP {resp.status_code} from {resp.url}")
                length = resp.headers.get("content-length")
                length = int(length) if length and length.isdigit() else None
                if resp.status_code == 206 and have:
                    start, total = _content_range(resp.headers.get("content-range"))
                    if start != have:
                        err.write("The server answered the resume request with the wrong range; "
                                  "starting again.\n")
                        part.unlink(missing_ok=True)
                        continue
                    mode, offset = "ab", have
                    total = total if total is not None else (have + length if length is not None else None)
                    err.write(f"Resuming at {human_size(have)}.\n")
                else:
                    if have:
                        err.write("The server does not support resuming; starting from zero.\n")
                    mode, offset = "wb", 0
                    total = length
                if total is None:
                    total = entry.size or None
                elif total > offset:
                    import shutil

                    free = shutil.disk_usage(part.parent).free
                    if free < total - offset:
                        raise PullError(
                            f"not enough disk space in {part.parent}: need {human_size(total - offset)}, "
                            f"{human_size(free)} free")
                progress = Progress(err, total, offset)
                try:
                    with open(part, mode) as fh:
                        for chunk in resp.iter_bytes(CHUNK):
                            fh.write(chunk)
                            progress.update(len(chunk))
                        fh.flush()
                        os.fsync(fh.fileno())
                finally:
                    progress.finish()
                got = part.stat().st_size
                if length is not None and got != offset + length:
                    raise PullError(
                        f"download interrupted at {human_size(got)}; run the same command again to resume")
                return
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
            raise OfflineError(f"cannot reach {urlsplit(url).netloc} ({exc.__class__.__name__}: {exc})") from exc
        except httpx.HTTPError as exc:
            got = part.stat().st_size if part.exists() else 0
            raise PullError(
                f"download interrupted at {human_size(got)} ({exc.__class__.__name__}: {exc}); "
                "run the same command again to resume") from exc
    raise PullError("the server keeps rejecting the partial download; delete it with "
                    "`tandem-lsp models remove NAME` and try again")


def pull(name: str, *, directory=None, no_verify: bool = False, sha256: str | None = None,
         out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    entry = CATALOGUE.get(name)
    if entry is None:
        err.write(f"tandem-lsp models: error: unknown model {name!r}; `tandem-lsp models list` shows the catalogue\n")
        return EXIT_USAGE
    given = (sha256 or "").strip().lower() or None
    if given is not None and (len(given) != 64 or not set(given) <= _HEX):
        err.write(f"tandem-lsp models pull: error: --sha256 {sha256!r} is not a sha256 digest (64 hex digits)\n")
        return EXIT_USAGE
    final, part = model_path(name, directory), _part_path(name, directory)
    if final.is_file():
        return _adopt(name, entry, final, given, no_verify, directory, out, err)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err.write(f"cannot create {final.parent}: {exc}\n")
        return EXIT_FAIL
    url = download_url(entry)
    try:
        remote = _remote_metadata(entry, url)
        expected, source = _expected_digest(name, entry, given, remote)
        size = remote.size or entry.size
        err.write(f"Downloading {name} ({entry.params}, {entry.quant}, {human_size(size)})\n  from {url}\n"
                  f"  to   {final}\n")
        if expected:
            err.write(f"  expecting sha256 {expected} ({source})\n")
        _download(url, part, err, entry)
    except OfflineError as exc:
        err.write(f"error: {exc}\nYou seem to be offline (or a proxy/firewall blocks the download).\n"
                  f"{_hand_placement_hint(name, directory)}\n")
        return EXIT_FAIL
    except PullError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAIL
    except OSError as exc:
        err.write(f"error writing {part}: {exc}\n")
        return EXIT_FAIL

    digest = sha256_file(part, err)
    err.write(f"sha256 {digest}\n")
    if expected is not None:
        if digest != expected:
            part.unlink(missing_ok=True)
            err.write(f"error: sha256 mismatch for {name}: expected {expected}, got {digest}. "
                      "The download was corrupt or the file changed upstream; it has been deleted.\n")
            return EXIT_FAIL
        err.write(f"sha256 verified ({source}).\n")
    elif not no_verify:
        err.write(f"error: neither the catalogue nor the server gives a sha256 for {name}, so the download "
                  f"cannot be verified.\nCheck the digest above against the file page on Hugging Face, then run\n"
                  f"    tandem-lsp models pull {name} --sha256 {digest}\n"
                  f"or accept it unverified with\n    tandem-lsp models pull {name} --no-verify\n"
                  f"(neither downloads again; the complete download is kept as {part}).\n")
        return EXIT_FAIL
    else:
        err.write("warning: installed WITHOUT sha256 verification (--no-verify).\n")
    os.replace(part, final)
    _remember(name, directory)
    out.write(f"{final}\n")
    return EXIT_OK


def _expected_digest(name: str, entry: ModelEntry, given: str | None, remote: Remote) -> tuple[str | None, str]:
    """The digest to check and where it came from; PullError (before any download) on a conflict."""
    if given:
        expected, source = given, "--sha256"
    elif entry.sha256:
        expected, source = entry.sha256.lower(), "the catalogue"
    elif remote.sha256:
        return remote.sha256, remote.source
    else:
        return None, ""
    if remote.sha256 and remote.sha256 != expected:
        raise PullError(
            f"{source} expects sha256 {expected} but {remote.source} says the file is {remote.sha256}. "
            "Nothing was downloaded.\nIf you trust the server, run\n"
            f"    tandem-lsp models pull {name} --sha256 {remote.sha256}")
    return expected, source


def _adopt(name: str, entry: ModelEntry, final: Path, given: str | None, no_verify: bool, directory,
           out, err) -> int:
    """``pull`` of a file already in place (pulled before, or copied by hand): check its sha256, then make it
    the default; a file that does not match is refused and kept (see the module docstring)."""
    if given:
        expected, source = given, "--sha256"
    elif entry.sha256:
        expected, source = entry.sha256.lower(), "the catalogue"
    else:
        try:
            remote = _remote_metadata(entry, download_url(entry))
        except PullError:  # offline, or the server has no such file: no digest to check against
            remote = Remote()
        expected, source = remote.sha256, remote.source
    if expected is None and no_verify:
        _remember(name, directory)
        err.write(f"warning: {final} made the default WITHOUT sha256 verification (--no-verify).\n")
        out.write(f"{name} is already present: {final}\n")
        return EXIT_OK
    size = final.stat().st_size
    err.write(f"{name} is already present; checking its sha256 ({human_size(size)}): {final}\n")
    try:
        digest = sha256_file(final, err)
    except OSError as exc:
        err.write(f"error: cannot read {final}: {exc}\n")
        return EXIT_FAIL
    if expected is None:
        err.write(f"sha256 {digest}\nerror: neither the catalogue nor the server gives a sha256 for {name}, so "
                  f"{final} cannot be verified.\nCheck the digest above against the file page on Hugging Face, "
                  f"then run\n    tandem-lsp models pull {name} --sha256 {digest}\nor accept it unverified with\n"
                  f"    tandem-lsp models pull {name} --no-verify\n")
        return EXIT_FAIL
    if digest != expected:
        _reject(name, final, directory)
        dir_opt = f" --dir {directory}" if directory else ""
        err.write(
            f"error: {final} is not {name}: its sha256 is {digest}, {source} expects {expected}"
            f"{_size_note(size, entry) if source == 'the catalogue' else ''}.\n"
            f"The file was kept, but Tandem will not use it as the default model. Either replace it with the right "
            f"file:\n    tandem-lsp models{dir_opt} remove {name} && tandem-lsp models{dir_opt} pull {name}\n"
            f"(or copy the right file there by hand and run `pull` again), or, if you trust this file, use it "
            f"anyway:\n    tandem-lsp models{dir_opt} pull {name} --sha256 {digest}\n")
        return EXIT_FAIL
    err.write(f"sha256 verified ({source}).\n")
    _remember(name, directory)
    out.write(f"{name} is already present: {final}\n")
    return EXIT_OK


def _size_note(size: int, entry: ModelEntry) -> str:
    if entry.size and abs(size - entry.size) > entry.size // 100:
        return f" (it is {human_size(size)}; the model is about {human_size(entry.size)})"
    return ""


def _remember(name: str, directory=None) -> None:
    names = [n for n in _read_defaults(directory) if n != name]
    _write_defaults([name, *names], directory)
    _forget_rejected(name, directory)


def _reject(name: str, path: Path, directory=None) -> None:
    """Record that the file now at ``path`` was refused, so it is not the default while it is unchanged."""
    names = _read_defaults(directory)
    if name in names:
        _write_defaults([n for n in names if n != name], directory)
    sig = signature(path)
    rejected = {**read_rejected(directory), **({name: sig} if sig else {})}
    _write_rejected(rejected, directory)


def _forget_rejected(name: str, directory=None) -> None:
    rejected = read_rejected(directory)
    if name in rejected:
        del rejected[name]
        _write_rejected(rejected, directory)


def _write_rejected(rejected: dict[str, tuple[int, int]], directory=None) -> None:
    target = models_dir(directory) / REJECTED_FILE
    try:
        if not rejected:
            target.unlink(missing_ok=True)
            return
        tmp = target.with_name(f"{REJECTED_FILE}.{os.getpid()}.tmp")
        tmp.write_text("# model files `tandem-lsp models pull` refused (sha256 mismatch): name size mtime_ns\n"
                       + "".join(f"{n} {size} {mtime}\n" for n, (size, mtime) in rejected.items()),
                       encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only models directory: the refusal is still reported


# ------------------------------------------------------------------------------------- other commands

def list_models(directory=None, out=None) -> int:
    out = out or sys.stdout
    default = _default_name(directory)
    pulled, rejected = set(_read_defaults(directory)), read_rejected(directory)

    def present(name: str, path: Path, local: bool = False) -> str:
        status = f"present  {path}" + (" (local)" if local else "")
        if name in rejected and rejected[name] == signature(path):
            return status + "  REFUSED: sha256 mismatch, not used (see `pull`)"
        if name in pulled:
            return status
        if not is_gguf(path):
            return status + "  not a GGUF file, not used"
        return status if local else status + f"  (placed by hand; `pull {name}` verifies it)"

    rows = [("", "NAME", "PARAMS", "QUANT", "SIZE", "STATUS")]
    for entry in CATALOGUE.values():
        path, part = model_path(entry.name, directory), _part_path(entry.name, directory)
        if path.is_file():
            status = present(entry.name, path)
        elif part.is_file():
            status = f"partial ({human_size(part.stat().st_size)})"
        else:
            status = "-"
        rows.append(("*" if entry.name == default else "", entry.name, entry.params, entry.quant,
                     human_size(entry.size), status))
    mdir = models_dir(directory)
    if mdir.is_dir():
        for path in sorted(mdir.glob("*.gguf")):
            stem = path.name[: -len(".gguf")]
            if stem not in CATALOGUE and path.is_file():
                rows.append(("*" if stem == default else "", stem, "?", "?", human_size(path.stat().st_size),
                             present(stem, path, local=True)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    indent = " " * (widths[0] + 2)
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row[:5], widths)) + "  " + row[5] + "\n")
        entry = CATALOGUE.get(row[1])
        if entry is not None:
            digest = entry.sha256 or "not pinned: Hugging Face's own digest of the file is checked at pull time"
            out.write(f"{indent}from   {download_url(entry)}\n{indent}sha256 {digest}\n")
    out.write(f"\nrecommended: {RECOMMENDED} (on 2-4 cores, {SMALLEST} is faster)\n")
    out.write(f"models directory: {mdir}\n")
    if default:
        out.write("* = default: the most recently pulled model, else a GGUF file placed in the models directory\n")
    else:
        out.write(f"no default model: run `tandem-lsp models pull {RECOMMENDED}`, or copy a GGUF file into the "
                  "models directory\n")
    return EXIT_OK


def _known(name: str, directory=None) -> bool:
    return name in CATALOGUE or model_path(name, directory).is_file() or _part_path(name, directory).is_file()


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def path_cmd(name: str, directory=None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not _valid_name(name) or not _known(name, directory):
        err.write(f"tandem-lsp models: error: unknown model {name!r}; `tandem-lsp models list` shows the catalogue\n")
        return EXIT_USAGE
    out.write(f"{model_path(name, directory)}\n")
    return EXIT_OK


def remove(name: str, directory=None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not _valid_name(name) or not _known(name, directory):
        err.write(f"tandem-lsp models: error: unknown model {name!r}; `tandem-lsp models list` shows the catalogue\n")
        return EXIT_USAGE
    removed = []
    for path in (model_path(name, directory), _part_path(name, directory)):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            err.write(f"cannot remove {path}: {exc}\n")
            return EXIT_FAIL
    names = _read_defaults(directory)
    if name in names:
        _write_defaults([n for n in names if n != name], directory)
    _forget_rejected(name, directory)
    if not removed:
        err.write(f"{name} is not present in {models_dir(directory)}; nothing to remove\n")
        return EXIT_FAIL
    for path in removed:
        out.write(f"removed {path}\n")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------- CLI

def add_parser(subparsers) -> None:
    """Add ``models`` (with ``list``, ``pull``, ``path``, ``remove``) to a ``add_subparsers()`` object."""
    import argparse

    models = subparsers.add_parser("models", help="list, download and remove local GGUF models",
                                   description="Manage GGUF models for the embedded backend.")
    models.add_argument("--dir", dest="models_dir", metavar="DIR",
                        help=f"models directory (default: {models_dir()})")
    sub = models.add_subparsers(dest="models_command", metavar="{list,pull,path,remove}")

    def child(name: str, help: str) -> "argparse.ArgumentParser":
        p = sub.add_parser(name, help=help)
        p.add_argument("--dir", dest="models_dir", metavar="DIR", default=argparse.SUPPRESS,
                       help="models directory")
        return p

    child("list", "the catalogue, what is present and the default")
    p = child("pull", "download a model (resumable, sha256-checked) and make it the default")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--no-verify", action="store_true",
                   help="accept a download whose sha256 the catalogue does not know")
    p.add_argument("--sha256", metavar="HEX", help="the expected sha256 (overrides the catalogue)")
    p = child("path", "print where a model is (or would be)")
    p.add_argument("name", metavar="NAME")
    p = child("remove", "delete a model and its partial download")
    p.add_argument("name", metavar="NAME")


def run(args) -> int:
    directory = getattr(args, "models_dir", None)
    command = getattr(args, "models_command", None)
    if directory and Path(directory).expanduser().exists() and not Path(directory).expanduser().is_dir():
        sys.stderr.write(f"tandem-lsp models: error: --dir {directory} is not a directory\n")
        return EXIT_USAGE
    if command == "list":
        return list_models(directory)
    if command == "pull":
        return pull(args.name, directory=directory, no_verify=args.no_verify, sha256=args.sha256)
    if command == "path":
        return path_cmd(args.name, directory)
    if command == "remove":
        return remove(args.name, directory)
    sys.stderr.write("tandem-lsp models: error: choose one of list, pull, path, remove "
                     "(see `tandem-lsp models --help`)\n")
    return EXIT_USAGE
