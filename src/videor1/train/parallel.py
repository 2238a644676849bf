"""How the processes of a training run share the model, and what keeps sharded processes in lockstep.

Replicated parameters (DDP, accelerate's default): each process holds the whole model; gradients are
averaged after the backward. Sharded parameters (`run.sharding=fsdp`, or DeepSpeed ZeRO-3 through
accelerate): each process holds a slice, and every forward gathers the slices with a collective. Then
every process must make the same sequence of forward / `generate` / vision-tower calls whatever its
data, or one waits forever for a gather that the others never start. The measures, by construction:

- one vision-tower call per batch for its images and videos together (`models.vision.encode_vision`);
- `generate(synced_gpus=True)`: a process whose responses have ended keeps joining the others' steps;
- the shuffled-group generations of a micro-batch: as many calls on every process (`agree_max`), the
  processes with fewer make padding calls whose results are discarded (the update is unchanged);
- the per-response credit's teacher-forced forwards: on every process or none, padded the same way;
- SFT's held-out evaluation: as many batches on every process, padded the same way.

FSDP2 (`torch.distributed.fsdp.fully_shard`) is applied here, by the project's own code, on every
device: per decoder layer, per vision block, the vision tower, then the whole model. The CPU tests
(2 processes over gloo) thus run the code that a GPU run (NCCL) runs; accelerate only launches the
processes. DeepSpeed cannot run on CPU: under ZeRO-3 accelerate shards the model, and the same
lockstep measures apply (`lockstep`). docs/training.md has the whole picture and the tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from videor1.models.loading import vision_module

log = logging.getLogger(__name__)

Sharding = Literal["auto", "none", "fsdp"]


class Parallel:
    """The run's process group as the trainers use it: sharding, collectives and checkpoint state.

    sharding: "fsdp" shards with `fully_shard`; "none" replicates (DDP); "auto" shards when the run was
    launched with an FSDP accelerate config (`accelerate launch --config_file configs/accelerate/fsdp.yaml`).
    """

    def __init__(self, accelerator, sharding: Sharding = "auto"):
        from accelerate.utils import DistributedType

        self.accelerator = accelerator
        launched_fsdp = (accelerator.distributed_type == DistributedType.FSDP
                         or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true"))
        self.fsdp = sharding == "fsdp" or (sharding == "auto" and launched_fsdp)
        plugin = accelerator.state.deepspeed_plugin
        self.zero3 = plugin is not None and int(plugin.zero_stage) == 3
        if self.fsdp and plugin is not None:
            raise ValueError("run.sharding=fsdp under a DeepSpeed launch: DeepSpeed shards already; "
                             "use run.sharding=none (or auto) with DeepSpeed")

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def lockstep(self) -> bool:
        """Whether the processes must make the same sequence of collective-bearing calls."""
        return (self.fsdp or self.zero3) and self.world > 1

    # ------------------------------------------------------------ collectives

    def sum(self, values: list[float]) -> list[float]:
        """Each value added up over the processes (float64)."""
        local = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        if self.world == 1:
            return local.tolist()
        return self.accelerator.reduce(local, reduction="sum").tolist()

    def agree_max(self, count: int) -> int:
        """The largest `count` of any process (how many calls all of them make)."""
        if self.world == 1:
            return count
        import torch.distributed as dist

        value = torch.tensor([count], dtype=torch.int64, device=self.accelerator.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item())

    def gather(self, values: Tensor) -> Tensor:
        """The 1-D `values` of every process concatenated in rank order (lengths may differ); with one
        process, `values` itself. Rank order is the global batch's order (`train.data.QuestionSource`)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        device = self.accelerator.device
        local = values.detach().reshape(-1).to(device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(self.world)]
        dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64, device=device))
        longest = max(int(s) for s in sizes)
        padded = torch.zeros(longest, dtype=local.dtype, device=device)
        padded[:local.numel()] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:int(size)] for part, size in zip(parts, sizes)]).to(values.device)

    # ------------------------------------------------------------ sharding

    def shard(self, model: nn.Module) -> nn.Module:
        """`model` sharded in place with FSDP2 when `fsdp` (else unchanged): each decoder layer, each
        vision block, the vision tower and the whole model are units; mixed precision follows
        accelerate's `mixed_precision` (bf16 compute, fp32 gradient reduction)."""
        if not self.fsdp:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if hasattr(model, "get_base_model"):
            raise ValueError("run.sharding=fsdp with model.lora is not supported: the adapters are small, "
                             "train them replicated (run.sharding=none)")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(self.accelerator.mixed_precision))
        precision = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None)
        mesh = init_device_mesh(self.accelerator.device.type, (self.world,))
        visual = vision_module(model)
        for unit in [*visual.blocks, visual, *model.model.language_model.layers, model]:
            fully_shard(unit, mesh=mesh, mp_policy=precision)
        # FSDP2 takes the first module to run forward as its root. The rollout runs the vision tower
        # alone (`encode_vision`), before any forward of the whole model: name the root now.
        model._get_fsdp_state()._lazy_init()
        # transformers' generate turns synced_gpus on for a module so marked (its own FSDP2 integration
        # sets the same attribute): a process whose responses ended keeps joining the others' gathers
        model._is_fsdp_managed_module = True
        return model

    def prepare(self, policy: nn.Module, optimizer, scheduler):
        """accelerate's `prepare`, except for a model this module sharded: neither it nor its optimizer
        (over sharded parameters) is wrapped; the scheduler is saved with accelerate's state."""
        if not self.fsdp:
            return self.accelerator.prepare(policy, optimizer, scheduler)
        self.accelerator.register_for_checkpointing(scheduler)
        return policy, optimizer, scheduler

    def no_sync(self, policy: nn.Module):
        """The context of a micro-batch whose gradients need no synchronisation yet. FSDP2 reduces
        each micro-batch's gradients to their shards at once (accumulating full gradients would
        cost the memory that sharding saves)."""
        return contextlib.nullcontext() if self.fsdp else self.accelerator.no_sync(policy)

    def clip_grad_norm(self, policy: nn.Module, max_norm: float) -> float:
        """Clip the gradients' global norm to `max_norm`; returns the norm before clipping."""
        if not self.fsdp:
            return float(self.accelerator.clip_grad_norm_(policy.parameters(), max_norm))
        grads = [p for p in policy.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(grads, max_norm)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    # ------------------------------------------------------------ checkpoints

    def full_state_dict(self, policy: nn.Module) -> dict:
        """The whole model's weights on the main process (a collective: every process calls it)."""
        if not self.fsdp:
            return self.accelerator.get_state_dict(policy)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        # tied weights (lm_head = embed_tokens) come back as separate copies: make them one tensor
        # again, as in the model, so that save_pretrained writes it once
        first: dict[int, str] = {}
        for name, parameter in policy.named_parameters(remove_duplicate=False):
            original = first.setdefault(id(parameter), name)
            if original != name and original in state and name in state:
                state[name] = state[original]
        return state

    def save_sharded(self, directory: Path, policy: nn.Module, optimizer) -> None:
        """The model's and the optimizer's shards, every process writing its own
        (torch.distributed.checkpoint: `directory` must be on a file system all machines share)."""
        if not self.fsdp:
            return
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optimizer_state = get_state_dict(policy, optimizer)
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory / SHARDED))

    def load_sharded(self, directory: Path, policy: nn.Module, optimizer) -> None:
        if not self.fsdp:
            return
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        if not (directory / SHARDED).is_dir():
            raise ValueError(f"{directory}: no {SHARDED}/ (a checkpoint of a run without run.sharding=fsdp); "
                             "resume it with the sharding it was written with")
        model_state, optimizer_state = get_state_dict(policy, optimizer)
        state = {"model": model_state, "optimizer": optimizer_state}
        dcp.load(state, checkpoint_id=str(directory / SHARDED))
        set_state_dict(policy, optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"])


SHARDED = "sharded"  # the checkpoint's folder of model and optimizer shards (run.sharding=fsdp)
