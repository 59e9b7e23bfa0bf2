import numpy as np

from segedge.contract.labels import NUM_CLASSES, PALETTE, VOC_CLASSES, VOID, flat_palette
from segedge.data.images import mask_to_image, read_mask


def test_voc_classes_and_palette_match_the_devkit():
    assert NUM_CLASSES == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[20] == "tvmonitor"
    assert PALETTE[0] == (0, 0, 0)
    assert PALETTE[1] == (128, 0, 0)
    assert PALETTE[15] == (192, 128, 128)  # person
    assert PALETTE[20] == (0, 64, 128)
    assert PALETTE[VOID] == (224, 224, 192)
    assert len(flat_palette()) == 768


def test_palette_png_round_trip(tmp_path):
    mask = np.random.default_rng(0).integers(0, NUM_CLASSES, size=(13, 17)).astype(np.uint8)
    mask[0, :] = VOID
    path = tmp_path / "m.png"
    mask_to_image(mask).save(path)
    np.testing.assert_array_equal(read_mask(path), mask)


def test_rgb_mask_in_voc_colours_is_converted(tmp_path):
    mask = np.array([[0, 1, 15], [20, VOID, 8]], dtype=np.uint8)
    rgb = np.asarray(PALETTE, dtype=np.uint8)[mask]
    from PIL import Image

    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), mask)
