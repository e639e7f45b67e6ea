"""Flows: group records by 5-tuple into flow samples, cut the trace into chunks, tag spanning flows."""
from .chunking import Chunk, chunk_report, split_chunks
from .summary import flow_summary
from .table import FlowTable

__all__ = ["FlowTable", "Chunk", "split_chunks", "chunk_report", "flow_summary"]
