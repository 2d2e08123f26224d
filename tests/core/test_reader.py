"""The torch-free folder reader (distill.core.reader): the same batches with or without decoding threads,
unreadable files skipped and counted."""
import numpy as np
import pytest

from distill.core.embeddings import embed_folder
from distill.core.images import scan_folder
from distill.core.preprocess import Preprocess
from distill.core.reader import read_batches


@pytest.mark.parametrize("workers", [0, 3])
def test_batches_are_in_folder_order_and_skip_unreadable_files(synthetic_folder, workers):
    (synthetic_folder / "red" / "broken.png").write_bytes(b"not an image")
    folder = scan_folder(synthetic_folder)
    batches = list(read_batches(folder, 8, batch_size=5, workers=workers))
    indices = np.concatenate([i for _, i, _ in batches])
    skipped = [s for _, _, bad in batches for s in bad]
    assert [folder.paths[s] for s in skipped] == ["red/broken.png"]
    assert sorted(indices.tolist() + skipped) == list(range(len(folder)))
    images = np.concatenate([x for x, _, _ in batches])
    assert images.dtype == np.uint8 and images.shape == (len(folder) - 1, 3, 8, 8)
    reference = np.concatenate([x for x, _, _ in read_batches(folder, 8, batch_size=5, workers=0)])
    assert np.array_equal(images, reference)


class Mean:
    preprocess = Preprocess(input_size=8, mean=(0, 0, 0), std=(1, 1, 1))

    def __call__(self, x):
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous
        return x.mean(axis=(2, 3))


def test_embed_folder_counts_the_skipped_images(synthetic_folder):
    (synthetic_folder / "blue" / "empty.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped unreadable image"):
        emb = embed_folder(Mean(), scan_folder(synthetic_folder), batch_size=4, workers=2)
    assert emb.skipped == 1 and emb.features.shape == (12, 3)
