"""How long FGSM, PGD and the robustness curve take, against their floors; and that new values never retrace.

    .venv/bin/python benchmarks/adversarial.py [--repeats 3] [--curve-images 2000] [--curve-steps 5] [--skip-curve]
                                               [--skip-attacks] [--peers]

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
3. Robustness curve: the demo model, 8 epsilons (0, 2/255, ..., 14/255; the one at 0 costs no attack), PGD with
   --curve-steps steps. The ratio: the curve over --ratio-images images against the plain attacks it is made of
   (PGD on the same images at each epsilon > 0), interleaved in the same rounds (target <= 1.1x); then the curve
   over all --curve-images images once: accuracy per epsilon and images per second. (A floor timed once before
   and once after an 18-minute curve measured the load, not the curve: 1.89x at load 7-11.)
4. --peers: CleverHans (tf2 projected_gradient_descent, installed --no-deps), Foolbox (LinfPGD) and ART
   (ProjectedGradientDescent on a TensorFlowV2Classifier), each in its own venv under $CNNW_PEERS (default
   /tmp/cnnw_peers/<name>, never this project's .venv; a .pth there gives it this project's TensorFlow and Keras):
   PGD-20 with the same epsilon, step and random start on MobileNetV2(weights=None) with logits out, against 20
   FB8 of the same model timed in the same subprocess.

Measured on 2 shared cores at load 7-11 (2026-12-07): PGD-20 1.158x 20 FB8 (1.114x its floor 20 FB8 + 2 F8),
FGSM 1.350x 1 FB8 (0.974x FB8 + F8); 0 traces and 0 retracing warnings over 8 calls with new values; curve over 256
images 0.964x the plain attacks (22.3 against 21.5 attacked images/s); 2000 images x 8 epsilons, PGD-5: 1120 s,
14 image-epsilon pairs/s. Peers (--peers --repeats 1): CleverHans 1.253x, ART 4.249x; Foolbox 3.3 does not run on
NumPy 2 (np.find_common_type), and NumPy < 2 breaks this TensorFlow's ml_dtypes.
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
    return probe, x, pgd_ratio


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


def curve(n_images: int, steps: int, ratio_images: int, repeats: int):
    import cnnwidget as cw
    from cnnwidget import demo
    from cnnwidget.core import adversarial as adv

    probe = cw.ModelProbe(demo.load_model())
    data = demo.shapes(n_images, seed=1)
    epsilons = [k / 255 for k in range(0, 16, 2)]
    attacked_eps = [e for e in epsilons if e > 0]
    m = min(ratio_images, n_images)
    x, y = data.images[:m], data.labels[:m]
    print(f"robustness curve: demo model, 8 epsilons (0, 2/255, ..., 14/255), PGD-{steps}; {machine_note()}",
          flush=True)
    # The ratio: the curve over m images against the plain attacks it is made of (PGD on the same m images at each
    # epsilon > 0), interleaved in the same rounds, so a burst of load hits both alike.
    t = interleaved_medians({
        "curve": lambda: adv.robustness_curve(probe, (x, y), epsilons, steps=steps),
        "plain": lambda: [adv.pgd(probe, x, e, steps=steps, step_size=2.5 * e / steps, labels=y) for e in attacked_eps],
    }, warmup=1, repeats=repeats)
    ratio = t["curve"] / t["plain"]
    print(f"  {m} images: curve {t['curve']:.1f} s, the plain attacks {t['plain']:.1f} s: {ratio:.3f}x; "
          f"{m * len(attacked_eps) / t['curve']:.1f} attacked images/s against the floor's "
          f"{m * len(attacked_eps) / t['plain']:.1f}  ({machine_note()})", flush=True)
    if n_images > m:
        start = time.perf_counter()
        result = adv.robustness_curve(probe, (data.images, data.labels), epsilons, steps=steps)
        seconds = time.perf_counter() - start
        print("  epsilon*255: " + " ".join(f"{e * 255:5.0f}" for e in result.epsilons))
        print("  accuracy:    " + " ".join(f"{a:5.3f}" for a in result.accuracy))
        print(f"  {n_images} images: {seconds:.1f} s, {n_images * len(epsilons) / seconds:.1f} image-epsilon "
              f"pairs/s, {n_images * len(attacked_eps) / seconds:.1f} attacked images/s  ({machine_note()})")
    print(f"{verdict(ratio, 1.1)} robustness curve <= 1.1x the plain attacks it is made of: {ratio:.3f}x")


PEER_DIR = Path(os.environ.get("CNNW_PEERS", "/tmp/cnnw_peers"))
PEERS = ("cleverhans", "foolbox", "art")


def peer_worker(name: str, repeats: int):
    """In the peer's own venv: PGD-20 (L-inf 8/255, step 2.5 x 8/255 / 20, random start) by the peer on
    MobileNetV2(weights=None) at 224 with logits out, 8 images, against 20 FB8 of the same model in the same
    process (the same floor as ours)."""
    import json

    import keras
    import tensorflow as tf

    inp = keras.Input((224, 224, 3))
    base = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    model = keras.Model(inp, base(inp * 2.0 - 1.0))  # [0, 1] images in, logits out
    x = np.random.default_rng(0).random((8, 224, 224, 3)).astype("float32")
    xt = tf.constant(x)
    spec = tf.TensorSpec((None, 224, 224, 3), tf.float32)
    labels = tf.constant(np.asarray(model(xt)).argmax(-1).astype("int32"))

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)])
    def fb(images, y):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(images, training=False)))
        return tape.gradient(loss, images)

    def fb20():
        for _ in range(20):
            fb(xt, labels).numpy()

    eps, size = 8 / 255, 2.5 * (8 / 255) / 20
    if name == "cleverhans":
        from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

        logits = tf.function(lambda images: model(images, training=False), input_signature=[spec])

        def attack():
            return projected_gradient_descent(logits, xt, eps, size, 20, np.inf, clip_min=0.0, clip_max=1.0,
                                              y=labels, rand_init=True, sanity_checks=False).numpy()
    elif name == "foolbox":
        import foolbox

        fmodel = foolbox.TensorFlowModel(model, bounds=(0, 1))
        pgd = foolbox.attacks.LinfPGD(abs_stepsize=size, steps=20, random_start=True)

        def attack():
            return pgd(fmodel, xt, labels, epsilons=eps)[1].numpy()
    elif name == "art":
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import TensorFlowV2Classifier

        classifier = TensorFlowV2Classifier(model, nb_classes=1000, input_shape=(224, 224, 3),
                                            loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                            clip_values=(0.0, 1.0))
        pgd = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=size, max_iter=20, batch_size=8,
                                       num_random_init=1, verbose=False)

        def attack():
            return pgd.generate(x, y=np.asarray(labels))
    else:
        raise SystemExit(f"unknown peer {name}")
    t = interleaved_medians({"20 FB8": fb20, "PGD-20": attack}, warmup=1, repeats=repeats)
    print("PEER " + json.dumps({"name": name, "floor": t["20 FB8"], "pgd": t["PGD-20"], "load": machine_note()}))


def peers(repeats: int, ours: float | None):
    import json
    import subprocess

    for name in PEERS:
        python = PEER_DIR / name / "bin" / "python"
        if not python.exists():
            print(f"  {name}: no venv at {python.parent.parent} (make it with python -m venv, a .pth to this "
                  f"project's site-packages, and pip install the peer)")
            continue
        run = subprocess.run([str(python), __file__, "--peer-worker", name, "--repeats", str(repeats)],
                             capture_output=True, text=True)
        line = next((ln for ln in run.stdout.splitlines() if ln.startswith("PEER ")), None)
        if line is None:
            tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"  {name}: failed: {tail}")
            continue
        r = json.loads(line[5:])
        print(f"  {name}: PGD-20 {r['pgd']:.2f} s, its 20 FB8 {r['floor']:.2f} s: {r['pgd'] / r['floor']:.3f}x"
              + (f" (ours {ours:.3f}x)" if ours else "") + f"  ({r['load']})", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", action="store_true", help="also time CleverHans, Foolbox and ART (own venvs)")
    parser.add_argument("--peer-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--curve-images", type=int, default=2000)
    parser.add_argument("--curve-steps", type=int, default=5)
    parser.add_argument("--ratio-images", type=int, default=256, help="images of the interleaved curve/floor ratio")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--skip-attacks", action="store_true")
    args = parser.parse_args()
    if args.peer_worker:
        peer_worker(args.peer_worker, args.repeats)
        return
    ours = None
    if not args.skip_attacks:
        probe, x, ours = attacks(args.repeats)
        retracing(probe, x)
    if args.peers:
        print(f"peers: PGD-20 against 20 FB8 of the same model, each in its own venv under {PEER_DIR}")
        peers(args.repeats, ours)
    if not args.skip_curve:
        curve(args.curve_images, args.curve_steps, args.ratio_images, args.repeats)


if __name__ == "__main__":
    main()
