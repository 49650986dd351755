"""A human-readable model card (`<model>.card.md`) beside an exported learned policy."""

from __future__ import annotations

from pathlib import Path

from policy_server.model_io import ModelCard

UNITS = {"state": "joint positions: rad for the five arm joints, gripper opening 0 (closed)..1 (open)",
         "task": "bag of words of the instruction over the vocab (1 = word present)",
         "exec_offset_s": "seconds from the observation's capture to the chunk's first action"}


def card_md_path(model_path: str | Path) -> Path:
    path = Path(model_path)
    return path.with_name(path.name.split(".")[0] + ".card.md")


def render_model_card(card: ModelCard, model_name: str) -> str:
    spec, training = card.spec, dict(card.model.get("training") or {})
    has_offset = any(t.source == "exec_offset_s" for t in card.inputs)
    lines = [f"# {model_name}: {spec.name}", "",
             f"- output `{card.output}`: [batch, {spec.chunk_length}, {spec.action_dim}] absolute joint targets "
             f"({', '.join(spec.action_names)}), one per control tick at {spec.fps:g} fps "
             f"({spec.chunk_length / (spec.fps or 1):.2f} s per chunk)",
             f"- exec_offset_s is {'an input (VLASH-trained)' if has_offset else 'not an input'}",
             "- tasks it was trained on: " + "; ".join(f"\"{t}\"" for t in spec.extra.get("tasks", [])), "",
             "| input | source | shape (without batch) | units |", "| --- | --- | --- | --- |"]
    for t in card.inputs:
        unit = "RGB in [0, 1] (robot sends HWC uint8)" if t.source.startswith("image:") else UNITS.get(t.source, "")
        if t.vocab:
            unit += f"; vocab: {' '.join(t.vocab)}"
        lines.append(f"| `{t.name}` | {t.source} | {list(t.shape)} | {unit} |")
    if training:
        lines += ["", "## Training", ""] + [f"- {k}: {v}" for k, v in training.items()]
    return "\n".join(lines) + "\n"


def write_model_card_md(model_path: str | Path, card: ModelCard) -> Path:
    path = card_md_path(model_path)
    path.write_text(render_model_card(card, Path(model_path).name))
    return path
