"""How long FGSM, PGD and the robustness curve take, against their floors; and that new values never retrace.

    .venv/bin/python benchmarks/adversarial.py [--repeats 3] [--curve-images 2000] [--curve-steps 5] [--skip-curve]

1. Attacks. Workload: keras.applications.MobileNetV2(weights=None) at 224, 8 random images in [0, 1]
   (preprocess x * 2 - 1), untargeted, L-inf epsilon 8/255. Floor units, timed in the same interleaved rounds
   (_timing.interleaved_medians):
     FB8  one compiled forward + backward pass (d cross-entropy / d input) on the 8 images
     F8   one compiled forward pass on the 8 images
     20 FB8  twenty of them in a loop, timed as one unit (as long as PGD-20, so both see the same load)
   PGD-20 against 20 FB8 (target <= 1.1x), and against its physical floor 20 FB8 + 2 F8 (the result carries the
   clean and the adversarial predictions: one forward each); FGSM against 1 FB8 (target <= 1.1x) and against
   1 FB8 + 1 F8 (its clean prediction comes from the step's own forward pass; the adversarial one costs a pass).
2. Retracing: traces of the "adversarial" family (cnnwidget.core.probe.traces) and TensorFlow's retracing warnings
   while epsilon, steps, step size, target and labels change between calls: must stay 0.
3. Robustness curve: the demo model, --curve-images held-out shapes, 8 epsilons (0, 2/255, ..., 14/255; the one
   at 0 costs no attack), PGD with --curve-steps steps. Images per second (image x epsilon pairs / s) against the
   plain attack floor: the same PGD on 256 of the images at one epsilon, timed in the same run, per image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from _timing import RetracingWarnings, interleaved_medians, machine_note, median_seconds, verdict  # noqa: E402


def attacks(repeats: int):
    import keras
    import tensorflow as tf

    import cnnwidget as cw
    from cnnwidget.core import adversarial as adv

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    probe = cw.ModelProbe(model, preprocess=lambda x: x * 2.0 - 1.0)
    x = np.random.default_rng(0).random((8, 224, 224, 3)).astype("float32")
    xt = tf.constant(x)
    forward = probe.forward((), logits=True)
    labels = tf.constant(probe.predict(x).argmax(-1).astype("int32"))
    spec = tf.TensorSpec((None, 224, 224, 3), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)])
    def fb(images, y):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, forward(images)[-1]))
        return tape.gradient(loss, images)

    @tf.function(input_signature=[spec])
    def f(images):
        return forward(images)[-1]

    eps = 8 / 255
    def fb20():  # the 20 passes as one timed unit, as long as PGD-20: both see the same load (a burst of other
        for _ in range(20):  # work on a shared machine biases the median of short calls low)
            fb(xt, labels).numpy()

    fns = {
        "20 FB8": fb20,
        "FB8": lambda: fb(xt, labels).numpy(),
        "F8": lambda: f(xt).numpy(),
        "FGSM": lambda: adv.fgsm(probe, x, eps),
        "PGD-20": lambda: adv.pgd(probe, x, eps, steps=20),
    }
    print(f"attacks: MobileNetV2(weights=None) at 224, 8 images; {machine_note()}", flush=True)
    t = interleaved_medians(fns, warmup=1, repeats=repeats)
    print(f"  FB8 {t['FB8'] * 1e3:.0f} ms, 20 FB8 in a loop {t['20 FB8']:.2f} s, F8 {t['F8'] * 1e3:.0f} ms, "
          f"FGSM {t['FGSM'] * 1e3:.0f} ms, PGD-20 {t['PGD-20']:.2f} s  ({machine_note()})")
    pgd_ratio = t["PGD-20"] / t["20 FB8"]
    pgd_physical = t["PGD-20"] / (t["20 FB8"] + 2 * t["F8"])
    fgsm_ratio = t["FGSM"] / t["FB8"]
    fgsm_physical = t["FGSM"] / (t["FB8"] + t["F8"])
    print(f"  PGD-20 / 20 FB8 = {pgd_ratio:.3f}x   (/ (20 FB8 + 2 F8) = {pgd_physical:.3f}x; 20 x the median FB8 "
          f"would give {t['PGD-20'] / (20 * t['FB8']):.3f}x)")
    print(f"  FGSM / 1 FB8    = {fgsm_ratio:.3f}x   (/ (FB8 + F8) = {fgsm_physical:.3f}x)")
    print(f"{verdict(pgd_ratio, 1.1)} PGD-20 <= 1.1x 20 compiled forward+backward passes: {pgd_ratio:.3f}x")
    print(f"{verdict(fgsm_ratio, 1.1)} FGSM <= 1.1x 1 compiled forward+backward pass: {fgsm_ratio:.3f}x "
          f"(its floor with the adversarial prediction, FB8 + F8: {fgsm_physical:.3f}x)")
    return probe, x


def retracing(probe, x):
    from cnnwidget.core import adversarial as adv
    from cnnwidget.core import probe as probe_module

    warnings = RetracingWarnings.install()
    small = x[:2]
    adv.pgd(probe, small, 8 / 255, steps=2)  # traced before (the attack rounds): nothing new expected
    before, count = probe_module.traces("adversarial"), probe.trace_count
    calls = [
        ("epsilon 2/255", lambda: adv.pgd(probe, small, 2 / 255, steps=2)),
        ("steps 3", lambda: adv.pgd(probe, small, 8 / 255, steps=3)),
        ("step size 1/255", lambda: adv.pgd(probe, small, 8 / 255, steps=2, step_size=1 / 255)),
        ("target 7", lambda: adv.pgd(probe, small, 8 / 255, steps=2, target=7)),
        ("targets [1, 2]", lambda: adv.pgd(probe, small, 8 / 255, steps=2, target=[1, 2])),
        ("labels [3, 4]", lambda: adv.fgsm(probe, small, 4 / 255, labels=[3, 4])),
        ("FGSM epsilon 16/255", lambda: adv.fgsm(probe, small, 16 / 255)),
        ("no random start", lambda: adv.pgd(probe, small, 8 / 255, steps=2, random_start=False)),
    ]
    for name, call in calls:
        call()
    new = probe_module.traces("adversarial") - before
    print(f"retracing: {len(calls)} calls changing {', '.join(n for n, _ in calls)}: {new} new traces, "
          f"{probe.trace_count - count} on the probe, {warnings.count} TensorFlow retracing warnings")
    print(f"{verdict(new + warnings.count, 0)} changing epsilon, steps, step size, target or labels costs no retrace")


def curve(n_images: int, steps: int):
    import cnnwidget as cw
    from cnnwidget import demo
    from cnnwidget.core import adversarial as adv

    probe = cw.ModelProbe(demo.load_model())
    data = demo.shapes(n_images, seed=1)
    epsilons = [k / 255 for k in range(0, 16, 2)]
    sample = data.images[:256], data.labels[:256]
    print(f"robustness curve: demo model, {n_images} images x {len(epsilons)} epsilons, PGD-{steps}; "
          f"{machine_note()}", flush=True)
    floor = median_seconds(lambda: adv.pgd(probe, sample[0], 8 / 255, steps=steps, labels=sample[1]), warmup=1,
                           repeats=3) / 256
    attacked = n_images * (len(epsilons) - 1)
    start = time.perf_counter()
    result = adv.robustness_curve(probe, (data.images, data.labels), epsilons, steps=steps)
    seconds = time.perf_counter() - start
    floor_after = median_seconds(lambda: adv.pgd(probe, sample[0], 8 / 255, steps=steps, labels=sample[1]),
                                 warmup=0, repeats=1) / 256
    floor = min(floor, floor_after)  # the least per-image time seen before or after: a load burst only slows
    print("  epsilon*255: " + " ".join(f"{e * 255:5.0f}" for e in result.epsilons))
    print("  accuracy:    " + " ".join(f"{a:5.3f}" for a in result.accuracy))
    print(f"  {seconds:.1f} s: {n_images * len(epsilons) / seconds:.0f} image-epsilon pairs/s, "
          f"{attacked / seconds:.1f} attacked images/s; plain attack floor {1 / floor:.1f} images/s "
          f"(PGD-{steps} on 256 images, per image); ratio {seconds / (attacked * floor):.3f}x  ({machine_note()})")
    print(f"{verdict(seconds / (attacked * floor), 1.1)} robustness curve <= 1.1x the plain attack per attacked "
          f"image: {seconds / (attacked * floor):.3f}x")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--curve-images", type=int, default=2000)
    parser.add_argument("--curve-steps", type=int, default=5)
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--skip-attacks", action="store_true")
    args = parser.parse_args()
    if not args.skip_attacks:
        probe, x = attacks(args.repeats)
        retracing(probe, x)
    if not args.skip_curve:
        curve(args.curve_images, args.curve_steps)


if __name__ == "__main__":
    main()
