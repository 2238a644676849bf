"""Which questions each process trains on at each step, with their media decoded and within budget.

Questions follow a seeded order per epoch; step s, micro-batch m and rank r take a disjoint slice,
so the same step always sees the same questions (resume is exact) and ranks never share one.
A record whose media fails, or whose prompt cannot fit the token budget, is skipped and reported
once; nothing is substituted and no prompt is ever truncated.
"""

from __future__ import annotations

import logging
import random

from videor1.data.loading import LoadResult, require_records
from videor1.data.records import Record
from videor1.media.loader import MediaConfig, SkipLog, load_media_or_skip
from videor1.media.shuffle import sample_seed
from videor1.models.inputs import Prompt, Question, encode
from videor1.prompts import build_question, load_template
from videor1.train.config import RLConfig

log = logging.getLogger(__name__)


class QuestionSource:
    def __init__(self, loaded: LoadResult, config: RLConfig, processor, skips: SkipLog, rank: int,
                 world: int):
        require_records(loaded, "training records")
        self.records, self.media_root = loaded.records, loaded.media_root
        self.config, self.processor, self.skips = config, processor, skips
        self.rank, self.world = rank, world
        self.template = load_template(config.data.template)
        self.cache = config.media.cache()
        self.over_budget: set[str] = set()
        self._orders: dict[int, list[int]] = {}

    @property
    def per_step(self) -> int:
        run = self.config.run
        return self.world * run.grad_accum * run.prompts_per_device

    def epoch(self, step: int) -> int:
        return step * self.per_step // len(self.records)

    def record_at(self, k: int) -> Record:
        epoch, position = divmod(k, len(self.records))
        if epoch not in self._orders:
            order = list(range(len(self.records)))
            if self.config.data.shuffle:
                random.Random(sample_seed(self.config.run.seed, "epoch", epoch)).shuffle(order)
            self._orders = {epoch: order}  # one epoch at a time is enough
        return self.records[self._orders[epoch][position]]

    def questions(self, step: int, micro: int) -> list[Question]:
        """This rank's questions for (step, micro). If every one of them was skipped, the rank takes
        its own slots of the following steps until one works: a batch is never empty (an empty one
        would stall the other ranks), and no rank ever takes another's question."""
        ppd = self.config.run.prompts_per_device
        first = step * self.per_step + (micro * self.world + self.rank) * ppd
        prepared = [q for q in (self.prepare(self.record_at(k)) for k in range(first,
                                                                               first + ppd)) if q is not None]
        for ahead in range(1, len(self.records) + 1):
            if prepared:
                return prepared
            slot = first + ahead * self.per_step
            candidates = (self.prepare(self.record_at(k)) for k in range(slot, slot + ppd))
            prepared = [q for q in candidates if q is not None]
        raise RuntimeError(f"no record of {len(self.records)} could be prepared: check the data with "
                           "`videor1 data validate` (media) and data.max_prompt_tokens")

    def prepare(self, record: Record) -> Question | None:
        """The record as a question within the token budget: fewer frames first, then fewer pixels."""
        media_config, text = self.config.media, build_question(record, self.template)
        while True:
            media = load_media_or_skip(record, self.media_root, media_config, self.skips, self.cache)
            if media is None:
                return None
            prompt = Prompt(text, video=media) if record.data_type == "video" else Prompt(text, image=media)
            tokens = encode(self.processor, [prompt])["input_ids"].shape[1]
            if tokens <= self.config.data.max_prompt_tokens:
                return Question(record, prompt)
            smaller = _smaller(media_config, record.data_type,
                               len(media.frames) if record.data_type == "video" else 0)
            if smaller is None:
                if record.label not in self.over_budget:
                    self.over_budget.add(record.label)
                    log.warning("skipping %s: its prompt needs %d tokens even at the fewest frames and "
                                "pixels, over data.max_prompt_tokens=%d", record.label, tokens,
                                self.config.data.max_prompt_tokens)
                return None
            media_config = smaller


def _smaller(config: MediaConfig, data_type: str, frames: int) -> MediaConfig | None:
    """The next smaller media setting: half the frames (down to 4), then half the pixels (down to the
    minimum)."""
    if data_type == "video" and frames > 4:
        return config.model_copy(update={"nframes": max(4, frames // 4 * 2)})
    if data_type == "video" and config.video_max_pixels > config.video_min_pixels:
        return config.model_copy(update={"video_max_pixels": max(config.video_min_pixels,
                                                                 config.video_max_pixels // 2)})
    if data_type == "image" and config.image_max_pixels > config.image_min_pixels:
        return config.model_copy(update={"image_max_pixels": max(config.image_min_pixels,
                                                                 config.image_max_pixels // 2)})
    return None
