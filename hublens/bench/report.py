"""Markdown tables of a results document."""

from __future__ import annotations

from typing import Any


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _mb(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def model_markdown(section: dict[str, Any]) -> list[str]:
    """Tables of one model's results."""
    out = [f"### {section['name']}", "", f"`{section['model']}`", ""]
    if "forward" in section:
        fw = section["forward"]
        out += [
            f"Forward pass, {fw['shape'][0]} x {fw['shape'][1]} tokens (ratios: median over "
            f"repeats of per-round ratios of {section.get('ratio_clock', 'wall')} time; peak: "
            "resident-set growth during one call):",
            "",
        ]
        rows = [
            [
                name,
                _ms(v["median_s"]),
                _ms(v["median_cpu_s"]),
                _x(v.get("ratio_vs_transformers")),
                _x(v.get("ratio_vs_bridge")),
                _mb(v.get("peak_mb")),
            ]
            for name, v in fw["variants"].items()
        ]
        out += _table(
            ["variant", "wall ms", "CPU ms", "x transformers", "x bridge", "peak MB"], rows
        )
        agreement = ", ".join(f"{k}: {v:.1e}" for k, v in fw["agreement"].items())
        out += ["", f"Max abs difference: {agreement}."]
        if not fw.get("nnsight"):
            out += ["nnsight is not installed (optional extra `bench`): its row is skipped."]
        out += [""]
    if "lens" in section:
        ls = section["lens"]
        out += [
            f"Logit-lens readout of {ls['rows'][0]} layers x {ls['rows'][1]} rows, "
            f"{ls['targets']} targets, final norm applied:",
            "",
        ]
        rows = [
            [
                name,
                _ms(v["median_s"]),
                _ms(v["median_cpu_s"]),
                _x(v.get("ratio_vs_hublens")),
                _x(v.get("ratio_vs_matmul")),
            ]
            for name, v in ls["variants"].items()
        ]
        out += _table(["readout", "wall ms", "CPU ms", "x hublens", "x matmul"], rows)
        agreement = ", ".join(f"{k}: {v:.1e}" for k, v in ls["agreement"].items())
        out += ["", f"Max abs difference: {agreement}.", ""]
    if "scan" in section:
        sc = section["scan"]
        out += [
            f"Scan throughput: {sc['items']} items x {len(sc['types'])} types "
            f"({'/'.join(sc['types'])}, {sc['texts']} texts), batch {sc['batch_size']}, "
            "similarity + lens at the last position, every layer:",
            "",
        ]
        rows = [
            [
                name,
                _ms(v["median_s"]),
                _ms(v["median_cpu_s"]),
                f"{v['items_per_s']:.2f}",
                _x(v.get("ratio_vs_reference")),
                _x(v.get("ratio_vs_nnsight")),
                _mb(v.get("peak_mb")),
            ]
            for name, v in sc["variants"].items()
        ]
        per_s = f"items/s ({section.get('ratio_clock', 'wall')})"
        out += _table(
            ["implementation", "wall ms", "CPU ms", per_s, "x plain", "x nnsight", "peak MB"], rows
        )
        agreement = ", ".join(f"{k}: {v:.1e}" for k, v in sc["agreement_max_abs"].items())
        out += ["", f"Same numbers (max abs difference of the scan's): {agreement}.", ""]
    if "memory" in section:
        mem = section["memory"]
        out += [
            f"Scan memory ({mem['analyses']}, batch {mem['batch_size']}), one fresh process "
            "per size:",
            "",
        ]
        rows = [
            [
                str(m["n_items"]),
                str(m["n_texts"]),
                f"{m['seconds']:.1f}",
                _mb(m["scan_peak_mb"]),
                _mb(m["process_peak_mb"]),
            ]
            for m in mem["sizes"]
        ]
        out += _table(
            ["items", "texts", "scan s", "scan peak above start, MB", "process peak, MB"], rows
        )
        out += [""]
    if "steering" in section:
        st = section["steering"]
        out += [f"Greedy generation of {st['new_tokens']} tokens (KV cache):", ""]
        rows = [
            [name, _ms(v["median_s"]), _ms(v["median_cpu_s"]), _x(v.get("ratio_vs_plain"))]
            for name, v in st["variants"].items()
        ]
        out += _table(["generation", "wall ms", "CPU ms", "x unsteered"], rows) + [""]
    out += ["Targets:", ""]
    rows = []
    for t in section["targets"]:
        value = "not measured" if t["value"] is None else f"{t['value']:.3f}{t['unit']}"
        met = {True: "met", False: "**missed**", None: "-"}[t["met"]]
        rows.append([t["name"], value, f"{t['op']} {t['bound']}{t['unit']}", met])
    out += _table(["target", "measured", "bound", ""], rows) + [""]
    return out


def to_markdown(results: dict[str, Any]) -> str:
    """The whole results document as markdown."""
    m = results["machine"]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Machine: {m['platform']}, {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}; "
        f"Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, "
        f"transformer-lens {m['transformer_lens']}, nnsight {m['nnsight'] or 'not installed'}; "
        f"torch threads {results['settings']['threads']}. Load average "
        f"{m['load_average_at_start']:.1f} at start, {m.get('load_average_at_end', 0):.1f} at "
        f"end. Run {results['started_utc']}, {results['seconds'] / 60:.1f} min.",
        "",
    ]
    for update in results.get("updates", []):
        lines += [
            f"Re-measured `{', '.join(update['sections'])}` with `{update['command']}` "
            f"({update['started_utc']}, load average "
            f"{update['machine']['load_average_at_start']:.1f}).",
            "",
        ]
    for section in results["models"]:
        lines += model_markdown(section)
    return "\n".join(lines)
