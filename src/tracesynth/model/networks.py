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


def resolve_precision(precision: str = "auto") -> torch.dtype:
    """The dtype of generation's large matmuls for a `runtime.Precision`: auto = bfloat16 where the CPU
    has native bfloat16 matmuls, else float32. On caida-10k bfloat16 changed the mean NetShare JSD by
    < 0.002 and gave +36-46% packets/s end to end (1M packets, 1 thread; docs/pipeline.md). float32
    keeps `generate` equal to `sample` up to float32 rounding."""
    if precision == "auto":
        return torch.bfloat16 if _native_bfloat16() else torch.float32
    if precision not in GENERATE_DTYPES:
        raise UserError(f"generation precision {precision!r} is not one of auto, {', '.join(GENERATE_DTYPES)}")
    return GENERATE_DTYPES[precision]


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

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """raw [..., dim] logits -> [..., dim] with softmax / sigmoid / tanh per span."""
        plain = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}
        parts = []
        for start, stop, activation, width in self.segments:
            piece = raw[..., start:stop]
            if activation == "softmax":
                grouped = piece.reshape(*piece.shape[:-1], (stop - start) // width, width)  # [..., k, width]
                parts.append(_softmax(grouped).flatten(-2))
            else:
                parts.append(plain[activation](piece))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def discretize(self, values: torch.Tensor) -> torch.Tensor:
        """values [..., dim] -> one-hot argmax on softmax spans (ties: the first), other spans unchanged."""
        return self._one_hot_(values.detach().clone(), activate=False)

    def sample(self, raw: torch.Tensor) -> torch.Tensor:
        """raw [..., dim] logits -> a generated sample: one-hot argmax on softmax spans (the category
        generation emits), sigmoid / tanh elsewhere.

        Equal to `discretize(forward(raw))` (softmax is monotone, so its argmax is the logits' argmax,
        up to ties made by rounding) without computing the softmax, the largest activation cost of
        generation. No autograd (generation only)."""
        return self._one_hot_(raw.detach().clone(), activate=True)

    def _one_hot_(self, x: torch.Tensor, activate: bool) -> torch.Tensor:
        """In place: softmax spans -> one-hot argmax; sigmoid / tanh spans activated when `activate`."""
        for start, stop, activation, width in self.segments:
            piece = x[..., start:stop]
            if activation == "softmax":
                grouped = piece.unflatten(-1, ((stop - start) // width, width))            # [..., k, width]
                if width == 2:
                    second = grouped[..., 1] > grouped[..., 0]
                    grouped[..., 1].copy_(second)
                    grouped[..., 0].copy_(~second)
                else:
                    best = grouped.argmax(dim=-1, keepdim=True)
                    grouped.zero_().scatter_(-1, best, 1.0)
            elif activate and activation == "sigmoid":
                piece.sigmoid_()
            elif activate:
                piece.tanh_()
        return x


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
        """A generated sample of attributes: `activation.sample` of the logits (softmax spans one-hot), i.e.
        `discretize(forward(noise))` in eval mode, faster: each BatchNorm (running statistics, an affine
        map per unit) is folded into the Linear after it, and each Linear + ReLU is one addmm + an
        in-place ReLU; equal up to float rounding. This MLP is the largest cost of generation.
        `dtype` (default `resolve_precision("auto")`): the matmuls' precision; the folded weights are
        cast per call (folding stays float32) and the logits return to float32, so the output is float32 either
        way. In training mode (batch statistics) it is `discretize(forward(noise))` itself."""
        if self.training:
            return self.activation.discretize(self.forward(noise))
        dtype = resolve_precision() if dtype is None else dtype
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
        return self.activation.sample(h.float())  # [n, A]


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
    def generate(self, attributes: torch.Tensor, noise: torch.Tensor, dtype: torch.dtype | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """attributes [n, A], noise [n, T, z_f] -> (records [R, D], lengths [n]): every generated record,
        flow after flow in step order (R = lengths.sum()), softmax spans one-hot (`SpanActivation.sample`).

        The records of `forward` where its gen_flags are 1 (softmax spans discretised), up to float
        rounding, but much cheaper, because real flows are short (caida: ~3 records of up to 100):
        - the LSTM stops early: flows are stepped one LSTM step at a time and each leaves the batch
          after the step in which it ended (no output feedback, so stepping with the carried state is
          the fused call unrolled);
        - the cell is computed here from `nn.LSTM`'s own weights: the condition's share of the input
          projection is computed once per flow (in `dtype`, default `resolve_precision("auto")`, like
          the attribute MLP), and
          the first step skips the zero state's matmul (at one step per call `nn.LSTM` costs twice
          as much on CPU);
        - the flag head decides on logits, and only emitted records are kept, activated and returned
          (no padded [n, L, D] tensor).
        """
        n, S, D = attributes.shape[0], self.sample_len, self.feature_dim
        if n == 0:
            return attributes.new_zeros((0, D)), torch.zeros(0, dtype=torch.int64, device=attributes.device)
        condition = self.attribute_activation.discretize(attributes)  # [n, A]
        cell = _LSTMWeights(self.lstm, condition.shape[1])
        dtype = resolve_precision() if dtype is None else dtype
        base = cell.condition_projection(condition, dtype)            # [n, 4 * units] (layer 0)
        active = torch.arange(n, device=attributes.device)            # rows still running, ascending
        state: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        emitted: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # per step: rows, flows, counts
        for t in range(self.steps):
            if len(active) == 0:
                break
            x = base if t == 0 else base[active]
            hidden, state = cell.step(x, noise[active, t], state)
            raw = self.head(hidden).reshape(len(active), S, D + 2)        # [m, S, D+2] logits
            ends = raw[..., D] < raw[..., D + 1]                          # [m, S] the flag says "ends"
            # records emitted in this step: up to and including the first "ends" (all S when none)
            counts = torch.where(ends.any(dim=1), ends.to(torch.uint8).argmax(dim=1) + 1, S)
            emitted.append((raw[torch.arange(S, device=raw.device) < counts[:, None]], active, counts))
            still = ~ends.any(dim=1)                                      # all S records continue
            active = active[still]
            state = [(h[still], c[still]) for h, c in state]
        records, lengths = _flow_major(emitted, n, S)
        return self.activation.sample(records)[:, :D], lengths


class _LSTMWeights:
    """`nn.LSTM`'s weights for stepping by hand (generation only; gate order i, f, g, o as in PyTorch).

    Layer 0's input is [condition, noise]: its projection splits into a per-flow part (condition,
    both biases) computed once, and the noise part per step. The g gate's rows are doubled so that one
    sigmoid over all four gates gives tanh(g) = 2 sigmoid(2g) - 1 too (torch's tanh is 2-4x slower
    than its sigmoid on CPU, more on the strided gate slices); tanh(c) is computed the same way."""

    def __init__(self, lstm: nn.LSTM, condition_dim: int):
        self.layers = []
        for k in range(lstm.num_layers):
            units = lstm.hidden_size
            scale = torch.ones(4 * units, 1, dtype=lstm.weight_hh_l0.dtype, device=lstm.weight_hh_l0.device)
            scale[2 * units:3 * units] = 2.0
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}") * scale, getattr(lstm, f"weight_hh_l{k}") * scale
            bias = (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")) * scale[:, 0]
            self.layers.append((w_ih.t(), w_hh.t(), bias))
        w_ih0 = self.layers[0][0]
        self.condition_weight, self.noise_weight = w_ih0[:condition_dim], w_ih0[condition_dim:]

    def condition_projection(self, condition: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """condition [n, A] -> its share of layer 0's gates plus both biases [n, 4 * units], float32;
        the matmul in `dtype` (bfloat16 halves its cost; one-hot conditions are exact in bfloat16)."""
        if dtype == torch.float32:
            return torch.addmm(self.layers[0][2], condition, self.condition_weight)
        projected = torch.mm(condition.to(dtype), self.condition_weight.to(dtype)).float()
        return projected.add_(self.layers[0][2])

    def step(self, projected: torch.Tensor, noise: torch.Tensor, state: list | None
             ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """One time step of every layer -> (top layer's h [m, units], new state per layer)."""
        new_state = []
        x = None
        for k, (w_ih, w_hh, bias) in enumerate(self.layers):
            gates = torch.addmm(projected, noise, self.noise_weight) if k == 0 else torch.addmm(bias, x, w_ih)
            if state is not None:                          # the first step starts from h = c = 0
                gates.addmm_(state[k][0], w_hh)
            i, f, g, o = gates.sigmoid_().chunk(4, dim=1)   # g holds sigmoid(2 g)
            c = i * (2.0 * g - 1.0)
            if state is not None:
                c += f * state[k][1]
            x = o * (2.0 * torch.sigmoid(2.0 * c) - 1.0)
            new_state.append((x, c))
        return x, new_state


def _flow_major(emitted: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], n: int, S: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step emitted rows -> (rows [R, W] flow after flow in step order, lengths [n]).

    Step t's rows of a flow are records t*S .. t*S + count - 1 of it: every earlier step emitted all S
    (or the flow would have ended), so a row's place is its flow's offset + t*S + its rank in the step."""
    first_rows = emitted[0][0]
    lengths = torch.zeros(n, dtype=torch.int64, device=first_rows.device)
    for _, flows, counts in emitted:
        lengths.index_add_(0, flows, counts.to(torch.int64))
    if len(emitted) == 1:                                  # every flow ended in the first step
        return first_rows, lengths
    offsets = torch.cumsum(lengths, 0) - lengths
    out = first_rows.new_empty((int(lengths.sum()), first_rows.shape[1]))
    for t, (rows, flows, counts) in enumerate(emitted):
        counts = counts.to(torch.int64)
        starts = torch.repeat_interleave(offsets[flows] + t * S, counts)
        before = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        out[starts + torch.arange(len(rows), device=rows.device) - before] = rows
    return out, lengths


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
