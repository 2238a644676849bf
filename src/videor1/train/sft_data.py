"""SFT examples: chain-of-thought records as batches whose labels are the assistant's tokens only.

Records, media and the prompt budget go through the RL stage's `QuestionSource`: the same seeded
order per epoch, the same disjoint slices per step / micro-batch / rank (so resume is exact), the
same rules for media that fail (skipped and reported once, never replaced) and for prompts over
budget (fewer frames, then fewer pixels, then skipped; never truncated). A target over
`data.max_target_tokens` is skipped too: a truncated target would teach the model to stop before
its answer.

Labels (the reference code's SFT labelled prompt and video-pad tokens, docs/reference.md): each prompt is
encoded alone by the one chat builder (`models.inputs.encode`, which also expands every image /
video pad into its vision tokens), each target (`process` + `solution` + end of turn) is tokenized
alone and appended to its prompt's tokens, and exactly the appended positions are labelled. No
system, user, vision start / end or pad token can be labelled, whatever the padding, and the model
learns the tokens it will itself produce after the generation prompt.
"""

from __future__ import annotations

import logging
import random
from functools import partial

import torch

from videor1.data.loading import LoadResult, load_records, require_records
from videor1.data.records import CotRecord, Record
from videor1.media.shuffle import sample_seed
from videor1.models.inputs import Question
from videor1.train.data import QuestionSource

log = logging.getLogger(__name__)

IGNORE = -100  # label of a position that is not trained on (torch's cross-entropy ignore_index)


def target_ids(processor, targets: list[str]) -> list[list[int]]:
    """The token ids of each assistant turn: the target, then the end-of-turn token."""
    tokenizer = processor.tokenizer
    return tokenizer([t + tokenizer.eos_token for t in targets], add_special_tokens=False)["input_ids"]


def with_targets(processor, prompts, targets: list[str]):
    """The prompts followed by their targets, left-padded, with labels on the target tokens only.

    prompts: `encode(processor, prompts)` output, left-padded (B, P); left unchanged.
    Returns a new BatchFeature with input_ids, attention_mask, mm_token_type_ids and labels (B, L),
    L = max over rows of prompt + target length (labels IGNORE outside the targets), and the
    prompts' media tensors (pixel values, grids, second_per_grid_ts) as they were.
    """
    appended = target_ids(processor, targets)
    keep = prompts["attention_mask"].bool()
    length = max(int(keep[i].sum()) + len(ids) for i, ids in enumerate(appended))
    shape, device = (len(appended), length), prompts["input_ids"].device
    input_ids = torch.full(shape, processor.tokenizer.pad_token_id, dtype=prompts["input_ids"].dtype,
                           device=device)
    attention = torch.zeros(shape, dtype=prompts["attention_mask"].dtype, device=device)
    types = torch.zeros(shape, dtype=prompts["mm_token_type_ids"].dtype, device=device)
    labels = torch.full(shape, IGNORE, dtype=torch.long, device=device)
    for i, ids in enumerate(appended):
        prompt = prompts["input_ids"][i][keep[i]]
        target = torch.tensor(ids, dtype=input_ids.dtype, device=device)
        start, boundary = length - len(prompt) - len(target), length - len(target)
        input_ids[i, start:boundary], input_ids[i, boundary:] = prompt, target
        attention[i, start:] = 1
        types[i, start:boundary] = prompts["mm_token_type_ids"][i][keep[i]]  # targets are text (0)
        labels[i, boundary:] = target
    return type(prompts)({**prompts, "input_ids": input_ids, "attention_mask": attention,
                          "mm_token_type_ids": types, "labels": labels})


class ExampleSource(QuestionSource):
    """`QuestionSource` over CoT records that also skips, once and with a warning, every record whose
    target exceeds `data.max_target_tokens`. `questions(step, micro)` gives this process's examples."""

    def prepare(self, record: Record) -> Question | None:
        tokens = len(target_ids(self.processor, [record.target])[0])
        if tokens > self.config.data.max_target_tokens:
            if record.label not in self.over_budget:
                self.over_budget.add(record.label)
                log.warning("skipping %s: its target needs %d tokens, over data.max_target_tokens=%d",
                            record.label, tokens, self.config.data.max_target_tokens)
            return None
        return super().prepare(record)


def load_splits(data, seed: int) -> tuple[LoadResult, LoadResult | None]:
    """The training records and the held-out ones (None without `eval_file` or `eval_fraction`).

    data: an SFT data config. With `eval_fraction`, a seeded choice of that share of `train_file`
    is held out (at least one record, file order kept) and never trained on.
    """
    kind = CotRecord if data.target == "cot" else Record
    load = partial(load_records, kind=kind, media_root=data.media_root,
                   allow_outside_media_root=data.allow_outside_media_root)
    train = load(data.train_file)
    if data.eval_file is not None:
        return train, require_records(load(data.eval_file), "held-out records")
    if data.eval_fraction == 0:
        return train, None
    n = len(train.records)
    held = max(1, round(n * data.eval_fraction))
    if held >= n:
        raise ValueError(f"{data.train_file}: data.eval_fraction={data.eval_fraction} holds out all {n} "
                         f"records; lower it or give data.eval_file")
    order = list(range(n))
    random.Random(sample_seed(seed, "eval_split")).shuffle(order)
    chosen = set(order[:held])
    pick = [[r for i, r in enumerate(train.records) if (i in chosen) == side] for side in (False, True)]
    split = [LoadResult(records, train.bad, f"{train.source} ({name})", train.media_root)
             for records, name in zip(pick, ("train split", "held-out split"))]
    return split[0], split[1]


def held_out_examples(source: ExampleSource, samples: int, rank: int, world: int) -> list[Question]:
    """This process's share of the first `samples` held-out records, prepared once (media decoded,
    within budget); a record that fails or is over budget is left out, as in training."""
    records = source.records[:samples][rank::world]
    return [q for q in map(source.prepare, records) if q is not None]

