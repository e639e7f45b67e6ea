"""The autoregressive flow model: a likelihood-trained alternative to DoppelGANger (docs/models.md).

A flow sample is a header (slots: protocol, ports, address octets, length, start; `FlowTokenizer`)
followed by its records (one row of field tokens per record). The model factorises

    p(flow) = prod_k p(header_k | header_<k) * prod_t prod_j p(record_t,j | header, record_<t, record_t,<j)

- header: a GRU over the slots, input at slot k the embedding of slot k-1's token (a learnt start
  vector at k = 0) plus a slot embedding; a categorical head per slot;
- records: a GRU over records, started from the header's final state, input at record t the summed
  field embeddings of record t-1 plus embeddings of the step and of the records still to come (the
  length is a header token, so the decoder knows where the flow ends: SYN first, FIN/RST last);
  inside a record, field j's head sees the GRU state plus the embeddings of fields < j.

Trained by cross-entropy (teacher forcing), sampled ancestrally with a temperature. The module does
no I/O; `model/ar_trainer.py` trains it and `pipeline/ar.py` connects it to the pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: step and remaining-records embeddings saturate here (later positions share the last one)
MAX_POSITION = 32


@dataclass(frozen=True)
class ARSizes:
    hidden: int = 128
    #: hidden layers of every output head's MLP
    head_layers: int = 1
    dropout: float = 0.1


def _head(d: int, vocab: int, layers: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = []
    for _ in range(layers):
        parts += [nn.Linear(d, d), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*parts, nn.Linear(d, vocab))


class ARFlowModel(nn.Module):
    """Header GRU + record GRU with per-field categorical heads (see the module docstring)."""

    def __init__(self, header_vocab: list[int], record_vocab: list[int], sizes: ARSizes = ARSizes()):
        super().__init__()
        d = sizes.hidden
        self.header_vocab, self.record_vocab, self.sizes = list(header_vocab), list(record_vocab), sizes
        self.h_embed = nn.ModuleList(nn.Embedding(v, d) for v in header_vocab)
        self.h_slot = nn.Parameter(torch.randn(len(header_vocab), d) * 0.02)
        self.h_gru = nn.GRU(d, d, batch_first=True)
        self.h_heads = nn.ModuleList(_head(d, v, sizes.head_layers, sizes.dropout) for v in header_vocab)
        self.r_embed = nn.ModuleList(nn.Embedding(v, d) for v in record_vocab)
        self.r_start = nn.Parameter(torch.zeros(d))
        self.r_step = nn.Embedding(MAX_POSITION, d)
        self.r_left = nn.Embedding(MAX_POSITION, d)
        self.r_context = nn.Linear(2 * d, d)
        self.r_head_context = nn.Linear(2 * d, d)
        self.r_init = nn.Linear(d, d)
        self.r_gru = nn.GRU(d, d, batch_first=True)
        self.r_heads = nn.ModuleList(_head(d, v, sizes.head_layers, sizes.dropout) for v in record_vocab)
        self.drop = nn.Dropout(sizes.dropout)

    # ---- header -----------------------------------------------------------------------------------
    def _header_inputs(self, header: torch.Tensor) -> torch.Tensor:
        """[B, H, d]: slot k's input is slot k-1's token embedding (zeros at k = 0) + slot embedding."""
        b, h = header.shape
        prev = [torch.zeros(b, self.sizes.hidden, device=header.device)]
        prev += [self.h_embed[k](header[:, k]) for k in range(h - 1)]
        return torch.stack(prev, dim=1) + self.h_slot[None, :h]

    def header_loss(self, header: torch.Tensor, used: torch.Tensor):
        """Per-flow summed NLL of the header [B] and the final hidden state [B, d]."""
        out, last = self.h_gru(self._header_inputs(header))
        out = self.drop(out)
        nll = torch.zeros(header.shape[0], device=header.device)
        for k, head in enumerate(self.h_heads):
            rows = used[:, k] > 0
            if bool(rows.all()):
                nll = nll + F.cross_entropy(head(out[:, k]), header[:, k], reduction="none")
            elif bool(rows.any()):   # the bytes of top ports/addresses are implied: scored nowhere, so not computed
                idx = rows.nonzero()[:, 0]
                nll = nll.index_add(0, idx, F.cross_entropy(head(out[idx, k]), header[idx, k], reduction="none"))
        return nll, last[0]

    # ---- records -----------------------------------------------------------------------------------
    def _contexts(self, header: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What every record sees of its header: the header GRU's state beside the bag of the header's
        token embeddings. The bag gives each record direct access to protocol and ports; with the GRU
        state alone the decoder learnt to read the protocol off earlier sampled fields (pkt_len, ttl)
        instead, and sampled UDP packets with TCP flags."""
        bag = sum(self.h_embed[k](header[:, k]) for k in range(header.shape[1])) / header.shape[1]
        both = torch.cat([state, bag], dim=-1)
        return self.r_context(both), self.r_head_context(both)

    def record_loss(self, records: torch.Tensor, lengths: torch.Tensor, header: torch.Tensor,
                    header_state: torch.Tensor) -> torch.Tensor:
        """Per-flow summed NLL of the padded records [B, T, F] (positions >= length ignored).

        The GRU runs on a packed sequence and the heads on the valid positions only, so a batch costs
        what its records cost, whatever its longest flow: batches can then be uniformly random (a batch
        of flows sorted by length would bias every head towards the last batches' lengths)."""
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        b, t, n_fields = records.shape
        d = self.sizes.hidden
        steps = torch.arange(t, device=records.device)
        mask = steps[None] < lengths[:, None]                                  # [B, T]
        rec = records[mask]                                                    # [R, F] valid records
        emb = torch.zeros(b, t, d, device=records.device)
        emb[mask] = sum(self.r_embed[j](rec[:, j]) for j in range(n_fields))
        prev = torch.cat([self.r_start.expand(b, 1, -1), emb[:, :-1]], dim=1)
        left = (lengths[:, None] - steps[None, :]).clamp(0, MAX_POSITION - 1)
        context, head_context = self._contexts(header, header_state)
        inputs = prev + self.r_step(steps.clamp(max=MAX_POSITION - 1))[None] + self.r_left(left) + context[:, None]
        h0 = torch.tanh(self.r_init(header_state))[None]
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.r_gru(packed, h0)[0], batch_first=True, total_length=t)
        flow = torch.arange(b, device=records.device)[:, None].expand(b, t)[mask]
        x = self.drop(out[mask]) + head_context[flow]                           # [R, d]
        nll = torch.zeros(b, device=records.device)
        for j, head in enumerate(self.r_heads):
            nll = nll.index_add(0, flow, F.cross_entropy(head(x), rec[:, j], reduction="none"))
            x = x + self.r_embed[j](rec[:, j])
        return nll

    def forward(self, header, used, records, lengths) -> torch.Tensor:
        """Per-flow NLL (nats) [B]."""
        h_nll, r_nll = self.nll_parts(header, used, records, lengths)
        return h_nll + r_nll

    def nll_parts(self, header, used, records, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-flow NLL of the header and of the records, [B] each."""
        h_nll, state = self.header_loss(header, used)
        return h_nll, self.record_loss(records, lengths, header, state)

    # ---- sampling ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def sample_header(self, n: int, generator: torch.Generator, temperature: float = 1.0,
                      implied: dict[int, tuple[int, torch.Tensor]] | None = None):
        """[n, H] header tokens and the final header state [n, d].

        `implied[k] = (j, table)`: slot k's token is `table[token of slot j]` where that is >= 0 (a top
        port's bytes follow from its class). Training never scores those slots but feeds the true
        bytes as the next inputs, so sampling must feed the same, not a draw from an untrained head."""
        d = self.sizes.hidden
        x = torch.zeros(n, 1, d) + self.h_slot[None, :1]
        h = None
        tokens = []
        for k, head in enumerate(self.h_heads):
            out, h = self.h_gru(x, h)
            tok = _draw(head(out[:, 0]), temperature, generator)
            if implied and k in implied:
                source, table = implied[k]
                fixed = table[tokens[source]]
                tok = torch.where(fixed >= 0, fixed, tok)
            tokens.append(tok)
            if k + 1 < len(self.h_heads):
                x = (self.h_embed[k](tok) + self.h_slot[k + 1])[:, None]
        return torch.stack(tokens, dim=1), h[0]

    @torch.inference_mode()
    def sample_records(self, header: torch.Tensor, header_state: torch.Tensor, lengths: torch.Tensor,
                       generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """Padded record tokens [n, T, F] for flows of the given lengths (T = max length).

        Flows are processed longest first, so each step runs only on flows still emitting records."""
        n, n_fields = len(lengths), len(self.r_heads)
        t_max = int(lengths.max()) if n else 0
        out = torch.zeros(n, t_max, n_fields, dtype=torch.long)
        if n == 0:
            return out
        order = torch.argsort(lengths, descending=True, stable=True)
        lens = lengths[order]
        context, head_context = self._contexts(header[order], header_state[order])
        h = torch.tanh(self.r_init(header_state[order]))[None]
        prev = self.r_start.expand(n, -1)
        for t in range(t_max):
            active = int((lens > t).sum())
            left = (lens[:active] - t).clamp(0, MAX_POSITION - 1)
            x = prev[:active] + self.r_step.weight[min(t, MAX_POSITION - 1)] + self.r_left(left) + context[:active]
            o, h = self.r_gru(x[:, None], h[:, :active].contiguous())
            s = o[:, 0] + head_context[:active]
            emb = torch.zeros_like(s)
            row = []
            for j, head in enumerate(self.r_heads):
                tok = _draw(head(s), temperature, generator)
                row.append(tok)
                e = self.r_embed[j](tok)
                s, emb = s + e, emb + e
            out[order[:active], t] = torch.stack(row, dim=1)
            prev = emb
        return out


def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row: argmax at temperature 0, otherwise a categorical draw at logits / temperature,
    by inverting each row's CDF at one uniform (torch.multinomial costs several times more on a CPU)."""
    if temperature <= 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits / temperature if temperature != 1.0 else logits, dim=-1).cumsum_(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=cdf.shape[1] - 1)
