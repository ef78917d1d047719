"""How precise a table's numbers are: per row, images, clips, AIC and its standard error two ways.

Reads the per-image score files a table is built from (``results/scores/<method>/<dataset>_images.csv``;
``results/scores_edit`` for Table 2) and prints, per dataset and method: the number of images and of evaluation
clips, AIC, the binomial standard error sqrt(p (1 - p) / n) of n independent images, and the cluster-bootstrap
standard error that resamples clips with their seeds together (what the tables' intervals use; larger where a
clip's seeds agree with each other). Also SAC, AIS and IIS with their bootstrap standard errors (SAC where the score
file has it: a dataset with fewer than 2 training classes has none).

    python benchmarks/table_precision.py [--scores results/scores] [--samples 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sonic.data.tables import read_csv
from sonic.metrics.bootstrap import resampled_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scores", default="results/scores", help="folder of <method>/<dataset>_images.csv")
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    files = sorted(Path(args.scores).glob("*/*_images.csv"), key=lambda p: (p.name, p.parent.name))
    if not files:
        raise SystemExit(f"{args.scores}: no <method>/<dataset>_images.csv files")
    print(f"{'dataset':<14} {'method':<40} {'images':>6} {'clips':>5} {'AIC':>6} {'SE bin':>7} {'SE boot':>7} "
          f"{'SAC':>6} {'SE':>6} {'AIS':>6} {'SE':>6} {'IIS':>6} {'SE':>6}")
    worst = 0.0
    for f in files:
        table = read_csv(f).astype({"clip_id": str})
        clips = table["clip_id"].tolist()
        n, p = len(table), float(table["AIC"].mean())
        has_sac = "SAC" in table and table["SAC"].notna().all()
        se = {m: float(resampled_means(table[m].to_numpy(float), clips, args.samples).std())
              for m in ("AIC", "AIS", "IIS") + (("SAC",) if has_sac else ())}
        sac = f"{table['SAC'].mean():>6.3f} {se['SAC']:>6.3f}" if has_sac else f"{'-':>6} {'-':>6}"
        worst = max(worst, se["AIC"])
        print(f"{f.name[:-len('_images.csv')]:<14} {f.parent.name:<40} {n:>6} {len(set(clips)):>5} {p:>6.3f} "
              f"{np.sqrt(p * (1 - p) / n):>7.3f} {se['AIC']:>7.3f} {sac} {table['AIS'].mean():>6.3f} {se['AIS']:>6.3f} "
              f"{table['IIS'].mean():>6.3f} {se['IIS']:>6.3f}")
    print(f"largest AIC bootstrap standard error: {worst:.3f}")


if __name__ == "__main__":
    main()
