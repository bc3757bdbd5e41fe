"""Explanation speed on one 28×28 MNIST digit with seed-cnn, and what the registry adds over calling the libraries.

Contenders, each the same work on the same model, input, target and seed:
  IG direct      captum IntegratedGradients(...).attribute(x, n_steps=50, gausslegendre, convergence delta)
  IG registry    dlcore.explain.explain(subject, "integrated_gradients", n_steps=50)
  SHAP direct    shap.GradientExplainer(target-output module, 50 background digits).shap_values(x, nsamples=200)
  SHAP registry  dlcore.explain.explain(subject, "shap_gradient")   (defaults: nsamples 200, background 50)
After a warm-up they run interleaved (ABBA ...) so drift in machine load hits both alike; the table shows the
median wall time per call (and the fastest call) and the median per-round ratio registry / direct, for one
torch thread and for torch's default thread count. Targets: IG ≤ 100 ms, SHAP ≤ 1.5 s,
registry overhead ≤ 1.1×.

    python bench/bench_explain.py                 # newest completed seed-cnn run on mnist5k, else an untrained one
    python bench/bench_explain.py --run RUN_ID --repeats 30 --threads 2
"""
from __future__ import annotations

import argparse
import time

from _common import RESULTS, interleaved, machine, median, save, table  # noqa: I001  (bench/ is the script's folder)

import numpy as np
import torch

import dlcore
import dlcore.explain as ex
from dlcore.explain.methods import TargetOutput
from dlcore.inspect import example

TARGETS = {"integrated_gradients": 0.100, "shap_gradient": 1.5}


def _model(run_id: str | None):
    """(model, dataset, where the weights came from): a given run, the newest seed-cnn run, or untrained weights
    (timing does not depend on the values of the weights)."""
    preset = dlcore.get_preset("seed-cnn")
    if run_id is None:
        for r in dlcore.list_runs():  # newest first
            m = r.model
            if (r.status == "completed" and r.data.name == "mnist5k" and r.family == "cnn"
                    and (m.channels, m.pools, m.hidden) == (preset.channels, preset.pools, preset.hidden)):
                run_id = r.id
                break
    ds = dlcore.load_dataset(dlcore.DataSpec(name="mnist5k"))
    if run_id is not None:
        _, model = dlcore.load_run_model(run_id)
        return model, ds, f"run {run_id}"
    torch.manual_seed(0)
    model = dlcore.build_model(dlcore.for_data(preset, ds.info)).eval()
    return model, ds, "untrained seed-cnn (no completed seed-cnn run found)"


def _timed(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run id of a trained seed-cnn (default: the newest on mnist5k)")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per contender (default 20)")
    ap.add_argument("--threads", type=int, help="torch threads (default: both 1 and torch's default; on a busy "
                                                "machine extra intra-op threads mostly wait for each other)")
    args = ap.parse_args()

    model, ds, source = _model(args.run)
    x, _ = example(ds, 0)
    s = ex.subject_for(model, ds, x)
    inp, t = s.inputs, s.target
    forward = lambda a: model(a)[0]  # noqa: E731  (what a user would hand captum directly)

    def ig_direct():
        from captum.attr import IntegratedGradients

        return IntegratedGradients(forward).attribute(inp, baselines=torch.zeros_like(inp), target=t, n_steps=50,
                                                      method="gausslegendre", return_convergence_delta=True)

    bg = s.background_inputs(50, seed=0)

    def shap_direct():
        import shap

        return shap.GradientExplainer(TargetOutput(s), bg).shap_values(inp, nsamples=200, rseed=0)

    contenders = {
        "integrated_gradients": {"direct": ig_direct,
                                 "registry": lambda: ex.explain(s, "integrated_gradients", n_steps=50)},
        "shap_gradient": {"direct": shap_direct, "registry": lambda: ex.explain(s, "shap_gradient")},
    }
    # the same numbers both ways (so the timing compares equal work)
    np.testing.assert_allclose(ex.explain(s, "integrated_gradients").attributions, ig_direct()[0][0].detach().numpy(),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ex.explain(s, "shap_gradient").attributions, np.asarray(shap_direct())[0, ..., 0],
                               rtol=1e-4, atol=1e-7)

    rows, result = [], {"model": source, "input": "mnist5k test example 0 (1×28×28)", "target": t,
                        "repeats": args.repeats, "runs": []}
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads}) if args.threads is None else [args.threads]
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for method, fns in contenders.items():
            for f in fns.values():  # warm-up
                f()
            times = interleaved({k: (lambda f=f: _timed(f)) for k, f in fns.items()}, args.repeats)
            wall = {k: median([w for w, _ in v]) for k, v in times.items()}
            best = {k: min(w for w, _ in v) for k, v in times.items()}
            cpu = {k: median([c for _, c in v]) for k, v in times.items()}
            ratio = median([r[0] / d[0] for r, d in zip(times["registry"], times["direct"])])
            target = TARGETS[method]
            ok = wall["registry"] <= target and ratio <= 1.1
            result["runs"].append({"method": method, "threads": threads, "direct_s": wall["direct"],
                                   "registry_s": wall["registry"], "direct_min_s": best["direct"],
                                   "registry_min_s": best["registry"], "direct_cpu_s": cpu["direct"],
                                   "registry_cpu_s": cpu["registry"], "ratio_registry_over_direct": ratio,
                                   "target_s": target, "meets_target": wall["registry"] <= target,
                                   "meets_ratio": ratio <= 1.1})
            rows.append([method, threads, wall["direct"] * 1000, wall["registry"] * 1000, best["registry"] * 1000,
                         ratio, target * 1000, "yes" if ok else "NO"])
    torch.set_num_threads(default_threads)
    print(f"{source}; load average {machine()['load_avg_1m']:.1f} on {machine()['cpus']} CPUs; medians of "
          f"{args.repeats} interleaved calls (min = fastest call)")
    print(table(["method", "threads", "direct ms", "registry ms", "registry min ms", "ratio", "target ms", "ok"],
                rows))
    latest = save("explain", result)
    (RESULTS / "explain.json").write_text(latest.read_text())
    print(f"wrote {RESULTS / 'explain.json'}")


if __name__ == "__main__":
    main()
