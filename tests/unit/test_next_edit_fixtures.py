"""The next-edit fixtures (tests/data/next_edit_commits/): ten real commits that repeat one change in a file,
each loading, with at least three changed hunks, before != after, and its origin and license named."""

from __future__ import annotations

import json

import pytest

from scripts.next_edit_fixtures import FIXTURE_DIR, Fixture, fixture_paths, hunks, load, load_fixtures, problems

PATHS = fixture_paths()


def test_there_are_ten_fixtures_with_distinct_commits():
    fixtures = load_fixtures()
    assert len(fixtures) == 10
    assert len({(f.repo, f.commit, f.path) for f in fixtures}) == 10
    assert [f.name[:2] for f in fixtures] == [f"{n:02d}" for n in range(1, 11)]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_fixture_loads_and_is_valid(path):
    fx = load(path)
    assert problems(fx) == []
    assert fx.before != fx.after
    assert len(fx.hunks) >= 3
    assert fx.license and fx.summary and fx.repo
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) >= {"repo", "commit", "path", "summary", "before", "after", "license"}


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_the_repeated_change_is_close_together(path):
    """At least three of the hunks lie within about 60 lines of each other (a 20-line window can reach
    the next one), and the file is small."""
    fx = load(path)
    starts = [h.a for h in fx.hunks]
    assert max(sum(1 for s in starts if x <= s <= x + 60) for x in starts) >= 3
    assert fx.before.count("\n") < 1500


def test_hunks_are_line_blocks_in_document_order():
    before = "a\nb\nc\nd\ne\nf\ng\n"
    after = "a\nB\nc\nd\nE\nf\nG\nh\n"
    found = hunks(before, after)
    assert [(h.a, h.b, h.c, h.d) for h in found] == [(1, 2, 1, 2), (4, 5, 4, 5), (6, 7, 6, 8)]
    assert hunks(before, before) == []


def test_problems_are_reported(tmp_path):
    fx = Fixture(name="1-bad", repo="x/y", commit="abc", path="m.py", summary="s", license="MIT",
                 before="a\n", after="a\n")
    found = problems(fx)
    assert any("NN-<slug>" in p for p in found)
    assert any("commit" in p for p in found)
    assert "before == after" in found
    assert any("fewer than 3" in p for p in found)
    (tmp_path / "01-x.json").write_text(json.dumps({"repo": "x/y"}))
    with pytest.raises(ValueError, match="missing"):
        load_fixtures(directory=tmp_path)


def test_selection_by_prefix():
    assert [f.name for f in load_fixtures(["03"])] == [p.stem for p in PATHS if p.stem.startswith("03")]
    with pytest.raises(ValueError):
        load_fixtures(["99-none"])
    assert FIXTURE_DIR.is_dir()
