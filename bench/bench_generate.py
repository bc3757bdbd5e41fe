"""Generation speed of a character LM with and without the key/value cache (the same tokens both ways).

Contenders, each generating the same ``--tokens`` characters from the same prompt, temperature and seed:
  cache      dlcore.generate(..., use_cache=True): one new token per forward while the context has room
  no cache   dlcore.generate(..., use_cache=False): the whole context re-read at every step
After a warm-up they run interleaved (ABBA ...) so drift in machine load hits both alike; the table shows the
median tokens/s (and the fastest call) and the median per-round speed-up, for one torch thread and for torch's
default thread count. Both must produce the same text (checked first).

    python bench/bench_generate.py                 # newest LM run on pydoc-lm, else an untrained lm-tiny
    python bench/bench_generate.py --run RUN_ID --tokens 200 --repeats 10
"""
from __future__ import annotations

import argparse
import time

from _common import RESULTS, interleaved, machine, median, save, table  # noqa: I001  (bench/ is the script's folder)

import torch

import dlcore
from dlcore.generation import generate


def _model(run_id: str | None):
    """(model, dataset info, where the weights came from): a given run, the newest LM run, or untrained lm-tiny
    (speed does not depend on the values of the weights)."""
    if run_id is None:
        for r in dlcore.list_runs():  # newest first
            if r.status == "completed" and r.data.name == "pydoc-lm" and getattr(r.model, "kind", "") == "decoder":
                run_id = r.id
                break
    if run_id is not None:
        run, model = dlcore.load_run_model(run_id)
        return model, dlcore.dataset_info(run.data), f"run {run_id}"
    info = dlcore.dataset_info(dlcore.DataSpec(name="pydoc-lm", window=128))
    torch.manual_seed(0)
    model = dlcore.build_model(dlcore.for_data(dlcore.get_preset("lm-tiny"), info)).eval()
    return model, info, "untrained lm-tiny (no completed pydoc-lm run found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run id of a language model (default: the newest on pydoc-lm)")
    ap.add_argument("--tokens", type=int, default=200, help="characters generated per call (default 200)")
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per contender (default 10)")
    ap.add_argument("--threads", type=int, help="torch threads (default: both 1 and torch's default)")
    args = ap.parse_args()

    model, info, source = _model(args.run)
    kw = dict(max_new_tokens=args.tokens, temperature=0.8, seed=0, info=info)
    cached = generate(model, args.prompt, use_cache=True, **kw)
    assert cached.text == generate(model, args.prompt, use_cache=False, **kw).text, "the cache changed the text"
    fns = {"cache": lambda: _seconds(lambda: generate(model, args.prompt, use_cache=True, **kw)),
           "no cache": lambda: _seconds(lambda: generate(model, args.prompt, use_cache=False, **kw))}

    rows, result = [], {"model": source, "context": model.config.max_len, "tokens": args.tokens,
                        "prompt": args.prompt, "repeats": args.repeats, "runs": []}
    default_threads = torch.get_num_threads()
    for threads in (sorted({1, default_threads}) if args.threads is None else [args.threads]):
        torch.set_num_threads(threads)
        for f in fns.values():  # warm-up
            f()
        times = interleaved(fns, args.repeats)
        tps = {k: args.tokens / median(v) for k, v in times.items()}
        best = {k: args.tokens / min(v) for k, v in times.items()}
        speedup = median([n / c for c, n in zip(times["cache"], times["no cache"])])
        result["runs"].append({"threads": threads, "cache_tokens_per_s": tps["cache"],
                               "no_cache_tokens_per_s": tps["no cache"], "cache_best_tokens_per_s": best["cache"],
                               "no_cache_best_tokens_per_s": best["no cache"], "speedup": speedup})
        rows.append([threads, tps["cache"], tps["no cache"], best["cache"], best["no cache"], speedup])
    torch.set_num_threads(default_threads)
    print(f"{source}, context {model.config.max_len}; {args.tokens} tokens from {args.prompt!r}; load average "
          f"{machine()['load_avg_1m']:.1f} on {machine()['cpus']} CPUs; medians of {args.repeats} interleaved calls")
    print(table(["threads", "cache tok/s", "no cache tok/s", "cache best", "no cache best", "speed-up"], rows))
    latest = save("generate", result)
    print(f"wrote {latest}")


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
