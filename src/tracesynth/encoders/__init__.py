"""Field encoders (bits, word2vec, numeric, categorical) and the FlowEncoder that combines them."""
from .base import Encoder, Span, total_dim
from .bits import BitsEncoder
from .categorical import CategoricalEncoder
from .flow_encoder import EncodedFlows, FlowEncoder
from .numeric import NumericEncoder
from .word2vec import PortProtoEmbedding, Word2VecEncoder

__all__ = ["Encoder", "Span", "total_dim", "BitsEncoder", "CategoricalEncoder", "NumericEncoder",
           "PortProtoEmbedding", "Word2VecEncoder", "EncodedFlows", "FlowEncoder"]
