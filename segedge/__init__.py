"""segedge: train a segmentation U-Net, export it for small devices, and prove it still works there."""

__version__ = "0.1.0"
