"""The full-size argmax of bilinearly enlarged logits, computed per 2x2 block of source taps, in bands.

Its own module because it is the one subtle piece of ``segedge.contract.upsample``: where the four taps
of a block share an argmax class every pixel of the block is that class, exactly, so only boundary
blocks are mixed per pixel, and the work runs in bands of output rows so that a 12 MP photo never
holds full-size float planes or per-pixel index arrays (``BAND_PIXELS``). The same pixels as
enlarging every plane with PIL and taking the argmax (tests/test_upsample.py, test_bounded_upsample.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps (i0, i1) and the weight of i1 per output index, as PIL's bilinear filter places them
    when enlarging: pixel centres aligned (half-pixel), edges clamped."""
    position = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    first = np.floor(position).astype(np.intp)
    return first, np.minimum(first + 1, n_in - 1), position - first


def mixed_blocks(winner: np.ndarray) -> np.ndarray:
    """(h, w) bool: the 2x2 tap block whose top-left tap is (i, j) holds more than one argmax class
    (taps past the last row/column clamp to it, as ``_taps`` places them)."""
    mixed = np.zeros(winner.shape, dtype=bool)
    np.not_equal(winner[:, :-1], winner[:, 1:], out=mixed[:, :-1])
    mixed[:-1] |= winner[:-1] != winner[1:]
    mixed[:-1, :-1] |= winner[:-1, :-1] != winner[1:, 1:]
    return mixed


BAND_PIXELS = 1 << 18  # output pixels per band of the full-size mask: its per-pixel work never holds more


