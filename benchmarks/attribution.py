"""How long each attribution method takes, against its floor and against the peers.

    .venv/bin/python benchmarks/attribution.py [--repeats 5] [--samples 1000] [--perturbation] [--peers [NAME ...]]

Workload: keras.applications.MobileNetV2(weights=None), 4 random images at 224 in [0, 1] (preprocess x * 2 - 1),
target = the predicted class. For each method: median time and ratio to its **floor**, the passes the method must
make times the cost of one such pass measured in the same run (interleaved, _timing.py):

  G4   forward + backward (d logit / d input) on the 4 images       saliency, gradient x input, guided backprop
  L4   forward + backward to the last conv output (out_relu)         Grad-CAM, Grad-CAM++
  G32  forward + backward on 32 images                               SmoothGrad-50, IG-50: 200 rows = 200/32 G32
  BEST the best seconds per image of a forward pass over batch       occlusion, Score-CAM, RISE, LIME, SHAP,
       sizes 1..64 (F1 ... F64, timed in the same rounds)           deletion, insertion: images scored x BEST

Images scored: every masked image, plus the images themselves once (they give the target class, and occlusion's
unmasked score) unless the method's masked images already include them (LIME's all-on and Kernel SHAP's full
coalition, the curves' first or last step). The perturbation methods' target is <= 1.1x BEST: they may choose
their chunk size (the probe measures it, _common.best_batch_size), so their floor is the machine's best
throughput, not a pass per chunk. The line "forward images/s by batch size" prints that throughput.
--perturbation times only these (a shorter run on a busy machine).

Target: every other method <= 1.2x its floor. The light methods are medians of --repeats, interleaved with the
floor units. LIME and Kernel SHAP (--samples coalitions each, 1000 by default) take a minute each, so they run
once, and their floor is measured *inside* that run: the ``progress`` callback, called after each chunk, runs one
forward pass at BEST's batch size each time another 64 masked images have been scored (its time is taken out of
the method's). The method's time is a sum over its chunks, so its floor is images scored x the *mean* per image of
those passes: both see the same minute of load. A floor taken minutes earlier, in the light methods' rounds,
measured the machine's load rather than the method on a shared 2-core machine: it put LIME at 1.20-1.57x and
Kernel SHAP at 1.11-1.26x in different runs, though a chunk of either costs about the same (1.06x and 1.10x an F32
pass, interleaved), and one run saw F32 take 572 ms in those rounds, 361 ms inside LIME and 473 ms inside
Kernel SHAP.

--peers runs Xplique, tf-keras-vis, tf-explain, lime and shap from PyPI, each in its own venv under
benchmarks/_peers/<name> (gitignored; made on first use: Xplique and tf-keras-vis bring their own TensorFlow,
tf-explain needs TensorFlow 2.15, lime and shap use this project's TensorFlow through a .pth file). Each peer
runs in a subprocess of this script (``--peer-worker NAME``), measures its own floors the same way in its own
TensorFlow, and reports its times; the table prints each peer's ratio to its own floor beside ours, and its
time over ours. lime and shap get the same images, targets and superpixels as ours, and their floor is timed
inside their run as ours is (after their model calls); as their run and ours are minutes apart, "faster than"
compares the two ratios to those floors, and the raw times are printed beside. A peer that cannot be installed
or run prints why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from _timing import interleaved_medians, machine_note, median_seconds, verdict  # noqa: E402

N, SIZE, BATCH, TARGET = 4, 224, 32, 1.2
BATCHES = (1, 2, 4, 8, 16, 32, 64)  # forward batch sizes timed for the best throughput
BEST_TARGET = 1.1  # perturbation methods: time <= 1.1 x (images scored) x (best seconds per image)
LAYER = "out_relu"
PEERS = {  # name -> pip requirements for its venv, and whether it borrows this project's TensorFlow
    "xplique": (["xplique"], False),
    "tf-keras-vis": (["tf-keras-vis", "tensorflow"], False),
    "tf-explain": (["tf-explain", "tensorflow==2.15.*", "opencv-python-headless"], False),
    "lime": (["lime"], True),
    "shap": (["shap"], True),
}


def workload():
    """The model, 4 images in [0, 1] and the preprocessing, the same in every interpreter."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None)
    images = np.random.default_rng(0).random((N, SIZE, SIZE, 3), dtype=np.float32)
    return model, images


