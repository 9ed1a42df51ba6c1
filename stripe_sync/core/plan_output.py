"""A plan, for people (counts and a readable diff of a sample) and for automation (JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stripe_sync.core.planner import Action, count_changes

Plan = Mapping[str, Sequence[Action]]  # batch key -> the actions of its rows


def plan_json(plan: Plan) -> dict:
    """Counts, and every product's action with its batch, Stripe id, fields and diff."""
    actions = [action for batch_actions in plan.values() for action in batch_actions]
    return {
        "batches": len(plan),
        "products": len(actions),
        "counts": count_changes(actions),
        "actions": [
            {
                "batch": batch,
                "cms_id": action.cms_id,
                "stripe_product_id": (
                    action.desired.stripe_id if action.desired else action.state.stripe_product_id
                ),
                "change": action.change,
                "fields": list(action.fields),
                "diff": action.diff(),
            }
            for batch, batch_actions in plan.items()
            for action in batch_actions
        ],
    }


def plan_markdown(plan: Plan, sample: int = 20) -> str:
    """The counts, then the diff of up to `sample` rows that would change or are invalid."""
    actions = [action for batch_actions in plan.values() for action in batch_actions]
    counts = count_changes(actions)
    lines = [
        f"# Plan: {len(actions)} products in {len(plan)} batches",
        "",
        "| " + " | ".join(counts) + " |",
        "|" + " ---: |" * len(counts),
        "| " + " | ".join(str(count) for count in counts.values()) + " |",
    ]
    changing = [action for action in actions if action.change != "unchanged"]
    if changing:
        lines += ["", f"## Changes (first {min(sample, len(changing))} of {len(changing)})", ""]
        for action in changing[:sample]:
            lines.append(f"- **{action.cms_id}**: {action.change}")
            lines += [f"  - {line}" for line in action.diff()]
    return "\n".join(lines) + "\n"
