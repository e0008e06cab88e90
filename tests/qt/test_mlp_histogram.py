"""The MLP histogram grown row by row equals binning every value again, and rebins when it must."""

import numpy as np

from gptviz.qt.panes.mlp_histogram import GrowingHistogram, histogram


def test_rows_inside_the_range_are_added_and_equal_a_full_binning():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((60, 64)).astype(np.float32)  # (T, W)
    values[0, 0], values[0, 1] = 9.0, -9.0  # the range is set by the first rows
    grower = GrowingHistogram(40)
    for t in range(10, 61):
        counts, edges = grower.update(values[:t], (3, 1))
        ref_counts, ref_edges = histogram(values[:t], 40)
        np.testing.assert_array_equal(counts, ref_counts)
        np.testing.assert_array_equal(edges, ref_edges)
    assert grower.rebinned == 1  # every later row was only added


def test_a_row_outside_the_range_an_undo_or_another_layer_bins_everything_again():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((30, 16)).astype(np.float32)  # (T, W)
    grower = GrowingHistogram(20)
    grower.update(values[:10], (5, 0))
    values[10, 3] = 50.0  # beyond the maximum so far: the edges move
    counts, edges = grower.update(values[:11], (5, 0))
    np.testing.assert_array_equal(counts, histogram(values[:11], 20)[0])
    assert edges[-1] == 50.0 and grower.rebinned == 2
    counts, _ = grower.update(values[:8], (5, 0))  # undo: fewer rows
    np.testing.assert_array_equal(counts, histogram(values[:8], 20)[0])
    counts, _ = grower.update(values[:9] * 0.5, (5, 2))  # another layer
    np.testing.assert_array_equal(counts, histogram(values[:9] * 0.5, 20)[0])
    counts, _ = grower.update(values[:10], (-1, 2))  # a snapshot that stands alone
    counts, _ = grower.update(values[:11], (-1, 2))
    assert grower.rebinned == 6
    np.testing.assert_array_equal(counts, histogram(values[:11], 20)[0])


def test_non_finite_values_are_left_out_as_in_a_full_binning():
    values = np.arange(40, dtype=np.float32).reshape(4, 10)  # (T, W)
    grower = GrowingHistogram(8)
    grower.update(values[:2], (0, 0))
    values[2, 5], values[3, 0] = np.nan, np.inf
    values[2:, 1:4] = 5.0
    counts, _ = grower.update(values, (0, 0))
    np.testing.assert_array_equal(counts, histogram(values, 8)[0])
    assert counts.sum() == 38
