"""The SF3D speed run's verdicts and tables, from its report (a partial one too: a section that
did not run shows as missing, its check as not measured)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import table

__all__ = ["TARGETS", "checks", "memory_gb", "render"]

# The targets: limit and how the figure compares with it.
TARGETS = {"throughput": 2.5, "memory": 1.5, "first_job": 1.1, "warm_e2e": 1.03}
STAGES = ("queue_wait", "intake", "preprocessing", "inference", "exporting", "total",
          "sf3d.background", "sf3d.resize_foreground", "sf3d.run_image", "sf3d.export_glb")


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every configuration that ran a batch: the single one first."""
    single = report.get("hub3d")
    rows = [single] if single and single.get("batch") else []
    return rows + [r for r in report.get("throughput", []) if r.get("batch")]


def _best(report: dict[str, Any]) -> dict[str, Any] | None:
    rows = _rows(report)
    return max(rows, key=lambda r: r["batch"]["jobs_per_s"]) if rows else None


def memory_gb(row: dict[str, Any]) -> tuple[float | None, str]:
    """A configuration's memory and what it is: nvidia-smi's (or RSS) peak; where nvidia-smi
    listed no process (some containers), torch's peak reserved summed over the workers."""
    sampled = row.get("memory") or {}
    if sampled.get("peak_gb"):
        return sampled["peak_gb"], sampled["source"]
    torch_cuda = (row.get("batch") or {}).get("torch_cuda") or {}
    if torch_cuda.get("peak_reserved_gib"):
        return torch_cuda["peak_reserved_gib"], "torch peak reserved (GiB), nvidia-smi listed none"
    return None, "none"


def _check(name: str, what: str, figure: float | None, detail: str) -> dict[str, Any]:
    limit = TARGETS[name]
    met = None if figure is None else (figure >= limit if name == "throughput"
                                       else figure <= limit)
    verdict = {True: "met", False: "NOT MET", None: "not measured"}[met]
    text = (f"[{verdict}] {what}: " + (f"{figure:.2f} × (limit {limit}); {detail}"
                                        if figure is not None else detail))
    return {"target": name, "limit": limit, "figure": figure, "met": met, "text": text}


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    direct, hub, best = report.get("direct"), report.get("hub3d"), _best(report)
    out = []
    if direct and best:
        seq = 1 / direct["warm_p50_s"]
        jps = best["batch"]["jobs_per_s"]
        out.append(_check("throughput", "throughput ≥ 2.5 × upstream's sequential run_image",
                          jps / seq, f"{jps:.2f} jobs/s ({best['config']}) vs {seq:.2f}"))
    else:
        out.append(_check("throughput", "throughput ≥ 2.5 × sequential", None,
                          "needs the direct run and a batch"))
    (one, source), (mem, _) = ((memory_gb(hub), memory_gb(best)) if hub and best
                               else ((None, ""), (None, "")))
    if best and one and mem:
        out.append(_check("memory", "memory of the fastest configuration ≤ 1.5 × one worker's",
                          mem / one, f"{mem:.2f} GB ({best['config']}) vs {one:.2f} GB "
                          f"({source})"))
    else:
        out.append(_check("memory", "memory ≤ 1.5 × one worker's", None, "no memory figures"))
    if hub:
        first, warm = hub["first"]["e2e_s"], hub["warm_p50_s"]
        out.append(_check("first_job", "hub3d's first job ≤ 1.1 × a warm one", first / warm,
                          f"{first:.3f} s vs warm p50 {warm:.3f} s (warm-up "
                          f"{hub['workers'][0].get('warmup_s')} s at load)"))
    else:
        out.append(_check("first_job", "first job ≤ 1.1 × warm", None, "hub3d did not run"))
    if hub and direct:
        h, d = hub["warm_p50_s"], direct["warm_p50_s"]
        out.append(_check("warm_e2e", "hub3d warm end to end ≤ 1.03 × upstream direct", h / d,
                          f"{h:.3f} s vs {d:.3f} s (p50 of {len(hub['warm'])})"))
    else:
        out.append(_check("warm_e2e", "warm e2e ≤ 1.03 × direct", None, "needs both paths"))
    return out