def floors(model, layer_name=LAYER):
    """Compiled one-pass functions {name: callable} for the floor units (see the module docstring)."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x4 = tf.constant(rng.random((N, SIZE, SIZE, 3), dtype=np.float32))
    x32 = tf.constant(rng.random((BATCH, SIZE, SIZE, 3), dtype=np.float32))
    both = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])

    @tf.function
    def forward(x):
        return model(x * 2 - 1, training=False)

    @tf.function
    def input_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_max(model(x * 2 - 1, training=False), -1)
        return tape.gradient(score, x)

    @tf.function
    def layer_grad(x):
        with tf.GradientTape() as tape:
            a, out = both(x * 2 - 1, training=False)
            score = tf.reduce_max(out, -1)
        return a, tape.gradient(score, a)

    units = {"G4": lambda: np.asarray(input_grad(x4)), "L4": lambda: [np.asarray(t) for t in layer_grad(x4)],
             "G32": lambda: np.asarray(input_grad(x32)), "F32": lambda: np.asarray(forward(x32))}
    for b in BATCHES:  # forward passes at each batch size: the machine's best throughput, see best_per_image
        if b != BATCH:
            xb = tf.constant(rng.random((b, SIZE, SIZE, 3), dtype=np.float32))
            units[f"F{b}"] = lambda xb=xb: np.asarray(forward(xb))
    return units


def best_per_image(units: dict) -> tuple[float, int]:
    """(seconds per image, batch size) of the fastest forward pass per image among the F<b> units' times."""
    per = {int(k[1:]): v / int(k[1:]) for k, v in units.items() if k[0] == "F"}
    b = min(per, key=per.get)
    return per[b], b


# -- ours --------------------------------------------------------------------------------------------------------

