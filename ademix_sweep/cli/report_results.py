"""Rich output of the result commands: ``status``, ``best`` and ``compare`` (rendered into a given
Console; ``best`` returns YAML text)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ademix_sweep.results.eta import Eta
    from ademix_sweep.results.read import OptimizerStatus

PAPER = "the paper's 110M model: AdEMAMix at 256k steps ≈ AdamW at 500k, about 1.95×"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def number(value: Any) -> str:
    """A hyperparameter or metric as every table and line shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_line(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={number(v)}" for k, v in sorted(params.items()))


def status(
    console: Console, name: str, where: str, stats: dict[str, OptimizerStatus], running: list[dict[str, Any]]
) -> None:
    """Per optimizer: trials by state, budget used, compute, divergence rate, best; then running trials."""
    table = Table(title=f"sweep {name} · {where}", title_justify="left")
    table.add_column("")
    for opt in stats:
        table.add_column(opt, justify="right")
    rows: dict[str, list[str]] = {}
    for s in stats.values():
        rate = f" ({s['divergence_rate']:.0%})" if s["divergence_rate"] is not None else ""
        for label, cell in (
            ("finished / budget", f"{s['finished']} / {s['budget'] or '?'}"),
            ("complete", str(s["complete"])),
            ("pruned", str(s["pruned"])),
            ("diverged", f"{s['diverged']}{rate}"),
            ("failed", str(s["failed"])),
            ("running", str(s["running"])),
            ("waiting (re-queued)", str(s["waiting"])),
            ("compute", duration(s["compute_s"])),
            ("best val_loss", "-" if s["best_value"] is None else f"{s['best_value']:.4f}"),
            ("best trial", "-" if s["best_number"] is None else f"#{s['best_number']}"),
        ):
            rows.setdefault(label, []).append(cell)
    for label, cells in rows.items():
        table.add_row(label, *cells)
    console.print(table)
    for opt, s in stats.items():
        if s["best_params"]:
            console.print(f"best {opt} (#{s['best_number']}): {params_line(s['best_params'])}", highlight=False)
    if running:
        runs = Table(title="running trials", title_justify="left")
        for column in ("optimizer", "trial", "worker", "device", "step", "val_loss", "elapsed"):
            runs.add_column(column, justify="left" if column in ("optimizer", "worker", "device") else "right")
        for r in running:
            step = "-" if r["step"] is None else f"{r['step']}/{r['steps']}" if r["steps"] else str(r["step"])
            runs.add_row(
                r["optimizer"],
                f"#{r['number']}",
                str(r["worker_host"] or "-"),
                str(r["device"] or "-"),
                step,
                "-" if r["value"] is None else f"{r['value']:.4f}",
                duration(r["elapsed_s"]),
            )
        console.print(runs)


def best_yaml(file: str | None, best: dict[str, dict[str, Any]], found: list[Any] = ()) -> str:
    """The best configuration of each optimizer, as YAML, with the ``train`` command that re-runs it
    and the fair-tuning checks that fired, as comments."""
    lines = [f"# check: {check['message']}" for check in found]
    for opt, b in best.items():
        args = " ".join(f"--param {shlex.quote(f'{k}={v!r}')}" for k, v in sorted(b["params"].items()))
        lines.append(f"# {opt}: trial #{b['trial']}, val_loss {b['value']:.6g}")
        lines.append(f"# ademix-sweep train {shlex.quote(file) if file else 'FILE'} --optimizer {opt} {args}".rstrip())
    body = yaml.safe_dump(best, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def compare(console: Console, name: str, result: dict[str, Any]) -> None:
    """The compare table, the paired difference and the step ratio, in plain words."""
    seeds = result["seeds"]
    table = Table(title=f"compare {name}: top configurations re-trained on {len(seeds)} seeds", title_justify="left")
    for column in ("optimizer", "trial", "runs", "final val_loss (mean ± std)", "diverged"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for opt, o in result["optimizers"].items():
        for c in o["configs"]:
            mark = " *" if c["source_trial"] == o["chosen_trial"] and len(o["configs"]) > 1 else ""
            mean = "-" if c["mean"] is None else f"{c['mean']:.4f}"
            std = "" if c["std"] is None else f" ± {c['std']:.4f}"
            table.add_row(
                opt,
                f"#{c['source_trial']}{mark}",
                f"{c['runs']}/{len(seeds)}",
                mean + std,
                str(c["diverged"]),
            )
    console.print(table)
    if any(len(o["configs"]) > 1 for o in result["optimizers"].values()):
        console.print("* the configuration with the lowest mean, compared below", highlight=False)
    for opt, o in result["optimizers"].items():
        for c in o["configs"]:
            console.print(f"{opt} #{c['source_trial']}: {params_line(c['params'])}", highlight=False)
    for line in verdict(result):
        console.print(line, highlight=False)
    if result.get("horizons"):
        horizons(console, result["horizons"])
    if any(len(o["configs"]) > 1 for o in result["optimizers"].values()):
        console.print(
            "The configuration compared was picked by its mean on these same seeds: its figures are optimistic.",
            highlight=False,
        )
    checks(console, result.get("checks", []))
    for check in result.get("same_seed", []):
        first, again = check["values"]
        if not check["agree"]:
            console.print(
                f"[bold yellow]warning[/]: {check['optimizer']} #{check['trial']} gave {number(first)} in the sweep "
                f"and {number(again)} re-run on the same seed ({check['seed']}): the training command does not "
                "honour its seed, so the seeds above are not common random numbers (docs/own-training.md)",
                highlight=False,
            )


def _paired_lines(p: dict[str, Any]) -> list[str]:
    """The paired difference in words: its t interval and tests, and a verdict only from 3 seeds."""
    diff, n = p["mean_diff"], p["n"]
    if p.get("deterministic"):
        return [
            f"AdEMAMix − AdamW: {diff:+.4f} on every one of {n} seeds. The task is deterministic (the seeds do not "
            "change its result): this is one difference, not a statistic, and no interval applies."
        ]
    wins = round(p["win_rate"] * n)
    head = f"AdEMAMix − AdamW, paired over {n} seed(s): {diff:+.4f}"
    if p["ci95"] is None:
        return [f"{head}; AdEMAMix lower on {wins} of {n}.", "One seed gives no interval: use --seeds 3 or more."]
    low, high = p["ci95"]
    tests = "" if p["t_p"] is None else f"; paired t-test p = {p['t_p']:.3g}"
    if p.get("wilcoxon_p") is not None:
        tests += f", Wilcoxon signed-rank p = {p['wilcoxon_p']:.3g}"
    lines = [f"{head}, 95% t interval [{low:+.4f}, {high:+.4f}]{tests}; AdEMAMix lower on {wins} of {n}."]
    if p.get("bootstrap_ci95"):
        b_low, b_high = p["bootstrap_ci95"]
        lines.append(f"(percentile bootstrap, 10,000 resamples: [{b_low:+.4f}, {b_high:+.4f}])")
    if not p["verdict"]:
        lines.append("Fewer than 3 paired seeds: no verdict (use --seeds 3 or more).")
    elif p["within_noise"]:
        lines.append("The difference is within noise: the 95% t interval includes 0.")
    else:
        better = "AdEMAMix" if diff < 0 else "AdamW"
        lines.append(f"{better} is better here: the 95% t interval excludes 0.")
    return lines


def horizons(console: Console, h: dict[str, Any]) -> None:
    """The verdict at each run length: means, the paired difference, the steps to match; the headline."""
    table = Table(title="at each run length (full runs, same seeds)", title_justify="left")
    for column in ("steps", "AdEMAMix", "AdamW", "AdEMAMix − AdamW [95% t]", "AdamW to match AdEMAMix"):
        table.add_column(column, justify="right")
    for row in h["per_length"]:
        cells = [f"{row['steps']:,}"]
        for opt in ("ademamix", "adamw"):
            o = row["optimizers"].get(opt) or {}
            spread = f" ± {o['std']:.4f}" if o.get("std") else ""
            cells.append("-" if o.get("mean") is None else f"{o['mean']:.4f}{spread}")
        p = row["paired"]
        if not p or p["ci95"] is None:
            cells.append("-")
        else:
            cells.append(f"{p['mean_diff']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}]")
        cells.append(_match_cell(row.get("adamw_to_match"), h["lengths"]))
        table.add_row(*cells)
    console.print(table)
    for line in horizon_lines(h):
        console.print(line, highlight=False)


def _match_cell(m: dict[str, Any] | None, lengths: list[int]) -> str:
    if not m:
        return "-"
    if m["kind"] == "beyond_longest":
        return f"more than {lengths[-1]:,} steps"
    if m["kind"] == "below_shortest":
        return f"less than {lengths[0]:,} steps"
    ci = m.get("ratio_ci95")
    shown = "" if not ci else f" [{ci[0]:.2f}, {'∞' if ci[1] is None else f'{ci[1]:.2f}'}]"
    return f"{m['steps']:,.0f} ({m['ratio']:.2f}×{shown})"


def horizon_lines(h: dict[str, Any]) -> list[str]:
    """The headline at the sweep's own length, and whether the gap grows with length."""
    lines = []
    base = next((row for row in h["per_length"] if row["steps"] == h["base"]), None)
    m = base.get("adamw_to_match") if base else None
    if m and m["kind"] == "interpolated":
        ci = m.get("ratio_ci95")
        shown = "" if not ci else f" [95% CI {ci[0]:.2f}, {'∞' if ci[1] is None else f'{ci[1]:.2f}'}]"
        lines.append(
            f"AdamW needs about {m['ratio']:.2f}× the steps{shown} to match AdEMAMix at {h['base']:,} steps "
            f"(separate full runs; {PAPER})."
        )
    elif m:
        lines.append(f"At {h['base']:,} steps AdamW needs {_match_cell(m, h['lengths'])} to match AdEMAMix.")
    slope = h.get("gap_slope")
    if slope:
        low, high = slope["ci95"]
        trend = "grows with length" if high < 0 else "shrinks with length" if low > 0 else "shows no clear trend"
        lines.append(
            f"The gap (AdEMAMix − AdamW) changes by {slope['slope_per_doubling']:+.4f} per doubling of the run "
            f"[95% t {low:+.4f}, {high:+.4f}]: AdEMAMix's advantage {trend}."
        )
    return lines


def eta_line(eta: Eta) -> str:
    """Time left, in words: an estimate, "estimating", or what is left of a sweep not running."""
    if not eta.remaining and not eta.running:
        return ""
    if eta.trial_s is None:
        return f"time left: estimating (after {eta.needed} finished trials; {eta.finished} so far)"
    if eta.seconds is None:
        work = duration(eta.remaining * eta.trial_s)
        return f"time left: not running; {eta.remaining} trial(s) to go, about {work} of trial time"
    return (
        f"time left: about {duration(eta.seconds)} ({eta.remaining} to start, {eta.running} running on "
        f"{eta.workers} worker(s); {duration(eta.trial_s)} a trial over {eta.finished} finished)"
    )


def checks(console: Console, found: list[Any]) -> None:
    """The fair-tuning checks that fired, one line each (docs/comparing.md explains them)."""
    for check in found:
        console.print(f"[bold yellow]check[/]: {check['message']}", highlight=False)


def verdict(result: dict[str, Any]) -> list[str]:
    """The plain statements under the compare table."""
    p, r = result["paired"], result["steps_ratio"]
    if p is None:
        return ["No paired comparison: it needs AdEMAMix and AdamW runs that finished on the same seeds."]
    lines = _paired_lines(p)
    if r is not None and not result.get("horizons"):  # several lengths measure it from separate runs instead
        lines.append("Within one schedule (a quick estimate; --horizons measures it with separate full runs):")
        if r["kind"] == "estimate":
            lines.append(
                f"AdEMAMix reaches AdamW's final loss ({r['target']:.4f}) at about step {r['step']:,.0f} "
                f"of {r['total']:,}: AdamW needs about {r['ratio']:.2f}× the steps ({PAPER})."
            )
        elif r["kind"] == "at_least":
            lines.append(
                f"AdEMAMix is below AdamW's final loss ({r['target']:.4f}) at its first evaluation "
                f"(step {r['step']:,.0f}): AdamW needs at least {r['ratio']:.2f}× the steps ({PAPER})."
            )
        else:
            lines.append(
                f"AdEMAMix does not reach AdamW's final loss ({r['target']:.4f}) within {r['total']:,} steps: "
                "no step saving can be estimated at this scale."
            )
    return lines
