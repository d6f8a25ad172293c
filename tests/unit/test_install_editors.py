"""scripts/install_editors.py without the network: the machine's apt sources it reads, the private apt
options, the version checks, the cached second run, how an unreachable mirror is told from a real error,
and how tests/editors.py turns the recorded outcome into a skip or a failure."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests import editors
from tests.editors import installer

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example.invalid/debian
Suites: bookworm

Types: deb
Enabled: no
URIs: http://disabled.example.invalid/debian
Suites: bookworm
"""


def test_deb822_stanzas_give_one_source_per_uri_with_suites_and_keyring():
    sources = installer.parse_deb822(DEB822)
    assert sources == [
        installer.Source("http://deb.debian.org/debian", ("bookworm", "bookworm-updates"), ("main",),
                         "/usr/share/keyrings/debian-archive-keyring.gpg"),
        installer.Source("http://deb.debian.org/debian-security", ("bookworm-security",), ("main",),
                         "/usr/share/keyrings/debian-archive-keyring.gpg"),
    ]  # not the deb-src stanza, nor the disabled one
    two = installer.parse_deb822("Types: deb\nURIs: http://a.invalid/debian/ http://b.invalid/debian\n"
                                 "Suites:\n bookworm\n bookworm-updates\n")
    assert [s.uri for s in two] == ["http://a.invalid/debian", "http://b.invalid/debian"]
    assert two[0].suites == ("bookworm", "bookworm-updates") and two[0].signed_by is None


def test_one_line_sources_read_deb_lines_with_options_and_skip_the_rest():
    text = """\
# deb http://commented.invalid/debian bookworm main
deb-src http://src.invalid/debian bookworm main
deb [arch=amd64 signed-by=/etc/keys/x.gpg] http://mirror.invalid/debian/ bookworm main contrib  # trailing
deb http://plain.invalid/debian bookworm-security main
"""
    assert installer.parse_one_line(text) == [
        installer.Source("http://mirror.invalid/debian", ("bookworm",), ("main", "contrib"), "/etc/keys/x.gpg"),
        installer.Source("http://plain.invalid/debian", ("bookworm-security",), ("main",), None),
    ]


def test_the_mirror_is_the_machines_main_archive_never_a_hard_coded_host(tmp_path):
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEB822.replace("deb.debian.org", "mirror.example.invalid"))
    (parts / "ignored.txt").write_text("deb http://not-read.invalid/debian bookworm main\n")
    list_file = tmp_path / "sources.list"
    list_file.write_text("deb http://security.invalid/debian-security bookworm-security main\n")
    sources = installer.machine_sources(list_file, parts)
    assert [s.uri for s in sources] == ["http://security.invalid/debian-security",
                                        "http://mirror.example.invalid/debian",
                                        "http://mirror.example.invalid/debian-security"]
    # the security archive is skipped; the release is the main suite's codename
    assert installer.pick_mirror(sources) == ("http://mirror.example.invalid/debian",
                                              "/usr/share/keyrings/debian-archive-keyring.gpg", "bookworm")
    # a line without Signed-By gets the machine's archive keyring
    no_key = installer.parse_one_line("deb http://m.invalid/debian trixie main")
    assert installer.pick_mirror(no_key) == ("http://m.invalid/debian", installer.KEYRING, "trixie")
    with pytest.raises(installer.Unreachable, match="no Debian mirror"):
        installer.pick_mirror(installer.parse_one_line("deb http://s.invalid/debian-security bookworm-security main"))


def test_suites_and_the_private_source_list():
    nvim, emacs = installer.EDITORS["nvim"], installer.EDITORS["emacs"]
    assert installer.suites_for(nvim, "bookworm") == ("sid",)
    assert installer.suites_for(installer.EDITORS["hx"], "bookworm") == ("sid",)
    assert installer.suites_for(emacs, "bookworm") == ("bookworm", "bookworm-backports")
    assert installer.sources_list("http://m.invalid/debian", "/k.gpg", ("bookworm", "bookworm-backports")) == (
        "deb [signed-by=/k.gpg] http://m.invalid/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://m.invalid/debian bookworm-backports main\n")