def ours(repeats: int, samples: int, only_perturbation: bool = False):
    from cnnwidget.core import ModelProbe
    from cnnwidget.core import attribution as attr

    model, images = workload()
    probe = ModelProbe(model, preprocess=lambda x: x * 2 - 1)
    seg = attr.superpixels(images, n_segments=50)
    p = [int(s.max()) + 1 for s in seg]
    n_occ = (len(range(0, SIZE - 32 + 1, 16)) ** 2 + 1) * N
    a_map = np.random.default_rng(2).random((N, SIZE, SIZE), dtype=np.float32)  # the curves' cost ignores the map
    methods = {  # name: (call, floor unit, passes in units of that floor; for BEST: images scored)
        "saliency": (lambda: attr.saliency(probe, images), "G4", 1),
        "gradient_x_input": (lambda: attr.gradient_x_input(probe, images), "G4", 1),
        "guided_backprop": (lambda: attr.guided_backprop(probe, images), "G4", 1),
        "smoothgrad-50": (lambda: attr.smoothgrad(probe, images, samples=50), "G32", 50 * N / BATCH),
        "integrated_gradients-50": (lambda: attr.integrated_gradients(probe, images, steps=50), "G32", 50 * N / BATCH),
        "grad_cam": (lambda: attr.grad_cam(probe, images, layer=LAYER), "L4", 1),
        "grad_cam_plus_plus": (lambda: attr.grad_cam_plus_plus(probe, images, layer=LAYER), "L4", 1),
        # Perturbation methods: floor BEST = images scored x the best seconds per image of a forward pass over
        # BATCHES, timed in the same rounds. Images scored: the masked copies, plus the images themselves once
        # (the target class; occlusion's unmasked score) where the method's rows do not already hold them.
        "score_cam (64 ch)": (lambda: attr.score_cam(probe, images, layer=LAYER, channels=64), "BEST", 64 * N + N),
        "occlusion 32/16": (lambda: attr.occlusion(probe, images, patch=32, stride=16), "BEST", n_occ),
        "rise-256": (lambda: attr.rise(probe, images, masks=256), "BEST", 256 * N + N),
        "deletion-10": (lambda: attr.deletion(probe, images, a_map), "BEST", 11 * N),
        "insertion-10": (lambda: attr.insertion(probe, images, a_map), "BEST", 11 * N),
    }
    heavy = {  # called with a progress callback, see timed_with_floor
        f"lime-{samples}": (lambda pr: attr.lime(probe, images, samples=samples, segments=seg, progress=pr), "BEST",
                            samples * N),
        f"kernel_shap-{samples}": (lambda pr: attr.kernel_shap(probe, images, samples=samples, segments=seg,
                                                               progress=pr), "BEST", samples * N),
    }
    if only_perturbation:
        methods = {k: v for k, v in methods.items() if v[1] == "BEST"}
    units = floors(model)
    for unit in units.values():
        unit()  # traced (a pass per batch size), outside the timings
    # Trace every pass once, outside the timings. Occlusion's 676 masked images are the probe's first long
    # stream: it measures the best chunk size there (_common.best_batch_size), as a user's first call would.
    attr.occlusion(probe, images, patch=32, stride=16)
    light = {"score_cam (64 ch)": lambda: attr.score_cam(probe, images, layer=LAYER, channels=2),
             "rise-256": lambda: attr.rise(probe, images, masks=4)}
    for name, (call, _, _) in methods.items():
        if name != "occlusion 32/16":
            light.get(name, call)()
    attr.lime(probe, images, samples=8, segments=seg)
    attr.kernel_shap(probe, images, samples=8, segments=seg)
    times = interleaved_medians({**units, **{k: v[0] for k, v in methods.items()}}, warmup=0, repeats=repeats)
    best, best_batch = best_per_image({k: times[k] for k in units})
    unit_seconds = {name: best if unit == "BEST" else times[unit] for name, (_, unit, _) in methods.items()}
    for name, (call, unit, _) in heavy.items():
        times[name], seconds = timed_with_floor(call, units[f"F{best_batch}"])
        unit_seconds[name] = seconds / best_batch
    rows = {}
    for name, (_, unit, passes) in {**methods, **heavy}.items():
        floor = unit_seconds[name] * passes
        rows[name] = {"seconds": times[name], "floor": floor, "ratio": times[name] / floor, "unit": unit,
                      "passes": passes}
    preds = probe.predict(images).argmax(-1)
    units = {k: times[k] for k in units}
    from cnnwidget.core.attribution import _common

    return rows, units, images, seg, preds, p, _common.best_batch_size(probe, images.shape[1:])


