"""Differential privacy for DoppelGANger training: DP-SGD on both critics, Poisson batches, an honest
accountant, a DP flow count, and the check that DP mode reads no private data outside the budget.

Why each piece (NETSHARE.md section 9 lists what NetShare gets wrong):
- The generator only sees private data through the critics, so noising the critics' gradients is enough;
  the generator step is post-processing.
- Every critic update is a noisy release. One Poisson sample feeds `updates_per_sample` critic updates
  (the critic and the attribute critic, 2). Each update's gradient is clipped to C per example and gets
  noise sigma*C, so jointly the sample's releases are one Gaussian mechanism with L2 sensitivity
  C*sqrt(k) and noise sigma*C: the accountant sees noise multiplier sigma/sqrt(k) per Poisson sample.
  This bound also covers adaptive (sequential) updates on the same sample and is never smaller than
  counting them as independently sampled releases.
- Poisson sampling (each flow sample kept independently with probability q) is what the sampled-Gaussian
  RDP / PRV analyses assume; sampling with replacement is not.
- The size is a release too: one total (distinct flows, sensitivity 1) through the Gaussian mechanism,
  split over chunks by public shares or a coarse noisy histogram (`release_sizes`); the sample rate,
  step count and output size derive from these (post-processing), so nothing else reads n.
- Per-example clipping of tracesynth's ReLU-MLP critics goes through Gram matrices of layer factors
  (`mlp_clipped_sum`), never through per-example gradient tensors (their allocation churn was half a
  DP fit's CPU time, in the kernel); torch.func's vmap remains the path for any other critic.
- Chunks compose sequentially: one flow (5-tuple) can appear in every chunk.

opacus is imported here only, lazily (it is an optional dependency: `pip install tracesynth[dp]`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, UserError

log = logging.getLogger(__name__)

#: noisy critic updates fed by one Poisson sample: the critic and the auxiliary attribute critic
CRITIC_UPDATES_PER_SAMPLE = 2
_MAX_SIGMA = 1e6
#: bisection floor: below it epsilon does not depend on sigma (no training release), so stop there
_MIN_SIGMA = 1e-6
#: RDP orders: opacus' defaults plus large orders, without which RDP cannot express the small
#: epsilons of a flow-count release (at delta 1e-5 order 63 alone costs log(1/delta)/62 = 0.19)
RDP_ORDERS = ([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 256, 16))
              + [256, 384, 512, 768, 1024, 2048, 4096])


# ----------------------------------------------------------------------------------------------------
# Accounting
# ----------------------------------------------------------------------------------------------------

def _new_accountant(name: str):
    """An opacus accountant ('rdp' or 'prv'); a clear error when the optional dependency is missing."""
    try:
        from opacus.accountants import create_accountant
    except ModuleNotFoundError:  # pragma: no cover - depends on the environment
        raise UserError("differential privacy needs opacus: pip install 'tracesynth[dp]'") from None
    if name not in ("rdp", "prv"):
        raise ConfigError(f"privacy.accountant: unknown accountant {name!r}; choose 'rdp' or 'prv'")
    return create_accountant(mechanism=name)


def _as_list(value: float | Sequence[float]) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple, np.ndarray)) else [float(value)]


def _history(sigma: float, sample_rate, steps, updates_per_sample: int,
             count_sigma: float | None, count_releases: int = 1) -> list[tuple[float, float, int]]:
    """opacus history entries (noise multiplier, sample rate, steps): one per chunk rate, plus the
    count releases (`count_releases` Gaussian releases at multiplier `count_sigma`, q = 1)."""
    rates, counts = _as_list(sample_rate), [int(s) for s in _as_list(steps)]
    if len(rates) != len(counts):
        raise ValueError(f"sample_rate ({len(rates)}) and steps ({len(counts)}) need one entry per chunk")
    effective = sigma / math.sqrt(updates_per_sample)
    merged: dict[float, int] = {}  # chunks at the same rate compose as one entry (fewer RDP evaluations)
    for q, n in zip(rates, counts):
        if n > 0 and q > 0:
            merged[min(1.0, q)] = merged.get(min(1.0, q), 0) + n
    history = [(effective, q, n) for q, n in merged.items()]
    if count_sigma is not None and count_releases > 0:
        history.append((float(count_sigma), 1.0, int(count_releases)))
    return history


def _log_binom(alpha: int, k: np.ndarray) -> np.ndarray:
    """log C(alpha, k) as opacus computes it (scipy's binom, inf where it overflows), vectorised."""
    from scipy import special

    with np.errstate(divide="ignore"):
        return np.log(special.binom(alpha, k))


def _integer_order_log_a(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha of the sampled Gaussian for an integer order (Mironov et al. 2019, section 3.3).

    The same sum opacus evaluates term by term in a Python loop (thousands of terms at order 4096,
    which made calibration take tens of seconds); here one numpy log-sum-exp.
    """
    k = np.arange(alpha + 1, dtype=np.float64)
    terms = _log_binom(alpha, k) + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma ** 2)
    top = float(np.max(terms))
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.sum(np.exp(terms - top))))


def _signed_log_sum(log_terms: np.ndarray, signs: np.ndarray) -> float:
    """log(sum(sign_i * exp(log_term_i))) for a positive total."""
    top = float(np.max(log_terms))
    total = float(np.sum(signs * np.exp(log_terms - top)))
    return top + math.log(total) if total > 0 else -math.inf


def _fractional_order_log_a(q: float, sigma: float, alpha: float) -> float:
    """log A_alpha for a fractional order: opacus' two-sided series (Mironov et al. 2019, section 3.3),
    with the terms computed as arrays and summed up to the first term below exp(-30), as opacus stops."""
    from scipy import special

    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    size = 256
    while True:
        i = np.arange(size, dtype=np.float64)
        coef = special.binom(alpha, i)
        log_coef = np.log(np.abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log(1 - q)
        log_t1 = log_coef + j * math.log(q) + i * math.log(1 - q)
        log_e0 = math.log(0.5) + math.log(2) + special.log_ndtr(-(i - z0) / (math.sqrt(2) * sigma) * 2 ** 0.5)
        log_e1 = math.log(0.5) + math.log(2) + special.log_ndtr(-(z0 - j) / (math.sqrt(2) * sigma) * 2 ** 0.5)
        log_s0 = log_t0 + (i * i - i) / (2 * sigma ** 2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma ** 2) + log_e1
        small = np.flatnonzero(np.maximum(log_s0, log_s1) < -30)
        if small.size:
            break
        size *= 4
    n = int(small[0]) + 1
    signs = np.where(coef[:n] > 0, 1.0, -1.0)
    return float(np.logaddexp(_signed_log_sum(log_s0[:n], signs), _signed_log_sum(log_s1[:n], signs)))


def _sampled_gaussian_rdp(q: float, sigma: float, orders: Sequence[float]) -> np.ndarray:
    """RDP of one sampled Gaussian release at every order (opacus' `_compute_rdp`, faster).

    Both series are opacus' (Mironov et al. 2019) evaluated as numpy arrays instead of term by term
    (opacus' loops made calibration take ~30 s); they agree with opacus to rounding
    (tests/model/test_privacy.py).
    """
    orders = np.asarray(orders, dtype=np.float64)
    if q == 0:
        return np.zeros_like(orders)
    if sigma == 0:
        return np.full_like(orders, np.inf)
    if q == 1.0:
        return orders / (2 * sigma ** 2)
    out = np.empty_like(orders)
    for i, alpha in enumerate(orders):
        if float(alpha).is_integer():
            out[i] = _integer_order_log_a(q, sigma, int(alpha)) / (alpha - 1)
        else:
            out[i] = _fractional_order_log_a(q, sigma, float(alpha)) / (alpha - 1)
    return out


def _rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """RDP composition of the history and the RDP -> (epsilon, delta) conversion opacus uses."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    rdp = sum(steps * _sampled_gaussian_rdp(q, sigma, RDP_ORDERS) for sigma, q, steps in history)
    eps, _ = get_privacy_spent(orders=RDP_ORDERS, rdp=rdp, delta=delta)
    return float(eps)


def _epsilon_of(history: list[tuple[float, float, int]], delta: float, accountant: str) -> float:
    if not history:
        return 0.0
    import warnings

    if accountant == "rdp":
        _new_accountant(accountant)  # the clear error when opacus is missing
        with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is still valid
            warnings.simplefilter("ignore", UserWarning)
            return _rdp_epsilon(history, delta)
    acc = _new_accountant(accountant)
    acc.history = list(history)
    with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is still valid
        warnings.simplefilter("ignore", UserWarning)
        extra = {"alphas": RDP_ORDERS} if accountant == "rdp" else {}
        return float(acc.get_epsilon(delta=delta, **extra))


def spent_epsilon(*, sigma: float, sample_rate: float | Sequence[float], steps: int | Sequence[int],
                  delta: float, accountant: str = "rdp", updates_per_sample: int = 1,
                  count_sigma: float | None = None, count_releases: int = 1) -> float:
    """Epsilon at `delta` after `steps` Poisson samples at `sample_rate` with noise multiplier `sigma`.

    `sample_rate`/`steps` may be per-chunk sequences (chunks compose sequentially); `count_sigma` adds
    the size releases: `count_releases` Gaussian releases (sensitivity-normalised multiplier, q = 1).
    """
    if sigma == math.inf:  # no training release: only the count (if any) is spent
        return _epsilon_of(_history(1.0, [], [], 1, count_sigma, count_releases), delta, accountant)
    if sigma <= 0:
        return math.inf
    return _epsilon_of(_history(sigma, sample_rate, steps, updates_per_sample, count_sigma, count_releases),
                       delta, accountant)


def _bisect_sigma(epsilon_of: Callable[[float], float], target: float, rel_tol: float = 1e-3) -> float:
    """Smallest sigma (within rel_tol) whose epsilon is <= target; epsilon decreases with sigma."""
    low, high = 0.0, 1.0
    while epsilon_of(high) > target:
        low, high = high, 2.0 * high
        if high > _MAX_SIGMA:
            raise ConfigError(f"privacy.epsilon: a budget of {target:.4g} cannot be met with finite noise; "
                              "raise epsilon or train for fewer steps")
    while high - low > rel_tol * high and high > _MIN_SIGMA:  # a schedule without training: any sigma
        mid = 0.5 * (low + high)
        if epsilon_of(mid) > target:
            low = mid
        else:
            high = mid
    return high


def calibrate_sigma(epsilon: float, delta: float, sample_rate: float | Sequence[float],
                    steps: int | Sequence[int], accountant: str = "rdp", *, updates_per_sample: int = 1,
                    count_sigma: float | None = None, count_releases: int = 1) -> float:
    """Noise multiplier per critic update so that all releases together spend at most `epsilon`.

    Binary search on the accountant (opacus' get_noise_multiplier cannot include the count release
    or per-chunk sample rates). The returned sigma is the per-update multiplier: noise std = sigma * C.
    """
    if epsilon == math.inf:
        return 0.0
    floor = spent_epsilon(sigma=math.inf, sample_rate=sample_rate, steps=steps, delta=delta,
                          accountant=accountant, count_sigma=count_sigma, count_releases=count_releases)
    if floor >= epsilon:
        raise ConfigError(f"privacy.count_epsilon_fraction: the flow count alone spends {floor:.4g} >= "
                          f"epsilon {epsilon:.4g}; lower the fraction")

    def eps(sigma: float) -> float:
        return spent_epsilon(sigma=sigma, sample_rate=sample_rate, steps=steps, delta=delta,
                             accountant=accountant, updates_per_sample=updates_per_sample,
                             count_sigma=count_sigma, count_releases=count_releases)

    return _bisect_sigma(eps, epsilon)


def calibrate_count_sigma(epsilon: float, delta: float, accountant: str = "rdp", releases: int = 1) -> float:
    """Noise multiplier (std / L2 sensitivity) of `releases` Gaussian releases spending `epsilon` together."""
    return _bisect_sigma(lambda s: _epsilon_of([(s, 1.0, int(releases))], delta, accountant), epsilon)


def release_flow_counts(counts: Sequence[int], count_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Per-chunk flow-sample counts through the Gaussian mechanism (rounded, at least 1).

    One flow adds at most 1 to each of the chunks it appears in, so the L2 sensitivity of the vector is
    sqrt(n_chunks); noise std = count_sigma * sqrt(n_chunks). Rounding and the floor are
    post-processing. Used only as a coarse histogram (shares over chunks, see `release_sizes`): its
    sum carries n_chunks times the noise of one count.
    """
    return np.maximum(1, np.rint(noisy_histogram(counts, count_sigma, rng))).astype(np.int64)


def noisy_histogram(counts: Sequence[int], count_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Per-chunk counts + N(0, (count_sigma sqrt(n_chunks))^2) each (L2 sensitivity sqrt(n_chunks)), float."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts + rng.normal(0.0, count_sigma * math.sqrt(max(1, counts.size)), size=counts.shape)


def release_count(count: int, count_sigma: float, rng: np.random.Generator) -> int:
    """One count of L2 sensitivity 1 through the Gaussian mechanism (std count_sigma), rounded, >= 1."""
    return int(max(1, round(float(count) + rng.normal(0.0, count_sigma))))


@dataclass(frozen=True)
class FlowCounts:
    """What the size release reads from the private trace, and the public shares it may use instead.

    `distinct`: flows (5-tuples) in the private trace; one flow changes it by 1 (L2 sensitivity 1).
    `per_chunk`: private flow samples per chunk; read (as a coarse noisy histogram) only when
    `public_ratios` is None. `public_ratios[c]`: the public trace's flow samples in chunk c per public
    flow (public, free), so that chunk c's estimate is released total x ratio.
    """

    distinct: int
    per_chunk: tuple[int, ...]
    public_ratios: tuple[float, ...] | None = None

    @classmethod
    def of(cls, counts: "FlowCounts | Sequence[int]") -> "FlowCounts":
        """A FlowCounts; plain per-chunk counts mean one sample per flow (distinct = their sum)."""
        if isinstance(counts, FlowCounts):
            return counts
        per_chunk = tuple(int(c) for c in counts)
        return cls(distinct=sum(per_chunk), per_chunk=per_chunk)

    @property
    def releases(self) -> int:
        """Gaussian releases the sizes cost: the total, plus the histogram without public shares."""
        return 1 if self.public_ratios is not None else 2


@dataclass(frozen=True)
class SizeRelease:
    """The released flow total and the per-chunk flow-sample estimates derived from it."""

    total: int
    per_chunk: tuple[int, ...]
    shares: tuple[float, ...]
    histogram: tuple[int, ...] | None
    source: str


def release_sizes(counts: FlowCounts, count_sigma: float, rng: np.random.Generator) -> SizeRelease:
    """One total (distinct flows, sensitivity 1) and per-chunk estimates total x share (post-processing).

    Shares come from the public trace (samples per flow in each chunk) when given, else from a coarse
    noisy histogram of the per-chunk samples (its negative entries as 0; uniform if all are), which
    assumes one sample per flow until the trained models correct it (`samples_per_flow`).
    """
    total = release_count(counts.distinct, count_sigma, rng)
    n = len(counts.per_chunk)
    if counts.public_ratios is not None:
        ratios, histogram, source = np.asarray(counts.public_ratios, np.float64), None, "public trace"
    else:
        noisy = noisy_histogram(counts.per_chunk, count_sigma, rng)
        histogram = tuple(int(v) for v in np.rint(noisy))
        positive = np.maximum(noisy, 0.0)
        ratios = positive / positive.sum() if positive.sum() > 0 else np.full(n, 1.0 / max(1, n))
        source = "noisy histogram"
    per_chunk = tuple(int(v) for v in np.maximum(1, np.rint(total * ratios)))
    shares = ratios / ratios.sum() if ratios.sum() > 0 else np.full(n, 1.0 / max(1, n))
    return SizeRelease(total, per_chunk, tuple(float(v) for v in shares), histogram, source)


def samples_per_flow(shares: Sequence[float], starting: Sequence[float], n_chunks: int) -> float:
    """Flow samples per flow implied by chunk shares and each chunk's fraction of samples that start a
    flow (`starting`, read off the trained models: post-processing): flows = sum_c samples_c x
    starting_c, so samples / flows = 1 / sum_c share_c x starting_c, kept within [1, n_chunks]."""
    per = float(np.dot(np.asarray(shares, np.float64), np.asarray(starting, np.float64)))
    return float(min(max(1.0, 1.0 / per if per > 0 else n_chunks), n_chunks))


@dataclass
class PrivacyLedger:
    """Everything that produced the (epsilon, delta) guarantee; stored in the run manifest.

    `sigma` is the per-critic-update noise multiplier (noise std sigma*clip on the summed clipped
    gradients); the accountant composes `steps` Poisson samples per chunk, each at `sample_rate`, each
    feeding `updates_per_sample` updates (effective multiplier sigma/sqrt(updates_per_sample)), plus
    `count_releases` Gaussian size releases with multiplier `count_sigma`: the number of distinct flows
    (sensitivity 1, `noisy_flow_total`) and, without a public trace, the per-chunk histogram
    (sensitivity sqrt(n_chunks), `noisy_histogram`). `noisy_flow_counts` (per-chunk flow samples the
    schedule uses) are post-processing: total x `size_shares` ratios.
    Unit of privacy: one flow (5-tuple) with at most `max_flow_len` records in each chunk; a longer
    flow is split into several samples and is protected only at group level.
    """

    epsilon: float
    delta: float
    target_epsilon: float
    sigma: float
    clip: float
    sample_rate: list[float]
    steps: list[int]
    updates_per_sample: int
    accountant: str
    count_epsilon: float
    count_sigma: float
    noisy_flow_counts: list[int]
    training_epsilon: float
    #: training epochs per chunk the schedule allows (0: the chunk is not trained)
    epochs: list[int] = field(default_factory=list)
    unit: str = "flow (5-tuple), at most max_flow_len records per chunk; chunks compose sequentially"
    #: Gaussian size releases composed: 1 (total; public shares) or 2 (total + noisy histogram)
    count_releases: int = 1
    #: released number of distinct flows (the one count the output size follows)
    noisy_flow_total: int = 0
    #: released per-chunk flow samples (no public trace only; shares over chunks)
    noisy_histogram: list[int] | None = None
    #: where the per-chunk shares come from: "public trace" or "noisy histogram"
    size_shares: str = "noisy histogram"
    #: each chunk's share of the flow samples (sums to 1)
    shares: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_privacy(privacy, flow_counts: "FlowCounts | Sequence[int]", batch_size: int,
                 epochs: Sequence[int] | Callable[[np.ndarray], Sequence[int]],
                 critic_steps: int, rng: np.random.Generator,
                 updates_per_sample: int = CRITIC_UPDATES_PER_SAMPLE) -> PrivacyLedger:
    """Release the sizes (`release_sizes`), then calibrate sigma for the whole training schedule.

    `privacy` is a `tracesynth.config.PrivacyConfig`; `flow_counts` a `FlowCounts` (or plain private
    per-chunk flow-sample counts) and `epochs[c]` chunk c's training epochs (0 for a chunk not
    trained); `epochs` may also be a function of the per-chunk estimates (e.g. no training for a chunk
    estimated empty), which is post-processing. The sample rate q_c = batch_size / estimate_c and the
    Poisson-sample count epochs_c * ceil(1 / q_c) * critic_steps (the trainer runs ceil(1/q_c)
    generator steps per epoch, see `trainer_hooks`) derive from the released sizes only.
    """
    counts = FlowCounts.of(flow_counts)
    releases = counts.releases
    count_eps = privacy.epsilon * privacy.count_epsilon_fraction
    count_sigma = calibrate_count_sigma(count_eps, privacy.delta, privacy.accountant, releases)
    sizes = release_sizes(counts, count_sigma, rng)
    noisy = np.asarray(sizes.per_chunk, dtype=np.int64)
    rates = [float(min(1.0, batch_size / int(n))) for n in noisy]
    epochs = [int(e) for e in (epochs(noisy.copy()) if callable(epochs) else epochs)]
    steps = [int(e) * int(math.ceil(1.0 / q)) * critic_steps for e, q in zip(epochs, rates)]
    common = dict(sample_rate=rates, steps=steps, delta=privacy.delta, accountant=privacy.accountant,
                  updates_per_sample=updates_per_sample)
    sigma = calibrate_sigma(privacy.epsilon, privacy.delta, rates, steps, privacy.accountant,
                            updates_per_sample=updates_per_sample, count_sigma=count_sigma,
                            count_releases=releases)
    total = spent_epsilon(sigma=sigma, count_sigma=count_sigma, count_releases=releases, **common)
    training = spent_epsilon(sigma=sigma, **common)
    ledger = PrivacyLedger(epsilon=total, delta=privacy.delta, target_epsilon=privacy.epsilon, sigma=sigma,
                           clip=privacy.clip_norm, sample_rate=rates, steps=steps,
                           updates_per_sample=updates_per_sample, accountant=privacy.accountant,
                           count_epsilon=count_eps, count_sigma=count_sigma,
                           noisy_flow_counts=[int(n) for n in noisy], training_epsilon=training,
                           epochs=epochs, count_releases=releases, noisy_flow_total=sizes.total,
                           noisy_histogram=None if sizes.histogram is None else list(sizes.histogram),
                           size_shares=sizes.source, shares=list(sizes.shares))
    log.info("DP plan: sigma=%.4g over %s Poisson samples, epsilon=%.4g (training %.4g) at delta=%g",
             sigma, steps, total, training, privacy.delta)
    return ledger


# ----------------------------------------------------------------------------------------------------
# Poisson sampling
# ----------------------------------------------------------------------------------------------------

class PoissonSampler:
    """Draws batches by keeping each of `n_samples` flow samples independently with probability q.

    Batch sizes vary (mean n*q) and may be empty; DP-SGD divides by the expected size n*q, never by
    the drawn one, so the batch size itself is not released.
    """

    def __init__(self, n_samples: int, sample_rate: float, generator: torch.Generator):
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.n_samples = int(n_samples)
        self.sample_rate = float(sample_rate)
        self.generator = generator

    @property
    def expected_batch_size(self) -> float:
        return self.n_samples * self.sample_rate

    def __call__(self) -> torch.Tensor:
        """Indices (int64, sorted) of the flow samples in the next batch."""
        keep = torch.rand(self.n_samples, generator=self.generator) < self.sample_rate
        return torch.nonzero(keep, as_tuple=False).flatten()


# ----------------------------------------------------------------------------------------------------
# DP-SGD critic update
# ----------------------------------------------------------------------------------------------------

Batch = tuple[torch.Tensor, ...]


def _as_batch(x: torch.Tensor | Sequence[torch.Tensor]) -> Batch:
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def per_sample_gradients(critic: nn.Module, real: Batch, fake: Batch, mix: torch.Tensor,
                         gp_lambda: float) -> dict[str, torch.Tensor]:
    """Per-example gradients of the WGAN-GP critic loss, {param name: [B, *param.shape]}.

    Example i pairs real_i with fake_i: loss_i = D(fake_i) - D(real_i) + lambda*(|grad D(x_hat_i)| - 1)^2,
    x_hat_i = mix_i*real_i + (1 - mix_i)*fake_i. The penalty is a gradient, so its parameter gradient
    is a second derivative: torch.func nests grad inside vmap(grad) for exactly this.
    `critic(*inputs)` takes a batch of each input tensor (e.g. features and attributes).
    """
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in critic.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in critic.named_buffers()}

    def score(p, inputs: Batch) -> torch.Tensor:
        return functional_call(critic, (p, buffers), tuple(x.unsqueeze(0) for x in inputs)).sum()

    def example_loss(p, real_i: Batch, fake_i: Batch, mix_i: torch.Tensor) -> torch.Tensor:
        x_hat = tuple(mix_i * r + (1 - mix_i) * f for r, f in zip(real_i, fake_i))
        g = grad(lambda xs: score(p, xs))(x_hat)
        norm = torch.sqrt(sum((t ** 2).sum() for t in g) + 1e-12)
        return score(p, fake_i) - score(p, real_i) + gp_lambda * (norm - 1.0) ** 2

    return vmap(grad(example_loss), in_dims=(None, 0, 0, 0))(params, real, fake, mix)


def clip_and_sum(grads: dict[str, torch.Tensor], clip_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scale each example's whole gradient to L2 norm <= clip_norm and sum over the batch.

    Returns the summed clipped gradient and the per-example norms before clipping.
    """
    first = next(iter(grads.values()))
    batch = first.shape[0]
    norms = torch.sqrt(sum(g.reshape(batch, -1).pow(2).sum(1) for g in grads.values())) if batch else first.new_zeros(0)
    scale = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    summed = {k: torch.einsum("b,b...->...", scale, g) for k, g in grads.items()}
    return summed, norms


def _relu_mlp(critic: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a tracesynth critic that is net(cat(flattened inputs)) with Linear/ReLU
    layers only (both critics of `networks`), or None for any other module (vmap path)."""
    from .networks import AttributeCritic, Critic

    if not isinstance(critic, (Critic, AttributeCritic)):
        return None
    mods = list(critic.net)
    linear = mods[0::2]
    if (not all(isinstance(m, nn.Linear) for m in linear) or not all(isinstance(m, nn.ReLU) for m in mods[1::2])
            or len(mods) % 2 == 0 or linear[-1].out_features != 1):
        return None
    return linear


def mlp_clipped_sum(layers: list[nn.Linear], real: Batch, fake: Batch, mix: torch.Tensor, gp_lambda: float,
                    clip_norm: float) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Per-example clipping of the WGAN-GP critic gradient without materialising per-example gradients.

    For a ReLU MLP, example i's gradient of a weight W is a sum of outer products, one per use of W in
    example i's loss: u ⊗ v with (u, v) = (dL/dh, input a) for the forward passes on real_i and fake_i,
    and (delta_h, dL/d out) for the matmul out = delta_h W of the penalty's input gradient (written out
    here; ReLU'' = 0, so the x_hat forward pass contributes nothing). Its squared norm is
    sum_{n,m} (u_n . u_m)(v_n . v_m): per example, 3 x 3 Gram matrices instead of a [B, out, in] tensor,
    and the clipped sum is one matmul. Same result as `per_sample_gradients` + `clip_and_sum`
    (tests/model/test_privacy.py), at batch-autograd cost and memory: the torch.func path allocated
    B x n_params floats per micro-batch (~1.5 GB per step at NetShare's sizes), which glibc maps and
    unmaps each time, so half of a DP fit's CPU time went into the kernel zero-filling fresh pages.
    Returns [(weight grad, bias grad)] per layer (summed, clipped) and the per-example norms.
    """
    x_real, x_fake = (torch.cat([t.flatten(1) for t in batch], dim=1) for batch in (real, fake))
    m = mix.reshape(-1, 1).to(x_real.dtype)
    x_hat = m * x_real + (1 - m) * x_fake
    last = len(layers) - 1

    def forward(x: torch.Tensor):
        inputs, pre = [], []
        for k, lin in enumerate(layers):
            inputs.append(x)
            h = torch.nn.functional.linear(x, lin.weight, lin.bias)
            pre.append(h)
            x = torch.relu(h) if k < last else h
        return x.squeeze(-1), inputs, pre

    d_real, in_real, h_real = forward(x_real)
    d_fake, in_fake, h_fake = forward(x_fake)
    with torch.no_grad():
        masks = [(h > 0).to(x_real.dtype) for h in forward(x_hat)[2][:-1]]
    n = x_real.shape[0]
    delta, back_in, back_out = x_real.new_ones(n, 1), [None] * len(layers), [None] * len(layers)
    for k in range(last, -1, -1):  # dD/dx at x_hat, layer by layer
        back_in[k] = delta
        back_out[k] = delta @ layers[k].weight
        if k:
            delta = back_out[k] * masks[k - 1]
    norm = torch.sqrt(back_out[0].pow(2).sum(1) + 1e-12)
    loss = (d_fake - d_real + gp_lambda * (norm - 1.0).pow(2)).sum()
    grads = torch.autograd.grad(loss, h_real + h_fake + back_out)
    g_real, g_fake, g_back = grads[:last + 1], grads[last + 1:2 * last + 2], grads[2 * last + 2:]
    factors, sq = [], torch.zeros(n, dtype=x_real.dtype, device=x_real.device)
    for k in range(len(layers)):
        u = torch.stack([g_real[k], g_fake[k], back_in[k].expand_as(g_real[k])], dim=1)   # [B, 3, out]
        v = torch.stack([in_real[k], in_fake[k], g_back[k]], dim=1)                      # [B, 3, in]
        bias = g_real[k] + g_fake[k]                                                     # [B, out]
        sq += ((u @ u.transpose(1, 2)) * (v @ v.transpose(1, 2))).sum((1, 2)) + bias.pow(2).sum(1)
        factors.append((u, v, bias))
    norms = torch.sqrt(sq)
    scale = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    summed = [(torch.einsum("bno,bni->oi", u * scale[:, None, None], v), scale @ bias) for u, v, bias in factors]
    return summed, norms


class DPCriticUpdate:
    """Drop-in DP replacement of the trainer's `critic_update`, for the critic and the attribute critic.

    Per-example clipping to `clip_norm` (tracesynth's ReLU-MLP critics: `mlp_clipped_sum`, no per-example
    gradient tensors; any other critic: torch.func per-example gradients in micro-batches of
    `micro_batch`), sum, Gaussian noise
    N(0, (sigma*clip_norm)^2) per coordinate, division by the expected batch size, optimizer step.
    An empty Poisson batch still releases noise and steps, so batch emptiness is not observable.
    The WGAN-GP loss is computed here per example (a batch loss built on torch.autograd.grad cannot be
    vmapped); lambda comes from the trainer's loss_fn, interpolation weights and noise from the
    trainer's noise generator (`loss_fn.generator`, checkpointed, so resumed runs stay bit-identical).
    `releases` counts noisy updates.
    """

    def __init__(self, clip_norm: float, noise_multiplier: float, expected_batch_size: float,
                 gp_lambda: float = 10.0, generator: torch.Generator | None = None, micro_batch: int = 64,
                 fast: bool = True):
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.expected_batch_size = float(expected_batch_size)
        self.gp_lambda = float(gp_lambda)
        self.generator = generator
        self.micro_batch = int(micro_batch)
        #: tracesynth's ReLU-MLP critics take `mlp_clipped_sum` (no per-example gradient tensors);
        #: False forces the generic torch.func path (the reference, and any other critic)
        self.fast = bool(fast)
        self.releases = 0

    def noisy_gradient(self, critic: nn.Module, real, fake, generator: torch.Generator | None = None
                       ) -> dict[str, torch.Tensor]:
        """The privatised mean gradient {param name: tensor} for one Poisson batch."""
        gen = generator if generator is not None else self.generator
        if gen is None:
            raise ValueError("DPCriticUpdate needs a torch.Generator (constructor or call argument)")
        real, fake = _as_batch(real), tuple(f.detach() for f in _as_batch(fake))
        params = {k: p for k, p in critic.named_parameters() if p.requires_grad}
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        n = real[0].shape[0]
        mix = torch.rand(n, generator=gen, device=gen.device).to(real[0].device)
        layers = _relu_mlp(critic) if self.fast else None
        if layers is not None and n:
            summed, _ = mlp_clipped_sum(layers, real, fake, mix, self.gp_lambda, self.clip_norm)
            lookup = {id(p): g for lin, (gw, gb) in zip(layers, summed) for p, g in ((lin.weight, gw), (lin.bias, gb))}
            for k, p in params.items():
                total[k] += lookup[id(p)]
            n = 0  # done: skip the generic path
        for start in range(0, n, self.micro_batch):  # bounds memory at micro_batch x n_params
            sl = slice(start, start + self.micro_batch)
            grads = per_sample_gradients(critic, tuple(r[sl] for r in real), tuple(f[sl] for f in fake),
                                         mix[sl], self.gp_lambda)
            summed, _ = clip_and_sum(grads, self.clip_norm)
            for k in total:
                total[k] += summed[k]
        std = self.noise_multiplier * self.clip_norm
        for k, p in params.items():
            if std > 0:
                total[k] += torch.normal(0.0, std, size=p.shape, generator=gen, device=gen.device).to(p.device)
            total[k] /= self.expected_batch_size
        self.releases += 1
        return total

    def __call__(self, critic: nn.Module, optimizer: torch.optim.Optimizer, real, fake, loss_fn=None,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One DP-SGD step of `critic`.

        Returns only the norm of the released (noisy) gradient: the loss on the real batch is not
        privatised, so reporting it would leak outside the budget; "loss" is NaN for that reason.
        """
        if loss_fn is not None:  # the trainer's WassersteinGP carries lambda and its noise generator
            self.gp_lambda = float(getattr(loss_fn, "gp_lambda", self.gp_lambda))
            generator = generator if generator is not None else getattr(loss_fn, "generator", None)
        gradient = self.noisy_gradient(critic, real, fake, generator)
        optimizer.zero_grad(set_to_none=True)
        for k, p in critic.named_parameters():
            if k in gradient:
                p.grad = gradient[k].to(p.dtype)
        optimizer.step()
        norm = torch.sqrt(sum(g.pow(2).sum() for g in gradient.values())).detach()
        return {"loss": torch.tensor(float("nan")), "noisy_grad_norm": norm}


def poisson_batches(sample_rate: float):
    """A trainer `batch_sampler` drawing every batch by Poisson sampling at a fixed, public rate.

    The rate comes from the noisy flow count (`PrivacyLedger.sample_rate`), not from the private
    n_flows the trainer passes; `batch_size` is ignored for the same reason.
    """

    def sampler(n_flows: int, batch_size: int, n_batches: int, generator: torch.Generator):
        draw = PoissonSampler(n_flows, sample_rate, generator)
        for _ in range(n_batches):
            yield draw()

    return sampler


def trainer_hooks(ledger: PrivacyLedger, chunk: int, gp_lambda: float = 10.0) -> dict:
    """Keyword arguments for `model.trainer.train` that make chunk `chunk`'s training DP-SGD.

    `steps_per_epoch` = ceil(1/q) generator steps (from the noisy count), so the number of releases
    is the ledger's and never depends on the private number of flows.
    """
    q = ledger.sample_rate[chunk]
    return {"critic_update": DPCriticUpdate(ledger.clip, ledger.sigma, ledger.noisy_flow_counts[chunk] * q,
                                            gp_lambda),
            "batch_sampler": poisson_batches(q),
            "steps_per_epoch": int(math.ceil(1.0 / q))}


# ----------------------------------------------------------------------------------------------------
# Data-independent preprocessing
# ----------------------------------------------------------------------------------------------------

def check_dp_config(config, public_trace: str | None = None) -> None:
    """Raise ConfigError naming every setting that would read the private trace outside the budget.

    With a public trace, encoders (numeric ranges and spikes, categorical choices, word2vec) are fitted on it;
    without one they must be fixed in the config. The time window comes from the config (or
    `--window`; a preset without one takes the public trace's span, `pipeline.private`): it sets the
    private trace's chunk boundaries, and the chunking must be by time (equal-count chunks place their
    boundaries by the private records). The inter-arrival range is fitted on the public trace, else
    fixed in the config. Checkpoint selection scores checkpoints on private data, so it must be off.
    The message is one line of whole sentences, without square brackets (the CLI prints rich markup).
    The ar model (`model.kind: ar`) has no chunks, encoders or checkpoint selection; its token
    vocabularies are learnt from data, so it needs the public trace, and the window (`_ar_problems`).
    """
    public = public_trace or (config.privacy.public_trace if config.privacy is not None else None)
    problems = _ar_problems(config, public) if config.model.kind == "ar" else _dgan_problems(config, public)
    if problems:
        raise ConfigError("DP mode would read the private trace outside the privacy budget. "
                          + ". ".join(problems) + ".")


#: the refusals' sentences that both models share (pipeline/ar.py says them too, when called directly)
NO_WINDOW = ("time.window is not set, so the trace's start and end would be read from the private "
             "trace: set it to START, END in epoch seconds, or pass --window START,END")
AR_NEEDS_PUBLIC = ("model.kind is ar, whose token vocabularies (spikes and bins of every numeric field, categories, "
                   "top ports and addresses, flow lengths and start times) are learnt from data, so they would be "
                   "read from the private trace: pass a public trace of the same kind with --public PUBLIC_TRACE "
                   "(Python: fit(..., public=table)), or set privacy.public_trace")


def _ar_problems(config, public: str | None) -> list[str]:
    """The ar model reads the private trace only through its vocabularies and the window."""
    return ([] if public else [AR_NEEDS_PUBLIC]) + ([NO_WINDOW] if config.time.window is None else [])


def _dgan_problems(config, public: str | None) -> list[str]:
    """DoppelGANger: encoders, word2vec, inter-arrival range, window, chunking, checkpoint selection."""
    problems: list[str] = []
    for f in config.fields:
        if public:
            break
        if f.encoding == "numeric" and f.range is None:
            problems.append(f"fields.{f.name}.range is not set, so the range would be read from the private "
                            "trace: set a fixed min and max, or pass --public")
        if f.encoding == "numeric" and f.spikes and f.spike_values is None:
            problems.append(f"fields.{f.name}.spikes is set without spike_values, so the spike values would be "
                            "counted on the private trace: list them in spike_values, set spikes to 0, or pass --public")
        elif f.encoding == "categorical" and not f.choices:
            problems.append(f"fields.{f.name}.choices is not set, so the categories would be read from the "
                            "private trace: list them, or pass --public")
    uses_w2v = any(f.encoding.startswith("word2vec") for f in config.fields)
    if uses_w2v and not public and not config.word2vec.pretrained:
        problems.append("word2vec.pretrained is not set and no public trace is given, so the port and protocol "
                        "vocabulary would be learnt from the private trace: set a public model, or pass --public")
    if not public and config.time.interarrival_range is None:
        problems.append("time.interarrival_range is not set, so the inter-arrival range would be read from the "
                        "private trace: set a fixed min and max in seconds, or pass --public")
    if config.time.window is None:
        problems.append(NO_WINDOW)
    if config.chunking.mode != "fixed_time":
        problems.append(f"chunking.mode is {config.chunking.mode!r}, so chunk boundaries would follow the "
                        "private record counts: set it to 'fixed_time'")
    if config.training.checkpoint_selection:
        problems.append("training.checkpoint_selection is on, so checkpoints would be scored on private data: "
                        "set it to false")
    return problems
