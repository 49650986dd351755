"""`vla-async train`: train a small visuomotor policy on a dataset recorded by `vla-async record`.

Writes into --out: policy.pt + policy.spec.json (serve with --backend.name=torch, or export with
`vla-async export-onnx --path OUT/policy.pt --out policy.onnx`), checkpoint.pt, training_curve.png,
train_log.json. Run it under `nice`; --threads sets torch's CPU threads (default 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _latency(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    values = (float(lo), float(hi or lo))
    if not 0 <= values[0] <= values[1] <= 2.0:
        raise argparse.ArgumentTypeError(f"latency range must be 'lo,hi' seconds with 0 <= lo <= hi <= 2, got {text!r}")
    return values


def _ticks(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition(",")
    try:
        values = (int(lo), int(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"tick range must be 'lo,hi' integers, got {text!r}") from None
    if not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"tick range must have 0 <= lo <= hi, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-async train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="LeRobotDataset v3 folder from `vla-async record`; several comma-separated "
                   "(e.g. demonstrations + DAgger recordings) are trained on as one")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--head", choices=["flow", "regression"], default="flow")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--chunk-length", type=int, default=50, help="H, actions per chunk")
    p.add_argument("--flow-steps", type=int, default=10, help="Euler steps at inference (flow head)")
    p.add_argument("--flow-target", choices=["data", "velocity"], default="data",
                   help="flow head: the MLP predicts the clean chunk (data) or the velocity (pi0)")
    p.add_argument("--flow-samples", type=int, default=1,
                   help="flow head: (noise, τ) draws per sample and step (the image encoders run once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--labels", choices=["expert", "recorded"], default="expert",
                   help="expert: relabel chunks with the stateless expert; recorded: the next H recorded actions")
    p.add_argument("--cameras", default=None, help="comma-separated subset of the dataset's cameras")
    p.add_argument("--max-episodes", type=int, default=None)
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds of training")
    p.add_argument("--cpu-budget", type=float, default=None,
                   help="stop after this many CPU seconds of training (the training process's own CPU time: the same "
                        "compute however loaded a shared machine is; the learning-rate schedule follows it too)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--vlash", type=_latency, default=None, metavar="LO,HI",
                   help="VLASH training: condition on the state Δ later (Δ in [LO, HI] s), expert-relabelled")
    p.add_argument("--vlash-copies", type=int, default=2, help="VLASH: offsets drawn per frame")
    p.add_argument("--vlash-state", choices=["measured", "commanded", "stale_plan"], default="measured",
                   help="VLASH: condition on the measured state Δ later, on the recorded command before the chunk's "
                        "first tick (what the `commanded` rollforward sends: the vlash preset), or on that tick's "
                        "row of the expert's plan made Δ before the frame (commands from an older chunk, as at "
                        "deployment)")
    p.add_argument("--plain-copy", action="store_true",
                   help="VLASH: also keep each frame's plain Δ = 0 sample (for clients without rollforward)")
    p.add_argument("--exec-offset-input", action="store_true", help="VLASH: exec_offset_s is a model input")
    p.add_argument("--prefix-ticks", type=_ticks, default=None, metavar="LO,HI",
                   help="prefix conditioning (training-time RTC, flow head): the first d rows of each target chunk "
                        "are given clean, d drawn from LO..HI ticks (0 for --prefix-free-fraction of samples)")
    p.add_argument("--prefix-free-fraction", type=float, default=0.25)
    p.add_argument("--prefix-source", choices=["plan", "recorded"], default="plan",
                   help="prefix conditioning: `plan` gives the label's own first d rows clean; `recorded` gives the "
                        "d commands recorded after the frame (from an older plan, as a robot commits to at "
                        "deployment) and labels the rest with the expert's plan from the last of them")
    p.add_argument("--init-from", default=None, metavar="POLICY_PT",
                   help="warm start from a trained policy.pt of the same architecture (e.g. a plain flow policy "
                        "before prefix conditioning: the new mask inputs start at zero weight)")
    p.add_argument("--streaming", action="store_true",
                   help="flow head: horizon-aware schedule (FASTER): near-term rows finish denoising first, so a "
                        "server can stream them as a partial chunk before the rest is done")
    p.add_argument("--augment-shift", type=int, default=0, metavar="PIXELS",
                   help="random-shift image augmentation (DrQ): pad by PIXELS, crop back at a random offset")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999); it is validated and saved")
    p.add_argument("--aux-weight", type=float, default=0.0,
                   help="auxiliary loss on privileged scene targets from the demonstrations (the named object's "
                        "pose and the named goal's position; training only, never a policy input); the model "
                        "card records it")
    p.add_argument("--colour-keypoints", type=int, default=0, metavar="N",
                   help="per camera, N full-resolution colour keypoints (1x1 convs + spatial softmax over every "
                        "pixel): small objects, e.g. pick_place's ~3 px cubes, get their own coordinates")
    p.add_argument("--colour-temperature", type=float, default=0.1,
                   help="initial (learned) temperature of the colour keypoints' spatial softmax")
    p.add_argument("--colour-pool", choices=["avg", "max"], default="avg",
                   help="colour keypoints at half resolution: average the image first, or detect at full "
                        "resolution and keep each 2x2 block's strongest response")
    p.add_argument("--colour-init", choices=["random", "opponent"], default="random",
                   help="colour keypoint detectors start random or as colour-opponent channels (learned either way)")
    p.add_argument("--no-camera-conv", action="store_true",
                   help="colour keypoints only: no conv trunk per camera (needs --colour-keypoints)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--label-workers", type=int, default=1,
                   help="processes for relabelling with the expert before training (data preparation; ~2 ms a frame)")
    p.add_argument("--max-normalised", type=float, default=0.0, metavar="K",
                   help="drop samples whose state or label offset lies beyond K standard deviations of the "
                   "normalisation (e.g. DAgger rollouts that ran into joint limits); 0 keeps all")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from policy_server.learning.train import TrainConfig, train

    try:
        cfg = TrainConfig(
            dataset=args.dataset, out=args.out, head=args.head, steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, chunk_length=args.chunk_length, flow_steps=args.flow_steps, flow_target=args.flow_target, flow_samples=args.flow_samples,
            seed=args.seed, threads=args.threads, labels=args.labels, cameras=args.cameras.split(",") if args.cameras else None, max_episodes=args.max_episodes,
            time_budget_s=args.time_budget, cpu_budget_s=args.cpu_budget, checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
            vlash_latency_s=args.vlash, vlash_copies=args.vlash_copies,
            vlash_state=args.vlash_state, plain_copy=args.plain_copy, exec_offset_input=args.exec_offset_input,
            prefix_ticks=args.prefix_ticks, prefix_free_fraction=args.prefix_free_fraction, init_from=args.init_from,
            prefix_source=args.prefix_source,
            streaming=args.streaming,
            augment_shift=args.augment_shift, ema_decay=args.ema, aux_weight=args.aux_weight,
            colour_keypoints=args.colour_keypoints, colour_temperature=args.colour_temperature,
            colour_pool=args.colour_pool, colour_init=args.colour_init, camera_conv=not args.no_camera_conv,
            label_workers=args.label_workers,
            max_normalised=args.max_normalised,
            progress=not args.no_progress,
        )
        train(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"vla-async train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