def _r(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _single_table(direct: dict[str, Any] | None, hub: dict[str, Any] | None) -> str:
    rows = []
    if direct:
        rows.append({"path": "upstream run_image (direct)", "first s": _r(direct["first"]
                     ["total_s"], 3), "warm p50 s": _r(direct["warm_p50_s"], 3),
                     "first/warm": _r(direct["first"]["total_s"] / direct["warm_p50_s"]),
                     "load s": _r(direct["load_s"], 1), "vertices": direct["first"]["vertices"]})
    if hub:
        worker = hub["workers"][0]
        row = {"path": "hub3d /generate/sync", "first s": _r(hub["first"]["e2e_s"], 3),
               "warm p50 s": _r(hub["warm_p50_s"], 3),
               "first/warm": _r(hub["first"]["e2e_s"] / hub["warm_p50_s"]),
               "load s": _r(worker.get("load_s"), 1), "warm-up s": _r(worker.get("warmup_s")),
               "ready s": _r(hub["ready_s"], 1), "vertices": hub["first"]["glb_vertices"]}
        if direct:
            row["first ÷ direct"] = _r(hub["first"]["e2e_s"] / direct["first"]["total_s"])
            row["warm ÷ direct"] = _r(hub["warm_p50_s"] / direct["warm_p50_s"], 3)
        rows.append(row)
    cols = ["path", "first s", "warm p50 s", "first/warm", "first ÷ direct", "warm ÷ direct",
            "load s", "warm-up s", "ready s", "vertices"]
    return table(rows, cols) if rows else "(no single-job figures)"


def _throughput_table(report: dict[str, Any]) -> str:
    direct, hub = report.get("direct"), report.get("hub3d")
    seq = 1 / direct["warm_p50_s"] if direct else None
    one = memory_gb(hub)[0] if hub else None
    rows: list[dict[str, Any]] = []
    if seq:
        rows.append({"configuration": "upstream sequential (1 ÷ warm p50)", "jobs/s": _r(seq)})
    for r in _rows(report):
        b, mem = r["batch"], memory_gb(r)[0]
        torch_cuda = b.get("torch_cuda") or {}
        rows.append({
            "configuration": r["config"], "jobs/s": _r(b["jobs_per_s"]),
            "× seq": _r(b["jobs_per_s"] / seq) if seq else "—",
            "mem GB": _r(mem), "× 1 worker": _r(mem / one) if one and mem else "—",
            "torch GiB": _r(torch_cuda.get("peak_reserved_gib")),
            "p50 job s": _r(b["stages"].get("total"), 3),
            "p50 run_image s": _r(b["stages"].get("sf3d.run_image"), 3),
            "p50 queue s": _r(b["stages"].get("queue_wait"), 3),
            "GLBs": f"{b['completed']}/{b['jobs']} ok, ≥{min(b['vertices'])} vertices",
        })
    cols = ["configuration", "jobs/s", "× seq", "mem GB", "× 1 worker", "torch GiB",
            "p50 job s", "p50 run_image s", "p50 queue s", "GLBs"]
    return table(rows, cols) if rows else "(no batch figures)"


def _stages_table(report: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = []
    direct, hub = report.get("direct"), report.get("hub3d")
    if direct:
        warm = direct["warm"]
        med = {k: sorted(j[f"{k}_s"] for j in warm)[len(warm) // 2]
               for k in ("resize_foreground", "run_image", "export_glb", "total")}
        rows.append({"ms (p50)": "direct, warm", "total": round(med["total"] * 1000),
                     **{f"sf3d.{k}": round(v * 1000) for k, v in med.items() if k != "total"}})
    if hub:
        rows.append({"ms (p50)": "hub3d 1x1, warm single",
                     **{k: round(v * 1000) for k, v in hub["warm_stages"].items()}})
    for r in _rows(report):
        rows.append({"ms (p50)": f"batch, {r['config']}",
                     **{k: round(v * 1000) for k, v in r["batch"]["stages"].items()}})
    return table(rows, ["ms (p50)", *STAGES]) if rows else "(no stage figures)"


def render(report: dict[str, Any]) -> str:
    args, m = report["args"], report["machine"]
    size = "reduced (the tests' small config)" if args["reduced"] else "full-size"
    lines = [f"SF3D, {size} architecture, random weights + sphere density, texture "
             f"{args['texture']}; {m['device']}: {m.get('gpu') or 'no GPU'}; {m['cpus']} cores, "
             f"Python {m['python']}; batch {args['batch']}, {args['reps']} warm reps"]
    if args["cpu"]:
        lines.append("CPU REHEARSAL: CPU figures, not the GPU's; memory is worker RSS")
    hub = report.get("hub3d") or {}
    source = memory_gb(hub)[1] if hub else "—"
    lines += ["", "Single jobs (s)", _single_table(report.get("direct"), report.get("hub3d")),
              "", f"Throughput, {args['batch']} jobs submitted at once (memory: {source}, "
              "peak during the batch; torch GiB: the workers' own peak reserved)",
              _throughput_table(report), "", "Stages", _stages_table(report), "",
              "Targets"]
    lines += [c["text"] for c in report.get("checks", [])]
    lines += ["", "Phases (s)"]
    lines += [f"{v:8.1f}  {k}" for k, v in report.get("phases", {}).items()]
    lines += [f"skipped: {s}" for s in report.get("skipped", [])]
    lines += [f"ERROR: {e}" for e in report.get("errors", [])]
    return "\n".join(lines)
