"""Weight histograms on one fixed scale: the bins, their labels and a numpy reference (no torch here).

At each evaluation the trainer counts each part's weights (`embeddings`, `block.0` … `block.{L-1}`,
`final_norm`, `out_head` when untied) into the bins below and writes the counts to metrics.jsonl as
`weight_histograms` {part: [count per bin]}; the Training pane draws them as bins × evaluations.

Why one fixed, log-spaced, symmetric scale and not bins fitted to each part:
- *Comparable over time without state.* Bins fitted to a part's first weights (say ±2 × its initial max |w|)
  must be remembered across resumes and by every reader (a followed run, a history), and weights that
  outgrow them pile up in an edge bin. Fixed edges need nothing remembered: step 0 and step 100,000, a
  resumed run and another run side by side, a tied and an untied model all use the same rows.
- *Parts mix scales.* A block holds matrices (|w| ≈ 0.02 with GPT-2's init, 0.04 with PyTorch's), LayerNorm
  scales (1.0) and biases and shifts (0 at the start). Linear bins wide enough for the scales put every
  matrix weight in one or two bins. Log-spaced bins on |w| give each its own rows, and TensorBoard's
  histograms do the same (exponentially spaced buckets, ±1e-12 · 1.1^k).
- *Cheap to count exactly.* The edges are 2^e · {1, 1.25, 1.5, 1.75}: the top 11 bits of a float32 (sign,
  exponent, two mantissa bits) name its bin, so the trainer counts with one shift and one bincount per
  tensor (`gptviz.engine.training_diagnostics.weight_histograms`; ~0.2 s per 40M weights on this 2-core
  CPU, under a second for 124M, once per evaluation) and every edge is exactly a float32.

The scale: a centre bin for |w| < 2^-14 (≈ 6.1e-5, zero included), four bins per octave up to 2^7 = 128 on
each side (84 a side), and one overflow bin beyond ±128 on each side (infinities and NaN land there too):
N_BINS = 171, ascending from the negative overflow to the positive overflow. Positive bins are [a, b);
negative bins mirror them, (−b, −a], so a weight exactly on a negative edge counts one bin nearer zero
than `np.histogram(w, EDGES)` (which is [a, b) everywhere) would put it; elsewhere the two agree.
"""

from __future__ import annotations

import numpy as np

LOW_OCTAVE = -14  # |w| below 2^LOW_OCTAVE counts as zero (the centre bin)
HIGH_OCTAVE = 7  # |w| at or above 2^HIGH_OCTAVE (128) overflows
PER_OCTAVE = 4  # bins per octave: the two mantissa bits after the exponent
SIDE = (HIGH_OCTAVE - LOW_OCTAVE) * PER_OCTAVE  # 84 bins on each side of zero
N_BINS = 2 * SIDE + 3  # negative overflow, 84 negative, centre, 84 positive, positive overflow
CENTRE = SIDE + 1  # the centre bin's index

# |w| edges 2^e · (1 + m/4), ascending: MAGNITUDES[j] is the lower edge of magnitude bin j, MAGNITUDES[SIDE]
# = 128 the overflow's. Every value is a float32 exactly.
MAGNITUDES = np.array(
    [2.0**e * (1 + m / PER_OCTAVE) for e in range(LOW_OCTAVE, HIGH_OCTAVE) for m in range(PER_OCTAVE)]
    + [2.0**HIGH_OCTAVE]
)  # (SIDE + 1,)
EDGES = np.concatenate([[-np.inf], -MAGNITUDES[::-1], MAGNITUDES, [np.inf]])  # (N_BINS + 1,) ascending

# The 11-bit code of a float32 (its bits shifted right by 21, plus 1024: sign, 8 exponent bits, 2 mantissa
# bits) -> its bin. Codes 0..1023 are negative numbers (magnitude code = the code), 1024.. positive ones.
FINE_SHIFT = 21
FINE_CODES = 2048


