"""DoppelGANger: the four networks built from the encoders' spans, sampling, and a manifest summary.

`DoppelGANger(attribute_spans, feature_spans, max_len, model_cfg, seed)` trains on EncodedFlows-shaped
arrays (attributes [n, A], features [n, L, D], gen_flags [n, L]); `sample` (training) returns those
shapes, `generate` returns samples packed for decoding (attributes [n, A], records [R, D], lengths [n];
`FlowEncoder.decode` reads them). Weights initialise from `seed` (`weights.seeded_init`) without
disturbing torch's global RNG, so two models built with the same seed are identical. Save and restore
through `state_dict` / `load_state_dict` (`weights.save_weights` / `load_weights` for files); the
span layout and sizes are constructor arguments (see `describe()`), not part of the state.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..encoders.base import Span, total_dim
from ..errors import UserError
from ..runtime import Precision
from .networks import (AttributeCritic, AttributeGenerator, Critic, FeatureGenerator, mask_to_flags,
                       resolve_precision)
from .weights import seeded_init


class DoppelGANger(nn.Module):
    """Attribute generator + LSTM feature generator + critic + auxiliary attribute critic."""

    def __init__(self, attribute_spans: list[Span], feature_spans: list[Span], max_len: int,
                 model_cfg: ModelConfig | None = None, seed: int = 0):
        super().__init__()
        cfg = model_cfg or ModelConfig()
        if max_len < 1 or max_len % cfg.sample_len:
            raise UserError(f"model.sample_len ({cfg.sample_len}) must divide flow_length.max_flow_len "
                            f"({max_len}); choose a divisor")
        if not attribute_spans or not feature_spans:
            raise UserError("the model needs at least one attribute and one feature field; check `fields`")
        self.attribute_spans = list(attribute_spans)
        self.feature_spans = list(feature_spans)
        self.max_len = int(max_len)
        self.cfg = cfg
        self.seed = int(seed)
        self.attribute_dim = total_dim(self.attribute_spans)
        self.feature_dim = total_dim(self.feature_spans)
        with seeded_init(seed):
            self.attribute_generator = AttributeGenerator(self.attribute_spans, cfg)
            self.feature_generator = FeatureGenerator(self.attribute_spans, self.feature_spans, max_len, cfg)
            self.critic = Critic(self.attribute_dim, self.feature_dim + 2, max_len,
                                 cfg.critic_num_layers, cfg.critic_num_units)
            self.attr_critic = AttributeCritic(self.attribute_dim, cfg.attr_critic_num_layers,
                                               cfg.attr_critic_num_units)

    @property
    def device(self) -> torch.device:
        return self.attribute_generator.head.weight.device

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.attribute_generator.parameters()) + list(self.feature_generator.parameters())

    # ---- training-time sampling (tensors, graph kept) -------------------------------------------
    def sample(self, n: int, generator: torch.Generator, attributes: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample n flows as tensors on the model's device.

        Returns (attributes [n, A], records [n, L, D+2] incl. the flag head, masked; gen_flags [n, L]).
        Given `attributes`, only the time series is sampled, conditioned on them (returned unchanged).
        """
        device = self.device
        if attributes is None:
            z_a = torch.randn(n, self.cfg.attribute_noise_dim, generator=generator,
                              device=generator.device).to(device)
            attributes = self.attribute_generator(z_a)
        steps = self.feature_generator.steps
        z_f = torch.randn(n, steps, self.cfg.feature_noise_dim, generator=generator,
                          device=generator.device).to(device)
        records, gen_flags = self.feature_generator(attributes, z_f)
        return attributes, records, gen_flags

    def real_records(self, features: torch.Tensor, gen_flags: torch.Tensor) -> torch.Tensor:
        """Real data in the critic's layout: features [n, L, D], gen_flags [n, L] -> [n, L, D+2]."""
        return torch.cat([features * gen_flags.unsqueeze(-1), mask_to_flags(gen_flags)], dim=-1)

    # ---- generation (numpy out) --------------------------------------------------------------------
    def _eval_mode(self):
        """Context: eval mode (BatchNorm uses running statistics), inference mode (no autograd graph,
        no version counters), mode restored after. Outputs leave as numpy, so no tensor made here is
        ever used by autograd later."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            was_training = self.training
            self.eval()
            try:
                with torch.inference_mode():
                    yield
            finally:
                self.train(was_training)
        return ctx()

    def _generate_batch(self, n: int, generator: torch.Generator, given: torch.Tensor | None,
                        dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch, drawing noise exactly as `sample` does, with the generation paths of both generators
        (folded attribute MLP, early-stopping LSTM, their large matmuls in `dtype`): (attributes [n, A],
        records [R, D], lengths [n])."""
        device = self.device
        attributes = given
        if attributes is None:
            z_a = torch.randn(n, self.cfg.attribute_noise_dim, generator=generator,
                              device=generator.device).to(device)
            attributes = self.attribute_generator.generate(z_a, dtype)
        z_f = torch.randn(n, self.feature_generator.steps, self.cfg.feature_noise_dim, generator=generator,
                          device=generator.device).to(device)
        records, lengths = self.feature_generator.generate(attributes, z_f, dtype)
        return attributes, records, lengths

    def _check_attributes(self, attributes: np.ndarray) -> np.ndarray:
        attributes = np.asarray(attributes, dtype=np.float32)
        if attributes.ndim != 2 or attributes.shape[1] != self.attribute_dim:
            raise UserError(f"attributes must have shape [n, {self.attribute_dim}], got {attributes.shape}")
        return attributes

    def generate_attributes(self, n: int, generator: torch.Generator | None = None,
                            batch_size: int = 8192, precision: Precision = "auto") -> np.ndarray:
        """Only the attribute generator: n sampled rows [n, A] float32, softmax spans one-hot (NetShare's
        first generation stage, where series would be thrown away anyway); `precision` as in `generate`."""
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        dtype = resolve_precision(precision)
        out = np.empty((max(0, n), self.attribute_dim), np.float32)  # filled in place: no list + concatenate copy
        with self._eval_mode():
            for start in range(0, n, batch_size):
                m = min(n, start + batch_size) - start
                z_a = torch.randn(m, self.cfg.attribute_noise_dim, generator=generator,
                                  device=generator.device).to(self.device)
                out[start:start + m] = self.attribute_generator.generate(z_a, dtype).cpu().numpy()
        return out

    def iter_generate(self, n: int, generator: torch.Generator | None = None, attributes: np.ndarray | None = None,
                      batch_size: int = 2048, precision: Precision = "auto"
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`generate` in bounded batches: yields (attributes [b, A], records [R, D], lengths [b]) per batch
        of at most `batch_size` flows. Concatenating the batches gives exactly `generate`'s output."""
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        if attributes is not None:
            attributes = self._check_attributes(attributes)
            n = attributes.shape[0]
        dtype = resolve_precision(precision)
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            with self._eval_mode():
                given = None if attributes is None else torch.from_numpy(attributes[start:stop]).to(self.device)
                attrs, records, lengths = self._generate_batch(stop - start, generator, given, dtype)
                attrs = attributes[start:stop].copy() if attributes is not None else attrs.cpu().numpy()
                yield (np.asarray(attrs, dtype=np.float32), records.cpu().numpy().astype(np.float32, copy=False),
                       lengths.cpu().numpy())

    def generate(self, n: int, generator: torch.Generator | None = None, attributes: np.ndarray | None = None,
                 batch_size: int = 2048, precision: Precision = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generate n flows: (attributes [n, A] float32, records [R, D] float32, lengths [n] int64).

        A flow's records follow its predecessor's (flow i's are rows lengths[:i].sum() onwards, in step
        order); every flow has at least one record. Softmax spans come back one-hot: the generated
        category (`SpanActivation.sample`), which is what every decoder takes anyway. With `attributes`
        (float32 [m, A], e.g. NetShare's merged per-chunk attribute list) only the time series is
        generated, one flow per given row (`n` is ignored), and the attributes are returned unchanged.
        Runs in eval mode (BatchNorm uses its running statistics) and restores the previous mode
        afterwards. The same noise as `sample` is drawn, so the output is `sample`'s in eval mode, its
        softmax spans discretised and its padding dropped (up to float rounding). For many flows prefer
        `iter_generate`, which bounds memory to one batch. `precision` (`runtime.Precision`): the dtype of
        the attribute MLP and the LSTM's condition projection; float32 reproduces `sample`, the default
        auto is bfloat16 where the CPU has native bfloat16 matmuls.
        """
        parts = list(self.iter_generate(n, generator, attributes, batch_size, precision))
        if not parts:
            return (np.zeros((0, self.attribute_dim), np.float32), np.zeros((0, self.feature_dim), np.float32),
                    np.zeros(0, np.int64))
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts))  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """Small JSON-friendly summary for the run manifest (and checkpoint compatibility checks)."""
        def count(module: nn.Module) -> int:
            return int(sum(p.numel() for p in module.parameters()))

        return {
            "architecture": "DoppelGANger",
            "attribute_spans": [[s.dim, s.activation] for s in self.attribute_spans],
            "feature_spans": [[s.dim, s.activation] for s in self.feature_spans],
            "max_len": self.max_len,
            "sample_len": self.cfg.sample_len,
            "model": self.cfg.model_dump(mode="json"),
            "parameters": {"attribute_generator": count(self.attribute_generator),
                           "feature_generator": count(self.feature_generator),
                           "critic": count(self.critic), "attr_critic": count(self.attr_critic)},
        }
