"""Dataset access with numpy and PIL only (no TensorFlow): the edge install can use it."""

from segedge.data.images import colorize, mask_to_image, read_image, read_mask
from segedge.data.splits import Split, SplitKind, make_split
from segedge.data.voc import VocDataset

__all__ = [
    "Split", "SplitKind", "VocDataset", "colorize", "make_split", "mask_to_image",
    "read_image", "read_mask",
]