def _band_rows(width: int, band_pixels: int) -> int:
    return max(1, band_pixels // max(1, width))


def upsampled_argmax(crop: np.ndarray, size: tuple[int, int],
                     dense_if: Callable[[int, int], bool] | None = None,
                     to_float: Callable[[np.ndarray], np.ndarray] | None = None,
                     band_pixels: int | None = None) -> np.ndarray | None:
    """argmax over classes of the bilinearly enlarged (h, w, C) ``crop`` at ``size`` = (width, height).

    Equal to ``argmax(resize_logits(...))`` wherever the float rounding of the
    two ways does not decide a near-tie, without enlarging C planes. Work is
    per 2x2 block of source taps (each output pixel mixes one block):

    - all four taps have argmax k: a convex mix keeps k on top (ties go to
      the lower index in both), so every pixel of the block is k;
    - else only classes whose largest tap reaches the best smallest tap can
      win anywhere in the block (any other is below that class everywhere);
      those few logits are mixed per pixel as PIL mixes them, and the
      lowest index wins a tie, as argmax.

    The output is made in bands of whole rows, ``band_pixels`` at a time
    (default ``BAND_PIXELS``; at least one row): a band's mixed blocks,
    their candidate classes and per-pixel mixes are all that is held besides
    the uint8 result, so memory does not grow with the photo beyond the mask
    itself. Every pixel's arithmetic is the same whatever the band size (a
    band may cut a block's rows), so the mask is too.

    Enlarging only (``size`` at least the crop's both ways): shrinking
    filters over more than two taps. None when ``dense_if(mixed blocks,
    pixels in them)`` says enlarging every plane is cheaper (boundaries
    everywhere; see ``block_is_slower``).

    ``to_float``: ``crop`` holds integer codes (an int8 model's output) and
    this maps any part of them to float logits (dequantizing). A positive
    scale keeps the order of the codes, ties included, so the argmax runs on
    the codes and only the mixed blocks' taps are dequantized: the same
    floats, element by element, as dequantizing everything first.
    """
    crop = np.asarray(crop) if to_float is not None else np.asarray(crop, dtype=np.float32)
    height, width = crop.shape[:2]
    y0, _, fy = _taps(height, size[1])
    x0, _, fx = _taps(width, size[0])
    rows_of = np.bincount(y0, minlength=height)  # output rows whose top tap is source row i (consecutive)
    cols_of = np.bincount(x0, minlength=width)
    first_row, first_col = np.cumsum(rows_of) - rows_of, np.cumsum(cols_of) - cols_of
    winner = np.argmax(crop, axis=-1).astype(np.uint8 if crop.shape[-1] <= 256 else np.intp)
    mixed = mixed_blocks(winner) & (rows_of > 0)[:, None] & (cols_of > 0)[None, :]  # a block no pixel uses: skip
    block_y, block_x = np.nonzero(mixed)  # row-major: each source row's blocks are consecutive
    if len(block_y) and dense_if is not None and dense_if(len(block_y),
                                                          int((rows_of[block_y] * cols_of[block_x]).sum())):
        return None
    out = np.empty((size[1], size[0]), winner.dtype)
    step = _band_rows(size[0], BAND_PIXELS if band_pixels is None else band_pixels)
    for top in range(0, size[1], step):
        bottom = min(size[1], top + step)
        out[top:bottom] = np.repeat(winner[y0[top:bottom]], cols_of, axis=1)  # each block's pixels: its top-left class
        start, stop = np.searchsorted(block_y, [y0[top], y0[bottom - 1] + 1])
        if stop > start:
            _mix_band(crop, to_float, out, top, bottom, block_y[start:stop], block_x[start:stop],
                      (first_row, rows_of, fy), (first_col, cols_of, fx))
    return out


ROWS_WAY_FROM = 6  # output rows per source row from which a band's mixed pixels are made row by row


def _mix_band(crop: np.ndarray, to_float: Callable[[np.ndarray], np.ndarray] | None, out: np.ndarray,
              top: int, bottom: int, block_y: np.ndarray, block_x: np.ndarray,
              rows: tuple[np.ndarray, np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The pixels of output rows [top, bottom) in these mixed blocks (all of the band's, row-major), in place.

    Two ways, the same arithmetic per pixel (so the same floats and the same mask): at a large enlargement
    (many output rows per source row) each source row of blocks is mixed as one (rows, columns, classes)
    array, no per-pixel index; at a small one, one flat pass over the band's pixels per candidate count
    costs fewer numpy calls than a pass per source row."""
    height, width, classes = crop.shape
    # the blocks' four taps (tap i + 1 clamps to the last row/column): four (blocks, C) rows, gathered from the
    # flattened crop (one index per row is cheaper than two), combined element-wise (a reduction over an axis
    # of 4 or C costs numpy a loop per block)
    below, right = np.minimum(block_y + 1, height - 1), np.minimum(block_x + 1, width - 1)
    flat = crop.reshape(height * width, classes)
    taps = [np.take(flat, y * width + x, axis=0) for y, x in
            ((block_y, block_x), (block_y, right), (below, block_x), (below, right))]
    if to_float is not None:
        taps = [to_float(tap) for tap in taps]
    lowest = np.minimum(np.minimum(taps[0], taps[1]), np.minimum(taps[2], taps[3]))
    highest = np.maximum(np.maximum(taps[0], taps[1]), np.maximum(taps[2], taps[3]))
    candidates = highest >= lowest.max(axis=-1, keepdims=True)
    rows_per_source = (bottom - top) / max(1, int(block_y[-1]) - int(block_y[0]) + 1)
    mix = _mix_by_rows if rows_per_source >= ROWS_WAY_FROM else _mix_flat
    mix(taps, candidates, out, top, bottom, block_y, block_x, rows, cols)


def _columns(widths: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each block's output columns, one entry per (block, column): (its block, its column)."""
    owner = np.repeat(np.arange(len(widths)), widths)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(widths) - widths, widths) + starts[owner]


def _across(taps: list[np.ndarray], owner: np.ndarray, wx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PIL's horizontal pass for the taps' upper and lower rows at each entry's column weight ``wx``."""
    upper = (taps[0][owner] * (1.0 - wx) + taps[1][owner] * wx).astype(np.float32)
    lower = (taps[2][owner] * (1.0 - wx) + taps[3][owner] * wx).astype(np.float32)
    return upper, lower


def _mix_by_rows(taps: list[np.ndarray], candidates: np.ndarray, out: np.ndarray, top: int, bottom: int,
                 block_y: np.ndarray, block_x: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
                 cols: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    first_row, rows_of, fy = rows
    first_col, cols_of, fx = cols
    count = candidates.sum(axis=-1)
    n = int(count.max())
    # each block's candidate classes ascending, padded to n with its first: a copy mixes to the same value,
    # so it never beats the first (argmax takes the first of equals) and names the same class if it ties
    order = np.argsort(~candidates, axis=1, kind="stable")[:, :n]
    chosen = np.where(np.arange(n) < count[:, None], order, order[:, :1])
    taps_n = [np.take_along_axis(tap, chosen, axis=1) for tap in taps]  # four (blocks, n)
    widths = cols_of[block_x]
    owner, column = _columns(widths, first_col[block_x])  # across each block's columns once, shared by its rows
    upper, lower = _across(taps_n, owner, fx[column][:, None])
    # per column the same bound again, now across resolved: a pixel's float32 value lies between its column's
    # upper and lower (a convex mix, rounded monotonically), so a class whose larger one is below another's
    # smaller one never wins there; the survivors keep their ascending order, padded with the first
    alive = (np.maximum(upper, lower) >= np.minimum(upper, lower).max(axis=1, keepdims=True)) \
        & (np.arange(n) < count[owner][:, None])
    survivors = alive.sum(axis=1)
    entry, slot_class = np.nonzero(alive)  # row-major: ascending per column
    slot = np.arange(len(entry)) - np.repeat(np.cumsum(survivors) - survivors, survivors)
    lead = slot_class[np.cumsum(survivors) - survivors]  # each column's first survivor
    m = int(survivors.max())
    names_all = chosen[owner]
    planes = []
    for values in (upper, lower, names_all):
        packed = np.repeat(values[np.arange(len(values)), lead][:, None], m, axis=1)
        packed[entry, slot] = values[entry, slot_class]
        planes.append(packed.T)
    # then down, one source row of blocks at a time over its output rows in this band, class by class (the
    # candidates as planes: each pass runs over a (rows, entries) array, not a short axis per pixel); float32 *
    # float64 is a float64 product in numpy, so converting once first gives the same values
    upper, lower = planes[0].astype(np.float64), planes[1].astype(np.float64)  # (m, entries)
    names = np.ascontiguousarray(planes[2]).astype(out.dtype)
    firsts = np.concatenate(([0], np.flatnonzero(np.diff(block_y)) + 1))
    lasts = np.append(firsts[1:], len(block_y))
    entry_edges = np.concatenate(([0], np.cumsum(widths)))
    most = np.maximum.reduceat(survivors, entry_edges[firsts])
    for first, last, k in zip(firsts, lasts, most, strict=True):
        i = block_y[first]
        r0, r1 = max(top, first_row[i]), min(bottom, first_row[i] + rows_of[i])
        a, b = entry_edges[first], entry_edges[last]
        wy = fy[r0:r1][:, None]
        keep = 1.0 - wy
        best = (upper[0, a:b] * keep + lower[0, a:b] * wy).astype(np.float32)
        name = np.repeat(names[None, 0, a:b], r1 - r0, axis=0)
        for j in range(1, k):  # a later class wins only above: the first of equal floats, as argmax
            value = upper[j, a:b] * keep
            value += lower[j, a:b] * wy
            value = value.astype(np.float32)
            above = value > best
            np.copyto(best, value, where=above)
            np.copyto(name, names[j, a:b], where=above)
        where = column[a] if column[b - 1] - column[a] == b - a - 1 else column[a:b]  # whole run: a slice
        if isinstance(where, np.ndarray):
            out[r0:r1, where] = name
        else:
            out[r0:r1, where : where + b - a] = name


def _mix_flat(taps: list[np.ndarray], candidates: np.ndarray, out: np.ndarray, top: int, bottom: int,
              block_y: np.ndarray, block_x: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
              cols: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    first_row, rows_of, fy = rows
    first_col, cols_of, fx = cols
    count = candidates.sum(axis=-1)
    for width_n in np.unique(count):  # one vectorised pass per candidate count: n classes mixed, not C
        chosen = np.flatnonzero(count == width_n)
        classes_n = np.nonzero(candidates[chosen])[1].reshape(-1, width_n)  # row-major: ascending per block
        taps_n = [tap[chosen[:, None], classes_n] for tap in taps]  # four (blocks_n, n)
        by, bx = block_y[chosen], block_x[chosen]
        row_start = np.maximum(first_row[by], top)  # the block's rows inside this band
        heights, widths = np.minimum(first_row[by] + rows_of[by], bottom) - row_start, cols_of[bx]
        column_owner, column = _columns(widths, first_col[bx])  # across once per column, shared by its rows
        upper, lower = _across(taps_n, column_owner, fx[column][:, None])
        column_start = np.cumsum(widths) - widths
        sizes = heights * widths
        owner = np.repeat(np.arange(len(sizes)), sizes)  # each output pixel of these blocks -> its block
        local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        row, col = np.divmod(local, widths[owner])
        at = column_start[owner] + col
        wy = fy[row_start[owner] + row][:, None]
        mixed_values = (upper[at] * (1.0 - wy) + lower[at] * wy).astype(np.float32)
        out[row_start[owner] + row, column[at]] = classes_n[owner, np.argmax(mixed_values, axis=1)]
