"""Dataset access with numpy and PIL only (no TensorFlow): the edge install can use it."""

from segedge.data.dataset import Dataset, open_dataset
from segedge.data.images import colorize, mask_to_image, read_image, read_mask
from segedge.data.pairs import PairsDataset
from segedge.data.splits import Split, SplitKind, make_split
from segedge.data.voc import VocDataset

__all__ = [
    "Dataset", "PairsDataset", "Split", "SplitKind", "VocDataset", "colorize", "make_split", "mask_to_image",
    "open_dataset", "read_image", "read_mask",
]
