"""DoppelGANger's networks as plain nn.Modules (no I/O, no training logic).

Shapes use n = flows in the batch, A = attribute width, L = max flow length (records per flow sample),
S = `sample_len` (records emitted per LSTM step), T = L / S, D = feature width per record (without the
generation flag). The generator emits each record as D features plus a 2-way generation-flag softmax
("continues", "ends"), so the per-record width the critic sees is D + 2.

Output layouts come from the encoders' `Span` lists: one activation per span, applied in one pass per
(activation, width) group so that 64 IP-bit heads cost one softmax call, not 64.
"""
from __future__ import annotations

import functools
import os

import torch
from torch import nn

from ..config import ModelConfig
from ..encoders.base import Span, total_dim
from ..errors import UserError

#: precisions the attribute MLP may run in at generation time (training is always float32)
GENERATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@functools.cache
def _native_bfloat16() -> bool:
    """True where oneDNN runs bfloat16 matmuls in hardware (AVX512-BF16 / AMX); elsewhere they are emulated
    and slower than float32."""
    probe = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def generate_dtype() -> torch.dtype:
    """The attribute MLP's matmul precision while generating, from TRACESYNTH_GENERATE_DTYPE
    (float32 | bfloat16 | auto; default auto = bfloat16 where the CPU has native bfloat16 matmuls, else
    float32). On caida-10k bfloat16 changed the mean NetShare JSD by < 0.002 and gave +36-46% packets/s
    end to end (1M packets, 1 thread; docs/pipeline.md). float32 keeps `generate` equal to `sample` up
    to float32 rounding."""
    raw = os.environ.get("TRACESYNTH_GENERATE_DTYPE", "").strip().lower() or "auto"
    if raw == "auto":
        return torch.bfloat16 if _native_bfloat16() else torch.float32
    if raw not in GENERATE_DTYPES:
        raise UserError(f"TRACESYNTH_GENERATE_DTYPE={raw!r} is not a generation precision; "
                        f"set it to one of auto, {', '.join(GENERATE_DTYPES)} or unset it")
    return GENERATE_DTYPES[raw]

#: the generation flag head: index 0 = the flow continues after this record, 1 = this record is its last
FLAG_SPAN = Span(2, "softmax")