def _options(args: list[str]) -> dict[str, str]:
    assert args[::2] == ["-o"] * (len(args) // 2)
    return dict(a.split("=", 1) for a in args[1::2])


def test_apt_options_keep_sources_state_and_cache_private(tmp_path):
    apt_dir = tmp_path / "apt" / "sid"
    opts = _options(installer.apt_options(apt_dir, apt_dir / "status"))
    assert opts["Dir::Etc::SourceList"] == str(apt_dir / "sources.list")
    assert opts["Dir::Etc::SourceParts"] == "/dev/null"  # not the machine's sources.list.d
    assert opts["Dir::Etc::Preferences"] == opts["Dir::Etc::PreferencesParts"] == "/dev/null"
    assert opts["Dir::State::Lists"] == str(apt_dir / "lists")
    assert opts["Dir::Cache"] == str(apt_dir / "cache")
    assert opts["Dir::State::Status"] == str(apt_dir / "status")  # empty: every dependency is downloaded
    # nothing the options name is outside the private folder (but /dev/null and file names relative to it)
    paths = [v for v in opts.values() if v.startswith("/") and v != "/dev/null"]
    assert paths and all(Path(v).is_relative_to(apt_dir) for v in paths)
    # Emacs resolves against the machine's dpkg status: no status option at all
    assert "Dir::State::Status" not in _options(installer.apt_options(apt_dir, None))
    # the private APT_CONFIG names a private main file (read after apt.conf.d), which clears the machine's hooks
    conf = installer.apt_conf(apt_dir)
    assert conf["apt-first.conf"] == f'Dir::Etc::main "{apt_dir / "apt.conf"}";\n'
    assert "#clear APT::Update::Post-Invoke-Success;" in conf["apt.conf"]
    assert "#clear DPkg::Post-Invoke;" in conf["apt.conf"]


@pytest.mark.parametrize("output, version", [
    ("NVIM v0.12.4\nBuild type: Release\nLuaJIT 2.1.1761786044\n", (0, 12, 4)),
    ("NVIM v0.11.4\n", (0, 11, 4)),
    ("helix 25.07.1 (a05c151b)\n", (25, 7, 1)),
    ("GNU Emacs 30.1\nCopyright (C) 2025 Free Software Foundation, Inc.\n", (30, 1)),
    ("", None),
    ("vim 9.0\n", None),
])
def test_parse_version(output, version):
    assert installer.parse_version(output) == version


def test_version_checks():
    nvim, emacs, hx = installer.EDITORS["nvim"], installer.EDITORS["emacs"], installer.EDITORS["hx"]
    ok = installer.version_ok
    assert ok((0, 12, 4), nvim.minimum, nvim.exact) and ok((0, 12), nvim.minimum, nvim.exact)
    assert not ok((0, 11, 4), nvim.minimum, nvim.exact) and not ok((0, 13, 0), nvim.minimum, nvim.exact)
    assert ok((30, 1), emacs.minimum) and ok((31, 0), emacs.minimum) and not ok((29, 4), emacs.minimum)
    assert ok((25, 7, 1), hx.minimum) and not ok(None, hx.minimum)


def test_relative_rpath_and_lib_dirs(tmp_path):
    root = tmp_path / "root"
    for d in ("usr/lib/x86_64-linux-gnu", "usr/lib/nvim/parser", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/libc.so.6").write_text("")
    (root / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").write_text("")
    assert installer.lib_dirs(root) == [root / "usr/lib/x86_64-linux-gnu"]
    rpath = installer.relative_rpath(root / "usr/bin/nvim", installer.lib_dirs(root))
    assert rpath == "$ORIGIN/../lib/x86_64-linux-gnu"
    assert installer.find_loader(root) == root / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


def _ready_cache(cache: Path, name: str = "nvim") -> Path:
    editor = installer.EDITORS[name]
    root = cache / name / "root"
    (root / editor.binary).parent.mkdir(parents=True)
    (root / editor.binary).write_text("")
    wrapper = cache / "bin" / editor.wrapper
    installer.write_wrapper(wrapper, installer.wrapper_text(root / editor.binary, {"VIMRUNTIME": "/x y/'q'"}))
    installer.write_state(cache, name, status="ready", layout=installer.LAYOUT, version="0.12.4", root=str(root),
                          wrapper=str(wrapper))
    return wrapper


def test_a_second_run_with_everything_ready_runs_nothing(tmp_path, monkeypatch, capsys):
    wrapper = _ready_cache(tmp_path)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    start = time.monotonic()
    assert installer.main(["--cache", str(tmp_path), "nvim"]) == 0
    assert time.monotonic() - start < 1
    assert capsys.readouterr().out == f"nvim 0.12.4 ready at {wrapper}\n"
    # the wrapper quotes what it exports
    assert "export VIMRUNTIME='/x y/'\\''q'\\'''" in wrapper.read_text()


def _fake_apt(monkeypatch, output: str, returncode: int = 0):
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, returncode, stdout="", stderr=output)
    monkeypatch.setattr(subprocess, "run", run)


def test_an_unreachable_mirror_is_a_skip_and_a_broken_keyring_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(installer, "machine_sources",
                        lambda: installer.parse_one_line("deb http://mirror.invalid/debian bookworm main"))
    _fake_apt(monkeypatch, "Ign:1 http://mirror.invalid/debian sid InRelease\n"
                           "W: Failed to fetch http://mirror.invalid/debian/dists/sid/InRelease  "
                           "Temporary failure resolving 'mirror.invalid'\n"
                           "W: Some index files failed to download.\n")
    assert installer.main(["--cache", str(tmp_path), "nvim"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nvim skipped: mirror http://mirror.invalid/debian unreachable: W: Failed to fetch")
    assert installer.read_state(tmp_path, "nvim")["status"] == "unreachable"

    _fake_apt(monkeypatch, "E: The repository 'http://mirror.invalid/debian sid InRelease' is not signed.\n", 100)
    assert installer.main(["--cache", str(tmp_path), "nvim"]) == 1
    assert "nvim FAILED: apt-get update (sid) failed (exit 100)" in capsys.readouterr().out
    assert installer.read_state(tmp_path, "nvim")["status"] == "error"


def test_editors_skip_or_fail_from_the_recorded_outcome(tmp_path, monkeypatch):
    monkeypatch.setenv("TANDEM_EDITORS_CACHE", str(tmp_path))
    monkeypatch.setattr(editors, "_system_binary", lambda name: None)  # not the machine's own binaries
    assert editors.editor_path("nvim-0.12") is None
    assert editors.skip_reason("nvim-0.12") == "Neovim 0.12 not installed: run python scripts/install_editors.py"
    monkeypatch.setenv(editors.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="Neovim 0.12 not installed"):
        editors.require_editor("nvim-0.12")

    installer.write_state(tmp_path, "emacs", status="unreachable", reason="mirror http://m.invalid unreachable: x")
    assert editors.skip_reason("emacs") == "Emacs 30 not installed: mirror http://m.invalid unreachable: x"
    with pytest.raises(pytest.skip.Exception, match="unreachable"):  # nothing to install from: skipped anyway
        editors.require_editor("emacs")
    installer.write_state(tmp_path, "hx", status="error", reason="dpkg -x failed")
    with pytest.raises(pytest.fail.Exception, match="Helix not installed: dpkg -x failed"):
        editors.require_editor("hx")
    monkeypatch.delenv(editors.REQUIRE_ENV)
    with pytest.raises(pytest.skip.Exception):
        editors.require_editor("hx")

    wrapper = _ready_cache(tmp_path)
    assert editors.editor_path("nvim-0.12") == str(wrapper) == editors.require_editor("nvim-0.12")
    with pytest.raises(KeyError):
        editors.editor_path("vim")
