"""What INPUT means: one image, a folder (sorted, optionally recursive), a glob."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from segedge.edge.sources import resolve_inputs
from segedge.util.errors import DataError


def make_tree(root: Path) -> Path:
    for rel in ("b.jpg", "a.png", "sub/c.jpg", "sub/deeper/d.JPG", ".hidden.jpg"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(path, format="PNG")
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "data.csv").write_text("1,2")
    return root


def test_folder_is_sorted_and_skips_non_images(tmp_path):
    inputs = resolve_inputs(make_tree(tmp_path / "in"))
    assert [s.path.name for s in inputs.sources] == ["a.png", "b.jpg"]
    assert [p.name for p in inputs.skipped] == ["notes.txt"]
    assert inputs.subfolders_ignored == 1 and not inputs.single
    assert inputs.sources[0].mask_path(Path("out")) == Path("out/a.png")
    assert inputs.sources[0].overlay_path(Path("out")) == Path("out/a_overlay.jpg")


def test_recursive_folder_keeps_relative_paths(tmp_path):
    inputs = resolve_inputs(make_tree(tmp_path / "in"), recursive=True)
    assert [s.stem.as_posix() for s in inputs.sources] == ["a", "b", "sub/c", "sub/deeper/d"]
    assert sorted(p.name for p in inputs.skipped) == ["data.csv", "notes.txt"]
    assert inputs.sources[2].mask_path(Path("out")) == Path("out/sub/c.png")


def test_glob_pattern(tmp_path):
    root = make_tree(tmp_path / "in")
    inputs = resolve_inputs(str(root / "sub" / "*.jpg"))
    assert [s.stem.as_posix() for s in inputs.sources] == ["c"]
    one_level = resolve_inputs(str(root / "*" / "*.jpg"))
    assert [s.stem.as_posix() for s in one_level.sources] == ["sub/c"]


@pytest.mark.parametrize("recursive", [False, True])
def test_double_star_matches_zero_or_more_folders_without_the_flag(tmp_path, recursive):
    root = make_tree(tmp_path / "in")
    (root / "sub" / "deeper" / "e.jpg").write_bytes((root / "b.jpg").read_bytes())
    deep = resolve_inputs(str(root / "**" / "*.jpg"), recursive=recursive)
    # b.jpg: zero folders; sub/c.jpg: one; sub/deeper/e.jpg: two. d.JPG: glob suffixes are case-sensitive.
    assert [s.stem.as_posix() for s in deep.sources] == ["b", "sub/c", "sub/deeper/e"]
    assert not deep.skipped  # "*.jpg" matched no other file
    named = resolve_inputs(str(root / "**" / "c.jpg"), recursive=recursive)
    assert [s.path for s in named.sources] == [root / "sub" / "c.jpg"]
    everything = resolve_inputs(str(root / "**"), recursive=recursive)
    assert [s.stem.as_posix() for s in everything.sources] == ["a", "b", "sub/c", "sub/deeper/d", "sub/deeper/e"]
    assert sorted(p.name for p in everything.skipped) == ["data.csv", "notes.txt"]  # hidden files never matched


def test_glob_under_the_home_folder_keeps_sub_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    make_tree(tmp_path / "in")
    inputs = resolve_inputs("~/in/**/*.jpg")
    assert [s.stem.as_posix() for s in inputs.sources] == ["b", "sub/c"]
    assert inputs.sources[1].path == tmp_path / "in" / "sub" / "c.jpg"


def test_single_file(tmp_path):
    root = make_tree(tmp_path / "in")
    inputs = resolve_inputs(root / "sub" / "c.jpg")
    assert inputs.single and [s.stem for s in inputs.sources] == [Path("c")]


def test_same_stem_keeps_the_suffix(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("x.jpg", "x.png", "y.jpg"):
        Image.new("RGB", (4, 4)).save(root / name, format="PNG")
    inputs = resolve_inputs(root)
    assert [s.stem.name for s in inputs.sources] == ["x_jpg", "x_png", "y"]
    assert len(inputs.renamed) == 2


def test_nothing_to_predict_names_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        resolve_inputs(empty)
    assert err.value.message.startswith(f"{empty}: matched no image files (searched: {empty} top level only, ")
    assert ".jpg" in err.value.message and ".png" in err.value.message and "\n" not in err.value.message
    (empty / "readme.txt").write_text("x")
    (empty / "sub").mkdir()
    with pytest.raises(DataError, match="1 non-image file.*--recursive to search its 1 sub-folder"):
        resolve_inputs(empty)
    with pytest.raises(DataError, match=f"searched: {empty} and all its sub-folders"):
        resolve_inputs(empty, recursive=True)
    with pytest.raises(DataError) as err:
        resolve_inputs(str(tmp_path / "nothing*.jpg"))
    assert err.value.message == (f"{tmp_path / 'nothing*.jpg'}: the pattern matched no image files "
                                 f"(searched: {tmp_path} only, not its sub-folders (write ** for those), "
                                 "for nothing*.jpg; hidden files skipped)")
    with pytest.raises(DataError) as err:
        resolve_inputs(str(empty / "**" / "*.txt"))
    assert f"(searched: {empty} and all its sub-folders, for **/*.txt; hidden files skipped)" in err.value.message
    assert err.value.message.endswith("; it matched 1 non-image file(s)")
    with pytest.raises(DataError, match=f"searched: {tmp_path / 'gone'}, which is not a folder"):
        resolve_inputs(str(tmp_path / "gone" / "**" / "*.jpg"))
    with pytest.raises(DataError, match="missing.jpg: no such image"):
        resolve_inputs(tmp_path / "missing.jpg")


def test_several_inputs_as_a_shell_expands_a_glob(tmp_path):
    root = make_tree(tmp_path / "in")
    (tmp_path / "other").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "other" / "b.jpg", format="PNG")
    inputs = resolve_inputs([str(root / "b.jpg"), str(root / "a.png"), str(tmp_path / "other" / "b.jpg")])
    assert not inputs.single
    assert [s.stem.name for s in inputs.sources] == ["b_jpg", "a", "b_jpg_2"]
    assert len({s.mask_path(Path("o")) for s in inputs.sources}) == 3


def test_output_folder_inside_the_input_is_not_searched(tmp_path):
    root = make_tree(tmp_path / "in")
    out = root / "sub" / "masks"
    out.mkdir()
    Image.new("P", (4, 4)).save(out / "c.png")
    inputs = resolve_inputs(root, recursive=True, exclude=out)
    assert "masks" not in {part for s in inputs.sources for part in s.stem.parts}
    assert len(resolve_inputs(root, recursive=True).sources) == 5
    assert len(resolve_inputs(root, exclude=root).sources) == 2  # --out equal to INPUT still finds images
