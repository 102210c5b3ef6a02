"""Cost of a readout through the tuned and Jacobian lenses against the logit lens, same rows.

Usage: python -m benchmarks.lens_readout_cost [--model gemma-3-270m] [--texts 8] [--repeats 5]

One interpreter, torch on one thread, CPU-time clock, variants interleaved
(:func:`hublens.bench.timing.measure`). The rows are ``resid_post`` of every layer at every
position of ``--texts`` short multilingual sentences, captured once; each variant is one
``Lens.readout(h, targets, top_k=10, layer=range(n_layers))`` over all of them (the target ids
are the next tokens). The lenses: the logit lens (final norm), the tuned lens
(``TunedLens.for_model`` if its artifact exists, else a random per-layer affine ``Lens``
subclass of the same cost), and the Jacobian lens (``JacobianLensView.for_model`` if its
artifact exists, else random matrices of the same shape). Prints a markdown table with the
ratio to the logit lens (target <= 1.2x, issue 11).
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

TEXTS = [
    "The river runs past the old mill and into the valley below.",
    "Le vent souffle fort sur la plage ce matin.",
    "窗外的雨下了一整夜，早上才停。",
    "Die Kinder spielen im Garten hinter dem Haus.",
    "El tren sale de la estación a las ocho en punto.",
    "今日はとても暑いので、冷たいお茶を飲みました。",
    "She wrote the letter slowly, choosing every word with care.",
    "Il gatto dorme sul divano accanto alla finestra.",
]


class RandomAffineLens:
    """Stand-in for the tuned lens when its artifact is absent: ``h + h @ A_l.T + b_l``."""

    @staticmethod
    def build(model):
        from hublens.hooks import Lens, Unembed

        class _Affine(Lens):
            name = "tuned (random affine stand-in)"

            def __init__(self) -> None:
                super().__init__(
                    Unembed.from_model(model), final_norm=True, n_layers=model.n_layers
                )
                g = torch.Generator().manual_seed(0)
                d = model.d_model
                self.a = torch.randn(model.n_layers, d, d, generator=g) * 0.01
                self.b = torch.randn(model.n_layers, d, generator=g) * 0.01

            def transform(self, h, layer):
                if layer == model.n_layers - 1:
                    return h
                return h + h @ self.a[layer].T + self.b[layer]

        return _Affine()


def lenses(model):
    """(name, lens, source) for the logit, tuned and Jacobian lenses."""
    from hublens.hooks import LogitLens
    from hublens.lenses.artifact import LensArtifactError
    from hublens.lenses.jacobian import JacobianLensView

    out = [("logit", LogitLens.from_model(model, final_norm=True), "model")]
    try:
        from hublens.lenses.tuned import TunedLens

        tuned = TunedLens.for_model(model)
        out.append(("tuned", tuned, "artifact"))
    except (ImportError, LensArtifactError, AttributeError):
        out.append(("tuned", RandomAffineLens.build(model), "random affine stand-in"))
    try:
        out.append(("jacobian", JacobianLensView.for_model(model), "artifact"))
    except (ImportError, LensArtifactError):
        from transformer_lens.tools.analysis import JacobianLens

        g = torch.Generator().manual_seed(0)
        d, n = model.d_model, model.n_layers
        mats = {i: torch.eye(d) + 0.01 * torch.randn(d, d, generator=g) for i in range(n - 1)}
        tl = JacobianLens(mats, n_prompts=1, d_model=d, metadata={})
        view = JacobianLensView.from_tl(tl, model)
        out.append(("jacobian", view, "random matrices"))
    return out


def main() -> None:
    """Measure and print the table (and a JSON line)."""
    import hublens
    from hublens.bench.timing import measure, ratio
    from hublens.hooks import ActivationStore, AllPositions, capture_hooks

    parser = argparse.ArgumentParser(prog="python -m benchmarks.lens_readout_cost")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = hublens.load_model(args.model)
    hs, targets = [], []
    for text in TEXTS[: args.texts]:
        batch = model.tokenize([text])
        store = ActivationStore()
        hooks = capture_hooks(model, store, where=AllPositions())
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            model(batch.ids)
        h = torch.stack([store.tensor(name)[0] for name, _ in hooks])[:, :-1]
        hs.append(h.float())
        targets.append(batch.ids[0, 1:])
    h = torch.cat(hs, dim=1)  # (n_layers, rows, d_model)
    ids = torch.cat(targets)[None, :, None].expand(model.n_layers, -1, 1)
    layers = range(model.n_layers)
    built = lenses(model)

    def reader(lens):
        return lambda: lens.readout(h, ids, top_k=10, layer=layers)

    variants = {name: reader(lens) for name, lens, _ in built}
    timings = measure(variants, warmup=1, repeats=args.repeats, memory=False)
    rows = h.shape[0] * h.shape[1]
    print(
        f"\n{args.model}: {rows} rows ({h.shape[1]} positions x {h.shape[0]} layers), "
        f"top-10 + next-token log-prob, torch 1 thread, CPU-time medians of {args.repeats}\n"
    )
    print("| lens | source | median CPU s | ratio to logit lens |")
    print("|---|---|---:|---:|")
    result = {"model": args.model, "rows": rows, "machine": platform.platform()}
    for name, _, source in built:
        r = ratio(timings, name, "logit", clock="cpu")
        result[name] = {"cpu_s": timings[name].median_cpu_s, "ratio": r, "source": source}
        print(f"| {name} | {source} | {timings[name].median_cpu_s:.3f} | {r:.3f}x |")
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
