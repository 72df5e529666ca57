"""The mutations of issue 14 and of the test audit (../shared/research/test-audit-2026-12-02.md, section 2).

Each mutation is one realistic bug: an exact ``old`` snippet in ``file`` that must occur exactly once, replaced by
``new`` (``earlier`` holds the snippets of older trees, for ``--ref``). Snippets are small distinctive expressions,
not line numbers, so they survive code moving around; when a refactor changes the expression itself,
``tools/mutate.py`` reports the mutation as *stale* and this table wants updating (the id and the bug stay; the
snippets follow the code, the old ones move to ``earlier``).

``tests`` maps a tier to what should catch the bug at that tier:

* ``quick``: pytest paths, globs or node ids run with the quick marker set, and ``js/*.test.mjs`` files run with
  ``node --test``;
* ``slow``: run with ``-m "(slow or kernel or notebook) and not browser"``;
* ``browser``: run with ``-m browser``.

Within a tier, files run in the order given (a glob adds the files not named before it), and pytest stops at the
first failure, so name the file that should catch the bug first. A string with `` -k `` in it is one pytest
invocation of its own (``"tests/unit/x.py -k 'a or b'"``). Globs let a new test file count without editing this
table; a path that does not exist in the tree being mutated is reported and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TIERS = ("quick", "slow", "browser")


@dataclass(frozen=True)
class Mutation:
    id: str
    description: str
    file: str
    old: str
    new: str
    tests: dict = field(default_factory=dict)  # tier -> list of specs
    extra: bool = False  # a variant outside the audit's 18 (M02b, M11b): not counted in the main score
    earlier: tuple = ()  # (old, new) pairs for older trees (--ref), tried when ``old`` does not match

    def variants(self) -> list:
        return [(self.old, self.new), *self.earlier]


# Listed most telling first: pytest stops at a mutant's first failure, so the file that should catch it runs first.
ATTRIBUTION = {"quick": ["tests/unit/test_attribution_reference.py", "tests/unit/test_attribution.py",
                         "tests/unit/test_perturbation.py", "tests/unit/test_faithfulness.py",
                         "tests/unit/test_attribution*.py"],
               "slow": ["tests/unit/test_attribution_quality.py", "tests/unit/test_attribution*.py"]}
FEATUREVIS = {"quick": ["tests/unit/test_featurevis.py", "tests/unit/test_featurevis*.py"],
              "slow": ["tests/unit/test_featurevis*.py"]}
PROBE = {"quick": ["tests/unit/test_probe.py", "tests/unit/test_activations.py", "tests/unit/test_activation_grid.py",
                   "tests/unit/test_wire_roundtrip.py"]}
WIRE = {"quick": ["tests/unit/test_transport.py", "tests/unit/test_wire_roundtrip.py",
                  "tests/unit/test_activation_grid.py", "tests/unit/test_attribution_map_widget.py"],
        "slow": ["tests/kernel/test_activation_grid_kernel.py", "tests/kernel/test_attribution_map_kernel.py"],
        "browser": ["tests/browser/test_activation_grid_browser.py"]}
GRID = {"quick": ["tests/unit/test_activation_grid.py", "tests/unit/test_wire_roundtrip.py"],
        "slow": ["tests/kernel/test_activation_grid_kernel.py"],
        "browser": ["tests/browser/test_activation_grid_browser.py"]}
NODE = ["js/*.test.mjs"]
DIAGNOSTICS = {"quick": ["tests/unit/test_diagnostics.py", "tests/unit/test_training_widgets.py"],
               "slow": ["tests/unit/test_diagnostics.py", "tests/unit/test_training_widgets.py",
                        "tests/kernel/test_training_monitor_kernel.py"]}

MUTATIONS = [
    Mutation("M01", "saliency sums |grad| over channels instead of taking the max",
             "cnnwidget/core/attribution/gradients.py",
             "return _abs_max(_gradients(probe, batch, target, batch_size)[0])",
             "return np.abs(_gradients(probe, batch, target, batch_size)[0]).sum(-1).astype(np.float32)",
             ATTRIBUTION),
    Mutation("M02", "Integrated Gradients drops the (x - x') factor",
             "cnnwidget/core/attribution/gradients.py",
             "((batch - base) * sum_g)", "(sum_g)", ATTRIBUTION),
    Mutation("M02b", "Integrated Gradients uses x instead of (x - x')",
             "cnnwidget/core/attribution/gradients.py",
             "((batch - base) * sum_g)", "(batch * sum_g)", ATTRIBUTION, extra=True),
    Mutation("M03", "Grad-CAM channel weights: max of the gradients over positions instead of the mean",
             "cnnwidget/core/attribution/cam.py",
             'np.einsum("nijk,nk->nij", a, g.mean(axis=(1, 2)))',
             'np.einsum("nijk,nk->nij", a, g.max(axis=(1, 2)))', ATTRIBUTION),
    Mutation("M04", "occlusion patch mask one pixel taller than the coverage count assumes",
             "cnnwidget/core/attribution/perturbation.py",
             "(y >= 0) & (y < side) & (x >= 0)", "(y >= 0) & (y <= side) & (x >= 0)", ATTRIBUTION,
             earlier=(("(y >= 0) & (y < patch) & (x >= 0)", "(y >= 0) & (y <= patch) & (x >= 0)"),)),
    Mutation("M05", "deletion and insertion swapped",
             "cnnwidget/core/attribution/metrics.py",
             'delete = kind == "deletion"', 'delete = kind == "insertion"', ATTRIBUTION),
    Mutation("M06", "total_variation penalty with its sign flipped",
             "cnnwidget/core/featurevis/objectives.py",
             "return tf.reduce_sum(_mean_per_image(dy) + _mean_per_image(dx))",
             "return -tf.reduce_sum(_mean_per_image(dy) + _mean_per_image(dx))", FEATUREVIS),
    Mutation("M07", "colour-decorrelation matrix transposed in FFTImage.unit_images (fft_image)",
             "cnnwidget/core/featurevis/params.py",
             "tf.matmul(self.colour.matrix, tf.reshape(w",
             "tf.matmul(tf.transpose(self.colour.matrix), tf.reshape(w", FEATUREVIS),
    Mutation("M08", "jitter never moves (offset drawn from [0, 1))",
             "cnnwidget/core/featurevis/transforms.py",
             "generator.uniform([2, batch], 0, d + 1, dtype=tf.int32)",
             "generator.uniform([2, batch], 0, 1, dtype=tf.int32)", FEATUREVIS),
    Mutation("M09", "activations() compiles the pass for sorted paths but zips its outputs with the unsorted ones",
             "cnnwidget/core/probe.py",
             "fn = self._compiled(paths, reduce)", "fn = self._compiled(tuple(sorted(paths)), reduce)", PROBE),
    Mutation("M10", "preprocess ignored in the forward pass",
             "cnnwidget/core/probe.py",
             "x = preprocess(x)", "x = x", PROBE),
    Mutation("M11", "non-finite values quantized as the tile's max instead of its min (the documented byte 0)",
             "cnnwidget/widgets/_transport.py",
             "np.where(finite, flat, lo[:, None])", "np.where(finite, flat, hi[:, None])", WIRE),
    Mutation("M11b", "per-tile ranges sent as [hi, lo]",
             "cnnwidget/widgets/_transport.py",
             "np.stack([lo, hi], axis=1)", "np.stack([hi, lo], axis=1)", WIRE, extra=True),
    Mutation("M12", "ActivationGrid tiles in channel-index order while tile_meta.channels is sorted (sort='mean')",
             "cnnwidget/widgets/activation_grid.py",
             "np.moveaxis(maps[..., shown], -1, 0)", "np.moveaxis(maps[..., np.sort(shown)], -1, 0)", GRID),
    Mutation("M13", "colour-map table built with i/256 instead of i/255",
             "js/colormaps.js",
             "(i / 255) * last", "(i / 256) * last",
             {"quick": NODE, "browser": ["tests/browser/test_activation_grid_browser.py",
                                         "tests/browser/test_filter_grid_browser.py"]}),
    Mutation("M14", "tileAt off by one at a tile boundary: inY == tileH (the first gap row) hits the tile above",
             "js/tiles.js",
             "inY >= tileH", "inY > tileH",
             {"quick": NODE, "browser": ["tests/browser/test_activation_grid_browser.py",
                                         "tests/browser/test_filter_grid_browser.py"]}),
    Mutation("M15", "per-layer and per-channel normalization swapped in the ActivationGrid drawing",
             "js/activation_grid.js",
             "perLayer ? indexLut(lo, hi, L, H) : indexLut(lo, hi, lo, hi)",
             "perLayer ? indexLut(lo, hi, lo, hi) : indexLut(lo, hi, L, H)",
             {"quick": NODE, "browser": ["tests/browser/test_activation_grid_browser.py"]}),
    Mutation("M16", "streaming CKA with the biased (plain centred) Gram instead of the unbiased one",
             "cnnwidget/core/similarity.py",
             "g = (g - means[:, None] - means[None, :]) * off_diagonal",
             "g = tf.cast(tf.matmul(f, f, transpose_b=True), tf.float64)",
             {"quick": ["tests/unit/test_similarity.py", "tests/unit/test_layer_similarity_widget.py"]}),
    Mutation("M17", "vanishing-gradient threshold inverted",
             "cnnwidget/core/diagnostics.py",
             "low = rows < t.vanishing", "low = rows > t.vanishing", DIAGNOSTICS),
    Mutation("M18", "dead-unit fraction taken over positions (max over axis 1) instead of over units",
             "cnnwidget/core/diagnostics.py",
             "tf.reduce_max(tf.reshape(a, [-1, a.shape[-1]]), 0) <= 0",
             "tf.reduce_max(tf.reshape(a, [-1, a.shape[-1]]), 1) <= 0", DIAGNOSTICS),
]

BY_ID = {m.id: m for m in MUTATIONS}
assert len(BY_ID) == len(MUTATIONS), "duplicate mutation id"
