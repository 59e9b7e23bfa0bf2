"""Compare two folders of segedge masks (per artifact sub-folder) pixel by pixel.

Used by scripts/arm64_check.sh: the x86 run's masks are the reference, the arm64 run's must
agree on at least --min-equal of the pixels for every artifact (the bound is justified there).
Prints one line per artifact; exits 1 when any artifact is below the bound, a mask is missing on
either side, or two masks differ in size, since then the runs did not see the same images.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Agreement:
    """Pixel agreement of one artifact's masks across the two runs."""

    artifact: str
    masks: int
    pixels: int
    equal: int
    problems: list[str]

    @property
    def fraction(self) -> float:
        return self.equal / self.pixels if self.pixels else 0.0


def compare_artifact(reference: Path, candidate: Path) -> Agreement:
    """Count equal label pixels over every <stem>.png mask in `reference` and its twin in `candidate`."""
    problems: list[str] = []
    pixels = equal = masks = 0
    ref_names = {p.name for p in reference.glob("*.png")}
    cand_names = {p.name for p in candidate.glob("*.png")} if candidate.is_dir() else set()
    for name in sorted(ref_names ^ cand_names):
        problems.append(f"{name} only in {reference if name in ref_names else candidate}")
    for name in sorted(ref_names & cand_names):
        # mode "P" masks: the array holds class indices (255 = void), not colours
        a = np.asarray(Image.open(reference / name))
        b = np.asarray(Image.open(candidate / name))
        if a.shape != b.shape:
            problems.append(f"{name}: size {a.shape} vs {b.shape}")
            continue
        masks += 1
        pixels += a.size
        equal += int(np.count_nonzero(a == b))
    if not ref_names:
        problems.append(f"no masks in {reference}")
    return Agreement(reference.name, masks, pixels, equal, problems)


def main(argv: list[str] | None = None) -> int:
    """Compare every artifact folder under the reference root; 0 when all agree within the bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="folder of <artifact>/<stem>.png masks (x86)")
    parser.add_argument("candidate", type=Path, help="the same layout from the other machine (arm64)")
    parser.add_argument("--min-equal", type=float, default=0.995, help="least fraction of equal pixels")
    args = parser.parse_args(argv)
    artifacts = sorted(p for p in args.reference.iterdir() if p.is_dir())
    if not artifacts:
        print(f"no artifact folders in {args.reference}")
        return 1
    ok = True
    for folder in artifacts:
        result = compare_artifact(folder, args.candidate / folder.name)
        passed = not result.problems and result.fraction >= args.min_equal
        ok &= passed
        print(
            f"{result.artifact}: {result.masks} masks, {result.pixels} pixels, {result.equal} equal "
            f"({100 * result.fraction:.3f} %, bound {100 * args.min_equal:.1f} %) {'ok' if passed else 'FAIL'}"
        )
        for problem in result.problems:
            print(f"  {problem}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
