"""How far CKA on n images is from CKA on 512, per n: the figures behind similarity.MIN_IMAGES and STABLE_IMAGES.

For each n, 40 draws of n demo images (other seeds than the reference's); per draw, |CKA - CKA on 512 images| for
every off-diagonal entry of the matrix over every other spatial layer of the demo model and gap. Prints the mean,
the 90th percentile and the share of entries off by more than 0.5 and 0.25. About a minute on 2 busy cores.

    .venv/bin/python benchmarks/cka_min_images.py
"""

import numpy as np
import tensorflow as tf

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import similarity as s


def main(draws: int = 40):
    probe = cw.ModelProbe(demo.load_model())
    layers = [i.path for i in probe.layers if i.is_spatial][::2] + ["gap"]
    pa, _, paths, _ = s.paired_layers(probe, None, layers)
    step = s._similarity_step(pa, None, tuple(paths), tuple(paths))  # one minibatch of n, below the public minimum

    def cka(x):
        return s._cka_from_sums(*[t.numpy() for t in step(tf.constant(x))])

    ref = cka(demo.shapes(512, seed=7).images)
    upper = np.triu_indices(len(layers), 1)
    print(f"{len(layers)} layers, {draws} draws per n; error = |CKA(n images) - CKA(512 images)| per entry")
    print("   n   mean   p90   >0.5  >0.25")
    for n in (4, 5, 6, 8, 10, 12, 16, 24, 32):
        errs = np.concatenate([np.abs(cka(demo.shapes(n, seed=1000 + k).images)[upper] - ref[upper])
                               for k in range(draws)])
        print(f"{n:4d}  {errs.mean():.3f}  {np.quantile(errs, 0.9):.3f}  {(errs > 0.5).mean():5.1%}  "
              f"{(errs > 0.25).mean():5.1%}")
    print(f"MIN_IMAGES = {s.MIN_IMAGES}, STABLE_IMAGES = {s.STABLE_IMAGES}")


if __name__ == "__main__":
    main()