def timed_with_floor(call, unit, rows_per_floor: int = 2 * BATCH):
    """Run ``call(progress)`` once, timing ``unit`` (one floor pass) each time ``rows_per_floor`` more masked
    images have been scored; ``call`` calls ``progress(done_rows, total_rows)`` between its chunks.

    Returns (seconds of the call without the floor passes, mean seconds of one floor pass). The floor passes run
    between the method's own chunks, so both meet the same load; the mean, because the method's time is a sum.
    """
    floor, due = [], [rows_per_floor]

    def progress(done, total=None):
        if done >= due[0]:
            due[0] = (done // rows_per_floor + 1) * rows_per_floor
            start = time.perf_counter()
            unit()
            floor.append(time.perf_counter() - start)

    start = time.perf_counter()
    call(progress)
    seconds = time.perf_counter() - start - sum(floor)
    if not floor:  # a run shorter than ``rows_per_floor``: time the floor after it
        floor.append(median_seconds(unit, warmup=0, repeats=3))
    return seconds, float(np.mean(floor))


# -- peers -------------------------------------------------------------------------------------------------------

def ensure_peer(name: str) -> Path | str:
    """The peer's python, making its venv on first use; or a string saying why it cannot be had."""
    venv = HERE / "_peers" / name
    python = venv / "bin" / "python"
    log = HERE / "_peers" / f"{name}.log"
    if python.exists():
        return python
    requirements, borrow = PEERS[name]
    venv.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        steps = [["python3", "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", *requirements]]
        for i, cmd in enumerate(steps):
            if i == 1 and borrow:  # TensorFlow from this project's venv, the peer's own packages in front of it
                site = next((venv / "lib").glob("python3*/site-packages"))
                project_site = next((HERE.parent / ".venv" / "lib").glob("python3*/site-packages"))
                (site / "project.pth").write_text(str(project_site) + "\n")
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
            if rc != 0:
                tail = log.read_text().strip().splitlines()[-3:]
                return f"could not install {' '.join(requirements)} (exit {rc}): {' | '.join(tail)[:300]}"
    return python


def run_peer(name: str, data_path: str, repeats: int, samples: int) -> dict | str:
    python = ensure_peer(name)
    if isinstance(python, str):
        return python
    cmd = [str(python), str(Path(__file__).resolve()), "--peer-worker", name, "--data", data_path,
           "--repeats", str(repeats), "--samples", str(samples)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    results = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not results:
        return f"exit {proc.returncode}: {' | '.join(proc.stderr.strip().splitlines()[-3:])[:400]}"
    return json.loads(results[-1])


def peer_worker(name: str, data_path: str, repeats: int, samples: int):
    """Runs inside the peer's venv: prints one JSON line {floors, methods: {name: seconds}, heavy_floors: {name:
    seconds of one F32 pass measured inside that method's run}, note}."""
    import tensorflow as tf

    data = np.load(data_path)
    model, _ = workload()
    images, seg, preds = data["images"], data["segments"], data["preds"]
    units = floors(model)
    methods, heavy, note = {}, {}, ""
    # Peers get the bare model and preprocessed images (x * 2 - 1, negligible): a model wrapped around
    # MobileNetV2 would be the nested case their CAMs cannot take.
    pre, x = model, images * 2 - 1
    onehot = np.eye(model.output.shape[-1], dtype=np.float32)[preds]
    if name == "xplique":
        import xplique.attributions as xa

        expl = {
            "saliency": xa.Saliency(pre, batch_size=BATCH),
            "smoothgrad-50": xa.SmoothGrad(pre, nb_samples=50, noise=0.15, batch_size=BATCH),
            "integrated_gradients-50": xa.IntegratedGradients(pre, steps=50, batch_size=BATCH),
            "gradient_x_input": xa.GradientInput(pre, batch_size=BATCH),
            "guided_backprop": xa.GuidedBackprop(pre, batch_size=BATCH),
            "grad_cam": xa.GradCAM(pre, conv_layer=LAYER, batch_size=BATCH),
            "grad_cam_plus_plus": xa.GradCAMPP(pre, conv_layer=LAYER, batch_size=BATCH),
            "occlusion 32/16": xa.Occlusion(pre, patch_size=32, patch_stride=16, batch_size=BATCH),
            "rise-256": xa.Rise(pre, nb_samples=256, batch_size=BATCH),
        }
        methods = {k: (lambda e=e: e(x, onehot)) for k, e in expl.items()}
        note = "Xplique explains the model output (softmax probabilities)"
    elif name == "tf-keras-vis":
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore(list(preds))
        sal = Saliency(pre, model_modifier=ReplaceToLinear(), clone=True)
        cam = Gradcam(pre, model_modifier=ReplaceToLinear(), clone=True)
        campp = GradcamPlusPlus(pre, model_modifier=ReplaceToLinear(), clone=True)
        scam = Scorecam(pre, model_modifier=ReplaceToLinear(), clone=True)
        methods = {
            "saliency": lambda: sal(score, x),
            "smoothgrad-50": lambda: sal(score, x, smooth_samples=50, smooth_noise=0.15),
            "grad_cam": lambda: cam(score, x, penultimate_layer=LAYER),
            "grad_cam_plus_plus": lambda: campp(score, x, penultimate_layer=LAYER),
            "score_cam (64 ch)": lambda: scam(score, x, penultimate_layer=LAYER, max_N=64),
        }
        note = "tf-keras-vis with ReplaceToLinear (logits), as its docs recommend"
    elif name == "tf-explain":
        from tf_explain.core.grad_cam import GradCAM
        from tf_explain.core.integrated_gradients import IntegratedGradients
        from tf_explain.core.occlusion_sensitivity import OcclusionSensitivity
        from tf_explain.core.smoothgrad import SmoothGrad
        from tf_explain.core.vanilla_gradients import VanillaGradients

        cls = int(preds[0])  # tf-explain takes one class for the whole batch
        methods = {
            "saliency": lambda: VanillaGradients().explain((x, None), pre, cls),
            "smoothgrad-50": lambda: SmoothGrad().explain((x, None), pre, cls, num_samples=50, noise=0.15),
            "integrated_gradients-50": lambda: IntegratedGradients().explain((x, None), pre, cls, n_steps=50),
            "grad_cam": lambda: GradCAM().explain((x, None), pre, cls, layer_name=LAYER),
            "occlusion 32/16": lambda: [OcclusionSensitivity().explain(([im], None), pre, cls, patch_size=32)
                                        for im in x],
        }
        note = f"tf-explain takes one class per batch ({cls}); its occlusion has stride = patch (32/32)"
    elif name in ("lime", "shap"):
        # One trace for every batch size, made before the timing: retracing is not the package's cost.
        forward = tf.function(lambda x: tf.nn.softmax(model(x * 2 - 1, training=False)),
                              input_signature=[tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32)])
        forward(tf.constant(x[:1]))
        scored = {"rows": 0, "progress": None}  # the in-run floor's hook, see timed_with_floor

        def probabilities(batch):
            out = np.asarray(forward(tf.constant(np.asarray(batch, np.float32))))
            scored["rows"] += len(out)
            if scored["progress"] is not None:
                scored["progress"](scored["rows"])
            return out

        if name == "lime":
            from lime import lime_image

            def run():
                explainer = lime_image.LimeImageExplainer(random_state=0)
                for im, s, t in zip(images, seg, preds):
                    explainer.explain_instance(im.astype(np.float64), probabilities, labels=(int(t),), top_labels=None,
                                               hide_color=0, num_samples=samples, segmentation_fn=lambda _, s=s: s)
            heavy[f"lime-{samples}"] = lambda progress: (scored.update(rows=0, progress=progress), run())
            note = "lime_image with our superpixels (segmentation_fn), its default batch_size=10"
        else:
            import shap

            def run():
                for im, s, t in zip(images, seg, preds):
                    p = int(s.max()) + 1

                    def f(z, im=im, s=s, t=t):  # masks made per chunk: all 1000 at once would take 1.2 GB
                        return np.concatenate([probabilities(im[None] * z[i:i + BATCH, s][..., None])[:, t]
                                               for i in range(0, len(z), BATCH)])
                    shap.KernelExplainer(f, np.zeros((1, p))).shap_values(np.ones((1, p)), nsamples=samples,
                                                                          silent=True)
            heavy[f"kernel_shap-{samples}"] = lambda progress: (scored.update(rows=0, progress=progress), run())
            note = "shap.KernelExplainer over our superpixels, model called in chunks of 32"
    for fn in [*units.values(), *methods.values()]:
        fn()
    times = interleaved_medians({**units, **methods}, warmup=0, repeats=repeats)
    _, best_batch = best_per_image({k: times[k] for k in units})
    heavy_floors = {}  # seconds per image of a forward pass at the best batch size, timed inside the run
    for k, fn in heavy.items():
        times[k], seconds = timed_with_floor(fn, units[f"F{best_batch}"])
        heavy_floors[k] = seconds / best_batch
    print(json.dumps({"floors": {k: times[k] for k in units}, "methods": {k: times[k] for k in {**methods, **heavy}},
                      "heavy_floors": heavy_floors, "note": note, "tf": tf.__version__}))


# -- report ------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000, help="LIME / Kernel SHAP coalitions per image")
    parser.add_argument("--peers", nargs="*", default=None, help=f"peers to compare with ({', '.join(PEERS)}; "
                        "none named = all)")
    parser.add_argument("--perturbation", action="store_true", help="time only the perturbation methods (and "
                        "LIME, Kernel SHAP)")
    parser.add_argument("--peer-worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        return peer_worker(args.peer_worker, args.data, args.repeats, args.samples)

    print(f"attribution on MobileNetV2(weights=None), {N} images {SIZE}x{SIZE}, target = predicted class; "
          f"{machine_note()}")
    start = time.perf_counter()
    rows, units, images, seg, preds, p, chosen = ours(args.repeats, args.samples, args.perturbation)
    best, best_batch = best_per_image(units)
    print("floor units (ms): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in units.items())
          + f"; superpixels per image {p}")
    print("forward images/s by batch size: " + ", ".join(f"{k[1:]}: {int(k[1:]) / v:.2f}" for k, v in units.items()
                                                          if k[0] == "F")
          + f"; best {1 / best:.2f} at {best_batch}; the probe's measured chunk size: {chosen}")
    peers = {}
    if args.peers is not None:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data.npz")
            np.savez(data, images=images, segments=seg, preds=preds)
            for name in args.peers or list(PEERS):
                peers[name] = run_peer(name, data, args.repeats, args.samples)
    print(f"\n{'method':<26}{'ms':>10}{'floor ms':>10}{'x floor':>9}  target")
    for name, r in rows.items():
        if r["unit"] == "BEST":
            print(f"{name:<26}{r['seconds'] * 1e3:>10.1f}{r['floor'] * 1e3:>10.1f}{r['ratio']:>9.2f}  "
                  f"{verdict(r['ratio'], BEST_TARGET)} (<= {BEST_TARGET}x {r['passes']} images scored at the best "
                  "images/s)")
        else:
            print(f"{name:<26}{r['seconds'] * 1e3:>10.1f}{r['floor'] * 1e3:>10.1f}{r['ratio']:>9.2f}  "
                  f"{verdict(r['ratio'], TARGET)} (<= {TARGET}x, floor {r['unit']})")
    for name, res in peers.items():
        if isinstance(res, str):
            print(f"\n{name}: not run: {res}")
            continue
        print(f"\n{name} (TensorFlow {res['tf']}; {res['note']})")
        print(f"{'method':<26}{'ms':>10}{'x its floor':>12}{'x ours':>9}{'ours x floor':>14}")
        for method, seconds in res["methods"].items():
            r = rows.get(method)
            unit = r["unit"] if r else "F32"
            passes = r["passes"] if r else 1
            per_unit = best_per_image(res["floors"])[0] if unit == "BEST" else res["floors"][unit]
            their_floor = res.get("heavy_floors", {}).get(method, per_unit) * passes
            vs = f"{seconds / r['seconds']:>9.2f}" if r else f"{'':>9}"
            print(f"{method:<26}{seconds * 1e3:>10.1f}{seconds / their_floor:>12.2f}{vs}"
                  f"{(r['ratio'] if r else float('nan')):>14.2f}")
            if method.startswith(("lime", "kernel_shap")) and r:
                # The two runs are minutes apart and meet different load; each one's ratio to F32 passes timed
                # inside it does not, and both floors count the same passes, so the verdict compares ratios.
                print(f"  {method}: ours {r['ratio']:.2f}x vs {name} {seconds / their_floor:.2f}x the same floor, "
                      f"each timed inside its run: {verdict(r['ratio'], seconds / their_floor)} (faster than {name})"
                      f"\n  {'':<{len(method)}}  times: ours {r['seconds']:.1f} s, {name} {seconds:.1f} s")
    print(f"\ntotal {time.perf_counter() - start:.0f} s; at the end: {machine_note()}")


if __name__ == "__main__":
    main()
