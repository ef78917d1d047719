"""``sonic train audiotoken`` and ``sonic train gluegen``: the trained competitors of Table 1 on one dataset."""

from __future__ import annotations

import argparse
import json

from sonic import config
from sonic.training.commands import add_stage


def run_competitor(args: argparse.Namespace) -> int:
    from sonic import competitors

    summary = competitors.train(config.from_args(args), args.stage, args.manifest, args.clap, args.clap_index,
                                args.out, budget=args.budget)
    print(json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    add_stage(sub, "audiotoken", "AudioToken (Yariv et al. 2023): an audio token in a text prompt", run_competitor)
    add_stage(sub, "gluegen", "GlueGen (Qin et al. 2023): audio translated into the text encoder's space",
              run_competitor)