class SpanActivation(nn.Module):
    """Apply each span's activation to its columns of the last axis; `discretize` one-hots softmax spans.

    Consecutive spans of the same kind and width form one segment (64 IP-bit heads are one segment of
    shape [..., 64, 2]), activated with one call on a reshaped slice: no per-span loop, no gathers.
    """

    def __init__(self, spans: list[Span]):
        super().__init__()
        self.spans = list(spans)
        self.dim = total_dim(self.spans)
        #: (start, stop, activation, width) per run of equal spans
        self.segments: list[tuple[int, int, str, int]] = []
        start = 0
        for span in self.spans:
            last = self.segments[-1] if self.segments else None
            if last and last[2] == span.activation and last[3] == span.dim and last[1] == start:
                self.segments[-1] = (last[0], start + span.dim, last[2], last[3])
            else:
                self.segments.append((start, start + span.dim, span.activation, span.dim))
            start += span.dim

    def _activate(self, x: torch.Tensor, softmax_fn, plain_fns) -> torch.Tensor:
        parts = []
        for start, stop, activation, width in self.segments:
            piece = x[..., start:stop]
            if activation == "softmax":
                grouped = piece.reshape(*piece.shape[:-1], (stop - start) // width, width)  # [..., k, width]
                parts.append(softmax_fn(grouped).flatten(-2))
            else:
                parts.append(plain_fns[activation](piece))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """raw [..., dim] logits -> [..., dim] with softmax / sigmoid / tanh per span."""
        return self._activate(raw, _softmax, {"sigmoid": torch.sigmoid, "tanh": torch.tanh})

    def discretize(self, values: torch.Tensor) -> torch.Tensor:
        """values [..., dim] -> one-hot argmax on softmax spans, other spans unchanged."""
        def one_hot(z: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(z.argmax(dim=-1), z.shape[-1]).to(z.dtype)

        return self._activate(values, one_hot, {"sigmoid": lambda z: z, "tanh": lambda z: z})


def _softmax(z: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; width 2 as a sigmoid of the difference (much faster on CPU)."""
    if z.shape[-1] == 2:
        p = torch.sigmoid(z[..., :1] - z[..., 1:])
        return torch.cat([p, 1.0 - p], dim=-1)
    return torch.softmax(z, dim=-1)


def _mlp(in_dim: int, num_layers: int, num_units: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, num_units), nn.ReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm1d(num_units))
        width = num_units
    return layers


class AttributeGenerator(nn.Module):
    """MLP (Linear-ReLU-BatchNorm) x layers, then one head per attribute span: noise [n, z_a] -> [n, A]."""

    def __init__(self, attribute_spans: list[Span], cfg: ModelConfig):
        super().__init__()
        self.noise_dim = cfg.attribute_noise_dim
        self.body = nn.Sequential(*_mlp(self.noise_dim, cfg.attribute_num_layers, cfg.attribute_num_units, True))
        self.head = nn.Linear(cfg.attribute_num_units, total_dim(attribute_spans))
        self.activation = SpanActivation(attribute_spans)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.activation(self.head(self.body(noise)))  # [n, A]

    @torch.inference_mode()
    def generate(self, noise: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """`forward` in eval mode, faster: each BatchNorm (running statistics, an affine map per unit)
        is folded into the Linear after it, and each Linear + ReLU is one addmm + an in-place ReLU.
        Equal to `forward` up to float rounding; this MLP is the largest cost of generation.
        `dtype` (default `generate_dtype()`): the matmuls' precision; the folded weights are cast per
        call (folding stays float32) and the logits return to float32 before softmax, so sampling
        and the output are float32 either way. In training mode (batch statistics) it is `forward`."""
        if self.training:
            return self.forward(noise)
        dtype = generate_dtype() if dtype is None else dtype
        h = noise.to(dtype)
        scale = shift = None
        for layer in [*self.body, self.head]:
            if isinstance(layer, nn.Linear):
                weight, bias = layer.weight, layer.bias
                if scale is not None:             # W (s * x + t) + b = (W * s) x + (W t + b)
                    weight, bias = weight * scale, torch.addmv(bias, weight, shift)
                    scale = shift = None
                h = torch.addmm(bias.to(dtype), h, weight.t().to(dtype))
            elif isinstance(layer, nn.ReLU):
                h = h.relu_()
            elif isinstance(layer, nn.BatchNorm1d):
                scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
                shift = layer.bias - layer.running_mean * scale
            else:
                h = layer(h)
        return self.activation(h.float())  # [n, A]


class FeatureGenerator(nn.Module):
    """LSTM over T = L / S steps; input per step = [discretised attributes, noise]; S records per step.

    No autoregressive feedback (as in DoppelGANger), so the whole sequence runs through one fused
    nn.LSTM call. After the first record whose flag says "ends", every later record (features and flag)
    is zeroed, matching the zero padding of real flows.
    """

    def __init__(self, attribute_spans: list[Span], feature_spans: list[Span], max_len: int, cfg: ModelConfig):
        super().__init__()
        if max_len % cfg.sample_len:
            raise ValueError(f"sample_len {cfg.sample_len} must divide max_len {max_len}")
        self.max_len = max_len
        self.sample_len = cfg.sample_len
        self.steps = max_len // cfg.sample_len
        self.noise_dim = cfg.feature_noise_dim
        self.feature_dim = total_dim(feature_spans)
        self.attribute_activation = SpanActivation(attribute_spans)  # for discretize only
        self.lstm = nn.LSTM(total_dim(attribute_spans) + self.noise_dim, cfg.feature_num_units,
                            num_layers=cfg.feature_num_layers, batch_first=True)
        self.head = nn.Linear(cfg.feature_num_units, cfg.sample_len * (self.feature_dim + 2))
        self.activation = SpanActivation(list(feature_spans) + [FLAG_SPAN])

    def forward(self, attributes: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """attributes [n, A], noise [n, T, z_f] -> (records [n, L, D + 2] masked, gen_flags [n, L] 0/1)."""
        n = attributes.shape[0]
        condition = self.attribute_activation.discretize(attributes.detach())  # [n, A]
        steps_in = torch.cat([condition.unsqueeze(1).expand(n, self.steps, -1), noise], dim=-1)  # [n, T, A+z_f]
        hidden, _ = self.lstm(steps_in)  # [n, T, units]
        raw = self.head(hidden).reshape(n, self.max_len, self.feature_dim + 2)  # [n, L, D+2]
        records = self.activation(raw)
        gen_flags = flags_to_mask(records[..., self.feature_dim:])  # [n, L]
        return records * gen_flags.unsqueeze(-1), gen_flags

    @torch.inference_mode()
    def generate(self, attributes: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same result as `forward` (same inputs), but the LSTM stops early: flows are stepped one LSTM
        step at a time and each flow leaves the batch after the step in which it ended.

        Real flows are short (caida: ~3 records of up to 100), so most of the T steps that `forward`
        computes for every flow are masked away; here only flows still running are computed. The LSTM
        has no output feedback, so stepping with the carried (h, c) state is the fused call unrolled.
        """
        n, S, D = attributes.shape[0], self.sample_len, self.feature_dim
        condition = self.attribute_activation.discretize(attributes)  # [n, A]
        records = torch.zeros(n, self.steps, S, D + 2, dtype=attributes.dtype, device=attributes.device)
        gen_flags = torch.zeros(n, self.steps, S, dtype=attributes.dtype, device=attributes.device)
        active = torch.arange(n, device=attributes.device)          # rows still running, ascending
        state = None
        for t in range(self.steps):
            if len(active) == 0:
                break
            step_in = torch.cat([condition[active], noise[active, t]], dim=-1).unsqueeze(1)  # [m, 1, A+z_f]
            hidden, state = self.lstm(step_in, state)
            step = self.activation(self.head(hidden[:, 0]).reshape(len(active), S, D + 2))  # [m, S, D+2]
            continues = (step[..., D] >= step[..., D + 1]).to(step.dtype)                    # [m, S]
            # inside the step: record j is kept while every earlier record continued (the first record
            # of a flow (t = 0, j = 0) is always kept; entering a later step means the last one continued)
            kept = torch.cat([torch.ones_like(continues[:, :1]), torch.cumprod(continues[:, :-1], dim=1)], dim=1)
            records[active, t] = step * kept.unsqueeze(-1)
            gen_flags[active, t] = kept
            still = (kept[:, -1] * continues[:, -1]) > 0                                     # [m]
            active = active[still]
            state = (state[0][:, still], state[1][:, still])
        return records.reshape(n, self.max_len, D + 2), gen_flags.reshape(n, self.max_len)


def flags_to_mask(flag_head: torch.Tensor) -> torch.Tensor:
    """flag_head [n, L, 2] -> mask [n, L]: 1 up to and including the first record whose argmax is "ends".

    The first record is always emitted, so every generated flow has at least one record.
    """
    continues = (flag_head[..., 0] >= flag_head[..., 1]).to(flag_head.dtype).detach()  # [n, L]
    ones = torch.ones_like(continues[:, :1])
    return torch.cat([ones, torch.cumprod(continues[:, :-1], dim=1)], dim=1)


def mask_to_flags(gen_flags: torch.Tensor) -> torch.Tensor:
    """Real-data flag head from the 0/1 mask: [continues, ends] per real record, [0, 0] on padding.

    gen_flags [n, L] -> [n, L, 2]; the last real record of each flow gets [0, 1].
    """
    following = torch.cat([gen_flags[:, 1:], torch.zeros_like(gen_flags[:, :1])], dim=1)
    return torch.stack([following, 1.0 - following], dim=-1) * gen_flags.unsqueeze(-1)


class Critic(nn.Module):
    """WGAN critic: MLP on [flattened records incl. flags, attributes] -> one score per flow.

    No batch normalisation (the gradient penalty and per-sample DP clipping need per-sample outputs).
    """

    def __init__(self, attribute_dim: int, record_dim: int, max_len: int, num_layers: int, num_units: int):
        super().__init__()
        self.net = nn.Sequential(*_mlp(max_len * record_dim + attribute_dim, num_layers, num_units, False),
                                 nn.Linear(num_units, 1))

    def forward(self, records: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """records [n, L, D+2], attributes [n, A] -> [n]."""
        return self.net(torch.cat([records.flatten(1), attributes], dim=1)).squeeze(-1)


class AttributeCritic(nn.Module):
    """Auxiliary critic on attributes alone: [n, A] -> [n]."""

    def __init__(self, attribute_dim: int, num_layers: int, num_units: int):
        super().__init__()
        self.net = nn.Sequential(*_mlp(attribute_dim, num_layers, num_units, False), nn.Linear(num_units, 1))

    def forward(self, attributes: torch.Tensor) -> torch.Tensor:
        return self.net(attributes).squeeze(-1)