def _fine_to_bin() -> np.ndarray:
    table = np.empty(FINE_CODES, dtype=np.int64)  # (2048,)
    for code in range(FINE_CODES):
        magnitude_code = code if code < 1024 else code - 1024  # exponent << 2 | top two mantissa bits
        exponent, mantissa = magnitude_code >> 2, magnitude_code & 3
        octave = exponent - 127  # the unbiased exponent (denormals, exponent 0, are far below LOW_OCTAVE)
        if exponent == 0 or octave < LOW_OCTAVE:
            table[code] = CENTRE
            continue
        if octave >= HIGH_OCTAVE:  # 128 and above, infinities and NaN
            table[code] = 0 if code < 1024 else N_BINS - 1
            continue
        j = (octave - LOW_OCTAVE) * PER_OCTAVE + mantissa  # magnitude bin
        table[code] = CENTRE - 1 - j if code < 1024 else CENTRE + 1 + j
    return table


FINE_TO_BIN = _fine_to_bin()  # (2048,)


def reference_histogram(values: np.ndarray) -> np.ndarray:
    """The same counts with numpy's histogram (the yardstick of the trainer's bit-counting): (N_BINS,)."""
    w = np.asarray(values, dtype=np.float32).ravel().astype(np.float64)  # (N,)
    negative = np.signbit(w)
    magnitude_edges = np.concatenate([[0.0], MAGNITUDES, [np.inf]])  # centre, SIDE bins, overflow
    pos, _ = np.histogram(w[~negative], bins=magnitude_edges)  # (SIDE + 2,) [a, b) on |w|
    neg, _ = np.histogram(-w[negative], bins=magnitude_edges)  # (SIDE + 2,) (−b, −a] on w
    pos[-1] += int(np.isnan(w[~negative]).sum())  # numpy drops NaN; the bit count puts it in the overflow
    neg[-1] += int(np.isnan(w[negative]).sum())
    return np.concatenate([neg[:0:-1], [neg[0] + pos[0]], pos[1:]]).astype(np.int64)  # (N_BINS,)


def bin_label(index: int) -> str:
    """A bin's range in words, e.g. '[0.0156, 0.0195)', '(−0.0195, −0.0156]', '|w| < 6.1e-05', '≥ 128'."""
    if index == CENTRE:
        return f"|w| < {MAGNITUDES[0]:.2g}"
    if index == 0:
        return f"≤ −{MAGNITUDES[-1]:g}"
    if index == N_BINS - 1:
        return f"≥ {MAGNITUDES[-1]:g}"
    if index > CENTRE:
        j = index - CENTRE - 1
        return f"[{MAGNITUDES[j]:.3g}, {MAGNITUDES[j + 1]:.3g})"
    j = CENTRE - 1 - index
    return f"(−{MAGNITUDES[j + 1]:.3g}, −{MAGNITUDES[j]:.3g}]"


LABELS = [bin_label(i) for i in range(N_BINS)]


def tick_bins(every_octaves: int = 3) -> list[tuple[int, str]]:
    """(bin, label) for an axis: zero, the overflows and ±2^e every few octaves (e.g. '0.0039', '−0.25')."""
    ticks = [(CENTRE, "0"), (0, f"−{MAGNITUDES[-1]:g}"), (N_BINS - 1, f"{MAGNITUDES[-1]:g}")]
    # none crowding the zero, nor the overflow labels at the ends (64 sat on 128 at a pane's usual height)
    for octave in range(LOW_OCTAVE + 2, HIGH_OCTAVE - 1, every_octaves):
        j = (octave - LOW_OCTAVE) * PER_OCTAVE
        text = f"{2.0**octave:.2g}"
        ticks += [(CENTRE + 1 + j, text), (CENTRE - 1 - j, "−" + text)]
    return sorted(ticks)


def valid_counts(counts: object) -> np.ndarray | None:
    """A histogram read from a metrics line as an int array (N_BINS,), or None when it is not one of
    this scale (a damaged line, or another version's bins)."""
    if not isinstance(counts, list) or len(counts) != N_BINS:
        return None
    try:
        array = np.asarray(counts, dtype=np.float64)  # (N_BINS,)
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        return None
    return array.astype(np.int64)
